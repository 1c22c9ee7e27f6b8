"""Decide, before a model is validated or deployed, whether it may serve: the same rule the deploy applies."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.operators.jobs import SpecOperator, skip_task
from lyftlearn_provider.operators.validation import TakesModel
from lyftlearn_provider.serving import Decision, ModelGate, decide, serving_record
from lyftlearn_provider.validation import is_templated

if TYPE_CHECKING:
    from airflow.sdk import Asset, Context

    from lyftlearn_provider.hooks.kubernetes import DeploymentHook
    from lyftlearn_provider.serving import ServingRecord


class GateModelOperator(TakesModel, SpecOperator):
    """
    Let a trained model on only if it clears a :class:`~lyftlearn_provider.serving.ModelGate`; skip otherwise.

    The gate is :func:`~lyftlearn_provider.serving.decide`, the rule ``DeployModelOperator`` applies under
    its compare-and-swap, applied early so a model that will not serve does not spend a validation pod:
    metric thresholds (``at_least``/``at_most``) on the training result, and — when a serving Deployment is
    named — "not worse than the serving model" on a metric and direction, and never backwards (a serving
    model trained on newer data, e.g. while a backfill runs, skips this one). A model that does not pass
    makes the task *skip* (and with it validation and deploy downstream), with the reason in the log and
    in the XCom (``{"status": "skipped", "reason": ...}``); one that passes returns ``"passed"`` (or
    ``"already_serving"``) with the metrics compared. The deploy decides again when it writes: what serves
    may change in between.

    :param gate: the bar the model must clear; None applies only "never backwards" (needs a Deployment).
    :param training_result: the training task's result, e.g. ``train.output`` (templated).
    :param image: the pinned image, with ``model_uri`` (templated).
    :param model_uri: the model (templated).
    :param model_asset: take the model from the asset event that triggered this run.
    :param namespace: the serving Deployment's namespace, to compare with what serves (templated).
    :param deployment: the serving Deployment's name (templated); None compares with nothing.
    :param kubernetes_conn_id: the Airflow connection to the cluster.
    """

    template_fields: Sequence[str] = ("training_result", "image", "model_uri", "namespace", "deployment")
    template_fields_renderers = {"training_result": "json"}
    ui_color = "#fff2cc"

    def __init__(
        self,
        *,
        gate: ModelGate | None = None,
        training_result: Any = None,
        image: str | None = None,
        model_uri: str | None = None,
        model_asset: Asset | None = None,
        namespace: str | None = None,
        deployment: str | None = None,
        kubernetes_conn_id: str = "kubernetes_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if gate is not None and not isinstance(gate, ModelGate):
            raise InvalidSpecError(
                "gate", f"expected a ModelGate, got {type(gate).__name__}", "Pass ModelGate(at_least={...})."
            )
        self.take_model(training_result, image, model_uri, model_asset)
        if (namespace is None) != (deployment is None):
            raise InvalidSpecError(
                "deployment" if deployment is None else "namespace",
                "is missing: namespace and deployment name the serving Deployment together",
                "Pass both (to compare with what serves), or neither.",
            )
        if deployment is None and (gate is None or gate.not_worse_than_serving):
            raise InvalidSpecError(
                "deployment",
                "the gate compares with the serving model, but no serving Deployment is named"
                if gate is not None
                else "there is nothing to decide: no gate and no serving Deployment",
                "Pass namespace= and deployment= of the serving Deployment, or a gate with thresholds only.",
            )
        if deployment is not None:
            from lyftlearn_provider.rendering.kubernetes import check_dns_label, check_dns_subdomain

            if not is_templated(namespace):
                check_dns_label(namespace, "namespace", "ml-serving")
            if not is_templated(deployment):
                check_dns_subdomain(deployment, "deployment", "fraud-model")
        self.gate = gate
        self.namespace = namespace
        self.deployment = deployment
        self.kubernetes_conn_id = kubernetes_conn_id

    @cached_property
    def hook(self) -> DeploymentHook:
        """Return the Deployment hook (imported here: DAG parsing must not pay for the cncf provider)."""
        from lyftlearn_provider.hooks.kubernetes import DeploymentHook

        return DeploymentHook(conn_id=self.kubernetes_conn_id)

    def execute(self, context: Context) -> dict[str, Any]:
        """Decide on the rendered model and what serves now; skip the task (with the reason) on no."""
        model = self.rendered_model(context)
        serving = self._serving()
        verdict = decide(model, serving, self.gate)
        result: dict[str, Any] = {
            "status": "skipped" if verdict.decision is Decision.SKIP else "passed",
            "reason": verdict.reason,
            "model_uri": model.uri,
            "image": model.image,
            "metrics": dict(model.metrics),
            "serving": (
                {"model_uri": serving.model_uri, "metrics": dict(serving.metrics)} if serving else None
            ),
        }
        if verdict.decision is Decision.SKIP:
            self.log.warning("Model %s does not go on: %s", model.uri, verdict.reason)
            skip_task(context, result, verdict.reason)
        if verdict.decision is Decision.ALREADY_SERVING:
            result["status"] = "already_serving"
        self.log.info("Model %s passed the gate: %s.", model.uri, verdict.reason)
        return result

    def _serving(self) -> ServingRecord | None:
        if self.deployment is None or self.namespace is None:
            return None
        deployment = self.hook.read_deployment(self.namespace, self.deployment)
        if deployment is None:
            raise InvalidSpecError(
                "deployment",
                f"Deployment {self.namespace}/{self.deployment} does not exist",
                "Create the serving Deployment first, or correct namespace= and deployment=.",
            )
        return serving_record(deployment)
