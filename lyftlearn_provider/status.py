"""Pure rules about job states, and the shapes in which trackers report them to tasks."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from enum import Enum
from typing import Any

from lyftlearn_provider.exceptions import LyftLearnError

IN_PROGRESS = "InProgress"
STOPPING = "Stopping"
COMPLETED = "Completed"
FAILED = "Failed"
STOPPED = "Stopped"
TERMINAL_STATES = frozenset({COMPLETED, FAILED, STOPPED})
ACTIVE_STATES = frozenset({IN_PROGRESS, STOPPING})
#: The secondary status whose start ends the start-up phase.
TRAINING = "Training"


class TrainingEventStatus(str, Enum):
    """What a training trigger reports back to its operator."""

    #: The job reached a terminal state; ``job_status`` says which.
    TERMINAL = "terminal"
    #: The task's deadline passed while the job was still running.
    TIMEOUT = "timeout"
    #: The trigger could not keep track of the job; ``message`` says why.
    ERROR = "error"


class TrackingSource(str, Enum):
    """How a deferred task learns that its SageMaker job ended (see ``TrainingJobTrigger``)."""

    #: One ``DescribeTrainingJob`` per job per interval, from the job's own trigger.
    POLL = "poll"
    #: One batched watcher per triggerer process, connection and region.
    SHARED = "shared"
    #: EventBridge → SQS, with the shared watcher reconciling every interval.
    EVENTS = "events"


class TrackingErrorKind(str, Enum):
    """Why a tracker could not answer: decides who is affected and what happens next."""

    #: Throttling, 5xx answers, lost connections: retried with back-off, never reported.
    TRANSIENT = "transient"
    #: About one job only (it does not exist, its name is invalid): that job's task hears of it.
    JOB = "job"
    #: The tracker itself cannot work (permissions, a missing queue): its jobs fall back to a simpler
    #: tracker; nobody fails and no job is stopped for it.
    TRACKER = "tracker"
    #: Anything else: a bug, reported with the job's identity.
    UNEXPECTED = "unexpected"


@dataclasses.dataclass(frozen=True)
class JobEvent:
    """What a job trigger reports to its task: one shape, built and read in one place.

    :param status: ``terminal``, ``timeout`` or ``error``.
    :param job_name: the job the trigger followed.
    :param job_status: the job's terminal status (``terminal`` events).
    :param failure_reason: SageMaker's ``FailureReason``, when the job failed.
    :param message: what went wrong (``timeout`` and ``error`` events).
    :param error_kind: a :class:`TrackingErrorKind` value (``error`` events).
    """

    status: TrainingEventStatus
    job_name: str
    job_status: str | None = None
    failure_reason: str | None = None
    message: str | None = None
    error_kind: TrackingErrorKind | None = None

    @classmethod
    def terminal(cls, job_name: str, job_status: str, failure_reason: str | None = None) -> JobEvent:
        """Return the event of a job that reached ``job_status``."""
        return cls(
            TrainingEventStatus.TERMINAL, job_name, job_status=job_status, failure_reason=failure_reason
        )

    @classmethod
    def timeout(cls, job_name: str) -> JobEvent:
        """Return the event of a task whose deadline passed while its job ran."""
        return cls(TrainingEventStatus.TIMEOUT, job_name, message="the task's deadline passed")

    @classmethod
    def error(
        cls, job_name: str, message: str, kind: TrackingErrorKind = TrackingErrorKind.UNEXPECTED
    ) -> JobEvent:
        """Return the event of a tracker that could not follow the job."""
        return cls(TrainingEventStatus.ERROR, job_name, message=message, error_kind=kind)

    def to_payload(self) -> dict[str, Any]:
        """Return the event as the JSON-safe payload of a ``TriggerEvent``."""
        payload: dict[str, Any] = {"status": self.status.value, "job_name": self.job_name}
        for name in ("job_status", "failure_reason", "message"):
            value = getattr(self, name)
            if value is not None:
                payload[name] = value
        if self.error_kind is not None:
            payload["error_kind"] = self.error_kind.value
        return payload

    @classmethod
    def from_payload(cls, payload: Any) -> JobEvent:
        """Return the event a trigger sent; raise :class:`LyftLearnError` for anything else."""
        if not isinstance(payload, Mapping) or not isinstance(payload.get("job_name"), str):
            raise LyftLearnError(f"The job trigger returned an unusable event: {payload!r}")
        try:
            status = TrainingEventStatus(payload.get("status"))
            kind = payload.get("error_kind")
            error_kind = TrackingErrorKind(kind) if kind is not None else None
        except ValueError:
            raise LyftLearnError(f"The job trigger returned an unusable event: {payload!r}") from None
        return cls(
            status,
            payload["job_name"],
            job_status=payload.get("job_status"),
            failure_reason=payload.get("failure_reason"),
            message=payload.get("message"),
            error_kind=error_kind,
        )


class TrainingBackend(str, Enum):
    """Where a training task runs its spec."""

    SAGEMAKER = "sagemaker"
    #: As a Kubernetes pod: for migration, and for teams without SageMaker.
    KUBERNETES = "kubernetes"


class FailedJobPolicy(str, Enum):
    """What a retry or clear does when the run's latest job failed or was stopped."""

    #: Start a new attempt under a derived name (``<name>-a2``, ``-a3`` ...).
    NEW_ATTEMPT = "new_attempt"
    #: Fail the task again without starting anything; a human decides.
    FAIL = "fail"


def is_terminal(status: str) -> bool:
    """Return whether a ``TrainingJobStatus`` is final."""
    return status in TERMINAL_STATES


def to_datetime(value: Any) -> dt.datetime | None:
    """Return an aware datetime from what boto3, aiobotocore or an event JSON carries."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, tz=dt.timezone.utc)
    parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def iso(value: Any) -> str | None:
    """Return ``value`` (a datetime, an epoch or ISO text) as ISO 8601 text, or None."""
    moment = to_datetime(value)
    return moment.isoformat() if moment else None
