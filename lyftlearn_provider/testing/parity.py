"""Parity checks for tests: what the program sees under each rendering of one spec, and helper manifests.

Used by this project's tests and offered to DAG authors who want to prove that their own spec reads
the same on SageMaker and on Kubernetes. Not needed at run time.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from lyftlearn_provider.contract import (
    ENV_SPILL_URI,
    HYPERPARAMETERS_PATH,
    INPUT_DATA_DIR,
    STOP_GRACE_SECONDS,
    WRITABLE_DIRECTORIES,
)
from lyftlearn_provider.rendering.kubernetes import (
    INPUT_LOADER_ARGS,
    IRSA_ROLE_ANNOTATION,
    PodRendering,
    check_dns_label,
    check_dns_subdomain,
    check_labels,
    service_account_metadata,
    service_account_role,
)
from lyftlearn_provider.rendering.sagemaker import TrainingJobRendering
from lyftlearn_provider.runtime import RuntimeSpec
from lyftlearn_provider.validation import EMPTY

if TYPE_CHECKING:
    from kubernetes.client import V1Pod


def program_view(
    rendering: TrainingJobRendering | PodRendering | Mapping[str, Any], *, service_account: Any = None
) -> dict[str, Any]:
    """Return what the program sees once the contract is applied, for either runtime.

    The view holds the image, command and args; the environment with the spill document merged in
    (``LYFTLEARN_SPILL_URI``, consumed by the merge, left out); the hyperparameters file merged with the
    document; the input channels and where they land; which contract directories are writable; the
    stop limits; and where AWS credentials come from. Renderings of one spec agree on everything but
    ``LYFTLEARN_RUNTIME`` and ``credentials["mechanism"]``.

    :param rendering: ``render_training_job(...)``, ``render_pod(...)`` or a pod manifest
        (``render_pod(...).manifest``).
    :param service_account: pods only: the service account manifest (or ``V1ServiceAccount``) the pod
        runs as; its IRSA role is the view's ``role_arn``.
    """
    document: Mapping[str, Mapping[str, str]] = {}
    if isinstance(rendering, TrainingJobRendering):
        view = _training_job_view(rendering.request)
        document = rendering.spill_document or {}
    elif isinstance(rendering, PodRendering):
        view = _pod_view(rendering.manifest, service_account)
        document = rendering.spill_document or {}
    else:
        view = _pod_view(rendering, service_account)
    environment = {**view["environment"], **document.get("environment", {})}
    environment.pop(ENV_SPILL_URI, None)
    view["environment"] = dict(sorted(environment.items()))
    view["hyperparameters"] = dict(
        sorted({**view["hyperparameters"], **document.get("hyperparameters", {})}.items())
    )
    return view


def _training_job_view(request: Mapping[str, Any]) -> dict[str, Any]:
    algorithm = request["AlgorithmSpecification"]
    channels = {
        channel["ChannelName"]: {
            "path": f"{INPUT_DATA_DIR}/{channel['ChannelName']}",
            "s3_uri": channel["DataSource"]["S3DataSource"]["S3Uri"],
        }
        for channel in request.get("InputDataConfig", [])
    }
    return {
        "image": algorithm["TrainingImage"],
        "command": algorithm.get("ContainerEntrypoint"),
        "args": algorithm.get("ContainerArguments"),
        "environment": dict(request["Environment"]),
        "hyperparameters": dict(request.get("HyperParameters", {})),
        "input_data": dict(sorted(channels.items())),
        # SageMaker's whole file system is writable.
        "writable_directories": sorted(WRITABLE_DIRECTORIES.values()),
        "max_runtime_seconds": request["StoppingCondition"]["MaxRuntimeInSeconds"],
        "stop_grace_seconds": STOP_GRACE_SECONDS,
        "credentials": {"mechanism": "sagemaker:RoleArn", "role_arn": request["RoleArn"]},
    }


def _pod_view(manifest: Mapping[str, Any], service_account: Any) -> dict[str, Any]:
    metadata = manifest["metadata"]
    pod_spec = manifest["spec"]
    container = pod_spec["containers"][0]
    volumes = {volume["name"]: volume for volume in pod_spec.get("volumes", [])}
    mounts = {mount["mountPath"]: mount for mount in container.get("volumeMounts", [])}

    files: dict[str, str] = {}
    for path, mount in mounts.items():
        for item in volumes.get(mount["name"], {}).get("downwardAPI", {}).get("items", []):
            match = re.fullmatch(r"metadata\.annotations\['([^']+)'\]", item["fieldRef"]["fieldPath"])
            if match and match.group(1) in metadata.get("annotations", {}):
                files[f"{path}/{item['path']}"] = metadata["annotations"][match.group(1)]

    root_writable = not container.get("securityContext", {}).get("readOnlyRootFilesystem", False)
    writable = [
        path
        for path in sorted(WRITABLE_DIRECTORIES.values())
        if root_writable
        or (
            path in mounts
            and "emptyDir" in volumes.get(mounts[path]["name"], {})
            and not mounts[path].get("readOnly")
        )
    ]

    channels: dict[str, dict[str, str]] = {}
    data_mount = mounts.get(INPUT_DATA_DIR)
    for loader in pod_spec.get("initContainers", []):
        args = loader.get("args", [])
        shares_data = data_mount is not None and any(
            mount["mountPath"] == INPUT_DATA_DIR and mount["name"] == data_mount["name"]
            for mount in loader.get("volumeMounts", [])
        )
        if loader.get("command") == ["aws"] and tuple(args[:-2]) == INPUT_LOADER_ARGS and shares_data:
            uri, path = args[-2:]
            channels[path.removeprefix(f"{INPUT_DATA_DIR}/")] = {"path": path, "s3_uri": uri}

    # Only the account the pod actually runs as gives it credentials.
    role = None
    if service_account is not None:
        name, namespace, _ = service_account_metadata(service_account)
        if (name, namespace) == (pod_spec.get("serviceAccountName"), metadata.get("namespace")):
            role = service_account_role(service_account)

    return {
        "image": container["image"],
        "command": container.get("command"),
        "args": container.get("args"),
        "environment": {item["name"]: item["value"] for item in container.get("env", [])},
        "hyperparameters": json.loads(files[HYPERPARAMETERS_PATH]) if HYPERPARAMETERS_PATH in files else {},
        "input_data": dict(sorted(channels.items())),
        "writable_directories": writable,
        "max_runtime_seconds": pod_spec.get("activeDeadlineSeconds"),
        "stop_grace_seconds": pod_spec.get("terminationGracePeriodSeconds"),
        "credentials": {"mechanism": "kubernetes:serviceAccount (IRSA)", "role_arn": role},
    }


def to_v1_pod(manifest: Mapping[str, Any]) -> V1Pod:
    """Return the manifest as the official client's ``V1Pod`` (imports ``kubernetes`` on first call).

    :param manifest: e.g. ``render_pod(...).manifest``.
    """
    from kubernetes.client import ApiClient

    class _Response:
        data = json.dumps(manifest)

    return ApiClient().deserialize(_Response(), "V1Pod")


def render_service_account(
    spec: RuntimeSpec, *, name: str, namespace: str, labels: Mapping[str, str] = EMPTY
) -> dict[str, Any]:
    """Return a ``v1.ServiceAccount`` that gives its pods the spec's IAM role through IRSA.

    :param spec: the runtime spec whose ``role_arn`` the account carries.
    :param name: a DNS-1123 subdomain.
    :param namespace: a DNS-1123 label.
    :param labels: labels for the account.
    """
    check_dns_subdomain(name, "service_account", "fraud-training")
    check_dns_label(namespace, "namespace", "ml-training")
    metadata: dict[str, Any] = {"annotations": {IRSA_ROLE_ANNOTATION: spec.role_arn}}
    if labels:
        metadata["labels"] = check_labels(labels, "labels")
    metadata.update(name=name, namespace=namespace)
    return {
        "apiVersion": "v1",
        # Pods of this account need AWS, not the Kubernetes API; IRSA projects its own token.
        "automountServiceAccountToken": False,
        "kind": "ServiceAccount",
        "metadata": metadata,
    }
