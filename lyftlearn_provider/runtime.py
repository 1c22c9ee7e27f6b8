"""The runtime contract: one validated spec that runs the same image on SageMaker and on Kubernetes.

:class:`RuntimeSpec` says what a container needs (image, command, environment, config,
hyperparameters, secret references, inputs, metrics endpoint, resources) and validates all of it
on construction, so bad input fails at DAG parse time or before anything is created, with an
:class:`~lyftlearn_provider.exceptions.InvalidSpecError` that names the field and the fix.
Everything here is pure and imports only the standard library: DAG files import it on every parse.

Container contract
------------------
The program in the image sees the same environment on every runtime
(:func:`container_environment` builds it for all of them):

- every entry of ``RuntimeSpec.environment``, unchanged;
- the run's identity passed by the operator (``LYFTLEARN_DAG_ID``, ``LYFTLEARN_RUN_ID``,
  ``LYFTLEARN_DATA_INTERVAL_START``, ``LYFTLEARN_DATA_INTERVAL_END``, ...);
- ``LYFTLEARN_RUNTIME``: ``sagemaker`` | ``kubernetes`` | ``validation`` -- the one entry that
  differs between runtimes;
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
way everywhere (:mod:`lyftlearn_provider.pod`). Input channels are at ``/opt/ml/input/data/<channel>``
(a pod copies them there in an init container before the program starts), and ``/opt/ml/model``,
``/opt/ml/output``, ``/opt/ml/checkpoints`` and ``/tmp`` are writable on every runtime, also when a
pod's root file system is read-only.

Not part of the contract, and different by design: ``LYFTLEARN_RUNTIME``; how the role's
credentials arrive (SageMaker's ``RoleArn``; on Kubernetes a service account annotated
``eks.amazonaws.com/role-arn`` with the same role, whose webhook adds ``AWS_ROLE_ARN`` and
``AWS_WEB_IDENTITY_TOKEN_FILE``); variables the platform adds itself (SageMaker's training-job
variables; Kubernetes' ``HOSTNAME`` and ``KUBERNETES_SERVICE_*``); SageMaker's other files under
``/opt/ml/input/config``; and uploading ``/opt/ml/model`` when the program ends, which SageMaker
does and a pod does not.

Spilling
--------
SageMaker caps the request's ``Environment`` (100 entries, values of 512 characters) and
``HyperParameters`` (100 entries, values of 2500 characters). Entries beyond those limits are never
truncated: :func:`render_training_job` moves them, deterministically, into one JSON document
``{"environment": {...}, "hyperparameters": {...}}`` stored at
``<spill_s3_uri or output_s3_uri + "/lyftlearn-runtime">/<job name>/runtime.json`` and sets
``LYFTLEARN_SPILL_URI`` to that object's URI. A program that finds ``LYFTLEARN_SPILL_URI`` set reads
the object (with the role's credentials) and merges it over its environment and hyperparameters;
after the merge it sees exactly :func:`container_environment` (plus ``LYFTLEARN_SPILL_URI``) and every
hyperparameter.

Pods spill by the same rule (:func:`split_for_spill`) against Kubernetes' much larger limits: what
Linux can pass to a program (128 KiB per ``NAME=value``), a 512 KiB environment, and a 128 KiB
hyperparameters annotation. Their document goes to ``.../<job name>/runtime-<runtime>.json``, so a
pod and a SageMaker job of the same name never overwrite each other's.
"""

from __future__ import annotations

import dataclasses
import decimal
import enum
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.naming import validate_job_name

if TYPE_CHECKING:
    from collections.abc import Callable

# SageMaker CreateTrainingJob limits; tests/test_runtime.py checks each against botocore's service model.
MAX_ENVIRONMENT_ENTRIES = 100
MAX_ENVIRONMENT_KEY_LENGTH = 512
MAX_ENVIRONMENT_VALUE_LENGTH = 512
MAX_HYPERPARAMETERS = 100
MAX_HYPERPARAMETER_KEY_LENGTH = 256
MAX_HYPERPARAMETER_VALUE_LENGTH = 2500
MAX_TAGS = 50
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
MAX_IMAGE_LENGTH = 255
MAX_CONTAINER_ARGUMENTS = 100
MAX_CONTAINER_ARGUMENT_LENGTH = 256
MAX_INPUT_CHANNELS = 20
MAX_CHANNEL_NAME_LENGTH = 64
MAX_S3_URI_LENGTH = 1024
MIN_ROLE_ARN_LENGTH = 20
MAX_ROLE_ARN_LENGTH = 2048
MAX_KEEP_ALIVE_SECONDS = 21600
MIN_RUNTIME_SECONDS = 1
#: The service model gives no maximum; the API documentation says 28 days.
MAX_RUNTIME_SECONDS = 28 * 24 * 3600

#: Patterns copied verbatim from the service model, matched against the whole value.
ENVIRONMENT_KEY_PATTERN = r"[a-zA-Z_][a-zA-Z0-9_]*"
CHANNEL_NAME_PATTERN = r"[A-Za-z0-9\.\-_]+"
ROLE_ARN_PATTERN = r"arn:aws[a-z\-]*:iam::\d{12}:role/?[a-zA-Z_0-9+=,.@\-_/]+"

