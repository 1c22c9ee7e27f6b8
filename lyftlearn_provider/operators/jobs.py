"""The lifecycle every LyftLearn job task shares, whatever the job kind and wherever it runs.

:class:`JobOperator` owns the Airflow side: it names the run's job, finds it or creates the next
attempt (with the image pinned once per run), defers or waits, resumes, stops what runs when the task
is killed or times out, and returns one typed result. A :class:`~lyftlearn_provider.backends.base.JobBackend`
does each step on its platform. Subclasses (``TrainModelOperator``) declare their arguments and
build their backends; they do not repeat this.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, cast

from airflow.sdk import BaseOperator

from lyftlearn_provider.backends.base import (
    AwsSettings,
    Deferral,
    Job,
    JobBackend,
    JobRecord,
    JobRun,
    JobSettings,
    JobState,
    RunIdentity,
)
from lyftlearn_provider.exceptions import InvalidSpecError, JobError, LyftLearnError
from lyftlearn_provider.images import SociPolicy, parse_image_reference
from lyftlearn_provider.limits import MAX_RUNTIME_SECONDS, MIN_RUNTIME_SECONDS
from lyftlearn_provider.naming import run_fingerprint, training_job_name, validate_prefix
from lyftlearn_provider.run_dates import fill_manual_interval
from lyftlearn_provider.runtime import RuntimeSpec
from lyftlearn_provider.status import FailedJobPolicy
from lyftlearn_provider.validation import require_int, require_seconds, thaw

if TYPE_CHECKING:
    from airflow.sdk import Context

    from lyftlearn_provider.results import JobResult

#: XCom key of the task's :class:`JobRecord`: the job it follows, its attempt, whether it adopted it and
#: its deadline. Read back when the task resumes: the triggerer keeps ``next_kwargs`` but
#: ``dag.test()`` replaces them with the event, and a deferral timeout brings none.
RECORD_XCOM_KEY = "lyftlearn_job"
#: Where earlier versions kept the record: read too, so a task deferred before an upgrade resumes.
LEGACY_RECORD_XCOM_KEYS = ("training_job",)
#: SageMaker's default MaxRuntimeInSeconds, used when neither the operator nor the task sets a limit.
DEFAULT_MAX_RUNTIME_SECONDS = 24 * 3600
#: Airflow's ``next_method`` when the triggerer fails a deferred task (``TRIGGER_FAIL_REPR`` upstream)...
TRIGGER_FAILED = "__fail__"
#: ... and its ``error`` when the deferral timed out (``TriggerFailureReason.TRIGGER_TIMEOUT``).
DEFERRAL_TIMEOUT = "Trigger timeout"
_KILLED = "the task was killed (or timed out, or was marked failed), which stopped it"
_SECRET_FIX = (
    "Pass secrets by reference: secrets={'NAME': '<Secrets Manager ARN or name>'}; the program resolves "
    "it with its own role, so the value never reaches SageMaker, the pod manifest, XCom or the logs."
)


def check_poll_interval(value: object) -> float:
    """Return ``value`` as seconds when it is a finite, positive number; raise naming the fix otherwise."""
    return require_seconds(value, "poll_interval", example=30)


def _redactor() -> Any:
    """Return Airflow's secrets-masker ``redact`` (its module moved between Airflow 3.1 and 3.3)."""
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # Airflow 3.1
        from airflow.sdk.execution_time.secrets_masker import redact  # type: ignore[no-redef]
    return redact


def refuse_masked_secrets(spec: RuntimeSpec, tags: Mapping[str, str] | None = None) -> None:
    """Raise when a rendered value holds something Airflow masks as a secret (R7).

    A sensitive Variable or a Connection's password templated into ``environment`` or
    ``hyperparameters`` would reach SageMaker in clear text — visible to anyone who may describe the
    job — and the pod manifest likewise. Airflow's secrets masker knows every such value once it was
    read, so a value it would redact is refused, naming the field.
    """
    redact = _redactor()

    def walk(value: Any, field: str) -> None:
        if isinstance(value, str):
            if redact(value) != value:
                raise InvalidSpecError(field, "holds a value Airflow masks as a secret", _SECRET_FIX)
        elif isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, f"{field}[{key!r}]")
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                walk(item, f"{field}[{index}]")

    for name in RuntimeSpec.template_fields:
        walk(thaw(getattr(spec, name)), f"spec.{name}")
    walk(dict(tags or {}), "tags")


