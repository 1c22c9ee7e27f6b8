from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from decimal import Decimal
from typing import Any

import pytest

from lyftlearn_provider import naming
from lyftlearn_provider.contract import container_environment, hyperparameter_values
from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.rendering import kubernetes
from lyftlearn_provider.rendering.kubernetes import (
    INSTANCE_SIZES,
    PodRendering,
    pod_name,
    pod_resources,
    render_container,
    render_pod,
    require_service_account_role,
    service_account_role,
)
from lyftlearn_provider.rendering.sagemaker import render_training_job
from lyftlearn_provider.runtime import ResourceProfile, RuntimeSpec
from lyftlearn_provider.testing.parity import program_view, render_service_account, to_v1_pod
from lyftlearn_provider.validation import quantity_value

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud:v42"
DIGEST_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud@sha256:" + "a" * 64
LOADER = "public.ecr.aws/aws-cli/aws-cli@sha256:" + "b" * 64
ROLE = "arn:aws:iam::123456789012:role/sagemaker-training"
OTHER_ROLE = "arn:aws:iam::123456789012:role/someone-else"
OUTPUT = "s3://ml-artifacts/fraud"
JOB = "ll-fraud-train-0123456789"
NAMESPACE = "ml-training"
ACCOUNT = "fraud-training"
RUN_ENVIRONMENT = {"LYFTLEARN_DAG_ID": "fraud", "LYFTLEARN_RUN_ID": "scheduled__2024-01-01T00:00:00+00:00"}
CREDENTIAL_VARIABLES = {
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
}
EXAMPLE_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
EXAMPLE_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


def make_spec(**overrides: Any) -> RuntimeSpec:
    values: dict[str, Any] = {"image": IMAGE, "role_arn": ROLE, "output_s3_uri": OUTPUT}
    values.update(overrides)
    return RuntimeSpec(**values)


def typical_spec(**overrides: Any) -> RuntimeSpec:
    values: dict[str, Any] = {
        "command": ["python", "-m", "fraud.train"],
        "args": ["--epochs", "3"],
        "environment": {"LOG_LEVEL": "info", "MODEL_NAME": "fraud"},
        "hyperparameters": {"learning_rate": 0.1, "epochs": 3, "early_stopping": True, "optimizer": "adam"},
        "config": {"model": {"depth": 6, "features": ["amount", "country"]}},
        "secrets": {"DB_PASSWORD": "prod/fraud/db-password"},
        "resources": ResourceProfile(instance_type="ml.m5.xlarge"),
        "metrics_host": "statsd.monitoring",
    }
    values.update(overrides)
    return make_spec(**values)


def inputs_spec() -> RuntimeSpec:
    return typical_spec(
        inputs={"validation": "s3://ml-data/fraud/validation/", "train": "s3://ml-data/fraud/train/"}
    )


def spilling_spec() -> RuntimeSpec:
    """Over every SageMaker limit at once: >100 variables, a >512-character value, a >2500-character hp."""
    return typical_spec(
        environment={**{f"VAR_{i:03d}": f"value-{i}" for i in range(120)}, "FEATURES": "f" * 600},
        hyperparameters={"vocabulary": "w" * 3000, **{f"hp_{i:03d}": i for i in range(110)}},
        config={"features": [f"feature_{i}" for i in range(100)]},
    )


def pod_kwargs(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": pod_name(JOB),
        "namespace": NAMESPACE,
        "service_account": ACCOUNT,
        "job_name": JOB,
        "run_environment": RUN_ENVIRONMENT,
        "active_deadline_seconds": 3600,
        "input_loader_image": LOADER,
    }
    values.update(overrides)
    return values


def render(spec: RuntimeSpec, **overrides: Any) -> dict[str, Any]:
    return render_pod(spec, **pod_kwargs(**overrides)).manifest


