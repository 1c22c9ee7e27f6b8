"""Deployments through the official client: revision history, rollback, progress deadline, status."""

from __future__ import annotations

import time

import pytest
from k8s_test_helpers import deployment_manifest, rollout_complete
from kubernetes import client
from kubernetes.client.rest import ApiException

from lyftlearn_provider.testing.k8s import RolloutBehavior
from lyftlearn_provider.testing.k8s.cluster import EmulatedCluster

REVISION = "deployment.kubernetes.io/revision"


def _replicasets(apps: client.AppsV1Api, deployment: client.V1Deployment) -> dict[int, client.V1ReplicaSet]:
    """The Deployment's ReplicaSets by revision, found the way a client finds them: by its selector."""
    selector = ",".join(f"{k}={v}" for k, v in deployment.spec.selector.match_labels.items())
    listed = apps.list_namespaced_replica_set("default", label_selector=selector).items
    return {int(rs.metadata.annotations[REVISION]): rs for rs in listed}


def _set_image(apps: client.AppsV1Api, name: str, image: str) -> client.V1Deployment:
    patch = {"spec": {"template": {"spec": {"containers": [{"name": "server", "image": image}]}}}}
    return apps.patch_namespaced_deployment(name, "default", patch)


def _roll_back(apps: client.AppsV1Api, name: str) -> client.V1Deployment:
    """Roll back to the previous revision as `kubectl rollout undo` does, guarded by resourceVersion."""
    current = apps.read_namespaced_deployment(name, "default")
    revision = int(current.metadata.annotations[REVISION])
    previous = max(r for r in _replicasets(apps, current) if r < revision)
    template = apps.api_client.sanitize_for_serialization(_replicasets(apps, current)[previous].spec.template)
    del template["metadata"]["labels"]["pod-template-hash"]
    patch = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": current.metadata.resource_version},
        {"op": "replace", "path": "/spec/template", "value": template},
    ]
    return apps.patch_namespaced_deployment(name, "default", patch)


def _progressing(deployment: client.V1Deployment) -> client.V1DeploymentCondition:
    return next(c for c in deployment.status.conditions if c.type == "Progressing")


def test_rollout_history_and_rollback_through_replicasets(
    k8s: EmulatedCluster, apps: client.AppsV1Api
) -> None:
    created = apps.create_namespaced_deployment("default", deployment_manifest("ranker", "ranker:v1"))
    assert created.spec.strategy.rolling_update.max_surge == "25%"
    assert (created.spec.progress_deadline_seconds, created.spec.revision_history_limit) == (600, 10)
    first = k8s.wait_for(lambda: rollout_complete(apps, "ranker"), what="first rollout")
    assert first.metadata.annotations[REVISION] == "1"
    (rs1,) = _replicasets(apps, first).values()
    template_hash = rs1.metadata.labels["pod-template-hash"]
    assert rs1.metadata.name == f"ranker-{template_hash}"
    owner = rs1.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "Deployment",
        "ranker",
        first.metadata.uid,
        True,
    )
    assert rs1.spec.selector.match_labels == {"app": "ranker", "pod-template-hash": template_hash}
    pods = client.CoreV1Api(apps.api_client).list_namespaced_pod("default", label_selector="app=ranker").items
    assert len(pods) == 2 and all(p.metadata.owner_references[0].name == rs1.metadata.name for p in pods)
    assert all(p.metadata.labels["pod-template-hash"] == template_hash for p in pods)

    updated = _set_image(apps, "ranker", "ranker:v2")
    assert updated.metadata.generation == 2
    second = k8s.wait_for(lambda: rollout_complete(apps, "ranker"), what="second rollout")
    assert second.metadata.annotations[REVISION] == "2"
    history = _replicasets(apps, second)
    assert sorted(history) == [1, 2]
    assert (history[1].spec.replicas, history[2].spec.replicas) == (0, 2)
    assert history[2].spec.template.spec.containers[0].image == "ranker:v2"

    _roll_back(apps, "ranker")
    third = k8s.wait_for(lambda: rollout_complete(apps, "ranker"), what="rollback")
    history = _replicasets(apps, third)
    # The old ReplicaSet is re-used and moves to the newest revision, as Kubernetes does.
    assert sorted(history) == [2, 3]
    assert history[3].metadata.name == rs1.metadata.name
    assert history[3].metadata.annotations["deployment.kubernetes.io/revision-history"] == "1"
    assert (history[2].spec.replicas, history[3].spec.replicas) == (0, 2)
    assert third.metadata.annotations[REVISION] == "3"
    assert third.spec.template.spec.containers[0].image == "ranker:v1"
    assert third.status.observed_generation == third.metadata.generation == 3

    scaling = [e["message"] for e in k8s.events("ranker") if e["reason"] == "ScalingReplicaSet"]
    assert f"Scaled up replica set {rs1.metadata.name} from 0 to 2" in scaling
    assert f"Scaled down replica set {history[2].metadata.name} from 2 to 1" in scaling
    assert all(e["source"]["component"] == "deployment-controller" for e in k8s.events("ranker"))


