"""SageMaker training jobs as the emulator keeps them: states, warm pools and AWS-shaped responses.

Pure Python and thread-safe. The HTTP layer (:mod:`.app`) calls :meth:`TrainingJobStore.create`,
:meth:`~TrainingJobStore.describe`, :meth:`~TrainingJobStore.stop` and :meth:`~TrainingJobStore.list_jobs`,
and for training-job ARNs the tagging actions :meth:`~TrainingJobStore.list_tags`,
:meth:`~TrainingJobStore.add_tags` and :meth:`~TrainingJobStore.delete_tags`, with the decoded JSON of
the AWS request; tests, the demo and the autopilot drive the lifecycle with
:meth:`~TrainingJobStore.advance`, :meth:`~TrainingJobStore.complete` and :meth:`~TrainingJobStore.fail`.

Timestamps are epoch seconds (floats), which is how the JSON protocol carries them and what botocore
parses into ``datetime`` objects. Choices where AWS's behaviour is documented but not obvious:

* ``ModelArtifacts.S3ModelArtifacts`` is required in the response shape; AWS returns an empty string
  until the job has uploaded a model (Completed, or Stopped after training began).
* ``TrainingStartTime`` is when the instances are up, i.e. when the job first leaves the start-up
  phases (Starting, Pending, LaunchingMLInstances, PreparingTrainingStack); billing runs from there.
  A job that fails or is stopped before that has no ``TrainingStartTime``, ``TrainingTimeInSeconds``
  or ``BillableTimeInSeconds``, as the API reference warns.
* Warm pools follow the SageMaker developer guide: a job with ``KeepAlivePeriodInSeconds`` > 0 leaves
  its cluster ``Available`` when it completes, is stopped after its instances started, or fails with
  an ``AlgorithmError``/``ClientError``; any other failure terminates it. A new job that also asks for
  a keep-alive period reuses an ``Available`` pool when RoleArn, InstanceType, InstanceCount,
  VolumeSizeInGB, VolumeKmsKeyId, VpcConfig, EnableNetworkIsolation and
  EnableInterContainerTrafficEncryption are identical (the image is not part of the match).
  Expiry is evaluated lazily whenever jobs are read.
* Tags: the ``Tags`` of CreateTrainingJob are the job's initial tags; AddTags adds or overwrites (a key
  keeps its place, new keys go last), DeleteTags ignores keys the job does not have, and a job holds
  at most 50 tags. ListTags and the ``Tags`` of every state-change event read the current tags.
  botocore's model declares no error for these actions; for an ARN SageMaker does not know it answers
  ``ValidationException`` (reported for ListTags/AddTags in aws/amazon-sagemaker-feedback#108). Its
  exact messages for that and for the tag limit are not documented: ours are stand-ins.
"""

from __future__ import annotations

import base64
import binascii
import copy
import functools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lyftlearn_provider.job_kinds import TRAINING, JobKind
from lyftlearn_provider.testing.aws.events import state_change_event
from lyftlearn_provider.testing.aws.validation import sagemaker_model, validation_errors, validation_message

ACCOUNT_ID = "123456789012"  # moto's default account, so our ARNs and moto's agree
DEFAULT_STOP_DELAY = 0.2
TAGS_PER_RESOURCE = 50  # AWS's limit of tags on one resource

TERMINAL_STATUSES = frozenset({"Completed", "Failed", "Stopped"})
STARTUP_PHASES = frozenset({"Starting", "Pending", "LaunchingMLInstances", "PreparingTrainingStack"})
IN_PROGRESS_PHASES = STARTUP_PHASES | {
    "Downloading",
    "DownloadingTrainingImage",
    "Training",
    "Uploading",
    "Restarting",
    "Updating",
}
# Failures the developer guide says keep a warm pool; anything else may have broken the cluster.
_KEEPS_POOL = ("AlgorithmError", "ClientError")
DEFAULT_MESSAGES = {
    "Starting": "Starting the training job",
    "Pending": "Waiting for capacity",
    "LaunchingMLInstances": "Launching requested ML instances",
    "PreparingTrainingStack": "Preparing the instances for training",
    "Downloading": "Downloading input data",
    "DownloadingTrainingImage": "Downloading the training image",
    "Training": "Training image download completed. Training in progress.",
    "Uploading": "Uploading generated training model",
    "Restarting": "Restarting the training job",
    "Updating": "Updating the training job",
    "Stopping": "Stopping the training job",
    "Stopped": "Training job stopped",
    "Completed": "Training job completed",
}
# A training job's ARN as ResourceArn's pattern allows it: partition, region, account, name.
_TRAINING_JOB_ARN = re.compile(r"arn:aws[a-z-]*:sagemaker:([a-z0-9-]*):([0-9]{12}):training-job/(.+)")
JobKey = tuple[str, str]  # (region, name)
Publisher = Callable[[dict[str, Any], float], None]
CreatedHook = Callable[[str, str, bool], None]


