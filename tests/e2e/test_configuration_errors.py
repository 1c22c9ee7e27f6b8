"""Configuration errors found at execute time fail the task at once, under real Airflow (``dag.test()``).

Each DAG here has two retries; a configuration error must not spend them (Airflow's no-retry failure),
must create nothing, and must say which field is wrong and how to fix it.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import boto3
import pytest

from lyftlearn_provider.testing._airflow_db import task_states, try_number

DAGS = Path(__file__).resolve().parent / "dags" / "e2e_hardening.py"

pytestmark = pytest.mark.usefixtures("airflow_db")


def run(dag_id: str, capfd: pytest.CaptureFixture[str]) -> tuple[str, str, str]:
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    when = dt.datetime(2026, 11, 28, 15, 0, tzinfo=dt.timezone.utc)
    dagrun = bag.dags[dag_id].test(logical_date=when, run_after=when)
    captured = capfd.readouterr()
    return dagrun.run_id, task_states(dag_id, dagrun.run_id)["train"], captured.out + captured.err


@pytest.mark.parametrize(
    ("dag_id", "says"),
    [
        ("lyftlearn_e2e_soci_required", "soci convert"),
        ("lyftlearn_e2e_undefined_template", "spec.hyperparameters: its template could not be rendered"),
        ("lyftlearn_e2e_masked_variable", "masks as a secret"),
    ],
)
def test_configuration_error_fails_without_retries_and_creates_nothing(aws, capfd, dag_id, says):
    from airflow.models import Variable

    from lyftlearn_provider.testing.aws.images import push_image

    push_image(boto3.client("ecr"), "plain-model", "1", soci=None)
    # A sensitive name (it contains "password"): Airflow masks its value wherever it is read.
    Variable.set("lyftlearn_db_password", "hunter2-very-secret")
    try:
        run_id, state, log = run(dag_id, capfd)
    finally:
        Variable.delete("lyftlearn_db_password")
    assert state == "failed"
    assert try_number(dag_id, run_id, "train") == 1  # two retries were left: none was spent
    assert says in log
    assert aws.control.calls(action="CreateTrainingJob") == []
    assert "hunter2-very-secret" not in log
