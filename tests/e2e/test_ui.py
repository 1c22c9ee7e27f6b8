"""What a user sees of a training task in the Airflow UI, read through Airflow's REST API after a real run."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
E2E_DAGS = REPO / "tests" / "e2e" / "dags" / "e2e_training.py"
WHEN = dt.datetime(2026, 11, 28, 16, 0, tzinfo=dt.timezone.utc)

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.fixture
def api(monkeypatch):
    """Airflow's own REST API app (the one the UI calls), in-process, with every user an admin."""
    from fastapi.testclient import TestClient

    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS", "True")
    from airflow.api_fastapi.app import create_app

    with TestClient(create_app("core"), base_url="http://testserver/api/v2") as client:
        yield client


def test_links_rendered_spec_and_xcom_keys_of_a_training_task(aws, api):
    from airflow.dag_processing.dagbag import DagBag

    aws.control.autopilot(phases={"Starting": 0.3, "Downloading": 0.3, "Training": 0.3, "Uploading": 0.1})
    dag = DagBag(dag_folder=str(E2E_DAGS)).dags["lyftlearn_e2e_deferrable"]
    run = dag.test(logical_date=WHEN, run_after=WHEN)
    assert str(run.state) == "success"
    task = f"/dags/{dag.dag_id}/dagRuns/{run.run_id}/taskInstances/train"
    result = api.get(f"{task}/xcomEntries/return_value").json()["value"]
    job = result["job_name"]

    links = api.get(f"{task}/links").json()["extra_links"]
    assert links["SageMaker Training Job"].endswith(f"/sagemaker/home?region=us-east-1#/jobs/{job}")
    assert f"logStreamNameFilter$3D{job}" in links["Training Job Logs"]
    digest = result["image"].rpartition("@")[2]
    assert links["Image in ECR"] == (
        "https://console.aws.amazon.com/ecr/repositories/private/123456789012/fraud-model/_/image/"
        f"{digest}/details?region=us-east-1"
    )

    keys = sorted(entry["key"] for entry in api.get(f"{task}/xcomEntries").json()["xcom_entries"])
    # Ours: the result, the job record (for adoption) and the links' facts; Airflow adds one per link.
    assert [key for key in keys if not key.startswith("_link_")] == [
        "lyftlearn_job",
        "lyftlearn_training_job",
        "return_value",
    ]
    assert len(keys) == 6

    rendered = api.get(task).json()["rendered_fields"]["spec"]
    # Readable JSON, not a repr; the SageMaker fields shown, the pod-only ones left out.
    assert rendered["hyperparameters"] == {"window_end": str(WHEN)}
    assert rendered["resources"] == {
        "instance_type": "ml.m5.xlarge",
        "instance_count": 1,
        "volume_size_gb": 30,
    }
    assert "pod_security" not in rendered
