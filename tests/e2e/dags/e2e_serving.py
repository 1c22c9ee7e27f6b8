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
