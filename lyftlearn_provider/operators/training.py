"""Train a model on SageMaker: one job per run, adopted on retry, never left running behind the task."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import time
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.configuration import conf

from lyftlearn_provider.exceptions import InvalidSpecError, LyftLearnError, TrainingJobError
from lyftlearn_provider.images import SociPolicy
from lyftlearn_provider.links.sagemaker import TrainingJobLink, TrainingJobLogsLink
from lyftlearn_provider.naming import (
    DEFAULT_PREFIX,
    attempt_job_name,
    run_fingerprint,
    training_job_name,
    validate_prefix,
)
from lyftlearn_provider.retries import jittered
from lyftlearn_provider.runtime import RuntimeSpec, render_training_job
from lyftlearn_provider.status import (
    COMPLETED,
    FAILED,
    IN_PROGRESS,
    FailedJobPolicy,
    TrainingBackend,
    TrainingEventStatus,
    describe_startup,
    is_terminal,
    to_datetime,
    training_result,
)

if TYPE_CHECKING:
    from airflow.sdk import Context

    from lyftlearn_provider.hooks.sagemaker import SageMakerTrainingHook

#: XCom key of the task's tracking record: the job it follows, its attempt, whether it adopted it and
#: its deadline. Read back when the task resumes: the triggerer keeps ``next_kwargs`` but
#: ``dag.test()`` replaces them with the event, and a deferral timeout brings none.
TRACKING_XCOM_KEY = "training_job"
#: Sources of truth a deferred training task can follow its job with (see ``TrainingJobTrigger``).
TRACKING_SOURCES = ("poll", "shared", "events")
#: Airflow's ``next_method`` when the triggerer fails a deferred task (``TRIGGER_FAIL_REPR`` upstream).
_TRIGGER_FAILED = "__fail__"
#: SageMaker's default MaxRuntimeInSeconds, used when neither the operator nor the task sets a limit.
DEFAULT_MAX_RUNTIME_SECONDS = 24 * 3600
#: How often a deferred task may come back with a tracking error before it gives the job up.
MAX_TRACKING_ERRORS = 3
_TAG_PREFIX = "lyftlearn:"
_TAG_VALUE_UNSAFE = re.compile(r"[^\w.:/=+\-@ ]")


def emit_timings(context: Context, result: Mapping[str, Any]) -> None:
    """Send the job's start-up and training times to Airflow's metrics (StatsD, OpenTelemetry ...)."""
    from airflow.providers.common.compat.sdk import Stats

    ti = context["ti"]
    tags = {"dag_id": ti.dag_id, "task_id": ti.task_id, "backend": result["backend"]}
    for metric, seconds in (
        ("startup", result["startup_total_seconds"]),
        ("training", result["training_seconds"]),
    ):
        if seconds is not None:
            Stats.timing(f"lyftlearn.{metric}.{ti.dag_id}.{ti.task_id}", seconds * 1000.0, tags=tags)


class TrainModelOperator(BaseOperator):
    """
    Train a model on Amazon SageMaker from a ``RuntimeSpec``; return a JSON-safe result.

    The job name is derived from the task instance (dag, task, run, map index — never the try
    number), so a retry, a clear or a worker that died mid-job finds the job instead of starting a
    second one: a job in progress is followed, a completed one is reused, and a failed or stopped
    one is replaced by a new attempt (``<name>-a2`` ...) or fails the task, as ``if_job_failed``
    says. Killing the task, its execution timeout and a deferral timeout stop the job.

    The result (also the XCom return value) holds the job name and ARN, final status, model
    artifact URI, image, final metrics, the start-up breakdown (seconds per secondary status
    before ``Training``), billable seconds, warm-pool status and the run's data interval.

    :param spec: what to run: image, command, environment, hyperparameters, resources, role
        (templated: its string fields are rendered).
    :param aws_conn_id: the Airflow connection to AWS.
    :param region_name: AWS region; the connection's when None.
    :param verify: TLS verification for AWS clients.
    :param botocore_config: extra botocore client configuration, e.g. ``{"retries": {...}}``.
    :param job_name_prefix: first part of every job name (1-16 lowercase letters, digits, hyphens);
        event routing and cost reports match on it.
    :param keep_alive_seconds: keep the instances warm this long after the job, so the next matching
        job (same resources, role and image) starts fast. Worth it for cadences under an hour.
    :param max_runtime_seconds: SageMaker's ``MaxRuntimeInSeconds``; defaults to the task's
        ``execution_timeout``, else 24 hours.
    :param if_job_failed: ``"new_attempt"`` (default) or ``"fail"``: what a retry does when the run's
        latest job failed or was stopped.
    :param tags: extra tags for the job (templated); ``lyftlearn:*`` tags tie it to the DAG run.
    :param poll_interval: seconds between status checks (jittered); default ``[lyftlearn] poll_interval``
        in the Airflow configuration, else 30.
    :param deferrable: wait in the triggerer instead of occupying a worker slot.
    :param soci: ``"require"``, ``"prefer"`` (default) or ``"off"``: whether the image must have a SOCI
        index (lazy loading, faster start-up). ``require`` fails before anything is created, with how to
        build one; the result records whether the job ran on a SOCI-enabled image.
    :param tracking: how the deferred task learns the job ended: ``"poll"`` (default; one Describe per
        job per interval), ``"shared"`` (one batched watcher per triggerer process and AWS connection
        and region, for many concurrent jobs) or ``"events"`` (EventBridge → SQS, seconds after the
        job ends, with the shared watcher reconciling every ``poll_interval``).
    :param events_queue_url: the queue ``SetupTrainingEventsOperator`` created (``tracking="events"``).
    :param backend: ``"sagemaker"`` (default) or ``"kubernetes"``: run the same spec as a pod through
        KubernetesPodOperator's machinery — the migration path, one argument away.
    :param kubernetes_conn_id: the Airflow connection to the cluster (``backend="kubernetes"``).
    :param namespace: the pod's namespace (``backend="kubernetes"``).
    :param service_account_name: the pod's service account; it must be annotated
        ``eks.amazonaws.com/role-arn`` with the spec's role (``backend="kubernetes"``).
    :param startup_timeout_seconds: how long the pod may take to start (``backend="kubernetes"``).
    :param input_loader_image: an image with the AWS CLI that copies the spec's ``inputs`` into the
        pod before the program starts, as SageMaker does (``backend="kubernetes"``, specs with inputs).
    """

    template_fields: Sequence[str] = ("spec", "tags", "events_queue_url")
    template_fields_renderers = {"tags": "json"}
    operator_extra_links = (TrainingJobLink(), TrainingJobLogsLink())
    ui_color = "#ffd9b3"

    def __init__(
        self,
        *,
        spec: RuntimeSpec,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        job_name_prefix: str = DEFAULT_PREFIX,
        keep_alive_seconds: int | None = None,
        max_runtime_seconds: int | None = None,
        if_job_failed: FailedJobPolicy | str = FailedJobPolicy.NEW_ATTEMPT,
        tags: Mapping[str, str] | None = None,
        poll_interval: float = conf.getfloat("lyftlearn", "poll_interval", fallback=30.0),
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        soci: SociPolicy | str = SociPolicy.PREFER,
        tracking: str = "poll",
        events_queue_url: str | None = None,
        backend: TrainingBackend | str = TrainingBackend.SAGEMAKER,
        kubernetes_conn_id: str | None = "kubernetes_default",
        namespace: str = "default",
        service_account_name: str = "lyftlearn-training",
        startup_timeout_seconds: int = 600,
        input_loader_image: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        try:
            self.backend = TrainingBackend(backend)
        except ValueError:
            raise InvalidSpecError(
                "backend",
                f"{backend!r} is not a backend",
                f"Use one of {[b.value for b in TrainingBackend]}.",
            ) from None
        if not isinstance(spec, RuntimeSpec):
            raise InvalidSpecError(
                "spec",
                f"expected a RuntimeSpec, got {type(spec).__name__}",
                "Pass RuntimeSpec(image=..., ...).",
            )
        try:
            policy = FailedJobPolicy(if_job_failed)
        except ValueError:
            raise InvalidSpecError(
                "if_job_failed",
                f"{if_job_failed!r} is not a policy",
                f"Use one of {[p.value for p in FailedJobPolicy]}.",
            ) from None
        if poll_interval <= 0:
            raise InvalidSpecError(
                "poll_interval", f"{poll_interval} is not positive", "Use e.g. 30 seconds."
            )
        for key in tags or {}:
            if key.startswith(_TAG_PREFIX):
                raise InvalidSpecError(
                    f"tags[{key!r}]",
                    f"the {_TAG_PREFIX!r} tag prefix is reserved for the run's identity",
                    "Choose another key.",
                )
        self.spec = spec
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.job_name_prefix = validate_prefix(job_name_prefix)
        self.keep_alive_seconds = keep_alive_seconds
        self.max_runtime_seconds = max_runtime_seconds
        self.if_job_failed = policy
        self.tags = dict(tags or {})
        self.poll_interval = poll_interval
        self.deferrable = deferrable
        self.soci = SociPolicy.coerce(soci)
        if tracking not in TRACKING_SOURCES:
            raise InvalidSpecError(
                "tracking",
                f"{tracking!r} is not a way to track training jobs",
                f"Use one of {list(TRACKING_SOURCES)}: 'shared' when a triggerer follows many jobs.",
            )
        if tracking == "events" and not events_queue_url:
            raise InvalidSpecError(
                "events_queue_url",
                "tracking='events' needs the SQS queue the EventBridge rule feeds",
                "Pass the queue URL SetupTrainingEventsOperator returns (queue_url).",
            )
        if tracking == "events" and "{{" not in str(events_queue_url):
            _check_queue_url(events_queue_url)
        self.tracking = tracking
        self.events_queue_url = events_queue_url
        self.kubernetes_conn_id = kubernetes_conn_id
        self.namespace = namespace
        self.service_account_name = service_account_name
        self.startup_timeout_seconds = startup_timeout_seconds
        self.input_loader_image = input_loader_image
        self._job_name: str | None = None
        self._pod_op: Any = None
        # Limits that do not depend on templates are checked now, when the DAG is parsed.
        if not spec.is_templated() and not any("{{" in f"{k}{v}" for k, v in self.tags.items()):
            render_training_job(
                spec,
                job_name=DEFAULT_PREFIX,
                max_runtime_seconds=self._max_runtime_seconds(),
                keep_alive_seconds=keep_alive_seconds,
                tags=self.tags,
            )

    @cached_property
    def hook(self) -> SageMakerTrainingHook:
        """Return the SageMaker hook (imported here: DAG parsing must not pay for boto3)."""
        from lyftlearn_provider.hooks.sagemaker import SageMakerTrainingHook

        return SageMakerTrainingHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
            retry_delay=min(self.poll_interval, 5.0),
        )

    def render_template(
        self, content: Any, context: Context, jinja_env: Any = None, seen_oids: set[int] | None = None
    ) -> Any:
        """Render templates, including the string fields of a frozen ``RuntimeSpec``."""
        if isinstance(content, RuntimeSpec):
            return content.render_with(
                lambda value: super(TrainModelOperator, self).render_template(
                    value, context, jinja_env, seen_oids
                )
            )
        return super().render_template(content, context, jinja_env, seen_oids)

    # ------------------------------------------------------------------ lifecycle
    def execute(self, context: Context) -> dict[str, Any]:
        """Find or create the run's training job, then wait for it here or in the triggerer."""
        if self.tracking == "events":
            _check_queue_url(self.events_queue_url)  # as rendered
        base = self._base_job_name(context)
        if self.backend == TrainingBackend.KUBERNETES:
            return self._run_pod(context, base, event=None)
        attempt, description = self.hook.find_latest_attempt(base)
        latest = description
        if description is not None:
            name, status = description["TrainingJobName"], description["TrainingJobStatus"]
            if status == COMPLETED:
                self.log.info("Training job %s already completed for this run: reusing its result.", name)
                image = self._resolve_image(
                    description["AlgorithmSpecification"]["TrainingImage"], adopting=True
                )
                self._track(context, name, attempt=attempt, adopted=True, deadline=None, image=image)
                return self._finish(context, description, attempt, adopted=True, image=image)
            if status == IN_PROGRESS:
                self.log.info("Training job %s is already running for this run: following it.", name)
                self._warn_on_drift(description)
            elif self.if_job_failed == FailedJobPolicy.FAIL:
                raise TrainingJobError(
                    name,
                    status,
                    f"{description.get('FailureReason') or 'no reason given'}; if_job_failed='fail' "
                    "keeps retries from starting another job. Set if_job_failed='new_attempt' to retrain.",
                )
            else:
                self.log.info("Training job %s ended %s: starting attempt %d.", name, status, attempt + 1)
                description = None
        adopted = description is not None
        if description is None:
            # Pin once per run: a new attempt reuses the digest its failed predecessor ran.
            previous = (latest or {}).get("AlgorithmSpecification", {}).get("TrainingImage")
            image = self._resolve_image(previous or self.spec.image)
            attempt += 1
            description, created = self._create(context, attempt_job_name(base, attempt), base, image)
            adopted = not created
        else:
            image = self._resolve_image(description["AlgorithmSpecification"]["TrainingImage"], adopting=True)
        name = description["TrainingJobName"]
        deadline = self._deadline(context)
        self._track(context, name, attempt=attempt, adopted=adopted, deadline=deadline, image=image)
        if is_terminal(description["TrainingJobStatus"]):
            return self._finish(context, description, attempt, adopted, image=image)
        if self.deferrable:
            self._defer(name, deadline)
        return self._finish(context, self._wait(name, deadline), attempt, adopted, image=image)

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger fired: check its event, then finish like the synchronous path."""
        if self.backend == TrainingBackend.KUBERNETES:
            return self._run_pod(context, self._base_job_name(context), event=event or {})
        if not event or "status" not in event or "job_name" not in event:
            raise LyftLearnError(f"The training trigger returned an unusable event: {event!r}")
        name = self._job_name = event["job_name"]
        record = self._tracking_record(context)
        status = TrainingEventStatus(event["status"])
        if status == TrainingEventStatus.TIMEOUT:
            self._stop_for_timeout(name)
        description = self.hook.describe_job(name)
        if description is None:
            raise TrainingJobError(name, "missing", "SageMaker no longer knows this job")
        if status == TrainingEventStatus.ERROR and not is_terminal(description["TrainingJobStatus"]):
            errors = int(record.get("tracking_errors", 0)) + 1
            if errors >= MAX_TRACKING_ERRORS:
                self.hook.stop_job(name)
                raise TrainingJobError(
                    name, "untracked", f"{event.get('message')}; stopped it so it does not run unattended"
                )
            self.log.warning("Lost track of %s (%s); following it again.", name, event.get("message"))
            context["ti"].xcom_push(key=TRACKING_XCOM_KEY, value={**record, "tracking_errors": errors})
            self._defer(name, record.get("deadline"))
        return self._finish(
            context,
            description,
            int(record.get("attempt", 1)),
            bool(record.get("adopted", False)),
            image=record.get("image"),
        )

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """Stop the job first when the triggerer failed the task (deferral timeout, trigger crash)."""
        if next_method == _TRIGGER_FAILED:
            name = self._tracking_record(context).get("job_name")
            if name:
                self.log.warning("Deferral ended without the job finishing: stopping training job %s.", name)
                self.hook.stop_job(name)
        return super().resume_execution(next_method, next_kwargs, context)

    def on_kill(self) -> None:
        """Stop the training job (or delete the pod) when the task is killed or times out waiting here."""
        if self._pod_op is not None:
            self._pod_op.on_kill()
        elif self._job_name:
            stopped = self.hook.stop_job(self._job_name)
            self.log.info(
                "Training job %s %s.", self._job_name, "stopping" if stopped else "had already ended"
            )

    # ------------------------------------------------------------------ steps
    def _run_pod(self, context: Context, name: str, event: dict[str, Any] | None) -> dict[str, Any]:
        """Run (or, given the trigger's event, resume) the spec as a pod; return the training result."""
        from airflow.sdk.exceptions import AirflowException, TaskDeferred

        from lyftlearn_provider.operators import pod_training

        if event is None:
            pod_training.check_service_account(self)
            image = self._resolve_image(self.spec.image)
            context["ti"].xcom_push(key=TRACKING_XCOM_KEY, value={"job_name": name, "image": image})
        else:
            image = self._tracking_record(context).get("image")
        self._pod_op = pod_training.pod_operator(
            self,
            context,
            name=name,
            image=image["pinned"] if image else self.spec.image,
            run_environment=self._run_environment(context),
            max_runtime_seconds=self._max_runtime_seconds(),
        )
        try:
            if event is None:
                returned = self._pod_op.execute(context)
            else:
                returned = self._pod_op.trigger_reentry(context, event)
        except TaskDeferred as deferred:
            # The pod operator defers to its own trigger; this task resumes in execute_complete.
            raise TaskDeferred(
                trigger=deferred.trigger,
                method_name="execute_complete",
                kwargs=deferred.kwargs,
                timeout=deferred.timeout,
            ) from None
        except AirflowException as error:
            raise pod_training.failed(name, error) from error
        result = pod_training.pod_result(context, self._pod_op, returned, image=image)
        emit_timings(context, result)
        self.log.info(
            "Training pod %s completed; start-up %.1fs.", result["job_name"], result["startup_total_seconds"]
        )
        return result

    def _resolve_image(self, reference: str, adopting: bool = False) -> dict[str, Any] | None:
        """Pin the image by digest through ECR and check its SOCI index; return the facts for the result.

        A job being adopted already runs its image: its facts are looked up, never held against it.
        """
        from lyftlearn_provider.hooks.ecr import EcrImageHook

        policy = (
            SociPolicy.OFF if self.soci == SociPolicy.OFF else SociPolicy.PREFER if adopting else self.soci
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

    def _create(
        self, context: Context, name: str, base: str, image: dict[str, Any] | None
    ) -> tuple[dict[str, Any], bool]:
        spec = self.spec if image is None else dataclasses.replace(self.spec, image=image["pinned"])
        rendering = render_training_job(
            spec,
            job_name=name,
            max_runtime_seconds=self._max_runtime_seconds(),
            keep_alive_seconds=self.keep_alive_seconds,
            tags={**self.tags, **self._identity_tags(context, base)},
            run_environment=self._run_environment(context),
        )
        # Known before the request leaves: a kill that arrives while it is in flight still stops the job.
        self._job_name = name
        if rendering.spill_uri and rendering.spill_document:
            self.hook.upload_json(rendering.spill_uri, rendering.spill_document)
            self.log.info("Values over SageMaker's limits travel in %s.", rendering.spill_uri)
        description, created = self.hook.create_job(rendering.request)
        self.log.info(
            "%s training job %s (%s).",
            "Created" if created else "Found our earlier request's",
            name,
            description.get("TrainingJobArn"),
        )
        return description, created

    def _track(
        self,
        context: Context,
        name: str,
        *,
        attempt: int,
        adopted: bool,
        deadline: float | None,
        image: dict[str, Any] | None,
    ) -> None:
        self._job_name = name
        record = {
            "job_name": name,
            "attempt": attempt,
            "adopted": adopted,
            "deadline": deadline,
            "image": image,
        }
        context["ti"].xcom_push(key=TRACKING_XCOM_KEY, value=record)
        for link in (TrainingJobLink, TrainingJobLogsLink):
            link.persist(
                context=context,
                operator=self,
                region_name=self.hook.conn_region_name,
                aws_partition=self.hook.conn_partition,
                job_name=name,
            )

    def _defer(self, name: str, deadline: float | None) -> None:
        from lyftlearn_provider.triggers.training import TrainingJobTrigger

        timeout = None
        if deadline is not None:
            # A backstop: the trigger reports the deadline itself; this only fires if it cannot.
            timeout = dt.timedelta(seconds=max(0.0, deadline - time.time()) + 60)
        self.defer(
            trigger=TrainingJobTrigger(
                name,
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
                poll_interval=self.poll_interval,
                deadline=deadline,
                source=self.tracking,
                queue_url=self.events_queue_url,
                job_name_prefix=self.job_name_prefix if self.tracking == "events" else None,
            ),
            method_name="execute_complete",
            timeout=timeout,
        )

    def _wait(self, name: str, deadline: float | None) -> dict[str, Any]:
        while True:
            description = self.hook.describe_job(name)
            if description is None:
                raise TrainingJobError(name, "missing", "SageMaker no longer knows this job")
            if is_terminal(description["TrainingJobStatus"]):
                return description
            if deadline is not None and time.time() >= deadline:
                self._stop_for_timeout(name)
            time.sleep(jittered(self.poll_interval))

    def _finish(
        self,
        context: Context,
        description: Mapping[str, Any],
        attempt: int,
        adopted: bool,
        image: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        name, status = description["TrainingJobName"], description["TrainingJobStatus"]
        if status == FAILED:
            raise TrainingJobError(name, status, description.get("FailureReason") or "no reason given")
        if status != COMPLETED:
            raise TrainingJobError(
                name,
                status,
                f"secondary status {description.get('SecondaryStatus')}: it was stopped outside this task "
                "(console, API, or its MaxRuntimeInSeconds). Clear the task to start a new attempt.",
            )
        result = training_result(
            description,
            attempt=attempt,
            adopted=adopted,
            data_interval_start=context.get("data_interval_start"),
            data_interval_end=context.get("data_interval_end"),
        )
        result["image_resolution"] = dict(image) if image else None
        result["soci"] = image.get("soci") if image else None
        if result["warm_pool"] is not None:
            result["warm_pool"]["reused_pool_of"] = self.hook.find_warm_pool_donor(name)
        self.log.info("Training job %s completed; %s.", name, describe_startup(result))
        if result["warm_pool"] and result["warm_pool"]["reused_pool_of"]:
            self.log.info("It started on the warm pool of %s.", result["warm_pool"]["reused_pool_of"])
        emit_timings(context, result)
        if image:
            self.log.info(
                "Image %s ran as %s; SOCI index: %s.",
                image["reference"],
                image["pinned"],
                image["soci"] or "none",
            )
        self.log.info(
            "Model %s; billable %ss; metrics %s.",
            result["model_artifact_uri"],
            result["billable_seconds"],
            result["final_metrics"],
        )
        return result

    def _tracking_record(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        record = ti.xcom_pull(task_ids=ti.task_id, key=TRACKING_XCOM_KEY, map_indexes=ti.map_index)
        return dict(record or {})

    def _stop_for_timeout(self, name: str) -> None:
        self.hook.stop_job(name)
        raise TrainingJobError(name, "timed out", "the task's execution_timeout passed; the job was stopped")

    # ------------------------------------------------------------------ derived values
    def _base_job_name(self, context: Context) -> str:
        ti = context["ti"]
        return training_job_name(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            map_index=ti.map_index if ti.map_index is not None else -1,
            prefix=self.job_name_prefix,
        )

    def _max_runtime_seconds(self) -> int:
        if self.max_runtime_seconds is not None:
            return self.max_runtime_seconds
        if self.execution_timeout is not None:
            return max(1, int(self.execution_timeout.total_seconds()))
        return DEFAULT_MAX_RUNTIME_SECONDS

    def _deadline(self, context: Context) -> float | None:
        start = context["ti"].start_date
        if self.execution_timeout is None or start is None:
            return None
        return (start + self.execution_timeout).timestamp()

    def _identity_tags(self, context: Context, base: str) -> dict[str, str]:
        ti = context["ti"]
        map_index = ti.map_index if ti.map_index is not None else -1
        identity = {
            "dag-id": ti.dag_id,
            "task-id": ti.task_id,
            "run-id": ti.run_id,
            "map-index": str(map_index),
            "fingerprint": run_fingerprint(ti.dag_id, ti.task_id, ti.run_id, map_index),
            "base-job-name": base,
        }
        return {_TAG_PREFIX + key: _TAG_VALUE_UNSAFE.sub("_", value)[:256] for key, value in identity.items()}

    def _run_environment(self, context: Context) -> dict[str, str]:
        ti = context["ti"]
        environment = {
            "LYFTLEARN_DAG_ID": ti.dag_id,
            "LYFTLEARN_TASK_ID": ti.task_id,
            "LYFTLEARN_RUN_ID": ti.run_id,
        }
        for bound in ("start", "end"):
            moment = to_datetime(context.get(f"data_interval_{bound}"))
            if moment is not None:
                environment[f"LYFTLEARN_DATA_INTERVAL_{bound.upper()}"] = moment.isoformat()
        return environment

    def _warn_on_drift(self, description: Mapping[str, Any]) -> None:
        running = (description.get("AlgorithmSpecification") or {}).get("TrainingImage")
        if running and running != self.spec.image:
            self.log.warning(
                "The running job uses image %s, not %s: following it anyway, since this run started it.",
                running,
                self.spec.image,
            )


_QUEUE_URL = re.compile(r"^https?://[^/\s]+/\d{12}/[A-Za-z0-9_-]{1,80}$")


def _check_queue_url(value: Any) -> None:
    if not isinstance(value, str) or not _QUEUE_URL.match(value):
        raise InvalidSpecError(
            "events_queue_url",
            f"{value!r} is not an SQS queue URL",
            "Pass the queue_url SetupTrainingEventsOperator returns, e.g. "
            "https://sqs.us-east-1.amazonaws.com/123456789012/ll-training-events (templated: "
            "'{{ var.value.lyftlearn_events_queue_url }}').",
        )
