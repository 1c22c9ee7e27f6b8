"""Pure rules about Deployment rollouts: the verdict, the revision to roll back to, the failure message.

Also the small pieces those need: label selectors as query text, and warning Events as message lines.

Everything here works on the Kubernetes API's JSON (camelCase dicts, as ``kubectl get -o json``
prints them) and imports the standard library only, so DAG files, operators, hooks and triggers share
one rule and tests can state it as a table. The I/O lives in
:class:`~lyftlearn_provider.hooks.kubernetes.DeploymentHook` and
:class:`~lyftlearn_provider.triggers.rollout.RolloutTrigger`.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

#: The ReplicaSet annotation that holds its rollout revision (the Deployment carries its current one).
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
#: The label the Deployment controller adds to each ReplicaSet's template and selector.
TEMPLATE_HASH_LABEL = "pod-template-hash"
#: Annotations ``kubectl rollout undo`` keeps from the Deployment instead of taking them from the ReplicaSet.
UNDO_KEEPS_ANNOTATIONS = frozenset(
    {
        "kubectl.kubernetes.io/last-applied-configuration",
        REVISION_ANNOTATION,
        "deployment.kubernetes.io/revision-history",
        "deployment.kubernetes.io/desired-replicas",
        "deployment.kubernetes.io/max-replicas",
        "deprecated.deployment.rollback.to",
    }
)
PROGRESS_DEADLINE_EXCEEDED = "ProgressDeadlineExceeded"
DEPLOYMENT_PAUSED = "DeploymentPaused"


class RolloutState(str, Enum):
    """Where a Deployment's rollout stands."""

    #: The controller saw the latest spec and every desired replica is updated, ready and available.
    ROLLED_OUT = "rolled_out"
    #: Not there yet (or paused): look again later.
    PROGRESSING = "progressing"
    #: The controller gave up: ``Progressing=False`` (``ProgressDeadlineExceeded``).
    FAILED = "failed"


class RolloutEventStatus(str, Enum):
    """What a :class:`~lyftlearn_provider.triggers.rollout.RolloutTrigger` reports to its task."""

    ROLLED_OUT = "rolled_out"
    FAILED = "failed"
    #: The task's deadline passed while the rollout was still progressing.
    TIMEOUT = "timeout"
    #: The trigger could not follow the rollout (the Deployment disappeared, permissions, a bug).
    ERROR = "error"


@dataclass(frozen=True)
class RolloutVerdict:
    """What a Deployment's status says about its rollout.

    :param state: rolled out, progressing or failed.
    :param summary: what was seen, e.g. ``generation 4 observed 4; updated 1/3, ready 1/3, available
        1/3; Progressing=False ProgressDeadlineExceeded``.
    :param reason: why it failed or is held up (``ProgressDeadlineExceeded``, ``DeploymentPaused``,
        ``FailedCreate``); None when nothing is wrong.
    :param desired: the replicas the Deployment asks for (None: not known, e.g. rebuilt from an old event).
    :param updated: replicas running the latest template.
    :param ready: replicas that are ready.
    :param available: replicas that are available.
    """

    state: RolloutState
    summary: str
    reason: str | None
    desired: int | None = None
    updated: int | None = None
    ready: int | None = None
    available: int | None = None

    def to_payload(self) -> dict[str, Any]:
        """Return the verdict as JSON primitives (for a trigger event)."""
        return {
            "state": self.state.value,
            "summary": self.summary,
            "reason": self.reason,
            "desired": self.desired,
            "updated": self.updated,
            "ready": self.ready,
            "available": self.available,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> RolloutVerdict:
        """Return the verdict :meth:`to_payload` produced; raise ``ValueError`` for anything else."""
        try:
            return cls(
                state=RolloutState(payload["state"]),
                summary=str(payload["summary"]),
                reason=payload.get("reason"),
                desired=_optional_int(payload.get("desired")),
                updated=_optional_int(payload.get("updated")),
                ready=_optional_int(payload.get("ready")),
                available=_optional_int(payload.get("available")),
            )
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"not a rollout verdict: {payload!r}") from None


