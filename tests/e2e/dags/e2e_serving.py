"""DAGs for the serving end-to-end tests: train on SageMaker, validate in a pod, deploy to a Deployment."""

from __future__ import annotations

import dataclasses
import datetime as dt

from airflow.sdk import DAG

from lyftlearn_provider import ResourceProfile, RuntimeSpec, TrainModelOperator, ValidateModelOperator

ROLE = "arn:aws:iam::123456789012:role/lyftlearn-training"
SPEC = RuntimeSpec(
    image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:1",
    role_arn=ROLE,
    output_s3_uri="s3://lyftlearn-models/fraud",
    command=("python", "-m", "fraud.train"),
    environment={"MODEL_NAME": "fraud"},
    config={"features": ["amount", "merchant"]},
    secrets={"DB_PASSWORD": "prod/fraud/db-password"},
    resources=ResourceProfile(instance_type="ml.m5.xlarge"),
)
VALIDATION = dataclasses.replace(SPEC, command=("python", "-m", "fraud.validate"))

for mode in ("deferrable", "sync"):
    with DAG(
        dag_id=f"lyftlearn_e2e_train_validate_{mode}",
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        default_args={"retries": 0},
    ) as dag:
        train = TrainModelOperator(task_id="train", spec=SPEC, deferrable=True, poll_interval=0.2)
        ValidateModelOperator(
            task_id="validate",
            spec=VALIDATION,
            training_result=train.output,
            deferrable=mode == "deferrable",
            poll_interval=0.5,
            startup_timeout_seconds=30,
            execution_timeout=dt.timedelta(seconds=90),
        )
    globals()[f"{mode}_dag"] = dag

# The whole loop, with the image's tag moved to another build between training and validation: what
# validates and serves must still be the digest that trained.
with DAG(
    dag_id="lyftlearn_e2e_loop",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    default_args={"retries": 0},
) as loop_dag:
    from airflow.sdk import task

    from lyftlearn_provider import DeployModelOperator, ModelGate

    @task
    def move_the_tag() -> str:
        import boto3

        from lyftlearn_provider.testing.aws.images import push_image

        ecr = boto3.client("ecr")
        push_image(ecr, "fraud-model", "1-previous", soci="v2", build="fraud-model:1")  # moto drops untagged
        return push_image(ecr, "fraud-model", "1", soci="v2", build="a later build")

    train = TrainModelOperator(task_id="train", spec=SPEC, deferrable=True, poll_interval=0.2)
    validate = ValidateModelOperator(
        task_id="validate",
        spec=VALIDATION,
        training_result=train.output,
        deferrable=True,
        poll_interval=0.5,
        startup_timeout_seconds=30,
        execution_timeout=dt.timedelta(seconds=90),
    )
    deploy = DeployModelOperator(
        task_id="deploy",
        spec=SPEC,
        training_result=train.output,
        namespace="default",
        deployment="fraud",
        container="server",
        gate=ModelGate(at_least={"validation:auc": 0.85}),
        deferrable=True,
        poll_interval=0.5,
        rollout_timeout_seconds=60,
    )
    train >> move_the_tag() >> validate >> deploy
