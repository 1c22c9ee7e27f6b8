"""The Deployment controller, after the one in kube-controller-manager.

The Deployment controller keeps one ReplicaSet per distinct pod template, named
``<deployment>-<pod-template-hash>``, owned by the Deployment and annotated with its rollout revision.
A template change creates a ReplicaSet with the next revision; a change back to an older template
re-uses that ReplicaSet and moves it to the next revision (that is how ``kubectl rollout undo``
works). A rolling update scales the new ReplicaSet up and the old ones down within ``maxSurge`` and
``maxUnavailable``; ``Recreate`` scales the old ones to zero first. Old ReplicaSets beyond
``revisionHistoryLimit`` are deleted once a rollout completes. Status and the ``Available`` and
``Progressing`` conditions (``NewReplicaSetCreated``, ``FoundNewReplicaSet``, ``ReplicaSetUpdated``,
``NewReplicaSetAvailable``, ``ProgressDeadlineExceeded``) follow the real controller's rules,
including the progress deadline: a rollout that makes no progress for ``progressDeadlineSeconds``
reports ``Progressing=False``/``ProgressDeadlineExceeded`` -- then, not at once -- while its old
ReplicaSet keeps serving. A paused Deployment is not rolled out (and reports no progress) until resumed.
"""

from __future__ import annotations

import copy
import json
import math
import time

from lyftlearn_provider.testing.k8s.behaviors import BehaviorBook
from lyftlearn_provider.testing.k8s.errors import ApiError
from lyftlearn_provider.testing.k8s.events import EventRecorder
from lyftlearn_provider.testing.k8s.meta import (
    SAFE_ALPHABET,
    Obj,
    annotations_of,
    controller_uid,
    find_condition,
    owner_reference,
    parse_time,
    prune_empty,
    rfc3339,
)
from lyftlearn_provider.testing.k8s.resources import DEPLOYMENTS, REPLICA_SETS
from lyftlearn_provider.testing.k8s.store import ObjectStore, WatchEvent
from lyftlearn_provider.testing.k8s.workqueue import ClusterApi, WorkQueue, owner_name

TEMPLATE_HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
#: Deployment annotations the controller does not copy onto its ReplicaSets.
_NOT_COPIED = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION,
        REVISION_HISTORY,
        DESIRED_REPLICAS,
        MAX_REPLICAS,
        "deprecated.deployment.rollback.to",
    }
)

NEW_RS_CREATED = "NewReplicaSetCreated"
FOUND_NEW_RS = "FoundNewReplicaSet"
RS_UPDATED = "ReplicaSetUpdated"
NEW_RS_AVAILABLE = "NewReplicaSetAvailable"
TIMED_OUT = "ProgressDeadlineExceeded"


def fnv32a(data: bytes) -> int:
    """Return the 32-bit FNV-1a hash of ``data`` (the hash Kubernetes uses for pod templates)."""
    value = 0x811C9DC5
    for byte in data:
        value = ((value ^ byte) * 0x01000193) & 0xFFFFFFFF
    return value


def normalized_template(template: Obj | None) -> Obj:
    """Return a pod template without empty members and without the ``pod-template-hash`` label."""
    result = copy.deepcopy(template or {})
    ((result.get("metadata") or {}).get("labels") or {}).pop(TEMPLATE_HASH_LABEL, None)
    pruned: Obj = prune_empty(result)
    return pruned


def templates_equal(a: Obj | None, b: Obj | None) -> bool:
    """Tell whether two pod templates are the same, ignoring ``pod-template-hash``."""
    return normalized_template(a) == normalized_template(b)


def pod_template_hash(template: Obj | None, collision_count: int = 0) -> str:
    """Return the ``pod-template-hash`` of a template, encoded the way Kubernetes encodes it."""
    canonical = json.dumps(normalized_template(template), sort_keys=True, separators=(",", ":"))
    if collision_count:
        canonical += f"/{collision_count}"
    digits = str(fnv32a(canonical.encode()))
    return "".join(SAFE_ALPHABET[ord(ch) % len(SAFE_ALPHABET)] for ch in digits)


def int_or_percent(value: int | str | None, total: int, *, round_up: bool, default: str = "25%") -> int:
    """Resolve an ``IntOrString`` such as ``maxSurge`` (``2`` or ``"25%"``) against ``total``."""
    value = default if value is None else value
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        scaled = int(text[:-1]) * total / 100
        return math.ceil(scaled) if round_up else math.floor(scaled)
    return int(text)


