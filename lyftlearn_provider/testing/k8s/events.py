"""Core v1 Events, written the way Kubernetes components write them.

A repeat of the same event (same object, component, type, reason and message) is folded into the
existing Event -- ``count`` goes up and ``lastTimestamp`` moves -- as the client-go event recorder
does, so a pod stuck in image-pull back-off shows one ``BackOff`` event with a growing count.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from lyftlearn_provider.testing.k8s.meta import Obj, new_uid, rfc3339
from lyftlearn_provider.testing.k8s.resources import EVENTS
from lyftlearn_provider.testing.k8s.store import ObjectStore

NODE_NAME = "emulator-node"


def involved_object(obj: Mapping[str, Any], field_path: str | None = None) -> Obj:
    """Return the ``involvedObject`` reference for an object."""
    md = obj["metadata"]
    ref: Obj = {
        "kind": obj["kind"],
        "namespace": md.get("namespace"),
        "name": md["name"],
        "uid": md.get("uid"),
        "apiVersion": obj["apiVersion"],
        "resourceVersion": md.get("resourceVersion"),
    }
    if field_path:
        ref["fieldPath"] = field_path
    return {k: v for k, v in ref.items() if v is not None}


class EventRecorder:
    """Record Events about objects into the store (see the module docstring)."""

    def __init__(self, store: ObjectStore) -> None:
        self._store = store
        self._names: dict[tuple[str, ...], tuple[str, str]] = {}

    def record(
        self,
        obj: Mapping[str, Any],
        reason: str,
        message: str,
        *,
        type: str = "Normal",
        component: str = "kubelet",
        field_path: str | None = None,
    ) -> Obj:
        """Record (or count up) an event about ``obj``; return the stored Event."""
        involved = involved_object(obj, field_path)
        namespace = involved.get("namespace") or "default"
        key = (str(involved.get("uid")), component, type, reason, message, field_path or "")
        now = rfc3339()
        known = self._names.get(key)
        existing = self._store.get(EVENTS, *known) if known else None
        if existing is not None:
            existing["count"] = int(existing.get("count", 1)) + 1
            existing["lastTimestamp"] = now
            existing["involvedObject"] = involved
            return self._store.put(EVENTS, existing)
        # Named like client-go names events (the time in hex), so a list comes back in time order.
        name = f"{involved['name']}.{time.time_ns():x}"
        while self._store.get(EVENTS, namespace, name) is not None:
            name = f"{involved['name']}.{time.time_ns():x}"
        event: Obj = {
            "metadata": {"name": name, "namespace": namespace, "uid": new_uid(), "creationTimestamp": now},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "source": {"component": component, **({"host": NODE_NAME} if component == "kubelet" else {})},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": type,
            "eventTime": None,
            "reportingComponent": component,
            "reportingInstance": NODE_NAME if component == "kubelet" else "",
        }
        self._names[key] = (namespace, name)
        return self._store.put(EVENTS, event)

    def clear(self) -> None:
        """Forget which events exist (after the store was cleared)."""
        self._names.clear()
