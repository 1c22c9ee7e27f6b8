"""The training operator under real Airflow (``dag.test()``) against the AWS emulator over HTTP.

R1: whatever happens to the task — its response lost, its worker killed, the task cleared — one
run creates exactly one training job. R4: a throttling storm delays the task, it does not fail it.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lyftlearn_provider.testing._airflow_db import xcom_value

REPO = Path(__file__).resolve().parents[2]
E2E_DAGS = REPO / "tests" / "e2e" / "dags" / "e2e_training.py"
FAST_JOBS = {"Starting": 0.3, "Downloading": 0.3, "Training": 0.5, "Uploading": 0.2}

pytestmark = pytest.mark.usefixtures("airflow_db")


def load_dag(path: Path, dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    return bag.dags[dag_id]


def creates(aws) -> int:
    """Count the training jobs that exist: what a duplicate would cost."""
    return len(aws.control.jobs())


def logical_date(minute: int) -> dt.datetime:
    return dt.datetime(2026, 11, 28, 15, minute, tzinfo=dt.timezone.utc)


def run(dag, when: dt.datetime):
    # A fixed run_after gives a fixed run_id: a second call re-runs (clears) the same DAG run.
    dagrun = dag.test(logical_date=when, run_after=when)
    return dagrun, xcom_value(dag.dag_id, dagrun.run_id, "train")


def test_events_tracking_under_airflow_ends_the_wait_by_the_jobs_event(aws):
    aws.control.autopilot(phases=FAST_JOBS)
    dag = load_dag(E2E_DAGS, "lyftlearn_e2e_events")
    started = time.monotonic()
    dagrun, result = run(dag, logical_date(30))
    took = time.monotonic() - started
    assert str(dagrun.state) == "success"
    assert result["status"] == "Completed"
    assert result["job_name"].startswith("ll-")
    route = xcom_value(dag.dag_id, dagrun.run_id, "setup_events")
    assert route["queue_url"].endswith("/ll-training-events")
    # Reconciliation would have waited a minute: the job's event ended the wait within seconds.
    job_end = aws.control.job(result["job_name"])["TrainingEndTime"]
    task_end = dagrun.get_task_instance("train").end_date.timestamp()
    assert 0 < task_end - job_end < 15, task_end - job_end
    assert took < 45, took
    assert aws.control.calls(service="sqs", action="ReceiveMessage")
    assert creates(aws) == 1


@pytest.mark.parametrize("mode", ["deferrable", "sync"])
def test_worker_killed_mid_job_is_adopted_by_the_next_try(aws, mode):
    when = logical_date(15)
    script = (
        "import datetime as dt, runpy, sys\n"
        f"dag = runpy.run_path({str(E2E_DAGS)!r})['{mode}_dag']\n"
        f"when = dt.datetime.fromisoformat({when.isoformat()!r})\n"
        "dag.test(logical_date=when, run_after=when)\n"
    )
    worker = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy(), start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not aws.control.jobs():
            assert worker.poll() is None, "the first try ended before creating its job"
            assert time.monotonic() < deadline, "the first try never created its job"
            time.sleep(0.1)
        time.sleep(1.0)  # let it settle into waiting (deferred, or polling in the worker)
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
    (job,) = aws.control.jobs()
    assert job["TrainingJobStatus"] == "InProgress"  # a killed worker cannot stop its job
    aws.control.autopilot(phases=FAST_JOBS)
    dagrun, result = run(load_dag(E2E_DAGS, f"lyftlearn_e2e_{mode}"), when)
    assert str(dagrun.state) == "success"
    assert (result["job_name"], result["adopted"]) == (job["TrainingJobName"], True)
    assert creates(aws) == 1


def test_lost_create_response_and_throttling_storm_do_not_fail_or_duplicate(aws):
    aws.control.inject("reset", action="CreateTrainingJob", after=True)
    # Each fault outlasts the DAG's botocore retries (2 attempts), so our own back-off is what carries it.
    aws.control.inject("throttle", 8, action="DescribeTrainingJob")
    aws.control.inject("server_error", 4, action="DescribeTrainingJob")
    aws.control.autopilot(phases=FAST_JOBS)
    dagrun, result = run(load_dag(E2E_DAGS, "lyftlearn_e2e_deferrable"), logical_date(30))
    assert str(dagrun.state) == "success"
    assert result["status"] == "Completed"
    assert creates(aws) == 1
    assert aws.control.faults() == []  # every injected fault was actually hit
