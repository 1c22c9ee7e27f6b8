"""Render a RuntimeSpec to a Kubernetes pod that gives the program the same contract as SageMaker.

The other half of the runtime contract (:mod:`lyftlearn_provider.contract`): pure functions that turn
a validated spec into plain JSON-shaped manifests in the Kubernetes API's camelCase (what
``kubectl get pod -o json`` shows). Only the standard library and this package are imported; the
cncf-kubernetes provider takes the dicts as they are.

What the program sees, and how the pod provides it
--------------------------------------------------
- **Image, command, args**: the spec's image; ``command`` / ``args`` become the container's
  ``command`` / ``args`` exactly as they become SageMaker's ``ContainerEntrypoint`` /
  ``ContainerArguments`` (absent when empty, so the image's own entrypoint runs). A digest-pinned
  image is pulled ``IfNotPresent``; a tag is pulled ``Always``, as SageMaker resolves it on every job.
- **Environment**: exactly :func:`~lyftlearn_provider.runtime.container_environment` with
  ``LYFTLEARN_RUNTIME=kubernetes`` (or ``validation``). ``enableServiceLinks`` is off so Kubernetes
  adds no ``<SERVICE>_PORT`` variables of its own.
- **Hyperparameters**: the file ``/opt/ml/input/config/hyperparameters.json``, as on SageMaker. The
  pod carries the JSON (:func:`~lyftlearn_provider.contract.hyperparameter_values`, compact, sorted) in
  the annotation ``lyftlearn.io/hyperparameters``; a read-only ``downwardAPI`` volume projects that
  annotation to the file. No ConfigMap to create or clean up, no helper image, nothing writable.
- **Spilling**: the same rule and document as SageMaker's
  (:func:`~lyftlearn_provider.spill.split_for_spill`), against the limits Kubernetes and Linux
  really have: an entry moves when ``NAME=value`` is over 128 KiB (Linux's ``MAX_ARG_STRLEN``; ``execve``
  would fail), when the environment passes 512 KiB, or when the hyperparameters annotation passes
  128 KiB (the API server allows 256 KiB of annotations in all). :func:`render_pod` returns a
  :class:`PodRendering` with the document and its URI (``.../<job>/runtime-kubernetes.json``) for the
  operator to upload before creating the pod, exactly as for SageMaker. Usually
  ``LYFTLEARN_SPILL_URI`` is absent and the program sees every value directly; after the merge the
  program's view is the same either way
  (:func:`lyftlearn_provider.testing.parity.program_view` proves it).
- **Input channels**: SageMaker's File mode downloads each ``inputs`` channel to
  ``/opt/ml/input/data/<channel>`` before the program starts. The pod does the same with one init
  container per channel running ``aws s3 cp --recursive`` from ``input_loader_image`` (an AWS CLI v2
  image; pin it by digest) under the same service account.
- **Writable paths**: ``/tmp``, ``/opt/ml/model``, ``/opt/ml/output`` and ``/opt/ml/checkpoints`` are
  ``emptyDir`` volumes, so a program that writes where SageMaker lets it also works on a read-only root
  file system.
- **Credentials**: the pod runs as ``service_account``, which on EKS is annotated
  ``eks.amazonaws.com/role-arn`` with the spec's ``role_arn`` (IRSA;
  :func:`require_service_account_role` checks it before the pod is created). The EKS webhook then
  adds ``AWS_ROLE_ARN`` and ``AWS_WEB_IDENTITY_TOKEN_FILE`` to every container; the spec may not set
  those itself, because the webhook skips containers that do and the SDKs would fall back to the
  node's role. The Kubernetes API token is not mounted: the program needs AWS, not the cluster.
- **Stopping**: ``activeDeadlineSeconds`` plays ``MaxRuntimeInSeconds``; SageMaker's 120 s between
  SIGTERM and SIGKILL is the pod's ``terminationGracePeriodSeconds``.
- **Metrics**: StatsD host and port arrive through the environment, unchanged. A node-local agent
  (DaemonSet) is reached through a Service with ``internalTrafficPolicy: Local`` named in
  ``metrics_host``; a downward-API host IP is not offered because SageMaker could not resolve it.

Security (R7)
-------------
``RuntimeSpec.pod_security="restricted"`` (the default) renders a pod that passes the Kubernetes
``restricted`` Pod Security Standard and more: ``runAsNonRoot``, ``runAsUser`` (``run_as_user`` or
1000; also ``fsGroup``, so the program can read the IRSA token), ``seccompProfile: RuntimeDefault``;
every container ``allowPrivilegeEscalation: false``, ``privileged: false``,
``readOnlyRootFilesystem: true``, ``capabilities.drop: [ALL]``. ``pod_security="baseline"`` is the
explicit opt-out for images that must run as root or write to their root file system: the image's
user and a writable root file system with the runtime's default capabilities, but still never
privileged, never escalating and always ``RuntimeDefault`` seccomp.

Resources
---------
A pod is one instance (``instance_count`` must be 1). Requests equal limits (Guaranteed QoS, like a
dedicated instance). ``ResourceProfile.cpu`` / ``memory`` / ``gpu`` win; unset ones are derived from
``instance_type`` with :data:`INSTANCE_SIZES` (m5, c5, g4dn, g5, p3): CPU is the instance's vCPUs less
``max(0.5, 5 %)``, memory 85 % of the instance's less 512 Mi, so the pod fits on a node of that type
beside the kubelet, the OS and the usual DaemonSets; GPUs become the ``nvidia.com/gpu`` limit. Other
instance types need ``cpu``, ``memory`` and ``gpu`` set explicitly.

Not provided by the pod, by design: SageMaker's other ``/opt/ml/input/config`` files
(``resourceconfig.json``, ``inputdataconfig.json``), multi-instance training, and uploading
``/opt/ml/model`` to S3 when the program ends (a training pod's program writes its artifact to S3
itself, or the operator collects it).
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, NoReturn

from lyftlearn_provider.contract import (
    ENV_CONFIG,
    ENV_SECRETS,
    HYPERPARAMETERS_FILE,
    INPUT_CONFIG_DIR,
    INPUT_DATA_DIR,
    STOP_GRACE_SECONDS,
    WRITABLE_DIRECTORIES,
    BatchData,
    Runtime,
    container_environment,
    hyperparameter_values,
)
from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.images import parse_image_reference
from lyftlearn_provider.naming import validate_job_name
from lyftlearn_provider.runtime import (
    DEFAULT_RUN_AS_USER,
    PodSecurity,
    ResourceProfile,
    RuntimeSpec,
    require_rendered,
)
from lyftlearn_provider.spill import EntryLimits, SpillSplit, spill_payload_for, split_for_spill
from lyftlearn_provider.validation import EMPTY

CONFIG_VOLUME = "lyftlearn-config"
INPUT_DATA_VOLUME = "lyftlearn-input-data"
INPUT_LOADER_TMP_VOLUME = "lyftlearn-input-loader-tmp"
INPUT_LOADER_PREFIX = "lyftlearn-input-"
INPUT_LOADER_ARGS = ("s3", "cp", "--recursive", "--only-show-errors")

LYFTLEARN_PREFIX = "lyftlearn.io/"
HYPERPARAMETERS_ANNOTATION = f"{LYFTLEARN_PREFIX}hyperparameters"
JOB_NAME_LABEL = f"{LYFTLEARN_PREFIX}job-name"
RUNTIME_LABEL = f"{LYFTLEARN_PREFIX}runtime"
#: The run's base job name, on every attempt's pod: how a retry finds the run's pods.
RUN_LABEL = f"{LYFTLEARN_PREFIX}run"
#: The attempt number (1, 2 ...) of the pod within its run.
ATTEMPT_LABEL = f"{LYFTLEARN_PREFIX}attempt"
#: The image reference as the DAG wrote it, before pinning: a retry re-pins when it changed.
IMAGE_REFERENCE_ANNOTATION = f"{LYFTLEARN_PREFIX}image-reference"
IRSA_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
GPU_RESOURCE = "nvidia.com/gpu"
DEFAULT_CONTAINER_NAME = "base"

# Kubernetes' own limits (k8s.io/apimachinery validation) and Linux's.
MAX_DNS_LABEL_LENGTH = 63
MAX_DNS_SUBDOMAIN_LENGTH = 253
MAX_LABEL_VALUE_LENGTH = 63
MAX_QUALIFIED_NAME_LENGTH = 63
#: The API server's limit on all of an object's annotations together (keys and values, in bytes).
MAX_ANNOTATIONS_BYTES = 256 * 1024
#: Of those, what the caller's annotations may use and what the hyperparameters may; the rest is left
#: for annotations other tools add (the pod operator, admission webhooks).
MAX_USER_ANNOTATIONS_BYTES = 64 * 1024
MAX_HYPERPARAMETERS_ANNOTATION_BYTES = 128 * 1024
#: Linux's MAX_ARG_STRLEN: the longest ``NAME=value`` string, with its NUL, execve passes on.
MAX_ENVIRONMENT_ENTRY_BYTES = 128 * 1024
#: Well inside both Linux's argument space (2 MiB by default) and etcd's 1.5 MiB object limit.
MAX_ENVIRONMENT_BYTES = 512 * 1024

_DNS_LABEL = re.compile(r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?", re.ASCII)
_DNS_SUBDOMAIN = re.compile(
    r"[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*", re.ASCII
)
_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?", re.ASCII)
#: Variables with which the EKS webhook decides a container already has its credentials.
_IRSA_VARIABLES = frozenset({"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"})
_RESTART_POLICIES = ("Never", "OnFailure")
_TOLERATION_KEYS = frozenset({"key", "operator", "value", "effect", "tolerationSeconds"})
_POD_RUNTIMES = (
    Runtime.KUBERNETES.value,
    Runtime.VALIDATION.value,
    Runtime.SERVING.value,
    Runtime.BATCH.value,
)


@dataclasses.dataclass(frozen=True)
class InstanceSize:
    """Hold an instance type's published size.

    :param vcpus: virtual CPUs.
    :param memory_gib: memory in GiB.
    :param gpus: NVIDIA GPUs.
    """

    vcpus: int
    memory_gib: int
    gpus: int = 0


#: SageMaker training instance types a pod can be sized from, with AWS's published sizes.
INSTANCE_SIZES: Mapping[str, InstanceSize] = MappingProxyType(
    {
        "ml.m5.large": InstanceSize(2, 8),
        "ml.m5.xlarge": InstanceSize(4, 16),
        "ml.m5.2xlarge": InstanceSize(8, 32),
        "ml.m5.4xlarge": InstanceSize(16, 64),
        "ml.m5.12xlarge": InstanceSize(48, 192),
        "ml.m5.24xlarge": InstanceSize(96, 384),
        "ml.c5.xlarge": InstanceSize(4, 8),
        "ml.c5.2xlarge": InstanceSize(8, 16),
        "ml.c5.4xlarge": InstanceSize(16, 32),
        "ml.c5.9xlarge": InstanceSize(36, 72),
        "ml.c5.18xlarge": InstanceSize(72, 144),
        "ml.g4dn.xlarge": InstanceSize(4, 16, 1),
        "ml.g4dn.2xlarge": InstanceSize(8, 32, 1),
        "ml.g4dn.4xlarge": InstanceSize(16, 64, 1),
        "ml.g4dn.8xlarge": InstanceSize(32, 128, 1),
        "ml.g4dn.12xlarge": InstanceSize(48, 192, 4),
        "ml.g4dn.16xlarge": InstanceSize(64, 256, 1),
        "ml.g5.xlarge": InstanceSize(4, 16, 1),
        "ml.g5.2xlarge": InstanceSize(8, 32, 1),
        "ml.g5.4xlarge": InstanceSize(16, 64, 1),
        "ml.g5.8xlarge": InstanceSize(32, 128, 1),
        "ml.g5.12xlarge": InstanceSize(48, 192, 4),
        "ml.g5.16xlarge": InstanceSize(64, 256, 1),
        "ml.g5.24xlarge": InstanceSize(96, 384, 4),
        "ml.g5.48xlarge": InstanceSize(192, 768, 8),
        "ml.p3.2xlarge": InstanceSize(8, 61, 1),
        "ml.p3.8xlarge": InstanceSize(32, 244, 4),
        "ml.p3.16xlarge": InstanceSize(64, 488, 8),
    }
)


def _environment_entry_bytes(name: str, value: str) -> int:
    return len(f"{name}={value}".encode()) + 1


def _json_member_bytes(name: str, value: str) -> int:
    # '"name":"value",' in the compact annotation JSON; the braces are left out of the budget below.
    return (
        len(json.dumps(name, ensure_ascii=False).encode())
        + len(json.dumps(value, ensure_ascii=False).encode())
        + 2
    )


POD_ENVIRONMENT_LIMITS = EntryLimits(
    max_entry_size=MAX_ENVIRONMENT_ENTRY_BYTES,
    size=_environment_entry_bytes,
    max_total_size=MAX_ENVIRONMENT_BYTES,
)
POD_HYPERPARAMETER_LIMITS = EntryLimits(
    max_entry_size=MAX_HYPERPARAMETERS_ANNOTATION_BYTES - 2,
    size=_json_member_bytes,
    max_total_size=MAX_HYPERPARAMETERS_ANNOTATION_BYTES - 2,
)


@dataclasses.dataclass(frozen=True)
class RunLabels:
    """The run a pod belongs to: labelled so a retry finds it, annotated with the image reference.

    :param base_name: the run's base job name (a label value: at most 63 characters).
    :param attempt: the attempt number within the run.
    :param image_reference: the image reference as the DAG wrote it, before pinning.
    """

    base_name: str
    attempt: int
    image_reference: str

    def labels(self) -> dict[str, str]:
        """Return the pod's run and attempt labels."""
        return {RUN_LABEL: self.base_name, ATTEMPT_LABEL: str(self.attempt)}

    def annotations(self) -> dict[str, str]:
        """Return the pod's image-reference annotation."""
        return {IMAGE_REFERENCE_ANNOTATION: self.image_reference}


