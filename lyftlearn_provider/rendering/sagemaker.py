"""Render a RuntimeSpec to SageMaker requests: pure, standard library only.

Environment entries and hyperparameters beyond SageMaker's limits move to the spill document
(:mod:`lyftlearn_provider.spill`); every other limit is checked here, before anything is sent, and
raises :class:`~lyftlearn_provider.exceptions.InvalidSpecError` naming the field and the fix.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from lyftlearn_provider.contract import BatchData, Runtime, container_environment, hyperparameter_values
from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.limits import (
    MAX_ENVIRONMENT_ENTRIES,
    MAX_ENVIRONMENT_VALUE_LENGTH,
    MAX_HYPERPARAMETER_VALUE_LENGTH,
    MAX_HYPERPARAMETERS,
    MAX_KEEP_ALIVE_SECONDS,
    MAX_PROCESSING_ENVIRONMENT_ENTRIES,
    MAX_PROCESSING_ENVIRONMENT_VALUE_LENGTH,
    MAX_PROCESSING_INPUTS,
    MAX_PROCESSING_INSTANCE_COUNT,
    MAX_PROCESSING_OUTPUTS,
    MAX_PROCESSING_RUNTIME_SECONDS,
    MAX_PROCESSING_VOLUME_SIZE_GB,
    MAX_RUNTIME_SECONDS,
    MIN_RUNTIME_SECONDS,
)
from lyftlearn_provider.naming import validate_job_name
from lyftlearn_provider.rendering.instance_types import TRAINING_INSTANCE_TYPES
from lyftlearn_provider.runtime import RuntimeSpec, require_rendered
from lyftlearn_provider.spill import EntryLimits, spill_payload_for, split_for_spill
from lyftlearn_provider.tags import validated_tags
from lyftlearn_provider.validation import EMPTY, check_s3_uri, require_int

SAGEMAKER_ENVIRONMENT_LIMITS = EntryLimits(
    max_entry_size=MAX_ENVIRONMENT_VALUE_LENGTH, max_entries=MAX_ENVIRONMENT_ENTRIES
)
SAGEMAKER_HYPERPARAMETER_LIMITS = EntryLimits(
    max_entry_size=MAX_HYPERPARAMETER_VALUE_LENGTH, max_entries=MAX_HYPERPARAMETERS
)
PROCESSING_ENVIRONMENT_LIMITS = EntryLimits(
    max_entry_size=MAX_PROCESSING_ENVIRONMENT_VALUE_LENGTH, max_entries=MAX_PROCESSING_ENVIRONMENT_ENTRIES
)


@dataclasses.dataclass(frozen=True)
class JobRendering:
    """Hold a Create…Job request (training or processing) and what must be uploaded before it is sent.

    :param request: keyword arguments for ``CreateTrainingJob`` / ``CreateProcessingJob``.
    :param spill_uri: where to upload :attr:`spill_document`, or None when nothing spilled.
    :param spill_document: ``{"environment": {...}, "hyperparameters": {...}}`` of the entries that did
        not fit in the request, or None.
    """

    request: dict[str, Any]
    spill_uri: str | None = None
    spill_document: dict[str, dict[str, str]] | None = None

    def spill_payload(self) -> bytes | None:
        """Return the spill document as canonical JSON bytes (identical for identical input), or None."""
        return spill_payload_for(self.spill_document)


#: The name training code has always used.
TrainingJobRendering = JobRendering


@functools.lru_cache(maxsize=2)
def _botocore_instance_types(shape: str = "TrainingInstanceType") -> frozenset[str]:
    # Only for a type our list lacks: a newer botocore may know it. Imported here, never at parse time.
    try:
        from botocore.loaders import Loader

        shapes = Loader().load_service_model("sagemaker", "service-2")["shapes"]
        return frozenset(shapes[shape]["enum"])
    except Exception:
        return frozenset()


def check_keep_alive(keep_alive_seconds: int | None) -> None:
    """Raise unless ``keep_alive_seconds`` is a warm pool's keep-alive period SageMaker takes (or None)."""
    if keep_alive_seconds is not None:
        require_int(
            keep_alive_seconds,
            "keep_alive_seconds",
            0,
            MAX_KEEP_ALIVE_SECONDS,
            f"Use 0..{MAX_KEEP_ALIVE_SECONDS} seconds, or None for no warm pool.",
        )


