"""R2 on real Airflow, short: SIGKILL standalone's triggerer while the loop's tasks are deferred.

The full runs (more runs, a longer backfill, two triggerers on PostgreSQL) are ``bench/r2_standalone.py``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_sigkilled_triggerer_loses_no_run_and_duplicates_no_job():
    command = [
        sys.executable,
        str(REPO / "bench" / "r2_standalone.py"),
        "--scenario",
        "kill",
        "--db",
        "sqlite",
    ]
    command += ["--runs", "1", "--backfill", "1", "--job-seconds", "6"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=400)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    row = next(line for line in result.stdout.splitlines() if line.startswith("SIGKILL triggerer (sqlite)"))
    runs_ok, jobs, _retries, serving_newest, fired, doubled = row.split(")", 1)[1].split()[:6]
    done, total = runs_ok.split("/")
    # Every run (the manual one, the backfilled one, the one unpausing scheduled) ended with one job,
    # serving is on the newest interval's model, and every trigger fired once.
    assert done == total == jobs == "3"
    assert serving_newest == "True"
    assert int(fired) >= 3 and doubled == "0"
    assert "SIGKILLed the triggerer" in result.stdout
