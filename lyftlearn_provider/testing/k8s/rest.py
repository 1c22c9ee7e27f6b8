"""The Kubernetes REST API over HTTP (aiohttp): routing, discovery, watch, logs, exec, scale.

Paths are the real ones (``/api/v1/namespaces/{ns}/pods/{name}/log``,
``/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale``...), so the official clients, the
cncf-kubernetes provider and ``kubectl --validate=false`` work unchanged. Watches stream JSON lines;
``pods/exec`` speaks the ``v5.channel.k8s.io``/``v4.channel.k8s.io`` WebSocket protocols.
Not emulated: TLS, authentication (any token is accepted), OpenAPI documents, server-side apply,
protobuf, ``pods/attach`` and ``pods/portforward``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import WSMsgType, web
from multidict import MultiMapping

from lyftlearn_provider.testing.k8s import errors
from lyftlearn_provider.testing.k8s.apiserver import KubernetesEmulator, apply_patch
from lyftlearn_provider.testing.k8s.errors import ApiError, status_body
from lyftlearn_provider.testing.k8s.faults import ERRORS
from lyftlearn_provider.testing.k8s.kubelet import ExecRequest, ExecResult
from lyftlearn_provider.testing.k8s.meta import Obj, parse_time, utcnow
from lyftlearn_provider.testing.k8s.resources import (
    PODS,
    ResourceType,
    core_versions,
    group_document,
    group_list,
    resource_for,
    resource_list,
)
from lyftlearn_provider.testing.k8s.store import ChangeSignal, WatchEvent

DEFAULT_WATCH_SECONDS = 1800.0
LOG_POLL_SECONDS = 0.05
STDIN_WAIT_SECONDS = 5.0
MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Route:
    """Name what a resource path addresses: a collection, an object, or an object's subresource."""

    resource: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None


