"""The train-then-score example under real Airflow (``dag.test()``) against the AWS emulator over HTTP."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from lyftlearn_provider.testing._airflow_db import xcom_value

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "example_dags" / "example_train_then_batch_score.py"
FAST_JOBS = {"Starting": 0.2, "Downloading": 0.2, "Training": 0.3, "Uploading": 0.1}

pytestmark = pytest.mark.usefixtures("airflow_db")


def test_train_then_batch_score_with_the_trained_model_and_its_pinned_image(aws, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("AIRFLOW__LYFTLEARN__POLL_INTERVAL", "0.2")
    aws.control.autopilot(phases=FAST_JOBS, metrics={"validation:auc": 0.9})
    bag = DagBag(dag_folder=str(EXAMPLE))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags["lyftlearn_train_then_batch_score"]
    when = dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc)
    dagrun = dag.test(logical_date=when, run_after=when)
    assert str(dagrun.state) == "success"
    trained = xcom_value(dag.dag_id, dagrun.run_id, "train")
    scored = xcom_value(dag.dag_id, dagrun.run_id, "score")
    assert scored["status"] == "Completed"
    assert scored["model_uri"] == trained["model_artifact_uri"]
    assert scored["image"] == trained["image"] and "@sha256:" in scored["image"]
    assert scored["outputs"] == {"predictions": "s3://lyftlearn-predictions/fraud/2026-11-28/"}
    assert scored["data_interval"]["end"] is not None
    job = aws.control.processing().job(scored["job_name"])
    environment = job["Environment"]
    assert environment["LYFTLEARN_RUNTIME"] == "batch"
    assert environment["LYFTLEARN_MODEL_URI"] == trained["model_artifact_uri"]
    assert json.loads(environment["LYFTLEARN_CONFIG"]) == {"threshold": 0.8}
    assert job["ProcessingInputs"][0]["S3Input"]["S3Uri"] == "s3://lyftlearn-data/transactions/2026-11-28/"
    assert job["ProcessingResources"]["ClusterConfig"]["InstanceCount"] == 2
    report = xcom_value(dag.dag_id, dagrun.run_id, "report")
    assert report.startswith(f"{scored['job_name']} scored with {trained['model_artifact_uri']}")
    # Clearing the run (dag.test on the same date) creates no second job of either kind.
    dagrun = dag.test(logical_date=when, run_after=when)
    assert str(dagrun.state) == "success"
    assert xcom_value(dag.dag_id, dagrun.run_id, "score")["adopted"] is True
    assert len(aws.control.jobs()) == 1
    assert len(aws.control.processing().jobs()) == 1
