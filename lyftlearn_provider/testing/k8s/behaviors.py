"""Behaviours tests give the emulated cluster: how pods run, and how Deployments roll out.

A pod's behaviour is chosen when the fake kubelet starts it, in this order:

1. the most recently registered pod rule that matches it (by name prefix, labels, namespace or a
   predicate) -- e.g. "pods of task ``validate`` print these logs and return this XCom";
2. for a pod of a ReplicaSet, the rollout behaviour that was registered for its Deployment when
   that ReplicaSet was created (so a rollback to an older ReplicaSet brings back healthy pods);
3. the default: ``SERVING_POD`` for pods of a ReplicaSet (they run until deleted), ``PodBehavior()``
   for bare pods (they run briefly and exit 0).

Finally, a pod with a container image that contains a registered marker (``fail_images_containing``)
fails the way that marker says, whatever rule chose its behaviour.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from lyftlearn_provider.testing.k8s.meta import Obj, labels_of

#: How a pod can fail to run:
#: ``ErrImagePull`` (the image cannot be pulled: Pending, ``ErrImagePull``/``ImagePullBackOff``),
#: ``Unschedulable`` (no node fits: Pending, ``FailedScheduling``),
#: ``Unready`` (runs, but its readiness probe never passes),
#: ``CrashLoopBackOff`` (the main container exits non-zero; restarted with back-off, or the pod fails
#: when ``restartPolicy`` is ``Never``).
PodFailure = Literal["ErrImagePull", "Unschedulable", "Unready", "CrashLoopBackOff"]
POD_FAILURES: tuple[str, ...] = ("ErrImagePull", "Unschedulable", "Unready", "CrashLoopBackOff")

PodMatcher = Callable[[Obj], bool]


@dataclass(frozen=True)
class PodBehavior:
    """Describe what the fake kubelet does with a pod.

    :param schedule_delay: seconds before the pod is bound to the node.
    :param start_delay: seconds from binding until the containers run (and are ready).
    :param run_seconds: seconds the main (first) container runs before it exits; ``None`` keeps it
        running until the pod is deleted (a server).
    :param exit_code: the main container's exit code.
    :param logs: lines the main container prints, spread over ``run_seconds``.
    :param xcom: JSON value the KubernetesPodOperator XCom sidecar returns (``None``: no XCom file).
    :param failure: how the pod fails to run instead (see ``PodFailure``).
    :param retry_interval: the kubelet's first back-off between retries of a failing pod (doubles,
        up to 30 s); each retry repeats the pod's warning events, counting them up.
    """

    schedule_delay: float = 0.05
    start_delay: float = 0.1
    run_seconds: float | None = 0.3
    exit_code: int = 0
    logs: Sequence[str] = ("hello from the Kubernetes emulator",)
    xcom: Any = None
    failure: PodFailure | None = None
    retry_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.failure is not None and self.failure not in POD_FAILURES:
            raise ValueError(f"failure must be one of {POD_FAILURES}, not {self.failure!r}")


#: The default behaviour of a pod created by a ReplicaSet: it serves until it is deleted.
SERVING_POD = PodBehavior(run_seconds=None, logs=("serving",))


@dataclass(frozen=True)
class RolloutBehavior:
    """Describe how the pods of a Deployment's next ReplicaSets behave.

    :param ready_delay: seconds from a pod's binding until it is running and ready.
    :param failure: how the new pods fail (``None``: they become ready). With a failure, the rollout
        never completes: the old ReplicaSet keeps serving and, after ``progressDeadlineSeconds``,
        the Deployment reports ``Progressing=False`` with reason ``ProgressDeadlineExceeded``.
    """

    ready_delay: float = 0.1
    failure: PodFailure | None = None

    def __post_init__(self) -> None:
        if self.failure is not None and self.failure not in POD_FAILURES:
            raise ValueError(f"failure must be one of {POD_FAILURES}, not {self.failure!r}")

    def pod_behavior(self) -> PodBehavior:
        """Return the behaviour of one pod of such a rollout."""
        return dataclasses.replace(SERVING_POD, start_delay=self.ready_delay, failure=self.failure)


def pod_matcher(
    *,
    name_prefix: str | None = None,
    labels: Mapping[str, str] | None = None,
    namespace: str | None = None,
    predicate: PodMatcher | None = None,
) -> PodMatcher:
    """Return a predicate that holds for pods matching every criterion given."""
    wanted = dict(labels or {})

    def matches(pod: Obj) -> bool:
        md = pod.get("metadata") or {}
        if name_prefix is not None and not str(md.get("name", "")).startswith(name_prefix):
            return False
        if namespace is not None and md.get("namespace") != namespace:
            return False
        have = labels_of(pod)
        if any(have.get(k) != v for k, v in wanted.items()):
            return False
        return predicate is None or predicate(pod)

    return matches


class BehaviorBook:
    """Remember registered behaviours and choose the one that applies (see the module docstring)."""

    def __init__(self) -> None:
        self._pod_rules: list[tuple[PodMatcher, PodBehavior]] = []
        self._image_failures: list[tuple[str, PodFailure]] = []
        self._rollouts: dict[tuple[str | None, str], RolloutBehavior] = {}
        self._captured: dict[str, RolloutBehavior] = {}

    def add_pod_rule(self, matcher: PodMatcher, behavior: PodBehavior) -> None:
        """Give pods that ``matcher`` accepts this behaviour (later rules win)."""
        self._pod_rules.append((matcher, behavior))

    def fail_images_containing(self, marker: str, failure: PodFailure = "ErrImagePull") -> None:
        """Make every pod with a container image containing ``marker`` fail with ``failure``."""
        if failure not in POD_FAILURES:
            raise ValueError(f"failure must be one of {POD_FAILURES}, not {failure!r}")
        self._image_failures.append((marker, failure))

    def set_rollout(self, deployment: str, behavior: RolloutBehavior, namespace: str | None = None) -> None:
        """Apply ``behavior`` to the ReplicaSets the Deployment gets from now on (any namespace if None)."""
        self._rollouts[(namespace, deployment)] = behavior

    def capture_rollout(self, replicaset_uid: str, deployment: Obj) -> None:
        """Pin the rollout behaviour in force for a Deployment to a ReplicaSet it just created."""
        md = deployment["metadata"]
        behavior = self._rollouts.get((md.get("namespace"), md["name"])) or self._rollouts.get(
            (None, md["name"])
        )
        if behavior is not None:
            self._captured[replicaset_uid] = behavior

    def pod_behavior(self, pod: Obj, replicaset_uid: str | None) -> PodBehavior:
        """Return the behaviour a pod runs with (``replicaset_uid``: its owning ReplicaSet, if any)."""
        behavior = self._chosen(pod, replicaset_uid)
        images = [c.get("image") or "" for c in (pod.get("spec") or {}).get("containers") or []]
        for marker, failure in reversed(self._image_failures):
            if any(marker in image for image in images):
                return dataclasses.replace(behavior, failure=failure)
        return behavior

    def _chosen(self, pod: Obj, replicaset_uid: str | None) -> PodBehavior:
        for matcher, behavior in reversed(self._pod_rules):
            if matcher(pod):
                return behavior
        if replicaset_uid is None:
            return PodBehavior()
        rollout = self._captured.get(replicaset_uid)
        return rollout.pod_behavior() if rollout is not None else SERVING_POD

    def failing_image_marker(self, image: str) -> PodFailure | None:
        """Return the failure registered for an image, if any."""
        for marker, failure in reversed(self._image_failures):
            if marker in image:
                return failure
        return None

    def clear(self) -> None:
        """Forget every registered behaviour."""
        self._pod_rules.clear()
        self._image_failures.clear()
        self._rollouts.clear()
        self._captured.clear()
