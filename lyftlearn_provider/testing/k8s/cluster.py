"""``EmulatedCluster``: what a test holds to steer the emulated cluster and look inside it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from lyftlearn_provider.testing.k8s.behaviors import PodBehavior, PodFailure, PodMatcher, RolloutBehavior
from lyftlearn_provider.testing.k8s.kubelet import ExecHandler
from lyftlearn_provider.testing.k8s.meta import Obj
from lyftlearn_provider.testing.k8s.resources import EVENTS, ResourceType, resource_named
from lyftlearn_provider.testing.k8s.server import EmulatorServer

T = TypeVar("T")


def _resource(kind: str) -> ResourceType:
    resource = resource_named(kind)
    if resource is None:
        raise ValueError(f"the emulator does not serve {kind!r}")
    return resource


class EmulatedCluster:
    """Steer a running emulator and look inside it from a test (the ``k8s`` fixture yields one).

    Behaviours registered here apply to pods and ReplicaSets created afterwards. Reads return copies
    of what the API server stores; clients under test should still go through the API
    (``kubernetes``/``kubernetes_asyncio`` clients, the cncf provider's hooks and operators, kubectl).
    """

    def __init__(
        self,
        server: EmulatorServer,
        kubeconfig: Path,
        namespace: str = "default",
        conn_id: str = "kubernetes_default",
    ) -> None:
        self.server = server
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.conn_id = conn_id

    @property
    def url(self) -> str:
        """Return the API server's URL."""
        return self.server.url

    def reset(self) -> None:
        """Delete every object and behaviour; the cluster is as new."""
        self.server.call(self.server.emulator.reset)

    # ------------------------------------------------------------------ behaviours

    def on_pod(
        self,
        behavior: PodBehavior,
        *,
        name_prefix: str | None = None,
        labels: Mapping[str, str] | None = None,
        namespace: str | None = None,
        predicate: PodMatcher | None = None,
    ) -> None:
        """Give pods that match (every criterion given) this behaviour; later registrations win.

        KubernetesPodOperator pods carry ``dag_id`` and ``task_id`` labels, so
        ``on_pod(PodBehavior(xcom={...}), labels={"task_id": "validate"})`` targets one task's pod.
        """
        self.server.call(
            self.server.emulator.add_pod_behavior,
            behavior,
            name_prefix=name_prefix,
            labels=labels,
            namespace=namespace,
            predicate=predicate,
        )

    def on_rollout(self, deployment: str, behavior: RolloutBehavior, *, namespace: str | None = None) -> None:
        """Make the next ReplicaSets of a Deployment behave this way (e.g. never become available)."""
        self.server.call(self.server.emulator.set_rollout_behavior, deployment, behavior, namespace)

    def fail_images_containing(self, marker: str, failure: PodFailure = "ErrImagePull") -> None:
        """Make every pod whose container image contains ``marker`` fail (default: the pull fails)."""
        self.server.call(self.server.emulator.fail_images_containing, marker, failure)

    def inject_fault(
        self,
        kind: str,
        count: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        seconds: float = 0.0,
        retry_after: int = 1,
        after: bool = False,
    ) -> None:
        """Make the next ``count`` requests matching ``method`` and ``path`` (a substring) meet a fault.

        ``kind`` is ``throttle`` (429 with ``Retry-After: retry_after``), ``server_error`` (500),
        ``unavailable`` (503), ``gateway_timeout`` (504), ``forbidden`` (403), ``reset`` (the
        connection is reset before the request is served, or after it with ``after=True``: the client
        never hears that its write landed) or ``delay`` (served normally, ``seconds`` late); see
        ``faults``.
        """
        self.server.call(
            self.server.emulator.faults.inject,
            kind,
            count,
            method=method,
            path=path,
            seconds=seconds,
            retry_after=retry_after,
            after=after,
        )

    def faults(self) -> list[dict[str, object]]:
        """Return the injected faults not yet used up."""
        return self.server.call(self.server.emulator.faults.pending)

    def on_exec(self, handler: ExecHandler) -> None:
        """Answer ``pods/exec`` requests with ``handler`` first (return ``None`` to pass one on)."""
        self.server.call(self.server.emulator.add_exec_handler, handler)

    # ------------------------------------------------------------------ objects

    def create(self, manifest: Obj, namespace: str | None = None) -> Obj:
        """Create an object from a manifest (``apiVersion``, ``kind``, ...) and return it as stored."""
        return self.server.call(self.server.emulator.create_manifest, manifest, namespace or self.namespace)

    def get(self, kind: str, name: str, namespace: str | None = None) -> Obj | None:
        """Return one object (by plural, kind or short name, e.g. ``"deploy"``), or ``None``."""
        resource = _resource(kind)
        scope = (namespace or self.namespace) if resource.namespaced else None
        return self.server.call(self.server.emulator.store.get, resource, scope, name)

    def objects(
        self,
        kind: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        """Return the objects of a kind in a namespace (default: the fixture's) that match the selectors."""
        resource = _resource(kind)
        scope = (namespace or self.namespace) if resource.namespaced else None
        listed = self.server.call(
            self.server.emulator.list,
            resource,
            scope,
            label_selector=label_selector,
            field_selector=field_selector,
        )
        return list(listed["items"])

    def events(self, involved_name: str | None = None, *, namespace: str | None = None) -> list[Obj]:
        """Return the Events in a namespace, optionally only those about the object ``involved_name``."""
        selector = f"involvedObject.name={involved_name}" if involved_name else None
        return self.objects(EVENTS.plural, namespace, field_selector=selector)

    def pod_logs(self, pod: str, container: str | None = None, namespace: str | None = None) -> list[str]:
        """Return the lines a pod's container (default: its first) has printed."""
        found = self.get("pods", pod, namespace)
        if found is None:
            raise ValueError(f"pod {pod!r} not found")
        name = container or found["spec"]["containers"][0]["name"]
        lines = self.server.call(self.server.emulator.kubelet.logs, found["metadata"]["namespace"], pod, name)
        return [line.text for line in lines]

    def requests(self) -> list[tuple[str, str]]:
        """Return ``(method, path?query)`` of the requests served so far (since the last reset)."""
        return self.server.call(lambda: list(self.server.emulator.requests))

    def wait_for(
        self, condition: Callable[[], T | None], timeout: float = 10.0, interval: float = 0.05, what: str = ""
    ) -> T:
        """Poll ``condition`` until it returns something truthy, and return that; fail after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what or condition!r}")
            time.sleep(interval)