def template_error(field: str, error: Exception) -> InvalidSpecError:
    """Return the configuration error of a template that could not be rendered (no retry renders it)."""
    return InvalidSpecError(
        field,
        f"its template could not be rendered ({type(error).__name__}: {error})",
        "Fix the template; the names it may use are Airflow's template variables (a run triggered "
        "without a logical date gets data_interval_*, ds and ts from its run_after).",
    )


def skip_task(context: Context, result: Mapping[str, Any], reason: str) -> NoReturn:
    """Skip the task on purpose: ``result`` (with the reason) becomes its XCom, then the skip is raised.

    A skip says "not this model, by design" (a gate, never backwards), which a failure would not: the
    run stays green and nothing downstream of the task runs.
    """
    from airflow.sdk.exceptions import AirflowSkipException

    context["ti"].xcom_push(key="return_value", value=dict(result))
    raise AirflowSkipException(reason)


class SpecOperator(BaseOperator):
    """Render a task's ``RuntimeSpec`` field by field; a template that cannot be rendered is a config error.

    No retry would render it, so the task fails at once, naming the field.
    """

    #: Rendered Templates shows the spec as JSON (``RuntimeSpec.serialize``), with the backend's fields.
    template_fields_renderers: ClassVar[dict[str, str]] = {"spec": "json"}
    #: The backend whose fields Rendered Templates shows for the spec (None: every field that is set).
    spec_backend: str | None = None

    def render_template(
        self, content: Any, context: Context, jinja_env: Any = None, seen_oids: set[int] | None = None
    ) -> Any:
        """Render templates, including the string fields of a frozen ``RuntimeSpec`` (validated again)."""
        if not isinstance(content, RuntimeSpec):
            return super().render_template(content, context, jinja_env, seen_oids)
        import jinja2

        fields = iter(content.template_fields)

        def render(value: Any) -> Any:
            name = next(fields)  # render_with calls once per field, in template_fields order
            try:
                return super(SpecOperator, self).render_template(value, context, jinja_env, seen_oids)
            except jinja2.TemplateError as error:
                raise template_error(f"spec.{name}", error) from error

        return content.render_with(render).for_backend(self.spec_backend)

    def render_template_fields(self, context: Context, jinja_env: Any = None) -> None:
        """Render every templated field; a template that cannot be rendered is a configuration error.

        A run without a logical date first gets its manual-run interval (see ``run_dates``), so that
        ``{{ data_interval_end }}`` and ``{{ ds }}`` render, and the task sees the same dates.
        """
        import jinja2

        fill_manual_interval(cast("dict[str, Any]", context), self.dag.timetable if self.has_dag() else None)
        for name in self.template_fields:
            try:
                self._do_render_template_fields(
                    self, [name], context, jinja_env or self.get_template_env(), set()
                )
            except jinja2.TemplateError as error:
                raise template_error(name, error) from error


