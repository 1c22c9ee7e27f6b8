"""The seam between a job operator's lifecycle and the platform a job runs on.

The operator owns the lifecycle — find the run's job or create the next attempt, defer or wait,
resume, stop on kill and timeouts, return one typed result — and calls a :class:`JobBackend` for
each step that touches a platform. A backend answers in the platform-neutral terms here: a
:class:`Job` (which attempt, what state), a :class:`Deferral` (a trigger to wait on) and a
:class:`~lyftlearn_provider.results.TrainingResult`. A new job kind or platform is a new backend,
not a new branch in the operator.

Light on purpose: DAG files import it (through the operator) on every parse.
"""

from __future__ import annotations

import abc
import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from lyftlearn_provider.exceptions import JobError
from lyftlearn_provider.naming import attempt_job_name
from lyftlearn_provider.status import iso

if TYPE_CHECKING:
    import logging

    from airflow.sdk import BaseOperator, Context
    from airflow.triggers.base import BaseTrigger

    from lyftlearn_provider.results import JobResult
    from lyftlearn_provider.runtime import RuntimeSpec


class JobState(str, enum.Enum):
    """Where a job is, in terms every backend shares."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    #: Stopped before it finished (by the task, a user, or its own time limit).
    STOPPED = "stopped"

    @property
    def ended(self) -> bool:
        """Tell whether the job will not change any more."""
        return self is not JobState.RUNNING


@dataclasses.dataclass(frozen=True)
class Job:
    """One attempt of the run's job, as the backend last saw it.

    :param name: the job's (or pod's) name.
    :param attempt: 1 for the run's first job, 2 for ``<base>-a2`` ...
    :param state: where it is.
    :param image: the image it runs, pinned (``registry/repo@sha256:...``), when known.
    :param reason: why it failed or was stopped, when known.
    :param details: what the backend needs to finish it (a SageMaker description, a pod's returned
        value); never stored.
    """

    name: str
    attempt: int
    state: JobState
    image: str | None = None
    reason: str | None = None
    details: Any = dataclasses.field(default=None, compare=False, repr=False)


@dataclasses.dataclass(frozen=True)
class Deferral:
    """A wait the task hands to the triggerer.

    :param trigger: what to wait on.
    :param timeout: the triggerer's backstop; None for none.
    :param kwargs: handed back to ``execute_complete`` with the event.
    """

    trigger: BaseTrigger
    timeout: dt.timedelta | None = None
    kwargs: dict[str, Any] | None = None


@dataclasses.dataclass(frozen=True)
class AwsSettings:
    """How the task reaches AWS: connection, region, TLS verification and botocore configuration."""

    aws_conn_id: str | None
    region_name: str | None
    verify: bool | str | None
    botocore_config: dict[str, Any] | None


@dataclasses.dataclass(frozen=True)
class JobSettings:
    """What every backend of a job task is given, whatever its platform.

    :param spec: the rendered spec; its image is replaced by the pinned one when a job is created.
    :param aws: how to reach AWS (image pinning and spill documents need it on every platform).
    :param max_runtime_seconds: the job's time limit (SageMaker's ``MaxRuntimeInSeconds``).
    :param poll_interval: seconds between two looks at the job.
    :param job_name_prefix: the first part of every job name.
    """

    spec: RuntimeSpec
    aws: AwsSettings
    max_runtime_seconds: int
    poll_interval: float
    job_name_prefix: str


@dataclasses.dataclass(frozen=True)
class RunIdentity:
    """The task instance a job belongs to: what names it, tags it and tells the program where it runs.

    :param base_name: the name of the run's first job; later attempts add ``-a<n>``.
    :param fingerprint: the hash in that name, of (dag, task, run, map index).
    """

    dag_id: str
    task_id: str
    run_id: str
    map_index: int
    base_name: str
    fingerprint: str
    data_interval_start: Any = None
    data_interval_end: Any = None

    def attempt_name(self, attempt: int) -> str:
        """Return the job name of attempt ``attempt`` of this run."""
        return attempt_job_name(self.base_name, attempt)

    def attempt_of(self, name: str) -> int | None:
        """Return which attempt of this run ``name`` is, or None when it is not one of the run's names."""
        if name.lower() == self.base_name.lower():
            return 1
        prefix, _, number = name.lower().rpartition("-a")
        if prefix == self.base_name.lower() and number.isdigit():
            return int(number)
        return None

    def environment(self) -> dict[str, str]:
        """Return the ``LYFTLEARN_*`` variables that tell the program which run it serves."""
        environment = {
            "LYFTLEARN_DAG_ID": self.dag_id,
            "LYFTLEARN_TASK_ID": self.task_id,
            "LYFTLEARN_RUN_ID": self.run_id,
        }
        for bound, value in (("START", self.data_interval_start), ("END", self.data_interval_end)):
            moment = iso(value)
            if moment is not None:
                environment[f"LYFTLEARN_DATA_INTERVAL_{bound}"] = moment
        return environment


