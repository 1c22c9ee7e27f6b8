"""Validate a trained model in a pod that runs, exactly, the image that trained it."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from airflow.sdk.configuration import conf

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.images import SociPolicy
from lyftlearn_provider.naming import DEFAULT_PREFIX
from lyftlearn_provider.operators import pods
from lyftlearn_provider.operators.jobs import JobOperator
from lyftlearn_provider.serving import Model, check_pinned
from lyftlearn_provider.status import FailedJobPolicy
from lyftlearn_provider.validation import check_s3_uri, is_templated

if TYPE_CHECKING:
    from airflow.sdk import Asset, Context

    from lyftlearn_provider.backends.base import JobBackend, JobRun
    from lyftlearn_provider.results import JobResult, ValidationResult
    from lyftlearn_provider.runtime import RuntimeSpec


def check_model_sources(training_result: Any, image: Any, model_uri: Any, model_asset: Any) -> None:
    """Raise unless exactly one source of the model is given; check what is not templated."""
    explicit = image is not None or model_uri is not None
    given = [
        name for name, value in (("training_result", training_result), ("model_asset", model_asset)) if value
    ]
    if explicit:
        given.append("image/model_uri")
    if len(given) != 1:
        raise InvalidSpecError(
            "training_result",
            "no model was given" if not given else f"the model is given more than once ({', '.join(given)})",
            "Pass one of: training_result=<the training task's output>, model_asset=<the model's Asset>, "
            "or image= (pinned by digest) with model_uri=.",
        )
    if explicit:
        if image is None or model_uri is None:
            raise InvalidSpecError(
                "image" if image is None else "model_uri",
                "is missing: image and model_uri go together",
                "Pass both, or training_result= instead.",
            )
        if not is_templated(image):
            check_pinned(image, "image")
        if not is_templated(model_uri):
            check_s3_uri(model_uri, "model_uri")


def resolve_model(
    context: Context, *, training_result: Any, image: Any, model_uri: Any, model_asset: Asset | None
) -> Model:
    """Return the model to validate or deploy, from whichever source the task was given (rendered)."""
    if image is not None:
        return Model(image=image, uri=model_uri)
    if training_result is not None:
        return Model.from_training_result(training_result)
    events = list(context["triggering_asset_events"][model_asset]) if model_asset is not None else []
    if not events:
        raise InvalidSpecError(
            "model_asset",
            f"this run was not triggered by an event of {model_asset!r}",
            "Schedule the DAG on the model's asset (schedule=[model_asset]), or pass training_result=.",
        )
    return Model.from_training_result(events[-1].extra, field="model_asset")


class TakesModel:
    """A task that takes a trained model: from a training result, an asset event, or image and model URI.

    The sources stay attributes of the operator (``training_result``, ``image`` and ``model_uri`` are
    templated); :meth:`take_model` checks them when the DAG is parsed, :meth:`rendered_model` reads the
    model once they are rendered.
    """

    training_result: Any
    image: Any
    model_uri: Any
    model_asset: Asset | None

    def take_model(self, training_result: Any, image: Any, model_uri: Any, model_asset: Asset | None) -> None:
        """Check that exactly one source is given (what is not templated, fully) and keep them."""
        check_model_sources(training_result, image, model_uri, model_asset)
        self.training_result = training_result
        self.image = image
        self.model_uri = model_uri
        self.model_asset = model_asset

    def rendered_model(self, context: Context) -> Model:
        """Return the model, from whichever source the task was given (rendered)."""
        return resolve_model(
            context,
            training_result=self.training_result,
            image=self.image,
            model_uri=self.model_uri,
            model_asset=self.model_asset,
        )


class ValidateModelOperator(TakesModel, pods.RunsPods, JobOperator):
    """
    Validate a trained model in a pod running the pinned image that trained it; return the program's report.

    The pod runs ``spec`` (its validation entrypoint: ``command``/``args``; its image is replaced by the
    training result's pinned image, so what validates is exactly what trained, even if the tag moved)
    through the cncf provider's KubernetesPodOperator machinery, composed at execute time. The program
    sees the training contract with ``LYFTLEARN_RUNTIME=validation`` and ``LYFTLEARN_MODEL_URI``, loads
    the model, checks it, and writes a JSON report (smoke metrics, latency, …) to
    ``/airflow/xcom/return.json``; the task returns it in ``output`` with where and how it ran. A
    non-zero exit fails the task. Deferrable; a retry adopts the running pod (the same lifecycle as
    training pods: ``<name>``, ``<name>-a2`` …); kill, timeouts and mark-failed delete it; the pod runs
    restricted unless the spec opts out.

    :param spec: what the pod runs (templated); its image is taken from the model.
    :param training_result: the training task's result, e.g. ``train.output`` (templated).
    :param image: the pinned image to run, ``registry/repo@sha256:…``, with ``model_uri`` (templated).
    :param model_uri: the model to validate, ``s3://…`` (templated).
    :param model_asset: take the model from the asset event that triggered this run (a DAG scheduled on
        the model's asset, which ``TrainModelOperator(model_asset=…)`` emits).
    :param kubernetes_conn_id: the Airflow connection to the cluster.
    :param namespace: the pod's namespace.
    :param service_account_name: the pod's service account, annotated with the spec's IAM role.
    :param startup_timeout_seconds: how long the pod may take to start.
    :param input_loader_image: an AWS CLI image that copies the spec's ``inputs`` into the pod.
    :param aws_conn_id: the Airflow connection to AWS (the image's digest is confirmed in ECR).
    :param region_name: AWS region; the connection's when None.
    :param verify: TLS verification for AWS clients.
    :param botocore_config: extra botocore client configuration.
    :param job_name_prefix: first part of the pod's name.
    :param max_runtime_seconds: the pod's ``activeDeadlineSeconds``; default the task's ``execution_timeout``.
    :param if_job_failed: ``"new_attempt"`` (default) or ``"fail"``: what a retry does after a failed pod.
    :param poll_interval: seconds between two looks at the pod.
    :param deferrable: wait in the triggerer instead of occupying a worker slot.
    """

    template_fields: Sequence[str] = ("spec", "training_result", "image", "model_uri")
    template_fields_renderers = {"training_result": "json", "spec": "json"}
    ui_color = "#d9f2d9"
    job_noun = "validation pod"
    namespace_example = "ml-serving"
    service_account_example = "fraud-serving"

    def __init__(
        self,
        *,
        spec: RuntimeSpec,
        training_result: Any = None,
        image: str | None = None,
        model_uri: str | None = None,
        model_asset: Asset | None = None,
        kubernetes_conn_id: str = pods.DEFAULT_KUBERNETES_CONN_ID,
        namespace: str = pods.DEFAULT_NAMESPACE,
        service_account_name: str = pods.DEFAULT_SERVICE_ACCOUNT_NAME,
        startup_timeout_seconds: int = pods.DEFAULT_STARTUP_TIMEOUT_SECONDS,
        input_loader_image: str | None = None,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        job_name_prefix: str = DEFAULT_PREFIX,
        max_runtime_seconds: int | None = None,
        if_job_failed: FailedJobPolicy | str = FailedJobPolicy.NEW_ATTEMPT,
        poll_interval: float = conf.getfloat("lyftlearn", "poll_interval", fallback=30.0),
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(
            spec=spec,
            backend="kubernetes",
            job_name_prefix=job_name_prefix,
            poll_interval=poll_interval,
            # The image is the one that trained: its digest is confirmed; its SOCI index is no concern here.
            soci=SociPolicy.OFF,
            if_job_failed=if_job_failed,
            max_runtime_seconds=max_runtime_seconds,
            deferrable=deferrable,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
            given={},
            **kwargs,
        )
        self.take_model(training_result, image, model_uri, model_asset)
        self.take_pod_arguments(
            kubernetes_conn_id=kubernetes_conn_id,
            namespace=namespace,
            service_account_name=service_account_name,
            startup_timeout_seconds=startup_timeout_seconds,
            input_loader_image=input_loader_image,
            check_names=True,
        )
        self._model: Model | None = None

    def settle_inputs(self, context: Context) -> None:
        """Take the model from its source; the pod runs its pinned image."""
        self._model = self.rendered_model(context)
        self.spec = dataclasses.replace(self.spec, image=self._model.image)
        self.log.info("Validating model %s with image %s.", self._model.uri, self._model.image)

    def make_backend(self) -> JobBackend:
        """Return the pod backend, running the program as ``LYFTLEARN_RUNTIME=validation``."""
        from lyftlearn_provider.backends.kubernetes import PodValidationBackend

        model = self._model
        return PodValidationBackend(
            self,
            self.job_settings(),
            **self.pod_arguments(),
            model_uri=model.uri if model else None,
            training_job=model.training_job if model else None,
        )

    def report(self, run: JobRun, result: JobResult) -> None:
        """Log what the validation program reported."""
        validation = cast("ValidationResult", result)
        self.log.info(
            "Validation pod %s passed for model %s in %ss; it reported: %s",
            validation.job_name,
            validation.model_uri,
            validation.run_seconds,
            validation.output,
        )
