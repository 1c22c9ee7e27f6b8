"""The ReplicaSet controller: keeps each ReplicaSet's pods at ``spec.replicas`` and reports its status.

Pods are created through the API server (so admission applies: a missing service account shows up as
a ``FailedCreate`` event on the ReplicaSet, retried every second), and surplus pods are deleted least
useful first (unscheduled, pending, unready, newest), as the real controller picks them.
``minReadySeconds`` is taken as zero: a pod is available as soon as it is ready.
"""

from __future__ import annotations

import copy

from lyftlearn_provider.testing.k8s.errors import ApiError
from lyftlearn_provider.testing.k8s.events import EventRecorder
from lyftlearn_provider.testing.k8s.meta import Obj, controller_uid, find_condition, owner_reference, rfc3339
from lyftlearn_provider.testing.k8s.resources import PODS, REPLICA_SETS
from lyftlearn_provider.testing.k8s.store import ObjectStore, WatchEvent
from lyftlearn_provider.testing.k8s.workqueue import ClusterApi, WorkQueue, owner_name

CREATE_RETRY_SECONDS = 1.0


def _spec_replicas(rs: Obj) -> int:
    return int((rs.get("spec") or {}).get("replicas", 1))


def _ready(pod: Obj) -> bool:
    status = pod.get("status") or {}
    return status.get("phase") == "Running" and any(
        c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
    )


def _active(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and not pod["metadata"].get(
        "deletionTimestamp"
    )


def _deletion_order(pods: list[Obj]) -> list[Obj]:
    """Order pods the way the ReplicaSet controller picks victims: least useful first."""
    phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}
    newest_first = sorted(
        pods, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]), reverse=True
    )
    return sorted(
        newest_first,
        key=lambda p: (
            bool((p.get("spec") or {}).get("nodeName")),
            phase_rank.get((p.get("status") or {}).get("phase", "Pending"), 0),
            _ready(p),
            -sum(c.get("restartCount", 0) for c in (p.get("status") or {}).get("containerStatuses") or []),
        ),
    )


class ReplicaSetController:
    """Keep each ReplicaSet's pods at ``spec.replicas`` and report its status."""

    def __init__(self, store: ObjectStore, events: EventRecorder, api: ClusterApi, queue: WorkQueue) -> None:
        self._store = store
        self._events = events
        self._api = api
        self._queue = queue
        store.subscribe(self._on_change)

    def _on_change(self, event: WatchEvent) -> None:
        md = event.object["metadata"]
        if event.resource is REPLICA_SETS and event.type != "DELETED":
            self.enqueue(md["namespace"], md["name"])
        elif event.resource is PODS and (owner := owner_name(event.object, "ReplicaSet")):
            self.enqueue(md["namespace"], owner)

    def enqueue(self, namespace: str, name: str, delay: float = 0.0) -> None:
        """Queue a sync of one ReplicaSet."""
        self._queue.add(("ReplicaSet", namespace, name), lambda: self.sync(namespace, name), delay)

    def _pods(self, rs: Obj) -> list[Obj]:
        uid = rs["metadata"]["uid"]
        return [p for p in self._store.list(PODS, rs["metadata"]["namespace"]) if controller_uid(p) == uid]

    def sync(self, namespace: str, name: str) -> None:
        """Create or delete pods to match the ReplicaSet's replicas, then update its status."""
        rs = self._store.get(REPLICA_SETS, namespace, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        active = [p for p in self._pods(rs) if _active(p)]
        wanted = _spec_replicas(rs)
        failure: str | None = None
        if len(active) < wanted:
            failure = self._create_pods(rs, wanted - len(active))
        elif len(active) > wanted:
            for pod in _deletion_order(active)[: len(active) - wanted]:
                self._api.delete(PODS, namespace, pod["metadata"]["name"])
                self._events.record(
                    rs,
                    "SuccessfulDelete",
                    f"Deleted pod: {pod['metadata']['name']}",
                    component="replicaset-controller",
                )
        active = [p for p in self._pods(rs) if _active(p)]
        ready = sum(1 for p in active if _ready(p))
        status: Obj = {
            "replicas": len(active),
            "fullyLabeledReplicas": len(active),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if failure:
            status["conditions"] = [
                {"type": "ReplicaFailure", "status": "True", "reason": "FailedCreate", "message": failure}
            ]
            old = find_condition(rs, "ReplicaFailure")
            status["conditions"][0]["lastTransitionTime"] = old["lastTransitionTime"] if old else rfc3339()
        # The API omits zero counts (``omitempty``), except ``replicas``.
        status = {k: v for k, v in status.items() if v or k == "replicas"}
        if status != (rs.get("status") or {}):
            rs["status"] = status
            self._store.put(REPLICA_SETS, rs)

    def _create_pods(self, rs: Obj, count: int) -> str | None:
        md = rs["metadata"]
        template = copy.deepcopy(rs["spec"].get("template") or {})
        template_md = template.get("metadata") or {}
        for _ in range(count):
            pod: Obj = {
                "metadata": {
                    "generateName": f"{md['name']}-",
                    "namespace": md["namespace"],
                    "labels": dict(template_md.get("labels") or {}),
                    "annotations": dict(template_md.get("annotations") or {}),
                    "ownerReferences": [owner_reference(rs)],
                },
                "spec": copy.deepcopy(template.get("spec") or {}),
            }
            try:
                created = self._api.create(PODS, md["namespace"], pod)
            except ApiError as error:
                message = f"Error creating: {error.message}"
                self._events.record(
                    rs, "FailedCreate", message, type="Warning", component="replicaset-controller"
                )
                self.enqueue(md["namespace"], md["name"], delay=CREATE_RETRY_SECONDS)
                return message
            self._events.record(
                rs,
                "SuccessfulCreate",
                f"Created pod: {created['metadata']['name']}",
                component="replicaset-controller",
            )
        return None
