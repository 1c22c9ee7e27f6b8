"""The container contract: what the program in the image sees, on every runtime.

One image trains on SageMaker, runs as a pod, validates and serves; this module says what it finds
on each of them and builds it. Pure, standard library only.

The program in the image sees the same environment on every runtime
(:func:`container_environment` builds it for all of them):

- every entry of ``RuntimeSpec.environment``, unchanged;
- the run's identity passed by the operator (``LYFTLEARN_DAG_ID``, ``LYFTLEARN_RUN_ID``,
  ``LYFTLEARN_DATA_INTERVAL_START``, ``LYFTLEARN_DATA_INTERVAL_END``, ...);
- ``LYFTLEARN_RUNTIME``: ``sagemaker`` | ``kubernetes`` (training) | ``validation`` | ``serving`` |
  ``batch`` -- the one entry that differs between runtimes;
- ``LYFTLEARN_MODEL_URI``: the trained model's ``s3://`` URI, where there is one to load (validation,
  serving and batch scoring; training produces it);
- batch jobs only: ``LYFTLEARN_INPUTS`` and ``LYFTLEARN_OUTPUTS``, compact JSON objects of name to the
  local directory of each input (``/opt/ml/processing/input/<name>`` on SageMaker, where Processing
  downloads it) and each output (``/opt/ml/processing/output/<name>``, uploaded when the job ends), and
  ``LYFTLEARN_OUTPUT_URIS``, name to each output's ``s3://`` prefix;
- ``LYFTLEARN_JOB_NAME``: the training job's (or pod's) name;
- ``LYFTLEARN_CONFIG``: the app config as compact JSON with sorted keys, when there is any;
- ``LYFTLEARN_SECRETS``: a compact JSON object of environment variable name to secret reference
  (a Secrets Manager ARN or name), when there are any. The program resolves each reference with the
  runtime's own credentials -- the job's ``RoleArn`` on SageMaker, the service account's IAM role on
  Kubernetes -- so secret values never pass through Airflow, XCom or the API request;
- ``LYFTLEARN_STATSD_HOST`` and ``LYFTLEARN_STATSD_PORT``, plus the conventional ``STATSD_HOST`` and
  ``STATSD_PORT`` unless the spec sets those names itself, when a metrics host is set.

AWS credentials always come from the runtime's role; static keys are rejected wherever they appear.
Names starting with ``LYFTLEARN_`` belong to the provider.

Hyperparameters reach the program as a JSON object of strings (:func:`hyperparameter_values`: a
``str`` as is, ``True`` / ``False`` as ``true`` / ``false``, numbers as JSON) in the file
``/opt/ml/input/config/hyperparameters.json``, on every runtime. SageMaker writes that file itself;
a pod gets it from a read-only downward-API volume that projects the pod annotation
``lyftlearn.io/hyperparameters`` (the same JSON) to that path, so the program reads one file the same
way everywhere (:mod:`lyftlearn_provider.rendering.kubernetes`). Input channels are at
``/opt/ml/input/data/<channel>`` (a pod copies them there in an init container before the program
starts), and ``/opt/ml/model``, ``/opt/ml/output``, ``/opt/ml/checkpoints`` and ``/tmp`` are writable
on every runtime, also when a pod's root file system is read-only.

Not part of the contract, and different by design: ``LYFTLEARN_RUNTIME``; how the role's
credentials arrive (SageMaker's ``RoleArn``; on Kubernetes a service account annotated
``eks.amazonaws.com/role-arn`` with the same role, whose webhook adds ``AWS_ROLE_ARN`` and
``AWS_WEB_IDENTITY_TOKEN_FILE``); variables the platform adds itself (SageMaker's training-job
variables; Kubernetes' ``HOSTNAME`` and ``KUBERNETES_SERVICE_*``); SageMaker's other files under
``/opt/ml/input/config``; and uploading ``/opt/ml/model`` when the program ends, which SageMaker
does and a pod does not.
"""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.validation import (
    EMPTY,
    check_environment_name,
    check_s3_uri,
    check_text,
    compact_json,
    require_mapping,
)

if TYPE_CHECKING:
    from lyftlearn_provider.runtime import RuntimeSpec