def test_generation_moves_only_on_spec_changes_and_conflicts_are_refused(
    k8s: EmulatedCluster, apps: client.AppsV1Api
) -> None:
    apps.create_namespaced_deployment("default", deployment_manifest("gen", "gen:v1", replicas=1))
    ready = k8s.wait_for(lambda: rollout_complete(apps, "gen"))
    labelled = apps.patch_namespaced_deployment(
        "gen", "default", {"metadata": {"annotations": {"owner": "ml"}}}
    )
    assert labelled.metadata.generation == 1
    scaled = apps.patch_namespaced_deployment_scale("gen", "default", {"spec": {"replicas": 3}})
    assert scaled.spec.replicas == 3
    assert apps.read_namespaced_deployment("gen", "default").metadata.generation == 2
    k8s.wait_for(lambda: rollout_complete(apps, "gen"), what="scaled to 3")
    # A client that read the Deployment before those writes loses the compare-and-swap.
    stale_patch = {"metadata": {"resourceVersion": ready.metadata.resource_version}, "spec": {"replicas": 1}}
    with pytest.raises(ApiException) as conflict:
        apps.patch_namespaced_deployment("gen", "default", stale_patch)
    assert conflict.value.status == 409
    with pytest.raises(ApiException) as immutable:
        apps.patch_namespaced_deployment(
            "gen", "default", {"spec": {"selector": {"matchLabels": {"app": "x"}}}}
        )
    assert immutable.value.status == 422
    assert apps.read_namespaced_deployment_status("gen", "default").status.available_replicas == 3