class AwsError(Exception):
    """An error the AWS API returns: ``code`` becomes botocore's ``Error.Code``."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


class JobNotFound(AwsError):
    """Raise what SageMaker answers for an unknown training job name."""

    def __init__(self) -> None:
        super().__init__("ValidationException", "Requested resource not found.")


class InvalidJobState(AwsError):
    """Raise when the job's status does not allow the requested change."""

    def __init__(self, message: str) -> None:
        super().__init__("ValidationException", message)


@dataclass
class _WarmPool:
    status: str
    available_since: float = 0.0  # the two times matter only while Available
    expires_at: float = 0.0
    retained_seconds: int | None = None
    reused_by: str | None = None


@dataclass
class _Job:
    region: str
    name: str
    arn: str
    request: dict[str, Any]
    created: float
    modified: float
    status: str = "InProgress"
    secondary: str = "Starting"
    transitions: list[dict[str, Any]] = field(default_factory=list)
    training_start: float | None = None
    training_end: float | None = None
    failure_reason: str | None = None
    artifact: str = ""
    metrics: list[dict[str, Any]] = field(default_factory=list)
    pool: _WarmPool | None = None
    tags: list[dict[str, str]] = field(default_factory=list)

    @property
    def keep_alive(self) -> int:
        return int(self.request.get("ResourceConfig", {}).get("KeepAlivePeriodInSeconds") or 0)

    @property
    def instance_count(self) -> int:
        return int(self.request.get("ResourceConfig", {}).get("InstanceCount") or 1)

    @property
    def default_artifact(self) -> str:
        if "OutputDataConfig" not in self.request:  # a processing job uploads outputs, not a model
            return ""
        output = self.request["OutputDataConfig"]["S3OutputPath"].rstrip("/")
        return f"{output}/{self.name}/output/model.tar.gz"

    @property
    def pool_signature(self) -> tuple[Any, ...]:
        resources = self.request.get("ResourceConfig", {})
        vpc = self.request.get("VpcConfig") or {}
        return (
            self.request.get("RoleArn"),
            resources.get("InstanceType"),
            resources.get("InstanceCount"),
            resources.get("VolumeSizeInGB"),
            resources.get("VolumeKmsKeyId"),
            tuple(sorted(vpc.get("SecurityGroupIds", []))),
            tuple(sorted(vpc.get("Subnets", []))),
            bool(self.request.get("EnableNetworkIsolation")),
            bool(self.request.get("EnableInterContainerTrafficEncryption")),
        )


# ListTrainingJobs time filter -> (job attribute, +1 for "after" / -1 for "before"); both are strict.
_TIME_FILTERS = {
    "CreationTimeAfter": ("created", 1),
    "CreationTimeBefore": ("created", -1),
    "LastModifiedTimeAfter": ("modified", 1),
    "LastModifiedTimeBefore": ("modified", -1),
}
_SORT_KEYS: dict[str, Callable[[_Job], Any]] = {
    "Name": lambda job: job.name,
    "CreationTime": lambda job: job.created,
    "Status": lambda job: job.status,
}


@functools.lru_cache(maxsize=2)
def _echoed_members(kind: JobKind = TRAINING) -> frozenset[str]:
    """Return the Create…Job members that Describe…Job returns as they were sent."""
    model = sagemaker_model()
    sent = model.operation_model(kind.create_operation).input_shape.members
    described = model.operation_model(kind.describe_operation).output_shape.members
    return frozenset(set(sent) & set(described)) - {kind.name_field}


