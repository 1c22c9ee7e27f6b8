"""The official ``kubernetes`` client against the emulator, over HTTP: core API behaviour."""

from __future__ import annotations

import json
import re

import pytest
from k8s_test_helpers import pod_manifest
from kubernetes import client, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from lyftlearn_provider.testing.k8s import (
    EmulatorServer,
    ExecRequest,
    ExecResult,
    KubernetesEmulator,
    PodBehavior,
)
from lyftlearn_provider.testing.k8s.cluster import EmulatedCluster


def _status(error: ApiException) -> dict:
    return json.loads(error.body)


def _log(core: client.CoreV1Api, name: str, **params: object) -> str:
    # The client's own decoding of text responses is broken (it returns "b'...'"); read the raw body.
    return core.read_namespaced_pod_log(name, "default", _preload_content=False, **params).data.decode()


def _phase(core: client.CoreV1Api, name: str) -> str:
    return core.read_namespaced_pod(name, "default").status.phase


def test_discovery_and_version(api_client: client.ApiClient) -> None:
    assert client.VersionApi(api_client).get_code().git_version == "v1.32.0"
    groups = client.ApisApi(api_client).get_api_versions()
    assert "apps" in [g.name for g in groups.groups]
    resources = {r.name for r in client.AppsV1Api(api_client).get_api_resources().resources}
    assert {"deployments", "deployments/scale", "replicasets"} <= resources
    core_resources = {r.name for r in client.CoreV1Api(api_client).get_api_resources().resources}
    assert {"pods", "pods/log", "pods/exec", "events", "serviceaccounts"} <= core_resources


def test_crud_generate_name_and_errors(core: client.CoreV1Api) -> None:
    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "settings"}, "data": {"a": "1"}})
    assert cm.metadata.uid and cm.metadata.resource_version
    assert core.read_namespaced_config_map("settings", "default").data == {"a": "1"}
    replaced = core.replace_namespaced_config_map(
        "settings", "default", {"metadata": {"name": "settings"}, "data": {"a": "2"}}
    )
    assert int(replaced.metadata.resource_version) > int(cm.metadata.resource_version)
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_config_map("default", {"metadata": {"name": "settings"}})
    assert exists.value.status == 409 and _status(exists.value)["reason"] == "AlreadyExists"

    generated = core.create_namespaced_pod(
        "default", {"metadata": {"generateName": "job-"}, "spec": pod_manifest("x")["spec"]}
    )
    assert re.fullmatch(r"job-[bcdfghjklmnpqrstvwxz2456789]{5}", generated.metadata.name)
    assert generated.status.phase == "Pending"

    core.delete_namespaced_config_map("settings", "default")
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("settings", "default")
    assert missing.value.status == 404
    assert _status(missing.value) | {"details": None} == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "settings" not found',
        "reason": "NotFound",
        "code": 404,
        "details": None,
    }
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_pod(
            "default", {"metadata": {"name": "Bad_Name"}, "spec": pod_manifest("x")["spec"]}
        )
    assert invalid.value.status == 422 and _status(invalid.value)["reason"] == "Invalid"
    with pytest.raises(ApiException) as no_namespace:
        core.create_namespaced_config_map("nowhere", {"metadata": {"name": "x"}})
    assert no_namespace.value.status == 404


def test_list_with_selectors_and_pagination(core: client.CoreV1Api) -> None:
    for i in range(5):
        labels = {"app": "web" if i < 3 else "api", "index": str(i)}
        core.create_namespaced_config_map("default", {"metadata": {"name": f"cm-{i}", "labels": labels}})
    listed = core.list_namespaced_config_map("default", label_selector="app=web,index notin (0)")
    assert [c.metadata.name for c in listed.items] == ["cm-1", "cm-2"]
    assert int(listed.metadata.resource_version) > 0
    by_name = core.list_namespaced_config_map("default", field_selector="metadata.name=cm-4")
    assert [c.metadata.name for c in by_name.items] == ["cm-4"]

    names, token = [], None
    while True:
        page = core.list_namespaced_config_map("default", limit=2, _continue=token)
        names += [c.metadata.name for c in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"cm-{i}" for i in range(5)]

    with pytest.raises(ApiException) as bad_field:
        core.list_namespaced_pod("default", field_selector="spec.image=x")
    assert (
        bad_field.value.status == 400 and "field label not supported" in _status(bad_field.value)["message"]
    )
    with pytest.raises(ApiException) as bad_label:
        core.list_namespaced_pod("default", label_selector="a in (")
    assert bad_label.value.status == 400