def test_failed_rollout_reports_progress_deadline_exceeded_after_the_deadline(
    k8s: EmulatedCluster, apps: client.AppsV1Api
) -> None:
    manifest = deployment_manifest("scorer", "scorer:v1", replicas=2, progressDeadlineSeconds=2)
    apps.create_namespaced_deployment("default", manifest)
    k8s.wait_for(lambda: rollout_complete(apps, "scorer"))
    k8s.on_rollout("scorer", RolloutBehavior(failure="ErrImagePull"))

    patched_at = time.monotonic()
    _set_image(apps, "scorer", "scorer:v2")
    rolling = k8s.wait_for(
        lambda: (
            (d := apps.read_namespaced_deployment("scorer", "default")).status.updated_replicas == 1 and d
        ),
        what="the new ReplicaSet scaled up",
    )
    assert _progressing(rolling).status == "True"
    assert _progressing(rolling).reason in ("NewReplicaSetCreated", "ReplicaSetUpdated")

    stalled = k8s.wait_for(
        lambda: (
            _progressing(d := apps.read_namespaced_deployment("scorer", "default")).status == "False" and d
        ),
        timeout=10,
        what="ProgressDeadlineExceeded",
    )
    assert time.monotonic() - patched_at >= 1.5, (
        "the deadline must pass first: a real rollout is not failed at once"
    )
    progressing = _progressing(stalled)
    history = _replicasets(apps, stalled)
    assert progressing.reason == "ProgressDeadlineExceeded"
    assert progressing.message == f'ReplicaSet "{history[2].metadata.name}" has timed out progressing.'
    # The old ReplicaSet keeps serving; the new one never becomes available.
    status = stalled.status
    assert (status.replicas, status.updated_replicas, status.available_replicas) == (3, 1, 2)
    assert (status.ready_replicas, status.unavailable_replicas) == (2, 1)
    available = next(c for c in status.conditions if c.type == "Available")
    assert (available.status, available.reason) == ("True", "MinimumReplicasAvailable")
    assert (history[1].status.available_replicas, history[2].status.available_replicas) == (2, None)

    new_pod = (
        client.CoreV1Api(apps.api_client)
        .list_namespaced_pod(
            "default", label_selector=f"pod-template-hash={history[2].metadata.labels['pod-template-hash']}"
        )
        .items[0]
    )
    pod_events = {e["reason"] for e in k8s.events(new_pod.metadata.name)}
    assert {"Scheduled", "Failed", "BackOff"} <= pod_events

    _roll_back(apps, "scorer")
    recovered = k8s.wait_for(lambda: rollout_complete(apps, "scorer"), what="rollback after the failure")
    assert recovered.spec.template.spec.containers[0].image == "scorer:v1"
    assert _replicasets(apps, recovered)[3].metadata.name == history[1].metadata.name


def test_revision_history_limit_and_cascading_delete(k8s: EmulatedCluster, apps: client.AppsV1Api) -> None:
    manifest = deployment_manifest("hist", "hist:v1", replicas=1, revisionHistoryLimit=1)
    apps.create_namespaced_deployment("default", manifest)
    k8s.wait_for(lambda: rollout_complete(apps, "hist"))
    for version in ("v2", "v3"):
        _set_image(apps, "hist", f"hist:{version}")
        k8s.wait_for(lambda: rollout_complete(apps, "hist"), what=f"rollout of {version}")
    latest = k8s.wait_for(
        lambda: len(_replicasets(apps, d := apps.read_namespaced_deployment("hist", "default"))) == 2 and d,
        what="the oldest ReplicaSet cleaned up",
    )
    assert sorted(_replicasets(apps, latest)) == [2, 3]

    apps.delete_namespaced_deployment("hist", "default")
    assert apps.list_namespaced_replica_set("default", label_selector="app=hist").items == []
    assert k8s.objects("pods", label_selector="app=hist") == []


def test_recreate_strategy_and_missing_service_account(k8s: EmulatedCluster, apps: client.AppsV1Api) -> None:
    manifest = deployment_manifest("batch", "batch:v1", replicas=2, strategy={"type": "Recreate"})
    apps.create_namespaced_deployment("default", manifest)
    k8s.wait_for(lambda: rollout_complete(apps, "batch"))
    _set_image(apps, "batch", "batch:v2")
    k8s.wait_for(lambda: rollout_complete(apps, "batch"), what="recreate rollout")
    scaling = [e["message"] for e in k8s.events("batch") if e["reason"] == "ScalingReplicaSet"]
    # Recreate scales the old ReplicaSet to zero before the new one comes up.
    assert [m.split(" from ")[1] for m in scaling] == ["0 to 2", "2 to 0", "0 to 2"]

    broken = deployment_manifest("needs-sa", "x:v1", replicas=1)
    broken["spec"]["template"]["spec"]["serviceAccountName"] = "model-serving"
    apps.create_namespaced_deployment("default", broken)
    failed_create = k8s.wait_for(
        lambda: next((e for e in k8s.objects("events") if e["reason"] == "FailedCreate"), None),
        what="FailedCreate on the ReplicaSet",
    )
    assert failed_create["involvedObject"]["kind"] == "ReplicaSet"
    assert 'serviceaccount "model-serving" not found' in failed_create["message"]