def _validate(operation: str, params: dict[str, Any]) -> None:
    errors = validation_errors(operation, params)
    if errors:
        raise AwsError("ValidationException", validation_message(errors))


def _checked_name(operation: str, name: str | None, field: str = "TrainingJobName") -> str:
    _validate(operation, {field: name})
    assert name is not None  # _validate rejects a missing name
    return name


def training_job_arn_name(arn: Any) -> str | None:
    """Return the job name in a SageMaker training-job ARN; None for any other value or resource."""
    match = _TRAINING_JOB_ARN.fullmatch(arn) if isinstance(arn, str) else None
    return match.group(3) if match else None


def _with_tags(tags: list[dict[str, str]], added: list[dict[str, str]]) -> list[dict[str, str]]:
    """Return ``tags`` with ``added`` applied: existing keys take the new value in place, new keys go last."""
    merged = {tag["Key"]: tag["Value"] for tag in tags}
    for tag in added:
        merged[tag["Key"]] = tag["Value"]
    return [{"Key": key, "Value": value} for key, value in merged.items()]


def _check_tag_count(count: int) -> None:
    if count > TAGS_PER_RESOURCE:
        raise AwsError(
            "ValidationException",
            f"A resource can have at most {TAGS_PER_RESOURCE} tags; this request would leave it {count}.",
        )


def _encode_tags_token(arn: str, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps(["ListTags", arn, offset]).encode()).decode()


def _decode_tags_token(token: str, arn: str) -> int:
    """Return the position of the first tag of the page that ``token`` asks for."""
    try:
        kind, token_arn, offset = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, TypeError) as error:
        raise AwsError("ValidationException", "Invalid pagination token.") from error
    if kind != "ListTags" or token_arn != arn or not isinstance(offset, int) or offset < 0:
        raise AwsError("ValidationException", "Invalid pagination token.")
    return offset


def _epoch(value: Any) -> float:
    """Convert a timestamp as clients send it (epoch number or ISO 8601 string) to epoch seconds."""
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError as error:
        raise AwsError("ValidationException", f"Invalid timestamp {value!r}.") from error


def _after(cursor: tuple[Any, str], position: tuple[Any, str], descending: bool) -> bool:
    """Tell whether ``position`` comes after the ``cursor`` of the previous page in the listing order."""
    return position < cursor if descending else position > cursor


def _encode_token(sort_by: str, sort_value: Any, name: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([sort_by, sort_value, name]).encode()).decode()


def _decode_token(token: str, sort_by: str) -> tuple[Any, str]:
    """Return the (sort value, name) cursor of the last job on the previous page."""
    try:
        token_sort_by, sort_value, name = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError, TypeError) as error:
        raise AwsError("ValidationException", "Invalid pagination token.") from error
    if token_sort_by != sort_by:
        raise AwsError("ValidationException", "The pagination token does not match the request's SortBy.")
    return sort_value, name