RESERVED_PREFIX = "LYFTLEARN_"
ENV_RUNTIME = "LYFTLEARN_RUNTIME"
ENV_JOB_NAME = "LYFTLEARN_JOB_NAME"
ENV_CONFIG = "LYFTLEARN_CONFIG"
ENV_SECRETS = "LYFTLEARN_SECRETS"
ENV_STATSD_HOST = "LYFTLEARN_STATSD_HOST"
ENV_STATSD_PORT = "LYFTLEARN_STATSD_PORT"
ENV_SPILL_URI = "LYFTLEARN_SPILL_URI"
#: Set by the rendering itself; the operator's run environment may not use them.
PROVIDER_ENVIRONMENT_KEYS = frozenset(
    {ENV_RUNTIME, ENV_JOB_NAME, ENV_CONFIG, ENV_SECRETS, ENV_STATSD_HOST, ENV_STATSD_PORT, ENV_SPILL_URI}
)
SPILL_DIRECTORY = "lyftlearn-runtime"
SPILL_OBJECT_NAME = "runtime.json"
#: The user id a ``restricted`` pod runs as unless ``RuntimeSpec.run_as_user`` says otherwise.
DEFAULT_RUN_AS_USER = 1000
MAX_USER_ID = 2**31 - 1

_ENVIRONMENT_KEY = re.compile(ENVIRONMENT_KEY_PATTERN, re.ASCII)
_CHANNEL_NAME = re.compile(CHANNEL_NAME_PATTERN, re.ASCII)
_ROLE_ARN = re.compile(ROLE_ARN_PATTERN, re.ASCII)
_INSTANCE_TYPE = re.compile(r"ml\.[a-z][a-z0-9]*(?:-[a-z0-9]+)*\.[a-z0-9]+", re.ASCII)
# Docker's reference grammar (distribution/reference), restricted to sha256 digests.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_IMAGE = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    r"(?::(?P<tag>\w[\w.-]{0,127}))?(?:@(?P<digest>[^@]*))?",
    re.ASCII,
)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}", re.ASCII)
_S3_URI = re.compile(r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](?:/.*)?", re.ASCII | re.DOTALL)
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._:-]{0,251}[A-Za-z0-9])?", re.ASCII)
_SECRET_ARN = re.compile(
    r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+", re.ASCII
)
_SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}", re.ASCII)
_ACCESS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])", re.ASCII)
_SECRET_ACCESS_KEY_SHAPE = re.compile(r"[A-Za-z0-9/+]{40}", re.ASCII)
_CREDENTIAL_NAMES = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"}
)
# Kubernetes' quantity grammar (apimachinery resource.Quantity) without signs: requests are positive.
_QUANTITY = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[KMGTPE]i|[mkMGTPE]|[eE][+-]?[0-9]+)?", re.ASCII
)
_QUANTITY_FACTORS = {
    "": decimal.Decimal(1),
    "m": decimal.Decimal("0.001"),
    **{suffix: decimal.Decimal(1000) ** power for power, suffix in enumerate("kMGTPE", start=1)},
    **{f"{suffix}i": decimal.Decimal(1024) ** power for power, suffix in enumerate("KMGTPE", start=1)},
}
_TAG_PUNCTUATION = frozenset("_.:/=+-@")
_TEMPLATE_MARKERS = ("{{", "{%")

_USE_ROLE = (
    "Remove static AWS credentials: the job runs with the IAM role in role_arn (a service account's "
    "IAM role on Kubernetes), which the AWS SDKs pick up on their own."
)

_K = TypeVar("_K")
_V = TypeVar("_V")


class Runtime(str, enum.Enum):
    """Name the runtime a container runs on, as ``LYFTLEARN_RUNTIME`` tells it."""

    SAGEMAKER = "sagemaker"
    KUBERNETES = "kubernetes"
    VALIDATION = "validation"


class PodSecurity(str, enum.Enum):
    """Name the Kubernetes Pod Security Standard a pod rendered from the spec satisfies."""

    #: Non-root user, read-only root file system, no privilege escalation, all capabilities dropped,
    #: ``RuntimeDefault`` seccomp profile (R7). The default.
    RESTRICTED = "restricted"
    #: The explicit opt-out for images that must run as root or write to their root file system:
    #: the image's user and writable root file system, the runtime's default capabilities; still never
    #: privileged, still no privilege escalation, still ``RuntimeDefault`` seccomp.
    BASELINE = "baseline"


