"""The provider's exceptions: few, and each message says what to do.

Every error the provider raises derives from :class:`LyftLearnError`. Configuration errors
(:class:`InvalidSpecError`) are also Airflow's ``AirflowFailException``: found at execute time (a
rendered template, an image without the required SOCI index, a service account with the wrong role),
they fail the task at once instead of spending its retries on input that no retry can fix.
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException, AirflowFailException


class LyftLearnError(AirflowException):
    """Base class of every error this provider raises."""


class InvalidSpecError(LyftLearnError, AirflowFailException, ValueError):
    """Bad input, found before anything is created; the message names the field and the fix.

    An ``AirflowFailException``: the task fails without retrying, since a retry would meet the same input.
    """

    def __init__(self, field: str, problem: str, fix: str) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{field}: {problem}. {fix}")


class JobError(LyftLearnError):
    """A job ended in a state the task cannot accept (failed, stopped by someone, timed out)."""

    #: What the message calls the job, e.g. "SageMaker training job".
    kind = "job"

    def __init__(self, job_name: str, status: str, reason: str = "") -> None:
        self.job_name = job_name
        self.status = status
        self.reason = reason
        detail = f": {reason}" if reason else ""
        super().__init__(f"{self.kind} {job_name} ended {status}{detail}")


class TrainingJobError(JobError):
    """A SageMaker training job ended in a state the task cannot accept."""

    kind = "SageMaker training job"


class BatchJobError(JobError):
    """A SageMaker processing (batch) job ended in a state the task cannot accept."""

    kind = "SageMaker processing job"


class BatchPodError(JobError):
    """A batch pod (``backend="kubernetes"``) did not complete."""

    kind = "Batch pod"


class TrainingPodError(JobError):
    """A training pod (``backend="kubernetes"``) did not complete."""

    kind = "Training pod"


class ValidationPodError(JobError):
    """A validation pod did not complete: the model failed its checks, or the pod could not run."""

    kind = "Validation pod"


class TrackingError(LyftLearnError):
    """A tracker could not follow a job: its trigger, the shared watcher or the events consumer."""


class ServiceError(LyftLearnError):
    """AWS or Kubernetes answered in a way the provider cannot act on (not a throttle or an outage)."""