def xcom_sidecar_security_context() -> dict[str, Any]:
    """Return the security context of KubernetesPodOperator's XCom sidecar: restricted, whatever the spec.

    The sidecar only waits and answers ``cat`` through exec; it needs no privilege, capability or
    writable root file system (R7), and runs as the pod's non-root user.
    """
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
    }


@dataclasses.dataclass(frozen=True)
class PodRendering:
    """Hold a pod manifest and what must be uploaded before the pod is created.

    :param manifest: the ``v1.Pod`` as a JSON-shaped dict.
    :param spill_uri: where to upload :attr:`spill_document`, or None when nothing spilled.
    :param spill_document: ``{"environment": {...}, "hyperparameters": {...}}`` or None.
    """

    manifest: dict[str, Any]
    spill_uri: str | None = None
    spill_document: dict[str, dict[str, str]] | None = None

    def spill_payload(self) -> bytes | None:
        """Return the spill document as canonical JSON bytes, or None."""
        return spill_payload_for(self.spill_document)


# ----------------------------------------------------------------------------------------- validation


def check_dns_label(value: object, field: str, example: str) -> str:
    """Return ``value`` when it is a DNS-1123 label (a namespace, a container name); raise naming the fix."""
    if not isinstance(value, str) or len(value) > MAX_DNS_LABEL_LENGTH or not _DNS_LABEL.fullmatch(value):
        raise InvalidSpecError(
            field,
            f"{value!r} is not a DNS-1123 label",
            f"Use 1-{MAX_DNS_LABEL_LENGTH} lowercase letters, digits and '-', starting and ending with a "
            f"letter or digit, e.g. {example!r}.",
        )
    return value