def surge_and_unavailable(deployment: Obj) -> tuple[int, int]:
    """Return the Deployment's ``(maxSurge, maxUnavailable)`` as pod counts (Recreate: ``(0, 0)``)."""
    spec = deployment.get("spec") or {}
    strategy = spec.get("strategy") or {}
    if strategy.get("type") == "Recreate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    replicas = int(spec.get("replicas", 1))
    surge = int_or_percent(rolling.get("maxSurge"), replicas, round_up=True)
    unavailable = int_or_percent(rolling.get("maxUnavailable"), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        # Both zero would block every rollout; the real controller allows one unavailable pod.
        unavailable = 1
    return surge, min(unavailable, replicas)


def revision(obj: Obj) -> int:
    """Return an object's ``deployment.kubernetes.io/revision`` (0 when unset)."""
    try:
        return int(annotations_of(obj).get(REVISION, "0"))
    except ValueError:
        return 0


def _spec_replicas(rs: Obj) -> int:
    return int((rs.get("spec") or {}).get("replicas", 1))


def _status_count(rs: Obj, field: str) -> int:
    return int((rs.get("status") or {}).get(field) or 0)


def _set_condition(status: Obj, new: Obj) -> None:
    """Set a condition as ``SetDeploymentCondition`` does (a no-op if its status and reason hold).

    A changed condition moves to the end of the list, as in Kubernetes.
    """
    conditions: list[Obj] = status.setdefault("conditions", [])
    current = next((c for c in conditions if c["type"] == new["type"]), None)
    if (
        current is not None
        and current["status"] == new["status"]
        and current.get("reason") == new.get("reason")
    ):
        return
    if current is not None and current["status"] == new["status"]:
        new["lastTransitionTime"] = current["lastTransitionTime"]
    status["conditions"] = [c for c in conditions if c is not current] + [new]


def _condition(kind: str, value: str, reason: str, message: str) -> Obj:
    now = rfc3339()
    return {
        "type": kind,
        "status": value,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }


class DeploymentController:
    """Roll Deployments out through ReplicaSets (see the module docstring)."""

    def __init__(
        self,
        store: ObjectStore,
        events: EventRecorder,
        behaviors: BehaviorBook,
        api: ClusterApi,
        queue: WorkQueue,
    ) -> None:
        self._store = store
        self._events = events
        self._behaviors = behaviors
        self._api = api
        self._queue = queue
        # When each Deployment (by uid) last made progress, to the sub-second (conditions keep seconds).
        self._progress_marks: dict[str, float] = {}
        store.subscribe(self._on_change)

    def clear(self) -> None:
        """Forget per-Deployment progress marks."""
        self._progress_marks.clear()

    def _on_change(self, event: WatchEvent) -> None:
        md = event.object["metadata"]
        if event.resource is DEPLOYMENTS:
            if event.type == "DELETED":
                self._progress_marks.pop(md.get("uid", ""), None)
            else:
                self.enqueue(md["namespace"], md["name"])
        elif event.resource is REPLICA_SETS and (owner := owner_name(event.object, "Deployment")):
            self.enqueue(md["namespace"], owner)

    def enqueue(self, namespace: str, name: str, delay: float = 0.0) -> None:
        """Queue a sync of one Deployment."""
        self._queue.add(("Deployment", namespace, name), lambda: self.sync(namespace, name), delay)

    def sync(self, namespace: str, name: str) -> None:
        """Move the Deployment's rollout one step forward and report its status."""
        deployment = self._store.get(DEPLOYMENTS, namespace, name)
        if deployment is None or deployment["metadata"].get("deletionTimestamp"):
            return
        stored = copy.deepcopy(deployment)
        uid = deployment["metadata"]["uid"]
        owned = [rs for rs in self._store.list(REPLICA_SETS, namespace) if controller_uid(rs) == uid]
        new_rs, old = self._new_replicaset(deployment, owned)
        if not deployment["spec"].get("paused"):
            if (deployment["spec"].get("strategy") or {}).get("type") == "Recreate":
                new_rs, old = self._recreate(deployment, new_rs, old)
            else:
                new_rs, old = self._rolling_update(deployment, new_rs, old)
        self._update_status(deployment, stored, new_rs, old)

    # -- the new ReplicaSet

    def _new_replicaset(self, deployment: Obj, owned: list[Obj]) -> tuple[Obj, list[Obj]]:
        template = deployment["spec"]["template"]
        existing = next((rs for rs in owned if templates_equal(rs["spec"].get("template"), template)), None)
        old = [rs for rs in owned if rs is not existing]
        next_revision = max((revision(rs) for rs in old), default=0) + 1
        annotations = deployment["metadata"].setdefault("annotations", {})
        if existing is not None:
            if revision(existing) < next_revision:
                existing = self._promote(deployment, existing, next_revision)
            annotations[REVISION] = str(revision(existing))
            if find_condition(deployment, "Progressing") is None:
                message = f'Found new replica set "{existing["metadata"]["name"]}"'
                self._progressed(deployment, _condition("Progressing", "True", FOUND_NEW_RS, message))
            return existing, old
        created = self._create_replicaset(deployment, next_revision)
        annotations[REVISION] = str(next_revision)
        message = f'Created new replica set "{created["metadata"]["name"]}"'
        self._progressed(deployment, _condition("Progressing", "True", NEW_RS_CREATED, message))
        return created, old

    def _copied_annotations(self, deployment: Obj) -> dict[str, str]:
        return {k: v for k, v in annotations_of(deployment).items() if k not in _NOT_COPIED}

    def _promote(self, deployment: Obj, rs: Obj, new_revision: int) -> Obj:
        """Give a re-used (older) ReplicaSet the newest revision, remembering its former ones."""
        annotations = rs["metadata"].setdefault("annotations", {})
        annotations.update(self._copied_annotations(deployment))
        former = annotations.get(REVISION)
        if former:
            history = annotations.get(REVISION_HISTORY)
            annotations[REVISION_HISTORY] = f"{history},{former}" if history else former
        annotations[REVISION] = str(new_revision)
        return self._store.put(REPLICA_SETS, rs)

    def _create_replicaset(self, deployment: Obj, new_revision: int) -> Obj:
        md, spec = deployment["metadata"], deployment["spec"]
        collisions = int((deployment.get("status") or {}).get("collisionCount") or 0)
        template_hash = pod_template_hash(spec["template"], collisions)
        template = copy.deepcopy(spec["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[TEMPLATE_HASH_LABEL] = template_hash
        selector = copy.deepcopy(spec["selector"])
        selector.setdefault("matchLabels", {})[TEMPLATE_HASH_LABEL] = template_hash
        surge, _ = surge_and_unavailable(deployment)
        replicas = int(spec.get("replicas", 1))
        body: Obj = {
            "metadata": {
                "name": f"{md['name']}-{template_hash}",
                "namespace": md["namespace"],
                "labels": dict(template["metadata"]["labels"]),
                "annotations": {
                    **self._copied_annotations(deployment),
                    REVISION: str(new_revision),
                    DESIRED_REPLICAS: str(replicas),
                    MAX_REPLICAS: str(replicas + surge),
                },
                "ownerReferences": [owner_reference(deployment)],
            },
            "spec": {
                "replicas": 0,
                "minReadySeconds": spec.get("minReadySeconds", 0),
                "selector": selector,
                "template": template,
            },
        }
        try:
            created = self._api.create(REPLICA_SETS, md["namespace"], body)
        except ApiError as error:
            if error.reason != "AlreadyExists":
                raise
            # A foreign ReplicaSet holds the name: change the hash, as the real controller does.
            deployment.setdefault("status", {})["collisionCount"] = collisions + 1
            return self._create_replicaset(deployment, new_revision)
        self._behaviors.capture_rollout(created["metadata"]["uid"], deployment)
        return created

    # -- scaling

    def _scale(self, deployment: Obj, rs: Obj, replicas: int) -> Obj:
        before = _spec_replicas(rs)
        surge, _ = surge_and_unavailable(deployment)
        desired = int(deployment["spec"].get("replicas", 1))
        rs["spec"]["replicas"] = replicas
        rs["metadata"]["generation"] = int(rs["metadata"].get("generation", 1)) + 1
        annotations = rs["metadata"].setdefault("annotations", {})
        annotations[DESIRED_REPLICAS] = str(desired)
        annotations[MAX_REPLICAS] = str(desired + surge)
        scaled = self._store.put(REPLICA_SETS, rs)
        direction = "up" if replicas > before else "down"
        self._events.record(
            deployment,
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {rs['metadata']['name']} from {before} to {replicas}",
            component="deployment-controller",
        )
        return scaled

    def _rolling_update(self, deployment: Obj, new_rs: Obj, old: list[Obj]) -> tuple[Obj, list[Obj]]:
        replicas = int(deployment["spec"].get("replicas", 1))
        surge, unavailable = surge_and_unavailable(deployment)
        current_new = _spec_replicas(new_rs)
        target = current_new
        if current_new > replicas:
            target = replicas
        elif current_new < replicas:
            total = current_new + sum(_spec_replicas(rs) for rs in old)
            room = replicas + surge - total
            if room > 0:
                target = current_new + min(room, replicas - current_new)
        if target != current_new:
            return self._scale(deployment, new_rs, target), old
        if not any(_spec_replicas(rs) for rs in old):
            self._cleanup(deployment, old)
            return new_rs, old
        old = sorted(old, key=revision)
        min_available = replicas - unavailable
        all_pods = current_new + sum(_spec_replicas(rs) for rs in old)
        new_unavailable = current_new - _status_count(new_rs, "availableReplicas")
        budget = all_pods - min_available - new_unavailable
        scaled = False
        if budget > 0:
            # First drop old pods that are not available anyway: that costs no availability.
            for i, rs in enumerate(old):
                unhealthy = _spec_replicas(rs) - _status_count(rs, "availableReplicas")
                if budget <= 0 or _spec_replicas(rs) == 0 or unhealthy <= 0:
                    continue
                cut = min(budget, unhealthy)
                old[i] = self._scale(deployment, rs, _spec_replicas(rs) - cut)
                budget -= cut
                scaled = True
            available = _status_count(new_rs, "availableReplicas") + sum(
                _status_count(rs, "availableReplicas") for rs in old
            )
            excess = available - min_available
            for i, rs in enumerate(old):
                if excess <= 0:
                    break
                if _spec_replicas(rs) == 0:
                    continue
                cut = min(excess, _spec_replicas(rs))
                old[i] = self._scale(deployment, rs, _spec_replicas(rs) - cut)
                excess -= cut
                scaled = True
        if not scaled:
            self._cleanup(deployment, old)
        return new_rs, old

    def _recreate(self, deployment: Obj, new_rs: Obj, old: list[Obj]) -> tuple[Obj, list[Obj]]:
        if any(_spec_replicas(rs) for rs in old):
            return new_rs, [self._scale(deployment, rs, 0) if _spec_replicas(rs) else rs for rs in old]
        if any(_status_count(rs, "replicas") for rs in old):
            return new_rs, old
        replicas = int(deployment["spec"].get("replicas", 1))
        if _spec_replicas(new_rs) != replicas:
            return self._scale(deployment, new_rs, replicas), old
        self._cleanup(deployment, old)
        return new_rs, old

    def _cleanup(self, deployment: Obj, old: list[Obj]) -> None:
        """Delete the oldest idle ReplicaSets beyond ``revisionHistoryLimit``, once the rollout completed."""
        if not self._complete(deployment, deployment.get("status") or {}):
            return
        limit = int(deployment["spec"].get("revisionHistoryLimit", 10))
        idle = [
            rs
            for rs in old
            if _spec_replicas(rs) == 0
            and _status_count(rs, "replicas") == 0
            and _status_count(rs, "observedGeneration") >= int(rs["metadata"].get("generation", 1))
        ]
        for rs in sorted(idle, key=revision)[: max(0, len(idle) - limit)]:
            self._api.delete(REPLICA_SETS, rs["metadata"]["namespace"], rs["metadata"]["name"])

    # -- status

    @staticmethod
    def _complete(deployment: Obj, status: Obj) -> bool:
        replicas = int(deployment["spec"].get("replicas", 1))
        return (
            int(status.get("updatedReplicas") or 0) == replicas
            and int(status.get("replicas") or 0) == replicas
            and int(status.get("availableReplicas") or 0) == replicas
            and int(status.get("observedGeneration") or 0) >= int(deployment["metadata"].get("generation", 1))
        )

    @staticmethod
    def _progressing(before: Obj, after: Obj) -> bool:
        def old_replicas(status: Obj) -> int:
            return int(status.get("replicas") or 0) - int(status.get("updatedReplicas") or 0)

        return (
            int(after.get("updatedReplicas") or 0) > int(before.get("updatedReplicas") or 0)
            or int(after.get("readyReplicas") or 0) > int(before.get("readyReplicas") or 0)
            or int(after.get("availableReplicas") or 0) > int(before.get("availableReplicas") or 0)
            or old_replicas(after) < old_replicas(before)
        )

    def _progressed(self, deployment: Obj, progressing: Obj) -> None:
        """Set a ``Progressing=True`` condition; if it is new, the progress deadline starts again."""
        status = deployment.setdefault("status", {})
        before = find_condition(deployment, "Progressing")
        _set_condition(status, progressing)
        if find_condition(deployment, "Progressing") is not before:
            self._progress_marks[deployment["metadata"]["uid"]] = time.time()

    def _deadline(self, deployment: Obj, progressing: Obj) -> float:
        seconds = int(deployment["spec"].get("progressDeadlineSeconds", 600))
        mark = self._progress_marks.get(deployment["metadata"]["uid"])
        if mark is None:
            mark = parse_time(progressing["lastUpdateTime"]).timestamp()
        return mark + seconds

    def _update_status(self, deployment: Obj, stored: Obj, new_rs: Obj, old: list[Obj]) -> None:
        all_rs = [new_rs, *old]
        replicas = int(deployment["spec"].get("replicas", 1))
        _, unavailable = surge_and_unavailable(deployment)
        available = sum(_status_count(rs, "availableReplicas") for rs in all_rs)
        previous = stored.get("status") or {}
        status: Obj = {
            "observedGeneration": deployment["metadata"].get("generation", 1),
            "replicas": sum(_status_count(rs, "replicas") for rs in all_rs),
            "updatedReplicas": _status_count(new_rs, "replicas"),
            "readyReplicas": sum(_status_count(rs, "readyReplicas") for rs in all_rs),
            "availableReplicas": available,
            "unavailableReplicas": max(0, sum(_spec_replicas(rs) for rs in all_rs) - available),
            "conditions": copy.deepcopy((deployment.get("status") or {}).get("conditions") or []),
        }
        if "collisionCount" in (deployment.get("status") or {}):
            status["collisionCount"] = deployment["status"]["collisionCount"]
        if available >= replicas - unavailable:
            _set_condition(
                status,
                _condition(
                    "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."
                ),
            )
        else:
            _set_condition(
                status,
                _condition(
                    "Available",
                    "False",
                    "MinimumReplicasUnavailable",
                    "Deployment does not have minimum availability.",
                ),
            )
        deployment["status"] = status
        if not deployment["spec"].get("paused"):
            self._estimate_progress(deployment, previous, new_rs)
        # The API omits zero counts (``omitempty``): clients see ``None``, not 0.
        deployment["status"] = {k: v for k, v in status.items() if v != 0}
        if deployment != stored:
            self._store.put(DEPLOYMENTS, deployment)

    def _estimate_progress(self, deployment: Obj, previous: Obj, new_rs: Obj) -> None:
        status = deployment["status"]
        name = new_rs["metadata"]["name"]
        current = find_condition(deployment, "Progressing")
        settled = (
            status["replicas"] == status["updatedReplicas"]
            and current is not None
            and current.get("reason") == NEW_RS_AVAILABLE
        )
        if settled:
            return
        if self._complete(deployment, status):
            message = f'ReplicaSet "{name}" has successfully progressed.'
            _set_condition(status, _condition("Progressing", "True", NEW_RS_AVAILABLE, message))
            return
        if self._progressing(previous, status):
            update = _condition("Progressing", "True", RS_UPDATED, f'ReplicaSet "{name}" is progressing.')
            # Unlike other condition changes, progress always refreshes lastUpdateTime (the deadline's base).
            if current is not None and current["status"] == "True":
                update["lastTransitionTime"] = current["lastTransitionTime"]
            status["conditions"] = [c for c in status["conditions"] if c is not current] + [update]
            self._progress_marks[deployment["metadata"]["uid"]] = time.time()
            current = update
        if current is None or current.get("reason") == NEW_RS_AVAILABLE:
            return
        if current.get("reason") == TIMED_OUT:
            return
        deadline = self._deadline(deployment, current)
        now = time.time()
        if deadline < now:
            message = f'ReplicaSet "{name}" has timed out progressing.'
            _set_condition(status, _condition("Progressing", "False", TIMED_OUT, message))
        else:
            md = deployment["metadata"]
            self.enqueue(md["namespace"], md["name"], delay=deadline - now + 0.01)
