"""The runtime spec: one validated description of a container run, for SageMaker and Kubernetes alike.

:class:`RuntimeSpec` says what a container needs (image, command, environment, config,
hyperparameters, secret references, inputs, metrics endpoint, resources) and validates all of it
on construction, so bad input fails at DAG parse time or before anything is created, with an
:class:`~lyftlearn_provider.exceptions.InvalidSpecError` that names the field and the fix.
Everything here is pure and imports only the standard library: DAG files import it on every parse.

What the program in the container sees is the container contract (:mod:`lyftlearn_provider.contract`);
values too large for a runtime's API travel in the spill document (:mod:`lyftlearn_provider.spill`);
:mod:`lyftlearn_provider.rendering.sagemaker` and :mod:`lyftlearn_provider.rendering.kubernetes` turn a
rendered spec into a ``CreateTrainingJob`` request and a pod.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from lyftlearn_provider.contract import check_user_environment_name
from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.images import check_image_reference
from lyftlearn_provider.limits import (
    CHANNEL_NAME_PATTERN,
    MAX_CHANNEL_NAME_LENGTH,
    MAX_CONTAINER_ARGUMENT_LENGTH,
    MAX_CONTAINER_ARGUMENTS,
    MAX_HYPERPARAMETER_KEY_LENGTH,
    MAX_INPUT_CHANNELS,
    MAX_ROLE_ARN_LENGTH,
    MIN_ROLE_ARN_LENGTH,
    ROLE_ARN_PATTERN,
)
from lyftlearn_provider.validation import (
    CREDENTIAL_NAMES,
    USE_ROLE,
    FrozenMapping,
    check_cpu,
    check_memory,
    check_s3_uri,
    check_secret_reference,
    check_text,
    freeze_json,
    holds_template,
    is_templated,
    require_int,
    require_mapping,
    thaw,
)

if TYPE_CHECKING:
    from collections.abc import Callable

#: The user id a ``restricted`` pod runs as unless ``RuntimeSpec.run_as_user`` says otherwise.
DEFAULT_RUN_AS_USER = 1000
MAX_USER_ID = 2**31 - 1

_CHANNEL_NAME = re.compile(CHANNEL_NAME_PATTERN, re.ASCII)
_ROLE_ARN = re.compile(ROLE_ARN_PATTERN, re.ASCII)
_INSTANCE_TYPE = re.compile(r"ml\.[a-z][a-z0-9]*(?:-[a-z0-9]+)*\.[a-z0-9]+", re.ASCII)
_HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._:-]{0,251}[A-Za-z0-9])?", re.ASCII)


class PodSecurity(str, enum.Enum):
    """Name the Kubernetes Pod Security Standard a pod rendered from the spec satisfies."""

    #: Non-root user, read-only root file system, no privilege escalation, all capabilities dropped,
    #: ``RuntimeDefault`` seccomp profile (R7). The default.
    RESTRICTED = "restricted"
    #: The explicit opt-out for images that must run as root or write to their root file system:
    #: the image's user and writable root file system, the runtime's default capabilities; still never
    #: privileged, still no privilege escalation, still ``RuntimeDefault`` seccomp.
    BASELINE = "baseline"


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
        if not item:
            # SageMaker's ContainerEntrypoint and ContainerArguments take 1-256 characters per item.
            raise InvalidSpecError(
                item_field,
                "is an empty string, which SageMaker refuses",
                "Leave the item out, or pass a value such as '--flag=' that the program understands.",
            )
        if len(item) > MAX_CONTAINER_ARGUMENT_LENGTH:
            raise InvalidSpecError(
                item_field,
                f"is {len(item)} characters long, over SageMaker's {MAX_CONTAINER_ARGUMENT_LENGTH}",
                "Move long values into config or environment, which spill to S3 when needed.",
            )
        check_text(item, item_field)
    return tuple(value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ResourceProfile:
    """Describe the compute a job runs on.

    The Kubernetes fields size a pod; None derives them from ``instance_type``
    (:func:`lyftlearn_provider.rendering.kubernetes.pod_resources`).

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

    def __post_init__(self) -> None:
        if not isinstance(self.instance_type, str) or not _INSTANCE_TYPE.fullmatch(self.instance_type):
            raise InvalidSpecError(
                "resources.instance_type",
                f"{self.instance_type!r} is not a SageMaker instance type",
                "Use ml.<family>.<size>, e.g. 'ml.m5.xlarge' or 'ml.g5.2xlarge'.",
            )
        require_int(
            self.instance_count, "resources.instance_count", 1, None, "Use a whole number of instances >= 1."
        )
        # The service model allows 0 (serverless jobs); an EBS-backed instance needs at least 1 GB.
        require_int(
            self.volume_size_gb, "resources.volume_size_gb", 1, None, "Use a whole number of GB >= 1."
        )
        if self.cpu is not None:
            check_cpu(self.cpu, "resources.cpu")
        if self.memory is not None:
            check_memory(self.memory, "resources.memory")
        if self.gpu is not None:
            require_int(
                self.gpu,
                "resources.gpu",
                0,
                None,
                "Use a whole number of GPUs >= 0, or None to derive it from the instance type.",
            )


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
        check_image_reference(self.image, "image")
        self._validate_role_arn()
        check_s3_uri(self.output_s3_uri, "output_s3_uri")
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
        require_int(self.metrics_port, "metrics_port", 1, 65535, "Use a TCP/UDP port in 1..65535, e.g. 8125.")
        if self.spill_s3_uri is not None:
            check_s3_uri(self.spill_s3_uri, "spill_s3_uri")
        self._validate_pod_security()

    def _freeze(self, name: str, value: object) -> None:
        object.__setattr__(self, name, value)

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
        require_int(
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
        environment = require_mapping(self.environment, "environment", "{'LOG_LEVEL': 'info'}")
        for name, value in environment.items():
            field = f"environment[{name!r}]"
            check_user_environment_name(name, field)
            if not isinstance(value, str):
                raise InvalidSpecError(
                    field, f"value {value!r} is not a string", "Quote the value, e.g. '8' instead of 8."
                )
            check_text(value, field)
        return FrozenMapping(environment)

    def _validated_hyperparameters(self) -> FrozenMapping[str, str | int | float | bool]:
        hyperparameters = require_mapping(self.hyperparameters, "hyperparameters", "{'learning_rate': 0.1}")
        fix = "Use a str, int, float or bool value; put structured values in config."
        for key, value in hyperparameters.items():
            field = f"hyperparameters[{key!r}]"
            if not isinstance(key, str) or not 1 <= len(key) <= MAX_HYPERPARAMETER_KEY_LENGTH:
                raise InvalidSpecError(
                    field,
                    f"the key is not a string of 1..{MAX_HYPERPARAMETER_KEY_LENGTH} characters",
                    f"Use a string key of at most {MAX_HYPERPARAMETER_KEY_LENGTH} characters.",
                )
            if key.upper() in CREDENTIAL_NAMES:
                raise InvalidSpecError(field, f"{key} passes static AWS credentials", USE_ROLE)
            if not isinstance(value, (str, int, float)):
                raise InvalidSpecError(field, f"{type(value).__name__} is not a hyperparameter type", fix)
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidSpecError(field, f"{value!r} is not a finite number", fix)
            if isinstance(value, str):
                check_text(value, field)
        return FrozenMapping(hyperparameters)

    def _validated_config(self) -> Mapping[str, Any]:
        config: Mapping[str, Any] = freeze_json(
            require_mapping(self.config, "config", "{'model': {'depth': 6}}"), "config"
        )
        return config

    def _validated_secrets(self) -> FrozenMapping[str, str]:
        secrets = require_mapping(self.secrets, "secrets", "{'DB_PASSWORD': 'prod/fraud/db-password'}")
        for name, reference in secrets.items():
            field = f"secrets[{name!r}]"
            check_user_environment_name(name, field)
            if name in self.environment:
                raise InvalidSpecError(
                    field,
                    "the name is also set in environment",
                    "Set the variable either as a secret or in environment, not both.",
                )
            check_secret_reference(reference, field)
        return FrozenMapping(secrets)

    def _validated_inputs(self) -> FrozenMapping[str, str]:
        inputs = require_mapping(self.inputs, "inputs", "{'train': 's3://bucket/data/train/'}")
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
            check_s3_uri(uri, field)
        return FrozenMapping(inputs)

    def is_templated(self) -> bool:
        """Return whether any of :attr:`template_fields` still holds a Jinja template, at any depth."""
        return any(holds_template(getattr(self, name)) for name in self.template_fields)

    def render_with(self, render: Callable[[Any], Any]) -> RuntimeSpec:
        """Return a new, validated spec with ``render`` applied to each of :attr:`template_fields`.

        Each field reaches ``render`` as plain lists and dicts, the shapes Airflow's templater walks;
        ``render`` is called once per field, in :attr:`template_fields` order.

        :param render: e.g. ``functools.partial(operator.render_template, context=context)``.
        """
        rendered = {name: render(thaw(getattr(self, name))) for name in self.template_fields}
        return dataclasses.replace(self, **rendered)

    def for_backend(self, backend: str | None) -> RuntimeSpec:
        """Return this spec, shown (in Rendered Templates) with the fields that ``backend`` uses.

        Equal to this spec: the backend changes what :meth:`serialize` shows, nothing the spec means.
        """
        shown = dataclasses.replace(self)
        object.__setattr__(shown, "_shown_for", backend)
        return shown

    def serialize(self) -> dict[str, Any]:
        """Return the spec as readable, JSON-safe data: what Airflow's Rendered Templates tab shows.

        Airflow calls this for a template field's value. Secrets are shown as the references they are.
        """
        return self.view(self.__dict__.get("_shown_for"))

    def view(self, backend: str | None = None) -> dict[str, Any]:
        """Return the fields a run on ``backend`` (``sagemaker``, ``kubernetes``; None: any) uses, as data.

        Fields left at a default that ``backend`` ignores are left out; the pod's size is shown as
        derived from the instance type when the backend runs pods.
        """
        view: dict[str, Any] = {
            "image": self.image,
            "role_arn": self.role_arn,
            "command": list(self.command),
            "args": list(self.args),
            "environment": thaw(self.environment),
            "hyperparameters": thaw(self.hyperparameters),
            "config": thaw(self.config),
            "secrets": thaw(self.secrets),
            "inputs": thaw(self.inputs),
            "output_s3_uri": self.output_s3_uri,
        }
        resources = self.resources
        if backend != "kubernetes":
            view["resources"] = {
                "instance_type": resources.instance_type,
                "instance_count": resources.instance_count,
                "volume_size_gb": resources.volume_size_gb,
            }
        if backend != "sagemaker":
            pod: dict[str, Any] = {"instance_type": resources.instance_type}
            if backend == "kubernetes":
                from lyftlearn_provider.rendering.kubernetes import pod_resources

                try:
                    pod.update(pod_resources(resources)["limits"])
                except InvalidSpecError as error:
                    pod["error"] = str(error)
            else:
                pod.update({"cpu": resources.cpu, "memory": resources.memory, "gpu": resources.gpu})
            view["pod_resources"] = {key: value for key, value in pod.items() if value is not None}
            view["pod_security"] = self.pod_security
            if self.run_as_user is not None:
                view["run_as_user"] = self.run_as_user
        if self.metrics_host is not None:
            view["metrics"] = f"{self.metrics_host}:{self.metrics_port}"
        if self.spill_s3_uri is not None:
            view["spill_s3_uri"] = self.spill_s3_uri
        return view


def require_rendered(spec: RuntimeSpec) -> None:
    """Raise ``InvalidSpecError`` when a field that skipped its format check still holds a template.

    :param spec: the runtime spec about to be rendered for a runtime.
    """
    candidates = [("image", spec.image), ("output_s3_uri", spec.output_s3_uri)]
    candidates += [(f"inputs[{channel!r}]", uri) for channel, uri in spec.inputs.items()]
    for field, value in candidates:
        if is_templated(value):
            raise InvalidSpecError(
                field,
                "still contains a Jinja template",
                "Render the spec first: spec.render_with(partial(self.render_template, context=context)).",
            )