def check_dns_subdomain(value: object, field: str, example: str) -> str:
    """Return ``value`` when it is a DNS-1123 subdomain (a pod or service account name); raise otherwise."""
    if (
        not isinstance(value, str)
        or len(value) > MAX_DNS_SUBDOMAIN_LENGTH
        or not _DNS_SUBDOMAIN.fullmatch(value)
    ):
        raise InvalidSpecError(
            field,
            f"{value!r} is not a DNS-1123 subdomain",
            f"Use 1-{MAX_DNS_SUBDOMAIN_LENGTH} lowercase letters, digits, '-' and '.', each dot-separated "
            f"part starting and ending with a letter or digit, e.g. {example!r}.",
        )
    return value


def _check_qualified_name(key: object, field: str) -> str:
    fix = (
        f"Use [prefix/]name: an optional DNS subdomain prefix and a name of 1-{MAX_QUALIFIED_NAME_LENGTH} "
        "letters, digits, '-', '_' and '.', starting and ending with a letter or digit, "
        "e.g. 'example.com/team'."
    )
    if not isinstance(key, str):
        raise InvalidSpecError(field, f"key {key!r} is not a string", fix)
    prefix, _, name = key.rpartition("/")
    if (
        (prefix and (len(prefix) > MAX_DNS_SUBDOMAIN_LENGTH or not _DNS_SUBDOMAIN.fullmatch(prefix)))
        or len(name) > MAX_QUALIFIED_NAME_LENGTH
        or not _QUALIFIED_NAME.fullmatch(name)
    ):
        raise InvalidSpecError(field, f"{key!r} is not a valid key", fix)
    if key.startswith(LYFTLEARN_PREFIX):
        raise InvalidSpecError(
            field,
            f"the {LYFTLEARN_PREFIX} prefix is reserved for the provider",
            "Use a key with another prefix.",
        )
    return key


