"""The Kubernetes side of a training task (``backend="kubernetes"``): the same spec, run as a pod.

The pod is run by the cncf-kubernetes provider's ``KubernetesPodOperator`` machinery, composed rather
than re-implemented: it creates the pod (or reattaches to the run's running one), streams its logs,
defers to its own trigger, and returns what the program wrote to ``/airflow/xcom/return.json``
through the XCom sidecar. The program reports its model and metrics there as
``{"model_artifact_uri": "s3://…", "metrics": {"auc": 0.91}}``; the task returns the same
:class:`~lyftlearn_provider.results.TrainingResult` as on SageMaker, with the fields SageMaker alone
knows (ARN, billable seconds, warm pool) left empty.

Every pod of a run carries the labels ``lyftlearn.io/run`` (the run's base job name) and
``lyftlearn.io/attempt``, so the backend finds the run's latest attempt, adopts a running one, deletes
what still runs when the task is killed or times out, and names a new attempt ``<base>-a<n>`` after
a failed one — as SageMaker jobs are named. Failed pods are kept (their events and logs explain the
failure); succeeded ones are deleted, so a cleared task trains again.

Imported when a DAG is parsed, so the cncf provider and the Kubernetes client are imported inside
the methods that use them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

from lyftlearn_provider.backends import KUBERNETES_ARGUMENTS
from lyftlearn_provider.backends.base import (
    Deferral,
    Job,
    JobBackend,
    JobRecord,
    JobRun,
    JobSettings,
    JobState,
)
from lyftlearn_provider.contract import BatchData, Runtime
from lyftlearn_provider.exceptions import (
    BatchPodError,
    InvalidSpecError,
    LyftLearnError,
    TrainingPodError,
    ValidationPodError,
)
from lyftlearn_provider.rendering.kubernetes import (
    ATTEMPT_LABEL,
    IMAGE_REFERENCE_ANNOTATION,
    RUN_LABEL,
    RunLabels,
    pod_name,
    render_pod,
    require_service_account_role,
    xcom_sidecar_security_context,
)
from lyftlearn_provider.results import BatchResult, TrainingResult, ValidationResult
from lyftlearn_provider.status import iso, to_datetime

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk import BaseOperator


#: The training container's name in the pod (the XCom sidecar runs beside it).
CONTAINER = "base"
#: KubernetesPodOperator's label on pods it has finished with: it never reattaches to them.
CHECKED_LABEL = "already_checked"
_PHASES = {"Succeeded": JobState.SUCCEEDED, "Failed": JobState.FAILED}


def _attempt_of(pod: Any) -> int:
    try:
        return int((pod.metadata.labels or {}).get(ATTEMPT_LABEL, "1"))
    except ValueError:
        return 1


def job_from_pod(pod: Any) -> Job:
    """Return the backend-neutral view of one of the run's pods, as found (not as run) by the task.

    A pod whose phase is ``Succeeded`` has had its XCom sidecar stopped, so its result was read by a
    task that did not finish: it cannot be read again, and counts as stopped (a new attempt trains).
    """
    phase = pod.status.phase if pod.status else None
    state = _PHASES.get(str(phase), JobState.RUNNING)
    reason = (pod.status.message or pod.status.reason) if pod.status else None
    if state is JobState.SUCCEEDED:
        state, reason = JobState.STOPPED, "it succeeded, but its result was never collected"
    elif state is JobState.RUNNING and pod.metadata.deletion_timestamp is not None:
        state = JobState.STOPPED
    return Job(
        name=pod.metadata.name,
        attempt=_attempt_of(pod),
        state=state,
        image=pod.spec.containers[0].image if pod.spec and pod.spec.containers else None,
        reason=reason,
        details=pod,
    )


@dataclasses.dataclass(frozen=True)
class PodTimes:
    """When a finished pod was created, and when its program started and ended (None when unknown)."""

    created: dt.datetime | None
    started: dt.datetime | None
    ended: dt.datetime | None

    def seconds(self, start: dt.datetime | None, end: dt.datetime | None) -> float | None:
        """Return the seconds between two of these moments, or None when either is unknown."""
        return round((end - start).total_seconds(), 3) if start and end else None


class PodBackend(JobBackend):
    """Run a spec as a Kubernetes pod through KubernetesPodOperator; subclasses say what the pod is for.

    :param settings: what every backend is given; the time limit is the pod's ``activeDeadlineSeconds``
        and the spill document goes to S3, as for SageMaker.
    :param kubernetes_conn_id: the Airflow connection to the cluster.
    :param namespace: the pod's namespace.
    :param service_account_name: the pod's service account, annotated with the spec's IAM role.
    :param startup_timeout_seconds: how long the pod may take to start.
    :param input_loader_image: an AWS CLI image that copies the spec's inputs into the pod.
    :param model_uri: the trained model the program loads (``LYFTLEARN_MODEL_URI``), if any.
    :param data: a batch job's inputs and outputs (``LYFTLEARN_INPUTS`` ...), if it is one.
    """

    arguments = KUBERNETES_ARGUMENTS
    stopped_by = "kubectl, the cluster, or its activeDeadlineSeconds"
    #: What ``LYFTLEARN_RUNTIME`` tells the program.
    runtime: ClassVar[Runtime] = Runtime.KUBERNETES

    def __init__(
        self,
        operator: BaseOperator,
        settings: JobSettings,
        *,
        kubernetes_conn_id: str | None,
        namespace: str,
        service_account_name: str,
        startup_timeout_seconds: int,
        input_loader_image: str | None,
        model_uri: str | None = None,
        data: BatchData | None = None,
    ) -> None:
        super().__init__(operator, settings)
        self.model_uri = model_uri
        self.data = data
        self.kubernetes_conn_id = kubernetes_conn_id
        self.namespace = namespace
        self.service_account_name = service_account_name
        self.startup_timeout_seconds = startup_timeout_seconds
        self.input_loader_image = input_loader_image
        self._pod_operator: KubernetesPodOperator | None = None
        self._pending: Deferral | None = None

    def platform_result_fields(self, run: JobRun, job: Job, record: JobRecord) -> dict[str, Any]:
        """Return what every job kind's result of a finished pod says (:class:`PlatformJobResult`)."""
        times = self.times()
        startup = times.seconds(times.created, times.started)
        image = record.image
        return {
            "backend": "kubernetes",
            "job_name": job.name,
            "job_arn": None,
            "status": "Completed",
            "attempt": record.attempt,
            "adopted": record.adopted,
            "image": image["pinned"] if image else self.spec.image,
            "image_resolution": dict(image) if image else None,
            "soci": image.get("soci") if image else None,
            "startup_seconds": {} if startup is None else {"Pending": startup},
            "startup_total_seconds": startup or 0.0,
            "billable_seconds": None,
            "created_at": iso(times.created),
            "ended_at": iso(times.ended),
            "data_interval_start": iso(run.identity.data_interval_start),
            "data_interval_end": iso(run.identity.data_interval_end),
        }

    @cached_property
    def hook(self) -> KubernetesHook:
        """Return the cncf provider's hook (imported here: DAG parsing must not pay for it)."""
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        return KubernetesHook(conn_id=self.kubernetes_conn_id)

    # ------------------------------------------------------------------ find and create
    def _run_pods(self, run: JobRun) -> list[Any]:
        return list(
            self.hook.core_v1_client.list_namespaced_pod(
                self.namespace, label_selector=f"{RUN_LABEL}={run.identity.base_name}"
            ).items
        )

    def find(self, run: JobRun) -> Job | None:
        """Return the run's latest pod (highest attempt), or None."""
        pods = self._run_pods(run)
        if not pods:
            return None
        return job_from_pod(max(pods, key=lambda pod: (_attempt_of(pod), pod.metadata.creation_timestamp)))

    def image_reference(self, run: JobRun, job: Job) -> str | None:
        """Return the reference the pod was created from: its ``lyftlearn.io/image-reference`` annotation."""
        return (
            (job.details.metadata.annotations or {}).get(IMAGE_REFERENCE_ANNOTATION) if job.details else None
        )

    def create(
        self, run: JobRun, *, attempt: int, image: Mapping[str, Any] | None, reference: str
    ) -> tuple[Job, bool]:
        """Check the service account, upload what spills, and run attempt ``attempt`` as a pod."""
        self._check_service_account()
        # A failed attempt KubernetesPodOperator has not labelled yet would be reattached to, not replaced.
        for pod in self._run_pods(run):
            if job_from_pod(pod).state.ended and (pod.metadata.labels or {}).get(CHECKED_LABEL) != "True":
                self.hook.core_v1_client.patch_namespaced_pod(
                    pod.metadata.name, self.namespace, {"metadata": {"labels": {CHECKED_LABEL: "True"}}}
                )
        name = pod_name(run.identity.attempt_name(attempt))
        operator = self._compose(run, name=name, attempt=attempt, image=image, reference=reference)
        return self._execute(run, operator, name, attempt), True

    def _check_service_account(self) -> None:
        """Fail before the pod exists unless its service account carries the spec's IAM role (IRSA)."""
        from kubernetes.client.exceptions import ApiException

        try:
            account = self.hook.core_v1_client.read_namespaced_service_account(
                self.service_account_name, self.namespace
            )
        except ApiException as error:
            if error.status == 404:
                raise InvalidSpecError(
                    "service_account_name",
                    f"service account {self.service_account_name!r} does not exist in namespace "
                    f"{self.namespace!r}",
                    f"Create it annotated eks.amazonaws.com/role-arn={self.spec.role_arn}, or pass one "
                    "that is.",
                ) from None
            raise
        require_service_account_role(
            self.spec, self.hook.core_v1_client.api_client.sanitize_for_serialization(account)
        )

    def _compose(
        self,
        run: JobRun,
        *,
        name: str,
        attempt: int,
        image: Mapping[str, Any] | None,
        reference: str,
    ) -> KubernetesPodOperator:
        """Return the pod operator that runs this attempt (the spill document uploaded first)."""
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

        spec = self.spec if image is None else dataclasses.replace(self.spec, image=image["pinned"])
        rendering = render_pod(
            spec,
            name=name,
            namespace=self.namespace,
            job_name=run.identity.attempt_name(attempt),
            run_environment=run.identity.environment(),
            service_account=self.service_account_name,
            # SageMaker's MaxRuntimeInSeconds, as the pod's own deadline.
            active_deadline_seconds=self.settings.max_runtime_seconds,
            input_loader_image=self.input_loader_image,
            run=RunLabels(base_name=run.identity.base_name, attempt=attempt, image_reference=reference),
            runtime=self.runtime.value,
            model_uri=self.model_uri,
            data=self.data,
        )
        if rendering.spill_uri and rendering.spill_document:
            self._upload(rendering.spill_uri, rendering.spill_document)
            run.log.info("Values over what a pod carries travel in %s.", rendering.spill_uri)
        self._pod_operator = KubernetesPodOperator(
            task_id=self.operator.task_id,
            kubernetes_conn_id=self.kubernetes_conn_id,
            namespace=self.namespace,
            name=name,
            random_name_suffix=False,
            pod_template_dict=rendering.manifest,
            base_container_name=CONTAINER,
            do_xcom_push=True,
            xcom_sidecar_container_security_context=xcom_sidecar_security_context(),
            reattach_on_restart=True,
            get_logs=True,
            on_finish_action="delete_succeeded_pod",
            on_kill_action="delete_pod",
            deferrable=run.deferrable,
            poll_interval=self.settings.poll_interval,
            startup_timeout_seconds=self.startup_timeout_seconds,
            log_events_on_failure=True,
        )
        return self._pod_operator

    def _upload(self, uri: str, document: Mapping[str, Any]) -> None:
        from lyftlearn_provider.hooks.sagemaker import SageMakerTrainingHook

        SageMakerTrainingHook(
            aws_conn_id=self.aws.aws_conn_id,
            region_name=self.aws.region_name,
            verify=self.aws.verify,
            config=self.aws.botocore_config,
        ).upload_json(uri, document)

    def _execute(self, run: JobRun, operator: KubernetesPodOperator, name: str, attempt: int) -> Job:
        """Run the pod operator: a pod that ends here is returned ended; one it defers on, running."""
        from airflow.sdk.exceptions import AirflowException, TaskDeferred

        try:
            returned = operator.execute(run.context)
        except TaskDeferred as deferred:
            self._pending = Deferral(deferred.trigger, timeout=deferred.timeout, kwargs=deferred.kwargs)
            return Job(name=name, attempt=attempt, state=JobState.RUNNING)
        except AirflowException as error:
            return Job(name=name, attempt=attempt, state=JobState.FAILED, reason=str(error))
        return Job(name=name, attempt=attempt, state=JobState.SUCCEEDED, details=returned)

    # ------------------------------------------------------------------ wait and resume
    def follow(self, run: JobRun, job: Job, record: JobRecord) -> Job | Deferral:
        """Hand over the pod operator's deferral, or reattach to the run's running pod and follow it."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        # Reattaching finds the pod by its labels; the manifest is only used to create one.
        operator = self._compose(
            run, name=job.name, attempt=job.attempt, image=record.image, reference=self.spec.image
        )
        followed = self._execute(run, operator, job.name, job.attempt)
        if self._pending is not None:
            pending, self._pending = self._pending, None
            return pending
        return followed

    def record_from_event(self, run: JobRun, event: Any) -> JobRecord:
        """Return a record of the pod KubernetesPodOperator's event names: its attempt from its name."""
        name = event.get("name") if isinstance(event, Mapping) else None
        attempt = run.identity.attempt_of(name) if isinstance(name, str) else None
        if name is None or attempt is None:
            raise LyftLearnError(f"The pod trigger returned an unusable event: {event!r}")
        return JobRecord(job_name=name, attempt=attempt, adopted=False)

    def resume(self, run: JobRun, record: JobRecord, event: Any) -> Job | Deferral:
        """Resume the pod operator with its trigger's event; it re-defers while it streams logs."""
        from airflow.sdk.exceptions import AirflowException, TaskDeferred

        operator = self._compose(
            run, name=record.job_name, attempt=record.attempt, image=record.image, reference=self.spec.image
        )
        try:
            returned = operator.trigger_reentry(run.context, event or {})
        except TaskDeferred as deferred:
            return Deferral(deferred.trigger, timeout=deferred.timeout, kwargs=deferred.kwargs)
        except AirflowException as error:
            return Job(name=record.job_name, attempt=record.attempt, state=JobState.FAILED, reason=str(error))
        return Job(name=record.job_name, attempt=record.attempt, state=JobState.SUCCEEDED, details=returned)

    # ------------------------------------------------------------------ stop and finish
    def stop(self, run: JobRun, job_name: str | None) -> list[str]:
        """Delete the run's pods that have not ended (the named one, or any attempt still running)."""
        stopped: list[str] = []
        for pod in self._run_pods(run):
            if job_from_pod(pod).state.ended:
                continue
            self.hook.core_v1_client.delete_namespaced_pod(pod.metadata.name, self.namespace)
            stopped.append(pod.metadata.name)
        return stopped

    def times(self) -> PodTimes:
        """Return when the pod that just ran was created, and when its program started and ended."""
        pod = self._pod_operator.pod if self._pod_operator is not None else None
        created = to_datetime(pod.metadata.creation_timestamp) if pod is not None else None
        started = ended = None
        if pod is not None and pod.status is not None:
            for status in pod.status.container_statuses or []:
                terminated = status.state.terminated if status.name == CONTAINER and status.state else None
                if terminated is not None:
                    started, ended = to_datetime(terminated.started_at), to_datetime(terminated.finished_at)
        return PodTimes(created, started, ended)


