"""One image, three runtimes: what the program sees training (SageMaker), validating (a pod) and serving
(a Deployment's container) is the same, apart from ``LYFTLEARN_RUNTIME`` and the model it is given.
"""

from __future__ import annotations

from typing import Any

from lyftlearn_provider.rendering.kubernetes import pod_name, render_container, render_pod
from lyftlearn_provider.rendering.sagemaker import render_training_job
from lyftlearn_provider.runtime import ResourceProfile, RuntimeSpec
from lyftlearn_provider.serving import ServingRecord, serving_deployment, serving_record
from lyftlearn_provider.testing.parity import program_view, render_service_account

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model@sha256:" + "a" * 64
ROLE = "arn:aws:iam::123456789012:role/lyftlearn-fraud"
MODEL = "s3://lyftlearn-models/fraud/ll-retrain-train-0123456789/output/model.tar.gz"
RUN = {
    "LYFTLEARN_DAG_ID": "retrain_fraud",
    "LYFTLEARN_RUN_ID": "scheduled__2026-11-28T15:00:00+00:00",
    "LYFTLEARN_DATA_INTERVAL_START": "2026-11-28T14:45:00+00:00",
    "LYFTLEARN_DATA_INTERVAL_END": "2026-11-28T15:00:00+00:00",
}
JOB = "ll-retrain-fraud-train-0123456789"
#: Differ by design: which runtime, which task and job, and the model (only once it is trained).
BY_DESIGN = {"LYFTLEARN_RUNTIME", "LYFTLEARN_TASK_ID", "LYFTLEARN_JOB_NAME", "LYFTLEARN_MODEL_URI"}

SPEC = RuntimeSpec(
    image=IMAGE,
    role_arn=ROLE,
    output_s3_uri="s3://lyftlearn-models/fraud",
    environment={"LOG_LEVEL": "info", "MODEL_NAME": "fraud"},
    hyperparameters={"learning_rate": 0.05},
    config={"features": ["amount", "merchant"], "threshold": 0.7},
    secrets={"DB_PASSWORD": "prod/fraud/db-password"},
    metrics_host="statsd.monitoring",
    resources=ResourceProfile(instance_type="ml.m5.xlarge"),
)


def task(name: str) -> dict[str, str]:
    return {**RUN, "LYFTLEARN_TASK_ID": name}


def common(environment: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in environment.items() if name not in BY_DESIGN}


def views() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any]]:
    training = program_view(
        render_training_job(SPEC, job_name=JOB, max_runtime_seconds=3600, run_environment=task("train"))
    )
    account = render_service_account(SPEC, name="fraud", namespace="ml")
    validation = program_view(
        render_pod(
            SPEC,
            name=pod_name(JOB + "v"),
            namespace="ml",
            service_account="fraud",
            job_name=JOB + "v",
            runtime="validation",
            run_environment=task("validate"),
            model_uri=MODEL,
        ),
        service_account=account,
    )
    serving = render_container(
        SPEC,
        job_name=JOB + "d",
        name="server",
        runtime="serving",
        run_environment=task("deploy"),
        model_uri=MODEL,
    )
    environment = {entry["name"]: entry["value"] for entry in serving["env"]}
    return training, validation, {"image": serving["image"], "environment": environment}, account


def test_the_three_runtimes_see_the_same_environment_configuration_and_image():
    training, validation, serving, _ = views()
    assert (
        common(training["environment"]) == common(validation["environment"]) == common(serving["environment"])
    )
    assert training["image"] == validation["image"] == serving["image"] == IMAGE
    assert '"threshold":0.7' in training["environment"]["LYFTLEARN_CONFIG"]
    assert training["environment"]["LYFTLEARN_SECRETS"] == validation["environment"]["LYFTLEARN_SECRETS"]
    # What differs, and only that:
    runtimes = [view["environment"]["LYFTLEARN_RUNTIME"] for view in (training, validation, serving)]
    assert runtimes == ["sagemaker", "validation", "serving"]
    assert "LYFTLEARN_MODEL_URI" not in training["environment"]  # it trains the model
    assert (
        validation["environment"]["LYFTLEARN_MODEL_URI"]
        == serving["environment"]["LYFTLEARN_MODEL_URI"]
        == MODEL
    )


def test_the_same_role_reaches_every_runtime_by_its_own_mechanism():
    training, validation, _, account = views()
    assert training["credentials"] == {"mechanism": "sagemaker:RoleArn", "role_arn": ROLE}
    assert validation["credentials"] == {"mechanism": "kubernetes:serviceAccount (IRSA)", "role_arn": ROLE}
    # Serving runs as the Deployment's service account, which the deploy task checks carries ROLE.
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == ROLE


def test_the_serving_container_gets_the_contract_and_keeps_the_teams_own_settings():
    _, _, serving, _ = views()
    deployment = {
        "metadata": {"name": "fraud", "namespace": "ml", "resourceVersion": "7"},
        "spec": {
            "template": {
                "metadata": {},
                "spec": {
                    "containers": [
                        {
                            "name": "server",
                            "image": "x@sha256:" + "b" * 64,
                            "ports": [{"containerPort": 8080}],
                        }
                    ]
                },
            }
        },
    }
    record = ServingRecord(model_uri=MODEL, image=IMAGE)
    updated = serving_deployment(
        deployment, container="server", image=IMAGE, environment=serving["environment"], record=record
    )
    (container,) = updated["spec"]["template"]["spec"]["containers"]
    assert {entry["name"]: entry["value"] for entry in container["env"]} == serving["environment"]
    assert container["ports"] == [{"containerPort": 8080}]
    assert serving_record(updated) == record