def containers(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [*manifest["spec"].get("initContainers", []), *manifest["spec"]["containers"]]


def environment_of(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


def assert_names_field_and_fix(error: InvalidSpecError, field: str) -> None:
    assert error.field == field
    message = str(error)
    assert message.startswith(f"{field}: ")
    assert error.fix and error.fix[0].isupper() and error.fix.endswith(".")
    assert error.fix in message


# ------------------------------------------------------------------------------------------ the manifest

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "privileged": False,
    "readOnlyRootFilesystem": True,
}


def test_typical_spec_renders_exactly_this_pod() -> None:
    manifest = render_pod(
        typical_spec(),
        name=pod_name(JOB),
        namespace=NAMESPACE,
        service_account=ACCOUNT,
        job_name=JOB,
        run_environment={"LYFTLEARN_RUN_ID": "r1"},
        labels={"team": "fraud"},
        annotations={"example.com/owner": "fraud-ml@example.com"},
        active_deadline_seconds=3600,
    ).manifest

    assert manifest == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "annotations": {
                "example.com/owner": "fraud-ml@example.com",
                "lyftlearn.io/hyperparameters": (
                    '{"early_stopping":"true","epochs":"3","learning_rate":"0.1","optimizer":"adam"}'
                ),
            },
            "labels": {"team": "fraud", "lyftlearn.io/job-name": JOB, "lyftlearn.io/runtime": "kubernetes"},
            "name": JOB,
            "namespace": NAMESPACE,
        },
        "spec": {
            "activeDeadlineSeconds": 3600,
            "automountServiceAccountToken": False,
            "containers": [
                {
                    "args": ["--epochs", "3"],
                    "command": ["python", "-m", "fraud.train"],
                    "env": [
                        {"name": "LOG_LEVEL", "value": "info"},
                        {
                            "name": "LYFTLEARN_CONFIG",
                            "value": '{"model":{"depth":6,"features":["amount","country"]}}',
                        },
                        {"name": "LYFTLEARN_JOB_NAME", "value": JOB},
                        {"name": "LYFTLEARN_RUNTIME", "value": "kubernetes"},
                        {"name": "LYFTLEARN_RUN_ID", "value": "r1"},
                        {"name": "LYFTLEARN_SECRETS", "value": '{"DB_PASSWORD":"prod/fraud/db-password"}'},
                        {"name": "LYFTLEARN_STATSD_HOST", "value": "statsd.monitoring"},
                        {"name": "LYFTLEARN_STATSD_PORT", "value": "8125"},
                        {"name": "MODEL_NAME", "value": "fraud"},
                        {"name": "STATSD_HOST", "value": "statsd.monitoring"},
                        {"name": "STATSD_PORT", "value": "8125"},
                    ],
                    "image": IMAGE,
                    "imagePullPolicy": "Always",
                    "name": "base",
                    "resources": {
                        "limits": {"cpu": "3500m", "memory": "13414Mi"},
                        "requests": {"cpu": "3500m", "memory": "13414Mi"},
                    },
                    "securityContext": RESTRICTED_CONTAINER,
                    "volumeMounts": [
                        {"mountPath": "/opt/ml/input/config", "name": "lyftlearn-config", "readOnly": True},
                        {"mountPath": "/tmp", "name": "lyftlearn-tmp"},
                        {"mountPath": "/opt/ml/model", "name": "lyftlearn-model"},
                        {"mountPath": "/opt/ml/output", "name": "lyftlearn-output"},
                        {"mountPath": "/opt/ml/checkpoints", "name": "lyftlearn-checkpoints"},
                    ],
                }
            ],
            "enableServiceLinks": False,
            "restartPolicy": "Never",
            "securityContext": {
                "fsGroup": 1000,
                "runAsNonRoot": True,
                "runAsUser": 1000,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "serviceAccountName": ACCOUNT,
            "terminationGracePeriodSeconds": 120,
            "volumes": [
                {
                    "downwardAPI": {
                        "items": [
                            {
                                "fieldRef": {
                                    "fieldPath": "metadata.annotations['lyftlearn.io/hyperparameters']"
                                },
                                "path": "hyperparameters.json",
                            }
                        ]
                    },
                    "name": "lyftlearn-config",
                },
                {"emptyDir": {}, "name": "lyftlearn-tmp"},
                {"emptyDir": {}, "name": "lyftlearn-model"},
                {"emptyDir": {}, "name": "lyftlearn-output"},
                {"emptyDir": {}, "name": "lyftlearn-checkpoints"},
            ],
        },
    }


def test_minimal_spec_keeps_the_images_entrypoint_and_still_gets_a_hyperparameters_file() -> None:
    manifest = render_pod(
        make_spec(), name=JOB, namespace=NAMESPACE, service_account=ACCOUNT, job_name=JOB
    ).manifest
    container = manifest["spec"]["containers"][0]

    assert "command" not in container and "args" not in container
    assert environment_of(container) == {"LYFTLEARN_JOB_NAME": JOB, "LYFTLEARN_RUNTIME": "kubernetes"}
    # SageMaker writes {} when there are no hyperparameters; so does the projected annotation.
    assert manifest["metadata"]["annotations"] == {"lyftlearn.io/hyperparameters": "{}"}
    for absent in ("activeDeadlineSeconds", "initContainers", "nodeSelector", "tolerations"):
        assert absent not in manifest["spec"]


def test_environment_is_the_contracts_with_the_kubernetes_runtime() -> None:
    spec = typical_spec()
    for runtime in ("kubernetes", "validation"):
        manifest = render(spec, runtime=runtime)
        expected = container_environment(spec, runtime=runtime, job_name=JOB, run_environment=RUN_ENVIRONMENT)

        assert environment_of(manifest["spec"]["containers"][0]) == expected
        assert manifest["metadata"]["labels"]["lyftlearn.io/runtime"] == runtime


def test_hyperparameters_file_is_the_annotation_projected_by_the_downward_api() -> None:
    spec = typical_spec()
    manifest = render(spec)
    volume = next(v for v in manifest["spec"]["volumes"] if v["name"] == "lyftlearn-config")
    mount = next(
        m for m in manifest["spec"]["containers"][0]["volumeMounts"] if m["name"] == "lyftlearn-config"
    )
    (item,) = volume["downwardAPI"]["items"]

    assert f"{mount['mountPath']}/{item['path']}" == "/opt/ml/input/config/hyperparameters.json"
    assert mount["readOnly"] is True
    key = re.fullmatch(r"metadata\.annotations\['(.+)'\]", item["fieldRef"]["fieldPath"]).group(1)
    assert json.loads(manifest["metadata"]["annotations"][key]) == hyperparameter_values(spec)


def test_render_container_is_the_pods_program_container() -> None:
    spec = typical_spec()
    container = render_container(spec, job_name=JOB, run_environment=RUN_ENVIRONMENT)

    assert container == render(spec)["spec"]["containers"][0]
    assert render_container(spec, job_name=JOB, name="trainer")["name"] == "trainer"