class PodTrainingBackend(PodBackend):
    """Train as a pod: the program reports ``{"model_artifact_uri": ..., "metrics": {...}}``."""

    job_error = TrainingPodError

    def result(self, run: JobRun, job: Job, record: JobRecord) -> TrainingResult:
        """Return the typed result from the finished pod and what its program wrote to the XCom file."""
        returned = job.details if isinstance(job.details, Mapping) else {}
        times = self.times()
        metrics = returned.get("metrics")
        return TrainingResult(
            **self.platform_result_fields(run, job, record),
            model_artifact_uri=returned.get("model_artifact_uri"),
            final_metrics=dict(metrics) if isinstance(metrics, Mapping) else {},
            training_seconds=times.seconds(times.started, times.ended),
            warm_pool=None,
        )


class PodValidationBackend(PodBackend):
    """Validate a trained model in a pod: the program loads ``LYFTLEARN_MODEL_URI`` and reports JSON."""

    job_error = ValidationPodError
    runtime = Runtime.VALIDATION

    def __init__(self, *args: Any, training_job: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.training_job = training_job

    def result(self, run: JobRun, job: Job, record: JobRecord) -> ValidationResult:
        """Return what the validation program wrote to the XCom file, with where and how it ran."""
        times = self.times()
        image = record.image
        return ValidationResult(
            job_name=job.name,
            status="Completed",
            attempt=record.attempt,
            adopted=record.adopted,
            image=image["pinned"] if image else self.spec.image,
            model_uri=self.model_uri,
            training_job=self.training_job,
            output=job.details,
            startup_seconds=times.seconds(times.created, times.started),
            run_seconds=times.seconds(times.started, times.ended),
            created_at=iso(times.created),
            ended_at=iso(times.ended),
            data_interval_start=iso(run.identity.data_interval_start),
            data_interval_end=iso(run.identity.data_interval_end),
        )


class PodBatchBackend(PodBackend):
    """Run a batch job as a pod: the program sees ``LYFTLEARN_RUNTIME=batch`` and writes its outputs to S3.

    A pod uploads nothing when it ends (SageMaker Processing does): the program writes each output to
    its prefix in ``LYFTLEARN_OUTPUT_URIS`` itself; the inputs are copied in as training's are.
    """

    job_error = BatchPodError
    runtime = Runtime.BATCH

    def result(self, run: JobRun, job: Job, record: JobRecord) -> BatchResult:
        """Return the typed result of the finished pod."""
        times = self.times()
        return BatchResult(
            **self.platform_result_fields(run, job, record),
            outputs=dict(self.data.output_uris) if self.data else {},
            model_uri=self.model_uri,
            run_seconds=times.seconds(times.started, times.ended),
            exit_message=None,
        )