class FrozenMapping(Mapping[_K, _V]):
    """Hold an immutable, hashable copy of a mapping; equal to any mapping with the same items."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = ()) -> None:
        self._data: dict[_K, _V] = dict(data)

    def __getitem__(self, key: _K) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[_K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMapping({self._data!r})"


_EMPTY: Mapping[str, str] = MappingProxyType({})


def _is_templated(value: object) -> bool:
    return isinstance(value, str) and any(marker in value for marker in _TEMPLATE_MARKERS)


def _holds_template(value: Any) -> bool:
    if isinstance(value, Mapping):
        return any(_holds_template(item) for item in value.values())
    if isinstance(value, tuple):
        return any(_holds_template(item) for item in value)
    return _is_templated(value)


def _thaw(value: Any) -> Any:
    """Return plain dicts and lists for frozen containers, recursively (for JSON and for Jinja)."""
    if isinstance(value, Mapping):
        return {key: _thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [_thaw(item) for item in value]
    return value


def _compact_json(value: Any) -> str:
    return json.dumps(_thaw(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _require_int(value: object, field: str, low: int, high: int | None, fix: str) -> None:
    # bool is an int subclass, but True as a count or port is always a mistake.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidSpecError(field, f"{value!r} is not an integer", fix)
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise InvalidSpecError(field, f"{value} is outside {bound}", fix)


def _require_mapping(value: object, field: str, example: str) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise InvalidSpecError(
            field, f"must be a mapping, got {type(value).__name__}", f"Pass a dict, e.g. {example}."
        )
    return value


def _check_no_access_key(value: str, field: str) -> None:
    # The message must not echo the value: it may be a live credential (R7).
    if _ACCESS_KEY_ID.search(value):
        raise InvalidSpecError(field, "contains what looks like an AWS access key id", _USE_ROLE)


def _check_s3_uri(value: object, field: str) -> None:
    if not isinstance(value, str):
        raise InvalidSpecError(
            field, f"must be a string, got {type(value).__name__}", "Use an s3://bucket/prefix URI."
        )
    if _is_templated(value):
        return
    if len(value) > MAX_S3_URI_LENGTH or not _S3_URI.fullmatch(value):
        raise InvalidSpecError(
            field,
            f"{value!r} is not an S3 URI",
            f"Use s3://<bucket>/<prefix> with a valid bucket name, at most {MAX_S3_URI_LENGTH} characters.",
        )


def _check_environment_name(name: object, field: str) -> str:
    if not isinstance(name, str) or not _ENVIRONMENT_KEY.fullmatch(name):
        raise InvalidSpecError(
            field,
            f"{name!r} is not a valid environment variable name",
            "Use letters, digits and underscores, not starting with a digit, e.g. 'MODEL_NAME'.",
        )
    if len(name) > MAX_ENVIRONMENT_KEY_LENGTH:
        raise InvalidSpecError(
            field,
            f"the name is {len(name)} characters long",
            f"Use a name of at most {MAX_ENVIRONMENT_KEY_LENGTH} characters.",
        )
    if name.upper() in _CREDENTIAL_NAMES:
        raise InvalidSpecError(field, f"{name} passes static AWS credentials", _USE_ROLE)
    return name


def _check_user_environment_name(name: object, field: str) -> None:
    if _check_environment_name(name, field).startswith(RESERVED_PREFIX):
        raise InvalidSpecError(
            field,
            f"names starting with {RESERVED_PREFIX} are reserved for the provider",
            f"Rename the variable so it does not start with {RESERVED_PREFIX}.",
        )


def _check_secret_reference(reference: object, field: str) -> None:
    fix = (
        "Pass a reference, not a value: a Secrets Manager ARN (arn:aws:secretsmanager:<region>:<account>:"
        "secret:<name>) or a secret name of at most 512 letters, digits and /_+=.@- characters."
    )
    if not isinstance(reference, str) or not (
        _SECRET_ARN.fullmatch(reference) or _SECRET_NAME.fullmatch(reference)
    ):
        raise InvalidSpecError(field, "is not a secret reference", fix)
    _check_no_access_key(reference, field)
    # A 40-character mixed-case base64 string has the shape of an AWS secret access key, not of a name.
    if _SECRET_ACCESS_KEY_SHAPE.fullmatch(reference) and all(
        any(test(char) for char in reference) for test in (str.isupper, str.islower, str.isdigit)
    ):
        raise InvalidSpecError(field, "looks like a secret value rather than a reference", fix)


def _freeze_json(value: Any, field: str) -> Any:
    """Return a deep immutable copy of a JSON-serialisable value, or raise naming the offending path."""
    fix = "Use only dicts with string keys, lists, strings, finite numbers, booleans and None."
    if isinstance(value, str):
        _check_no_access_key(value, field)
        return value
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidSpecError(field, f"{value!r} is not representable in JSON", fix)
        return value
    if isinstance(value, Mapping):
        frozen: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidSpecError(field, f"key {key!r} is not a string", fix)
            frozen[key] = _freeze_json(item, f"{field}[{key!r}]")
        return FrozenMapping(frozen)
    if isinstance(value, (list, tuple)):
        return tuple(_freeze_json(item, f"{field}[{index}]") for index, item in enumerate(value))
    raise InvalidSpecError(field, f"{type(value).__name__} is not JSON-serialisable", fix)


def check_image_reference(image: object, field: str = "image") -> None:
    """Raise ``InvalidSpecError`` unless ``image`` is a pinnable image reference (templates pass unchecked).

    :param image: ``<registry>/<repository>:<tag>`` and/or ``@sha256:<digest>``.
    :param field: the field to name in the error.
    """
    fix = (
        "Use <registry>/<repository>:<tag> or <registry>/<repository>@sha256:<64 hex digits>, with a "
        "lowercase repository path, e.g. '123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud:v42'."
    )
    if not isinstance(image, str) or not image:
        raise InvalidSpecError(field, "is empty or not a string", fix)
    if _is_templated(image):
        return
    if len(image) > MAX_IMAGE_LENGTH:
        raise InvalidSpecError(
            field,
            f"is {len(image)} characters long, over SageMaker's {MAX_IMAGE_LENGTH}",
            "Use a shorter repository path or tag.",
        )
    match = _IMAGE.fullmatch(image)
    if match is None:
        raise InvalidSpecError(field, f"{image!r} is not a valid image reference", fix)
    digest = match.group("digest")
    if digest is not None and not _DIGEST.fullmatch(digest):
        raise InvalidSpecError(
            field,
            f"digest {digest!r} is not valid",
            "Write the digest as sha256:<64 lowercase hex digits>.",
        )
    if match.group("tag") is None and digest is None:
        raise InvalidSpecError(
            field,
            f"{image!r} names neither a tag nor a digest",
            "Pin a digest (repo@sha256:...) or name the tag explicitly (e.g. repo:latest); "
            "an implicit tag cannot be pinned reproducibly.",
        )


def image_has_digest(image: str) -> bool:
    """Return whether a valid image reference pins a digest (``...@sha256:...``)."""
    match = _IMAGE.fullmatch(image)
    return match is not None and match.group("digest") is not None


def quantity_value(quantity: str) -> decimal.Decimal:
    """Return the value of a Kubernetes quantity: ``'500m'`` is 0.5, ``'1Ki'`` is 1024.

    Raise ``ValueError`` when it is not an unsigned quantity.

    :param quantity: an unsigned quantity such as ``'2'``, ``'500m'``, ``'4Gi'`` or ``'1e9'``.
    """
    match = _QUANTITY.fullmatch(quantity) if isinstance(quantity, str) else None
    if match is None:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity")
    suffix = match.group("suffix") or ""
    number = decimal.Decimal(match.group("number"))
    if suffix[:1] in ("e", "E"):
        return number.scaleb(int(suffix[1:]))
    return number * _QUANTITY_FACTORS[suffix]


def _check_cpu(value: object, field: str) -> None:
    fix = "Use Kubernetes CPU units: cores as a string ('2', '0.5') or millicores ('500m'), at least '1m'."
    if not isinstance(value, str):
        raise InvalidSpecError(field, f"{value!r} is not a string", fix)
    match = _QUANTITY.fullmatch(value)
    if match is None or (match.group("suffix") or "") not in ("", "m"):
        raise InvalidSpecError(field, f"{value!r} is not a CPU quantity", fix)
    if quantity_value(value) < decimal.Decimal("0.001"):
        raise InvalidSpecError(field, f"{value!r} is less than one millicore", fix)


def _check_memory(value: object, field: str) -> None:
    fix = "Use Kubernetes memory units as a string, e.g. '512Mi' or '4Gi' (powers of 1024), at least '1Mi'."
    if not isinstance(value, str):
        raise InvalidSpecError(field, f"{value!r} is not a string", fix)
    match = _QUANTITY.fullmatch(value)
    if match is None:
        raise InvalidSpecError(field, f"{value!r} is not a memory quantity", fix)
    if match.group("suffix") == "m":
        raise InvalidSpecError(
            field, f"{value!r} is in thousandths of a byte", "Use 'Mi' for mebibytes, e.g. '512Mi'."
        )
    # Less than a mebibyte is a missing unit ('512' meaning '512Mi'), never a real memory size.
    if quantity_value(value) < 1024**2:
        raise InvalidSpecError(field, f"{value!r} is less than 1Mi", fix)


def _check_arguments(value: object, field: str) -> tuple[str, ...]:
    fix = f"Pass a list of at most {MAX_CONTAINER_ARGUMENTS} strings, e.g. ['python', '-m', 'train']."
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise InvalidSpecError(field, f"must be a list of strings, got {type(value).__name__}", fix)
    if len(value) > MAX_CONTAINER_ARGUMENTS:
        raise InvalidSpecError(field, f"has {len(value)} items", fix)
    for index, item in enumerate(value):
        item_field = f"{field}[{index}]"
        if not isinstance(item, str):
            raise InvalidSpecError(item_field, f"{item!r} is not a string", "Quote the argument.")
        if len(item) > MAX_CONTAINER_ARGUMENT_LENGTH:
            raise InvalidSpecError(
                item_field,
                f"is {len(item)} characters long, over SageMaker's {MAX_CONTAINER_ARGUMENT_LENGTH}",
                "Move long values into config or environment, which spill to S3 when needed.",
            )
        _check_no_access_key(item, item_field)
    return tuple(value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResourceProfile:
    """Describe the compute a job runs on.

    The Kubernetes fields size a pod; None derives them from ``instance_type``
    (:func:`lyftlearn_provider.pod.pod_resources`).

    :param instance_type: SageMaker instance type, ``ml.<family>.<size>``.
    :param instance_count: number of instances, at least 1.
    :param volume_size_gb: ML storage volume per instance in GB, at least 1 (instance types with NVMe
        storage ignore it).
    :param cpu: a pod's CPU request and limit as a Kubernetes quantity, e.g. ``'3500m'`` or ``'4'``.
    :param memory: a pod's memory request and limit as a Kubernetes quantity, e.g. ``'12Gi'``.
    :param gpu: a pod's ``nvidia.com/gpu`` limit, 0 for none.
    """

    instance_type: str = "ml.m5.xlarge"
    instance_count: int = 1
    volume_size_gb: int = 30
    cpu: str | None = None
    memory: str | None = None
    gpu: int | None = None

    #: Added with the Kubernetes rendering; :meth:`to_dict` leaves them out while unset, so specs
    #: serialised before they existed serialise the same.
    _OPTIONAL_FIELDS: ClassVar[tuple[str, ...]] = ("cpu", "memory", "gpu")

    def __post_init__(self) -> None:
        if not isinstance(self.instance_type, str) or not _INSTANCE_TYPE.fullmatch(self.instance_type):
            raise InvalidSpecError(
                "resources.instance_type",
                f"{self.instance_type!r} is not a SageMaker instance type",
                "Use ml.<family>.<size>, e.g. 'ml.m5.xlarge' or 'ml.g5.2xlarge'.",
            )
        _require_int(
            self.instance_count, "resources.instance_count", 1, None, "Use a whole number of instances >= 1."
        )
        # The service model allows 0 (serverless jobs); an EBS-backed instance needs at least 1 GB.
        _require_int(
            self.volume_size_gb, "resources.volume_size_gb", 1, None, "Use a whole number of GB >= 1."
        )
        if self.cpu is not None:
            _check_cpu(self.cpu, "resources.cpu")
        if self.memory is not None:
            _check_memory(self.memory, "resources.memory")
        if self.gpu is not None:
            _require_int(
                self.gpu,
                "resources.gpu",
                0,
                None,
                "Use a whole number of GPUs >= 0, or None to derive it from the instance type.",
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the profile as a JSON-friendly dict, without the Kubernetes fields that are unset."""
        return {
            name: value
            for name, value in dataclasses.asdict(self).items()
            if not (name in self._OPTIONAL_FIELDS and value is None)
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class RuntimeSpec:
    """Describe a container run that behaves the same on SageMaker and on Kubernetes.

    Validated on construction; lists and dicts are copied into immutable tuples and mappings, so a
    spec is frozen, hashable and safe to share. Values that still hold a Jinja template skip the
    format checks that rendering would change; :meth:`render_with` validates them once rendered.

    :param image: ``<registry>/<repository>:<tag>`` or ``<registry>/<repository>@sha256:<digest>``
        (both may be given); an explicit tag or digest is required. (templated)
    :param role_arn: IAM role the job runs with; the only source of AWS credentials.
    :param output_s3_uri: ``s3://bucket/prefix`` for model artifacts. (templated)
    :param command: container entrypoint; empty keeps the image's. (templated)
    :param args: container arguments; empty keeps the image's. (templated)
    :param environment: environment variables; ``LYFTLEARN_*`` names are reserved. (templated)
    :param hyperparameters: str, int, float or bool values, delivered as strings. (templated)
    :param config: JSON-serialisable app config, delivered as ``LYFTLEARN_CONFIG``. (templated)
    :param secrets: environment variable name to secret *reference* (Secrets Manager ARN or name).
    :param inputs: channel name to ``s3://`` prefix. (templated)
    :param resources: instance type, count and volume size.
    :param metrics_host: StatsD host; metrics variables are set only when given.
    :param metrics_port: StatsD port.
    :param spill_s3_uri: where values over SageMaker's limits go; default
        ``<output_s3_uri>/lyftlearn-runtime``.
    :param pod_security: pods only: ``restricted`` (default; non-root, read-only root file system, no
        privilege escalation, no capabilities) or ``baseline``, the explicit opt-out for images that
        must run as root or write to their root file system (see :class:`PodSecurity`).
    :param run_as_user: pods only: the user id to run as; default 1000 under ``restricted`` and the
        image's own user under ``baseline``. 0 (root) needs ``baseline``.
    """

    template_fields: ClassVar[tuple[str, ...]] = (
        "image",
        "command",
        "args",
        "environment",
        "hyperparameters",
        "config",
        "inputs",
        "output_s3_uri",
    )

    image: str
    role_arn: str
    output_s3_uri: str
    command: Sequence[str] = ()
    args: Sequence[str] = ()
    environment: Mapping[str, str] = dataclasses.field(default_factory=FrozenMapping)
    hyperparameters: Mapping[str, str | int | float | bool] = dataclasses.field(default_factory=FrozenMapping)
    config: Mapping[str, Any] = dataclasses.field(default_factory=FrozenMapping)
    secrets: Mapping[str, str] = dataclasses.field(default_factory=FrozenMapping)
    inputs: Mapping[str, str] = dataclasses.field(default_factory=FrozenMapping)
    resources: ResourceProfile = ResourceProfile()
    metrics_host: str | None = None
    metrics_port: int = 8125
    spill_s3_uri: str | None = None
    pod_security: str = PodSecurity.RESTRICTED.value
    run_as_user: int | None = None

    def __post_init__(self) -> None:
        self._validate_image()
        self._validate_role_arn()
        _check_s3_uri(self.output_s3_uri, "output_s3_uri")
        self._freeze("command", _check_arguments(self.command, "command"))
        self._freeze("args", _check_arguments(self.args, "args"))
        self._freeze("environment", self._validated_environment())
        self._freeze("hyperparameters", self._validated_hyperparameters())
        self._freeze("config", self._validated_config())
        self._freeze("secrets", self._validated_secrets())
        self._freeze("inputs", self._validated_inputs())
        if not isinstance(self.resources, ResourceProfile):
            raise InvalidSpecError(
                "resources",
                f"must be a ResourceProfile, got {type(self.resources).__name__}",
                "Pass ResourceProfile(instance_type=..., instance_count=..., volume_size_gb=...).",
            )
        if self.metrics_host is not None and (
            not isinstance(self.metrics_host, str) or not _HOST.fullmatch(self.metrics_host)
        ):
            raise InvalidSpecError(
                "metrics_host",
                f"{self.metrics_host!r} is not a host name or IP address",
                "Use the StatsD agent's host name or IP, e.g. 'statsd.monitoring', or None for no metrics.",
            )
        _require_int(
            self.metrics_port, "metrics_port", 1, 65535, "Use a TCP/UDP port in 1..65535, e.g. 8125."
        )
        if self.spill_s3_uri is not None:
            _check_s3_uri(self.spill_s3_uri, "spill_s3_uri")
        self._validate_pod_security()

    def _freeze(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

    def _validate_image(self) -> None:
        check_image_reference(self.image, "image")

    def _validate_pod_security(self) -> None:
        try:
            level = PodSecurity(self.pod_security)
        except ValueError:
            raise InvalidSpecError(
                "pod_security",
                f"{self.pod_security!r} is not a pod security level",
                f"Use one of: {', '.join(item.value for item in PodSecurity)}.",
            ) from None
        self._freeze("pod_security", level.value)
        if self.run_as_user is None:
            return
        _require_int(
            self.run_as_user,
            "run_as_user",
            0,
            MAX_USER_ID,
            f"Use a numeric user id in 1..{MAX_USER_ID}, or None for the default.",
        )
        if self.run_as_user == 0 and level is PodSecurity.RESTRICTED:
            raise InvalidSpecError(
                "run_as_user",
                "0 is root, which restricted pods never run as",
                "Use a non-root user id such as 1000, or opt out with pod_security='baseline'.",
            )

    def _validate_role_arn(self) -> None:
        role = self.role_arn
        if (
            not isinstance(role, str)
            or not MIN_ROLE_ARN_LENGTH <= len(role) <= MAX_ROLE_ARN_LENGTH
            or not _ROLE_ARN.fullmatch(role)
        ):
            raise InvalidSpecError(
                "role_arn",
                f"{role!r} is not an IAM role ARN",
                "Use the full role ARN, e.g. 'arn:aws:iam::123456789012:role/sagemaker-training'.",
            )

    def _validated_environment(self) -> FrozenMapping[str, str]:
        environment = _require_mapping(self.environment, "environment", "{'LOG_LEVEL': 'info'}")
        for name, value in environment.items():
            field = f"environment[{name!r}]"
            _check_user_environment_name(name, field)
            if not isinstance(value, str):
                raise InvalidSpecError(
                    field, f"value {value!r} is not a string", "Quote the value, e.g. '8' instead of 8."
                )
            _check_no_access_key(value, field)
        return FrozenMapping(environment)

    def _validated_hyperparameters(self) -> FrozenMapping[str, str | int | float | bool]:
        hyperparameters = _require_mapping(self.hyperparameters, "hyperparameters", "{'learning_rate': 0.1}")
        fix = "Use a str, int, float or bool value; put structured values in config."
        for key, value in hyperparameters.items():
            field = f"hyperparameters[{key!r}]"
            if not isinstance(key, str) or not 1 <= len(key) <= MAX_HYPERPARAMETER_KEY_LENGTH:
                raise InvalidSpecError(
                    field,
                    f"the key is not a string of 1..{MAX_HYPERPARAMETER_KEY_LENGTH} characters",
                    f"Use a string key of at most {MAX_HYPERPARAMETER_KEY_LENGTH} characters.",
                )
            if key.upper() in _CREDENTIAL_NAMES:
                raise InvalidSpecError(field, f"{key} passes static AWS credentials", _USE_ROLE)
            if not isinstance(value, (str, int, float)):
                raise InvalidSpecError(field, f"{type(value).__name__} is not a hyperparameter type", fix)
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidSpecError(field, f"{value!r} is not a finite number", fix)
            if isinstance(value, str):
                _check_no_access_key(value, field)
        return FrozenMapping(hyperparameters)

    def _validated_config(self) -> Mapping[str, Any]:
        config: Mapping[str, Any] = _freeze_json(
            _require_mapping(self.config, "config", "{'model': {'depth': 6}}"), "config"
        )
        return config

    def _validated_secrets(self) -> FrozenMapping[str, str]:
        secrets = _require_mapping(self.secrets, "secrets", "{'DB_PASSWORD': 'prod/fraud/db-password'}")
        for name, reference in secrets.items():
            field = f"secrets[{name!r}]"
            _check_user_environment_name(name, field)
            if name in self.environment:
                raise InvalidSpecError(
                    field,
                    "the name is also set in environment",
                    "Set the variable either as a secret or in environment, not both.",
                )
            _check_secret_reference(reference, field)
        return FrozenMapping(secrets)

    def _validated_inputs(self) -> FrozenMapping[str, str]:
        inputs = _require_mapping(self.inputs, "inputs", "{'train': 's3://bucket/data/train/'}")
        if len(inputs) > MAX_INPUT_CHANNELS:
            raise InvalidSpecError(
                "inputs",
                f"has {len(inputs)} channels",
                f"Use at most {MAX_INPUT_CHANNELS} channels; group data under common prefixes.",
            )
        for channel, uri in inputs.items():
            field = f"inputs[{channel!r}]"
            if (
                not isinstance(channel, str)
                or len(channel) > MAX_CHANNEL_NAME_LENGTH
                or not _CHANNEL_NAME.fullmatch(channel)
            ):
                raise InvalidSpecError(
                    field,
                    "is not a valid channel name",
                    f"Use 1-{MAX_CHANNEL_NAME_LENGTH} letters, digits, '.', '-' or '_', e.g. 'train'.",
                )
            _check_s3_uri(uri, field)
        return FrozenMapping(inputs)

    def is_templated(self) -> bool:
        """Return whether any of :attr:`template_fields` still holds a Jinja template, at any depth."""
        return any(_holds_template(getattr(self, name)) for name in self.template_fields)

    def render_with(self, render: Callable[[Any], Any]) -> RuntimeSpec:
        """Return a new, validated spec with ``render`` applied to each of :attr:`template_fields`.

        Each field reaches ``render`` as plain lists and dicts, the shapes Airflow's templater walks.

        :param render: e.g. ``functools.partial(operator.render_template, context=context)``.
        """
        rendered = {name: render(_thaw(getattr(self, name))) for name in self.template_fields}
        return dataclasses.replace(self, **rendered)

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as JSON-friendly plain dicts and lists (the inverse of :meth:`from_dict`)."""
        return {
            field.name: (
                getattr(self, field.name).to_dict()
                if field.name == "resources"
                else _thaw(getattr(self, field.name))
            )
            for field in dataclasses.fields(self)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RuntimeSpec:
        """Build a spec from :meth:`to_dict`'s output.

        :param data: field name to value; ``resources`` may be a dict.
        """
        names = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InvalidSpecError(
                unknown[0],
                "is not a RuntimeSpec field",
                f"Use only these fields: {', '.join(sorted(names))}.",
            )
        values = dict(data)
        resources = values.get("resources")
        if isinstance(resources, Mapping):
            profile_fields = {field.name for field in dataclasses.fields(ResourceProfile)}
            if not set(resources) <= profile_fields:
                raise InvalidSpecError(
                    "resources",
                    f"has unknown keys {sorted(set(resources) - profile_fields)}",
                    f"Use only these keys: {', '.join(sorted(profile_fields))}.",
                )
            values["resources"] = ResourceProfile(**resources)
        return cls(**values)


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
    spec: RuntimeSpec, *, runtime: str, job_name: str, run_environment: Mapping[str, str] = _EMPTY
) -> dict[str, str]:
    """Return the environment the program in the container sees, sorted by name (see the module docstring).

    :param spec: the runtime spec.
    :param runtime: ``sagemaker``, ``kubernetes`` or ``validation``; becomes ``LYFTLEARN_RUNTIME``.
    :param job_name: becomes ``LYFTLEARN_JOB_NAME``.
    :param run_environment: ``LYFTLEARN_*`` variables from the operator, e.g. ``LYFTLEARN_RUN_ID``.
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
    for name, value in _require_mapping(
        run_environment, "run_environment", "{'LYFTLEARN_RUN_ID': '...'}"
    ).items():
        field = f"run_environment[{name!r}]"
        _check_environment_name(name, field)
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
        _check_no_access_key(value, field)
        environment[name] = value
    environment[ENV_RUNTIME] = runtime_name
    environment[ENV_JOB_NAME] = job_name
    if spec.config:
        environment[ENV_CONFIG] = _compact_json(spec.config)
    if spec.secrets:
        environment[ENV_SECRETS] = _compact_json(spec.secrets)
    if spec.metrics_host is not None:
        port = str(spec.metrics_port)
        environment[ENV_STATSD_HOST] = spec.metrics_host
        environment[ENV_STATSD_PORT] = port
        for name, value in (("STATSD_HOST", spec.metrics_host), ("STATSD_PORT", port)):
            if name not in spec.environment and name not in spec.secrets:
                environment[name] = value
    return dict(sorted(environment.items()))


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


def spill_payload_for(document: Mapping[str, Mapping[str, str]] | None) -> bytes | None:
    """Return a spill document as canonical JSON bytes (identical for identical input), or None.

    :param document: ``{"environment": {...}, "hyperparameters": {...}}`` or None.
    """
    if document is None:
        return None
    return json.dumps(_thaw(document), sort_keys=True, separators=(",", ":")).encode()


def _value_length(name: str, value: str) -> int:
    return len(value)


@dataclasses.dataclass(frozen=True)
class EntryLimits:
    """Describe how many and how large entries a runtime passes to the program directly.

    :param max_entry_size: the largest ``size(name, value)`` one entry may have.
    :param size: measures one entry; by default the value's length in characters.
    :param max_entries: the most entries, None for no limit.
    :param max_total_size: the largest sum of the kept entries' sizes, None for no limit.
    """

    max_entry_size: int
    size: Callable[[str, str], int] = _value_length
    max_entries: int | None = None
    max_total_size: int | None = None

    def reserving(self, name: str, value: str) -> EntryLimits:
        """Return these limits with room kept for one more entry, e.g. the spill pointer."""
        return dataclasses.replace(
            self,
            max_entries=None if self.max_entries is None else self.max_entries - 1,
            max_total_size=None
            if self.max_total_size is None
            else self.max_total_size - self.size(name, value),
        )


SAGEMAKER_ENVIRONMENT_LIMITS = EntryLimits(
    max_entry_size=MAX_ENVIRONMENT_VALUE_LENGTH, max_entries=MAX_ENVIRONMENT_ENTRIES
)
SAGEMAKER_HYPERPARAMETER_LIMITS = EntryLimits(
    max_entry_size=MAX_HYPERPARAMETER_VALUE_LENGTH, max_entries=MAX_HYPERPARAMETERS
)


def split_to_fit(
    entries: Mapping[str, str], limits: EntryLimits, *, pinned: frozenset[str] = frozenset()
) -> tuple[dict[str, str], dict[str, str]]:
    """Split entries into (kept, moved), both sorted by key.

    Over-sized entries move first; of the rest, in key order with ``pinned`` names first, everything
    from the first entry that would break the count or total limit moves too.

    :param entries: name to value.
    :param limits: what the runtime passes directly.
    :param pinned: names to keep ahead of the others.
    """
    moved = {
        key: value
        for key, value in sorted(entries.items())
        if limits.size(key, value) > limits.max_entry_size
    }
    remaining = sorted((key for key in entries if key not in moved), key=lambda key: (key not in pinned, key))
    kept: dict[str, str] = {}
    total = 0
    for index, key in enumerate(remaining):
        total += limits.size(key, entries[key])
        if (limits.max_entries is not None and index >= limits.max_entries) or (
            limits.max_total_size is not None and total > limits.max_total_size
        ):
            moved.update((overflow, entries[overflow]) for overflow in remaining[index:])
            break
        kept[key] = entries[key]
    return dict(sorted(kept.items())), dict(sorted(moved.items()))


@dataclasses.dataclass(frozen=True)
class SpillSplit:
    """Hold what a runtime passes directly and what travels in the spill document.

    :param environment: the environment to set, with ``LYFTLEARN_SPILL_URI`` when anything spilled.
    :param hyperparameters: the hyperparameters to pass directly.
    :param spill_uri: where the document goes, or None when nothing spilled.
    :param spill_document: ``{"environment": {...}, "hyperparameters": {...}}`` or None.
    """

    environment: dict[str, str]
    hyperparameters: dict[str, str]
    spill_uri: str | None = None
    spill_document: dict[str, dict[str, str]] | None = None


def split_for_spill(
    spec: RuntimeSpec,
    *,
    job_name: str,
    environment: Mapping[str, str],
    hyperparameters: Mapping[str, str],
    environment_limits: EntryLimits,
    hyperparameter_limits: EntryLimits,
    runtime: str = Runtime.SAGEMAKER.value,
) -> SpillSplit:
    """Apply the spill rule of the module docstring for one runtime's limits.

    The variables a program needs before it can read the document (``LYFTLEARN_RUNTIME``,
    ``LYFTLEARN_JOB_NAME``) always stay, and room is kept for the pointer.

    :param spec: the runtime spec (for the spill location).
    :param job_name: names the document's folder.
    :param environment: :func:`container_environment`'s result.
    :param hyperparameters: :func:`hyperparameter_values`' result.
    :param environment_limits: what the runtime's environment carries.
    :param hyperparameter_limits: what the runtime's hyperparameters carry.
    :param runtime: the runtime, which names the document (see :func:`spill_uri_for`).
    """
    kept_hyperparameters, moved_hyperparameters = split_to_fit(hyperparameters, hyperparameter_limits)
    kept_environment, moved_environment = split_to_fit(environment, environment_limits)
    if not (moved_environment or moved_hyperparameters):
        return SpillSplit(environment=kept_environment, hyperparameters=kept_hyperparameters)
    spill_uri = spill_uri_for(spec, job_name, runtime=runtime)
    limit = environment_limits.max_entry_size
    if environment_limits.size(ENV_SPILL_URI, spill_uri) > limit:
        raise InvalidSpecError(
            "spill_s3_uri",
            f"the spill URI {spill_uri!r} is longer than an environment value may be",
            f"Set spill_s3_uri to a prefix short enough that the URI fits {limit} characters.",
        )
    kept_environment, moved_environment = split_to_fit(
        environment,
        environment_limits.reserving(ENV_SPILL_URI, spill_uri),
        pinned=frozenset({ENV_RUNTIME, ENV_JOB_NAME}),
    )
    return SpillSplit(
        environment=dict(sorted({**kept_environment, ENV_SPILL_URI: spill_uri}.items())),
        hyperparameters=kept_hyperparameters,
        spill_uri=spill_uri,
        spill_document={"environment": moved_environment, "hyperparameters": moved_hyperparameters},
    )


def spill_uri_for(spec: RuntimeSpec, job_name: str, *, runtime: str = Runtime.SAGEMAKER.value) -> str:
    """Return the S3 URI of the job's spill document.

    :param spec: the runtime spec.
    :param job_name: the training job (or pod's job) name.
    :param runtime: ``runtime.json`` holds SageMaker's document, ``runtime-<runtime>.json`` a pod's.
    """
    base = spec.spill_s3_uri or f"{spec.output_s3_uri.rstrip('/')}/{SPILL_DIRECTORY}"
    name = SPILL_OBJECT_NAME if runtime == Runtime.SAGEMAKER else f"runtime-{Runtime(runtime).value}.json"
    return f"{base.rstrip('/')}/{job_name}/{name}"


def require_rendered(spec: RuntimeSpec) -> None:
    """Raise ``InvalidSpecError`` when a field that skipped its format check still holds a template.

    :param spec: the runtime spec about to be rendered for a runtime.
    """
    candidates = [("image", spec.image), ("output_s3_uri", spec.output_s3_uri)]
    candidates += [(f"inputs[{channel!r}]", uri) for channel, uri in spec.inputs.items()]
    for field, value in candidates:
        if _is_templated(value):
            raise InvalidSpecError(
                field,
                "still contains a Jinja template",
                "Render the spec first: spec.render_with(partial(self.render_template, context=context)).",
            )


def _validated_tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    tags = _require_mapping(tags, "tags", "{'team': 'fraud'}")
    if len(tags) > MAX_TAGS:
        raise InvalidSpecError(
            "tags", f"has {len(tags)} tags", f"Use at most {MAX_TAGS} tags; tags cannot be moved to S3."
        )

    def allowed(text: str) -> bool:
        return all(char in _TAG_PUNCTUATION or unicodedata.category(char)[0] in "LZN" for char in text)

    for key, value in tags.items():
        field = f"tags[{key!r}]"
        if not isinstance(key, str) or not 1 <= len(key) <= MAX_TAG_KEY_LENGTH or not allowed(key):
            raise InvalidSpecError(
                field,
                "is not a valid tag key",
                f"Use 1-{MAX_TAG_KEY_LENGTH} letters, digits, spaces or _.:/=+-@ characters.",
            )
        if key.lower().startswith("aws:"):
            raise InvalidSpecError(
                field, "the aws: prefix is reserved by AWS", "Choose a key without 'aws:'."
            )
        if not isinstance(value, str) or len(value) > MAX_TAG_VALUE_LENGTH or not allowed(value):
            raise InvalidSpecError(
                field,
                "is not a valid tag value",
                f"Use at most {MAX_TAG_VALUE_LENGTH} letters, digits, spaces or _.:/=+-@ characters.",
            )
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def render_training_job(
    spec: RuntimeSpec,
    *,
    job_name: str,
    max_runtime_seconds: int,
    keep_alive_seconds: int | None = None,
    tags: Mapping[str, str] = _EMPTY,
    run_environment: Mapping[str, str] = _EMPTY,
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
    _require_int(
        max_runtime_seconds,
        "max_runtime_seconds",
        MIN_RUNTIME_SECONDS,
        MAX_RUNTIME_SECONDS,
        "Use 1 second to 28 days; set the task's execution_timeout accordingly.",
    )
    if keep_alive_seconds is not None:
        _require_int(
            keep_alive_seconds,
            "keep_alive_seconds",
            0,
            MAX_KEEP_ALIVE_SECONDS,
            f"Use 0..{MAX_KEEP_ALIVE_SECONDS} seconds, or None for no warm pool.",
        )
    tag_list = _validated_tags(tags)
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
