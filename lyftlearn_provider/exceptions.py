"""The provider's exceptions: few, and each message says what to do."""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException


class LyftLearnError(AirflowException):
    """Base class of every error this provider raises."""


class InvalidSpecError(LyftLearnError, ValueError):
    """Bad input, found before anything is created; the message names the field and the fix."""

    def __init__(self, field: str, problem: str, fix: str) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        super().__init__(f"{field}: {problem}. {fix}")


class TrainingJobError(LyftLearnError):
    """A training job ended in a state the task cannot accept (failed, stopped by someone, timed out)."""

    def __init__(self, job_name: str, status: str, reason: str = "") -> None:
        self.job_name = job_name
        self.status = status
        self.reason = reason
        detail = f": {reason}" if reason else ""
        super().__init__(f"SageMaker training job {job_name} ended {status}{detail}")
