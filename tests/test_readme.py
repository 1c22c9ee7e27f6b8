"""The README's code is code that runs: its offline-testing example, and its snippets of the example DAGs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
FENCED_PYTHON = re.compile(r"```python\n(.*?)```", re.DOTALL)
SNIPPET = re.compile(r"# \[START (\w+)\]\n.*?# \[END \1\]\n", re.DOTALL)


def readme_files() -> dict[str, str]:
    """Return the README's Python blocks that open with ``# <file name>``, by that name."""
    files = {}
    for block in FENCED_PYTHON.findall(README):
        first, _, rest = block.partition("\n")
        if re.fullmatch(r"# [\w/]+\.py", first):
            files[first[2:]] = rest
    return files


@pytest.mark.usefixtures("airflow_db")
def test_the_readme_example_of_testing_your_own_dag_offline_passes(tmp_path):
    files = readme_files()
    assert set(files) == {"conftest.py", "dags/my_dag.py", "test_my_dag.py"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    # A project of its own: this repository's conftest and configuration stay out of it. It shares the
    # session's (already migrated) Airflow home only to save the migration's seconds.
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "KUBECONFIG"))}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(tmp_path),
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "1 passed" in result.stdout


def test_the_readme_shows_the_example_dags_as_they_are():
    examples = {
        match.group(1): match.group(0)
        for path in sorted((REPO / "example_dags").glob("*.py"))
        for match in SNIPPET.finditer(path.read_text())
    }
    shown = {match.group(1): match.group(0) for match in SNIPPET.finditer(README)}
    assert shown, "the README shows no example snippet"
    for name, text in shown.items():
        assert text == examples.get(name), f"README's {name} differs from the example DAG; copy it again"


def test_the_kit_is_opt_in_and_needs_its_extra():
    import importlib.metadata as metadata

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    plugins = [entry.value for entry in metadata.entry_points(group="pytest11")]
    assert not any(value.startswith("lyftlearn_provider") for value in plugins)
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert "pytest11" not in project.get("entry-points", {})
    testing = project["optional-dependencies"]["testing"]
    assert any(requirement.startswith("moto[server]") for requirement in testing)
    assert not any("moto" in requirement for requirement in project["dependencies"])
    assert "airflow-provider-lyftlearn[testing]" in project["optional-dependencies"]["test"]
