"""DeployModelOperator against the Kubernetes emulator over HTTP: rollouts, rollbacks, the guards (R6, R7)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from airflow.sdk.exceptions import AirflowSkipException

from lyftlearn_provider import DeployModelOperator, ModelGate, ResourceProfile, RuntimeSpec
from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.operators.deployment import (
    DEFAULT_DEFER_AFTER_SECONDS,
    STATE_XCOM_KEY,
    DeployError,
)
from lyftlearn_provider.testing.k8s import PodBehavior, RolloutBehavior
from tests.helpers import StandInTaskInstance, make_context

REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model"
ROLE = "arn:aws:iam::123456789012:role/lyftlearn-fraud"
OLD = REPO + "@sha256:" + "0" * 64
SPEC = RuntimeSpec(
    image=REPO + ":1",
    role_arn=ROLE,
    output_s3_uri="s3://lyftlearn-models/fraud",
    environment={"MODEL_NAME": "fraud"},
    secrets={"DB_PASSWORD": "prod/fraud/db-password"},
    resources=ResourceProfile(instance_type="ml.m5.xlarge"),
)


def trained(digit: str, end: str, auc: float = 0.91) -> dict[str, Any]:
    """Return a training result as TrainModelOperator returns it."""
    return {
        "backend": "sagemaker",
        "job_name": f"ll-retrain-train-{digit * 10}",
        "image": REPO + "@sha256:" + digit * 64,
        "model_artifact_uri": f"s3://lyftlearn-models/fraud/{digit}/output/model.tar.gz",
        "final_metrics": {"validation:auc": auc},
        "data_interval": {"start": None, "end": end},
        "ended_at": end,
    }


MODEL_A = trained("a", "2026-11-28T15:00:00+00:00")
MODEL_B = trained("b", "2026-11-28T16:00:00+00:00")


@pytest.fixture
def serving(k8s) -> dict[str, Any]:
    """A serving Deployment (2 replicas) with its IRSA service account, rolled out on an old image."""
    k8s.create(
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": "fraud-serving", "annotations": {"eks.amazonaws.com/role-arn": ROLE}},
        }
    )
    deployment = k8s.create(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "fraud", "labels": {"app": "fraud"}},
            "spec": {
                "replicas": 2,
                "progressDeadlineSeconds": 3,
                "selector": {"matchLabels": {"app": "fraud"}},
                "template": {
                    "metadata": {"labels": {"app": "fraud"}},
                    "spec": {
                        "serviceAccountName": "fraud-serving",
                        "containers": [
                            {
                                "name": "server",
                                "image": OLD,
                                "env": [{"name": "PORT", "value": "8080"}],
                                "ports": [{"containerPort": 8080}],
                            }
                        ],
                    },
                },
            },
        }
    )
    k8s.wait_for(lambda: rolled_out(k8s), timeout=60, what="the first rollout")
    return deployment


def rolled_out(k8s) -> bool:
    status = (k8s.get("Deployment", "fraud") or {}).get("status") or {}
    return status.get("availableReplicas") == 2 and status.get("updatedReplicas") == 2


def deploy(result: dict[str, Any] | None = None, **kwargs: Any) -> DeployModelOperator:
    values: dict[str, Any] = {
        "task_id": "deploy",
        "spec": SPEC,
        "training_result": result,
        "namespace": "default",
        "deployment": "fraud",
        "container": "server",
        "poll_interval": 0.2,
        "rollout_timeout_seconds": 60,
    }
    values.update(kwargs)
    return DeployModelOperator(**values)


def run(
    operator: DeployModelOperator, run_id: str = "scheduled__2026-11-28T15:00:00+00:00"
) -> dict[str, Any]:
    # KubernetesPodOperator (pod mode) reads the context's "dag"; Airflow's contexts always have one.
    return operator.execute(
        {**make_context(StandInTaskInstance(task_id="deploy", run_id=run_id)), "dag": None}
    )


def writes(k8s) -> int:
    return len(
        [1 for method, path in k8s.requests() if method in ("PUT", "PATCH") and "/deployments/" in path]
    )


def container(k8s) -> dict[str, Any]:
    return k8s.get("Deployment", "fraud")["spec"]["template"]["spec"]["containers"][0]


def test_a_model_rolls_out_with_the_serving_contract_and_its_record(k8s, serving):
    result = run(deploy(MODEL_A))
    assert result["status"] == "deployed"
    assert (result["model_uri"], result["image"]) == (MODEL_A["model_artifact_uri"], MODEL_A["image"])
    assert result["previous"] is None  # nothing of ours served before
    assert "ready 2/2" in result["rollout"] or "2/2" in result["rollout"]
    server = container(k8s)
    assert server["image"] == MODEL_A["image"]
    env = {entry["name"]: entry["value"] for entry in server["env"]}
    assert env["PORT"] == "8080" and server["ports"] == [{"containerPort": 8080}]  # the team's own stay
    assert env["LYFTLEARN_RUNTIME"] == "serving"
    assert env["LYFTLEARN_MODEL_URI"] == MODEL_A["model_artifact_uri"]
    assert env["LYFTLEARN_SECRETS"] == '{"DB_PASSWORD":"prod/fraud/db-password"}'  # a reference, not a value
    deployment = k8s.get("Deployment", "fraud")
    for recorded in (
        deployment["metadata"]["annotations"],
        deployment["spec"]["template"]["metadata"]["annotations"],
    ):
        assert recorded["lyftlearn.io/model-uri"] == MODEL_A["model_artifact_uri"]
        assert recorded["lyftlearn.io/training-job"] == MODEL_A["job_name"]
        assert recorded["lyftlearn.io/data-interval-end"] == MODEL_A["data_interval"]["end"]
    assert rolled_out(k8s)


def test_deploying_what_already_serves_is_a_no_op_that_succeeds(k8s, serving):
    run(deploy(MODEL_A))
    before = writes(k8s)
    assert run(deploy(MODEL_A), run_id="manual__again")["status"] == "already_serving"
    assert writes(k8s) == before


def test_a_backfill_never_rolls_serving_back_to_older_data(k8s, serving):
    run(deploy(MODEL_B))
    context = make_context(
        StandInTaskInstance(task_id="deploy", run_id="backfill__2026-11-28T15:00:00+00:00")
    )
    with pytest.raises(AirflowSkipException, match="newer than this run's"):
        deploy(MODEL_A).execute(context)
    assert context["ti"].xcom["return_value"]["status"] == "skipped"
    assert "2026-11-28T16:00:00+00:00" in context["ti"].xcom["return_value"]["reason"]
    assert container(k8s)["image"] == MODEL_B["image"]


def test_a_model_that_misses_the_gate_is_skipped_with_the_reason(k8s, serving):
    context = make_context(StandInTaskInstance(task_id="deploy"))
    with pytest.raises(AirflowSkipException, match="below the gate's 0.95"):
        deploy(MODEL_A, gate=ModelGate(at_least={"validation:auc": 0.95})).execute(context)
    assert "below the gate's 0.95" in context["ti"].xcom["return_value"]["reason"]
    assert container(k8s)["image"] == OLD


def test_a_failing_rollout_is_rolled_back_and_the_task_says_what_it_saw(k8s, serving):
    run(deploy(MODEL_A))
    k8s.fail_images_containing("b" * 64)  # model B's image cannot be pulled
    with pytest.raises(DeployError) as raised:
        run(deploy(MODEL_B), run_id="scheduled__2026-11-28T16:00:00+00:00")
    assert_rolled_back_to_model_a(k8s, str(raised.value))


def assert_rolled_back_to_model_a(k8s, message: str) -> None:
    """Model B's rollout failed, the task said what it saw, and model A serves again (revision 4)."""
    assert "default/fraud" in message
    assert "ProgressDeadlineExceeded" in message
    assert "ErrImagePull" in message  # the failing pods' events
    assert "Rolled back" in message and MODEL_A["model_artifact_uri"] in message
    deployment = k8s.get("Deployment", "fraud")
    assert container(k8s)["image"] == MODEL_A["image"]
    assert (
        deployment["spec"]["template"]["metadata"]["annotations"]["lyftlearn.io/model-uri"]
        == (MODEL_A["model_artifact_uri"])
    )
    # Revisions: 1 the old image, 2 model A, 3 model B; the rollback makes A's ReplicaSet revision 4.
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "4"
    k8s.wait_for(lambda: rolled_out(k8s), timeout=60, what="the rollback's rollout")


