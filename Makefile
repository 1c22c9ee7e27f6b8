# Two commands a new user needs: `make demo` and `make test` (see README.md).
VENV ?= .venv
PY := $(VENV)/bin/python
# Airflow is pinned here (not in pyproject) so users keep relaxed bounds and we keep reproducible runs.
AIRFLOW_PIN ?= apache-airflow==3.3.2

.PHONY: install test lint typecheck pytest demo demo-ui demo-stop bench bench-loop clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e ".[test]" "$(AIRFLOW_PIN)"
	touch $@

install: $(VENV)/.installed

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install
	$(VENV)/bin/mypy

pytest: install
	$(VENV)/bin/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

demo: install
	$(PY) -m lyftlearn_provider.testing.demo

# The same run, then everything stays up on fixed ports: open http://127.0.0.1:28080 (no login).
demo-ui: install
	$(PY) -m lyftlearn_provider.testing.demo --ui

demo-stop:
	$(PY) -m lyftlearn_provider.testing.demo --stop

bench: install
	$(PY) bench/parse_time.py
	$(PY) bench/overhead.py

# The whole loop on airflow standalone: P4 (overhead vs upstream operators) and R2 (a killed
# triggerer; two triggerers on the PostgreSQL of 127.0.0.1:5432, which needs psycopg[binary]).
bench-loop: install
	$(PY) bench/p4_overhead.py
	$(PY) bench/r2_standalone.py

clean:
	rm -rf $(VENV) .airflow-* build *.egg-info