def check_labels(labels: object, field: str) -> dict[str, str]:
    """Return a copy of ``labels`` when every key and value is valid for Kubernetes; raise otherwise."""
    if not isinstance(labels, Mapping):
        raise InvalidSpecError(
            field, f"must be a mapping, got {type(labels).__name__}", "Pass a dict of str to str."
        )
    for key, value in labels.items():
        item = f"{field}[{key!r}]"
        _check_qualified_name(key, item)
        if (
            not isinstance(value, str)
            or len(value) > MAX_LABEL_VALUE_LENGTH
            or (value and not _QUALIFIED_NAME.fullmatch(value))
        ):
            raise InvalidSpecError(
                item,
                f"value {value!r} is not a valid label value",
                f"Use at most {MAX_LABEL_VALUE_LENGTH} letters, digits, '-', '_' and '.', starting and "
                "ending with a letter or digit (or an empty string); put longer text in an annotation.",
            )
    return dict(labels)


def _check_annotations(annotations: object) -> dict[str, str]:
    if not isinstance(annotations, Mapping):
        raise InvalidSpecError(
            "annotations",
            f"must be a mapping, got {type(annotations).__name__}",
            "Pass a dict of str to str.",
        )
    total = 0
    for key, value in annotations.items():
        item = f"annotations[{key!r}]"
        _check_qualified_name(key, item)
        if not isinstance(value, str):
            raise InvalidSpecError(item, f"value {value!r} is not a string", "Convert the value to a string.")
        total += len(key.encode()) + len(value.encode())
    if total > MAX_USER_ANNOTATIONS_BYTES:
        raise InvalidSpecError(
            "annotations",
            f"take {total} bytes, over the {MAX_USER_ANNOTATIONS_BYTES} this rendering leaves for them",
            "Keep annotations small; store large data in S3 and annotate its URI.",
        )
    return dict(annotations)


