"""The results job tasks return: one typed shape per job kind, filled by every backend, JSON-safe in XCom.

:class:`TrainingResult` is built from what the backend saw — a SageMaker ``DescribeTrainingJob``
(:func:`from_training_job`) or a finished pod (the kubernetes backend) — and pushed to XCom as
:meth:`TrainingResult.to_xcom`'s plain dict, so templates read ``result['model_artifact_uri']``.
Pure, standard library only.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

from lyftlearn_provider.job_kinds import PROCESSING, JobKind
from lyftlearn_provider.job_kinds import TRAINING as TRAINING_KIND
from lyftlearn_provider.status import TRAINING, iso, to_datetime


def _seconds(start: dt.datetime | None, end: dt.datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return round(max(0.0, (end - start).total_seconds()), 3)


def startup_breakdown(transitions: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """
    Return seconds spent in each secondary status before ``Training`` started.

    This is the start-up cost that SOCI-indexed images and warm pools attack. A status that is
    still open (the job has not reached ``Training``) is left out rather than guessed.
    """
    breakdown: dict[str, float] = {}
    for index, transition in enumerate(transitions):
        if transition.get("Status") == TRAINING:
            break
        start = to_datetime(transition.get("StartTime"))
        end = to_datetime(transition.get("EndTime"))
        if end is None and index + 1 < len(transitions):
            end = to_datetime(transitions[index + 1].get("StartTime"))
        seconds = _seconds(start, end)
        if seconds is not None:
            status = str(transition.get("Status"))
            breakdown[status] = round(breakdown.get(status, 0.0) + seconds, 3)
    return breakdown


def phase_seconds(transitions: Sequence[Mapping[str, Any]], status: str) -> float | None:
    """Return the seconds the job spent in one secondary status, or None when it never closed."""
    for index, transition in enumerate(transitions):
        if transition.get("Status") != status:
            continue
        end = to_datetime(transition.get("EndTime"))
        if end is None and index + 1 < len(transitions):
            end = to_datetime(transitions[index + 1].get("StartTime"))
        return _seconds(to_datetime(transition.get("StartTime")), end)
    return None


class JobResult(Protocol):
    """What every job task's result offers: its job, and a JSON-safe dict for XCom."""

    @property
    def job_name(self) -> str:
        """Return the job (or pod) that produced the result."""
        ...

    def to_xcom(self) -> dict[str, Any]:
        """Return the result as the JSON-safe dict the task pushes to XCom."""
        ...


class _XComResult:
    """A result dataclass with a run's data interval, pushed to XCom as one JSON-safe dict."""

    def to_xcom(self) -> dict[str, Any]:
        """Return the result as the JSON-safe dict the task pushes to XCom."""
        data = dataclasses.asdict(cast(Any, self))  # every subclass is a dataclass
        data["data_interval"] = {
            "start": data.pop("data_interval_start"),
            "end": data.pop("data_interval_end"),
        }
        return data