@dataclass(frozen=True)
class RolloutEvent:
    """What a rollout trigger fires: one shape, built and read in one place.

    :param status: ``rolled_out``, ``failed``, ``timeout`` or ``error``.
    :param namespace: the Deployment's namespace.
    :param name: the Deployment's name.
    :param summary: what the last look at the Deployment saw ("" when it could not look).
    :param reason: the verdict's reason, or what kind of error.
    :param message: the sentence to show a person.
    :param verdict: the last verdict, if the trigger got one.
    """

    status: RolloutEventStatus
    namespace: str
    name: str
    summary: str
    reason: str | None
    message: str
    verdict: RolloutVerdict | None = None

    def to_payload(self) -> dict[str, Any]:
        """Return the event as the JSON-safe payload of a ``TriggerEvent``."""
        return {
            "status": self.status.value,
            "namespace": self.namespace,
            "name": self.name,
            "summary": self.summary,
            "reason": self.reason,
            "message": self.message,
            "verdict": self.verdict.to_payload() if self.verdict is not None else None,
        }

    @classmethod
    def from_payload(cls, payload: Any) -> RolloutEvent:
        """Return the event a rollout trigger sent; raise ``ValueError`` for anything else."""
        if not isinstance(payload, Mapping):
            raise ValueError(f"not a rollout event: {payload!r}")
        try:
            verdict = payload.get("verdict")
            return cls(
                status=RolloutEventStatus(payload["status"]),
                namespace=str(payload["namespace"]),
                name=str(payload["name"]),
                summary=str(payload.get("summary") or ""),
                reason=payload.get("reason"),
                message=str(payload.get("message") or ""),
                verdict=RolloutVerdict.from_payload(verdict) if verdict is not None else None,
            )
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"not a rollout event: {payload!r}") from None


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _count(value: Any, default: int = 0) -> int:
    # The API omits zero counts (omitempty): absent means 0, not unknown.
    try:
        return default if value is None else int(value)
    except (TypeError, ValueError):
        return default


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def rollout_verdict(deployment: Mapping[str, Any], *, generation: int | None = None) -> RolloutVerdict:
    """Return where a Deployment's rollout stands, by the rule ``kubectl rollout status`` applies.

    Rolled out once ``status.observedGeneration`` has reached ``metadata.generation`` (and
    ``generation``, when given) and the updated, ready and available replicas all equal
    ``spec.replicas`` (default 1) with no old replica left; zero replicas are rolled out as soon as
    they are observed. Failed on a ``Progressing`` condition with status ``False`` (the controller
    reports ``ProgressDeadlineExceeded`` after ``spec.progressDeadlineSeconds`` without progress), but
    only once the latest spec is observed: a condition from before it says nothing about it. Anything
    else is progressing -- a paused Deployment too (reason ``DeploymentPaused``): it rolls out when
    resumed, and never times out by itself.

    :param deployment: the Deployment as the API returns it.
    :param generation: the ``metadata.generation`` a write of ours produced; the verdict waits until the
        controller has observed at least that one.
    """
    metadata = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    wanted = max(_count(metadata.get("generation"), 1), generation or 0)
    observed = _count(status.get("observedGeneration"))
    desired = _count(spec.get("replicas"), 1)
    total = _count(status.get("replicas"))
    updated = _count(status.get("updatedReplicas"))
    ready = _count(status.get("readyReplicas"))
    available = _count(status.get("availableReplicas"))
    progressing = _condition(status, "Progressing")
    replica_failure = _condition(status, "ReplicaFailure")
    paused = bool(spec.get("paused"))

    parts = [f"generation {wanted} observed {observed}" if status else f"generation {wanted}, no status yet"]
    counts = f"updated {updated}/{desired}, ready {ready}/{desired}, available {available}/{desired}"
    if total > updated:
        counts += f", {total - updated} old pending termination"
    parts.append(counts)
    if progressing is not None:
        parts.append(f"Progressing={progressing.get('status')} {progressing.get('reason') or ''}".rstrip())
    if replica_failure is not None and replica_failure.get("status") == "True":
        parts.append(f"ReplicaFailure {replica_failure.get('reason') or ''}".rstrip())
    if paused:
        parts.append("paused")
    summary = "; ".join(parts)
    figures = {"desired": desired, "updated": updated, "ready": ready, "available": available}

    if observed < wanted:
        return RolloutVerdict(
            RolloutState.PROGRESSING, summary, DEPLOYMENT_PAUSED if paused else None, **figures
        )
    if updated == ready == available == desired and total <= desired:
        # Checked before the conditions: pods that came up after the deadline are serving all the same.
        return RolloutVerdict(RolloutState.ROLLED_OUT, summary, None, **figures)
    if progressing is not None and progressing.get("status") == "False":
        reason = str(progressing.get("reason") or "ProgressingFalse")
        return RolloutVerdict(RolloutState.FAILED, summary, reason, **figures)
    if paused:
        return RolloutVerdict(RolloutState.PROGRESSING, summary, DEPLOYMENT_PAUSED, **figures)
    if replica_failure is not None and replica_failure.get("status") == "True":
        reason = str(replica_failure.get("reason") or "ReplicaFailure")
        return RolloutVerdict(RolloutState.PROGRESSING, summary, reason, **figures)
    return RolloutVerdict(RolloutState.PROGRESSING, summary, None, **figures)