# ---------------------------------------------------------------- deferrable: defer only while it goes on
def settle_before_the_first_look(k8s, operator: DeployModelOperator, ended: Any) -> None:
    """Make the operator's first Deployment write return only once ``ended(deployment)`` holds.

    The rollout is then over by the time the task first looks at it, as for a fast rollout (or one
    the controller finished while the task was between its write and its look). Later writes (a
    rollback) are left alone.
    """
    real_replace = operator.hook.replace_deployment

    def replace_then_settle(body: dict[str, Any]) -> dict[str, Any]:
        operator.hook.replace_deployment = real_replace  # type: ignore[method-assign]
        written = real_replace(body)
        generation = written["metadata"]["generation"]

        def settled() -> bool:
            deployment = k8s.get("Deployment", "fraud")
            status = deployment.get("status") or {}
            return status.get("observedGeneration", 0) >= generation and ended(deployment)

        k8s.wait_for(settled, timeout=60, what="the rollout to end before the task looks")
        return written

    operator.hook.replace_deployment = replace_then_settle  # type: ignore[method-assign]


def all_updated_and_available(deployment: dict[str, Any]) -> bool:
    status = deployment.get("status") or {}
    return status.get("updatedReplicas") == status.get("availableReplicas") == status.get("replicas") == 2


