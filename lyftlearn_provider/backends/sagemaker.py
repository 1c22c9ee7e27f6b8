"""The SageMaker side of a job task: jobs found by name, created once, followed by triggers.

One backend class per job kind (:mod:`lyftlearn_provider.job_kinds`): training and processing (batch)
share every step and differ in the request they render and the result they return.

Imported when a DAG is parsed, so boto3 and the hooks are imported inside the methods that use them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from lyftlearn_provider.backends import SAGEMAKER_ARGUMENTS
from lyftlearn_provider.backends.base import (
    Deferral,
    Job,
    JobBackend,
    JobRecord,
    JobRun,
    JobSettings,
    JobState,
)
from lyftlearn_provider.exceptions import BatchJobError, JobError, LyftLearnError, TrainingJobError
from lyftlearn_provider.job_kinds import PROCESSING, TRAINING, JobKind
from lyftlearn_provider.rendering.sagemaker import render_processing_job, render_training_job
from lyftlearn_provider.results import from_processing_job, from_training_job
from lyftlearn_provider.retries import jittered
from lyftlearn_provider.status import (
    COMPLETED,
    FAILED,
    STOPPED,
    JobEvent,
    TrackingErrorKind,
    TrackingSource,
    TrainingEventStatus,
    is_terminal,
)
from lyftlearn_provider.tags import identity_tags, tag_value

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

    from lyftlearn_provider.hooks.sagemaker import SageMakerJobHook
    from lyftlearn_provider.rendering.sagemaker import JobRendering
    from lyftlearn_provider.results import BatchResult, TrainingResult

#: Error events in a row after which the task stops asking the triggerer and follows the job itself.
MAX_TRACKING_ERRORS = 3
#: Seconds the triggerer's own timeout waits past the task's deadline: the trigger reports the
#: deadline itself; this only fires if it cannot.
DEFERRAL_BACKSTOP_SECONDS = 60
_STATES = {COMPLETED: JobState.SUCCEEDED, FAILED: JobState.FAILED, STOPPED: JobState.STOPPED}


def _image_of(description: Mapping[str, Any]) -> str | None:
    if "AppSpecification" in description:
        return (description.get("AppSpecification") or {}).get("ImageUri")
    return (description.get("AlgorithmSpecification") or {}).get("TrainingImage")


def job_from_description(description: Mapping[str, Any], attempt: int, kind: JobKind = TRAINING) -> Job:
    """Return the backend-neutral view of a ``DescribeTrainingJob`` (or ``DescribeProcessingJob``) answer."""
    status = description[kind.status_field]
    reason = description.get("FailureReason")
    if status == STOPPED and not reason:
        reason = (
            f"secondary status {description.get('SecondaryStatus')}"
            if "SecondaryStatus" in description
            else description.get("ExitMessage") or "stopped"
        )
    return Job(
        name=description[kind.name_field],
        attempt=attempt,
        state=_STATES.get(status, JobState.RUNNING),
        image=_image_of(description),
        reason=reason,
        details=description,
    )


class SageMakerJobBackend(JobBackend):
    """Run a spec as a SageMaker job of one kind; subclasses render its request and build its result.

    :param settings: what every backend is given (spec, AWS, time limit, poll interval, name prefix).
    :param tags: the user's tags for the job.
    :param tracking: how a deferred task learns the job ended.
    :param events_queue_url: the queue of ``tracking="events"``.
    """

    arguments = SAGEMAKER_ARGUMENTS
    job_error: ClassVar[type[JobError]] = TrainingJobError
    stopped_by = "console, API, or its MaxRuntimeInSeconds"
    #: The kind of SageMaker job this backend runs.
    kind: ClassVar[JobKind] = TRAINING

    def __init__(
        self,
        operator: BaseOperator,
        settings: JobSettings,
        *,
        tags: Mapping[str, str],
        tracking: TrackingSource,
        events_queue_url: str | None,
    ) -> None:
        super().__init__(operator, settings)
        self.tags = dict(tags)
        self.tracking = tracking
        self.events_queue_url = events_queue_url
        #: The job being created: known before the request leaves, so a kill during it stops the job.
        self._creating: str | None = None

    def render(
        self, spec: Any, *, name: str, tags: Mapping[str, str], run_environment: Mapping[str, str]
    ) -> JobRendering:
        """Return the Create…Job request of one attempt."""
        raise NotImplementedError

    def _job(self, description: Mapping[str, Any], attempt: int) -> Job:
        return job_from_description(description, attempt, self.kind)

    @cached_property
    def hook(self) -> SageMakerJobHook:
        """Return the SageMaker hook of this kind (imported here: DAG parsing must not pay for boto3)."""
        from lyftlearn_provider.hooks.sagemaker import job_hook

        return job_hook(
            self.kind,
            aws_conn_id=self.aws.aws_conn_id,
            region_name=self.aws.region_name,
            verify=self.aws.verify,
            config=self.aws.botocore_config,
            retry_delay=min(self.settings.poll_interval, 5.0),
        )

    # ------------------------------------------------------------------ find and create
    def find(self, run: JobRun) -> Job | None:
        """Return the run's latest attempt (``base``, ``base-a2`` ...), or None."""
        attempt, description = self.hook.find_latest_attempt(run.identity.base_name)
        return None if description is None else self._job(description, attempt)

    def image_reference(self, run: JobRun, job: Job) -> str | None:
        """Return the reference the job was created from: its ``lyftlearn:image-reference`` tag."""
        arn = (job.details or {}).get(self.kind.arn_field)
        return tag_value(self.hook.list_tags(arn), "image-reference") if arn else None

    def create(
        self, run: JobRun, *, attempt: int, image: Mapping[str, Any] | None, reference: str
    ) -> tuple[Job, bool]:
        """Render the spec for this attempt, upload what spills, and create the job exactly once."""
        identity = run.identity
        name = identity.attempt_name(attempt)
        spec = self.spec if image is None else dataclasses.replace(self.spec, image=image["pinned"])
        rendering = self.render(
            spec,
            name=name,
            tags={
                **self.tags,
                **identity_tags(
                    dag_id=identity.dag_id,
                    task_id=identity.task_id,
                    run_id=identity.run_id,
                    map_index=identity.map_index,
                    fingerprint=identity.fingerprint,
                    base_job_name=identity.base_name,
                    image_reference=reference,
                ),
            },
            run_environment=identity.environment(),
        )
        if rendering.spill_uri and rendering.spill_document:
            self.hook.upload_json(rendering.spill_uri, rendering.spill_document)
            run.log.info("Values over SageMaker's limits travel in %s.", rendering.spill_uri)
        self._creating = name
        description, created = self.hook.create_job(rendering.request)
        run.log.info(
            "%s %s %s (%s).",
            "Created" if created else "Found our earlier request's",
            self.kind.noun,
            name,
            description.get(self.kind.arn_field),
        )
        return self._job(description, attempt), created

    def persist_links(self, run: JobRun, job: Job) -> None:
        """Record the job for the task's links to the SageMaker console and the job's logs."""
        from lyftlearn_provider.links.sagemaker import persist_job_links

        console = persist_job_links(
            self.kind,
            run.context,
            self.operator,
            region_name=self.hook.conn_region_name,
            aws_partition=self.hook.conn_partition,
            job_name=job.name,
            image=job.image,
        )
        run.log.info("%s %s in the SageMaker console: %s", self.kind.noun.capitalize(), job.name, console)

    # ------------------------------------------------------------------ wait and resume
    def follow(self, run: JobRun, job: Job, record: JobRecord) -> Job | Deferral:
        """Defer to a :class:`TrainingJobTrigger`, or poll from here until the job ends.

        After ``MAX_TRACKING_ERRORS`` resumptions in a row that found the job still running, the
        triggerer is not asked again: the worker, which can see the job, follows it itself.
        """
        if run.deferrable and record.tracking_errors < MAX_TRACKING_ERRORS:
            return self._deferral(job.name, record.deadline)
        if run.deferrable:
            run.log.warning(
                "The triggerer could not follow %s %d times in a row: following it from this worker.",
                job.name,
                record.tracking_errors,
            )
        return self._wait(run, job.name, record)

    def record_from_event(self, run: JobRun, event: Any) -> JobRecord:
        """Return a record of the event's job: its attempt from its name, not known to be adopted."""
        name = JobEvent.from_payload(event).job_name
        attempt = run.identity.attempt_of(name)
        if attempt is None:
            raise LyftLearnError(f"The trigger's event names job {name}, which is not one of this run's.")
        return JobRecord(job_name=name, attempt=attempt, adopted=False)

    def resume(self, run: JobRun, record: JobRecord, event: Any) -> Job | Deferral:
        """Act on the trigger's event; a job that still runs is followed again, never stopped for it."""
        event = JobEvent.from_payload(event)
        name = event.job_name
        if event.status is TrainingEventStatus.TIMEOUT:
            self._stop_for_timeout(name)
        description = self.hook.describe_job(name)
        if description is None:
            raise self.job_error(name, "missing", "SageMaker no longer knows this job")
        job = self._job(description, record.attempt)
        if job.state.ended:
            return job
        # An error event, or an end that Describe does not show yet: the job runs, and the operator
        # follows it again (from the worker after MAX_TRACKING_ERRORS such events in a row).
        if event.status is TrainingEventStatus.ERROR:
            run.log.warning(
                "The %s tracker could not follow %s (%s: %s); following it again.",
                self.tracking.value,
                name,
                event.error_kind.value if event.error_kind else "error",
                event.message,
            )
            if event.error_kind is TrackingErrorKind.TRACKER and self.tracking is not TrackingSource.POLL:
                # The same source would fail the same way: this deferral polls the job itself.
                self.tracking = TrackingSource.POLL
        else:
            run.log.warning(
                "The trigger reported %s %s, but SageMaker still shows it running: following it again.",
                name,
                event.job_status,
            )
        return job

    def _deferral(self, name: str, deadline: float | None) -> Deferral:
        from lyftlearn_provider.triggers.training import TrainingJobTrigger

        timeout = None
        if deadline is not None:
            timeout = dt.timedelta(seconds=max(0.0, deadline - time.time()) + DEFERRAL_BACKSTOP_SECONDS)
        trigger = TrainingJobTrigger(
            name,
            aws_conn_id=self.aws.aws_conn_id,
            region_name=self.aws.region_name,
            verify=self.aws.verify,
            botocore_config=self.aws.botocore_config,
            poll_interval=self.settings.poll_interval,
            deadline=deadline,
            source=self.tracking.value,
            queue_url=self.events_queue_url,
            # The shared watcher lists only this prefix's jobs; the events queue's rule matches it.
            job_name_prefix=None if self.tracking is TrackingSource.POLL else self.settings.job_name_prefix,
            job_kind=self.kind.name,
        )
        return Deferral(trigger, timeout=timeout)

    def _wait(self, run: JobRun, name: str, record: JobRecord) -> Job:
        while True:
            description = self.hook.describe_job(name)
            if description is None:
                raise self.job_error(name, "missing", "SageMaker no longer knows this job")
            if is_terminal(description[self.kind.status_field]):
                return self._job(description, record.attempt)
            if record.deadline is not None and time.time() >= record.deadline:
                self._stop_for_timeout(name)
            pause = jittered(self.settings.poll_interval)
            if record.deadline is not None:
                pause = min(pause, max(0.0, record.deadline - time.time()))
            time.sleep(pause)

    def _stop_for_timeout(self, name: str) -> None:
        self.hook.stop_job(name)
        raise self.job_error(name, "timed out", "the task's execution_timeout passed; the job was stopped")

    # ------------------------------------------------------------------ stop and finish
    def stop(self, run: JobRun, job_name: str | None) -> list[str]:
        """Stop the named job, the one being created, or else the run's latest attempt if it runs."""
        name = job_name or self._creating
        if name is None:
            latest = self.find(run)
            if latest is None or latest.state.ended:
                return []
            name = latest.name
        return [name] if self.hook.stop_job(name) else []