def _check_positive_int(value: object, field: str, fix: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidSpecError(field, f"{value!r} is not a whole number >= 1", fix)
    return value


def _check_pod_runtime(runtime: object) -> str:
    if runtime not in _POD_RUNTIMES:
        raise InvalidSpecError(
            "runtime",
            f"{runtime!r} is not a runtime a pod runs as",
            f"Use one of: {', '.join(_POD_RUNTIMES)}; SageMaker jobs are rendered by render_training_job.",
        )
    return Runtime(runtime).value


def _check_environment_for_pods(spec: RuntimeSpec) -> None:
    clashes = sorted(_IRSA_VARIABLES & set(spec.environment))
    if clashes:
        raise InvalidSpecError(
            f"environment[{clashes[0]!r}]",
            "would stop the EKS webhook from giving the pod its service account's role",
            "Remove it: the pod's role is role_arn, through its service account.",
        )


def _check_tolerations(tolerations: object) -> list[dict[str, Any]]:
    fix = (
        f"Pass a list of dicts with the keys {', '.join(sorted(_TOLERATION_KEYS))}, in Kubernetes' spelling."
    )
    if isinstance(tolerations, (str, Mapping)) or not isinstance(tolerations, Sequence):
        raise InvalidSpecError("tolerations", f"must be a list, got {type(tolerations).__name__}", fix)
    for index, toleration in enumerate(tolerations):
        if not isinstance(toleration, Mapping) or not set(toleration) <= _TOLERATION_KEYS:
            raise InvalidSpecError(f"tolerations[{index}]", "is not a toleration", fix)
    return [dict(toleration) for toleration in tolerations]


# ------------------------------------------------------------------------------------------- rendering


def _has_digest(image: str) -> bool:
    return parse_image_reference(image).digest is not None


def pod_name(job_name: str) -> str:
    """Return the pod name for a training job name: valid SageMaker names are DNS labels once lowercased.

    :param job_name: a SageMaker-valid job name (``naming.training_job_name`` makes them lowercase already).
    """
    return validate_job_name(job_name).lower()


def pod_resources(resources: ResourceProfile) -> dict[str, dict[str, str]]:
    """Return a container's ``resources`` (requests equal limits) for a resource profile.

    :param resources: explicit ``cpu`` / ``memory`` / ``gpu`` win; the rest come from :data:`INSTANCE_SIZES`.
    """
    if resources.instance_count != 1:
        raise InvalidSpecError(
            "resources.instance_count",
            f"is {resources.instance_count}, but a pod is one instance",
            "Use instance_count=1 to run on Kubernetes; multi-instance training runs on SageMaker.",
        )
    size = INSTANCE_SIZES.get(resources.instance_type)
    cpu = resources.cpu
    memory = resources.memory
    gpu = resources.gpu
    if size is not None:
        cpu = cpu or f"{size.vcpus * 1000 - max(500, size.vcpus * 50)}m"
        memory = memory or f"{size.memory_gib * 1024 * 85 // 100 - 512}Mi"
        gpu = size.gpus if gpu is None else gpu
    for field, value in (("resources.cpu", cpu), ("resources.memory", memory), ("resources.gpu", gpu)):
        if value is None:
            raise InvalidSpecError(
                field,
                f"is not set and {resources.instance_type} is not in the instance table to derive it from",
                "Set cpu, memory and gpu explicitly, e.g. ResourceProfile(instance_type=..., cpu='4', "
                f"memory='16Gi', gpu=0), or use one of: {', '.join(INSTANCE_SIZES)}.",
            )
    requests = {"cpu": str(cpu), "memory": str(memory)}
    limits = {**requests, GPU_RESOURCE: str(gpu)} if gpu else dict(requests)
    return {"limits": limits, "requests": requests}


def _pod_security_context(spec: RuntimeSpec) -> dict[str, Any]:
    context: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    if spec.pod_security == PodSecurity.RESTRICTED:
        user = DEFAULT_RUN_AS_USER if spec.run_as_user is None else spec.run_as_user
        context.update(fsGroup=user, runAsNonRoot=True, runAsUser=user)
    elif spec.run_as_user is not None:
        context["runAsUser"] = spec.run_as_user
    return dict(sorted(context.items()))


def _container_security_context(spec: RuntimeSpec) -> dict[str, Any]:
    restricted = spec.pod_security == PodSecurity.RESTRICTED
    context: dict[str, Any] = {
        "allowPrivilegeEscalation": False,
        "privileged": False,
        "readOnlyRootFilesystem": restricted,
    }
    if restricted:
        context["capabilities"] = {"drop": ["ALL"]}
    return dict(sorted(context.items()))


def _volume_mounts(spec: RuntimeSpec) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [{"mountPath": INPUT_CONFIG_DIR, "name": CONFIG_VOLUME, "readOnly": True}]
    if spec.inputs:
        mounts.append({"mountPath": INPUT_DATA_DIR, "name": INPUT_DATA_VOLUME})
    mounts += [{"mountPath": path, "name": volume} for volume, path in WRITABLE_DIRECTORIES.items()]
    return mounts


def _volumes(spec: RuntimeSpec) -> list[dict[str, Any]]:
    projection = {
        "fieldRef": {"fieldPath": f"metadata.annotations['{HYPERPARAMETERS_ANNOTATION}']"},
        "path": HYPERPARAMETERS_FILE,
    }
    volumes: list[dict[str, Any]] = [{"downwardAPI": {"items": [projection]}, "name": CONFIG_VOLUME}]
    if spec.inputs:
        volumes += [
            {"emptyDir": {}, "name": INPUT_DATA_VOLUME},
            {"emptyDir": {}, "name": INPUT_LOADER_TMP_VOLUME},
        ]
    volumes += [{"emptyDir": {}, "name": volume} for volume in WRITABLE_DIRECTORIES]
    return volumes


def _pod_split(
    spec: RuntimeSpec,
    *,
    runtime: str,
    job_name: str,
    run_environment: Mapping[str, str],
    model_uri: str | None,
    data: BatchData | None = None,
) -> SpillSplit:
    return split_for_spill(
        spec,
        job_name=job_name,
        environment=container_environment(
            spec,
            runtime=runtime,
            job_name=job_name,
            run_environment=run_environment,
            model_uri=model_uri,
            data=data,
        ),
        hyperparameters=hyperparameter_values(spec),
        environment_limits=POD_ENVIRONMENT_LIMITS,
        hyperparameter_limits=POD_HYPERPARAMETER_LIMITS,
        runtime=runtime,
    )


def _container(spec: RuntimeSpec, *, name: str, environment: Mapping[str, str]) -> dict[str, Any]:
    container: dict[str, Any] = {}
    if spec.args:
        container["args"] = list(spec.args)
    if spec.command:
        container["command"] = list(spec.command)
    container.update(
        env=[{"name": key, "value": value} for key, value in sorted(environment.items())],
        image=spec.image,
        imagePullPolicy="IfNotPresent" if _has_digest(spec.image) else "Always",
        name=name,
        resources=pod_resources(spec.resources),
        securityContext=_container_security_context(spec),
        volumeMounts=_volume_mounts(spec),
    )
    return container


def _input_loaders(spec: RuntimeSpec, loader_image: str | None) -> list[dict[str, Any]]:
    if not spec.inputs:
        return []
    if loader_image is None:
        raise InvalidSpecError(
            "input_loader_image",
            f"is not set, but the spec has input channels ({', '.join(sorted(spec.inputs))}) that SageMaker "
            f"would download to {INPUT_DATA_DIR}/<channel>",
            "Pass input_loader_image=<an AWS CLI v2 image pinned by digest>, e.g. "
            "'public.ecr.aws/aws-cli/aws-cli@sha256:...', or remove inputs for pods.",
        )
    parse_image_reference(loader_image, "input_loader_image")
    # The program's CPU and memory (the pod stays Guaranteed QoS), but no GPU: copying needs none.
    resources = pod_resources(spec.resources)
    loader_resources = {
        kind: {"cpu": values["cpu"], "memory": values["memory"]} for kind, values in resources.items()
    }
    loaders = []
    for index, (channel, uri) in enumerate(sorted(spec.inputs.items())):
        if channel in (".", ".."):
            raise InvalidSpecError(
                f"inputs[{channel!r}]", "is not a directory name", "Name the channel, e.g. 'train'."
            )
        loaders.append(
            {
                "args": [*INPUT_LOADER_ARGS, uri, f"{INPUT_DATA_DIR}/{channel}"],
                "command": ["aws"],
                # The AWS CLI caches the role's credentials under $HOME; keep them out of the program's /tmp.
                "env": [{"name": "HOME", "value": "/tmp"}],
                "image": loader_image,
                "imagePullPolicy": "IfNotPresent" if _has_digest(loader_image) else "Always",
                "name": f"{INPUT_LOADER_PREFIX}{index}",
                "resources": loader_resources,
                "securityContext": _container_security_context(spec),
                "volumeMounts": [
                    {"mountPath": INPUT_DATA_DIR, "name": INPUT_DATA_VOLUME},
                    {"mountPath": "/tmp", "name": INPUT_LOADER_TMP_VOLUME},
                ],
            }
        )
    return loaders


def _hyperparameters_json(hyperparameters: Mapping[str, str]) -> str:
    return json.dumps(dict(hyperparameters), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _refuse_spill(spec: RuntimeSpec, moved: Mapping[str, Mapping[str, str]]) -> NoReturn:
    """Raise naming the first value that would have to travel in the spill document."""
    if moved["environment"]:
        name = next(iter(moved["environment"]))
        if name == ENV_CONFIG:
            field = "config"
        elif name == ENV_SECRETS:
            field = "secrets"
        elif name in spec.environment:
            field = f"environment[{name!r}]"
        else:
            field = f"run_environment[{name!r}]"
        problem = (
            f"does not fit a pod's environment (at most {MAX_ENVIRONMENT_ENTRY_BYTES} bytes per NAME=value, "
            f"{MAX_ENVIRONMENT_BYTES} in all)"
        )
    else:
        field = f"hyperparameters[{next(iter(moved['hyperparameters']))!r}]"
        problem = f"does not fit the {MAX_HYPERPARAMETERS_ANNOTATION_BYTES}-byte hyperparameters annotation"
    raise InvalidSpecError(
        field,
        problem,
        "Render the whole pod with render_pod and upload its spill_document to its spill_uri before "
        "creating it, as for SageMaker; or store large data in S3 and pass its URI.",
    )


def render_container(
    spec: RuntimeSpec,
    *,
    job_name: str,
    name: str = DEFAULT_CONTAINER_NAME,
    runtime: str = Runtime.KUBERNETES.value,
    run_environment: Mapping[str, str] = EMPTY,
    model_uri: str | None = None,
) -> dict[str, Any]:
    """Return the program's container, exactly as :func:`render_pod` puts it first in the pod.

    Its volume mounts name the volumes :func:`render_pod` adds. A spec that would spill raises, since
    only :func:`render_pod` returns the document that must be uploaded with it.

    :param spec: the runtime spec, already rendered.
    :param job_name: becomes ``LYFTLEARN_JOB_NAME``; valid as a SageMaker job name.
    :param name: the container name, a DNS-1123 label (the pod operator's is ``base``).
    :param runtime: ``kubernetes`` or ``validation``; becomes ``LYFTLEARN_RUNTIME``.
    :param run_environment: ``LYFTLEARN_*`` variables from the operator.
    """
    require_rendered(spec)
    check_dns_label(name, "name", DEFAULT_CONTAINER_NAME)
    validate_job_name(job_name)
    runtime = _check_pod_runtime(runtime)
    _check_environment_for_pods(spec)
    split = _pod_split(
        spec, runtime=runtime, job_name=job_name, run_environment=run_environment, model_uri=model_uri
    )
    if split.spill_document is not None:
        _refuse_spill(spec, split.spill_document)
    return _container(spec, name=name, environment=split.environment)


def render_pod(
    spec: RuntimeSpec,
    *,
    name: str,
    namespace: str,
    service_account: str,
    job_name: str,
    runtime: str = Runtime.KUBERNETES.value,
    run_environment: Mapping[str, str] = EMPTY,
    labels: Mapping[str, str] = EMPTY,
    annotations: Mapping[str, str] = EMPTY,
    container_name: str = DEFAULT_CONTAINER_NAME,
    restart_policy: str = "Never",
    active_deadline_seconds: int | None = None,
    input_loader_image: str | None = None,
    node_selector: Mapping[str, str] = EMPTY,
    tolerations: Sequence[Mapping[str, Any]] = (),
    run: RunLabels | None = None,
    model_uri: str | None = None,
    data: BatchData | None = None,
) -> PodRendering:
    """Render a rendered spec to a ``v1.Pod`` and, for the rare spec that needs one, its spill document.

    Every argument is validated before anything is returned; a bad one raises ``InvalidSpecError``
    naming it and the fix. The operator uploads :attr:`PodRendering.spill_document` to
    :attr:`PodRendering.spill_uri`, when set, before it creates the pod, exactly as it does for a
    SageMaker job. See the module docstring for what the pod provides.

    :param spec: the runtime spec, already rendered.
    :param name: the pod name, a DNS-1123 subdomain (see :func:`pod_name`).
    :param namespace: a DNS-1123 label.
    :param service_account: the service account to run as, annotated with the spec's role
        (:func:`require_service_account_role`).
    :param job_name: becomes ``LYFTLEARN_JOB_NAME`` and the ``lyftlearn.io/job-name`` label; valid as a
        SageMaker job name, so one name serves both runtimes.
    :param runtime: ``kubernetes`` or ``validation``; becomes ``LYFTLEARN_RUNTIME``.
    :param run_environment: ``LYFTLEARN_*`` variables from the operator.
    :param labels: extra pod labels; the ``lyftlearn.io/`` prefix is reserved.
    :param annotations: extra pod annotations, at most 64 KiB; the ``lyftlearn.io/`` prefix is reserved.
    :param container_name: the program's container, a DNS-1123 label.
    :param restart_policy: ``Never`` (a failure fails the task) or ``OnFailure``.
    :param active_deadline_seconds: the pod's ``activeDeadlineSeconds``, SageMaker's ``MaxRuntimeInSeconds``.
    :param input_loader_image: an AWS CLI v2 image; required when the spec has ``inputs``.
    :param node_selector: the pod's ``nodeSelector``, e.g. a GPU node group's label.
    :param tolerations: the pod's ``tolerations`` in Kubernetes' spelling, e.g. for tainted GPU nodes.
    :param run: the run and attempt the pod belongs to, as the job operator labels its pods.
    :param model_uri: the trained model to load; becomes ``LYFTLEARN_MODEL_URI``.
    :param data: a batch job's inputs and outputs (``LYFTLEARN_INPUTS`` ...), for ``runtime="batch"``.
    """
    require_rendered(spec)
    check_dns_subdomain(name, "name", "ll-fraud-train-0123456789")
    check_dns_label(namespace, "namespace", "ml-training")
    check_dns_subdomain(service_account, "service_account", "fraud-training")
    check_dns_label(container_name, "container_name", DEFAULT_CONTAINER_NAME)
    validate_job_name(job_name)
    runtime = _check_pod_runtime(runtime)
    user_labels = check_labels(labels, "labels")
    user_annotations = _check_annotations(annotations)
    selector = check_labels(node_selector, "node_selector")
    toleration_list = _check_tolerations(tolerations)
    if restart_policy not in _RESTART_POLICIES:
        raise InvalidSpecError(
            "restart_policy",
            f"{restart_policy!r} is not a restart policy for a pod that runs to completion",
            "Use 'Never' (the task retries) or 'OnFailure' (the kubelet restarts the container).",
        )
    if active_deadline_seconds is not None:
        _check_positive_int(
            active_deadline_seconds,
            "active_deadline_seconds",
            "Use the run's time limit in seconds, or None for no limit.",
        )
    _check_environment_for_pods(spec)
    init_containers = _input_loaders(spec, input_loader_image)
    split = _pod_split(
        spec,
        runtime=runtime,
        job_name=job_name,
        run_environment=run_environment,
        model_uri=model_uri,
        data=data,
    )

    pod_spec: dict[str, Any] = {}
    if active_deadline_seconds is not None:
        pod_spec["activeDeadlineSeconds"] = active_deadline_seconds
    pod_spec.update(
        automountServiceAccountToken=False,
        containers=[_container(spec, name=container_name, environment=split.environment)],
        enableServiceLinks=False,
    )
    if init_containers:
        pod_spec["initContainers"] = init_containers
    if selector:
        pod_spec["nodeSelector"] = selector
    pod_spec.update(
        restartPolicy=restart_policy,
        securityContext=_pod_security_context(spec),
        serviceAccountName=service_account,
        terminationGracePeriodSeconds=STOP_GRACE_SECONDS,
    )
    if toleration_list:
        pod_spec["tolerations"] = toleration_list
    pod_spec["volumes"] = _volumes(spec)
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": {
                **user_annotations,
                **(run.annotations() if run else {}),
                HYPERPARAMETERS_ANNOTATION: _hyperparameters_json(split.hyperparameters),
            },
            "labels": {
                **user_labels,
                **(run.labels() if run else {}),
                JOB_NAME_LABEL: job_name,
                RUNTIME_LABEL: runtime,
            },
            "name": name,
            "namespace": namespace,
        },
        "spec": pod_spec,
    }
    return PodRendering(manifest=manifest, spill_uri=split.spill_uri, spill_document=split.spill_document)


