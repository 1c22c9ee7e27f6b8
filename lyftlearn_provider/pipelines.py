"""The whole retraining loop as one call: train, gate, validate, deploy, and the model's asset event.

DAG files import this module on every parse: it imports nothing beyond the Task SDK at module level; the
operators (themselves light) are imported when a pipeline is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Asset, TaskGroup

    from lyftlearn_provider.runtime import RuntimeSpec
    from lyftlearn_provider.serving import ModelGate

#: The task ids inside the group, in order (``<group_id>.train`` ...).
STEPS = ("train", "gate", "validate", "deploy")


def _merged(defaults: Mapping[str, Any], overrides: Mapping[str, Any] | None, step: str) -> dict[str, Any]:
    """Return the step's arguments: the pipeline's defaults, then the caller's (which win)."""
    from lyftlearn_provider.exceptions import InvalidSpecError

    merged = dict(defaults)
    for name, value in (overrides or {}).items():
        if name == "task_id":
            raise InvalidSpecError(
                f"{step}_kwargs", "sets task_id, which the pipeline owns", f"Remove it; the task is {step!r}."
            )
        merged[name] = value
    return merged


def retraining_pipeline(
    group_id: str,
    *,
    spec: RuntimeSpec,
    namespace: str,
    deployment: str,
    container: str,
    validation_spec: RuntimeSpec | None = None,
    serving_spec: RuntimeSpec | None = None,
    gate: ModelGate | None = None,
    model_asset: Asset | None = None,
    events_queue_url: str | None = None,
    deferrable: bool = True,
    kubernetes_conn_id: str = "kubernetes_default",
    train_kwargs: Mapping[str, Any] | None = None,
    gate_kwargs: Mapping[str, Any] | None = None,
    validate_kwargs: Mapping[str, Any] | None = None,
    deploy_kwargs: Mapping[str, Any] | None = None,
    tooltip: str = "",
) -> TaskGroup:
    """
    Return a task group that retrains one model and puts it into serving: train → gate → validate → deploy.

    Build it inside a ``DAG`` (or another group); the tasks are ``<group_id>.train``, ``<group_id>.gate``,
    ``<group_id>.validate`` (when ``validation_spec`` is given) and ``<group_id>.deploy``:

    - **train** — ``TrainModelOperator``: resolves the image (pinned by digest through ECR, its SOCI index
      checked as ``soci=`` says) before the job exists, trains on SageMaker (or ``backend="kubernetes"``
      in ``train_kwargs``), one job per run, adopted on retry. With ``model_asset`` it emits the model's
      asset event (URI, pinned image, metrics, data interval), for serving DAGs scheduled on it.
    - **gate** — ``GateModelOperator``: ``gate``'s thresholds, "not worse than serving", and never
      backwards against the Deployment; a model that does not pass skips the rest, with the reason.
    - **validate** — ``ValidateModelOperator``: the pinned image runs ``validation_spec`` in a pod.
    - **deploy** — ``DeployModelOperator``: patches the Deployment, waits for the rollout, rolls a failed
      one back; it decides again under its compare-and-swap (with the same gate), so a backfill never
      rolls serving back and concurrent runs never interleave.

    Defaults: every step deferrable; ``tracking="events"`` when ``events_queue_url`` is given (else the
    operator's own default, or ``train_kwargs["tracking"]``). Any operator argument of a step can be given
    in its ``*_kwargs`` and wins over the pipeline's; ``task_id`` belongs to the pipeline.

    :param group_id: the group's id (e.g. the model's name).
    :param spec: the training spec.
    :param namespace: the serving Deployment's namespace.
    :param deployment: the serving Deployment's name.
    :param container: the container that serves the model.
    :param validation_spec: what the validation pod runs (its image is the model's); None: no validation.
    :param serving_spec: the serving container's contract; default ``spec`` (same environment, config,
        secrets and role: the parity of training and serving).
    :param gate: the bar the model must clear (thresholds, not worse than serving); None: never backwards
        only.
    :param model_asset: an ``Asset`` the training task emits an event of. Prefer a named one
        (``Asset("fraud_model")``): Airflow normalizes ``s3://`` asset URIs with the amazon provider's
        S3 hook, which imports boto3 whenever the DAG file is parsed.
    :param events_queue_url: the queue of ``SetupTrainingEventsOperator`` (templated): ``events`` tracking.
    :param deferrable: whether the steps wait in the triggerer.
    :param kubernetes_conn_id: the cluster connection of gate, validate and deploy.
    :param train_kwargs: more ``TrainModelOperator`` arguments.
    :param gate_kwargs: more ``GateModelOperator`` arguments.
    :param validate_kwargs: more ``ValidateModelOperator`` arguments.
    :param deploy_kwargs: more ``DeployModelOperator`` arguments.
    :param tooltip: the group's tooltip in the UI.
    """
    from airflow.sdk import TaskGroup

    from lyftlearn_provider.operators.deployment import DeployModelOperator
    from lyftlearn_provider.operators.gate import GateModelOperator
    from lyftlearn_provider.operators.training import TrainModelOperator
    from lyftlearn_provider.operators.validation import ValidateModelOperator

    tracking: dict[str, Any] = (
        {"tracking": "events", "events_queue_url": events_queue_url} if events_queue_url else {}
    )
    serving = {"namespace": namespace, "deployment": deployment}
    with TaskGroup(
        group_id=group_id, tooltip=tooltip or f"Retrain {group_id} and put it into serving"
    ) as group:
        train = TrainModelOperator(
            task_id="train",
            **_merged(
                {"spec": spec, "deferrable": deferrable, "model_asset": model_asset, **tracking},
                train_kwargs,
                "train",
            ),
        )
        checked = GateModelOperator(
            task_id="gate",
            **_merged(
                {
                    "gate": gate,
                    "training_result": train.output,
                    "kubernetes_conn_id": kubernetes_conn_id,
                    **serving,
                },
                gate_kwargs,
                "gate",
            ),
        )
        last = train >> checked
        if validation_spec is not None:
            last = last >> ValidateModelOperator(
                task_id="validate",
                **_merged(
                    {
                        "spec": validation_spec,
                        "training_result": train.output,
                        "deferrable": deferrable,
                        "kubernetes_conn_id": kubernetes_conn_id,
                    },
                    validate_kwargs,
                    "validate",
                ),
            )
        last >> DeployModelOperator(
            task_id="deploy",
            **_merged(
                {
                    "spec": serving_spec or spec,
                    "training_result": train.output,
                    "container": container,
                    "gate": gate,
                    "deferrable": deferrable,
                    "kubernetes_conn_id": kubernetes_conn_id,
                    **serving,
                },
                deploy_kwargs,
                "deploy",
            ),
        )
    return group
