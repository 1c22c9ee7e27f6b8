"""The fake kubelet: runs every pod on one imaginary node, following the pod's behaviour.

A healthy pod goes ``Pending`` (scheduled, containers creating) -> ``Running`` (ready) -> and, when its
main container exits, ``Succeeded``/``Failed`` (``restartPolicy: Never``/``OnFailure``) or a restart
with back-off (``Always``). The KubernetesPodOperator's XCom sidecar keeps running until it is killed
through ``exec``, as the real sidecar does. Failing pods get the states and the Events a real node
would produce: ``ErrImagePull``/``ImagePullBackOff``, ``FailedScheduling``, ``CrashLoopBackOff``,
failed readiness probes. Logs are kept per container for ``pods/log``; ``exec`` is answered by
registered handlers, then by the built-in XCom sidecar.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import itertools
import json
import logging
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from lyftlearn_provider.testing.k8s.behaviors import BehaviorBook, PodBehavior
from lyftlearn_provider.testing.k8s.errors import ApiError, bad_request
from lyftlearn_provider.testing.k8s.events import NODE_NAME, EventRecorder
from lyftlearn_provider.testing.k8s.meta import Obj, rfc3339, rfc3339_nano, utcnow
from lyftlearn_provider.testing.k8s.resources import PODS
from lyftlearn_provider.testing.k8s.store import ObjectStore, WatchEvent

log = logging.getLogger(__name__)

XCOM_SIDECAR = "airflow-xcom-sidecar"
EMPTY_XCOM = "__airflow_xcom_result_empty__"
MAX_BACKOFF = 30.0
HOST_IP = "10.0.0.1"


@dataclass(frozen=True)
class ExecRequest:
    """Describe a command run in a container through ``pods/exec`` (``stdin``: what the client wrote)."""

    namespace: str
    pod: str
    container: str
    command: tuple[str, ...]
    stdin: str = ""

    @property
    def script(self) -> str:
        """Return the command line and stdin as one string, for matching on its content."""
        return " ".join((*self.command, self.stdin)).strip()


@dataclass(frozen=True)
class ExecResult:
    """Hold what an exec'd command printed, and its exit code."""

    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


#: Answers an exec request, or returns ``None`` to leave it to the next handler.
ExecHandler = Callable[[ExecRequest], "ExecResult | None"]


@dataclass(frozen=True)
class LogLine:
    """Hold one line a container printed, and when."""

    at: dt.datetime
    text: str

    def render(self, timestamps: bool) -> str:
        """Return the line as ``pods/log`` sends it (with its RFC 3339 timestamp if asked)."""
        return f"{rfc3339_nano(self.at)} {self.text}\n" if timestamps else f"{self.text}\n"


@dataclass(frozen=True)
class _PodRef:
    namespace: str
    name: str
    uid: str


class _PodGone(Exception):
    """The pod was deleted (or replaced by a namesake) while the kubelet was running it."""


def _set_condition(
    status: Obj, kind: str, value: str, reason: str | None = None, message: str | None = None
) -> None:
    conditions: list[Obj] = status.setdefault("conditions", [])
    current = next((c for c in conditions if c["type"] == kind), None)
    if current is not None and current["status"] == value and current.get("reason") == reason:
        return
    condition: Obj = {"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": rfc3339()}
    if current is not None and current["status"] == value:
        condition["lastTransitionTime"] = current["lastTransitionTime"]
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    if current is None:
        conditions.append(condition)
    else:
        conditions[conditions.index(current)] = condition


def _container_status(container: Obj, state: Obj, *, ready: bool = False, restarts: int = 0) -> Obj:
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": ready,
        "restartCount": restarts,
        "started": "running" in state,
        "state": state,
    }


def _field_path(container: Obj) -> str:
    return f"spec.containers{{{container['name']}}}"


