"""The same training spec run as a Kubernetes pod (``backend="kubernetes"``), under ``dag.test()``.

KubernetesPodOperator's machinery runs the pod against the Kubernetes emulator over HTTP; the task
returns the SageMaker result's shape from what the program wrote to its XCom file.
"""

from __future__ import annotations

import datetime as dt
import faulthandler
from collections.abc import Iterator
from pathlib import Path

import pytest

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.testing._airflow_db import xcom_value
from lyftlearn_provider.testing.k8s import PodBehavior

DAGS = Path(__file__).resolve().parent / "dags" / "e2e_kubernetes.py"
ROLE = "arn:aws:iam::123456789012:role/lyftlearn-training"

pytestmark = pytest.mark.usefixtures("airflow_db")


@pytest.fixture
def guarded() -> Iterator[None]:
    faulthandler.dump_traceback_later(150, exit=True)  # dag.test() has no overall timeout
    yield
    faulthandler.cancel_dump_traceback_later()


def service_account(k8s, role: str = ROLE) -> None:
    k8s.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {
                "name": "lyftlearn-training",
                "namespace": "default",
                "annotations": {"eks.amazonaws.com/role-arn": role},
            },
        }
    )


def load(mode: str):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert not bag.import_errors
    return bag.dags[f"lyftlearn_e2e_kubernetes_{mode}"]