@dataclasses.dataclass(frozen=True, kw_only=True)
class WarmPool:
    """A SageMaker warm pool a job kept (or started on).

    :param status: ``Available``, ``InUse``, ``Reused`` or ``Terminated``.
    :param reused_by_job: the later job that started on this job's pool.
    :param keep_alive_seconds: how long the pool is kept after the job.
    :param reused_pool_of: the earlier job whose pool this job started on.
    """

    status: str | None
    reused_by_job: str | None
    keep_alive_seconds: int | None
    reused_pool_of: str | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class PlatformJobResult(_XComResult):
    """What every job kind's result on the SageMaker platform (or as a pod) holds.

    Fields a backend cannot know are None (a pod has no ARN or billable seconds).

    :param backend: ``sagemaker`` or ``kubernetes``.
    :param job_name: the job (or pod) that ran.
    :param job_arn: SageMaker's ARN of the job.
    :param status: ``Completed``.
    :param attempt: 1 for the run's first job, 2 for ``<name>-a2`` ...
    :param adopted: whether this task found the job already there (a retry, a clear, a lost response).
    :param image: the pinned image that ran, ``registry/repo@sha256:...``.
    :param image_resolution: how that image was resolved (``ImageResolution.to_dict()``), or None.
    :param soci: ``"v2"``, ``"v1"`` or None.
    :param startup_seconds: seconds per start-up phase, where the platform reports them.
    :param startup_total_seconds: their sum.
    :param billable_seconds: SageMaker's billable seconds.
    :param created_at: when the job was created (ISO 8601).
    :param ended_at: when it ended (ISO 8601).
    :param data_interval_start: the run's data interval start (ISO 8601), or None.
    :param data_interval_end: the run's data interval end (ISO 8601), or None.
    """

    backend: str
    job_name: str
    job_arn: str | None
    status: str
    attempt: int
    adopted: bool
    image: str | None
    image_resolution: Mapping[str, Any] | None
    soci: str | None
    startup_seconds: Mapping[str, float]
    startup_total_seconds: float
    billable_seconds: int | None
    created_at: str | None
    ended_at: str | None
    data_interval_start: str | None
    data_interval_end: str | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingResult(PlatformJobResult):
    """What a finished training task returns, the same on every backend (see :class:`PlatformJobResult`).

    :param model_artifact_uri: where the model is, e.g. ``s3://.../model.tar.gz``.
    :param final_metrics: metric name to final value.
    :param training_seconds: seconds in the training phase.
    :param warm_pool: the warm pool the job kept or started on.
    """

    model_artifact_uri: str | None
    final_metrics: Mapping[str, float]
    training_seconds: float | None
    warm_pool: WarmPool | None

    def describe_startup(self) -> str:
        """Return one log line that explains where the job's start-up time went."""
        parts = ", ".join(f"{status} {seconds:.1f}s" for status, seconds in self.startup_seconds.items())
        pool = f"; warm pool {self.warm_pool.status}" if self.warm_pool and self.warm_pool.status else ""
        return f"start-up {self.startup_total_seconds:.1f}s ({parts or 'no start-up phases recorded'}){pool}"


@dataclasses.dataclass(frozen=True, kw_only=True)
class ValidationResult(_XComResult):
    """What a finished validation task returns: the program's own report, and where and how it ran.

    :param job_name: the validation pod.
    :param status: ``Completed``.
    :param attempt: 1 for the run's first pod, 2 for ``<name>-a2`` ...
    :param adopted: whether this task found the pod already running.
    :param image: the pinned image that validated (the one that trained).
    :param model_uri: the model that was validated.
    :param training_job: the job that trained it, when known.
    :param output: what the program wrote to ``/airflow/xcom/return.json`` (smoke metrics, latency ...).
    :param startup_seconds: from the pod's creation to the program's start.
    :param run_seconds: how long the program ran.
    :param created_at: when the pod was created (ISO 8601).
    :param ended_at: when the program ended (ISO 8601).
    :param data_interval_start: the run's data interval start (ISO 8601), or None.
    :param data_interval_end: the run's data interval end (ISO 8601), or None.
    """

    job_name: str
    status: str
    attempt: int
    adopted: bool
    image: str | None
    model_uri: str | None
    training_job: str | None
    output: Any
    startup_seconds: float | None
    run_seconds: float | None
    created_at: str | None
    ended_at: str | None
    data_interval_start: str | None
    data_interval_end: str | None


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatchResult(PlatformJobResult):
    """What a finished batch task returns, the same on every backend (see :class:`PlatformJobResult`).

    SageMaker Processing reports no start-up phases: creation to ``ProcessingStartTime`` is given as
    ``Starting``; billable seconds are run seconds times instances (Processing bills per instance-second).

    :param outputs: output name to the ``s3://`` prefix it was written to.
    :param model_uri: the model the job loaded, if any.
    :param run_seconds: seconds the program ran (``ProcessingStartTime`` to ``ProcessingEndTime``).
    :param exit_message: the program's exit message, when it left one.
    """

    outputs: Mapping[str, str]
    model_uri: str | None
    run_seconds: float | None
    exit_message: str | None


