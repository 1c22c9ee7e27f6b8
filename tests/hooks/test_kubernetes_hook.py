"""DeploymentHook against the Kubernetes emulator over HTTP: compare-and-swap writes, rollback, pod events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
import urllib3
from kubernetes.client.exceptions import ApiException
from kubernetes_asyncio.client.exceptions import ApiException as AsyncApiException

from lyftlearn_provider.hooks.kubernetes import (
    DeploymentConflict,
    DeploymentHook,
    DeploymentNotFound,
    is_transient,
    retry_after,
)
from lyftlearn_provider.rollouts import RolloutState, revision_of, rollout_verdict
from lyftlearn_provider.testing.k8s import RolloutBehavior
from lyftlearn_provider.testing.k8s.cluster import EmulatedCluster

NS = "default"
MODEL = "lyftlearn.io/model"


def manifest(name: str, image: str, replicas: int = 2, model: str = "v1", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}, "annotations": {MODEL: model}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "server", "image": image}]},
            },
            **spec,
        },
    }


def image_patch(image: str, model: str) -> dict[str, Any]:
    return {
        "metadata": {"annotations": {MODEL: model}},
        "spec": {"template": {"spec": {"containers": [{"name": "server", "image": image}]}}},
    }


def image(deployment: dict[str, Any]) -> str:
    return str(deployment["spec"]["template"]["spec"]["containers"][0]["image"])


@pytest.fixture
def hook(k8s: EmulatedCluster) -> DeploymentHook:
    return DeploymentHook(conn_id=k8s.conn_id)


def rolled_out(hook: DeploymentHook, name: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        deployment = hook.read_deployment(NS, name)
        return (
            deployment
            if deployment and rollout_verdict(deployment).state is RolloutState.ROLLED_OUT
            else None
        )

    return check


def deploy(
    k8s: EmulatedCluster, hook: DeploymentHook, name: str, image: str, **kwargs: Any
) -> dict[str, Any]:
    k8s.create(manifest(name, image, **kwargs))
    return k8s.wait_for(rolled_out(hook, name), timeout=30, what=f"{name} rolled out")


# ------------------------------------------------------------------------------------------- reads
def test_read_returns_the_api_json_and_none_when_missing(k8s: EmulatedCluster, hook: DeploymentHook) -> None:
    deployment = deploy(k8s, hook, "fraud", "fraud:v1")
    # camelCase, as the API sends it: the pure rules read it as it is.
    assert deployment["status"]["observedGeneration"] == 1
    assert deployment["spec"]["progressDeadlineSeconds"] == 600
    assert deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert hook.read_deployment(NS, "nope") is None


def test_replica_sets_are_those_the_deployment_controls(k8s: EmulatedCluster, hook: DeploymentHook) -> None:
    deploy(k8s, hook, "fraud", "fraud:v1")
    # Another Deployment whose ReplicaSets match the first one's selector too.
    canary = manifest("fraud-canary", "fraud:canary", replicas=1)
    canary["spec"]["selector"]["matchLabels"] = {"app": "fraud", "track": "canary"}
    canary["spec"]["template"]["metadata"]["labels"] = {"app": "fraud", "track": "canary"}
    k8s.create(canary)
    k8s.wait_for(rolled_out(hook, "fraud-canary"), timeout=30)
    deployment = hook.read_deployment(NS, "fraud")
    assert deployment is not None
    hook.patch_deployment(
        NS, "fraud", image_patch("fraud:v2", "v2"), deployment["metadata"]["resourceVersion"]
    )
    deployment = k8s.wait_for(rolled_out(hook, "fraud"), timeout=30, what="v2 rolled out")
    sets = hook.replica_sets(NS, deployment)
    assert [(revision_of(rs), image(rs)) for rs in sets] == [(1, "fraud:v1"), (2, "fraud:v2")]


def throttled(client_error: type[Exception], after: str | None) -> Exception:
    error = client_error(status=429, reason="TooManyRequests")
    error.headers = {"Retry-After": after} if after is not None else None  # type: ignore[attr-defined]
    return error


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ApiException(status=503), True),
        (AsyncApiException(status=429), True),
        (AsyncApiException(status=504), True),
        (ApiException(status=409), False),
        (ApiException(status=404), False),
        (AsyncApiException(status=403), False),
        (urllib3.exceptions.ProtocolError("Connection aborted."), True),
        (aiohttp.ServerDisconnectedError(), True),
        (aiohttp.ClientPayloadError("cut off"), True),
        (TimeoutError(), True),
        (ValueError("bug"), False),
    ],
)
def test_what_is_worth_retrying(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_retry_after_is_read_from_throttling_answers_only() -> None:
    assert retry_after(throttled(ApiException, "3")) == 3.0
    assert retry_after(throttled(AsyncApiException, "1")) == 1.0
    assert retry_after(throttled(AsyncApiException, None)) is None
    assert retry_after(throttled(ApiException, "soon")) is None
    assert retry_after(ApiException(status=503)) is None


def test_reads_ride_out_throttling_and_5xx(k8s: EmulatedCluster, hook: DeploymentHook) -> None:
    deploy(k8s, hook, "fraud", "fraud:v1")
    k8s.inject_fault("unavailable", 2, method="GET", path="/deployments/fraud")
    k8s.inject_fault("throttle", 2, method="GET", path="/replicasets", retry_after=0)
    deployment = hook.read_deployment(NS, "fraud")
    assert deployment is not None and hook.replica_sets(NS, deployment)
    assert k8s.faults() == []


# ------------------------------------------------------------------------------- compare-and-swap
def test_a_stale_resource_version_raises_conflict_and_changes_nothing(
    k8s: EmulatedCluster, hook: DeploymentHook
) -> None:
    stale = deploy(k8s, hook, "fraud", "fraud:v1")
    # Someone else writes in between (a label: the spec and its generation stay as they are).
    hook.patch_deployment(
        NS, "fraud", {"metadata": {"labels": {"owner": "ml"}}}, stale["metadata"]["resourceVersion"]
    )
    before = hook.read_deployment(NS, "fraud")
    assert before is not None

    changed = {**stale, "spec": {**stale["spec"], "replicas": 5}}
    with pytest.raises(DeploymentConflict) as conflict:
        hook.replace_deployment(changed)
    assert (conflict.value.namespace, conflict.value.name) == (NS, "fraud")
    assert f"Deployment {NS}/fraud changed since it was read" in str(conflict.value)
    with pytest.raises(DeploymentConflict):
        hook.patch_deployment(
            NS, "fraud", image_patch("fraud:v2", "v2"), stale["metadata"]["resourceVersion"]
        )

    after = hook.read_deployment(NS, "fraud")
    assert after is not None
    assert (after["metadata"]["generation"], after["spec"]["replicas"], image(after)) == (1, 2, "fraud:v1")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    # With the current version, both writes go through.
    patched = hook.patch_deployment(
        NS, "fraud", image_patch("fraud:v2", "v2"), after["metadata"]["resourceVersion"]
    )
    assert (patched["metadata"]["generation"], image(patched)) == (2, "fraud:v2")
    # The controller's status updates move resourceVersion too: replace what is there once it settled.
    settled = k8s.wait_for(rolled_out(hook, "fraud"), timeout=30, what="v2 rolled out")
    replaced = hook.replace_deployment({**settled, "spec": {**settled["spec"], "replicas": 3}})
    assert (replaced["metadata"]["generation"], replaced["spec"]["replicas"]) == (3, 3)


def test_writes_refuse_a_body_without_resource_version_and_a_missing_deployment(
    k8s: EmulatedCluster, hook: DeploymentHook
) -> None:
    deployment = deploy(k8s, hook, "fraud", "fraud:v1", replicas=1)
    del deployment["metadata"]["resourceVersion"]
    with pytest.raises(ValueError, match="no metadata.resourceVersion"):
        hook.replace_deployment(deployment)
    with pytest.raises(DeploymentNotFound, match="Deployment default/nope does not exist"):
        hook.patch_deployment(NS, "nope", image_patch("x:v2", "v2"), "1")
    with pytest.raises(DeploymentNotFound):
        hook.roll_back(NS, "nope")


def test_a_write_whose_answer_was_lost_is_resent_and_meets_itself(
    k8s: EmulatedCluster, hook: DeploymentHook
) -> None:
    deployment = deploy(k8s, hook, "fraud", "fraud:v1", replicas=1)
    k8s.inject_fault("reset", method="PATCH", path="/deployments/fraud", after=True)
    # The client resends the write; the compare-and-swap refuses the copy: never applied twice.
    with pytest.raises(DeploymentConflict):
        hook.patch_deployment(
            NS, "fraud", image_patch("fraud:v2", "v2"), deployment["metadata"]["resourceVersion"]
        )
    landed = hook.read_deployment(NS, "fraud")
    assert landed is not None and (landed["metadata"]["generation"], image(landed)) == (2, "fraud:v2")


# ----------------------------------------------------------------------------------------- rollback
def deploy_failing_v2(k8s: EmulatedCluster, hook: DeploymentHook) -> tuple[dict[str, Any], int]:
    """Deploy v1, then v2 whose pods never come up; return the failed Deployment and its generation."""
    first = deploy(k8s, hook, "fraud", "fraud:v1", progressDeadlineSeconds=1)
    k8s.on_rollout("fraud", RolloutBehavior(failure="ErrImagePull"))
    patched = hook.patch_deployment(
        NS, "fraud", image_patch("fraud:v2", "v2"), first["metadata"]["resourceVersion"]
    )
    failed = k8s.wait_for(
        lambda: (
            (d := hook.read_deployment(NS, "fraud")) is not None
            and rollout_verdict(d).state is RolloutState.FAILED
            and d
        ),
        timeout=30,
        what="v2 failing with ProgressDeadlineExceeded",
    )
    return failed, int(patched["metadata"]["generation"])


def test_roll_back_after_a_failed_rollout_restores_the_previous_revision(
    k8s: EmulatedCluster, hook: DeploymentHook
) -> None:
    failed, generation = deploy_failing_v2(k8s, hook)
    assert rollout_verdict(failed).reason == "ProgressDeadlineExceeded"
    assert failed["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"

    written = hook.roll_back(NS, "fraud", expected_generation=generation)
    assert written is not None
    assert image(written) == "fraud:v1"
    # The annotations recorded with revision 1 come back with it, as with kubectl rollout undo.
    assert written["metadata"]["annotations"][MODEL] == "v1"

    restored = k8s.wait_for(rolled_out(hook, "fraud"), timeout=30, what="the rollback rolled out")
    assert restored["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert image(restored) == "fraud:v1"
    assert restored["metadata"]["generation"] == generation + 1
    sets = hook.replica_sets(NS, restored)
    # The v1 ReplicaSet was re-used and moved to revision 3.
    assert [(revision_of(rs), image(rs)) for rs in sets] == [(2, "fraud:v2"), (3, "fraud:v1")]
    assert sets[1]["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"

    # Undoing the same change again is refused: the generation moved on with our own rollback.
    with pytest.raises(DeploymentConflict, match="its spec changed"):
        hook.roll_back(NS, "fraud", expected_generation=generation)


def test_roll_back_without_an_earlier_revision_writes_nothing(
    k8s: EmulatedCluster, hook: DeploymentHook
) -> None:
    deploy(k8s, hook, "fraud", "fraud:v1", replicas=1)
    writes_before = [r for r in k8s.requests() if r[0] in ("PUT", "PATCH")]
    assert hook.roll_back(NS, "fraud") is None
    assert [r for r in k8s.requests() if r[0] in ("PUT", "PATCH")] == writes_before
    after = hook.read_deployment(NS, "fraud")
    assert after is not None and (after["metadata"]["generation"], image(after)) == (1, "fraud:v1")


class ConcurrentWriterHook(DeploymentHook):
    """A DeploymentHook that lets another writer in between the read and the write of its rollback."""

    def __init__(self, *args: Any, writer: Callable[[], None], times: int = 1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writer = writer
        self.times = times

    def replica_sets(self, namespace: str, deployment: dict[str, Any]) -> list[dict[str, Any]]:
        sets = super().replica_sets(namespace, deployment)
        if self.times:
            self.times -= 1
            self.writer()
        return sets


def test_roll_back_retries_when_only_metadata_or_status_moved(
    k8s: EmulatedCluster, hook: DeploymentHook
) -> None:
    _, generation = deploy_failing_v2(k8s, hook)
    labels = iter(range(100))

    def label_it() -> None:
        current = hook.read_deployment(NS, "fraud")
        assert current is not None
        hook.patch_deployment(
            NS,
            "fraud",
            {"metadata": {"labels": {"touched": str(next(labels))}}},
            current["metadata"]["resourceVersion"],
        )

    racing = ConcurrentWriterHook(conn_id=k8s.conn_id, writer=label_it, times=2)
    written = racing.roll_back(NS, "fraud", expected_generation=generation)
    assert written is not None and image(written) == "fraud:v1"
    assert written["metadata"]["labels"]["touched"] == "1", "both concurrent writes were kept"
    assert racing.times == 0


def test_roll_back_does_not_undo_someone_elses_deploy(k8s: EmulatedCluster, hook: DeploymentHook) -> None:
    _, generation = deploy_failing_v2(k8s, hook)

    def deploy_v3() -> None:
        current = hook.read_deployment(NS, "fraud")
        assert current is not None
        hook.patch_deployment(
            NS, "fraud", image_patch("fraud:v3", "v3"), current["metadata"]["resourceVersion"]
        )

    racing = ConcurrentWriterHook(conn_id=k8s.conn_id, writer=deploy_v3)
    with pytest.raises(DeploymentConflict, match=r"its spec changed \(generation 3, expected 2\)"):
        racing.roll_back(NS, "fraud")
    after = hook.read_deployment(NS, "fraud")
    assert after is not None and image(after) == "fraud:v3"


def test_roll_back_whose_answer_was_lost_reports_success(k8s: EmulatedCluster, hook: DeploymentHook) -> None:
    _, generation = deploy_failing_v2(k8s, hook)
    k8s.inject_fault("reset", method="PUT", path="/deployments/fraud", after=True)
    written = hook.roll_back(NS, "fraud", expected_generation=generation)
    assert written is not None and image(written) == "fraud:v1"
    assert written["metadata"]["generation"] == generation + 1, "rolled back once, not twice"


# --------------------------------------------------------------------------------------- pod events
def test_failing_pod_events_name_the_image_pull_error(k8s: EmulatedCluster, hook: DeploymentHook) -> None:
    first = deploy(k8s, hook, "fraud", "fraud:v1")
    assert hook.failing_pod_events(NS, first) == []
    k8s.fail_images_containing("broken")
    hook.patch_deployment(
        NS, "fraud", image_patch("fraud:broken-7", "v2"), first["metadata"]["resourceVersion"]
    )

    def pull_errors() -> list[str] | None:
        deployment = hook.read_deployment(NS, "fraud")
        assert deployment is not None
        lines = hook.failing_pod_events(NS, deployment)
        return lines if any("ErrImagePull" in line for line in lines) else None

    lines = k8s.wait_for(pull_errors, timeout=30, what="ErrImagePull among the new pods' warnings")
    deployment = hook.read_deployment(NS, "fraud")
    assert deployment is not None
    new_rs = next(rs for rs in hook.replica_sets(NS, deployment) if image(rs) == "fraud:broken-7")
    assert all(line.startswith(f"pod {new_rs['metadata']['name']}-") for line in lines), lines
    assert len(lines) <= 5
    assert any('Failed to pull image "fraud:broken-7"' in line for line in lines)
    assert len(hook.failing_pod_events(NS, deployment, limit=1)) == 1


def test_failing_pod_events_include_the_replicaset_that_cannot_create_pods(
    k8s: EmulatedCluster, hook: DeploymentHook
) -> None:
    broken = manifest("fraud", "fraud:v1", replicas=1)
    broken["spec"]["template"]["spec"]["serviceAccountName"] = "model-serving"
    k8s.create(broken)

    def failed_create() -> list[str] | None:
        deployment = hook.read_deployment(NS, "fraud")
        lines = hook.failing_pod_events(NS, deployment) if deployment else []
        return lines or None

    lines = k8s.wait_for(failed_create, timeout=30, what="FailedCreate on the ReplicaSet")
    # One line for the problem, however many pods the ReplicaSet tried to create.
    (line,) = lines
    assert line.startswith("replicaset fraud-")
    assert ": FailedCreate: Error creating: pods " in line
    assert 'serviceaccount "model-serving" not found' in line