def check_training_instance_type(
    instance_type: str, field: str = "resources.instance_type", *, shape: str = "TrainingInstanceType"
) -> None:
    """Raise unless SageMaker runs ``instance_type`` for this job kind (its model's ``shape`` lists it)."""
    if instance_type in TRAINING_INSTANCE_TYPES or instance_type in _botocore_instance_types(shape):
        return
    import difflib

    close = difflib.get_close_matches(instance_type, sorted(TRAINING_INSTANCE_TYPES), n=3, cutoff=0.75)
    kind = "processing" if shape == "ProcessingInstanceType" else "training"
    raise InvalidSpecError(
        field,
        f"SageMaker has no {kind} instance type {instance_type!r}",
        (f"Did you mean {' or '.join(repr(name) for name in close)}? " if close else "")
        + "See the instance types in the SageMaker pricing page, e.g. 'ml.m5.xlarge' or 'ml.g5.2xlarge'.",
    )


def _check_common(
    spec: RuntimeSpec, job_name: str, max_runtime_seconds: int, longest: int, longest_text: str
) -> None:
    """Check what every SageMaker job request needs: its name, a rendered spec and its time limit."""
    validate_job_name(job_name)
    require_rendered(spec)
    require_int(
        max_runtime_seconds,
        "max_runtime_seconds",
        MIN_RUNTIME_SECONDS,
        longest,
        f"Use 1 second to {longest_text}; set the task's execution_timeout accordingly.",
    )


