"""RolloutTrigger against the Kubernetes emulator over HTTP (kubernetes_asyncio, the cncf async hook)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import time
from typing import Any

import pytest
from kubernetes import client
from kubernetes import config as kube_config

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.hooks.kubernetes import DeploymentHook
from lyftlearn_provider.rollouts import RolloutEvent, RolloutEventStatus
from lyftlearn_provider.testing.k8s import RolloutBehavior
from lyftlearn_provider.testing.k8s.cluster import EmulatedCluster
from lyftlearn_provider.triggers.rollout import RolloutTrigger

NS = "default"
POLL = 0.05
#: Generous: the machine is shared, and a test that hangs should fail rather than block the run.
RUN_TIMEOUT = 90.0
EVENT_KEYS = {"status", "namespace", "name", "summary", "reason", "message", "verdict"}


# ------------------------------------------------------------------------------------------ helpers
def manifest(name: str, image: str, replicas: int = 2, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
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


def image_patch(image: str) -> dict[str, Any]:
    return {"spec": {"template": {"spec": {"containers": [{"name": "server", "image": image}]}}}}


def make_trigger(name: str = "fraud", **kwargs: Any) -> RolloutTrigger:
    kwargs.setdefault("poll_interval", POLL)
    return RolloutTrigger(NS, name, **kwargs)


def revive(trigger: RolloutTrigger) -> RolloutTrigger:
    """Rebuild the trigger the way the triggerer does: from its serialized (JSON) form."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return cls(**json.loads(json.dumps(kwargs)))


async def collect(trigger: RolloutTrigger, timeout: float = RUN_TIMEOUT) -> list[dict[str, Any]]:
    """Run the trigger to its end and return every event's payload (fails instead of hanging)."""

    async def drain() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return await asyncio.wait_for(drain(), timeout)


async def only_event(trigger: RolloutTrigger, timeout: float = RUN_TIMEOUT) -> RolloutEvent:
    payloads = await collect(revive(trigger), timeout)
    assert len(payloads) == 1, payloads
    assert set(payloads[0]) == EVENT_KEYS
    json.dumps(payloads[0])
    return RolloutEvent.from_payload(payloads[0])