class FakeKubelet:
    """Run pods (see the module docstring). Attach it to the emulator's event loop before use."""

    def __init__(self, store: ObjectStore, events: EventRecorder, behaviors: BehaviorBook) -> None:
        self._store = store
        self._events = events
        self._behaviors = behaviors
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._pod_behaviors: dict[str, PodBehavior] = {}
        self._logs: dict[tuple[str, str, str], list[LogLine]] = {}
        self._exec_handlers: list[ExecHandler] = []
        self._ips = itertools.count(2)
        store.subscribe(self._on_change)

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run pods on ``loop`` from now on."""
        self._loop = loop

    def add_exec_handler(self, handler: ExecHandler) -> None:
        """Let ``handler`` answer exec requests first (later handlers are asked first)."""
        self._exec_handlers.insert(0, handler)

    def logs(self, namespace: str, pod: str, container: str) -> list[LogLine]:
        """Return what a container has printed so far."""
        return list(self._logs.get((namespace, pod, container), []))

    def clear(self) -> None:
        """Stop running every pod and forget logs and exec handlers."""
        for task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
        self._pod_behaviors.clear()
        self._logs.clear()
        self._exec_handlers.clear()

    # ------------------------------------------------------------------ pod lifecycle

    def _on_change(self, event: WatchEvent) -> None:
        if event.resource is not PODS:
            return
        md = event.object["metadata"]
        ref = _PodRef(md["namespace"], md["name"], md["uid"])
        if event.type == "ADDED" and self._loop is not None:
            self._spawn(ref, self._run(ref))
        elif event.type == "DELETED":
            self._stopped(ref, event.object)

    def _spawn(self, ref: _PodRef, coro: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro, name=f"kubelet {ref.namespace}/{ref.name}")
        self._tasks[ref.uid] = task
        task.add_done_callback(lambda t: self._finished(ref, t))

    def _finished(self, ref: _PodRef, task: asyncio.Task[None]) -> None:
        if self._tasks.get(ref.uid) is task:
            del self._tasks[ref.uid]
        if not task.cancelled() and task.exception() is not None:
            log.error("kubelet failed running pod %s/%s", ref.namespace, ref.name, exc_info=task.exception())

    def _stopped(self, ref: _PodRef, pod: Obj) -> None:
        task = self._tasks.pop(ref.uid, None)
        if task is not None:
            task.cancel()
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if "running" in status.get("state", {}):
                container = {"name": status["name"]}
                self._events.record(
                    pod, "Killing", f"Stopping container {status['name']}", field_path=_field_path(container)
                )
        self._pod_behaviors.pop(ref.uid, None)
        for key in [k for k in self._logs if k[:2] == (ref.namespace, ref.name)]:
            del self._logs[key]

    def _pod(self, ref: _PodRef) -> Obj:
        pod = self._store.get(PODS, ref.namespace, ref.name)
        if pod is None or pod["metadata"].get("uid") != ref.uid:
            raise _PodGone
        return pod

    def _update(self, ref: _PodRef, mutate: Callable[[Obj], None]) -> Obj:
        pod = self._pod(ref)
        before = copy.deepcopy(pod)
        mutate(pod)
        return self._store.put(PODS, pod) if pod != before else pod

    def _behavior(self, ref: _PodRef, pod: Obj) -> PodBehavior:
        if ref.uid not in self._pod_behaviors:
            owner = next(
                (
                    r["uid"]
                    for r in pod["metadata"].get("ownerReferences") or []
                    if r.get("controller") and r.get("kind") == "ReplicaSet"
                ),
                None,
            )
            self._pod_behaviors[ref.uid] = self._behaviors.pod_behavior(pod, owner)
        return self._pod_behaviors[ref.uid]

    async def _run(self, ref: _PodRef) -> None:
        try:
            pod = self._pod(ref)
            behavior = self._behavior(ref, pod)
            await asyncio.sleep(behavior.schedule_delay)
            if behavior.failure == "Unschedulable":
                await self._unschedulable(ref, behavior)
                return
            pod = self._bind(ref)
            if behavior.failure == "ErrImagePull":
                await self._image_pull_back_off(ref, pod, behavior)
                return
            await asyncio.sleep(behavior.start_delay)
            self._start(ref, pod, ready=behavior.failure != "Unready")
            if behavior.failure == "Unready":
                await self._never_ready(ref, pod, behavior)
                return
            await self._run_main_container(ref, pod, behavior)
        except _PodGone:
            return

    async def _repeat(self, behavior: PodBehavior, action: Callable[[], None]) -> None:
        """Repeat a failing step with the kubelet's doubling back-off, until the pod is deleted."""
        delay = behavior.retry_interval
        while True:
            action()
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    async def _unschedulable(self, ref: _PodRef, behavior: PodBehavior) -> None:
        message = (
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
            "1 No preemption victims found for incoming pod."
        )
        self._update(
            ref, lambda pod: _set_condition(pod["status"], "PodScheduled", "False", "Unschedulable", message)
        )

        def attempt() -> None:
            self._events.record(
                self._pod(ref), "FailedScheduling", message, type="Warning", component="default-scheduler"
            )

        await self._repeat(behavior, attempt)

    def _bind(self, ref: _PodRef) -> Obj:
        def bind(pod: Obj) -> None:
            pod["spec"]["nodeName"] = NODE_NAME
            status = pod["status"]
            status["hostIP"] = HOST_IP
            status["hostIPs"] = [{"ip": HOST_IP}]
            _set_condition(status, "PodScheduled", "True")
            _set_condition(status, "Initialized", "True")
            _set_condition(status, "Ready", "False", "ContainersNotReady", "containers with unready status")
            _set_condition(
                status, "ContainersReady", "False", "ContainersNotReady", "containers with unready status"
            )
            finished = {"exitCode": 0, "reason": "Completed", "startedAt": rfc3339(), "finishedAt": rfc3339()}
            init = [
                _container_status(c, {"terminated": finished})
                for c in pod["spec"].get("initContainers") or []
            ]
            if init:
                status["initContainerStatuses"] = init
            status["containerStatuses"] = [
                _container_status(c, {"waiting": {"reason": "ContainerCreating"}})
                for c in pod["spec"]["containers"]
            ]
            status["startTime"] = rfc3339()

        pod = self._update(ref, bind)
        self._events.record(
            pod,
            "Scheduled",
            f"Successfully assigned {ref.namespace}/{ref.name} to {NODE_NAME}",
            component="default-scheduler",
        )
        return pod

    async def _image_pull_back_off(self, ref: _PodRef, pod: Obj, behavior: PodBehavior) -> None:
        containers = pod["spec"]["containers"]
        failing = [
            c for c in containers if self._behaviors.failing_image_marker(c.get("image", ""))
        ] or containers[:1]

        def set_waiting(reason: str, message: str) -> Callable[[Obj], None]:
            def mutate(current: Obj) -> None:
                for status in current["status"]["containerStatuses"]:
                    if any(status["name"] == c["name"] for c in failing):
                        status["state"] = {"waiting": {"reason": reason, "message": message}}

            return mutate

        def attempt() -> None:
            for container in failing:
                image = container.get("image", "")
                path = _field_path(container)
                pull_error = (
                    f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": '
                    f"{image}: not found"
                )
                self._events.record(self._pod(ref), "Pulling", f'Pulling image "{image}"', field_path=path)
                self._events.record(
                    self._pod(ref),
                    "Failed",
                    f'Failed to pull image "{image}": rpc error: code = NotFound desc = {pull_error}',
                    type="Warning",
                    field_path=path,
                )
                self._events.record(
                    self._pod(ref), "Failed", "Error: ErrImagePull", type="Warning", field_path=path
                )
                self._update(
                    ref, set_waiting("ErrImagePull", f"rpc error: code = NotFound desc = {pull_error}")
                )
                self._events.record(
                    self._pod(ref), "BackOff", f'Back-off pulling image "{image}"', field_path=path
                )
                self._events.record(
                    self._pod(ref), "Failed", "Error: ImagePullBackOff", type="Warning", field_path=path
                )
                self._update(ref, set_waiting("ImagePullBackOff", f'Back-off pulling image "{image}"'))

        await self._repeat(behavior, attempt)

    def _start(self, ref: _PodRef, pod: Obj, *, ready: bool) -> None:
        for container in pod["spec"]["containers"]:
            path = _field_path(container)
            image = container.get("image", "")
            self._events.record(
                pod, "Pulled", f'Container image "{image}" already present on machine', field_path=path
            )
            self._events.record(pod, "Created", f"Created container: {container['name']}", field_path=path)
            self._events.record(pod, "Started", f"Started container {container['name']}", field_path=path)
        started = rfc3339()
        pod_ip = f"10.244.0.{next(self._ips) % 250 + 2}"

        def start(current: Obj) -> None:
            status = current["status"]
            status.update(phase="Running", podIP=pod_ip, podIPs=[{"ip": pod_ip}])
            status["containerStatuses"] = [
                _container_status(c, {"running": {"startedAt": started}}, ready=ready)
                for c in current["spec"]["containers"]
            ]
            self._set_readiness(status)

        self._update(ref, start)

    @staticmethod
    def _set_readiness(status: Obj) -> None:
        unready = [c["name"] for c in status.get("containerStatuses") or [] if not c.get("ready")]
        if unready:
            message = f"containers with unready status: [{' '.join(unready)}]"
            _set_condition(status, "ContainersReady", "False", "ContainersNotReady", message)
            _set_condition(status, "Ready", "False", "ContainersNotReady", message)
        else:
            _set_condition(status, "ContainersReady", "True")
            _set_condition(status, "Ready", "True")

    async def _never_ready(self, ref: _PodRef, pod: Obj, behavior: PodBehavior) -> None:
        container = pod["spec"]["containers"][0]

        def probe() -> None:
            self._events.record(
                self._pod(ref),
                "Unhealthy",
                "Readiness probe failed: HTTP probe failed with statuscode: 503",
                type="Warning",
                field_path=_field_path(container),
            )

        await self._repeat(behavior, probe)

    async def _emit_logs(
        self, ref: _PodRef, container: str, behavior: PodBehavior, run_seconds: float
    ) -> None:
        lines = list(behavior.logs)
        pause = run_seconds / max(1, len(lines))
        buffer = self._logs.setdefault((ref.namespace, ref.name, container), [])
        for text in lines:
            buffer.append(LogLine(utcnow(), text))
            await asyncio.sleep(pause)
        if not lines:
            await asyncio.sleep(run_seconds)

    async def _run_main_container(self, ref: _PodRef, pod: Obj, behavior: PodBehavior) -> None:
        main = pod["spec"]["containers"][0]
        crashing = behavior.failure == "CrashLoopBackOff"
        if behavior.run_seconds is None and not crashing:
            buffer = self._logs.setdefault((ref.namespace, ref.name, main["name"]), [])
            buffer.extend(LogLine(utcnow(), text) for text in behavior.logs)
            return
        run_seconds = behavior.run_seconds if behavior.run_seconds is not None else 0.1
        exit_code = (behavior.exit_code or 1) if crashing else behavior.exit_code
        policy = pod["spec"].get("restartPolicy", "Always")
        restarts = 0
        while True:
            await self._emit_logs(ref, main["name"], behavior, run_seconds)
            if policy == "Never" or (policy == "OnFailure" and exit_code == 0):
                self._terminate(
                    ref,
                    [c["name"] for c in pod["spec"]["containers"] if c["name"] != XCOM_SIDECAR],
                    exit_code,
                )
                return
            restarts += 1
            back_off = min(behavior.retry_interval * 2 ** (restarts - 1), MAX_BACKOFF)
            self._crashed(ref, main, exit_code, restarts)
            await asyncio.sleep(back_off)
            self._restarted(ref, main)

    def _terminate(self, ref: _PodRef, containers: list[str], exit_code: int) -> None:
        """Let containers exit; the pod ends once all its containers have (the sidecar exits when killed)."""

        def terminate(pod: Obj) -> None:
            status = pod["status"]
            for cs in status.get("containerStatuses") or []:
                if cs["name"] in containers and "terminated" not in cs["state"]:
                    code = exit_code if cs["name"] == pod["spec"]["containers"][0]["name"] else 0
                    started = cs["state"].get("running", {}).get("startedAt", rfc3339())
                    cs["state"] = {
                        "terminated": {
                            "exitCode": code,
                            "reason": "Completed" if code == 0 else "Error",
                            "startedAt": started,
                            "finishedAt": rfc3339(),
                        }
                    }
                    cs["ready"] = False
                    cs["started"] = False
            statuses = status.get("containerStatuses") or []
            if statuses and all("terminated" in cs["state"] for cs in statuses):
                failed = any(cs["state"]["terminated"]["exitCode"] != 0 for cs in statuses)
                status["phase"] = "Failed" if failed else "Succeeded"
                _set_condition(status, "ContainersReady", "False", "PodCompleted")
                _set_condition(status, "Ready", "False", "PodCompleted")
            else:
                self._set_readiness(status)

        self._update(ref, terminate)

    def _crashed(self, ref: _PodRef, container: Obj, exit_code: int, restarts: int) -> None:
        pod = self._pod(ref)
        pod_id = f"{ref.name}_{ref.namespace}({ref.uid})"

        def crash(current: Obj) -> None:
            for cs in current["status"]["containerStatuses"]:
                if cs["name"] == container["name"]:
                    started = cs["state"].get("running", {}).get("startedAt", rfc3339())
                    cs["lastState"] = {
                        "terminated": {
                            "exitCode": exit_code,
                            "reason": "Completed" if exit_code == 0 else "Error",
                            "startedAt": started,
                            "finishedAt": rfc3339(),
                        }
                    }
                    cs["state"] = {
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off restarting failed container={container['name']} "
                            f"pod={pod_id}",
                        }
                    }
                    cs["ready"] = False
                    cs["started"] = False
                    cs["restartCount"] = restarts
            self._set_readiness(current["status"])

        self._update(ref, crash)
        self._events.record(
            pod,
            "BackOff",
            f"Back-off restarting failed container {container['name']} in pod {pod_id}",
            type="Warning",
            field_path=_field_path(container),
        )

    def _restarted(self, ref: _PodRef, container: Obj) -> None:
        def restart(current: Obj) -> None:
            for cs in current["status"]["containerStatuses"]:
                if cs["name"] == container["name"]:
                    cs["state"] = {"running": {"startedAt": rfc3339()}}
                    cs["started"] = True

        pod = self._update(ref, restart)
        self._events.record(
            pod, "Started", f"Started container {container['name']}", field_path=_field_path(container)
        )

    # ------------------------------------------------------------------ exec

    def exec(self, request: ExecRequest) -> ExecResult:
        """Run a command in a running container: registered handlers first, then the XCom sidecar."""
        pod = self._store.get(PODS, request.namespace, request.pod)
        if pod is None:
            raise ApiError(404, "NotFound", f'pods "{request.pod}" not found')
        statuses = {cs["name"]: cs for cs in (pod.get("status") or {}).get("containerStatuses") or []}
        if "running" not in statuses.get(request.container, {}).get("state", {}):
            raise bad_request(f'unable to upgrade connection: container not found ("{request.container}")')
        for handler in self._exec_handlers:
            result = handler(request)
            if result is not None:
                return result
        if request.container == XCOM_SIDECAR:
            return self._xcom_sidecar(pod, request)
        return ExecResult(stderr=f"emulator: no exec handler for {list(request.command)!r}\n", exit_code=127)

    def _xcom_sidecar(self, pod: Obj, request: ExecRequest) -> ExecResult:
        md = pod["metadata"]
        if "return.json" in request.script:
            xcom = self._behavior(_PodRef(md["namespace"], md["name"], md["uid"]), pod).xcom
            return ExecResult(stdout=(json.dumps(xcom) if xcom is not None else EMPTY_XCOM) + "\n")
        if "kill" in request.script:
            # Exit after the exec answer is sent, as the real sidecar exits on the signal it was sent.
            ref = _PodRef(md["namespace"], md["name"], md["uid"])
            assert self._loop is not None
            self._loop.call_soon(self._kill_sidecar, ref)
            return ExecResult()
        return ExecResult(
            stderr=f"sh: unsupported command in the XCom sidecar: {request.script}\n", exit_code=127
        )

    def _kill_sidecar(self, ref: _PodRef) -> None:
        try:
            self._terminate(ref, [XCOM_SIDECAR], 0)
        except _PodGone:
            return