def render_training_job(
    spec: RuntimeSpec,
    *,
    job_name: str,
    max_runtime_seconds: int,
    keep_alive_seconds: int | None = None,
    tags: Mapping[str, str] = EMPTY,
    run_environment: Mapping[str, str] = EMPTY,
) -> TrainingJobRendering:
    """Render a rendered (template-free) spec to SageMaker ``CreateTrainingJob`` keyword arguments.

    Environment entries and hyperparameters beyond SageMaker's limits are moved to the spill
    document (see the module docstring); everything else that breaks a limit raises
    ``InvalidSpecError``.

    :param spec: the runtime spec, already rendered.
    :param job_name: the training job name, valid for SageMaker.
    :param max_runtime_seconds: ``StoppingCondition.MaxRuntimeInSeconds``, 1 s to 28 days.
    :param keep_alive_seconds: warm pool ``KeepAlivePeriodInSeconds`` (0..21600), None for no warm pool.
    :param tags: tags for the job, at most 50.
    :param run_environment: ``LYFTLEARN_*`` variables from the operator.
    """
    _check_common(spec, job_name, max_runtime_seconds, MAX_RUNTIME_SECONDS, "28 days")
    check_training_instance_type(spec.resources.instance_type)
    check_keep_alive(keep_alive_seconds)
    tag_list = validated_tags(tags)
    environment = container_environment(
        spec, runtime=Runtime.SAGEMAKER, job_name=job_name, run_environment=run_environment
    )
    split = split_for_spill(
        spec,
        job_name=job_name,
        environment=environment,
        hyperparameters=hyperparameter_values(spec),
        environment_limits=SAGEMAKER_ENVIRONMENT_LIMITS,
        hyperparameter_limits=SAGEMAKER_HYPERPARAMETER_LIMITS,
    )

    algorithm: dict[str, Any] = {"TrainingImage": spec.image, "TrainingInputMode": "File"}
    if spec.command:
        algorithm["ContainerEntrypoint"] = list(spec.command)
    if spec.args:
        algorithm["ContainerArguments"] = list(spec.args)
    resource_config: dict[str, Any] = {
        "InstanceType": spec.resources.instance_type,
        "InstanceCount": spec.resources.instance_count,
        "VolumeSizeInGB": spec.resources.volume_size_gb,
    }
    if keep_alive_seconds is not None:
        resource_config["KeepAlivePeriodInSeconds"] = keep_alive_seconds
    request: dict[str, Any] = {
        "TrainingJobName": job_name,
        "RoleArn": spec.role_arn,
        "AlgorithmSpecification": algorithm,
        "Environment": split.environment,
        "OutputDataConfig": {"S3OutputPath": spec.output_s3_uri},
        "ResourceConfig": resource_config,
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
    }
    if split.hyperparameters:
        request["HyperParameters"] = split.hyperparameters
    if spec.inputs:
        request["InputDataConfig"] = [
            {
                "ChannelName": channel,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for channel, uri in sorted(spec.inputs.items())
        ]
    if tag_list:
        request["Tags"] = tag_list
    return JobRendering(request=request, spill_uri=split.spill_uri, spill_document=split.spill_document)


def check_outputs(outputs: Any, field: str = "outputs") -> dict[str, str]:
    """Return a batch job's outputs (name to ``s3://`` prefix) when Processing takes them; raise otherwise."""
    if not isinstance(outputs, Mapping):
        raise InvalidSpecError(
            field,
            f"expected a mapping of name to s3:// prefix, got {type(outputs).__name__}",
            "Pass e.g. outputs={'predictions': 's3://bucket/predictions/{{ ds }}'}.",
        )
    if len(outputs) > MAX_PROCESSING_OUTPUTS:
        raise InvalidSpecError(
            field,
            f"has {len(outputs)} outputs; a Processing job takes at most {MAX_PROCESSING_OUTPUTS}",
            "Write several results under one prefix.",
        )
    checked: dict[str, str] = {}
    for name, uri in outputs.items():
        _check_data_name(name, f"{field}[{name!r}]")
        check_s3_uri(uri, f"{field}[{name!r}]")
        checked[name] = uri
    return checked


def _check_data_name(name: object, field: str) -> None:
    import re

    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}", name):
        raise InvalidSpecError(
            field,
            f"{name!r} is not a name Processing takes for an input or output (and a folder name)",
            "Use 1-64 letters, digits, '_', '.' or '-', starting with a letter, digit or '_'.",
        )