@dataclasses.dataclass(frozen=True)
class JobRecord:
    """What the task remembers (in XCom) about the job it follows, between its tries and resumptions.

    :param job_name: the job followed.
    :param attempt: its attempt number.
    :param adopted: whether this task found it already there.
    :param deadline: epoch seconds when the task's execution timeout ends, or None.
    :param image: how its image was resolved (``ImageResolution.to_dict()``), or None.
    :param tracking_errors: error events in a row from the triggers that followed it.
    """

    job_name: str
    attempt: int
    adopted: bool
    deadline: float | None = None
    image: Mapping[str, Any] | None = None
    tracking_errors: int = 0

    def to_xcom(self) -> dict[str, Any]:
        """Return the record as JSON-safe primitives."""
        return dataclasses.asdict(self)

    @classmethod
    def from_xcom(cls, data: Any) -> JobRecord | None:
        """Return the record pushed by :meth:`to_xcom`, or None when there is none."""
        if not isinstance(data, Mapping) or not isinstance(data.get("job_name"), str):
            return None
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclasses.dataclass
class JobRun:
    """One execution of the task: its identity, its Airflow context and what the backend may log to.

    :param killed: set by ``on_kill``; a backend checks it before and after creating anything.
    """

    identity: RunIdentity
    context: Context
    deferrable: bool
    log: logging.Logger | Any
    killed: bool = False


class JobBackend(abc.ABC):
    """One platform's side of a job's lifecycle. The operator calls these in order; see the module docs.

    :param operator: the task, for what Airflow needs from it (links, the task id of composed operators).
    :param settings: what every backend is given.
    """

    #: The operator arguments this backend reads; any other backend-specific argument is refused.
    arguments: ClassVar[frozenset[str]] = frozenset()
    #: The error a job of this backend that failed or was stopped raises.
    job_error: ClassVar[type[JobError]] = JobError
    #: Who may have stopped a job of this backend, when the task did not.
    stopped_by: ClassVar[str] = "a user or its own time limit"

    def __init__(self, operator: BaseOperator, settings: JobSettings) -> None:
        self.operator = operator
        self.settings = settings
        self.spec = settings.spec
        self.aws = settings.aws

    @abc.abstractmethod
    def find(self, run: JobRun) -> Job | None:
        """Return the run's latest job, or None when it has none."""

    @abc.abstractmethod
    def image_reference(self, run: JobRun, job: Job) -> str | None:
        """Return the image reference (as the DAG wrote it) that ``job`` was created from, if recorded."""

    @abc.abstractmethod
    def create(
        self, run: JobRun, *, attempt: int, image: Mapping[str, Any] | None, reference: str
    ) -> tuple[Job, bool]:
        """Create attempt ``attempt``; return it and whether this call created it (False: it already was).

        :param image: the resolution of the image to run (``ImageResolution.to_dict()``), or None when
            it could not be resolved and ``reference`` runs as written.
        :param reference: the image reference as the DAG wrote it.
        """

    @abc.abstractmethod
    def record_from_event(self, run: JobRun, event: Any) -> JobRecord:
        """Return what the task knows of its job from a trigger's event alone (its XCom record is gone)."""

    @abc.abstractmethod
    def follow(self, run: JobRun, job: Job, record: JobRecord) -> Job | Deferral:
        """Return how to wait for a running job: a deferral, or (synchronous tasks) the job once ended."""

    @abc.abstractmethod
    def resume(self, run: JobRun, record: JobRecord, event: Any) -> Job | Deferral:
        """Return the job after its trigger fired, or a new deferral when it must be followed again."""

    @abc.abstractmethod
    def stop(self, run: JobRun, job_name: str | None) -> list[str]:
        """Stop the run's job (``job_name`` if known, else whatever of the run still runs); return names."""

    @abc.abstractmethod
    def result(self, run: JobRun, job: Job, record: JobRecord) -> JobResult:
        """Return the typed result of a job that succeeded."""

    def persist_links(self, run: JobRun, job: Job) -> None:  # noqa: B027 - links are optional
        """Record the job's identifiers for the task's extra links."""
