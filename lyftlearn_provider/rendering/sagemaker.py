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

from lyftlearn_provider.contract import Runtime, container_environment, hyperparameter_values
from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.limits import (
    MAX_ENVIRONMENT_ENTRIES,
    MAX_ENVIRONMENT_VALUE_LENGTH,
    MAX_HYPERPARAMETER_VALUE_LENGTH,
    MAX_HYPERPARAMETERS,
    MAX_KEEP_ALIVE_SECONDS,
    MAX_RUNTIME_SECONDS,
    MIN_RUNTIME_SECONDS,
)
from lyftlearn_provider.naming import validate_job_name
from lyftlearn_provider.rendering.instance_types import TRAINING_INSTANCE_TYPES
from lyftlearn_provider.runtime import RuntimeSpec, require_rendered
from lyftlearn_provider.spill import EntryLimits, spill_payload_for, split_for_spill
from lyftlearn_provider.tags import validated_tags
from lyftlearn_provider.validation import EMPTY, require_int

SAGEMAKER_ENVIRONMENT_LIMITS = EntryLimits(
    max_entry_size=MAX_ENVIRONMENT_VALUE_LENGTH, max_entries=MAX_ENVIRONMENT_ENTRIES
)
SAGEMAKER_HYPERPARAMETER_LIMITS = EntryLimits(
    max_entry_size=MAX_HYPERPARAMETER_VALUE_LENGTH, max_entries=MAX_HYPERPARAMETERS
)


@dataclasses.dataclass(frozen=True)
class TrainingJobRendering:
    """Hold a CreateTrainingJob request and what must be uploaded before it is sent.

    :param request: keyword arguments for ``CreateTrainingJob``.
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


@functools.lru_cache(maxsize=1)
def _botocore_training_instance_types() -> frozenset[str]:
    # Only for a type our list lacks: a newer botocore may know it. Imported here, never at parse time.
    try:
        from botocore.loaders import Loader

        shapes = Loader().load_service_model("sagemaker", "service-2")["shapes"]
        return frozenset(shapes["TrainingInstanceType"]["enum"])
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


def check_training_instance_type(instance_type: str, field: str = "resources.instance_type") -> None:
    """Raise unless SageMaker trains on ``instance_type`` (its service model lists it)."""
    if instance_type in TRAINING_INSTANCE_TYPES or instance_type in _botocore_training_instance_types():
        return
    import difflib

    close = difflib.get_close_matches(instance_type, sorted(TRAINING_INSTANCE_TYPES), n=3, cutoff=0.75)
    raise InvalidSpecError(
        field,
        f"SageMaker has no training instance type {instance_type!r}",
        (f"Did you mean {' or '.join(repr(name) for name in close)}? " if close else "")
        + "See the instance types in the SageMaker pricing page, e.g. 'ml.m5.xlarge' or 'ml.g5.2xlarge'.",
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
    validate_job_name(job_name)
    require_rendered(spec)
    check_training_instance_type(spec.resources.instance_type)
    require_int(
        max_runtime_seconds,
        "max_runtime_seconds",
        MIN_RUNTIME_SECONDS,
        MAX_RUNTIME_SECONDS,
        "Use 1 second to 28 days; set the task's execution_timeout accordingly.",
    )
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
    return TrainingJobRendering(
        request=request, spill_uri=split.spill_uri, spill_document=split.spill_document
    )