def progress_deadline_exceeded(deployment: dict[str, Any]) -> bool:
    conditions = (deployment.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Progressing" and c.get("status") == "False" for c in conditions)


def follow_the_trigger(deferred: Any) -> dict[str, Any]:
    """Run the trigger the task deferred on, as the triggerer would; return its one event's payload."""
    import asyncio

    from lyftlearn_provider.triggers.rollout import RolloutTrigger

    trigger = deferred.trigger
    assert isinstance(trigger, RolloutTrigger)
    assert deferred.method_name == "execute_complete"

    async def drain() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    (payload,) = asyncio.run(asyncio.wait_for(drain(), 90))
    return payload


def deferring(run_id: str = "scheduled__2026-11-28T15:00:00+00:00") -> dict[str, Any]:
    return {**make_context(StandInTaskInstance(task_id="deploy", run_id=run_id)), "dag": None}


def test_a_rollout_over_at_the_first_look_concludes_without_deferring(k8s, serving):
    operator = deploy(MODEL_A, deferrable=True, defer_after_seconds=0)  # the first look only
    settle_before_the_first_look(k8s, operator, all_updated_and_available)
    context = deferring()
    result = operator.execute(context)  # raises TaskDeferred if it deferred
    assert result["status"] == "deployed"
    assert "ready 2/2" in result["rollout"]
    assert container(k8s)["image"] == MODEL_A["image"]
    assert STATE_XCOM_KEY not in context["ti"].xcom  # nothing to resume: no state kept


def test_deploying_what_already_serves_concludes_without_deferring(k8s, serving):
    run(deploy(MODEL_A))
    before = writes(k8s)
    result = run(deploy(MODEL_A, deferrable=True, defer_after_seconds=0), run_id="manual__again")
    assert result["status"] == "already_serving"
    assert "ready 2/2" in result["rollout"]
    assert writes(k8s) == before


def test_a_rollout_that_ends_within_defer_after_seconds_concludes_without_deferring(k8s, serving):
    # The emulator's pods are ready 0.1 s after they are bound: a rollout of well under a second.
    started = time.monotonic()
    result = run(deploy(MODEL_A, deferrable=True))  # raises TaskDeferred if it deferred
    assert result["status"] == "deployed"
    assert time.monotonic() - started < DEFAULT_DEFER_AFTER_SECONDS
    assert container(k8s)["image"] == MODEL_A["image"]


def test_a_rollout_still_going_after_defer_after_seconds_defers_and_ends_through_the_trigger(k8s, serving):
    from airflow.sdk.exceptions import TaskDeferred

    k8s.on_rollout("fraud", RolloutBehavior(ready_delay=1.5))  # still going when the task defers
    context = deferring()
    started = time.monotonic()
    with pytest.raises(TaskDeferred) as deferred:
        deploy(MODEL_A, deferrable=True, defer_after_seconds=0.3).execute(context)
    assert time.monotonic() - started < 1.5
    assert context["ti"].xcom[STATE_XCOM_KEY]["generation"] == deferred.value.trigger.generation
    event = follow_the_trigger(deferred.value)
    assert event["status"] == "rolled_out"
    result = deploy(MODEL_A, deferrable=True).execute_complete(context, event)  # a fresh worker resumes
    assert result["status"] == "deployed"
    assert "ready 2/2" in result["rollout"]
    assert container(k8s)["image"] == MODEL_A["image"]


@pytest.mark.parametrize("verdict_from", ["the first look", "the worker's first seconds", "the trigger"])
def test_a_failed_rollout_rolls_back_alike_whether_final_at_the_first_look_or_from_the_trigger(
    k8s, serving, verdict_from
):
    from airflow.sdk.exceptions import TaskDeferred

    run(deploy(MODEL_A))
    k8s.fail_images_containing("b" * 64)  # model B's image cannot be pulled
    # The fixture's Deployment gives up after 3 s (progressDeadlineSeconds): within the default 5 s.
    within = 5 if verdict_from == "the worker's first seconds" else 0
    operator = deploy(MODEL_B, deferrable=True, defer_after_seconds=within)
    context = deferring("scheduled__2026-11-28T16:00:00+00:00")
    if verdict_from == "the trigger":
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute(context)
        event = follow_the_trigger(deferred.value)
        assert event["status"] == "failed"
        with pytest.raises(DeployError) as raised:
            deploy(MODEL_B, deferrable=True).execute_complete(context, event)
    else:
        if verdict_from == "the first look":
            settle_before_the_first_look(k8s, operator, progress_deadline_exceeded)
        with pytest.raises(DeployError) as raised:
            operator.execute(context)  # concluded in execute: no TaskDeferred
        assert STATE_XCOM_KEY not in context["ti"].xcom
    assert_rolled_back_to_model_a(k8s, str(raised.value))


def test_two_concurrent_deploys_never_interleave_and_the_newest_model_serves(k8s, serving):
    outcomes: dict[str, Any] = {}

    def attempt(name: str, result: dict[str, Any], run_id: str) -> None:
        try:
            outcomes[name] = run(deploy(result), run_id=run_id)["status"]
        except AirflowSkipException as skipped:
            outcomes[name] = f"skipped: {skipped}"

    threads = [
        threading.Thread(target=attempt, args=("older", MODEL_A, "backfill__2026-11-28T15:00:00+00:00")),
        threading.Thread(target=attempt, args=("newer", MODEL_B, "scheduled__2026-11-28T16:00:00+00:00")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert outcomes["newer"] in ("deployed", "already_serving")
    assert outcomes["older"] == "deployed" or "newer than this run's" in outcomes["older"]
    assert container(k8s)["image"] == MODEL_B["image"]
    annotations = k8s.get("Deployment", "fraud")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["lyftlearn.io/model-uri"] == MODEL_B["model_artifact_uri"]


def test_pod_mode_runs_the_teams_deploy_image_under_the_same_guards(k8s, serving):
    from kubernetes import client
    from kubernetes import config as kube_config

    api = client.AppsV1Api(kube_config.new_client_from_config(config_file=str(k8s.kubeconfig)))

    def the_tool(pod: dict[str, Any]) -> bool:
        """Stand in for Helm: set the image it was handed, as a team's tooling would."""
        env = {entry["name"]: entry["value"] for entry in pod["spec"]["containers"][0].get("env", [])}
        if "LYFTLEARN_DEPLOY_IMAGE" not in env:
            return False
        patch = {
            "spec": {
                "template": {
                    "spec": {"containers": [{"name": "server", "image": env["LYFTLEARN_DEPLOY_IMAGE"]}]}
                }
            }
        }
        # From another thread: the emulator asks this predicate while it serves the pod's start.
        threading.Thread(
            target=api.patch_namespaced_deployment,
            args=(env["LYFTLEARN_DEPLOY_DEPLOYMENT"], "default", patch),
        ).start()
        return True

    k8s.on_pod(PodBehavior(logs=["helm upgrade ... done"]), predicate=the_tool)
    operator = deploy(
        MODEL_A, mode="pod", deploy_image="alpine/helm:3.16.2", deploy_service_account_name="fraud-serving"
    )
    result = run(operator)
    assert result["status"] == "deployed"
    deployment = k8s.get("Deployment", "fraud")
    assert container(k8s)["image"] == MODEL_A["image"]
    assert deployment["metadata"]["annotations"]["lyftlearn.io/model-uri"] == MODEL_A["model_artifact_uri"]
    assert "lyftlearn.io/deploy-lease" not in deployment["metadata"]["annotations"]
    # The same guards: a second, older model is not handed to the tool at all.
    with pytest.raises(AirflowSkipException, match="newer than this run's"):
        run(deploy(trained("c", "2026-11-28T14:00:00+00:00"), mode="pod", deploy_image="alpine/helm:3.16.2"))


@pytest.mark.parametrize(
    ("kwargs", "field", "problem"),
    [
        ({"deployment": "no-such"}, "deployment", "does not exist"),
        ({"namespace": "nowhere"}, "deployment", "does not exist"),
        ({"container": "model"}, "container", "has no container 'model'"),
        (
            {"training_result": {**MODEL_A, "model_artifact_uri": None}},
            "training_result",
            "has no 'model_artifact_uri'",
        ),
        (
            {"spec": RuntimeSpec(**{**vars(SPEC), "role_arn": "arn:aws:iam::123456789012:role/other"})},
            "spec.role_arn",
            "not the spec's role",
        ),
    ],
)
def test_bad_input_fails_before_the_deployment_is_touched(k8s, serving, kwargs, field, problem):
    before = writes(k8s)
    with pytest.raises(InvalidSpecError) as raised:
        run(deploy(**{"result": MODEL_A, **kwargs}) if "training_result" not in kwargs else deploy(**kwargs))
    assert raised.value.field == field
    assert problem in raised.value.problem
    assert writes(k8s) == before


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"training_result": None}, "training_result"),
        ({"training_result": None, "image": REPO + ":1", "model_uri": "s3://m/model.tar.gz"}, "image"),
        ({"namespace": "Serving_NS"}, "namespace"),
        ({"mode": "helm"}, "mode"),
        ({"mode": "pod"}, "deploy_image"),
        ({"gate": {"auc": 0.9}}, "gate"),
        ({"defer_after_seconds": -1}, "defer_after_seconds"),
        ({"defer_after_seconds": "5"}, "defer_after_seconds"),
        # Not checked at parse time before (only when the deploy pod was rendered), and silently ignored
        # in patch mode, where the task itself writes the Deployment.
        (
            {"mode": "pod", "deploy_image": "alpine/helm:3.16.2", "deploy_service_account_name": "Deployer"},
            "deploy_service_account_name",
        ),
        ({"deploy_service_account_name": "fraud-deployer"}, "deploy_service_account_name"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, field):
    with pytest.raises(InvalidSpecError) as raised:
        deploy(**{"result": MODEL_A, **kwargs}) if "training_result" not in kwargs else deploy(**kwargs)
    assert raised.value.field == field


def test_a_value_airflow_masks_never_reaches_the_deployment(k8s, serving):
    # R7: a sensitive Variable templated into the serving environment would sit in the pod template.
    from airflow.sdk.log import mask_secret

    mask_secret("hunter2-very-secret")
    leaky = RuntimeSpec(**{**vars(SPEC), "environment": {"API_TOKEN": "hunter2-very-secret"}})
    before = writes(k8s)
    with pytest.raises(InvalidSpecError) as raised:
        run(deploy(MODEL_A, spec=leaky))
    assert raised.value.field == "spec.environment['API_TOKEN']"
    assert "hunter2" not in str(raised.value)
    assert writes(k8s) == before
    assert "hunter2" not in str(k8s.get("Deployment", "fraud"))


def test_a_lost_compare_and_swap_reads_again_and_decides_again(k8s, serving):
    # Another deploy lands between this task's read and its write: the write meets 409, the task reads
    # the Deployment again and decides on what serves now — here, a newer model: it skips.
    run(deploy(MODEL_A))
    racing = deploy(trained("9", "2026-11-28T15:30:00+00:00"))
    real_replace = racing.hook.replace_deployment
    raced: list[str] = []

    def replace_after_a_rival(body: dict[str, Any]) -> dict[str, Any]:
        if not raced:
            raced.append(run(deploy(MODEL_B), run_id="scheduled__2026-11-28T16:00:00+00:00")["status"])
        return real_replace(body)  # still carries the resourceVersion it read: the cluster answers 409

    racing.hook.replace_deployment = replace_after_a_rival  # type: ignore[method-assign]
    with pytest.raises(AirflowSkipException, match="newer than this run's"):
        run(racing, run_id="scheduled__2026-11-28T15:30:00+00:00")
    assert raced == ["deployed"]
    assert container(k8s)["image"] == MODEL_B["image"]


def test_the_deployment_link_follows_the_configured_console(monkeypatch):
    from lyftlearn_provider.links.kubernetes import deployment_url

    template = "https://k8s.example.com/#/deployment/{namespace}/{name}"
    assert (
        deployment_url(template, "ml-serving", "fraud")
        == "https://k8s.example.com/#/deployment/ml-serving/fraud"
    )
    assert deployment_url("https://k8s.example.com/{cluster}", "ml", "fraud") == ""  # an unknown field
    assert DeployModelOperator.operator_extra_links[0].name == "Serving Deployment"


def test_a_rollout_timeout_within_defer_after_seconds_rolls_back_in_the_same_try(k8s, serving):
    # rollout_timeout_seconds ends the rollout before defer_after_seconds does: the worker's looks must
    # conclude "timeout" (and roll back) rather than defer a wait whose deadline already passed.
    run(deploy(MODEL_A))
    k8s.fail_images_containing("b" * 64)
    context = deferring("scheduled__2026-11-28T16:00:00+00:00")
    with pytest.raises(DeployError) as raised:
        deploy(MODEL_B, deferrable=True, rollout_timeout_seconds=1, defer_after_seconds=5).execute(context)
    message = str(raised.value)
    assert "did not become ready within 1 s" in message
    assert "Rolled back" in message and MODEL_A["model_artifact_uri"] in message
    assert STATE_XCOM_KEY not in context["ti"].xcom
    assert container(k8s)["image"] == MODEL_A["image"]
