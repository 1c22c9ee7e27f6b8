"""Hand-off between DAGs by asset, on Airflow itself: a model trained by one DAG validates in another.

The scheduler of ``airflow standalone`` starts the serving DAG's run from the training task's asset
event; nothing in the test calls the second DAG.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lyftlearn_provider.testing._airflow_db import latest_run, task_states, xcom_value
from lyftlearn_provider.testing.k8s import PodBehavior
from lyftlearn_provider.testing.standalone import Standalone, airflow_env, wait_for

DAGS = Path(__file__).resolve().parent / "assets_dags"
TRAIN, VALIDATE = "lyftlearn_e2e_asset_train", "lyftlearn_e2e_asset_validate"

pytestmark = pytest.mark.usefixtures("airflow_db")


def finished(dag_id: str) -> dict | None:
    run = latest_run(dag_id)
    return run if run and run["state"] in ("success", "failed") else None


def test_the_serving_dag_validates_exactly_what_the_training_dag_trained(aws, k8s, tmp_path):
    k8s.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": "lyftlearn-training",
                "namespace": "default",
                "annotations": {
                    "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/lyftlearn-training"
                },
            },
        }
    )
    k8s.on_pod(
        PodBehavior(xcom={"smoke_auc": 0.88}), predicate=lambda pod: "validate" in pod["metadata"]["name"]
    )
    aws.control.autopilot(phases={"Starting": 0.5, "Training": 1.0}, metrics={"validation:auc": 0.9})
    folder = tmp_path / "dags"
    shutil.copytree(DAGS, folder)
    env = airflow_env(Path(os.environ["AIRFLOW_HOME"]), folder)
    with Standalone(env, tmp_path / "standalone.log") as airflow:
        try:
            airflow.wait_until_parsed(TRAIN, VALIDATE)
            airflow.unpause(TRAIN, VALIDATE)
            airflow.airflow("dags", "trigger", TRAIN)
            trained = wait_for("the training run", lambda: finished(TRAIN), timeout=240)
            assert trained["state"] == "success", task_states(TRAIN, trained["run_id"])
            validated = wait_for("the asset-triggered run", lambda: finished(VALIDATE), timeout=240)
        except BaseException:
            print((tmp_path / "standalone.log").read_text()[-5000:])
            raise
    assert validated["state"] == "success", task_states(VALIDATE, validated["run_id"])
    assert validated["run_type"] == "asset_triggered"
    model = xcom_value(TRAIN, trained["run_id"], "train")
    report = xcom_value(VALIDATE, validated["run_id"], "validate")
    assert (report["model_uri"], report["image"]) == (model["model_artifact_uri"], model["image"])
    assert report["training_job"] == model["job_name"]
    assert report["output"] == {"smoke_auc": 0.88}
    # Whatever retries the upstream defer-exit race cost (see the DAG file), one job trained and one
    # validation pod ran: a retry adopts, it never starts a second of either.
    assert len(aws.control.calls(action="CreateTrainingJob")) == 1
    pod_creates = [
        path for method, path in k8s.requests() if method == "POST" and path.split("?")[0].endswith("/pods")
    ]
    assert len(pod_creates) == 1, pod_creates