def service_account_metadata(service_account: Any) -> tuple[str | None, str | None, Mapping[str, Any]]:
    """Return (name, namespace, annotations) of a service account manifest or ``V1ServiceAccount``."""
    if isinstance(service_account, Mapping):
        metadata = service_account.get("metadata") or {}
        return metadata.get("name"), metadata.get("namespace"), metadata.get("annotations") or {}
    metadata = getattr(service_account, "metadata", None)
    return (
        getattr(metadata, "name", None),
        getattr(metadata, "namespace", None),
        getattr(metadata, "annotations", None) or {},
    )


def service_account_role(service_account: Any) -> str | None:
    """Return the IAM role an EKS service account is annotated with (IRSA), or None.

    :param service_account: a manifest dict, or the official client's ``V1ServiceAccount``.
    """
    role = service_account_metadata(service_account)[2].get(IRSA_ROLE_ANNOTATION)
    return role if isinstance(role, str) and role else None


def require_service_account_role(
    spec: RuntimeSpec, service_account: Any, field: str = "service_account_name"
) -> None:
    """Raise ``InvalidSpecError`` unless the service account carries the spec's role.

    Call it on the existing account before creating the pod, so a pod never runs with another role.

    :param spec: the runtime spec.
    :param service_account: a manifest dict, or the official client's ``V1ServiceAccount``.
    :param field: the argument that named the account.
    """
    role = service_account_role(service_account)
    if role == spec.role_arn:
        return
    name, namespace, _ = service_account_metadata(service_account)
    found = f"carries role {role}" if role else f"has no {IRSA_ROLE_ANNOTATION} annotation"
    raise InvalidSpecError(
        field,
        f"service account {namespace}/{name} {found}, not the spec's role {spec.role_arn}",
        f"Annotate it: kubectl annotate serviceaccount -n {namespace} {name} "
        f"{IRSA_ROLE_ANNOTATION}={spec.role_arn} --overwrite; or run the pod as an account that carries "
        "that role.",
    )


