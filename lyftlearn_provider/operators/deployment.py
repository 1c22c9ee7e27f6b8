"""Put a trained model into a serving Deployment: never backwards, gated, one at a time, rolled back."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.configuration import conf

from lyftlearn_provider.exceptions import InvalidSpecError, LyftLearnError
from lyftlearn_provider.links.kubernetes import DeploymentLink
from lyftlearn_provider.naming import DEFAULT_PREFIX, run_fingerprint, training_job_name
from lyftlearn_provider.operators.jobs import (
    DEFERRAL_TIMEOUT,
    TRIGGER_FAILED,
    SpecOperator,
    check_poll_interval,
    refuse_masked_secrets,
    skip_task,
)
from lyftlearn_provider.operators.validation import TakesModel
from lyftlearn_provider.runtime import RuntimeSpec
from lyftlearn_provider.serving import (
    Decision,
    Model,
    ModelGate,
    ServingRecord,
    decide,
    serving_container,
    serving_deployment,
    serving_record,
)
from lyftlearn_provider.validation import is_templated, require_int, require_seconds

if TYPE_CHECKING:
    from airflow.sdk import Asset, Context

    from lyftlearn_provider.hooks.kubernetes import DeploymentHook
    from lyftlearn_provider.rollouts import RolloutVerdict

#: Writes of the Deployment that may lose a compare-and-swap race before the task gives up.
MAX_CONFLICTS = 5
#: XCom key of what the deferred task must remember: the Deployment's generation, the models.
STATE_XCOM_KEY = "lyftlearn_deploy_state"
DEFAULT_ROLLOUT_TIMEOUT_SECONDS = 600
#: How long a deferrable task follows a rollout from the worker before deferring: a deferral costs a trip
#: through the triggerer and the scheduler and a second task process, seconds that a short rollout (a
#: small Deployment, a fast image pull) does not need.
DEFAULT_DEFER_AFTER_SECONDS = 5.0
#: The first pause between two looks inside that time; each next one doubles.
FIRST_PAUSE_SECONDS = 0.1
MODES = ("patch", "pod")
#: Pod mode's service account when the task names none: one allowed to change the Deployment.
DEFAULT_DEPLOY_SERVICE_ACCOUNT = "lyftlearn-deployer"


class DeployError(LyftLearnError):
    """A rollout failed (and was rolled back), or the deploy tooling failed."""


class DeployModelOperator(TakesModel, SpecOperator):
    """
    Put a trained model into a serving Deployment and wait for its rollout; roll back a failed one.

    **Patch mode** (default): the container ``container`` of Deployment ``namespace/deployment`` gets the
    model's pinned image (the one that trained, never a tag) and the runtime contract of ``spec`` with
    ``LYFTLEARN_RUNTIME=serving`` and ``LYFTLEARN_MODEL_URI``; the model (URI, image, training job, data
    interval, metrics, the deploying run) is recorded in the pod template's annotations (they follow any
    rollback) and the Deployment's. **Pod mode** (``mode="pod"``, for teams with their own tooling: Helm,
    Argo Rollouts, an in-house CLI) runs ``deploy_image`` as a pod with the pinned image, the model and
    the record in ``LYFTLEARN_DEPLOY_*`` variables; the same guards wrap it.

    Guards, decided again after every lost compare-and-swap (a write carries the ``resourceVersion`` it
    read; a 409 re-reads the Deployment), so the live schedule, a backfill and another DAG never
    interleave on one Deployment:

    - **already serving**: the same model and image is a no-op that succeeds (it still waits for a rollout
      in progress, e.g. one a killed try started);
    - **never backwards**: a serving model trained on newer data (its data interval's end, else when it
      trained) makes the task *skip*, with the reason in the log and the XCom: a backfill trains every
      interval but never rolls serving back;
    - **gate**: a :class:`~lyftlearn_provider.serving.ModelGate` the training metrics must clear, optionally
      "not worse than the serving model"; a model that does not is skipped, with the reason.

    The rollout is rolled out when ``observedGeneration`` reached the write and updated = ready = available
    = desired replicas; it failed on ``Progressing=False`` (``ProgressDeadlineExceeded``) or after
    ``rollout_timeout_seconds``. A failed rollout is rolled back to the previous revision (what ``kubectl
    rollout undo`` does), that rollout waited for, and the task fails naming the Deployment, what was seen
    and the failing pods' events. Deferrable: the wait runs in the triggerer -- once the rollout has gone
    on for ``defer_after_seconds``: one that ends sooner (or had ended: an already-serving model) is
    concluded by the same rule and the same code in the same try, without a deferral.

    :param namespace: the Deployment's namespace (templated).
    :param deployment: the Deployment's name (templated).
    :param container: the container that serves the model (templated).
    :param spec: the serving container's contract: environment, config, secret references, metrics; its
        image is the model's (templated).
    :param training_result: the training task's result, e.g. ``train.output`` (templated).
    :param image: the pinned image to serve, with ``model_uri`` (templated).
    :param model_uri: the model to serve (templated).
    :param model_asset: take the model from the asset event that triggered this run.
    :param gate: the metrics the model must clear; None for none.
    :param mode: ``"patch"`` (default) or ``"pod"``.
    :param deploy_image: pod mode: the deploy tooling's image.
    :param deploy_command: pod mode: its command.
    :param deploy_args: pod mode: its arguments.
    :param deploy_service_account_name: pod mode: an account allowed to change the Deployment
        (``lyftlearn-deployer`` when not given).
    :param kubernetes_conn_id: the Airflow connection to the cluster.
    :param rollback: roll a failed rollout back (default); False leaves it for a human.
    :param rollout_timeout_seconds: how long a rollout may take; default the task's ``execution_timeout``,
        else 600.
    :param job_name_prefix: first part of names this task gives (``LYFTLEARN_JOB_NAME``, the deploy pod).
    :param poll_interval: seconds between two looks at the rollout.
    :param deferrable: wait for the rollout in the triggerer.
    :param defer_after_seconds: deferrable: follow the rollout from the worker this long (looking again
        after 0.1, 0.2, 0.4 ... s) before deferring; 0 defers after the first look unless the rollout
        already ended.
    """

    template_fields: Sequence[str] = (
        "spec",
        "training_result",
        "image",
        "model_uri",
        "namespace",
        "deployment",
        "container",
    )
    template_fields_renderers = {"training_result": "json", "spec": "json"}
    operator_extra_links = (DeploymentLink(),)
    spec_backend = "kubernetes"  # serving runs in pods: Rendered Templates shows the pod's fields
    ui_color = "#cce0ff"

    def __init__(
        self,
        *,
        namespace: str,
        deployment: str,
        container: str,
        spec: RuntimeSpec,
        training_result: Any = None,
        image: str | None = None,
        model_uri: str | None = None,
        model_asset: Asset | None = None,
        gate: ModelGate | None = None,
        mode: str = "patch",
        deploy_image: str | None = None,
        deploy_command: Sequence[str] = (),
        deploy_args: Sequence[str] = (),
        deploy_service_account_name: str | None = None,
        kubernetes_conn_id: str = "kubernetes_default",
        rollback: bool = True,
        rollout_timeout_seconds: int | None = None,
        job_name_prefix: str = DEFAULT_PREFIX,
        poll_interval: float = conf.getfloat("lyftlearn", "poll_interval", fallback=30.0),
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        defer_after_seconds: float = DEFAULT_DEFER_AFTER_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # Imported here: DAGs that only train do not pay for the Kubernetes name rules when parsed.
        from lyftlearn_provider.rendering.kubernetes import check_dns_label, check_dns_subdomain

        if not isinstance(spec, RuntimeSpec):
            raise InvalidSpecError(
                "spec", f"expected a RuntimeSpec, got {type(spec).__name__}", "Pass the serving RuntimeSpec."
            )
        self.take_model(training_result, image, model_uri, model_asset)
        for field, value, check, example in (
            ("namespace", namespace, check_dns_label, "ml-serving"),
            ("deployment", deployment, check_dns_subdomain, "fraud-model"),
            ("container", container, check_dns_label, "server"),
        ):
            if not is_templated(value):
                check(value, field, example)
        if gate is not None and not isinstance(gate, ModelGate):
            raise InvalidSpecError(
                "gate", f"expected a ModelGate, got {type(gate).__name__}", "Pass ModelGate(at_least={...})."
            )
        if mode not in MODES:
            raise InvalidSpecError("mode", f"{mode!r} is not a deploy mode", f"Use one of {list(MODES)}.")
        if mode == "pod" and not deploy_image:
            raise InvalidSpecError(
                "deploy_image", "mode='pod' runs a deploy image, but none is given", "Pass deploy_image=."
            )
        if mode == "patch" and deploy_service_account_name is not None:
            raise InvalidSpecError(
                "deploy_service_account_name",
                "does not apply to mode='patch' (the task itself patches the Deployment)",
                "Remove it, or use mode='pod'.",
            )
        if mode == "pod":
            deploy_service_account_name = deploy_service_account_name or DEFAULT_DEPLOY_SERVICE_ACCOUNT
            check_dns_subdomain(deploy_service_account_name, "deploy_service_account_name", "fraud-deployer")
        if mode == "patch" and (deploy_image or deploy_command or deploy_args):
            raise InvalidSpecError(
                "deploy_image", "does not apply to mode='patch'", "Remove it, or use mode='pod'."
            )
        if rollout_timeout_seconds is not None:
            require_int(rollout_timeout_seconds, "rollout_timeout_seconds", 1, None, "Use e.g. 600.")
        defer_after = require_seconds(
            defer_after_seconds,
            "defer_after_seconds",
            example=DEFAULT_DEFER_AFTER_SECONDS,
            zero="defer after the first look",
        )
        self.namespace = namespace
        self.deployment = deployment
        self.container = container
        self.spec = spec
        self.gate = gate
        self.mode = mode
        self.deploy_image = deploy_image
        self.deploy_command = tuple(deploy_command)
        self.deploy_args = tuple(deploy_args)
        self.deploy_service_account_name = deploy_service_account_name
        self.kubernetes_conn_id = kubernetes_conn_id
        self.rollback = rollback
        self.rollout_timeout_seconds = rollout_timeout_seconds
        self.job_name_prefix = job_name_prefix
        self.poll_interval = check_poll_interval(poll_interval)
        self.deferrable = deferrable
        self.defer_after_seconds = defer_after

    @cached_property
    def hook(self) -> DeploymentHook:
        """Return the Deployment hook (imported here: DAG parsing must not pay for the cncf provider)."""
        from lyftlearn_provider.hooks.kubernetes import DeploymentHook

        return DeploymentHook(conn_id=self.kubernetes_conn_id)

    @property
    def where(self) -> str:
        """Return ``namespace/name`` of the Deployment."""
        return f"{self.namespace}/{self.deployment}"

    # ------------------------------------------------------------------ the lifecycle
    def execute(self, context: Context) -> dict[str, Any]:
        """Decide, write the Deployment (compare-and-swap), then wait for the rollout."""
        model = self.rendered_model(context)
        spec = dataclasses.replace(self.spec, image=model.image)
        refuse_masked_secrets(spec)
        record = ServingRecord.of(model, deployed_by=self._deployed_by(context))
        environment = self._environment(context, spec, model)
        DeploymentLink.persist(context, self.namespace, self.deployment)
        for _ in range(MAX_CONFLICTS):
            deployment = self._read()
            serving_container(deployment, self.container)
            self._check_service_account(deployment, spec)
            current = serving_record(deployment)
            verdict = decide(model, current, self.gate)
            self.log.info("Deployment %s: %s (%s).", self.where, verdict.decision.value, verdict.reason)
            if verdict.decision is Decision.SKIP:
                self._skip(context, model, current, verdict.reason)
            if verdict.decision is Decision.ALREADY_SERVING:
                return self._wait(context, model, None, deployment, status="already_serving")
            written = (
                self._run_deploy_pod(context, deployment, model, record, environment)
                if self.mode == "pod"
                else self._patch(deployment, spec, model, record, environment)
            )
            if written is not None:
                return self._wait(context, model, current, written, status="deployed")
        raise LyftLearnError(
            f"Deployment {self.where} changed {MAX_CONFLICTS} times while this task tried to update it: "
            "another deploy kept winning. Retry the task; it decides again on what then serves."
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Conclude on the rollout trigger's event; if the trigger could not watch, watch from here."""
        from lyftlearn_provider.rollouts import RolloutEvent, RolloutEventStatus

        state = self._state(context)
        try:
            fired = RolloutEvent.from_payload(event)
        except ValueError:
            fired = None
        if fired is None or fired.status is RolloutEventStatus.ERROR or fired.verdict is None:
            self.log.warning(
                "The rollout trigger could not watch %s (%s); watching from this worker.",
                self.where,
                fired.message if fired else event,
            )
            status, verdict = self._follow(state)
        else:
            status, verdict = fired.status.value, fired.verdict
        return self._conclude(context, state, status, verdict)

    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        """A deferral that timed out is a rollout that timed out: roll it back like any failed one."""
        if next_method == TRIGGER_FAILED and (next_kwargs or {}).get("error") == DEFERRAL_TIMEOUT:
            from lyftlearn_provider.rollouts import rollout_verdict

            state = self._state(context)
            verdict = rollout_verdict(self._read(), generation=state["generation"])
            return self._conclude(context, state, "timeout", verdict)
        return super().resume_execution(next_method, next_kwargs, context)

    # ------------------------------------------------------------------ steps
    def _read(self) -> dict[str, Any]:
        deployment = self.hook.read_deployment(self.namespace, self.deployment)
        if deployment is None:
            raise InvalidSpecError(
                "deployment",
                f"Deployment {self.where} does not exist",
                "Create the serving Deployment first (the model is put into an existing one), or correct "
                "namespace= and deployment=.",
            )
        return deployment

    def _check_service_account(self, deployment: dict[str, Any], spec: RuntimeSpec) -> None:
        """Fail before writing unless the serving pods' service account carries the spec's role (IRSA)."""
        from kubernetes.client.exceptions import ApiException

        from lyftlearn_provider.rendering.kubernetes import require_service_account_role

        name = deployment["spec"]["template"]["spec"].get("serviceAccountName") or "default"
        try:
            account = self.hook.core_v1_client.read_namespaced_service_account(name, self.namespace)
        except ApiException as error:
            if error.status != 404:
                raise
            account = {"metadata": {"name": name, "namespace": self.namespace}}
        require_service_account_role(
            spec, self.hook.core_v1_client.api_client.sanitize_for_serialization(account), "spec.role_arn"
        )

    def _environment(self, context: Context, spec: RuntimeSpec, model: Model) -> dict[str, str]:
        from lyftlearn_provider.rendering.kubernetes import render_container

        ti = context["ti"]
        name = self._name(context)
        run_environment = {
            "LYFTLEARN_DAG_ID": ti.dag_id,
            "LYFTLEARN_TASK_ID": ti.task_id,
            "LYFTLEARN_RUN_ID": ti.run_id,
        }
        if model.data_interval_start:
            run_environment["LYFTLEARN_DATA_INTERVAL_START"] = model.data_interval_start
        if model.data_interval_end:
            run_environment["LYFTLEARN_DATA_INTERVAL_END"] = model.data_interval_end
        container = render_container(
            spec,
            job_name=name,
            name=self.container,
            runtime="serving",
            run_environment=run_environment,
            model_uri=model.uri,
        )
        return {entry["name"]: entry["value"] for entry in container["env"]}

    def _name(self, context: Context) -> str:
        """Return the name this task gives what it starts (``LYFTLEARN_JOB_NAME``, the deploy pod)."""
        ti = context["ti"]
        return training_job_name(
            dag_id=ti.dag_id, task_id=ti.task_id, run_id=ti.run_id, prefix=self.job_name_prefix
        )

    def _deployed_by(self, context: Context) -> str:
        ti = context["ti"]
        return f"{ti.dag_id}/{ti.run_id}/{ti.task_id}"

    def _patch(
        self,
        deployment: dict[str, Any],
        spec: RuntimeSpec,
        model: Model,
        record: ServingRecord,
        environment: dict[str, str],
    ) -> dict[str, Any] | None:
        """Write the model into the Deployment; None when another writer got there first (re-decide)."""
        from lyftlearn_provider.hooks.kubernetes import DeploymentConflict

        body = serving_deployment(
            deployment,
            container=self.container,
            image=model.image,
            environment=environment,
            record=record,
            command=list(spec.command) or None,
            args=list(spec.args) or None,
        )
        try:
            written = self.hook.replace_deployment(body)
        except DeploymentConflict:
            self.log.info(
                "Deployment %s changed since it was read: reading it again and deciding again.", self.where
            )
            return None
        self.log.info(
            "Deployment %s now runs %s with model %s (generation %s).",
            self.where,
            model.image,
            model.uri,
            written["metadata"].get("generation"),
        )
        return written

    def _run_deploy_pod(
        self,
        context: Context,
        deployment: dict[str, Any],
        model: Model,
        record: ServingRecord,
        environment: dict[str, str],
    ) -> dict[str, Any] | None:
        """Run the team's deploy tooling as a pod, holding the Deployment against other deploys meanwhile."""
        from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
        from airflow.sdk.exceptions import AirflowException

        from lyftlearn_provider.hooks.kubernetes import DeploymentConflict
        from lyftlearn_provider.rendering.kubernetes import render_deploy_pod, xcom_sidecar_security_context

        lease = self._lease(deployment, context)
        if lease is None:
            return None
        ti = context["ti"]
        name = self._name(context)
        variables = {
            "LYFTLEARN_DEPLOY_NAMESPACE": self.namespace,
            "LYFTLEARN_DEPLOY_DEPLOYMENT": self.deployment,
            "LYFTLEARN_DEPLOY_CONTAINER": self.container,
            "LYFTLEARN_DEPLOY_IMAGE": model.image,
            "LYFTLEARN_DEPLOY_MODEL_URI": model.uri,
            "LYFTLEARN_DEPLOY_RECORD": json.dumps(record.to_annotations(), sort_keys=True),
            "LYFTLEARN_DEPLOY_ENVIRONMENT": json.dumps(environment, sort_keys=True),
        }
        manifest = render_deploy_pod(
            name=f"{name}-deploy-{run_fingerprint(ti.dag_id, ti.task_id, ti.run_id, ti.try_number or 1)[:6]}",
            namespace=self.namespace,
            image=str(self.deploy_image),
            service_account=self.deploy_service_account_name or DEFAULT_DEPLOY_SERVICE_ACCOUNT,
            environment=variables,
            command=self.deploy_command,
            args=self.deploy_args,
        )
        pod = KubernetesPodOperator(
            task_id=self.task_id,
            kubernetes_conn_id=self.kubernetes_conn_id,
            namespace=self.namespace,
            name=manifest["metadata"]["name"],
            random_name_suffix=False,
            pod_template_dict=manifest,
            get_logs=True,
            do_xcom_push=False,
            xcom_sidecar_container_security_context=xcom_sidecar_security_context(),
            on_finish_action="delete_succeeded_pod",
            on_kill_action="delete_pod",
            log_events_on_failure=True,
            poll_interval=self.poll_interval,
        )
        try:
            pod.execute(context)
        except AirflowException as error:
            self._release(lease)
            raise DeployError(f"The deploy pod for {self.where} failed: {error}") from error
        # Record the model and release the hold in one write; the tool's own change is the rollout.
        for _ in range(MAX_CONFLICTS):
            current = self._read()
            annotations = current["metadata"].setdefault("annotations", {})
            annotations.update(record.to_annotations())
            annotations.pop(LEASE_ANNOTATION, None)
            try:
                return self.hook.replace_deployment(current)
            except DeploymentConflict:
                continue
        raise LyftLearnError(
            f"Could not record the deployed model on Deployment {self.where}: it kept changing."
        )

    def _lease(self, deployment: dict[str, Any], context: Context) -> dict[str, Any] | None:
        """Take the Deployment's deploy lease (compare-and-swap); None: read it again and decide again."""
        from lyftlearn_provider.hooks.kubernetes import DeploymentConflict

        annotations = deployment["metadata"].setdefault("annotations", {})
        held = _lease_of(annotations.get(LEASE_ANNOTATION))
        holder = self._deployed_by(context)
        if held is not None and held["by"] != holder and held["until"] > time.time():
            self.log.info("Deployment %s is being deployed by %s: waiting for it.", self.where, held["by"])
            time.sleep(min(self.poll_interval, max(0.0, held["until"] - time.time())))
            return None
        annotations[LEASE_ANNOTATION] = json.dumps(
            {"by": holder, "until": time.time() + self._rollout_timeout()}, sort_keys=True
        )
        try:
            return self.hook.replace_deployment(deployment)
        except DeploymentConflict:
            return None

    def _release(self, leased: dict[str, Any]) -> None:
        from lyftlearn_provider.hooks.kubernetes import DeploymentConflict

        for _ in range(MAX_CONFLICTS):
            current = self._read()
            if (current["metadata"].get("annotations") or {}).pop(LEASE_ANNOTATION, None) is None:
                return
            try:
                self.hook.replace_deployment(current)
                return
            except DeploymentConflict:
                continue

    def _rollout_timeout(self) -> float:
        if self.rollout_timeout_seconds is not None:
            return float(self.rollout_timeout_seconds)
        if self.execution_timeout is not None:
            return self.execution_timeout.total_seconds()
        return float(DEFAULT_ROLLOUT_TIMEOUT_SECONDS)

    def _skip(self, context: Context, model: Model, current: ServingRecord | None, reason: str) -> None:
        self.log.warning("Not deploying model %s to %s: %s", model.uri, self.where, reason)
        skip_task(context, self._result("skipped", model, current, reason=reason), reason)

    def _wait(
        self,
        context: Context,
        model: Model,
        previous: ServingRecord | None,
        written: dict[str, Any],
        *,
        status: str,
    ) -> dict[str, Any]:
        """Conclude on the rollout: in this try when it ends soon enough, else after waiting for it.

        The first looks are taken here, by the rule and the reads the wait itself uses: a rollout that is
        over within ``defer_after_seconds`` (an already-serving model, a fast one, one that failed) costs
        no deferral -- no trip through the triggerer and the scheduler and no second task process.
        """
        state = {
            "status": status,
            "model": dataclasses.asdict(model),
            "previous": dataclasses.asdict(previous) if previous else None,
            "generation": written["metadata"].get("generation"),
            "started": time.time(),
            "deadline": time.time() + self._rollout_timeout(),
        }
        ended = self._look(state)
        if ended is None and self.deferrable:
            ended = self._watch(state, looked=True, until=time.monotonic() + self.defer_after_seconds)
        if ended is None and self.deferrable:
            context["ti"].xcom_push(key=STATE_XCOM_KEY, value=state)
            from lyftlearn_provider.triggers.rollout import RolloutTrigger

            self.defer(
                trigger=RolloutTrigger(
                    self.namespace,
                    self.deployment,
                    kubernetes_conn_id=self.kubernetes_conn_id,
                    poll_interval=self.poll_interval,
                    deadline=state["deadline"],
                    generation=state["generation"],
                ),
                method_name="execute_complete",
            )
        if ended is None:
            ended = self._follow(state, looked=True)
        return self._conclude(context, state, *ended)

    def _look(self, state: dict[str, Any]) -> tuple[str, RolloutVerdict] | None:
        """Look at the rollout once: how it ended (rolled out, failed, out of time); None while it goes on."""
        from lyftlearn_provider.rollouts import RolloutState, rollout_verdict

        verdict = rollout_verdict(self._read(), generation=state["generation"])
        if verdict.state is RolloutState.ROLLED_OUT:
            return "rolled_out", verdict
        if verdict.state is RolloutState.FAILED:
            return "failed", verdict
        if time.time() >= state["deadline"]:
            return "timeout", verdict
        return None

    def _follow(self, state: dict[str, Any], *, looked: bool = False) -> tuple[str, RolloutVerdict]:
        """Follow the rollout from the worker until it is rolled out, fails, or its deadline passes."""
        ended = self._watch(state, looked=looked)
        assert ended is not None  # no `until`: it ends only with the rollout
        return ended

    def _watch(
        self, state: dict[str, Any], *, looked: bool = False, until: float | None = None
    ) -> tuple[str, RolloutVerdict] | None:
        """Look at the rollout until it ends (and return how), or until ``until`` (``time.monotonic()``).

        :param looked: the rollout was just looked at and goes on: pause before the next look.
        :param until: give up then (None while it goes on); the pauses start at ``FIRST_PAUSE_SECONDS``
            and double up to ``poll_interval``. Without it, every pause is ``poll_interval``.
        """
        pause = FIRST_PAUSE_SECONDS if until is not None else self.poll_interval
        while True:
            if looked:
                left = state["deadline"] - time.time()  # past it, the next look says "timeout"
                if until is not None:
                    if until - time.monotonic() <= 0:
                        return None
                    left = min(left, until - time.monotonic())
                time.sleep(min(pause, max(0.0, left)))
                pause = min(pause * 2, self.poll_interval)
            ended = self._look(state)
            if ended is not None:
                return ended
            looked = True

    def _conclude(
        self, context: Context, state: dict[str, Any], status: str, verdict: RolloutVerdict
    ) -> dict[str, Any]:
        from lyftlearn_provider.rollouts import describe_failure

        model = Model(**state["model"])
        previous = ServingRecord(**state["previous"]) if state.get("previous") else None
        if status == "rolled_out":
            self.log.info("Deployment %s rolled out model %s: %s.", self.where, model.uri, verdict.summary)
            return self._result(
                state["status"], model, previous, rollout=verdict.summary, started=state["started"]
            )
        # Read the failing pods' events before rolling back: they belong to the current template.
        events = self.hook.failing_pod_events(self.namespace, self._read())
        message = describe_failure(
            self.namespace, self.deployment, verdict, events, time.time() - state["started"]
        )
        if self.rollback:
            message += " " + self._roll_back(state["generation"])
        raise DeployError(message)

    def _roll_back(self, generation: int | None) -> str:
        """Undo the rollout (the previous revision), wait for that one too, and say what serves now."""
        from lyftlearn_provider.hooks.kubernetes import DeploymentConflict

        try:
            restored = self.hook.roll_back(self.namespace, self.deployment, expected_generation=generation)
        except DeploymentConflict as error:
            return f"Not rolled back: {error} (someone changed the Deployment since this task wrote it)."
        if restored is None:
            return "There is no previous revision to roll back to; fix the model or the Deployment."
        state = {
            "generation": restored["metadata"].get("generation"),
            "deadline": time.time() + self._rollout_timeout(),
        }
        status, verdict = self._follow(state)
        serving = serving_record(self._read())
        what = f"model {serving.model_uri} ({serving.image})" if serving else "the previous revision"
        if status == "rolled_out":
            return f"Rolled back: {what} serves again ({verdict.summary})."
        return (
            f"Rolled back to {what}, but that rollout has not completed either ({verdict.summary}); look "
            "at the Deployment."
        )

    def _state(self, context: Context) -> dict[str, Any]:
        ti = context["ti"]
        state = ti.xcom_pull(task_ids=ti.task_id, key=STATE_XCOM_KEY, map_indexes=ti.map_index)
        if not isinstance(state, dict):
            raise LyftLearnError(f"The deploy task resumed without its state (XCom {STATE_XCOM_KEY!r}).")
        return state

    def _result(
        self,
        status: str,
        model: Model,
        previous: ServingRecord | None,
        *,
        reason: str | None = None,
        rollout: str | None = None,
        started: float | None = None,
    ) -> dict[str, Any]:
        return {
            "status": status,
            "reason": reason,
            "namespace": self.namespace,
            "deployment": self.deployment,
            "container": self.container,
            "model_uri": model.uri,
            "image": model.image,
            "training_job": model.training_job,
            "data_interval": {"start": model.data_interval_start, "end": model.data_interval_end},
            "previous": (
                {
                    "model_uri": previous.model_uri,
                    "image": previous.image,
                    "data_interval_end": previous.data_interval_end,
                }
                if previous
                else None
            ),
            "rollout": rollout,
            "rollout_seconds": round(time.time() - started, 3) if started else None,
        }


#: The Deployment annotation a pod-mode deploy holds while its tooling runs.
LEASE_ANNOTATION = "lyftlearn.io/deploy-lease"


def _lease_of(value: Any) -> dict[str, Any] | None:
    try:
        lease = json.loads(value) if isinstance(value, str) else None
    except ValueError:
        return None
    if (
        isinstance(lease, dict)
        and isinstance(lease.get("by"), str)
        and isinstance(lease.get("until"), (int, float))
    ):
        return lease
    return None