# ---------------------------------------------------------------------------------------- rollback
def revision_of(obj: Mapping[str, Any]) -> int | None:
    """Return an object's ``deployment.kubernetes.io/revision``, or None when it has none."""
    value = ((obj.get("metadata") or {}).get("annotations") or {}).get(REVISION_ANNOTATION)
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _pruned(value: Any) -> Any:
    if isinstance(value, Mapping):
        pruned = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [_pruned(item) for item in value]
    return value


def template_without_hash(template: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return a copy of a pod template without the ``pod-template-hash`` label the controller adds."""
    result = copy.deepcopy(dict(template or {}))
    labels = (result.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(TEMPLATE_HASH_LABEL, None)
    return result


def same_template(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Tell whether two pod templates are the same, ignoring ``pod-template-hash`` and empty fields.

    Empty and absent fields are equal, as for the Deployment controller (the API omits empty ones).
    """
    return bool(_pruned(template_without_hash(a)) == _pruned(template_without_hash(b)))


def owned_replica_sets(
    deployment: Mapping[str, Any], replica_sets: Sequence[Mapping[str, Any]]
) -> list[Mapping[str, Any]]:
    """Return the ReplicaSets the Deployment controls (by its ``uid`` in their ``ownerReferences``)."""
    uid = (deployment.get("metadata") or {}).get("uid")
    return [
        rs
        for rs in replica_sets
        if any(
            ref.get("uid") == uid and ref.get("controller")
            for ref in (rs.get("metadata") or {}).get("ownerReferences") or []
        )
    ]


def current_replica_set(
    deployment: Mapping[str, Any], replica_sets: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """Return the ReplicaSet of the Deployment's current template; None until the controller makes it."""
    template = (deployment.get("spec") or {}).get("template")
    matching = [
        rs
        for rs in owned_replica_sets(deployment, replica_sets)
        if same_template((rs.get("spec") or {}).get("template"), template)
    ]
    return max(matching, key=lambda rs: revision_of(rs) or 0, default=None)


def previous_replica_set(
    deployment: Mapping[str, Any], replica_sets: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """Return the ReplicaSet of the revision before the current one, as ``kubectl rollout undo`` picks it.

    The current revision is that of the ReplicaSet whose template is the Deployment's. When the
    controller has not made that ReplicaSet yet (the template was just changed), every existing revision
    is older and the newest of them is the previous one -- where ``kubectl``, taking the second newest,
    would go one revision too far back.
    """
    owned = [rs for rs in owned_replica_sets(deployment, replica_sets) if revision_of(rs) is not None]
    current = current_replica_set(deployment, owned)
    below = revision_of(current) if current is not None else None
    candidates = [
        rs for rs in owned if rs is not current and (below is None or (revision_of(rs) or 0) < below)
    ]
    return max(candidates, key=lambda rs: revision_of(rs) or 0, default=None)


def rollback_template(
    deployment: Mapping[str, Any], replica_sets: Sequence[Mapping[str, Any]]
) -> Mapping[str, Any] | None:
    """Return the pod template ``kubectl rollout undo`` restores, or None when there is no earlier revision.

    :param deployment: the Deployment as the API returns it.
    :param replica_sets: its ReplicaSets (others are ignored: only those it controls count).
    """
    previous = previous_replica_set(deployment, replica_sets)
    if previous is None:
        return None
    return template_without_hash((previous.get("spec") or {}).get("template"))


def rollback_annotations(deployment: Mapping[str, Any], replica_set: Mapping[str, Any]) -> dict[str, str]:
    """Return the Deployment annotations ``kubectl rollout undo`` writes when it restores ``replica_set``.

    The controller copies a Deployment's annotations onto each ReplicaSet it makes; undo copies them
    back, so what was recorded on the Deployment with a revision (such as the model it serves) comes
    back with it. The controller's own bookkeeping annotations stay as they are.
    """
    current = dict((deployment.get("metadata") or {}).get("annotations") or {})
    restored = {k: v for k, v in current.items() if k in UNDO_KEEPS_ANNOTATIONS}
    for key, value in ((replica_set.get("metadata") or {}).get("annotations") or {}).items():
        if key not in UNDO_KEEPS_ANNOTATIONS:
            restored[key] = value
    return restored


def rolled_back(
    deployment: Mapping[str, Any], replica_sets: Sequence[Mapping[str, Any]]
) -> dict[str, Any] | None:
    """Return the Deployment as ``kubectl rollout undo`` writes it back; None without an earlier revision.

    The result keeps the Deployment's ``resourceVersion``: written with a PUT, it is a compare-and-swap.
    """
    previous = previous_replica_set(deployment, replica_sets)
    if previous is None:
        return None
    body = copy.deepcopy(dict(deployment))
    body.pop("status", None)
    body.setdefault("spec", {})["template"] = template_without_hash(
        (previous.get("spec") or {}).get("template")
    )
    body.setdefault("metadata", {})["annotations"] = rollback_annotations(deployment, previous)
    return body


# ---------------------------------------------------------------------------------- objects, events
#: Longest event message kept in a line of :func:`event_lines`.
MAX_EVENT_MESSAGE = 300


def label_selector(selector: Mapping[str, Any] | None) -> str:
    """Return a ``LabelSelector`` (``matchLabels`` and ``matchExpressions``) as a selector string."""
    selector = selector or {}
    terms = [f"{key}={value}" for key, value in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression["key"], expression["operator"]
        values = ",".join(expression.get("values") or [])
        terms.append(
            {
                "In": f"{key} in ({values})",
                "NotIn": f"{key} notin ({values})",
                "Exists": key,
                "DoesNotExist": f"!{key}",
            }[operator]
        )
    return ",".join(terms)


def _when(event: Mapping[str, Any]) -> tuple[datetime, int]:
    """Return when an event last happened, and its resourceVersion to order events of the same second."""
    stamp = (
        event.get("lastTimestamp")
        or event.get("eventTime")
        or (event.get("metadata") or {}).get("creationTimestamp")
    )
    try:
        moment = datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        moment = datetime.min
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        version = int((event.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        version = 0
    return moment, version


def _pattern(event: Mapping[str, Any]) -> tuple[str, str, str]:
    """Return what makes two warnings the same problem: kind, reason, and message without object names.

    The names (with the suffix of a pod a ReplicaSet generated) and uid of the object an event is about
    are masked, so ``pods "fraud-7d9-x2x4q" is forbidden`` and the same about the next pod are one problem.
    """
    involved = event.get("involvedObject") or {}
    message = str(event.get("message") or "")
    if involved.get("name"):
        message = re.sub(re.escape(str(involved["name"])) + r"(-[a-z0-9]{5})?(?![a-z0-9-])", "*", message)
    if involved.get("uid"):
        message = message.replace(str(involved["uid"]), "*")
    return str(involved.get("kind") or "object").lower(), str(event.get("reason")), message


def event_lines(events: Sequence[Mapping[str, Any]], limit: int) -> list[str]:
    """Return up to ``limit`` lines, one per distinct problem, newest first, from Kubernetes Events.

    A line names the object of the newest event of its problem, how many other objects had it, and how
    often it happened: ``pod fraud-7d9-x (and 2 more pods): Failed: Error: ErrImagePull (x6)``.
    """
    problems: dict[tuple[str, str, str], list[Mapping[str, Any]]] = {}
    for event in sorted(events, key=_when, reverse=True):
        problems.setdefault(_pattern(event), []).append(event)
    lines = []
    for (kind, reason, _), seen in list(problems.items())[:limit]:
        newest = seen[0]
        subject = f"{kind} {(newest.get('involvedObject') or {}).get('name')}"
        others = len({(e.get("involvedObject") or {}).get("name") for e in seen}) - 1
        if others:
            subject += f" (and {others} more {kind}{'s' if others > 1 else ''})"
        message = str(newest.get("message") or "")
        if len(message) > MAX_EVENT_MESSAGE:
            message = message[: MAX_EVENT_MESSAGE - 1] + "…"
        count = sum(int(e.get("count") or 1) for e in seen)
        lines.append(f"{subject}: {reason}: {message}" + (f" (x{count})" if count > 1 else ""))
    return lines


# ---------------------------------------------------------------------------------- failure message
#: (what in the pods' events or the verdict's reason gives it away, what to do), most specific first.
_FIXES: tuple[tuple[tuple[str, ...], str], ...] = (
    (
        ("ErrImagePull", "ImagePullBackOff", "Failed to pull image", "InvalidImageName"),
        "Check that the image exists and that the cluster's nodes may pull it (registry, tag or digest, "
        "pull secret).",
    ),
    (
        ("CrashLoopBackOff", "Back-off restarting failed container", "OOMKilled"),
        "The container exits soon after it starts: read its logs (kubectl -n {namespace} logs <pod> "
        "--previous).",
    ),
    (
        ("Readiness probe failed", "Unhealthy"),
        "The pods never pass their readiness probe: read their logs and check the probe.",
    ),
    (
        ("FailedScheduling", "Insufficient", "Unschedulable"),
        "No node can run the pods: lower their resource requests or add capacity.",
    ),
    (
        ("FailedCreate", "exceeded quota", "serviceaccount"),
        "The ReplicaSet cannot create pods (quota, service account, admission): see its events "
        "(kubectl -n {namespace} describe replicaset).",
    ),
    (
        (DEPLOYMENT_PAUSED,),
        "The Deployment is paused: resume it (kubectl -n {namespace} rollout resume deployment/{name}).",
    ),
)


def _seen(verdict: RolloutVerdict) -> str:
    if verdict.ready is None or verdict.desired is None:
        return verdict.summary
    seen = f"ready {verdict.ready}/{verdict.desired}"
    if verdict.updated is not None and verdict.updated != verdict.ready:
        seen = f"updated {verdict.updated}/{verdict.desired}, {seen}"
    return f"{seen}, {verdict.reason}" if verdict.reason else seen


def _fix(namespace: str, name: str, verdict: RolloutVerdict, pod_events: Sequence[str]) -> str:
    evidence = " ".join([*pod_events, verdict.reason or "", verdict.summary])
    for markers, fix in _FIXES:
        if any(marker in evidence for marker in markers):
            return fix.format(namespace=namespace, name=name)
    return f"See its pod events: kubectl -n {namespace} describe deployment {name}."


def headline(namespace: str, name: str, verdict: RolloutVerdict, waited_seconds: float) -> str:
    """Return the sentence (without its final period) saying how a rollout ended after a wait.

    E.g. ``Deployment serving/fraud did not become ready within 600 s (ready 1/3)``.

    :param namespace: the Deployment's namespace.
    :param name: the Deployment's name.
    :param verdict: the last verdict.
    :param waited_seconds: how long the rollout was waited for.
    """
    waited = f"{max(0, round(waited_seconds))} s"
    if verdict.state is RolloutState.FAILED:
        return f"Deployment {namespace}/{name} failed to roll out after {waited} ({_seen(verdict)})"
    if verdict.state is RolloutState.ROLLED_OUT:
        return f"Deployment {namespace}/{name} rolled out after {waited} ({_seen(verdict)})"
    return f"Deployment {namespace}/{name} did not become ready within {waited} ({_seen(verdict)})"


def describe_failure(
    namespace: str,
    name: str,
    verdict: RolloutVerdict,
    pod_events: Sequence[str],
    waited_seconds: float,
) -> str:
    """Return the message of a rollout that failed or ran out of time: the Deployment, what was seen, the fix.

    :param namespace: the Deployment's namespace.
    :param name: the Deployment's name.
    :param verdict: the last verdict (``failed``, or ``progressing`` when the wait ran out).
    :param pod_events: the new pods' warning events, newest first (``DeploymentHook.failing_pod_events``).
    :param waited_seconds: how long the task waited for the rollout.
    """
    events = f"Its pods report: {'; '.join(pod_events)}." if pod_events else "Its pods report no warnings."
    fix = _fix(namespace, name, verdict, pod_events)
    return f"{headline(namespace, name, verdict, waited_seconds)}. {events} {fix}"