class TrainingJobStore:
    """Training jobs of one emulated account, all regions, behind one lock.

    The state machine serves every job kind: a subclass sets :attr:`kind` and shapes its responses
    (:class:`~lyftlearn_provider.testing.aws.processing_jobs.ProcessingJobStore`).

    ``publish(event, at)`` receives every state-change event (see :func:`.events.state_change_event`);
    ``stop_delay`` is how long a stopped job stays ``Stopping`` before it becomes ``Stopped``.
    """

    def __init__(
        self,
        publish: Publisher | None = None,
        *,
        account_id: str = ACCOUNT_ID,
        stop_delay: float = DEFAULT_STOP_DELAY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.account_id = account_id
        self.stop_delay = stop_delay
        self._publish = publish
        self._clock = clock
        self._lock = threading.RLock()
        self._jobs: dict[JobKey, _Job] = {}
        self._created_hooks: list[CreatedHook] = []

    #: The kind of job this store keeps: its operations, fields and ARNs.
    kind: JobKind = TRAINING

    def on_created(self, hook: CreatedHook) -> None:
        """Call ``hook(region, name, reused_warm_pool)`` after each job is created (outside the lock)."""
        self._created_hooks.append(hook)

    # The AWS API -------------------------------------------------------------------------------

    def create(self, region: str, request: dict[str, Any]) -> dict[str, Any]:
        """Serve CreateTrainingJob."""
        _validate(self.kind.create_operation, request)
        name = request[self.kind.name_field]
        with self._lock:
            existing = self._jobs.get((region, name))
            if existing is not None:
                raise AwsError(
                    "ResourceInUse",
                    f"{self.kind.noun.capitalize()} names must be unique within an AWS account and region, "
                    f"and a {self.kind.noun} with this name already exists ({existing.arn})",
                )
            now = self._clock()
            job = _Job(
                region=region,
                name=name,
                arn=self.kind.arn("aws", region, self.account_id, name),
                request=copy.deepcopy(request),
                created=now,
                modified=now,
                tags=_with_tags([], request.get("Tags") or []),
            )
            reused = self._take_warm_pool(job, now)
            self._jobs[(region, name)] = job
            job.transitions.append(
                {"Status": "Starting", "StartTime": now, "StatusMessage": DEFAULT_MESSAGES["Starting"]}
            )
            self._emit(job, now)
        for hook in self._created_hooks:
            hook(region, name, reused)
        return {self.kind.arn_field: job.arn}

    def describe(self, region: str, name: str | None) -> dict[str, Any]:
        """Serve DescribeTrainingJob (a request without a name is rejected as AWS rejects it)."""
        name = _checked_name(self.kind.describe_operation, name, self.kind.name_field)
        with self._lock:
            return self._describe(self._get(region, name), self._clock())

    def stop(self, region: str, name: str | None) -> None:
        """Serve StopTrainingJob: ``Stopping`` now, ``Stopped`` after ``stop_delay`` seconds."""
        name = _checked_name(self.kind.stop_operation, name, self.kind.name_field)
        with self._lock:
            job = self._get(region, name)
            if job.status != "InProgress":
                raise InvalidJobState(
                    f"The request was rejected because the {self.kind.noun} is in status {job.status}."
                )
            self._transition(job, "Stopping", "Stopping", DEFAULT_MESSAGES["Stopping"], self._clock())
        timer = threading.Timer(self.stop_delay, self._finish_stopping, args=(job,))
        timer.daemon = True
        timer.start()

    def list_jobs(self, region: str, request: dict[str, Any]) -> dict[str, Any]:
        """Serve ListTrainingJobs with every filter, sorting and ``NextToken`` pagination."""
        _validate(self.kind.list_operation, request)
        sort_by = request.get("SortBy", "CreationTime")
        sort_key = _SORT_KEYS[sort_by]
        descending = request.get("SortOrder", "Ascending") == "Descending"
        limit = int(request.get("MaxResults", 10))
        limits = {
            parameter: _epoch(request[parameter]) for parameter in _TIME_FILTERS if parameter in request
        }
        with self._lock:
            now = self._clock()
            matching = [
                job
                for (job_region, _), job in self._jobs.items()
                if job_region == region and self._matches(job, request, limits, now)
            ]
            matching.sort(key=lambda job: (sort_key(job), job.name), reverse=descending)
            if "NextToken" in request:
                cursor = _decode_token(request["NextToken"], sort_by)
                matching = [job for job in matching if _after(cursor, (sort_key(job), job.name), descending)]
            page = matching[:limit]
            response: dict[str, Any] = {self.kind.summaries_field: [self._summary(job, now) for job in page]}
            if len(matching) > limit:
                response["NextToken"] = _encode_token(sort_by, sort_key(page[-1]), page[-1].name)
            return response

    def list_tags(self, region: str, request: dict[str, Any]) -> dict[str, Any]:
        """Serve ListTags for a training-job ARN, ``MaxResults`` tags a page (at least 50; 50 by default)."""
        _validate("ListTags", request)
        arn = request["ResourceArn"]
        limit = int(request.get("MaxResults") or TAGS_PER_RESOURCE)
        with self._lock:
            tags = copy.deepcopy(self._get_by_arn(region, arn).tags)
        start = _decode_tags_token(request["NextToken"], arn) if request.get("NextToken") else 0
        response: dict[str, Any] = {"Tags": tags[start : start + limit]}
        if start + limit < len(tags):
            response["NextToken"] = _encode_tags_token(arn, start + limit)
        return response

    def add_tags(self, region: str, request: dict[str, Any]) -> dict[str, Any]:
        """Serve AddTags for a training-job ARN; the response lists the tags the request added."""
        _validate("AddTags", request)
        with self._lock:
            job = self._get_by_arn(region, request["ResourceArn"])
            tags = _with_tags(job.tags, request["Tags"])
            _check_tag_count(len(tags))
            job.tags = tags
        return {"Tags": [{"Key": tag["Key"], "Value": tag["Value"]} for tag in request["Tags"]]}

    def delete_tags(self, region: str, request: dict[str, Any]) -> dict[str, Any]:
        """Serve DeleteTags for a training-job ARN; keys the job does not have are ignored."""
        _validate("DeleteTags", request)
        keys = set(request["TagKeys"])
        with self._lock:
            job = self._get_by_arn(region, request["ResourceArn"])
            job.tags = [tag for tag in job.tags if tag["Key"] not in keys]
        return {}

    # Driving the lifecycle ---------------------------------------------------------------------

    def advance(
        self,
        region: str,
        name: str,
        secondary_status: str,
        message: str | None = None,
        at: float | None = None,
    ) -> dict[str, Any]:
        """Move an InProgress job to another secondary status; the same status only updates the message."""
        if secondary_status not in IN_PROGRESS_PHASES:
            raise ValueError(
                f"{secondary_status!r} is not an InProgress secondary status; "
                f"use one of {sorted(IN_PROGRESS_PHASES)} (or complete/fail/stop)"
            )
        with self._lock:
            job = self._get_in_progress(region, name)
            at = self._clock() if at is None else at
            text = message or DEFAULT_MESSAGES[secondary_status]
            if secondary_status == job.secondary:
                job.transitions[-1]["StatusMessage"] = text
            else:
                if job.training_start is None and secondary_status not in STARTUP_PHASES:
                    job.training_start = at
                self._transition(job, "InProgress", secondary_status, text, at)
            return self._describe(job, self._clock())

    def complete(
        self,
        region: str,
        name: str,
        metrics: dict[str, float] | None = None,
        model_artifact: str | None = None,
        at: float | None = None,
    ) -> dict[str, Any]:
        """Finish an InProgress job successfully with ``metrics`` as its FinalMetricDataList."""
        with self._lock:
            job = self._get_in_progress(region, name)
            at = self._clock() if at is None else at
            if job.training_start is None:  # a test may complete a job straight from Starting
                job.training_start = at
            job.artifact = model_artifact or job.default_artifact
            job.metrics = [
                {"MetricName": metric, "Value": float(value), "Timestamp": at}
                for metric, value in (metrics or {}).items()
            ]
            self._finish(job, "Completed", DEFAULT_MESSAGES["Completed"], at)
            return self._describe(job, self._clock())

    def fail(self, region: str, name: str, reason: str, at: float | None = None) -> dict[str, Any]:
        """Finish an InProgress job as Failed with ``reason`` as its FailureReason."""
        with self._lock:
            job = self._get_in_progress(region, name)
            at = self._clock() if at is None else at
            job.failure_reason = reason
            self._finish(job, "Failed", reason, at)
            return self._describe(job, self._clock())

    def seed(self, region: str, names: list[str], status: str = "Completed", at: float | None = None) -> int:
        """
        Add jobs straight to the store, without validation, events or autopilot: an account's history.

        Each is created and last modified at ``at`` (now by default) and has ``status``, a terminal one
        (ended at ``at``) or ``InProgress`` (Training). Existing names are left alone; returns the number
        added. Cheap: 10,000 jobs in well under a second.
        """
        if status not in TERMINAL_STATUSES | {"InProgress"}:
            raise ValueError(f"status must be InProgress or one of {sorted(TERMINAL_STATUSES)}")
        secondary = {"InProgress": "Training", "Completed": "Completed", "Failed": "Failed"}.get(
            status, status
        )
        added = 0
        with self._lock:
            when = self._clock() if at is None else at
            for name in names:
                if (region, name) in self._jobs:
                    continue
                self._jobs[(region, name)] = _Job(
                    region=region,
                    name=name,
                    arn=f"arn:aws:sagemaker:{region}:{self.account_id}:training-job/{name}",
                    request={"TrainingJobName": name, "OutputDataConfig": {"S3OutputPath": "s3://seeded/"}},
                    created=when,
                    modified=when,
                    status=status,
                    secondary=secondary,
                    training_start=when,
                    training_end=None if status == "InProgress" else when,
                    failure_reason="AlgorithmError: seeded" if status == "Failed" else None,
                    transitions=[
                        {
                            "Status": secondary,
                            "StartTime": when,
                            "StatusMessage": DEFAULT_MESSAGES.get(secondary, secondary),
                            **({} if status == "InProgress" else {"EndTime": when}),
                        }
                    ],
                )
                added += 1
        return added

    def jobs(self, region: str | None = None) -> list[dict[str, Any]]:
        """Describe every job (of ``region`` when given), oldest first."""
        with self._lock:
            now = self._clock()
            selected = [job for job in self._jobs.values() if region is None or job.region == region]
            return [self._describe(job, now) for job in sorted(selected, key=lambda job: job.created)]

    def in_progress(self) -> list[tuple[str, str, bool]]:
        """Return ``(region, name, reused_warm_pool)`` for every InProgress job."""
        with self._lock:
            return [
                (job.region, job.name, job.pool is not None and job.pool.status == "InUse")
                for job in self._jobs.values()
                if job.status == "InProgress"
            ]

    def reset(self) -> None:
        """Forget every job."""
        with self._lock:
            self._jobs.clear()

    # Internals ---------------------------------------------------------------------------------

    def _get(self, region: str, name: str) -> _Job:
        job = self._jobs.get((region, name))
        if job is None:
            raise JobNotFound()
        return job

    def _get_by_arn(self, region: str, arn: str) -> _Job:
        """Return the job ``arn`` names; only jobs of the request's region and our account are found."""
        match = self.kind.arn_pattern().fullmatch(arn) if isinstance(arn, str) else None
        name = match.group(3) if match else None
        job = self._jobs.get((region, name)) if name is not None else None
        if job is None or job.arn != arn:
            raise JobNotFound()
        return job

    def _get_in_progress(self, region: str, name: str) -> _Job:
        job = self._get(region, name)
        if job.status != "InProgress":
            raise InvalidJobState(
                f"{self.kind.noun.capitalize()} {name} is {job.status}; only InProgress jobs can change."
            )
        return job

    def _transition(self, job: _Job, status: str, secondary: str, message: str, at: float) -> None:
        if job.transitions and "EndTime" not in job.transitions[-1]:
            job.transitions[-1]["EndTime"] = at
        entry: dict[str, Any] = {"Status": secondary, "StartTime": at, "StatusMessage": message}
        if status in TERMINAL_STATUSES:
            entry["EndTime"] = at
        job.transitions.append(entry)
        job.status, job.secondary, job.modified = status, secondary, at
        self._emit(job, at)

    def _finish(self, job: _Job, status: str, message: str, at: float) -> None:
        job.training_end = at
        if job.keep_alive > 0:
            started = job.training_start is not None
            keeps_pool = (
                status == "Completed"
                or (status == "Stopped" and started)
                or (status == "Failed" and started and (job.failure_reason or "").startswith(_KEEPS_POOL))
            )
            job.pool = (
                _WarmPool("Available", available_since=at, expires_at=at + job.keep_alive)
                if keeps_pool
                else _WarmPool("Terminated", retained_seconds=0)
            )
        self._transition(job, status, status, message, at)

    def _finish_stopping(self, job: _Job) -> None:
        with self._lock:
            if self._jobs.get((job.region, job.name)) is not job or job.status != "Stopping":
                return
            at = self._clock()
            if job.training_start is not None:
                job.artifact = job.default_artifact
            self._finish(job, "Stopped", DEFAULT_MESSAGES["Stopped"], at)

    def _take_warm_pool(self, job: _Job, now: float) -> bool:
        """Move a matching Available warm pool to ``job``; return whether one was found."""
        if job.keep_alive <= 0:
            return False
        available: list[tuple[float, _Job]] = []
        for other in self._jobs.values():
            pool = self._current_pool(other)
            if (
                pool is not None
                and pool.status == "Available"
                and other.region == job.region
                and other.pool_signature == job.pool_signature
            ):
                available.append((pool.available_since, other))
        if not available:
            return False
        since, donor = min(available, key=lambda pair: pair[0])
        donor.pool = _WarmPool("Reused", retained_seconds=int(now - since), reused_by=job.name)
        job.pool = _WarmPool("InUse")
        return True

    def _current_pool(self, job: _Job) -> _WarmPool | None:
        """Return the job's warm pool, terminating it first if its keep-alive period ran out."""
        pool = job.pool
        if pool is not None and pool.status == "Available" and self._clock() >= pool.expires_at:
            job.pool = pool = _WarmPool("Terminated", retained_seconds=job.keep_alive)
        return pool

    def _warm_pool_status(self, job: _Job, now: float) -> dict[str, Any] | None:
        pool = self._current_pool(job)
        if pool is None:
            return None
        status: dict[str, Any] = {"Status": pool.status}
        if pool.status == "Available":
            status["ResourceRetainedBillableTimeInSeconds"] = max(0, int(now - pool.available_since))
        elif pool.retained_seconds is not None:
            status["ResourceRetainedBillableTimeInSeconds"] = pool.retained_seconds
        if pool.reused_by is not None:
            status["ReusedByJob"] = pool.reused_by
        return status

    def _matches(self, job: _Job, request: dict[str, Any], limits: dict[str, float], now: float) -> bool:
        if "NameContains" in request and request["NameContains"].lower() not in job.name.lower():
            return False
        if "StatusEquals" in request and job.status != request["StatusEquals"]:
            return False
        for parameter, limit in limits.items():
            attribute, direction = _TIME_FILTERS[parameter]
            if (getattr(job, attribute) - limit) * direction <= 0:
                return False
        if "WarmPoolStatusEquals" in request:
            pool = self._warm_pool_status(job, now)
            if pool is None or pool["Status"] != request["WarmPoolStatusEquals"]:
                return False
        return True

    def _summary(self, job: _Job, now: float) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "TrainingJobName": job.name,
            "TrainingJobArn": job.arn,
            "CreationTime": job.created,
            "LastModifiedTime": job.modified,
            "TrainingJobStatus": job.status,
            "SecondaryStatus": job.secondary,
        }
        if job.training_end is not None:
            summary["TrainingEndTime"] = job.training_end
        pool = self._warm_pool_status(job, now)
        if pool is not None:
            summary["WarmPoolStatus"] = pool
        return summary

    def _identity(self, job: _Job) -> dict[str, Any]:
        """Return the name, ARN, status and times every kind's Describe…Job answers with."""
        kind = self.kind
        return {
            kind.name_field: job.name,
            kind.arn_field: job.arn,
            kind.status_field: job.status,
            "CreationTime": job.created,
            "LastModifiedTime": job.modified,
        }

    def _describe(self, job: _Job, now: float) -> dict[str, Any]:
        described: dict[str, Any] = {
            "EnableNetworkIsolation": False,
            "EnableInterContainerTrafficEncryption": False,
            "EnableManagedSpotTraining": False,
            "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        }
        described.update(
            copy.deepcopy({k: v for k, v in job.request.items() if k in _echoed_members(self.kind)})
        )
        described.update(self._identity(job))
        described.update(
            {
                "ModelArtifacts": {"S3ModelArtifacts": job.artifact},
                "SecondaryStatus": job.secondary,
                "SecondaryStatusTransitions": copy.deepcopy(job.transitions),
            }
        )
        if job.failure_reason is not None:
            described["FailureReason"] = job.failure_reason
        if job.training_start is not None:
            described["TrainingStartTime"] = job.training_start
        if job.training_end is not None:
            described["TrainingEndTime"] = job.training_end
            if job.training_start is not None:
                seconds = max(1, int(round(job.training_end - job.training_start)))
                described["TrainingTimeInSeconds"] = seconds
                described["BillableTimeInSeconds"] = seconds * job.instance_count
        if job.metrics:
            described["FinalMetricDataList"] = copy.deepcopy(job.metrics)
        pool = self._warm_pool_status(job, now)
        if pool is not None:
            described["WarmPoolStatus"] = pool
        return described

    def _emit(self, job: _Job, at: float) -> None:
        if self._publish is None:
            return
        event = state_change_event(
            self._describe(job, at), job.tags, self.account_id, job.region, at, kind=self.kind
        )
        self._publish(event, at)