@pytest.mark.usefixtures("guarded")
@pytest.mark.parametrize("mode", ["sync", "deferrable"])
def test_spec_runs_as_a_pod_and_returns_the_training_result(k8s, mode, training_image):
    service_account(k8s)
    returned = {"model_artifact_uri": "s3://lyftlearn-models/fraud/pod/model.tar.gz", "metrics": {"auc": 0.9}}
    pods: list[dict] = []

    def remember(pod: dict) -> bool:
        pods.append(pod)
        return pod["metadata"]["labels"].get("task_id") == "train"

    k8s.on_pod(PodBehavior(logs=["training", "done"], xcom=returned), predicate=remember)
    when = dt.datetime(2026, 11, 28, 15, 0, tzinfo=dt.timezone.utc)
    dagrun = load(mode).test(logical_date=when, run_after=when)
    assert str(dagrun.state) == "success"
    result = xcom_value(dagrun.dag_id, dagrun.run_id, "train")
    assert result["backend"] == "kubernetes"
    assert result["status"] == "Completed"
    assert result["model_artifact_uri"] == returned["model_artifact_uri"]
    assert result["final_metrics"] == {"auc": 0.9}
    # The pod ran the digest the tag pointed at, not the tag.
    assert result["image"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model@" + training_image
    assert result["soci"] == "v2"
    assert {pod["spec"]["containers"][0]["image"] for pod in pods} == {result["image"]}
    assert pods[0]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pods[0]["spec"]["activeDeadlineSeconds"] == 90
    assert result["data_interval"]["end"] is not None
    pods = [path for method, path in k8s.requests() if method == "POST" and path.endswith("/pods")]
    assert len(pods) == 1
    assert k8s.objects("pods") == []  # the succeeded pod was deleted


def test_missing_or_wrong_service_account_fails_before_any_pod(k8s):
    from lyftlearn_provider.operators.training import TrainModelOperator
    from tests.helpers import make_context

    operator = load("sync").get_task("train")
    assert isinstance(operator, TrainModelOperator)
    with pytest.raises(InvalidSpecError, match="does not exist.*eks.amazonaws.com/role-arn"):
        operator.execute(make_context())
    service_account(k8s, role="arn:aws:iam::123456789012:role/someone-else")
    with pytest.raises(InvalidSpecError, match="carries role .*someone-else, not the spec.s role"):
        operator.execute(make_context())
    assert not [path for method, path in k8s.requests() if method == "POST" and path.endswith("/pods")]


HARDENING = Path(__file__).resolve().parent / "dags" / "e2e_hardening.py"


@pytest.mark.usefixtures("guarded")
def test_a_failed_pod_is_followed_by_attempt_two_with_a_hardened_xcom_sidecar(k8s, training_image):
    # Bugs: the pod result reported the try number as its attempt and always adopted=False; the XCom
    # sidecar ran unhardened (privilege escalation, writable root file system, all capabilities).
    from airflow.dag_processing.dagbag import DagBag

    service_account(k8s)
    returned = {"model_artifact_uri": "s3://lyftlearn-models/fraud/pod/model.tar.gz", "metrics": {"auc": 0.8}}
    pods: list[dict] = []

    def first_attempt(pod: dict) -> bool:
        pods.append(pod)
        return not pod["metadata"]["name"].endswith("-a2")

    k8s.on_pod(PodBehavior(xcom=returned), predicate=lambda pod: pod["metadata"]["name"].endswith("-a2"))
    k8s.on_pod(PodBehavior(exit_code=1, logs=["diverged"]), predicate=first_attempt)
    dag = DagBag(dag_folder=str(HARDENING)).dags["lyftlearn_e2e_pod_retry"]
    when = dt.datetime(2026, 11, 28, 15, 0, tzinfo=dt.timezone.utc)
    dagrun = dag.test(logical_date=when, run_after=when)
    assert str(dagrun.state) == "success"
    result = xcom_value(dagrun.dag_id, dagrun.run_id, "train")
    assert (result["attempt"], result["adopted"]) == (2, False)
    assert result["job_name"].endswith("-a2")
    first = pods[0]
    assert first["metadata"]["labels"]["lyftlearn.io/attempt"] == "1"
    assert first["metadata"]["annotations"]["lyftlearn.io/image-reference"].endswith("/fraud-model:1")
    sidecars = [c for c in first["spec"]["containers"] if c["name"] == "airflow-xcom-sidecar"]
    assert sidecars, "the XCom sidecar is where the program's result comes from"
    for container in first["spec"]["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["capabilities"] == {"drop": ["ALL"]}
    assert first["spec"]["securityContext"]["runAsNonRoot"] is True
    # The failed attempt is kept (its events explain the failure), marked so nothing reattaches to it.
    (kept,) = k8s.objects("pods")
    assert kept["metadata"]["labels"]["already_checked"] == "True"


def test_deferral_timeout_deletes_the_pod_and_calls_no_sagemaker(k8s, aws, training_image):
    # Bug: on the kubernetes backend a deferral timeout called StopTrainingJob with the pod's name.
    from airflow.sdk.exceptions import TaskDeferralTimeout, TaskDeferred

    from lyftlearn_provider.operators.training import TrainModelOperator
    from tests.helpers import make_context

    service_account(k8s)
    k8s.on_pod(PodBehavior(run_seconds=None))  # trains until deleted
    operator = load("deferrable").get_task("train")
    assert isinstance(operator, TrainModelOperator)
    context = {**make_context(), "dag": None}
    with pytest.raises(TaskDeferred):
        operator.execute(context)
    assert [pod["metadata"]["name"] for pod in k8s.objects("pods")]
    fresh = load("deferrable").get_task("train")  # the worker that resumes is a new process
    with pytest.raises(TaskDeferralTimeout):
        fresh.resume_execution("__fail__", {"error": "Trigger timeout"}, context)
    deletes = [path for method, path in k8s.requests() if method == "DELETE" and "/pods/" in path]
    assert deletes
    assert aws.control.calls(service="sagemaker") == []


def pod_posts(k8s) -> int:
    return len([path for method, path in k8s.requests() if method == "POST" and path.endswith("/pods")])


def test_a_retry_adopts_the_running_pod_and_says_so(k8s, training_image):
    from airflow.sdk.exceptions import TaskDeferred

    from tests.helpers import StandInTaskInstance, make_context

    service_account(k8s)
    returned = {"model_artifact_uri": "s3://lyftlearn-models/fraud/pod/model.tar.gz", "metrics": {"auc": 0.7}}
    k8s.on_pod(PodBehavior(run_seconds=3, xcom=returned))
    with pytest.raises(TaskDeferred):
        load("deferrable").get_task("train").execute({**make_context(), "dag": None})
    # The worker that deferred died; the retry runs synchronously and finds the pod still training.
    retry = load("sync").get_task("train")
    retry.deferrable = False
    result = retry.execute({**make_context(StandInTaskInstance(try_number=2)), "dag": None})
    assert (result["attempt"], result["adopted"]) == (1, True)
    assert result["model_artifact_uri"] == returned["model_artifact_uri"]
    assert pod_posts(k8s) == 1


def test_fail_policy_applies_to_pods_too(k8s, training_image):
    from lyftlearn_provider.exceptions import TrainingPodError
    from tests.helpers import StandInTaskInstance, make_context

    service_account(k8s)
    k8s.on_pod(PodBehavior(exit_code=1, logs=["diverged"]))
    first = load("sync").get_task("train")
    with pytest.raises(TrainingPodError):
        first.execute({**make_context(), "dag": None})
    retry = load("sync").get_task("train")
    retry.if_job_failed = retry.if_job_failed.FAIL
    with pytest.raises(TrainingPodError, match="if_job_failed='fail'"):
        retry.execute({**make_context(StandInTaskInstance(try_number=2)), "dag": None})
    assert pod_posts(k8s) == 1


@pytest.mark.usefixtures("guarded")
def test_a_batch_spec_runs_as_a_pod_with_the_batch_contract(k8s, training_image):
    import json

    service_account(k8s)
    pods: list[dict] = []
    k8s.on_pod(PodBehavior(logs=["scored"], xcom={}), predicate=lambda pod: bool(pods.append(pod)) or True)
    when = dt.datetime(2026, 11, 28, tzinfo=dt.timezone.utc)
    dagrun = load("batch").test(logical_date=when, run_after=when)
    assert str(dagrun.state) == "success"
    result = xcom_value(dagrun.dag_id, dagrun.run_id, "score")
    assert (result["backend"], result["status"]) == ("kubernetes", "Completed")
    assert result["outputs"] == {"predictions": "s3://lyftlearn-predictions/fraud/2026-11-28/"}
    assert result["image"].endswith("@" + training_image)
    environment = {e["name"]: e.get("value") for e in pods[0]["spec"]["containers"][0]["env"]}
    assert environment["LYFTLEARN_RUNTIME"] == "batch"
    assert environment["LYFTLEARN_MODEL_URI"] == "s3://lyftlearn-models/fraud/run-1/model.tar.gz"
    assert json.loads(environment["LYFTLEARN_OUTPUT_URIS"]) == result["outputs"]
