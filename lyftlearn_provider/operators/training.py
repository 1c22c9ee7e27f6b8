"""Train a model on SageMaker (or as a pod): one job per run, adopted on retry, never left running."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, cast

from airflow.sdk.configuration import conf

from lyftlearn_provider.backends import KUBERNETES_ARGUMENTS, SAGEMAKER_ARGUMENTS
from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.images import SociPolicy
from lyftlearn_provider.links.sagemaker import TrainingImageLink, TrainingJobLink, TrainingJobLogsLink
from lyftlearn_provider.naming import DEFAULT_PREFIX
from lyftlearn_provider.operators.jobs import JobOperator, refuse_masked_secrets
from lyftlearn_provider.rendering.sagemaker import check_keep_alive, render_training_job
from lyftlearn_provider.runtime import RuntimeSpec
from lyftlearn_provider.status import FailedJobPolicy, TrackingSource, TrainingBackend
from lyftlearn_provider.tags import check_user_tags
from lyftlearn_provider.validation import is_templated, require_int

if TYPE_CHECKING:
    from airflow.sdk import Asset, Context

    from lyftlearn_provider.backends.base import JobBackend, JobRun
    from lyftlearn_provider.results import JobResult, TrainingResult

_SAGEMAKER = frozenset({TrainingBackend.SAGEMAKER.value})
_KUBERNETES = frozenset({TrainingBackend.KUBERNETES.value})
_QUEUE_URL = re.compile(r"^https?://(?P<host>[^/\s]+)/\d{12}/[A-Za-z0-9_-]{1,80}$")
#: ``sqs.<region>.amazonaws.com[.cn]`` and the legacy ``<region>.queue.amazonaws.com``.
_QUEUE_REGION = re.compile(
    r"^(?:sqs\.(?P<a>[a-z]{2}(?:-[a-z0-9]+)+)|(?P<b>[a-z]{2}(?:-[a-z0-9]+)+)\.queue)\.amazonaws\.com"
)


def emit_timings(run: JobRun, result: TrainingResult) -> None:
    """Send the job's start-up and training times to Airflow's metrics (StatsD, OpenTelemetry ...)."""
    from airflow.providers.common.compat.sdk import Stats

    identity = run.identity
    tags = {"dag_id": identity.dag_id, "task_id": identity.task_id, "backend": result.backend}
    for metric, seconds in (("startup", result.startup_total_seconds), ("training", result.training_seconds)):
        if seconds is not None:
            Stats.timing(
                f"lyftlearn.{metric}.{identity.dag_id}.{identity.task_id}", seconds * 1000.0, tags=tags
            )


def check_queue_url(value: Any, region: str | None) -> None:
    """Raise unless ``value`` is an SQS queue URL in ``region`` (when the URL and the region name one)."""
    match = _QUEUE_URL.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidSpecError(
            "events_queue_url",
            f"{value!r} is not an SQS queue URL",
            "Pass the queue_url SetupTrainingEventsOperator returns, e.g. "
            "https://sqs.us-east-1.amazonaws.com/123456789012/ll-training-events (templated: "
            "'{{ var.value.lyftlearn_events_queue_url }}').",
        )
    where = _QUEUE_REGION.match(match.group("host"))
    queue_region = (where.group("a") or where.group("b")) if where else None
    if region and queue_region and queue_region != region:
        raise InvalidSpecError(
            "events_queue_url",
            f"the queue is in region {queue_region}, but the task's jobs run in {region}: EventBridge "
            "delivers a region's events only to queues of that region",
            f"Set up the route in {region} (SetupTrainingEventsOperator with region_name={region!r}) and "
            "pass its queue_url, or set region_name to the queue's region.",
        )


class TrainModelOperator(JobOperator):
    """
    Train a model from a ``RuntimeSpec`` on Amazon SageMaker (or as a pod); return a JSON-safe result.

    The job name is derived from the task instance (dag, task, run, map index — never the try
    number), so a retry, a clear or a worker that died mid-job finds the job instead of starting a
    second one: a job in progress is followed, a completed one is reused, and a failed or stopped
    one is replaced by a new attempt (``<name>-a2`` ...) or fails the task, as ``if_job_failed``
    says. Killing the task, its execution timeout, marking it failed and a deferral timeout stop the
    job — also while a retry is still looking it up. A job is never stopped because a tracker could
    not follow it.

    The result (also the XCom return value) holds the job name and ARN, final status, model
    artifact URI, pinned image, final metrics, the start-up breakdown (seconds per secondary status
    before ``Training``), billable seconds, warm-pool status and the run's data interval
    (:class:`~lyftlearn_provider.results.TrainingResult`).

    Arguments marked *SageMaker* or *Kubernetes* apply to that backend only; passing one to the other
    backend fails when the DAG is parsed, naming it.

    :param spec: what to run: image, command, environment, hyperparameters, resources, role
        (templated: its string fields are rendered).
    :param backend: ``"sagemaker"`` (default) or ``"kubernetes"``: run the same spec as a pod through
        KubernetesPodOperator's machinery — the migration path, one argument away.
    :param aws_conn_id: the Airflow connection to AWS (also for image pinning on Kubernetes).
    :param region_name: AWS region; the connection's when None.
    :param verify: TLS verification for AWS clients.
    :param botocore_config: extra botocore client configuration, e.g. ``{"retries": {...}}``.
    :param job_name_prefix: first part of every job name (1-16 lowercase letters, digits, hyphens);
        event routing and cost reports match on it.
    :param max_runtime_seconds: SageMaker's ``MaxRuntimeInSeconds`` (a pod's ``activeDeadlineSeconds``);
        defaults to the task's ``execution_timeout``, else 24 hours.
    :param if_job_failed: ``"new_attempt"`` (default) or ``"fail"``: what a retry does when the run's
        latest job failed or was stopped.
    :param poll_interval: seconds between status checks (jittered); default ``[lyftlearn] poll_interval``
        in the Airflow configuration, else 30.
    :param deferrable: wait in the triggerer instead of occupying a worker slot.
    :param soci: ``"require"``, ``"prefer"`` (default) or ``"off"``: whether the image must have a SOCI
        index (lazy loading, faster start-up). ``require`` fails before anything is created, with how to
        build one; the result records whether the job ran on a SOCI-enabled image.
    :param keep_alive_seconds: *SageMaker*: keep the instances warm this long after the job, so the next
        matching job (same resources, role and image) starts fast. Worth it for cadences under an hour.
    :param tags: *SageMaker*: extra tags for the job (templated); ``lyftlearn:*`` tags tie it to the run.
    :param tracking: *SageMaker*: how the deferred task learns the job ended: ``"poll"`` (default; one
        Describe per job per interval), ``"shared"`` (one batched watcher per triggerer process and AWS
        connection and region, for many concurrent jobs) or ``"events"`` (EventBridge → SQS, seconds
        after the job ends, with the shared watcher reconciling every ``poll_interval``). A tracker that
        is not allowed what it needs falls back to a simpler one, with a warning.
    :param events_queue_url: *SageMaker*: the queue ``SetupTrainingEventsOperator`` created
        (``tracking="events"``; templated).
    :param kubernetes_conn_id: *Kubernetes*: the Airflow connection to the cluster
        (default ``kubernetes_default``).
    :param namespace: *Kubernetes*: the pod's namespace (default ``default``).
    :param service_account_name: *Kubernetes*: the pod's service account (default ``lyftlearn-training``);
        it must be annotated ``eks.amazonaws.com/role-arn`` with the spec's role.
    :param startup_timeout_seconds: *Kubernetes*: how long the pod may take to start (default 600).
    :param input_loader_image: *Kubernetes*: an image with the AWS CLI that copies the spec's ``inputs``
        into the pod before the program starts, as SageMaker does (specs with inputs).
    :param model_asset: an ``Asset`` for the model: each successful run emits an event of it whose
        ``extra`` carries the model URI, pinned image, metrics, data interval and job name, so a serving DAG
        owned by another team can be scheduled on it (``ValidateModelOperator``/``DeployModelOperator``
        with ``model_asset=`` read the model from the event).
    """

    template_fields: Sequence[str] = ("spec", "tags", "events_queue_url")
    template_fields_renderers = {"tags": "json", "spec": "json"}
    operator_extra_links = (TrainingJobLink(), TrainingJobLogsLink(), TrainingImageLink())
    ui_color = "#ffd9b3"
    job_noun = "training job"
    backend_arguments: ClassVar[Mapping[str, frozenset[str]]] = {
        **{name: _SAGEMAKER for name in SAGEMAKER_ARGUMENTS},
        **{name: _KUBERNETES for name in KUBERNETES_ARGUMENTS},
    }

    def __init__(
        self,
        *,
        spec: RuntimeSpec,
        backend: TrainingBackend | str = TrainingBackend.SAGEMAKER,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        job_name_prefix: str = DEFAULT_PREFIX,
        max_runtime_seconds: int | None = None,
        if_job_failed: FailedJobPolicy | str = FailedJobPolicy.NEW_ATTEMPT,
        poll_interval: float = conf.getfloat("lyftlearn", "poll_interval", fallback=30.0),
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        soci: SociPolicy | str = SociPolicy.PREFER,
        keep_alive_seconds: int | None = None,
        tags: Mapping[str, str] | None = None,
        tracking: TrackingSource | str | None = None,
        events_queue_url: str | None = None,
        kubernetes_conn_id: str | None = None,
        namespace: str | None = None,
        service_account_name: str | None = None,
        startup_timeout_seconds: int | None = None,
        input_loader_image: str | None = None,
        model_asset: Asset | None = None,
        **kwargs: Any,
    ) -> None:
        if model_asset is not None:
            # An outlet like any other: Airflow records the event, and DAGs scheduled on it run.
            kwargs["outlets"] = [*(kwargs.get("outlets") or []), model_asset]
        try:
            chosen = TrainingBackend(backend)
        except ValueError:
            raise InvalidSpecError(
                "backend",
                f"{backend!r} is not a backend",
                f"Use one of {[b.value for b in TrainingBackend]}.",
            ) from None
        given = {
            "keep_alive_seconds": keep_alive_seconds,
            "tags": tags,
            "tracking": tracking,
            "events_queue_url": events_queue_url,
            "kubernetes_conn_id": kubernetes_conn_id,
            "namespace": namespace,
            "service_account_name": service_account_name,
            "startup_timeout_seconds": startup_timeout_seconds,
            "input_loader_image": input_loader_image,
        }
        super().__init__(
            spec=spec,
            backend=chosen.value,
            job_name_prefix=job_name_prefix,
            poll_interval=poll_interval,
            soci=soci,
            if_job_failed=if_job_failed,
            max_runtime_seconds=max_runtime_seconds,
            deferrable=deferrable,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
            given=given,
            **kwargs,
        )
        self.backend = chosen
        # SageMaker
        check_keep_alive(keep_alive_seconds)
        self.keep_alive_seconds = keep_alive_seconds
        self.tags = check_user_tags(tags or {})
        try:
            self.tracking = TrackingSource(tracking or TrackingSource.POLL)
        except ValueError:
            raise InvalidSpecError(
                "tracking",
                f"{tracking!r} is not a way to track training jobs",
                f"Use one of {[s.value for s in TrackingSource]}: 'shared' when a triggerer follows many "
                "jobs.",
            ) from None
        if self.tracking is TrackingSource.EVENTS and not events_queue_url:
            raise InvalidSpecError(
                "events_queue_url",
                "tracking='events' needs the SQS queue the EventBridge rule feeds",
                "Pass the queue URL SetupTrainingEventsOperator returns (queue_url).",
            )
        if events_queue_url is not None and not is_templated(events_queue_url):
            check_queue_url(events_queue_url, region_name)
        self.events_queue_url = events_queue_url
        # Kubernetes
        self.kubernetes_conn_id = kubernetes_conn_id or "kubernetes_default"
        self.namespace = namespace or "default"
        self.service_account_name = service_account_name or "lyftlearn-training"
        startup = 600 if startup_timeout_seconds is None else startup_timeout_seconds
        require_int(
            startup, "startup_timeout_seconds", 1, None, "Use the seconds a pod may take to start, e.g. 600."
        )
        self.startup_timeout_seconds = startup
        self.input_loader_image = input_loader_image
        self.model_asset = model_asset
        # What does not depend on templates is checked now, when the DAG is parsed.
        if not spec.is_templated() and not any(
            is_templated(k) or is_templated(v) for k, v in self.tags.items()
        ):
            self._render_for_backend(spec)

    def _render_for_backend(self, spec: RuntimeSpec) -> None:
        """Render ``spec`` as the backend would, so every limit is checked before anything is created."""
        if self.backend is TrainingBackend.KUBERNETES:
            # Imported here: a DAG of SageMaker tasks does not pay for the pod rendering when parsed.
            from lyftlearn_provider.rendering.kubernetes import (
                check_dns_label,
                check_dns_subdomain,
                pod_name,
                render_pod,
            )

            check_dns_label(self.namespace, "namespace", "ml-training")
            check_dns_subdomain(self.service_account_name, "service_account_name", "fraud-training")
            render_pod(
                spec,
                name=pod_name(DEFAULT_PREFIX),
                namespace=self.namespace,
                service_account=self.service_account_name,
                job_name=DEFAULT_PREFIX,
                active_deadline_seconds=self._max_runtime_seconds(),
                input_loader_image=self.input_loader_image,
            )
        else:
            render_training_job(
                spec,
                job_name=DEFAULT_PREFIX,
                max_runtime_seconds=self._max_runtime_seconds(),
                keep_alive_seconds=self.keep_alive_seconds,
                tags=self.tags,
            )

    # ------------------------------------------------------------------ what the lifecycle asks of this task
    def make_backend(self) -> JobBackend:
        """Return the backend of ``backend=``, with the (rendered) arguments that apply to it."""
        from lyftlearn_provider.backends.base import JobSettings
        from lyftlearn_provider.backends.kubernetes import PodTrainingBackend
        from lyftlearn_provider.backends.sagemaker import SageMakerTrainingBackend

        settings = JobSettings(
            spec=self.spec,
            aws=self.aws_settings(),
            max_runtime_seconds=self._max_runtime_seconds(),
            poll_interval=self.poll_interval,
            job_name_prefix=self.job_name_prefix,
        )
        if self.backend is TrainingBackend.KUBERNETES:
            return PodTrainingBackend(
                self,
                settings,
                kubernetes_conn_id=self.kubernetes_conn_id,
                namespace=self.namespace,
                service_account_name=self.service_account_name,
                startup_timeout_seconds=self.startup_timeout_seconds,
                input_loader_image=self.input_loader_image,
            )
        return SageMakerTrainingBackend(
            self,
            settings,
            keep_alive_seconds=self.keep_alive_seconds,
            tags=self.tags,
            tracking=self.tracking,
            events_queue_url=self.events_queue_url,
        )

    def prepare(self, context: Context) -> None:
        """Check the rendered arguments before anything is created: secrets, tags, the queue's region."""
        refuse_masked_secrets(self.spec, self.tags)
        check_user_tags(self.tags)
        self._render_for_backend(self.spec)
        if self.events_queue_url is not None:
            check_queue_url(self.events_queue_url, self.aws_region())

    def report(self, run: JobRun, result: JobResult) -> None:
        """Log the start-up breakdown, the warm pool, the image and the model; send the timings."""
        self.report_training(run, cast("TrainingResult", result))  # both training backends return one

    def report_training(self, run: JobRun, result: TrainingResult) -> None:
        """Log what the job did, send its timings to Airflow's metrics, and emit the model's asset event."""
        if self.model_asset is not None:
            from lyftlearn_provider.serving import asset_extra

            run.context["outlet_events"][self.model_asset].extra = asset_extra(result.to_xcom())
            self.log.info("Emitted an event of %s for model %s.", self.model_asset, result.model_artifact_uri)
        self.log.info(
            "%s %s completed; %s.", self._backend.job_error.kind, result.job_name, result.describe_startup()
        )
        if result.warm_pool and result.warm_pool.reused_pool_of:
            self.log.info("It started on the warm pool of %s.", result.warm_pool.reused_pool_of)
        emit_timings(run, result)
        if result.image_resolution:
            self.log.info(
                "Image %s ran as %s; SOCI index: %s.",
                result.image_resolution["reference"],
                result.image_resolution["pinned"],
                result.soci or "none",
            )
        self.log.info(
            "Model %s; billable %ss; metrics %s.",
            result.model_artifact_uri,
            result.billable_seconds,
            dict(result.final_metrics),
        )
