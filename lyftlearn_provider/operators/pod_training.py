"""The ``kubernetes`` backend of ``TrainModelOperator``: the same spec, run as a pod.

The pod is run by the cncf-kubernetes provider's ``KubernetesPodOperator`` machinery, composed
rather than re-implemented: it reattaches to the run's pod on retry (``reattach_on_restart``),
deletes it when the task is killed, streams its logs, and returns what the program wrote to
``/airflow/xcom/return.json`` through the XCom sidecar. The program reports its model and metrics
there as ``{"model_artifact_uri": "s3://…", "metrics": {"auc": 0.91}}``; the task returns the same
result shape as on SageMaker, with the fields SageMaker alone knows (ARN, billable seconds, warm
pool) left empty.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from lyftlearn_provider.exceptions import InvalidSpecError, TrainingJobError
from lyftlearn_provider.pod import render_pod, service_account_role
from lyftlearn_provider.status import to_datetime

if TYPE_CHECKING:
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk import Context

    from lyftlearn_provider.operators.training import TrainModelOperator

#: The training container's name in the pod (the XCom sidecar runs beside it).
CONTAINER = "base"


def pod_operator(
    operator: TrainModelOperator,
    context: Context,
    *,
    name: str,
    image: str,
    run_environment: dict[str, str],
    max_runtime_seconds: int,
) -> KubernetesPodOperator:
    """Return the pod operator that runs ``operator``'s spec, on the pinned ``image``, for this task."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    manifest = render_pod(
        dataclasses.replace(operator.spec, image=image),
        name=name,
        namespace=operator.namespace,
        job_name=name,
        run_environment=run_environment,
        service_account=operator.service_account_name,
        # SageMaker's MaxRuntimeInSeconds, as the pod's own deadline.
        active_deadline_seconds=max_runtime_seconds,
        input_loader_image=operator.input_loader_image,
    )
    return KubernetesPodOperator(
        task_id=operator.task_id,
        kubernetes_conn_id=operator.kubernetes_conn_id,
        namespace=operator.namespace,
        name=name,
        pod_template_dict=manifest,
        base_container_name=CONTAINER,
        do_xcom_push=True,
        reattach_on_restart=True,
        get_logs=True,
        on_finish_action="delete_succeeded_pod",
        on_kill_action="delete_pod",
        deferrable=operator.deferrable,
        poll_interval=operator.poll_interval,
        startup_timeout_seconds=operator.startup_timeout_seconds,
        log_events_on_failure=True,
    )


def check_service_account(operator: TrainModelOperator) -> None:
    """Fail before the pod exists unless its service account carries the spec's IAM role (IRSA)."""
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
    from kubernetes.client.exceptions import ApiException

    field = "service_account_name"
    fix = (
        f"Create it in namespace {operator.namespace!r} annotated "
        f"eks.amazonaws.com/role-arn={operator.spec.role_arn}, or pass the one that is."
    )
    hook = KubernetesHook(conn_id=operator.kubernetes_conn_id)
    try:
        account = hook.core_v1_client.read_namespaced_service_account(
            operator.service_account_name, operator.namespace
        )
    except ApiException as error:
        if error.status == 404:
            raise InvalidSpecError(
                field, f"service account {operator.service_account_name!r} does not exist", fix
            ) from None
        raise
    role = service_account_role(hook.core_v1_client.api_client.sanitize_for_serialization(account))
    if role != operator.spec.role_arn:
        raise InvalidSpecError(
            field,
            f"service account {operator.service_account_name!r} assumes role {role!r}, "
            f"not the spec's {operator.spec.role_arn!r}",
            fix,
        )


def pod_result(
    context: Context, pod_op: KubernetesPodOperator, returned: Any, *, image: dict[str, Any] | None
) -> dict[str, Any]:
    """Return the training result of a finished pod in the SageMaker result's shape."""
    returned = returned if isinstance(returned, dict) else {}
    pod = pod_op.pod
    name = pod.metadata.name if pod is not None else pod_op.name
    created = to_datetime(pod.metadata.creation_timestamp) if pod is not None else None
    started = ended = None
    if pod is not None and pod.status is not None:
        for status in pod.status.container_statuses or []:
            terminated = status.state.terminated if status.name == CONTAINER and status.state else None
            if terminated is not None:
                started, ended = to_datetime(terminated.started_at), to_datetime(terminated.finished_at)
    startup = round((started - created).total_seconds(), 3) if started and created else None
    training = round((ended - started).total_seconds(), 3) if ended and started else None
    metrics = returned.get("metrics")
    return {
        "backend": "kubernetes",
        "job_name": name,
        "job_arn": None,
        "status": "Completed",
        "attempt": int(context["ti"].try_number or 1),
        "adopted": False,
        "model_artifact_uri": returned.get("model_artifact_uri"),
        "image": image["pinned"] if image else None,
        "image_resolution": image,
        "soci": image.get("soci") if image else None,
        "final_metrics": dict(metrics) if isinstance(metrics, dict) else {},
        "startup_seconds": {} if startup is None else {"Pending": startup},
        "startup_total_seconds": startup or 0.0,
        "training_seconds": training,
        "billable_seconds": None,
        "warm_pool": None,
        "created_at": created.isoformat() if created else None,
        "ended_at": ended.isoformat() if ended else None,
        "data_interval": {
            "start": _iso(context.get("data_interval_start")),
            "end": _iso(context.get("data_interval_end")),
        },
    }


def _iso(value: Any) -> str | None:
    moment = to_datetime(value)
    return moment.isoformat() if moment else None


def failed(name: str, error: BaseException) -> TrainingJobError:
    """Return the task's error for a pod that did not complete."""
    return TrainingJobError(name, "Failed", f"the training pod failed: {error}")
