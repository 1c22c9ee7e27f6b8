"""Run a batch job (score a dataset, rebuild a feature table) on SageMaker Processing, or as a pod.

One job per run, adopted on retry, never left running: the lifecycle of training jobs, for batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.job_kinds import PROCESSING
from lyftlearn_provider.links.sagemaker import links_of
from lyftlearn_provider.naming import DEFAULT_PREFIX
from lyftlearn_provider.operators.platform import PlatformJobOperator
from lyftlearn_provider.rendering.sagemaker import check_outputs, render_processing_job
from lyftlearn_provider.runtime import RuntimeSpec
from lyftlearn_provider.serving import Model
from lyftlearn_provider.validation import check_s3_uri, is_templated

if TYPE_CHECKING:
    from airflow.sdk import Context

    from lyftlearn_provider.backends.base import JobBackend, JobRun, JobSettings
    from lyftlearn_provider.contract import BatchData
    from lyftlearn_provider.results import BatchResult, JobResult


def _is_templated_value(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(is_templated(k) or _is_templated_value(v) for k, v in value.items())
    return is_templated(value)


class RunBatchJobOperator(PlatformJobOperator):
    """
    Run a ``RuntimeSpec`` as a batch job: a SageMaker Processing job (or, ``backend="kubernetes"``, a pod).

    The lifecycle is training's (``TrainModelOperator``): the job name is derived from the task instance,
    so a retry, a clear or a dead worker finds the run's job instead of starting a second one; a running
    job is followed, a completed one reused, a failed or stopped one replaced by ``<name>-a2`` … or the
    task failed (``if_job_failed``); kill, timeouts, mark-failed and a deferral timeout stop it; the
    image is pinned by digest once per run under the SOCI policy; ``tracking`` is ``poll``, ``shared``
    or ``events`` (the shared watcher and the SQS consumer serve training and batch jobs in one process).

    The spec's ``inputs`` (name to ``s3://`` prefix) are downloaded to ``/opt/ml/processing/input/<name>``
    and each of ``outputs`` uploaded from ``/opt/ml/processing/output/<name>`` when the job ends; the
    program finds those paths in ``LYFTLEARN_INPUTS`` / ``LYFTLEARN_OUTPUTS`` (and the S3 prefixes in
    ``LYFTLEARN_OUTPUT_URIS``), sees ``LYFTLEARN_RUNTIME=batch`` and, when a model is given, its URI in
    ``LYFTLEARN_MODEL_URI``. ``command``/``args`` become the container's entrypoint and arguments; the
    environment and config travel as training's do, spilling past Processing's limits (100 entries,
    values of 256 characters). Processing has no hyperparameters: put such values in ``config``.

    The result (:class:`~lyftlearn_provider.results.BatchResult`, also the XCom return value): job name
    and ARN, status, outputs' S3 URIs, the model, the pinned image, start-up and run seconds, billable
    seconds and the run's data interval.

    :param spec: what to run (templated).
    :param outputs: output name to the ``s3://`` prefix it is written to, e.g.
        ``{"predictions": "s3://bucket/predictions/{{ ds }}"}`` (templated).
    :param training_result: score with the model this run trained: the training task's result, e.g.
        ``train.output`` (templated). The job runs the *pinned image that trained* (so the code that
        reads the model is the code that wrote it) and loads its ``model_artifact_uri``.
    :param model_uri: the model to load, ``s3://…``, when it does not come from ``training_result``
        (the spec's image runs) (templated).
    :param network_config: *SageMaker*: the job's ``NetworkConfig`` as SageMaker spells it, e.g.
        ``{"VpcConfig": {"SecurityGroupIds": [...], "Subnets": [...]}}``.
    :param kwargs: ``TrainModelOperator``'s arguments (but ``keep_alive_seconds`` and ``model_asset``),
        with the same meaning: ``backend`` (``"kubernetes"`` runs a pod, whose program writes its outputs
        to ``LYFTLEARN_OUTPUT_URIS`` itself), AWS and Kubernetes settings, ``job_name_prefix``,
        ``max_runtime_seconds``, ``if_job_failed``, ``poll_interval``, ``deferrable``, ``soci``,
        ``tags``, ``tracking``, ``events_queue_url``, and ``BaseOperator``'s.
    """

    template_fields: Sequence[str] = (
        "spec",
        "tags",
        "events_queue_url",
        "outputs",
        "training_result",
        "model_uri",
    )
    template_fields_renderers = {"tags": "json", "spec": "json", "outputs": "json", "training_result": "json"}
    operator_extra_links = tuple(link() for link in links_of(PROCESSING))
    ui_color = "#d9e8ff"
    job_noun = "batch job"
    pod_runtime = "batch"
    tracked_jobs = "batch jobs"

    def __init__(
        self,
        *,
        spec: RuntimeSpec,
        outputs: Mapping[str, str] | None = None,
        training_result: Any = None,
        model_uri: str | None = None,
        network_config: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(spec=spec, given={"network_config": network_config}, **kwargs)
        if training_result is not None and model_uri is not None:
            raise InvalidSpecError(
                "model_uri",
                "the model is given twice (training_result and model_uri)",
                "Pass training_result=<the training task's output> to score with what this run trained, "
                "or model_uri= (with the spec's image) for another model, not both.",
            )
        if model_uri is not None and not is_templated(model_uri):
            check_s3_uri(model_uri, "model_uri")
        if network_config is not None and not isinstance(network_config, Mapping):
            raise InvalidSpecError(
                "network_config",
                f"expected a mapping, got {type(network_config).__name__}",
                "Pass SageMaker's NetworkConfig, e.g. {'VpcConfig': {'SecurityGroupIds': [...], "
                "'Subnets': [...]}}.",
            )
        # A string is a template (e.g. an upstream task's XCom) that renders to the mapping.
        self.outputs: Any = dict(outputs) if isinstance(outputs, Mapping) else outputs or {}
        self.training_result = training_result
        self.model_uri = model_uri
        self.network_config = dict(network_config) if network_config else None
        self._model: Model | None = None
        templated = _is_templated_value(self.outputs) or is_templated(model_uri)
        if not templated:
            check_outputs(self.outputs)
        # What does not depend on templates (or on the run's model) is checked now, when the DAG is parsed.
        self.check_at_parse_time(templated=templated)

    # ------------------------------------------------------------------ the run's inputs
    def settle_inputs(self, context: Context) -> None:
        """Take the model (and its pinned image) from the training result, when one is given."""
        if self.training_result is not None:
            self._model = Model.from_training_result(self.training_result)
            self.spec = dataclasses.replace(self.spec, image=self._model.image)
            self.log.info(
                "Scoring with model %s, trained by %s, on its image %s.",
                self._model.uri,
                self._model.training_job,
                self._model.image,
            )

    def _model_uri(self) -> str | None:
        return self._model.uri if self._model is not None else self.model_uri

    def _pod_data(self) -> BatchData:
        from lyftlearn_provider.contract import INPUT_DATA_DIR, BatchData

        return BatchData(
            input_paths={name: f"{INPUT_DATA_DIR}/{name}" for name in sorted(self.spec.inputs)},
            output_paths={},
            output_uris=dict(sorted(check_outputs(self.outputs).items())),
        )

    # ------------------------------------------------------------------ what the platform asks of a kind
    def render_sagemaker(self, spec: RuntimeSpec) -> None:
        """Render ``spec`` as a CreateProcessingJob request, raising what breaks a limit."""
        render_processing_job(
            spec,
            job_name=DEFAULT_PREFIX,
            max_runtime_seconds=self._max_runtime_seconds(),
            outputs=self.outputs,
            model_uri=self._model_uri(),
            tags=self.tags,
            network_config=self.network_config,
        )

    def pod_rendering_arguments(self) -> dict[str, Any]:
        """Return the pod's model and data."""
        return {"model_uri": self._model_uri(), "data": self._pod_data()}

    def sagemaker_backend(self, settings: JobSettings, **common: Any) -> JobBackend:
        """Return the SageMaker Processing backend."""
        from lyftlearn_provider.backends.sagemaker import SageMakerBatchBackend

        return SageMakerBatchBackend(
            self,
            settings,
            outputs=check_outputs(self.outputs),
            model_uri=self._model_uri(),
            network_config=self.network_config,
            **common,
        )

    def pod_backend(self, settings: JobSettings, **common: Any) -> JobBackend:
        """Return the pod batch backend."""
        from lyftlearn_provider.backends.kubernetes import PodBatchBackend

        return PodBatchBackend(self, settings, model_uri=self._model_uri(), data=self._pod_data(), **common)

    def report(self, run: JobRun, result: JobResult) -> None:
        """Log where the outputs are, the image and how long the job took."""
        batch = cast("BatchResult", result)
        self.log.info(
            "%s %s completed; start-up %.1fs, ran %ss, billable %ss.",
            self._backend.job_error.kind,
            batch.job_name,
            batch.startup_total_seconds,
            batch.run_seconds,
            batch.billable_seconds,
        )
        self.log.info("Image %s; model %s; outputs %s.", batch.image, batch.model_uri, dict(batch.outputs))
