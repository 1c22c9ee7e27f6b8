"""ValidateModelOperator under ``dag.test()``: the image that trained validates the model, in a pod."""

from __future__ import annotations

import datetime as dt
import faulthandler
from collections.abc import Iterator
from pathlib import Path

import pytest

from lyftlearn_provider.testing._airflow_db import task_states, xcom_value
from lyftlearn_provider.testing.k8s import PodBehavior

DAGS = Path(__file__).resolve().parent / "dags" / "e2e_serving.py"
ROLE = "arn:aws:iam::123456789012:role/lyftlearn-training"
FAST_JOBS = {"Starting": 0.2, "Downloading": 0.2, "Training": 0.3, "Uploading": 0.1}

pytestmark = pytest.mark.usefixtures("airflow_db", "guarded")


@pytest.fixture
def guarded() -> Iterator[None]:
    faulthandler.dump_traceback_later(200, exit=True)  # dag.test() has no overall timeout
    yield
    faulthandler.cancel_dump_traceback_later()


def service_account(k8s, name: str = "lyftlearn-training", namespace: str = "default") -> None:
    k8s.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "annotations": {
                    "eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/lyftlearn-training"
                },
            },
        }
    )


def run(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors, bag.import_errors
    when = dt.datetime(2026, 11, 28, 15, 0, tzinfo=dt.timezone.utc)
    return bag.dags[dag_id].test(logical_date=when, run_after=when)


def env_of(pod: dict) -> dict[str, str]:
    return {entry["name"]: entry["value"] for entry in pod["spec"]["containers"][0]["env"]}


@pytest.mark.parametrize("mode", ["deferrable", "sync"])
def test_the_trained_image_validates_the_trained_model_and_its_report_is_the_result(aws, k8s, mode):
    service_account(k8s)
    aws.control.autopilot(phases=FAST_JOBS, metrics={"validation:auc": 0.91})
    report = {"smoke_auc": 0.9, "p99_latency_ms": 12.5}
    pods: list[dict] = []

    def validation(pod: dict) -> bool:
        pods.append(pod)
        return pod["metadata"]["labels"].get("task_id") == "validate"

    k8s.on_pod(PodBehavior(xcom=report, logs=["loaded model", "ok"]), predicate=validation)
    dagrun = run(f"lyftlearn_e2e_train_validate_{mode}")
    assert str(dagrun.state) == "success", task_states(dagrun.dag_id, dagrun.run_id)
    trained = xcom_value(dagrun.dag_id, dagrun.run_id, "train")
    validated = xcom_value(dagrun.dag_id, dagrun.run_id, "validate")
    assert validated["output"] == report
    assert validated["image"] == trained["image"]  # the digest that trained, not the tag
    assert validated["model_uri"] == trained["model_artifact_uri"]
    assert validated["training_job"] == trained["job_name"]
    (pod,) = [pod for pod in pods if pod["metadata"]["labels"].get("task_id") == "validate"]
    assert pod["spec"]["containers"][0]["image"] == trained["image"]
    env = env_of(pod)
    assert env["LYFTLEARN_RUNTIME"] == "validation"
    assert env["LYFTLEARN_MODEL_URI"] == trained["model_artifact_uri"]
    assert pod["spec"]["containers"][0]["command"] == ["python", "-m", "fraud.validate"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert "hunter" not in str(pod)  # secrets travel as references only


def test_a_failing_validation_fails_the_task_and_keeps_the_pod_for_its_events(aws, k8s):
    service_account(k8s)
    aws.control.autopilot(phases=FAST_JOBS)
    k8s.on_pod(
        PodBehavior(exit_code=3, logs=["AUC 0.41 on the smoke set"]),
        predicate=lambda pod: pod["metadata"]["labels"].get("task_id") == "validate",
    )
    dagrun = run("lyftlearn_e2e_train_validate_sync")
    states = task_states(dagrun.dag_id, dagrun.run_id)
    assert (states["train"], states["validate"]) == ("success", "failed")
    kept = [pod for pod in k8s.objects("pods") if pod["metadata"]["labels"].get("task_id") == "validate"]
    assert len(kept) == 1


def test_train_validate_deploy_run_the_digest_that_trained_though_the_tag_moved(aws, k8s, training_image):
    service_account(k8s)
    k8s.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "fraud-serving", "annotations": {"eks.amazonaws.com/role-arn": ROLE}},
        }
    )
    k8s.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "fraud"},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "fraud"}},
                "template": {
                    "metadata": {"labels": {"app": "fraud"}},
                    "spec": {
                        "serviceAccountName": "fraud-serving",
                        "containers": [{"name": "server", "image": "serving@sha256:" + "0" * 64}],
                    },
                },
            },
        }
    )
    aws.control.autopilot(phases=FAST_JOBS, metrics={"validation:auc": 0.91})
    k8s.on_pod(PodBehavior(xcom={"ok": True}), labels={"task_id": "validate"})
    dagrun = run("lyftlearn_e2e_loop")
    states = task_states(dagrun.dag_id, dagrun.run_id)
    assert str(dagrun.state) == "success", states
    trained = xcom_value(dagrun.dag_id, dagrun.run_id, "train")
    moved = xcom_value(dagrun.dag_id, dagrun.run_id, "move_the_tag")
    assert trained["image"].endswith(training_image) and moved != training_image  # the tag moved
    assert xcom_value(dagrun.dag_id, dagrun.run_id, "validate")["image"] == trained["image"]
    deployed = xcom_value(dagrun.dag_id, dagrun.run_id, "deploy")
    assert (deployed["status"], deployed["image"]) == ("deployed", trained["image"])
    serving = k8s.get("Deployment", "fraud")
    assert serving["spec"]["template"]["spec"]["containers"][0]["image"] == trained["image"]