def test_watch_resumes_from_a_resource_version_and_follows_selectors(core: client.CoreV1Api) -> None:
    start = core.list_namespaced_config_map("default").metadata.resource_version
    core.create_namespaced_config_map("default", {"metadata": {"name": "w", "labels": {"watched": "yes"}}})
    core.patch_namespaced_config_map("w", "default", {"data": {"k": "v"}})
    core.patch_namespaced_config_map("w", "default", {"metadata": {"labels": {"watched": "no"}}})
    core.delete_namespaced_config_map("w", "default")

    all_events = [
        (e["type"], e["object"].metadata.name)
        for e in watch.Watch().stream(
            core.list_namespaced_config_map, "default", resource_version=start, timeout_seconds=1
        )
    ]
    assert all_events == [("ADDED", "w"), ("MODIFIED", "w"), ("MODIFIED", "w"), ("DELETED", "w")]
    # With a selector, an object that stops matching is reported DELETED, as the API server does.
    selected = [
        (e["type"], (e["object"].data or {}).get("k"))
        for e in watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            label_selector="watched=yes",
            resource_version=start,
            timeout_seconds=1,
        )
    ]
    assert selected == [("ADDED", None), ("MODIFIED", "v"), ("DELETED", "v")]


def test_watch_from_a_compacted_resource_version_is_gone() -> None:
    with EmulatorServer(KubernetesEmulator(history_size=3)) as server:
        api = client.ApiClient(client.Configuration(host=server.url))
        core = client.CoreV1Api(api)
        for i in range(5):
            core.create_namespaced_config_map("default", {"metadata": {"name": f"cm-{i}"}})
        with pytest.raises(ApiException) as gone:
            list(
                watch.Watch().stream(
                    core.list_namespaced_config_map, "default", resource_version="1", timeout_seconds=1
                )
            )
        assert gone.value.status == 410
        api.close()