def render_processing_job(
    spec: RuntimeSpec,
    *,
    job_name: str,
    max_runtime_seconds: int,
    outputs: Mapping[str, str] = EMPTY,
    model_uri: str | None = None,
    tags: Mapping[str, str] = EMPTY,
    run_environment: Mapping[str, str] = EMPTY,
    network_config: Mapping[str, Any] | None = None,
) -> JobRendering:
    """Render a rendered spec to SageMaker ``CreateProcessingJob`` keyword arguments: a batch job.

    Inputs (``spec.inputs``) and ``outputs`` become ProcessingInputs/Outputs under
    ``/opt/ml/processing/input/<name>`` and ``/opt/ml/processing/output/<name>``, their paths in the
    contract (``LYFTLEARN_INPUTS``/``LYFTLEARN_OUTPUTS``); the program sees ``LYFTLEARN_RUNTIME=batch`` and
    ``LYFTLEARN_MODEL_URI``. Environment entries beyond Processing's limits (100 entries, values of 256
    characters) spill as training's do. Processing has no hyperparameters: a spec with some is refused.

    :param spec: the runtime spec, already rendered.
    :param job_name: the processing job name, valid for SageMaker.
    :param max_runtime_seconds: ``StoppingCondition.MaxRuntimeInSeconds``, 1 s to 9 days.
    :param outputs: output name to the ``s3://`` prefix it is uploaded to when the job ends.
    :param model_uri: the model the program loads (``s3://...``), if any.
    :param tags: tags for the job, at most 50.
    :param run_environment: ``LYFTLEARN_*`` variables from the operator.
    :param network_config: ``NetworkConfig`` as SageMaker spells it (VPC, isolation), if any.
    """
    _check_common(spec, job_name, max_runtime_seconds, MAX_PROCESSING_RUNTIME_SECONDS, "9 days")
    check_training_instance_type(spec.resources.instance_type, shape="ProcessingInstanceType")
    if spec.hyperparameters:
        raise InvalidSpecError(
            "spec.hyperparameters",
            "a batch (Processing) job has no hyperparameters",
            "Pass the values in spec.config (LYFTLEARN_CONFIG) or spec.environment instead.",
        )
    if len(spec.inputs) > MAX_PROCESSING_INPUTS:
        raise InvalidSpecError(
            "spec.inputs",
            f"has {len(spec.inputs)} inputs; a Processing job takes at most {MAX_PROCESSING_INPUTS}",
            "Read several datasets under one prefix.",
        )
    for name in spec.inputs:
        _check_data_name(name, f"spec.inputs[{name!r}]")
    outputs = check_outputs(outputs)
    resources = spec.resources
    require_int(
        resources.instance_count,
        "resources.instance_count",
        1,
        MAX_PROCESSING_INSTANCE_COUNT,
        f"Use 1..{MAX_PROCESSING_INSTANCE_COUNT} instances.",
    )
    require_int(
        resources.volume_size_gb,
        "resources.volume_size_gb",
        1,
        MAX_PROCESSING_VOLUME_SIZE_GB,
        f"Use 1..{MAX_PROCESSING_VOLUME_SIZE_GB} GB.",
    )
    tag_list = validated_tags(tags)
    data = BatchData.for_processing(spec.inputs, outputs)
    environment = container_environment(
        spec,
        runtime=Runtime.BATCH,
        job_name=job_name,
        run_environment=run_environment,
        model_uri=model_uri,
        data=data,
    )
    split = split_for_spill(
        spec,
        job_name=job_name,
        environment=environment,
        hyperparameters={},
        environment_limits=PROCESSING_ENVIRONMENT_LIMITS,
        hyperparameter_limits=SAGEMAKER_HYPERPARAMETER_LIMITS,
        runtime=Runtime.BATCH.value,
    )
    app: dict[str, Any] = {"ImageUri": spec.image}
    if spec.command:
        app["ContainerEntrypoint"] = list(spec.command)
    if spec.args:
        app["ContainerArguments"] = list(spec.args)
    request: dict[str, Any] = {
        "ProcessingJobName": job_name,
        "RoleArn": spec.role_arn,
        "AppSpecification": app,
        "Environment": split.environment,
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceType": resources.instance_type,
                "InstanceCount": resources.instance_count,
                "VolumeSizeInGB": resources.volume_size_gb,
            }
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime_seconds},
    }
    if spec.inputs:
        request["ProcessingInputs"] = [
            {
                "InputName": name,
                "S3Input": {
                    "S3Uri": uri,
                    "LocalPath": data.input_paths[name],
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                    "S3DataDistributionType": "FullyReplicated",
                },
            }
            for name, uri in sorted(spec.inputs.items())
        ]
    if outputs:
        request["ProcessingOutputConfig"] = {
            "Outputs": [
                {
                    "OutputName": name,
                    "S3Output": {
                        "S3Uri": uri,
                        "LocalPath": data.output_paths[name],
                        "S3UploadMode": "EndOfJob",
                    },
                }
                for name, uri in sorted(outputs.items())
            ]
        }
    if network_config:
        request["NetworkConfig"] = dict(network_config)
    if tag_list:
        request["Tags"] = tag_list
    return JobRendering(request=request, spill_uri=split.spill_uri, spill_document=split.spill_document)