def render_deploy_pod(
    *,
    name: str,
    namespace: str,
    image: str,
    service_account: str,
    environment: Mapping[str, str],
    command: Sequence[str] = (),
    args: Sequence[str] = (),
    labels: Mapping[str, str] = EMPTY,
) -> dict[str, Any]:
    """Render the pod that runs a team's own deploy tooling (Helm, Argo Rollouts, an in-house CLI).

    It runs restricted (non-root, read-only root file system with a writable ``/tmp``, no escalation, no
    capabilities) and, unlike a training pod, mounts its service account's API token: deploying is talking
    to the cluster. ``environment`` tells the tool what to deploy (``LYFTLEARN_DEPLOY_*``).

    :param name: the pod name, a DNS-1123 subdomain.
    :param namespace: a DNS-1123 label.
    :param image: the deploy tool's image.
    :param service_account: an account allowed to change the Deployment.
    :param environment: variables for the tool.
    :param command: the container's command; empty keeps the image's entrypoint.
    :param args: the container's arguments.
    :param labels: extra pod labels.
    """
    check_dns_subdomain(name, "name", "ll-serving-deploy-0123456789")
    check_dns_label(namespace, "namespace", "ml-serving")
    check_dns_subdomain(service_account, "deploy_service_account_name", "fraud-deployer")
    parse_image_reference(image, "deploy_image")
    container: dict[str, Any] = {}
    if args:
        container["args"] = list(args)
    if command:
        container["command"] = list(command)
    container.update(
        env=[{"name": key, "value": value} for key, value in sorted(environment.items())],
        image=image,
        imagePullPolicy="IfNotPresent" if _has_digest(image) else "Always",
        name=DEFAULT_CONTAINER_NAME,
        securityContext={
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "privileged": False,
            "readOnlyRootFilesystem": True,
        },
        volumeMounts=[{"mountPath": "/tmp", "name": "lyftlearn-tmp"}],
    )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"labels": check_labels(labels, "labels"), "name": name, "namespace": namespace},
        "spec": {
            "containers": [container],
            "restartPolicy": "Never",
            "securityContext": {
                "fsGroup": DEFAULT_RUN_AS_USER,
                "runAsNonRoot": True,
                "runAsUser": DEFAULT_RUN_AS_USER,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "serviceAccountName": service_account,
            "volumes": [{"emptyDir": {}, "name": "lyftlearn-tmp"}],
        },
    }