def test_image_pull_policy_follows_digest_pinning() -> None:
    assert render(make_spec(image=DIGEST_IMAGE))["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent"
    # A tag can move; SageMaker resolves it for every job, so the pod pulls it every time too.
    assert render(make_spec(image=IMAGE))["spec"]["containers"][0]["imagePullPolicy"] == "Always"


def test_rendering_is_deterministic_whatever_the_input_order() -> None:
    environment = {f"VAR_{i:03d}": f"v{i}" for i in range(30)}
    forward = typical_spec(environment=environment, inputs={"a": "s3://ml-data/a", "b": "s3://ml-data/b"})
    backward = typical_spec(
        environment=dict(reversed(environment.items())), inputs={"b": "s3://ml-data/b", "a": "s3://ml-data/a"}
    )

    assert json.dumps(render(forward)) == json.dumps(render(backward)) == json.dumps(render(forward))


def test_scheduling_hints_pass_through() -> None:
    toleration = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    manifest = render(
        typical_spec(),
        node_selector={"node.kubernetes.io/instance-type": "g4dn.xlarge"},
        tolerations=[toleration],
    )

    assert manifest["spec"]["nodeSelector"] == {"node.kubernetes.io/instance-type": "g4dn.xlarge"}
    assert manifest["spec"]["tolerations"] == [toleration]


# ----------------------------------------------------------------------------------------- input channels


def test_inputs_are_copied_where_sagemaker_puts_them_before_the_program_starts() -> None:
    manifest = render(inputs_spec())
    loaders = manifest["spec"]["initContainers"]

    assert [loader["name"] for loader in loaders] == ["lyftlearn-input-0", "lyftlearn-input-1"]
    assert loaders[0] == {
        "args": [
            "s3",
            "cp",
            "--recursive",
            "--only-show-errors",
            "s3://ml-data/fraud/train/",
            "/opt/ml/input/data/train",
        ],
        "command": ["aws"],
        "env": [{"name": "HOME", "value": "/tmp"}],
        "image": LOADER,
        "imagePullPolicy": "IfNotPresent",
        "name": "lyftlearn-input-0",
        "resources": {
            "limits": {"cpu": "3500m", "memory": "13414Mi"},
            "requests": {"cpu": "3500m", "memory": "13414Mi"},
        },
        "securityContext": RESTRICTED_CONTAINER,
        "volumeMounts": [
            {"mountPath": "/opt/ml/input/data", "name": "lyftlearn-input-data"},
            {"mountPath": "/tmp", "name": "lyftlearn-input-loader-tmp"},
        ],
    }
    assert loaders[1]["args"][-2:] == ["s3://ml-data/fraud/validation/", "/opt/ml/input/data/validation"]
    program_mounts = manifest["spec"]["containers"][0]["volumeMounts"]
    assert {"mountPath": "/opt/ml/input/data", "name": "lyftlearn-input-data"} in program_mounts
    # The loader's credential cache stays out of the program's /tmp.
    assert {"mountPath": "/tmp", "name": "lyftlearn-tmp"} in program_mounts


def test_loaders_never_hold_the_gpu() -> None:
    spec = typical_spec(
        inputs={"train": "s3://ml-data/t"}, resources=ResourceProfile(instance_type="ml.g4dn.xlarge")
    )
    manifest = render(spec)

    assert manifest["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "nvidia.com/gpu" not in manifest["spec"]["initContainers"][0]["resources"]["limits"]


# ---------------------------------------------------------------------------------------------- security


def test_restricted_is_the_default_for_every_container() -> None:
    manifest = render(inputs_spec())

    assert manifest["spec"]["securityContext"] == {
        "fsGroup": 1000,
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert len(containers(manifest)) == 3
    for container in containers(manifest):
        assert container["securityContext"] == RESTRICTED_CONTAINER
    for field in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
        assert field not in manifest["spec"]
    assert manifest["spec"]["automountServiceAccountToken"] is False


def test_read_only_root_file_system_still_leaves_sagemakers_writable_paths_writable() -> None:
    manifest = render(typical_spec())
    volumes = {volume["name"]: volume for volume in manifest["spec"]["volumes"]}
    writable = {
        mount["mountPath"]
        for mount in manifest["spec"]["containers"][0]["volumeMounts"]
        if "emptyDir" in volumes[mount["name"]] and not mount.get("readOnly")
    }

    assert writable == {"/tmp", "/opt/ml/model", "/opt/ml/output", "/opt/ml/checkpoints"}
    assert program_view(manifest)["writable_directories"] == sorted(writable)


def test_run_as_user_sets_the_user_and_file_group() -> None:
    context = render(typical_spec(run_as_user=65532))["spec"]["securityContext"]

    assert context["runAsUser"] == context["fsGroup"] == 65532
    assert context["runAsNonRoot"] is True


def test_baseline_is_the_explicit_opt_out_and_is_still_never_privileged() -> None:
    spec = typical_spec(pod_security="baseline", run_as_user=0, inputs={"train": "s3://ml-data/t"})
    manifest = render(spec)

    assert spec.pod_security == "baseline"
    assert manifest["spec"]["securityContext"] == {
        "runAsUser": 0,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    for container in containers(manifest):
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": False,
        }
    # The same program still finds SageMaker's directories.
    assert program_view(manifest)["writable_directories"] == [
        "/opt/ml/checkpoints",
        "/opt/ml/model",
        "/opt/ml/output",
        "/tmp",
    ]
    assert render(typical_spec(pod_security="baseline"))["spec"]["securityContext"] == {
        "seccompProfile": {"type": "RuntimeDefault"}
    }


def test_pod_security_fields_default_to_restricted() -> None:
    spec = typical_spec(pod_security="baseline", run_as_user=0)

    assert make_spec().pod_security == "restricted"
    assert make_spec().run_as_user is None
    assert (spec.pod_security, spec.run_as_user) == ("baseline", 0)


# ------------------------------------------------------------------------------------------- credentials


def test_service_account_manifest_carries_the_specs_role() -> None:
    account = render_service_account(
        typical_spec(), name=ACCOUNT, namespace=NAMESPACE, labels={"team": "fraud"}
    )

    assert account == {
        "apiVersion": "v1",
        "automountServiceAccountToken": False,
        "kind": "ServiceAccount",
        "metadata": {
            "annotations": {"eks.amazonaws.com/role-arn": ROLE},
            "labels": {"team": "fraud"},
            "name": ACCOUNT,
            "namespace": NAMESPACE,
        },
    }
    assert service_account_role(account) == ROLE


def test_role_is_read_from_manifests_and_client_objects() -> None:
    from kubernetes.client import ApiClient

    class Response:
        data = json.dumps(render_service_account(typical_spec(), name=ACCOUNT, namespace=NAMESPACE))

    account_object = ApiClient().deserialize(Response(), "V1ServiceAccount")

    assert service_account_role(account_object) == ROLE
    require_service_account_role(typical_spec(), account_object)
    assert service_account_role({"metadata": {"name": ACCOUNT}}) is None
    assert service_account_role({"metadata": {"annotations": {"eks.amazonaws.com/role-arn": ""}}}) is None


@pytest.mark.parametrize(
    ("annotations", "found"),
    [
        pytest.param(
            {"eks.amazonaws.com/role-arn": OTHER_ROLE}, f"carries role {OTHER_ROLE}", id="other-role"
        ),
        pytest.param({}, "has no eks.amazonaws.com/role-arn annotation", id="no-role"),
    ],
)
def test_service_account_without_the_specs_role_is_refused(annotations: dict[str, str], found: str) -> None:
    account = {"metadata": {"name": ACCOUNT, "namespace": NAMESPACE, "annotations": annotations}}

    with pytest.raises(InvalidSpecError) as caught:
        require_service_account_role(typical_spec(), account)
    assert_names_field_and_fix(caught.value, "service_account_name")
    assert found in caught.value.problem
    assert f"kubectl annotate serviceaccount -n {NAMESPACE} {ACCOUNT}" in caught.value.fix
    assert f"eks.amazonaws.com/role-arn={ROLE}" in caught.value.fix


@pytest.mark.parametrize("spec_factory", [make_spec, typical_spec, inputs_spec, spilling_spec])
def test_no_pod_ever_carries_static_aws_credentials(spec_factory: Any) -> None:
    rendering = render_pod(spec_factory(), **pod_kwargs())
    text = json.dumps(rendering.manifest) + (rendering.spill_payload() or b"").decode()

    for container in containers(rendering.manifest):
        assert not CREDENTIAL_VARIABLES & set(environment_of(container))
    assert not re.search(r"(?:AKIA|ASIA)[A-Z0-9]{16}", text)


@pytest.mark.parametrize(
    "overrides",
    [
        {"environment": {"AWS_ACCESS_KEY_ID": EXAMPLE_ACCESS_KEY_ID}},
        {"environment": {"AWS_SECRET_ACCESS_KEY": EXAMPLE_SECRET_ACCESS_KEY}},
        {"environment": {"CREDS": EXAMPLE_ACCESS_KEY_ID}},
        {"secrets": {"AWS_SECRET_ACCESS_KEY": "prod/aws-key"}},
        {"config": {"aws": {"key": EXAMPLE_ACCESS_KEY_ID}}},
    ],
)
def test_static_keys_cannot_reach_a_pod(overrides: dict[str, Any]) -> None:
    # The spec refuses them, so there is nothing for render_pod to render.
    with pytest.raises(InvalidSpecError) as caught:
        make_spec(**overrides)
    assert EXAMPLE_ACCESS_KEY_ID not in str(caught.value)
    assert "role" in caught.value.fix


# --------------------------------------------------------------------------------------------- resources


@pytest.mark.parametrize(
    ("instance_type", "cpu", "memory", "gpu"),
    [
        ("ml.m5.large", "1500m", "6451Mi", None),
        ("ml.m5.xlarge", "3500m", "13414Mi", None),
        ("ml.m5.2xlarge", "7500m", "27340Mi", None),
        ("ml.m5.4xlarge", "15200m", "55193Mi", None),
        ("ml.c5.xlarge", "3500m", "6451Mi", None),
        ("ml.c5.9xlarge", "34200m", "62156Mi", None),
        ("ml.g4dn.xlarge", "3500m", "13414Mi", "1"),
        ("ml.g4dn.12xlarge", "45600m", "166604Mi", "4"),
        ("ml.g5.2xlarge", "7500m", "27340Mi", "1"),
        ("ml.p3.2xlarge", "7500m", "52582Mi", "1"),
        ("ml.p3.16xlarge", "60800m", "424243Mi", "8"),
    ],
)
def test_resources_are_derived_from_the_instance_type(
    instance_type: str, cpu: str, memory: str, gpu: str | None
) -> None:
    resources = pod_resources(ResourceProfile(instance_type=instance_type))

    assert resources["requests"] == {"cpu": cpu, "memory": memory}
    expected_limits = {"cpu": cpu, "memory": memory, **({"nvidia.com/gpu": gpu} if gpu else {})}
    assert resources["limits"] == expected_limits


def test_instance_table_holds_real_training_types_and_leaves_headroom() -> None:
    from botocore.loaders import Loader
    from kubernetes.utils import parse_quantity

    training_types = set(
        Loader().load_service_model("sagemaker", "service-2")["shapes"]["TrainingInstanceType"]["enum"]
    )
    for instance_type, size in INSTANCE_SIZES.items():
        assert instance_type in training_types
        requests = pod_resources(ResourceProfile(instance_type=instance_type))["requests"]
        cpu, memory = parse_quantity(requests["cpu"]), parse_quantity(requests["memory"])
        # Room for the kubelet, the OS and DaemonSets, yet most of the instance for the program.
        assert Decimal(size.vcpus) * 3 / 4 <= cpu <= size.vcpus - Decimal("0.5")
        assert (
            Decimal(size.memory_gib * 2**30) * 3 / 4 <= memory <= Decimal(size.memory_gib * 2**30) * 85 / 100
        )


def test_explicit_resources_win_over_the_table() -> None:
    explicit = ResourceProfile(instance_type="ml.g4dn.xlarge", cpu="2", memory="8Gi", gpu=0)

    assert pod_resources(explicit) == {
        "limits": {"cpu": "2", "memory": "8Gi"},
        "requests": {"cpu": "2", "memory": "8Gi"},
    }
    partial = pod_resources(ResourceProfile(instance_type="ml.m5.xlarge", memory="10Gi", gpu=2))
    assert partial["limits"] == {"cpu": "3500m", "memory": "10Gi", "nvidia.com/gpu": "2"}
    unknown = ResourceProfile(instance_type="ml.r5.large", cpu="1500m", memory="12Gi", gpu=0)
    assert pod_resources(unknown)["requests"] == {"cpu": "1500m", "memory": "12Gi"}
    assert render(make_spec(resources=unknown))["spec"]["containers"][0]["resources"] == pod_resources(
        unknown
    )


@pytest.mark.parametrize(
    "quantity", ["1", "500m", "0.5", ".5", "2.", "4Gi", "512Mi", "1Ki", "1k", "3M", "1e9", "2E3"]
)
def test_quantity_values_agree_with_the_official_client(quantity: str) -> None:
    from kubernetes.utils import parse_quantity

    assert quantity_value(quantity) == parse_quantity(quantity)


# ------------------------------------------------------------------------------------------------ parity


def both_views(spec: RuntimeSpec, max_runtime_seconds: int = 3600) -> tuple[dict[str, Any], dict[str, Any]]:
    training_job = render_training_job(
        spec, job_name=JOB, max_runtime_seconds=max_runtime_seconds, run_environment=RUN_ENVIRONMENT
    )
    manifest = render(spec, active_deadline_seconds=max_runtime_seconds)
    account = render_service_account(spec, name=ACCOUNT, namespace=NAMESPACE)
    return program_view(training_job), program_view(manifest, service_account=account)


def assert_same_program_view(spec: RuntimeSpec) -> dict[str, Any]:
    sagemaker, kubernetes = both_views(spec)

    assert sagemaker["environment"].pop("LYFTLEARN_RUNTIME") == "sagemaker"
    assert kubernetes["environment"].pop("LYFTLEARN_RUNTIME") == "kubernetes"
    assert sagemaker.pop("credentials") == {"mechanism": "sagemaker:RoleArn", "role_arn": ROLE}
    assert kubernetes.pop("credentials") == {
        "mechanism": "kubernetes:serviceAccount (IRSA)",
        "role_arn": ROLE,
    }
    assert kubernetes == sagemaker
    # ...and what both see is the contract itself, not merely the same mistake twice.
    expected = container_environment(
        spec, runtime="kubernetes", job_name=JOB, run_environment=RUN_ENVIRONMENT
    )
    del expected["LYFTLEARN_RUNTIME"]
    assert kubernetes["environment"] == expected
    assert kubernetes["hyperparameters"] == hyperparameter_values(spec)
    assert kubernetes["image"] == spec.image
    assert kubernetes["command"] == (list(spec.command) or None)
    assert kubernetes["args"] == (list(spec.args) or None)
    assert kubernetes["max_runtime_seconds"] == 3600
    assert kubernetes["stop_grace_seconds"] == 120
    assert kubernetes["writable_directories"] == [
        "/opt/ml/checkpoints",
        "/opt/ml/model",
        "/opt/ml/output",
        "/tmp",
    ]
    return kubernetes


def test_plain_spec_looks_the_same_to_the_program_on_both_runtimes() -> None:
    view = assert_same_program_view(make_spec())

    assert view["hyperparameters"] == {}
    assert view["command"] is None


def test_config_secrets_and_metrics_look_the_same_on_both_runtimes() -> None:
    view = assert_same_program_view(typical_spec())

    assert json.loads(view["environment"]["LYFTLEARN_SECRETS"]) == {"DB_PASSWORD": "prod/fraud/db-password"}
    assert view["environment"]["STATSD_HOST"] == "statsd.monitoring"
    assert view["hyperparameters"]["early_stopping"] == "true"


def test_input_channels_land_in_the_same_place_on_both_runtimes() -> None:
    view = assert_same_program_view(inputs_spec())

    assert view["input_data"] == {
        "train": {"path": "/opt/ml/input/data/train", "s3_uri": "s3://ml-data/fraud/train/"},
        "validation": {"path": "/opt/ml/input/data/validation", "s3_uri": "s3://ml-data/fraud/validation/"},
    }


def test_a_spec_that_spills_on_sagemaker_looks_the_same_on_both_runtimes() -> None:
    spec = spilling_spec()
    training_job = render_training_job(
        spec, job_name=JOB, max_runtime_seconds=3600, run_environment=RUN_ENVIRONMENT
    )
    manifest = render(spec)

    # SageMaker must spill all three kinds of excess...
    assert training_job.spill_document is not None
    assert "FEATURES" in training_job.spill_document["environment"]
    assert "LYFTLEARN_CONFIG" in training_job.spill_document["environment"]
    assert "vocabulary" in training_job.spill_document["hyperparameters"]
    assert len(training_job.request["Environment"]) == 100
    # ...while the pod carries everything directly, with no pointer to follow.
    assert "LYFTLEARN_SPILL_URI" not in environment_of(manifest["spec"]["containers"][0])
    assert len(json.loads(manifest["metadata"]["annotations"]["lyftlearn.io/hyperparameters"])) == 111
    view = assert_same_program_view(spec)
    assert view["environment"]["FEATURES"] == "f" * 600


def test_the_view_follows_the_mounts_rather_than_trusting_the_annotation() -> None:
    manifest = render(typical_spec())
    moved = copy.deepcopy(manifest)
    moved["spec"]["containers"][0]["volumeMounts"][0]["mountPath"] = "/etc/lyftlearn"

    assert program_view(manifest)["hyperparameters"] == hyperparameter_values(typical_spec())
    assert program_view(moved)["hyperparameters"] == {}


def test_the_view_credits_only_the_account_the_pod_runs_as() -> None:
    manifest = render(typical_spec())
    other_name = render_service_account(typical_spec(), name="someone-else", namespace=NAMESPACE)
    other_role = render_service_account(make_spec(role_arn=OTHER_ROLE), name=ACCOUNT, namespace=NAMESPACE)

    assert program_view(manifest, service_account=other_name)["credentials"]["role_arn"] is None
    assert program_view(manifest, service_account=other_role)["credentials"]["role_arn"] == OTHER_ROLE
    assert program_view(manifest)["credentials"]["role_arn"] is None


# ---------------------------------------------------------------------------------- spilling on Kubernetes


def test_a_value_linux_cannot_pass_spills_on_kubernetes_too() -> None:
    spec = typical_spec(environment={"BIG": "b" * (200 * 1024), "LOG_LEVEL": "info"})

    with pytest.raises(InvalidSpecError) as caught:
        render_container(spec, job_name=JOB)
    assert_names_field_and_fix(caught.value, "environment['BIG']")
    assert "render_pod" in caught.value.fix

    rendering = render_pod(spec, **pod_kwargs())
    uri = f"{OUTPUT}/lyftlearn-runtime/{JOB}/runtime-kubernetes.json"
    assert rendering.spill_uri == uri
    assert rendering.spill_document == {"environment": {"BIG": "b" * (200 * 1024)}, "hyperparameters": {}}
    assert environment_of(rendering.manifest["spec"]["containers"][0])["LYFTLEARN_SPILL_URI"] == uri
    assert (
        rendering.spill_payload()
        == json.dumps(rendering.spill_document, sort_keys=True, separators=(",", ":")).encode()
    )
    # SageMaker spills the same value to its own object, so neither overwrites the other.
    training_job = render_training_job(
        spec, job_name=JOB, max_runtime_seconds=3600, run_environment=RUN_ENVIRONMENT
    )
    assert training_job.spill_uri == f"{OUTPUT}/lyftlearn-runtime/{JOB}/runtime.json"

    account = render_service_account(spec, name=ACCOUNT, namespace=NAMESPACE)
    kubernetes, sagemaker = program_view(rendering, service_account=account), program_view(training_job)
    for view in (kubernetes, sagemaker):
        del view["environment"]["LYFTLEARN_RUNTIME"], view["credentials"]
    assert kubernetes == sagemaker


def test_a_large_config_names_config_when_it_cannot_fit_a_pod() -> None:
    spec = typical_spec(config={"features": [f"feature_{i:06d}" for i in range(10_000)]})
    with pytest.raises(InvalidSpecError) as caught:
        render_container(spec, job_name=JOB)
    assert_names_field_and_fix(caught.value, "config")
    # The whole pod carries it in the spill document instead.
    assert "LYFTLEARN_CONFIG" in render_pod(spec, **pod_kwargs()).spill_document["environment"]


def test_hyperparameters_over_the_annotation_budget_spill_on_kubernetes_only() -> None:
    spec = make_spec(hyperparameters={f"hp_{i:02d}": "h" * 2500 for i in range(60)})
    training_job = render_training_job(spec, job_name=JOB, max_runtime_seconds=3600)

    assert training_job.spill_document is None
    with pytest.raises(InvalidSpecError) as caught:
        render_container(spec, job_name=JOB)
    assert_names_field_and_fix(caught.value, "hyperparameters['hp_52']")

    rendering = render_pod(spec, **pod_kwargs())
    annotation = rendering.manifest["metadata"]["annotations"]["lyftlearn.io/hyperparameters"]
    assert rendering.spill_document is not None
    assert len(annotation.encode()) <= kubernetes.MAX_HYPERPARAMETERS_ANNOTATION_BYTES
    assert set(json.loads(annotation)) | set(rendering.spill_document["hyperparameters"]) == set(
        spec.hyperparameters
    )
    assert program_view(rendering)["hyperparameters"] == program_view(training_job)["hyperparameters"]


# ---------------------------------------------------------------------------------- the official client


@pytest.mark.parametrize(
    "rendering",
    [
        pytest.param(lambda: render(typical_spec()), id="typical"),
        pytest.param(
            lambda: render(inputs_spec(), tolerations=[{"key": "gpu", "operator": "Exists"}]), id="inputs"
        ),
        pytest.param(lambda: render(typical_spec(pod_security="baseline", run_as_user=0)), id="baseline"),
        pytest.param(lambda: render(spilling_spec(), labels={"team": "fraud"}), id="spilling-on-sagemaker"),
        pytest.param(
            lambda: render_pod(make_spec(environment={"BIG": "b" * 140_000}), **pod_kwargs()).manifest,
            id="spilling-on-kubernetes",
        ),
    ],
)
def test_manifests_round_trip_through_the_official_client(rendering: Any) -> None:
    from airflow.providers.cncf.kubernetes.pod_generator import PodGenerator
    from kubernetes.client import ApiClient, V1Pod

    manifest = rendering()
    v1_pod = to_v1_pod(manifest)

    assert isinstance(v1_pod, V1Pod)
    # Every key maps to a model attribute: the client drops unknown or misspelt keys silently.
    assert ApiClient().sanitize_for_serialization(v1_pod) == manifest
    assert ApiClient()._ApiClient__deserialize(manifest, "V1Pod") == v1_pod
    # The pod operator reads pod_template_dict this way.
    assert PodGenerator.deserialize_model_dict(manifest) == v1_pod
    assert v1_pod.spec.containers[0].security_context.allow_privilege_escalation is False


def test_service_account_round_trips_through_the_official_client() -> None:
    from kubernetes.client import ApiClient

    account = render_service_account(typical_spec(), name=ACCOUNT, namespace=NAMESPACE)
    model = ApiClient()._ApiClient__deserialize(account, "V1ServiceAccount")

    assert ApiClient().sanitize_for_serialization(model) == account
    assert model.metadata.annotations == {"eks.amazonaws.com/role-arn": ROLE}


def test_module_imports_no_kubernetes_client() -> None:
    code = (
        "import sys, lyftlearn_provider.rendering.kubernetes; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'kubernetes'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------- names


def test_sagemaker_job_names_become_valid_pod_names() -> None:
    identities = [
        ("fraud", "train", "scheduled__2024-01-01T00:00:00+00:00"),
        ("Fraud_Model.V2", "Train--Big", "manual__x"),
        ("d" * 200, "t" * 200, "r"),
    ]
    for dag_id, task_id, run_id in identities:
        base = naming.training_job_name(dag_id=dag_id, task_id=task_id, run_id=run_id)
        for name in (base, naming.attempt_job_name(base, 7)):
            assert pod_name(name) == name
            assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
    assert pod_name("LL-Fraud--Train-A2") == "ll-fraud--train-a2"


# ------------------------------------------------------------------------------------------------ bad input

BAD_POD_ARGUMENTS = [
    pytest.param({"name": "Fraud-Train"}, "name", id="uppercase-pod-name"),
    pytest.param({"name": "fraud_train"}, "name", id="underscore-pod-name"),
    pytest.param({"name": "a" * 254}, "name", id="pod-name-too-long"),
    pytest.param({"name": "fraud..train"}, "name", id="empty-pod-name-part"),
    pytest.param({"namespace": "ml.training"}, "namespace", id="dotted-namespace"),
    pytest.param({"namespace": "n" * 64}, "namespace", id="namespace-too-long"),
    pytest.param({"namespace": "-ml"}, "namespace", id="namespace-leading-hyphen"),
    pytest.param({"service_account": "Fraud SA"}, "service_account", id="service-account-with-space"),
    pytest.param({"service_account": ""}, "service_account", id="empty-service-account"),
    pytest.param({"container_name": "Base"}, "container_name", id="uppercase-container"),
    pytest.param({"container_name": "base.v2"}, "container_name", id="dotted-container"),
    pytest.param({"job_name": "fraud_train"}, "job_name", id="job-name-underscore"),
    pytest.param({"runtime": "sagemaker"}, "runtime", id="sagemaker-runtime-for-a-pod"),
    pytest.param({"runtime": "lambda"}, "runtime", id="unknown-runtime"),
    pytest.param({"labels": {"team": "fraud ml"}}, "labels['team']", id="label-value-with-space"),
    pytest.param({"labels": {"team": "x" * 64}}, "labels['team']", id="label-value-too-long"),
    pytest.param({"labels": {"team": "-fraud"}}, "labels['team']", id="label-value-leading-hyphen"),
    pytest.param({"labels": {"-team": "fraud"}}, "labels['-team']", id="label-key-leading-hyphen"),
    pytest.param(
        {"labels": {"Example.com/team": "fraud"}}, "labels['Example.com/team']", id="label-prefix-case"
    ),
    pytest.param({"labels": {"k" * 64: "v"}}, f"labels[{'k' * 64!r}]", id="label-key-too-long"),
    pytest.param({"labels": {"team": 7}}, "labels['team']", id="label-value-not-string"),
    pytest.param(
        {"labels": {"lyftlearn.io/job-name": "x"}}, "labels['lyftlearn.io/job-name']", id="reserved-label"
    ),
    pytest.param({"annotations": {"bad key": "x"}}, "annotations['bad key']", id="annotation-key-with-space"),
    pytest.param({"annotations": {"note": 1}}, "annotations['note']", id="annotation-not-string"),
    pytest.param({"annotations": {"note": "x" * 70_000}}, "annotations", id="annotations-too-large"),
    pytest.param(
        {"annotations": {"lyftlearn.io/hyperparameters": "{}"}},
        "annotations['lyftlearn.io/hyperparameters']",
        id="reserved-annotation",
    ),
    pytest.param({"restart_policy": "Always"}, "restart_policy", id="restart-always"),
    pytest.param({"active_deadline_seconds": 0}, "active_deadline_seconds", id="zero-deadline"),
    pytest.param({"active_deadline_seconds": True}, "active_deadline_seconds", id="bool-deadline"),
    pytest.param({"node_selector": {"gpu type": "t4"}}, "node_selector['gpu type']", id="bad-node-selector"),
    pytest.param(
        {"tolerations": [{"key": "gpu", "effekt": "NoSchedule"}]}, "tolerations[0]", id="bad-toleration"
    ),
    pytest.param({"tolerations": {"key": "gpu"}}, "tolerations", id="toleration-not-list"),
]


@pytest.mark.parametrize(("kwargs", "field"), BAD_POD_ARGUMENTS)
def test_bad_pod_arguments_are_rejected_naming_field_and_fix(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        render(typical_spec(), **kwargs)
    assert_names_field_and_fix(caught.value, field)


BAD_SPECS_FOR_PODS = [
    pytest.param(
        {"resources": ResourceProfile(instance_count=2)}, {}, "resources.instance_count", id="two-instances"
    ),
    pytest.param(
        {"resources": ResourceProfile(instance_type="ml.r5.large")}, {}, "resources.cpu", id="unknown-type"
    ),
    pytest.param(
        {"resources": ResourceProfile(instance_type="ml.r5.large", cpu="2")},
        {},
        "resources.memory",
        id="no-memory",
    ),
    pytest.param(
        {"resources": ResourceProfile(instance_type="ml.p4d.24xlarge", cpu="90", memory="1000Gi")},
        {},
        "resources.gpu",
        id="unknown-type-gpu-unsaid",
    ),
    pytest.param(
        {"environment": {"AWS_ROLE_ARN": OTHER_ROLE}}, {}, "environment['AWS_ROLE_ARN']", id="role-in-env"
    ),
    pytest.param(
        {"environment": {"AWS_WEB_IDENTITY_TOKEN_FILE": "/t"}},
        {},
        "environment['AWS_WEB_IDENTITY_TOKEN_FILE']",
        id="token",
    ),
    pytest.param(
        {"inputs": {"train": "s3://ml-data/t"}},
        {"input_loader_image": None},
        "input_loader_image",
        id="no-loader",
    ),
    pytest.param(
        {"inputs": {"train": "s3://ml-data/t"}},
        {"input_loader_image": "aws-cli"},
        "input_loader_image",
        id="loader-untagged",
    ),
    pytest.param({"inputs": {"..": "s3://ml-data/t"}}, {}, "inputs['..']", id="channel-escapes-data-dir"),
    pytest.param({"image": "registry.example.com/fraud:{{ params.tag }}"}, {}, "image", id="still-templated"),
]


@pytest.mark.parametrize(("overrides", "kwargs", "field"), BAD_SPECS_FOR_PODS)
def test_specs_a_pod_cannot_run_are_rejected_naming_field_and_fix(
    overrides: dict[str, Any], kwargs: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        render(typical_spec(**overrides), **kwargs)
    assert_names_field_and_fix(caught.value, field)


def test_unknown_instance_type_error_says_what_to_set() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        pod_resources(ResourceProfile(instance_type="ml.r5.large"))
    assert "ml.r5.large" in caught.value.problem
    assert "cpu='4'" in caught.value.fix and "memory='16Gi'" in caught.value.fix


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"cpu": "two"}, "resources.cpu", id="cpu-word"),
        pytest.param({"cpu": "2Gi"}, "resources.cpu", id="cpu-in-bytes"),
        pytest.param({"cpu": 2}, "resources.cpu", id="cpu-not-string"),
        pytest.param({"cpu": "0"}, "resources.cpu", id="cpu-zero"),
        pytest.param({"cpu": "-1"}, "resources.cpu", id="cpu-negative"),
        pytest.param({"cpu": "0.0001"}, "resources.cpu", id="cpu-below-a-millicore"),
        pytest.param({"memory": "512m"}, "resources.memory", id="memory-millibytes"),
        pytest.param({"memory": "512"}, "resources.memory", id="memory-without-unit"),
        pytest.param({"memory": "4GB"}, "resources.memory", id="memory-gb-suffix"),
        pytest.param({"memory": "4 Gi"}, "resources.memory", id="memory-with-space"),
        pytest.param({"gpu": -1}, "resources.gpu", id="negative-gpu"),
        pytest.param({"gpu": True}, "resources.gpu", id="bool-gpu"),
        pytest.param({"gpu": 1.5}, "resources.gpu", id="fractional-gpu"),
    ],
)
def test_bad_kubernetes_resources_are_rejected_naming_field_and_fix(
    overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        ResourceProfile(**overrides)
    assert_names_field_and_fix(caught.value, field)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"pod_security": "privileged"}, "pod_security", id="privileged-level"),
        pytest.param({"run_as_user": 0}, "run_as_user", id="root-under-restricted"),
        pytest.param({"run_as_user": -5}, "run_as_user", id="negative-user"),
        pytest.param({"run_as_user": "1000"}, "run_as_user", id="user-as-string"),
        pytest.param({"run_as_user": 2**31}, "run_as_user", id="user-too-large"),
    ],
)
def test_bad_pod_security_is_rejected_naming_field_and_fix(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        make_spec(**overrides)
    assert_names_field_and_fix(caught.value, field)


def test_pod_rendering_is_a_plain_value() -> None:
    rendering = render_pod(typical_spec(), **pod_kwargs())

    assert rendering == PodRendering(manifest=render(typical_spec()))
    assert rendering.spill_payload() is None
    assert json.loads(json.dumps(rendering.manifest)) == rendering.manifest