class JobOperator(SpecOperator):
    """Run one job per task instance on a backend; the lifecycle is here, each platform's steps there.

    Subclasses set :attr:`backend_arguments` (argument name to the backends it applies to) and build
    the backend in :meth:`make_backend`.
    """

    #: Backend-specific arguments: name to the backends (values of ``self.backend``) that read it.
    backend_arguments: ClassVar[Mapping[str, frozenset[str]]] = {}
    #: How the task's log and errors name the job.
    job_noun: ClassVar[str] = "job"

    def __init__(
        self,
        *,
        spec: RuntimeSpec,
        backend: str,
        job_name_prefix: str,
        poll_interval: float,
        soci: SociPolicy | str,
        if_job_failed: FailedJobPolicy | str,
        max_runtime_seconds: int | None,
        deferrable: bool,
        aws_conn_id: str | None,
        region_name: str | None,
        verify: bool | str | None,
        botocore_config: dict[str, Any] | None,
        given: Mapping[str, Any],
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.spec_backend = backend
        self.deferrable = deferrable
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        if not isinstance(spec, RuntimeSpec):
            raise InvalidSpecError(
                "spec",
                f"expected a RuntimeSpec, got {type(spec).__name__}",
                "Pass RuntimeSpec(image=..., ...).",
            )
        for name, value in given.items():
            applies_to = self.backend_arguments.get(name)
            if applies_to is not None and value is not None and backend not in applies_to:
                raise InvalidSpecError(
                    name,
                    f"does not apply to backend={backend!r}",
                    f"Remove it, or use backend={sorted(applies_to)[0]!r}, which reads it.",
                )
        self.spec = spec
        self.job_name_prefix = validate_prefix(job_name_prefix)
        self.poll_interval = check_poll_interval(poll_interval)
        self.soci = SociPolicy.coerce(soci)
        try:
            self.if_job_failed = FailedJobPolicy(if_job_failed)
        except ValueError:
            raise InvalidSpecError(
                "if_job_failed",
                f"{if_job_failed!r} is not a policy",
                f"Use one of {[p.value for p in FailedJobPolicy]}.",
            ) from None
        if max_runtime_seconds is not None:
            require_int(
                max_runtime_seconds,
                "max_runtime_seconds",
                MIN_RUNTIME_SECONDS,
                MAX_RUNTIME_SECONDS,
                "Use 1 second to 28 days, or None to take the task's execution_timeout.",
            )
        self.max_runtime_seconds = max_runtime_seconds
        self._run: JobRun | None = None
        self._following: str | None = None

    # ------------------------------------------------------------------ what subclasses provide
    def make_backend(self) -> JobBackend:
        """Return the backend this task runs its job on, built from the task's (rendered) arguments."""
        raise NotImplementedError

    def settle_inputs(self, context: Context) -> None:
        """Settle inputs only the run knows (a model from an upstream task); called whenever the task runs."""

    def prepare(self, context: Context) -> None:
        """Settle what only rendering and the run could; raise ``InvalidSpecError`` before anything exists."""
        refuse_masked_secrets(self.spec)

    def resolve_image(self, reference: str, *, adopting: bool = False) -> dict[str, Any] | None:
        """Pin the image by digest through ECR and check its SOCI index; return the facts for the result.

        A job being adopted already runs its image: its facts are looked up, never held against it.
        """
        from lyftlearn_provider.hooks.ecr import EcrImageHook

        policy = (
            SociPolicy.OFF if self.soci is SociPolicy.OFF else SociPolicy.PREFER if adopting else self.soci
        )
        hook = EcrImageHook(aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify)
        try:
            return hook.resolve(reference, soci=policy).to_dict()
        except Exception as error:
            if not adopting:
                raise
            # The job already runs this image: not knowing its SOCI facts must not stop us following it.
            self.log.warning("Could not look up image %s (%s); following the job anyway.", reference, error)
            return None

    def job_settings(self) -> JobSettings:
        """Return what every backend of this task is given: the spec, AWS, the runtime limit, the names."""
        return JobSettings(
            spec=self.spec,
            aws=self.aws_settings(),
            max_runtime_seconds=self._max_runtime_seconds(),
            poll_interval=self.poll_interval,
            job_name_prefix=self.job_name_prefix,
        )

    def aws_settings(self) -> AwsSettings:
        """Return how this task reaches AWS."""
        return AwsSettings(self.aws_conn_id, self.region_name, self.verify, self.botocore_config)

    def aws_region(self) -> str | None:
        """Return the region the task's AWS calls go to: ``region_name``, else the connection's."""
        if self.region_name:
            return self.region_name
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type="sts").conn_region_name

    # ------------------------------------------------------------------ the lifecycle
    def execute(self, context: Context) -> dict[str, Any]:
        """Find the run's job or create its next attempt, then follow it here or from the triggerer."""
        run = self._start(context)
        self.prepare(context)
        job = self._backend.find(run)
        if job is not None and job.state in (JobState.RUNNING, JobState.SUCCEEDED):
            verb = (
                "completed: reusing its result"
                if job.state is JobState.SUCCEEDED
                else "running: following it"
            )
            self.log.info("%s %s of this run is already %s.", self.job_noun.capitalize(), job.name, verb)
            self._warn_on_drift(job)
            image = self.resolve_image(job.image, adopting=True) if job.image else None
            adopted = True
        else:
            if job is not None:
                self._apply_failed_job_policy(job)
            image = self._pin_image(run, predecessor=job)
            if run.killed:
                raise LyftLearnError(f"The task was killed before its {self.job_noun} was created.")
            job, created = self._backend.create(
                run, attempt=(job.attempt if job else 0) + 1, image=image, reference=self.spec.image
            )
            adopted = not created
            if run.killed:
                # The kill came while the request was in flight: what it created must not run on.
                self._backend.stop(run, job.name)
                raise self._backend.job_error(job.name, "Stopped", _KILLED)
        record = JobRecord(job.name, job.attempt, adopted, deadline=self._deadline(context), image=image)
        self._remember(run, job, record)
        return self._wait_for(run, job, record)

    def execute_complete(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Resume after the trigger fired: a job that still runs is followed again, an ended one finished."""
        run = self._start(context)
        record = self._record(context)
        if record is None:
            record = self._backend.record_from_event(run, event)
            self.log.warning(
                "No record of the %s in XCom: resuming on %s from the event.", self.job_noun, record.job_name
            )
        self._following = record.job_name
        step = self._backend.resume(run, record, event)
        if isinstance(step, Job) and not step.state.ended:
            record = dataclasses.replace(record, tracking_errors=record.tracking_errors + 1)
            context["ti"].xcom_push(key=RECORD_XCOM_KEY, value=record.to_xcom())
        return self._wait_for(run, step, record)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Stop the job when the deferral timed out; when the trigger itself failed, leave it to a retry.

        A deferral timeout means the task's deadline passed (the trigger's own deadline is earlier):
        the job is stopped, as on an execution timeout. A trigger that crashed says nothing about the
        job, which is healthy as far as anyone knows: it keeps running and the task's next try adopts it.
        """
        if next_method == TRIGGER_FAILED:
            run = self._start(context)
            record = self._record(context)
            name = record.job_name if record else None
            if (next_kwargs or {}).get("error") == DEFERRAL_TIMEOUT:
                stopped = self._backend.stop(run, name)
                self.log.warning(
                    "The deferral timed out before the %s finished: stopped %s.",
                    self.job_noun,
                    stopped or "nothing",
                )
            else:
                self.log.warning(
                    "The trigger following %s failed; the %s keeps running and the next try adopts it.",
                    name,
                    self.job_noun,
                )
        return super().resume_execution(next_method, next_kwargs, context)

    def on_kill(self) -> None:
        """Stop what the run has running: on kill, execution timeout and mark-failed, even mid-lookup."""
        run = self._run
        if run is None:
            return
        run.killed = True
        stopped = self._backend.stop(run, self._following)
        self.log.info("Task killed: stopped %s.", stopped or f"no running {self.job_noun}")

    # ------------------------------------------------------------------ steps
    @cached_property
    def _backend(self) -> JobBackend:
        return self.make_backend()

    def _start(self, context: Context) -> JobRun:
        ti = context["ti"]
        map_index = ti.map_index if ti.map_index is not None else -1
        identity = RunIdentity(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            map_index=map_index,
            base_name=training_job_name(
                dag_id=ti.dag_id,
                task_id=ti.task_id,
                run_id=ti.run_id,
                map_index=map_index,
                prefix=self.job_name_prefix,
            ),
            fingerprint=run_fingerprint(ti.dag_id, ti.task_id, ti.run_id, map_index),
            data_interval_start=context.get("data_interval_start"),
            data_interval_end=context.get("data_interval_end"),
        )
        # Set before anything is asked of the platform: a kill from here on finds the run's job.
        self._run = JobRun(identity=identity, context=context, deferrable=self.deferrable, log=self.log)
        self.settle_inputs(context)
        return self._run

    def _apply_failed_job_policy(self, job: Job) -> None:
        status = job.state.value
        if self.if_job_failed is FailedJobPolicy.FAIL:
            raise self._error(
                job,
                f"{job.reason or 'no reason given'}; if_job_failed='fail' keeps retries from starting "
                f"another {self.job_noun}. Set if_job_failed='new_attempt' to retrain.",
            )
        self.log.info(
            "%s %s ended %s: starting attempt %d.",
            self.job_noun.capitalize(),
            job.name,
            status,
            job.attempt + 1,
        )

    def _pin_image(self, run: JobRun, predecessor: Job | None) -> dict[str, Any] | None:
        """Pin once per run: a new attempt runs its predecessor's digest unless the reference changed."""
        reference = self.spec.image
        if predecessor is not None and predecessor.image:
            previous = self._backend.image_reference(run, predecessor)
            unchanged = (
                previous == reference
                if previous is not None
                # Jobs created before the reference was recorded: the same repository counts as unchanged.
                else parse_image_reference(predecessor.image).name == parse_image_reference(reference).name
            )
            if unchanged:
                return self.resolve_image(predecessor.image)
            self.log.info(
                "The image reference changed since attempt %d (%s, now %s): pinning the new one.",
                predecessor.attempt,
                previous,
                reference,
            )
        return self.resolve_image(reference)

    def _remember(self, run: JobRun, job: Job, record: JobRecord) -> None:
        self._following = job.name
        run.context["ti"].xcom_push(key=RECORD_XCOM_KEY, value=record.to_xcom())
        self._backend.persist_links(run, job)

    def _record(self, context: Context) -> JobRecord | None:
        ti = context["ti"]
        for key in (RECORD_XCOM_KEY, *LEGACY_RECORD_XCOM_KEYS):
            record = JobRecord.from_xcom(ti.xcom_pull(task_ids=ti.task_id, key=key, map_indexes=ti.map_index))
            if record is not None:
                return record
        return None

    def _wait_for(self, run: JobRun, step: Job | Deferral, record: JobRecord) -> dict[str, Any]:
        if run.killed:
            # on_kill ran (from SIGTERM) while this thread went on: nothing is deferred or waited for.
            raise self._backend.job_error(record.job_name, "Stopped", _KILLED)
        if isinstance(step, Job) and not step.state.ended:
            step = self._backend.follow(run, step, record)
        if isinstance(step, Deferral):
            self.defer(
                trigger=step.trigger, method_name="execute_complete", timeout=step.timeout, kwargs=step.kwargs
            )
        return self._finish(run, step, record)

    def _finish(self, run: JobRun, job: Job, record: JobRecord) -> dict[str, Any]:
        if run.killed:
            raise self._backend.job_error(job.name, "Stopped", _KILLED)
        if job.state is JobState.FAILED:
            raise self._error(job, job.reason or "no reason given")
        if job.state is JobState.STOPPED:
            raise self._error(
                job,
                f"{job.reason or 'no reason given'}: it was stopped outside this task "
                f"({self._backend.stopped_by}). Clear the task to start a new attempt.",
            )
        result = self._backend.result(run, job, record)
        self.report(run, result)
        return result.to_xcom()

    def report(self, run: JobRun, result: JobResult) -> None:
        """Log what the job did and send its timings to Airflow's metrics."""

    def _error(self, job: Job, reason: str) -> JobError:
        return self._backend.job_error(job.name, job.state.value.capitalize(), reason)

    def _deadline(self, context: Context) -> float | None:
        start = context["ti"].start_date
        if self.execution_timeout is None or start is None:
            return None
        return (start + self.execution_timeout).timestamp()

    def _max_runtime_seconds(self) -> int:
        if self.max_runtime_seconds is not None:
            return self.max_runtime_seconds
        if self.execution_timeout is not None:
            return max(1, int(self.execution_timeout.total_seconds()))
        return DEFAULT_MAX_RUNTIME_SECONDS

    def _warn_on_drift(self, job: Job) -> None:
        """Warn when the run's job runs another image than the DAG now names (a moved tag is not one)."""
        if not job.image:
            return
        running, wanted = parse_image_reference(job.image), parse_image_reference(self.spec.image)
        if running.name != wanted.name or (wanted.digest is not None and wanted.digest != running.digest):
            self.log.warning(
                "%s %s runs image %s, not %s as the DAG now says: following it anyway, since this run "
                "started it. Clear the task after it ends to train with the new image.",
                self.job_noun.capitalize(),
                job.name,
                job.image,
                self.spec.image,
            )