async def off_loop(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Make a blocking call (the emulator's handle, the sync hook) without stalling the trigger's loop."""
    return await asyncio.to_thread(call, *args, **kwargs)


async def serving_v1(k8s: EmulatedCluster, name: str = "fraud", **spec: Any) -> dict[str, Any]:
    """Create a Deployment and wait (on the trigger itself) until v1 serves; return it as read."""
    await off_loop(k8s.create, manifest(name, f"{name}:v1", **spec))
    event = await only_event(make_trigger(name))
    assert event.status is RolloutEventStatus.ROLLED_OUT, event
    deployment = await off_loop(DeploymentHook(conn_id=k8s.conn_id).read_deployment, NS, name)
    assert deployment is not None
    return deployment


async def patch_to(k8s: EmulatedCluster, deployment: dict[str, Any], image: str) -> int:
    """Patch the Deployment to ``image`` with a compare-and-swap; return the generation it produced."""
    hook = DeploymentHook(conn_id=k8s.conn_id)
    md = deployment["metadata"]
    patched = await off_loop(hook.patch_deployment, NS, md["name"], image_patch(image), md["resourceVersion"])
    return int(patched["metadata"]["generation"])


def reads_of(k8s: EmulatedCluster, name: str) -> int:
    return sum(1 for method, path in k8s.requests() if method == "GET" and f"/deployments/{name}" in path)


# ------------------------------------------------------------------------------------ serialization
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {
            "kubernetes_conn_id": "k8s_serving",
            "poll_interval": 2.5,
            "deadline": 1_900_000_000.5,
            "generation": 7,
        },
        {"kubernetes_conn_id": None, "deadline": None, "generation": None},
    ],
)
def test_serialize_round_trips_through_json(kwargs: dict[str, Any]) -> None:
    trigger = RolloutTrigger("serving", "fraud", **kwargs)
    classpath, serialized = trigger.serialize()
    assert classpath == "lyftlearn_provider.triggers.rollout.RolloutTrigger"
    # Exactly the __init__ arguments, as JSON primitives.
    assert set(serialized) == set(inspect.signature(RolloutTrigger.__init__).parameters) - {"self"}
    assert json.loads(json.dumps(serialized)) == serialized
    assert revive(trigger).serialize() == (classpath, serialized)
    for key, value in kwargs.items():
        assert serialized[key] == value


@pytest.mark.parametrize("interval", [0, -1.0])
def test_a_poll_interval_must_be_positive(interval: float) -> None:
    with pytest.raises(InvalidSpecError, match="poll_interval"):
        RolloutTrigger("serving", "fraud", poll_interval=interval)


# ------------------------------------------------------------------------------------------ outcomes
async def test_a_rollout_that_completes_fires_rolled_out(k8s: EmulatedCluster) -> None:
    deployment = await serving_v1(k8s, replicas=3)
    generation = await patch_to(k8s, deployment, "fraud:v2")
    event = await only_event(make_trigger(generation=generation))
    assert event.status is RolloutEventStatus.ROLLED_OUT
    assert (event.namespace, event.name, event.reason) == (NS, "fraud", None)
    assert event.summary.startswith(f"generation {generation} observed {generation}; updated 3/3, ready 3/3")
    assert event.verdict is not None and (event.verdict.ready, event.verdict.desired) == (3, 3)
    assert event.message.startswith("Deployment default/fraud rolled out after ")
    served = await off_loop(DeploymentHook(conn_id=k8s.conn_id).read_deployment, NS, "fraud")
    assert served["spec"]["template"]["spec"]["containers"][0]["image"] == "fraud:v2"
    assert served["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"


async def test_a_rollout_past_its_progress_deadline_fires_failed(k8s: EmulatedCluster) -> None:
    deployment = await serving_v1(k8s, replicas=2, progressDeadlineSeconds=1)
    await off_loop(k8s.on_rollout, "fraud", RolloutBehavior(failure="ErrImagePull"))
    generation = await patch_to(k8s, deployment, "fraud:v2")
    event = await only_event(make_trigger(generation=generation))
    assert event.status is RolloutEventStatus.FAILED
    assert event.reason == "ProgressDeadlineExceeded"
    assert "Progressing=False ProgressDeadlineExceeded" in event.summary
    assert event.verdict is not None and (event.verdict.updated, event.verdict.desired) == (1, 2)
    assert event.message.startswith("Deployment default/fraud failed to roll out after ")
    assert "ProgressDeadlineExceeded)" in event.message


async def test_the_deadline_passing_first_fires_timeout(k8s: EmulatedCluster) -> None:
    deployment = await serving_v1(k8s, replicas=2)
    await off_loop(k8s.on_rollout, "fraud", RolloutBehavior(failure="Unready"))
    generation = await patch_to(k8s, deployment, "fraud:v2")
    event = await only_event(make_trigger(generation=generation, deadline=time.time() + 1.5))
    assert event.status is RolloutEventStatus.TIMEOUT
    assert event.verdict is not None and event.verdict.state.value == "progressing"
    assert event.message.startswith("Deployment default/fraud did not become ready within ")
    assert "Progressing=True" in event.summary


async def test_a_paused_deployment_times_out_with_its_reason(k8s: EmulatedCluster) -> None:
    deployment = await serving_v1(k8s, replicas=1)
    hook = DeploymentHook(conn_id=k8s.conn_id)
    paused = await off_loop(
        hook.patch_deployment,
        NS,
        "fraud",
        {"spec": {"paused": True, **image_patch("fraud:v2")["spec"]}},
        deployment["metadata"]["resourceVersion"],
    )
    event = await only_event(
        make_trigger(generation=paused["metadata"]["generation"], deadline=time.time() + 1)
    )
    assert (event.status, event.reason) == (RolloutEventStatus.TIMEOUT, "DeploymentPaused")


async def test_a_deployment_deleted_while_rolling_out_fires_error(k8s: EmulatedCluster) -> None:
    deployment = await serving_v1(k8s, replicas=2)
    await off_loop(k8s.on_rollout, "fraud", RolloutBehavior(failure="ErrImagePull"))
    generation = await patch_to(k8s, deployment, "fraud:v2")
    reads_before = await off_loop(reads_of, k8s, "fraud")
    task = asyncio.ensure_future(only_event(make_trigger(generation=generation)))
    # Delete it once the trigger has seen it rolling out.
    while await off_loop(reads_of, k8s, "fraud") < reads_before + 2:
        assert not task.done(), task.result()
        await asyncio.sleep(0.02)
    api = kube_config.new_client_from_config(config_file=str(k8s.kubeconfig))
    try:
        await off_loop(client.AppsV1Api(api).delete_namespaced_deployment, "fraud", NS)
    finally:
        api.close()
    event = await asyncio.wait_for(task, RUN_TIMEOUT)
    assert (event.status, event.reason) == (RolloutEventStatus.ERROR, "NotFound")
    assert event.message.startswith("Deployment default/fraud no longer exists")
    # What it saw last is kept, for the task's message.
    assert event.verdict is not None and event.verdict.state.value == "progressing"


async def test_a_missing_deployment_and_a_recreated_one_fire_error(k8s: EmulatedCluster) -> None:
    missing = await only_event(make_trigger("nope"))
    assert (missing.status, missing.reason, missing.verdict) == (RolloutEventStatus.ERROR, "NotFound", None)
    await serving_v1(k8s, replicas=1)
    recreated = await only_event(make_trigger(generation=5))
    assert (recreated.status, recreated.reason) == (RolloutEventStatus.ERROR, "Recreated")
    assert "was recreated while rolling out (generation 1, the deploy wrote 5)" in recreated.message


# ----------------------------------------------------------------------------------------- failures
async def test_transient_api_errors_are_ridden_out(k8s: EmulatedCluster) -> None:
    await off_loop(k8s.create, manifest("fraud", "fraud:v1", replicas=2))
    path = "/deployments/fraud"
    for kind, count in (("throttle", 2), ("unavailable", 2), ("server_error", 1), ("gateway_timeout", 1)):
        await off_loop(k8s.inject_fault, kind, count, method="GET", path=path, retry_after=0)
    # aiohttp resends a GET once when its connection drops: four resets are two failed reads.
    await off_loop(k8s.inject_fault, "reset", 4, method="GET", path=path)
    event = await only_event(make_trigger())
    assert event.status is RolloutEventStatus.ROLLED_OUT, event
    assert await off_loop(k8s.faults) == []


async def test_throttling_honours_retry_after(k8s: EmulatedCluster) -> None:
    await serving_v1(k8s, replicas=1)
    await off_loop(k8s.inject_fault, "throttle", 1, method="GET", path="/deployments/fraud", retry_after=1)
    started = time.monotonic()
    event = await only_event(make_trigger())
    assert event.status is RolloutEventStatus.ROLLED_OUT
    # A lower bound only: however slow the machine, the trigger waited as long as it was asked to.
    assert time.monotonic() - started >= 1.0


async def test_an_api_server_that_never_answers_does_not_outlive_the_deadline(k8s: EmulatedCluster) -> None:
    await serving_v1(k8s, replicas=1)
    await off_loop(k8s.inject_fault, "delay", 3, method="GET", path="/deployments/fraud", seconds=120)
    event = await only_event(make_trigger(deadline=time.time() + 1), timeout=60)
    assert event.status is RolloutEventStatus.TIMEOUT
    assert event.verdict is None
    assert event.message == (
        "Deployment default/fraud: the deadline passed before its status could be read (last error: "
        "TimeoutError); check that the Kubernetes API is reachable from the triggerer."
    )


async def test_a_forbidden_read_fires_error_saying_which_permission(k8s: EmulatedCluster) -> None:
    await serving_v1(k8s, replicas=1)
    await off_loop(k8s.inject_fault, "forbidden", method="GET", path="/deployments/fraud")
    event = await only_event(make_trigger())
    assert (event.status, event.reason) == (RolloutEventStatus.ERROR, "Forbidden")
    assert event.message == (
        "could not follow the rollout of Deployment default/fraud: HTTP 403 Forbidden; allow the identity of "
        "connection 'kubernetes_default' to get deployments.apps in namespace default"
    )


async def test_an_unknown_connection_fires_error_with_the_deployment(k8s: EmulatedCluster) -> None:
    event = await only_event(make_trigger(kubernetes_conn_id="no_such_connection"))
    assert (event.status, event.reason) == (RolloutEventStatus.ERROR, "AirflowNotFoundException")
    assert event.message.startswith("could not follow the rollout of Deployment default/fraud: ")
    assert "no_such_connection" in event.message