class SageMakerTrainingBackend(SageMakerJobBackend):
    """Run a spec as a SageMaker training job.

    :param keep_alive_seconds: the warm pool's ``KeepAlivePeriodInSeconds``, or None.
    """

    job_error = TrainingJobError
    kind = TRAINING

    def __init__(self, *args: Any, keep_alive_seconds: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.keep_alive_seconds = keep_alive_seconds

    def render(
        self, spec: Any, *, name: str, tags: Mapping[str, str], run_environment: Mapping[str, str]
    ) -> JobRendering:
        """Return the CreateTrainingJob request of one attempt."""
        return render_training_job(
            spec,
            job_name=name,
            max_runtime_seconds=self.settings.max_runtime_seconds,
            keep_alive_seconds=self.keep_alive_seconds,
            tags=tags,
            run_environment=run_environment,
        )

    def result(self, run: JobRun, job: Job, record: JobRecord) -> TrainingResult:
        """Return the typed result, naming the warm pool the job started on."""
        description = job.details
        donor = self.hook.find_warm_pool_donor(description) if description.get("WarmPoolStatus") else None
        return from_training_job(
            description,
            attempt=record.attempt,
            adopted=record.adopted,
            image_resolution=record.image,
            reused_pool_of=donor,
            data_interval_start=run.identity.data_interval_start,
            data_interval_end=run.identity.data_interval_end,
        )


class SageMakerBatchBackend(SageMakerJobBackend):
    """Run a spec as a SageMaker Processing job: the provider's batch job.

    :param outputs: output name to the ``s3://`` prefix it is uploaded to.
    :param model_uri: the model the program loads (``LYFTLEARN_MODEL_URI``), if any.
    :param network_config: the job's ``NetworkConfig``, if any.
    """

    job_error = BatchJobError
    kind = PROCESSING

    def __init__(
        self,
        *args: Any,
        outputs: Mapping[str, str],
        model_uri: str | None = None,
        network_config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.outputs = dict(outputs)
        self.model_uri = model_uri
        self.network_config = network_config

    def render(
        self, spec: Any, *, name: str, tags: Mapping[str, str], run_environment: Mapping[str, str]
    ) -> JobRendering:
        """Return the CreateProcessingJob request of one attempt."""
        return render_processing_job(
            spec,
            job_name=name,
            max_runtime_seconds=self.settings.max_runtime_seconds,
            outputs=self.outputs,
            model_uri=self.model_uri,
            tags=tags,
            run_environment=run_environment,
            network_config=self.network_config,
        )

    def result(self, run: JobRun, job: Job, record: JobRecord) -> BatchResult:
        """Return the typed result of the finished processing job."""
        return from_processing_job(
            job.details,
            attempt=record.attempt,
            adopted=record.adopted,
            model_uri=self.model_uri,
            image_resolution=record.image,
            data_interval_start=run.identity.data_interval_start,
            data_interval_end=run.identity.data_interval_end,
        )