RESERVED_PREFIX = "LYFTLEARN_"
ENV_RUNTIME = "LYFTLEARN_RUNTIME"
ENV_JOB_NAME = "LYFTLEARN_JOB_NAME"
ENV_CONFIG = "LYFTLEARN_CONFIG"
ENV_SECRETS = "LYFTLEARN_SECRETS"
ENV_STATSD_HOST = "LYFTLEARN_STATSD_HOST"
ENV_STATSD_PORT = "LYFTLEARN_STATSD_PORT"
ENV_SPILL_URI = "LYFTLEARN_SPILL_URI"
ENV_MODEL_URI = "LYFTLEARN_MODEL_URI"
ENV_INPUTS = "LYFTLEARN_INPUTS"
ENV_OUTPUTS = "LYFTLEARN_OUTPUTS"
ENV_OUTPUT_URIS = "LYFTLEARN_OUTPUT_URIS"
#: Set by the rendering itself; the operator's run environment may not use them.
PROVIDER_ENVIRONMENT_KEYS = frozenset(
    {
        ENV_RUNTIME,
        ENV_JOB_NAME,
        ENV_CONFIG,
        ENV_SECRETS,
        ENV_STATSD_HOST,
        ENV_STATSD_PORT,
        ENV_SPILL_URI,
        ENV_MODEL_URI,
        ENV_INPUTS,
        ENV_OUTPUTS,
        ENV_OUTPUT_URIS,
    }
)

# SageMaker's container layout, which every runtime reproduces.
INPUT_CONFIG_DIR = "/opt/ml/input/config"
HYPERPARAMETERS_FILE = "hyperparameters.json"
HYPERPARAMETERS_PATH = f"{INPUT_CONFIG_DIR}/{HYPERPARAMETERS_FILE}"
INPUT_DATA_DIR = "/opt/ml/input/data"
#: Where a SageMaker Processing (batch) job finds its inputs and leaves its outputs, one folder each.
PROCESSING_INPUT_DIR = "/opt/ml/processing/input"
PROCESSING_OUTPUT_DIR = "/opt/ml/processing/output"
#: Volume name to directory the program may write to on every runtime.
WRITABLE_DIRECTORIES: Mapping[str, str] = MappingProxyType(
    {
        "lyftlearn-tmp": "/tmp",
        "lyftlearn-model": "/opt/ml/model",
        "lyftlearn-output": "/opt/ml/output",
        "lyftlearn-checkpoints": "/opt/ml/checkpoints",
    }
)
#: SageMaker sends SIGTERM and kills the container 120 s later; a pod gets the same grace period.
STOP_GRACE_SECONDS = 120


@dataclasses.dataclass(frozen=True)
class BatchData:
    """Where a batch job's program finds its inputs and leaves its outputs.

    :param input_paths: input name to the local directory it is downloaded to.
    :param output_paths: output name to the local directory uploaded when the job ends.
    :param output_uris: output name to the ``s3://`` prefix it goes to.
    """

    input_paths: Mapping[str, str]
    output_paths: Mapping[str, str]
    output_uris: Mapping[str, str]

    @classmethod
    def for_processing(cls, inputs: Mapping[str, str], outputs: Mapping[str, str]) -> BatchData:
        """Return the layout of a SageMaker Processing job with these inputs and outputs (name to S3)."""
        return cls(
            input_paths={name: f"{PROCESSING_INPUT_DIR}/{name}" for name in sorted(inputs)},
            output_paths={name: f"{PROCESSING_OUTPUT_DIR}/{name}" for name in sorted(outputs)},
            output_uris=dict(sorted(outputs.items())),
        )


class Runtime(str, enum.Enum):
    """Name the runtime a container runs on, as ``LYFTLEARN_RUNTIME`` tells it."""

    SAGEMAKER = "sagemaker"
    KUBERNETES = "kubernetes"
    VALIDATION = "validation"
    SERVING = "serving"
    BATCH = "batch"


def check_user_environment_name(name: object, field: str) -> None:
    """Raise unless ``name`` is a valid variable name outside the provider's ``LYFTLEARN_`` names."""
    if check_environment_name(name, field).startswith(RESERVED_PREFIX):
        raise InvalidSpecError(
            field,
            f"names starting with {RESERVED_PREFIX} are reserved for the provider",
            f"Rename the variable so it does not start with {RESERVED_PREFIX}.",
        )