def parse_route(path: str) -> Route | Obj:
    """Resolve a request path to a ``Route``, or to the discovery document it names; raise 404 otherwise."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, version, rest = "", parts[1], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    elif parts[:1] == ["apis"] and len(parts) == 2 and (doc := group_document(parts[1])) is not None:
        return doc
    else:
        raise _no_route(path)
    if not rest:
        doc = resource_list(group, version)
        if doc is None:
            raise _no_route(path)
        return doc
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        raise _no_route(path)
    resource = resource_for(group, version, rest[0])
    if resource is None or (namespace is not None and not resource.namespaced):
        raise _no_route(path)
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    if subresource is not None and subresource not in resource.subresources:
        raise _no_route(path)
    return Route(resource, namespace, name, subresource)


def _no_route(path: str) -> ApiError:
    return ApiError(404, "NotFound", f"the server could not find the requested resource ({path})")


def _flag(query: MultiMapping[str], name: str) -> bool:
    return query.get(name, "").lower() in ("true", "1")


class ApiHandler:
    """Serve one ``KubernetesEmulator`` over HTTP; ``application()`` builds the aiohttp app."""

    def __init__(self, emulator: KubernetesEmulator) -> None:
        self.emulator = emulator
        self._changes = ChangeSignal()
        emulator.store.subscribe(self._changes.fire)

    def application(self) -> web.Application:
        """Return the aiohttp application; its startup attaches the emulator to the serving loop."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self.handle)

        async def attach(_: web.Application) -> None:
            self.emulator.attach(asyncio.get_running_loop())

        app.on_startup.append(attach)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request; API errors become ``Status`` responses, injected faults their own answer."""
        self.emulator.requests.append((request.method, request.path_qs))
        fault = self.emulator.faults.take(request.method, request.path_qs)
        if fault is not None:
            if fault.kind == "delay":
                await asyncio.sleep(fault.seconds)
            elif fault.kind == "reset" and fault.after:
                with contextlib.suppress(ApiError):
                    await self._dispatch(request)
                return self._reset(request)
            elif fault.kind == "reset":
                return self._reset(request)
            else:
                code, reason, message = ERRORS[fault.kind]
                headers = {"Retry-After": str(fault.retry_after)} if fault.kind == "throttle" else None
                return web.json_response(status_body(code, reason, message), status=code, headers=headers)
        try:
            return await self._dispatch(request)
        except ApiError as error:
            return web.json_response(error.to_status(), status=error.code)

    @staticmethod
    def _reset(request: web.Request) -> web.StreamResponse:
        """Close the request's connection with a TCP RST instead of answering."""
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                # Linger 0 makes the close send an RST rather than a FIN: the client sees "connection reset".
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        # Never sent: the connection is gone.
        return web.Response(status=500)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        if path == "/version":
            return web.json_response(self._version())
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if path == "/api":
            return web.json_response(core_versions(request.host))
        if path == "/apis":
            return web.json_response(group_list())
        route = parse_route(path)
        if not isinstance(route, Route):
            return web.json_response(route)
        if route.name is None:
            return await self._collection(request, route)
        if route.subresource == "log":
            return await self._log(request, route)
        if route.subresource == "exec":
            return await self._exec(request, route)
        if route.subresource == "scale":
            return await self._scale(request, route)
        return await self._object(request, route)

    def _version(self) -> Obj:
        major, minor = self.emulator.version.lstrip("v").split(".")[:2]
        return {
            "major": major,
            "minor": minor,
            "gitVersion": self.emulator.version,
            "gitCommit": "emulator",
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.23",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    @staticmethod
    async def _body(request: web.Request) -> Any:
        if "protobuf" in request.content_type or "cbor" in request.content_type:
            # Answered as a server that cannot decode a media type does, so the client's error says why.
            raise ApiError(
                415, "UnsupportedMediaType", f"the emulator accepts JSON only, not {request.content_type}"
            )
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            return json.loads(raw)
        except ValueError as error:
            raise errors.bad_request(f"the request body is not valid JSON: {error}") from error

    # ------------------------------------------------------------------ collections and objects

    async def _collection(self, request: web.Request, route: Route) -> web.StreamResponse:
        query = request.query
        emulator = self.emulator
        if request.method == "GET" and _flag(query, "watch"):
            return await self._watch(request, route)
        if request.method == "GET":
            limit = int(query["limit"]) if query.get("limit") else None
            listed = emulator.list(
                route.resource,
                route.namespace,
                label_selector=query.get("labelSelector"),
                field_selector=query.get("fieldSelector"),
                limit=limit,
                continue_token=query.get("continue"),
            )
            return web.json_response(listed)
        if request.method == "POST":
            body = await self._body(request)
            created = emulator.create(
                route.resource, route.namespace, body, dry_run=bool(query.get("dryRun"))
            )
            return web.json_response(created, status=201)
        if request.method == "DELETE":
            listed = emulator.list(
                route.resource,
                route.namespace,
                label_selector=query.get("labelSelector"),
                field_selector=query.get("fieldSelector"),
            )
            for item in listed["items"]:
                emulator.delete(route.resource, item["metadata"].get("namespace"), item["metadata"]["name"])
            return web.json_response(listed)
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported on {request.path}")

    async def _object(self, request: web.Request, route: Route) -> web.StreamResponse:
        assert route.name is not None
        query = request.query
        dry_run = bool(query.get("dryRun"))
        resource, namespace, name = route.resource, route.namespace, route.name
        if request.method == "GET":
            return web.json_response(self.emulator.get(resource, namespace, name))
        if request.method == "PUT":
            body = await self._body(request)
            return web.json_response(
                self.emulator.replace(
                    resource, namespace, name, body, subresource=route.subresource, dry_run=dry_run
                )
            )
        if request.method == "PATCH":
            body = await self._body(request)
            patched = self.emulator.patch(
                resource,
                namespace,
                name,
                body,
                request.content_type,
                subresource=route.subresource,
                dry_run=dry_run,
            )
            return web.json_response(patched)
        if request.method == "DELETE":
            options = await self._body(request)
            propagation = query.get("propagationPolicy") or options.get("propagationPolicy") or "Background"
            removed = self.emulator.delete(
                resource,
                namespace,
                name,
                propagation=propagation,
                preconditions=options.get("preconditions"),
                dry_run=dry_run,
            )
            if resource is PODS:
                return web.json_response(removed)
            md = removed["metadata"]
            details = {"name": md["name"], "kind": resource.plural, "uid": md["uid"]}
            if resource.group:
                details["group"] = resource.group
            return web.json_response(status_body(200, "", "", status="Success", details=details))
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported on {request.path}")

    async def _scale(self, request: web.Request, route: Route) -> web.StreamResponse:
        assert route.name is not None and route.namespace is not None
        resource, namespace, name = route.resource, route.namespace, route.name
        if request.method == "GET":
            return web.json_response(self.emulator.scale(resource, namespace, name))
        if request.method in ("PUT", "PATCH"):
            body = await self._body(request)
            if request.method == "PATCH":
                body = apply_patch(self.emulator.scale(resource, namespace, name), body, request.content_type)
            return web.json_response(self.emulator.update_scale(resource, namespace, name, body))
        raise ApiError(405, "MethodNotAllowed", f"{request.method} is not supported on {request.path}")

    # ------------------------------------------------------------------ watch

    async def _watch(self, request: web.Request, route: Route) -> web.StreamResponse:
        query = request.query
        store = self.emulator.store
        matches = self.emulator.matcher(
            route.resource, query.get("labelSelector"), query.get("fieldSelector")
        )

        def visible(obj: Obj | None) -> bool:
            if obj is None:
                return False
            in_namespace = route.namespace is None or obj["metadata"].get("namespace") == route.namespace
            return in_namespace and matches(obj)

        timeout = float(query.get("timeoutSeconds") or DEFAULT_WATCH_SECONDS)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)

        async def send(kind: str, obj: Obj) -> None:
            await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        start = query.get("resourceVersion") or "0"
        try:
            if start == "0":
                last = store.resource_version
                for obj in store.list(route.resource, route.namespace):
                    if visible(obj):
                        await send("ADDED", obj)
            else:
                last = int(start) if start.isdigit() else -1
                if last < store.oldest_watchable:
                    expired = status_body(
                        410, "Expired", f"too old resource version: {start} ({store.oldest_watchable})"
                    )
                    await send("ERROR", expired)
                    return response
            await self._follow(route, last, visible, send, timeout)
        except ConnectionResetError:
            return response
        with contextlib.suppress(ConnectionResetError):
            await response.write_eof()
        return response

    async def _follow(
        self,
        route: Route,
        last: int,
        visible: Callable[[Obj | None], bool],
        send: Callable[[str, Obj], Any],
        timeout: float,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            wake = self._changes.current()
            for event in self.emulator.store.changes_since(last):
                last = event.resource_version
                if event.resource is route.resource:
                    kind = self._watch_type(event, visible)
                    if kind is not None:
                        await send(kind, event.object)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout=max(0.0, deadline - loop.time()))

    @staticmethod
    def _watch_type(event: WatchEvent, visible: Callable[[Obj | None], bool]) -> str | None:
        """Return the event type a filtered watch sees, or ``None`` if it sees nothing."""
        now = visible(event.object)
        if event.type != "MODIFIED":
            return event.type if now else None
        before = visible(event.previous)
        if now:
            return "MODIFIED" if before else "ADDED"
        return "DELETED" if before else None

    # ------------------------------------------------------------------ pods/log

    @staticmethod
    def _container(pod: Obj, requested: str | None) -> str:
        names = [c["name"] for c in pod["spec"]["containers"]]
        if requested:
            if requested not in names + [c["name"] for c in pod["spec"].get("initContainers") or []]:
                raise errors.bad_request(
                    f"container {requested} is not valid for pod {pod['metadata']['name']}"
                )
            return requested
        if len(names) > 1:
            raise errors.bad_request(
                f"a container name must be specified for pod {pod['metadata']['name']}, "
                f"choose one of: [{' '.join(names)}]"
            )
        return names[0]

    @staticmethod
    def _container_state(pod: Obj | None, container: str) -> Mapping[str, Any]:
        for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
            if status["name"] == container:
                return status.get("state") or {}
        return {}

    async def _log(self, request: web.Request, route: Route) -> web.StreamResponse:
        assert route.name is not None and route.namespace is not None
        namespace, name = route.namespace, route.name
        query = request.query
        pod = self.emulator.get(PODS, namespace, name)
        container = self._container(pod, query.get("container"))
        waiting = self._container_state(pod, container).get("waiting")
        if waiting is not None or pod["status"].get("phase") == "Pending":
            reason = (waiting or {}).get("reason", "ContainerCreating")
            raise errors.bad_request(f'container "{container}" in pod "{name}" is waiting to start: {reason}')
        follow, timestamps = _flag(query, "follow"), _flag(query, "timestamps")
        since: float | None = None
        if query.get("sinceTime"):
            since = parse_time(query["sinceTime"]).timestamp()
        elif query.get("sinceSeconds"):
            since = utcnow().timestamp() - int(query["sinceSeconds"])
        tail = int(query["tailLines"]) if query.get("tailLines") else None
        limit = int(query["limitBytes"]) if query.get("limitBytes") else None

        def lines_from(offset: int) -> list[str]:
            lines = self.emulator.kubelet.logs(namespace, name, container)[offset:]
            if since is not None:
                lines = [line for line in lines if line.at.timestamp() >= since]
            return [line.render(timestamps) for line in lines]

        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        sent_bytes = 0

        async def send(chunks: list[str]) -> bool:
            nonlocal sent_bytes
            for chunk in chunks:
                data = chunk.encode()
                if limit is not None and sent_bytes + len(data) > limit:
                    await response.write(data[: limit - sent_bytes])
                    return False
                await response.write(data)
                sent_bytes += len(data)
            return True

        try:
            offset = len(self.emulator.kubelet.logs(namespace, name, container))
            first = lines_from(0)
            if await send(first[max(0, len(first) - tail) :] if tail is not None else first) and follow:
                await self._follow_log(namespace, name, container, offset, lines_from, send)
            await response.write_eof()
        except ConnectionResetError:
            pass
        return response

    async def _follow_log(
        self,
        namespace: str,
        name: str,
        container: str,
        offset: int,
        lines_from: Callable[[int], list[str]],
        send: Callable[[list[str]], Any],
    ) -> None:
        while True:
            pod = self.emulator.store.get(PODS, namespace, name)
            finished = pod is None or "running" not in self._container_state(pod, container)
            # Read after checking the state, so lines written just before the container exited are sent.
            fresh = lines_from(offset)
            offset = (
                len(self.emulator.kubelet.logs(namespace, name, container)) if pod is not None else offset
            )
            if fresh and not await send(fresh):
                return
            if finished:
                return
            await asyncio.sleep(LOG_POLL_SECONDS)

    # ------------------------------------------------------------------ pods/exec

    async def _exec(self, request: web.Request, route: Route) -> web.StreamResponse:
        assert route.name is not None and route.namespace is not None
        pod = self.emulator.get(PODS, route.namespace, route.name)
        query = request.query
        container = self._container(pod, query.get("container"))
        if "running" not in self._container_state(pod, container):
            raise errors.bad_request(f'unable to upgrade connection: container not found ("{container}")')
        ws = web.WebSocketResponse(protocols=("v5.channel.k8s.io", "v4.channel.k8s.io"))
        if not ws.can_prepare(request).ok:
            raise errors.bad_request("Upgrade request required")
        await ws.prepare(request)
        stdin = await self._read_stdin(ws) if _flag(query, "stdin") else ""
        exec_request = ExecRequest(
            route.namespace, route.name, container, tuple(query.getall("command", [])), stdin
        )
        try:
            result = self.emulator.kubelet.exec(exec_request)
        except ApiError as error:
            result = ExecResult(stderr=error.message + "\n", exit_code=1)
        if result.stdout:
            await ws.send_bytes(b"\x01" + result.stdout.encode())
        if result.stderr:
            await ws.send_bytes(b"\x02" + result.stderr.encode())
        if result.exit_code == 0:
            outcome: Obj = {"metadata": {}, "status": "Success"}
        else:
            outcome = {
                "metadata": {},
                "status": "Failure",
                "reason": "NonZeroExitCode",
                "message": f"command terminated with non-zero exit code: error executing command "
                f"[{' '.join(exec_request.command)}], exit code {result.exit_code}",
                "details": {"causes": [{"reason": "ExitCode", "message": str(result.exit_code)}]},
            }
        await ws.send_bytes(b"\x03" + json.dumps(outcome).encode())
        await ws.close()
        return ws

    @staticmethod
    async def _read_stdin(ws: web.WebSocketResponse) -> str:
        """Collect what the client writes to stdin, up to its first complete line (an interactive shell)."""
        received = ""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STDIN_WAIT_SECONDS
        while "\n" not in received and loop.time() < deadline:
            try:
                message = await ws.receive(timeout=max(0.01, deadline - loop.time()))
            except asyncio.TimeoutError:
                break
            if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                break
            data = message.data if message.type == WSMsgType.BINARY else str(message.data).encode()
            if data[:1] == b"\x00":
                received += data[1:].decode(errors="replace")
        return received
