"""Train a model on SageMaker (or as a pod): one job per run, adopted on retry, never left running."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from lyftlearn_provider.job_kinds import TRAINING
from lyftlearn_provider.links.sagemaker import links_of
from lyftlearn_provider.naming import DEFAULT_PREFIX
from lyftlearn_provider.operators.platform import PlatformJobOperator, check_queue_url
from lyftlearn_provider.rendering.sagemaker import check_keep_alive, render_training_job
from lyftlearn_provider.runtime import RuntimeSpec

if TYPE_CHECKING:
    from airflow.sdk import Asset

    from lyftlearn_provider.backends.base import JobBackend, JobRun, JobSettings
    from lyftlearn_provider.results import JobResult, TrainingResult

__all__ = ["TrainModelOperator", "check_queue_url", "emit_timings"]


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


class TrainModelOperator(PlatformJobOperator):
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
    :param tracking: *SageMaker*: how the deferred task learns the job ended: ``"shared"`` (default;
        one batched watcher per triggerer process and AWS connection and region lists the jobs named
        ``<job_name_prefix>-…`` every ``poll_interval``: a few calls a pass for 1,000 jobs, each end
        noticed within about ``poll_interval``), ``"poll"`` (one Describe per job per interval: fine for
        a handful of jobs, but held to the triggerer's call budget, 10 a second, so 1,000 jobs are
        noticed minutes late) or ``"events"`` (EventBridge → SQS, seconds after the job ends, with the
        shared watcher reconciling every ``poll_interval``). A tracker that is not allowed what it needs
        falls back to a simpler one, with a warning (``shared`` without the List permission polls).
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
    operator_extra_links = tuple(link() for link in links_of(TRAINING))
    ui_color = "#ffd9b3"
    job_noun = "training job"

    def __init__(
        self,
        *,
        spec: RuntimeSpec,
        keep_alive_seconds: int | None = None,
        model_asset: Asset | None = None,
        **kwargs: Any,
    ) -> None:
        if model_asset is not None:
            # An outlet like any other: Airflow records the event, and DAGs scheduled on it run.
            kwargs["outlets"] = [*(kwargs.get("outlets") or []), model_asset]
        super().__init__(spec=spec, given={"keep_alive_seconds": keep_alive_seconds}, **kwargs)
        check_keep_alive(keep_alive_seconds)
        self.keep_alive_seconds = keep_alive_seconds
        self.model_asset = model_asset
        # What does not depend on templates is checked now, when the DAG is parsed.
        self.check_at_parse_time()

    def render_sagemaker(self, spec: RuntimeSpec) -> None:
        """Render ``spec`` as a CreateTrainingJob request, raising what breaks a limit."""
        render_training_job(
            spec,
            job_name=DEFAULT_PREFIX,
            max_runtime_seconds=self._max_runtime_seconds(),
            keep_alive_seconds=self.keep_alive_seconds,
            tags=self.tags,
        )

    def sagemaker_backend(self, settings: JobSettings, **common: Any) -> JobBackend:
        """Return the SageMaker training backend, with the warm pool's keep-alive period."""
        from lyftlearn_provider.backends.sagemaker import SageMakerTrainingBackend

        return SageMakerTrainingBackend(self, settings, keep_alive_seconds=self.keep_alive_seconds, **common)

    def pod_backend(self, settings: JobSettings, **common: Any) -> JobBackend:
        """Return the pod training backend."""
        from lyftlearn_provider.backends.kubernetes import PodTrainingBackend

        return PodTrainingBackend(self, settings, **common)

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