def hyperparameter_values(spec: RuntimeSpec) -> dict[str, str]:
    """Return the spec's hyperparameters as the strings the container receives, sorted by key.

    A ``str`` stays as it is, a bool becomes ``true`` / ``false``, other numbers are JSON-encoded.

    :param spec: the runtime spec.
    """
    values: dict[str, str] = {}
    for key, value in sorted(spec.hyperparameters.items()):
        if isinstance(value, str):
            values[key] = value
        elif isinstance(value, bool):
            values[key] = "true" if value else "false"
        else:
            values[key] = json.dumps(value)
    return values


def container_environment(
    spec: RuntimeSpec,
    *,
    runtime: str,
    job_name: str,
    run_environment: Mapping[str, str] = EMPTY,
    model_uri: str | None = None,
    data: BatchData | None = None,
) -> dict[str, str]:
    """Return the environment the program in the container sees, sorted by name (see the module docstring).

    :param spec: the runtime spec.
    :param runtime: a :class:`Runtime` value; becomes ``LYFTLEARN_RUNTIME``.
    :param job_name: becomes ``LYFTLEARN_JOB_NAME``.
    :param run_environment: ``LYFTLEARN_*`` variables from the operator, e.g. ``LYFTLEARN_RUN_ID``.
    :param model_uri: the trained model to load (``s3://...``); becomes ``LYFTLEARN_MODEL_URI``.
    :param data: a batch job's inputs and outputs; become ``LYFTLEARN_INPUTS``, ``LYFTLEARN_OUTPUTS`` and
        ``LYFTLEARN_OUTPUT_URIS``.
    """
    try:
        runtime_name = Runtime(runtime).value
    except ValueError:
        raise InvalidSpecError(
            "runtime",
            f"{runtime!r} is not a runtime",
            f"Use one of: {', '.join(item.value for item in Runtime)}.",
        ) from None
    if not isinstance(job_name, str) or not job_name:
        raise InvalidSpecError("job_name", "is empty", "Pass the training job's or pod's name.")
    environment = dict(spec.environment)
    for name, value in require_mapping(
        run_environment, "run_environment", "{'LYFTLEARN_RUN_ID': '...'}"
    ).items():
        field = f"run_environment[{name!r}]"
        check_environment_name(name, field)
        if not name.startswith(RESERVED_PREFIX) or name in PROVIDER_ENVIRONMENT_KEYS:
            raise InvalidSpecError(
                field,
                f"run variables must start with {RESERVED_PREFIX} and not be one the rendering sets",
                f"Use a {RESERVED_PREFIX}* name other than {', '.join(sorted(PROVIDER_ENVIRONMENT_KEYS))}.",
            )
        if not isinstance(value, str):
            raise InvalidSpecError(
                field, f"value {value!r} is not a string", "Convert the value to a string."
            )
        check_text(value, field)
        environment[name] = value
    environment[ENV_RUNTIME] = runtime_name
    environment[ENV_JOB_NAME] = job_name
    if model_uri is not None:
        check_s3_uri(model_uri, "model_uri")
        environment[ENV_MODEL_URI] = model_uri
    if data is not None:
        environment[ENV_INPUTS] = compact_json(data.input_paths)
        environment[ENV_OUTPUTS] = compact_json(data.output_paths)
        environment[ENV_OUTPUT_URIS] = compact_json(data.output_uris)
    if spec.config:
        environment[ENV_CONFIG] = compact_json(spec.config)
    if spec.secrets:
        environment[ENV_SECRETS] = compact_json(spec.secrets)
    if spec.metrics_host is not None:
        port = str(spec.metrics_port)
        environment[ENV_STATSD_HOST] = spec.metrics_host
        environment[ENV_STATSD_PORT] = port
        for name, value in (("STATSD_HOST", spec.metrics_host), ("STATSD_PORT", port)):
            if name not in spec.environment and name not in spec.secrets:
                environment[name] = value
    return dict(sorted(environment.items()))