def _described(
    description: Mapping[str, Any],
    kind: JobKind,
    attempt: int,
    adopted: bool,
    image_resolution: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Return the :class:`PlatformJobResult` fields every kind's ``Describe…Job`` answers alike."""
    return {
        "backend": "sagemaker",
        "job_name": description[kind.name_field],
        "job_arn": description.get(kind.arn_field),
        "status": description[kind.status_field],
        "attempt": attempt,
        "adopted": adopted,
        "image_resolution": dict(image_resolution) if image_resolution else None,
        "soci": image_resolution.get("soci") if image_resolution else None,
    }


def from_processing_job(
    description: Mapping[str, Any],
    *,
    attempt: int,
    adopted: bool,
    model_uri: str | None = None,
    image_resolution: Mapping[str, Any] | None = None,
    data_interval_start: Any = None,
    data_interval_end: Any = None,
) -> BatchResult:
    """Return the result of a finished SageMaker processing job from its ``DescribeProcessingJob``."""
    created = to_datetime(description.get("CreationTime"))
    started = to_datetime(description.get("ProcessingStartTime"))
    ended = to_datetime(description.get("ProcessingEndTime"))
    startup = _seconds(created, started)
    run_seconds = _seconds(started, ended)
    count = ((description.get("ProcessingResources") or {}).get("ClusterConfig") or {}).get(
        "InstanceCount"
    ) or 1
    outputs = (description.get("ProcessingOutputConfig") or {}).get("Outputs") or []
    return BatchResult(
        **_described(description, PROCESSING, attempt, adopted, image_resolution),
        outputs={
            output["OutputName"]: output["S3Output"]["S3Uri"] for output in outputs if "S3Output" in output
        },
        model_uri=model_uri,
        image=(description.get("AppSpecification") or {}).get("ImageUri"),
        startup_seconds={} if startup is None else {"Starting": startup},
        startup_total_seconds=startup or 0.0,
        run_seconds=run_seconds,
        billable_seconds=None if run_seconds is None else max(1, round(run_seconds)) * int(count),
        exit_message=description.get("ExitMessage"),
        created_at=iso(created),
        ended_at=iso(ended),
        data_interval_start=iso(data_interval_start),
        data_interval_end=iso(data_interval_end),
    )


def from_training_job(
    description: Mapping[str, Any],
    *,
    attempt: int,
    adopted: bool,
    image_resolution: Mapping[str, Any] | None = None,
    reused_pool_of: str | None = None,
    data_interval_start: Any = None,
    data_interval_end: Any = None,
) -> TrainingResult:
    """Return the result of a finished SageMaker training job from its ``DescribeTrainingJob``."""
    transitions = description.get("SecondaryStatusTransitions") or []
    breakdown = startup_breakdown(transitions)
    pool = description.get("WarmPoolStatus")
    keep_alive = (description.get("ResourceConfig") or {}).get("KeepAlivePeriodInSeconds")
    return TrainingResult(
        **_described(description, TRAINING_KIND, attempt, adopted, image_resolution),
        model_artifact_uri=(description.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
        image=(description.get("AlgorithmSpecification") or {}).get("TrainingImage"),
        final_metrics={
            metric["MetricName"]: metric["Value"] for metric in description.get("FinalMetricDataList") or []
        },
        startup_seconds=breakdown,
        startup_total_seconds=round(sum(breakdown.values()), 3),
        training_seconds=phase_seconds(transitions, TRAINING),
        billable_seconds=description.get("BillableTimeInSeconds"),
        warm_pool=(
            WarmPool(
                status=pool.get("Status"),
                reused_by_job=pool.get("ReusedByJob"),
                keep_alive_seconds=keep_alive,
                reused_pool_of=reused_pool_of,
            )
            if pool
            else None
        ),
        created_at=iso(description.get("CreationTime")),
        ended_at=iso(description.get("TrainingEndTime")),
        data_interval_start=iso(data_interval_start),
        data_interval_end=iso(data_interval_end),
    )