def test_patch_kinds(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(
        "default", {"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}}, "data": {"x": "1"}}
    )
    # A dict body is sent as a strategic merge patch by the Python client.
    core.patch_namespaced_config_map("p", "default", {"metadata": {"labels": {"b": None, "c": "3"}}})
    core.patch_namespaced_config_map(
        "p", "default", {"data": {"y": "2"}}, _content_type="application/merge-patch+json"
    )
    patched = core.patch_namespaced_config_map(
        "p",
        "default",
        [{"op": "test", "path": "/data/x", "value": "1"}, {"op": "replace", "path": "/data/x", "value": "9"}],
    )
    assert patched.metadata.labels == {"a": "1", "c": "3"}
    assert patched.data == {"x": "9", "y": "2"}
    with pytest.raises(ApiException) as failed_test:
        core.patch_namespaced_config_map("p", "default", [{"op": "test", "path": "/data/x", "value": "1"}])
    assert failed_test.value.status == 422
    with pytest.raises(ApiException) as apply:
        core.patch_namespaced_config_map(
            "p", "default", {"data": {}}, _content_type="application/apply-patch+yaml"
        )
    assert apply.value.status == 415


def test_stale_resource_version_is_refused_with_409(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map("default", {"metadata": {"name": "cas"}, "data": {"v": "1"}})
    seen = core.read_namespaced_config_map("cas", "default")
    core.patch_namespaced_config_map("cas", "default", {"data": {"v": "2"}})  # someone else wins the race

    seen.data = {"v": "mine"}
    with pytest.raises(ApiException) as put_conflict:
        core.replace_namespaced_config_map("cas", "default", seen)
    body = _status(put_conflict.value)
    assert put_conflict.value.status == 409
    assert (body["kind"], body["reason"]) == ("Status", "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on configmaps "cas": the object has been modified; '
        "please apply your changes to the latest version and try again"
    )
    stale = {"metadata": {"resourceVersion": seen.metadata.resource_version}, "data": {"v": "mine"}}
    with pytest.raises(ApiException) as patch_conflict:
        core.patch_namespaced_config_map("cas", "default", stale)
    assert patch_conflict.value.status == 409
    assert core.read_namespaced_config_map("cas", "default").data == {"v": "2"}

    current = core.read_namespaced_config_map("cas", "default").metadata.resource_version
    fresh = {"metadata": {"resourceVersion": current}, "data": {"v": "3"}}
    assert core.patch_namespaced_config_map("cas", "default", fresh).data == {"v": "3"}
    # An update that changes nothing is not a change: no new resourceVersion.
    again = core.read_namespaced_config_map("cas", "default")
    assert core.replace_namespaced_config_map("cas", "default", again).metadata.resource_version == (
        again.metadata.resource_version
    )


def test_pod_lifecycle_and_logs(k8s: EmulatedCluster, core: client.CoreV1Api) -> None:
    k8s.on_pod(PodBehavior(logs=["one", "two", "three"], run_seconds=0.3), name_prefix="logger")
    core.create_namespaced_pod("default", pod_manifest("logger"))
    with pytest.raises(ApiException) as waiting:
        _log(core, "logger")
    assert waiting.value.status == 400 and "is waiting to start" in _status(waiting.value)["message"]

    k8s.wait_for(lambda: _phase(core, "logger") == "Running", what="pod running")
    followed = _log(core, "logger", follow=True)
    assert followed.splitlines() == ["one", "two", "three"]
    pod = core.read_namespaced_pod("logger", "default")
    assert pod.status.phase == "Succeeded"
    assert pod.status.container_statuses[0].state.terminated.exit_code == 0
    assert pod.spec.node_name == "emulator-node"
    assert _log(core, "logger", tail_lines=1) == "three\n"
    stamped = _log(core, "logger", timestamps=True).splitlines()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z one", stamped[0])
    reasons = [e["reason"] for e in k8s.events("logger")]
    assert {"Scheduled", "Pulled", "Created", "Started"} <= set(reasons)

    k8s.on_pod(PodBehavior(exit_code=2, run_seconds=0.05), name_prefix="crasher")
    core.create_namespaced_pod("default", pod_manifest("crasher"))
    k8s.wait_for(lambda: _phase(core, "crasher") == "Failed", what="pod failed")
    terminated = core.read_namespaced_pod("crasher", "default").status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (2, "Error")


def test_events_for_failing_pods(k8s: EmulatedCluster, core: client.CoreV1Api) -> None:
    k8s.fail_images_containing("does-not-exist")
    k8s.on_pod(PodBehavior(failure="Unschedulable"), name_prefix="huge")
    k8s.on_pod(PodBehavior(failure="CrashLoopBackOff", retry_interval=0.2), name_prefix="looper")
    core.create_namespaced_pod("default", pod_manifest("puller", image="registry/does-not-exist:1"))
    core.create_namespaced_pod("default", pod_manifest("huge"))
    core.create_namespaced_pod("default", pod_manifest("looper", restart_policy="Always"))

    def warning(name: str, reason: str, message_start: str) -> client.CoreV1Event | None:
        selector = f"involvedObject.name={name},type=Warning,reason={reason}"
        events = core.list_namespaced_event("default", field_selector=selector).items
        return next((e for e in events if e.message.startswith(message_start)), None)

    pull = k8s.wait_for(lambda: warning("puller", "Failed", "Error: ErrImagePull"), what="ErrImagePull event")
    assert pull.involved_object.kind == "Pod" and pull.involved_object.field_path == "spec.containers{main}"
    assert pull.first_timestamp and pull.last_timestamp and pull.count >= 1
    assert pull.source.component == "kubelet"
    assert warning("puller", "Failed", 'Failed to pull image "registry/does-not-exist:1"')
    back_off = k8s.wait_for(lambda: warning("puller", "Failed", "Error: ImagePullBackOff"), what="back-off")
    assert back_off.type == "Warning"
    back_off_events = core.list_namespaced_event(
        "default", field_selector="involvedObject.name=puller,reason=BackOff"
    )
    assert back_off_events.items[0].message == 'Back-off pulling image "registry/does-not-exist:1"'
    puller = core.read_namespaced_pod("puller", "default").status
    assert puller.phase == "Pending"
    assert puller.container_statuses[0].state.waiting.reason in ("ErrImagePull", "ImagePullBackOff")

    scheduling = k8s.wait_for(lambda: warning("huge", "FailedScheduling", "0/1 nodes are available"))
    assert scheduling.source.component == "default-scheduler"
    conditions = core.read_namespaced_pod("huge", "default").status.conditions
    scheduled = next(c for c in conditions if c.type == "PodScheduled")
    assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")

    prefix = "Back-off restarting failed container main in pod looper_default("
    looping = k8s.wait_for(
        lambda: (e := warning("looper", "BackOff", prefix)) is not None and e.count >= 2 and e,
        what="a repeated BackOff event, folded into one Event with a count",
    )
    assert looping.last_timestamp >= looping.first_timestamp
    status = core.read_namespaced_pod("looper", "default").status.container_statuses[0]
    assert status.restart_count >= 1 and status.last_state.terminated.exit_code == 1


def test_service_accounts_gate_pods_and_carry_iam_roles(core: client.CoreV1Api) -> None:
    role = "arn:aws:iam::123456789012:role/model-serving"
    core.create_namespaced_service_account(
        "default", {"metadata": {"name": "serving", "annotations": {"eks.amazonaws.com/role-arn": role}}}
    )
    assert core.read_namespaced_service_account("serving", "default").metadata.annotations == {
        "eks.amazonaws.com/role-arn": role
    }
    assert "default" in [sa.metadata.name for sa in core.list_namespaced_service_account("default").items]
    pod = core.create_namespaced_pod("default", pod_manifest("irsa", serviceAccountName="serving"))
    env = {e.name: e.value for e in pod.spec.containers[0].env}
    assert env["AWS_ROLE_ARN"] == role
    assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == "/var/run/secrets/eks.amazonaws.com/serviceaccount/token"
    with pytest.raises(ApiException) as forbidden:
        core.create_namespaced_pod("default", pod_manifest("orphan", serviceAccountName="missing"))
    assert forbidden.value.status == 403
    assert 'serviceaccount "missing" not found' in _status(forbidden.value)["message"]


def test_namespaces_are_cluster_scoped_and_deleting_one_deletes_its_objects(core: client.CoreV1Api) -> None:
    core.create_namespace({"metadata": {"name": "team-a"}})
    assert core.read_namespace("team-a").status.phase == "Active"
    core.create_namespaced_config_map("team-a", {"metadata": {"name": "cfg"}})
    everywhere = core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=team-a")
    assert [c.metadata.name for c in everywhere.items] == ["cfg"]
    core.delete_namespace("team-a")
    assert core.list_config_map_for_all_namespaces(field_selector="metadata.namespace=team-a").items == []


def test_exec_handlers_answer_commands(k8s: EmulatedCluster, core: client.CoreV1Api) -> None:
    def handler(request: ExecRequest) -> ExecResult | None:
        if request.command[:1] == ("whoami",):
            return ExecResult(stdout=f"{request.pod}/{request.container}\n")
        return None

    k8s.on_exec(handler)
    k8s.on_pod(PodBehavior(run_seconds=None), name_prefix="shell")
    core.create_namespaced_pod("default", pod_manifest("shell"))
    k8s.wait_for(lambda: _phase(core, "shell") == "Running")
    output = stream(
        core.connect_get_namespaced_pod_exec,
        "shell",
        "default",
        command=["whoami"],
        stderr=True,
        stdin=False,
        stdout=True,
        tty=False,
    )
    assert output == "shell/main\n"
    assert (
        "GET",
        "/api/v1/namespaces/default/pods/shell/exec?command=whoami&stderr=True&stdin=False&stdout=True&tty=False",
    ) in k8s.requests()


def test_dry_run_and_delete_preconditions(core: client.CoreV1Api) -> None:
    dry = core.create_namespaced_config_map("default", {"metadata": {"name": "dry"}}, dry_run="All")
    assert dry.metadata.uid
    assert core.list_namespaced_config_map("default", field_selector="metadata.name=dry").items == []

    cm = core.create_namespaced_config_map("default", {"metadata": {"name": "guarded"}})
    core.patch_namespaced_config_map("guarded", "default", {"data": {"a": "1"}})
    stale = client.V1DeleteOptions(
        preconditions=client.V1Preconditions(resource_version=cm.metadata.resource_version)
    )
    with pytest.raises(ApiException) as conflict:
        core.delete_namespaced_config_map("guarded", "default", body=stale)
    assert conflict.value.status == 409 and "Precondition failed" in _status(conflict.value)["message"]
    deleted = core.delete_namespaced_config_map("guarded", "default")
    assert deleted.status == "Success" and deleted.details.name == "guarded"
