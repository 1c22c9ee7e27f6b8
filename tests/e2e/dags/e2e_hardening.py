"""DAGs for the end-to-end hardening tests: configuration errors that must not spend retries, and pods."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from lyftlearn_provider import ResourceProfile, RuntimeSpec, TrainModelOperator

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def spec(image: str = f"{REGISTRY}/fraud-model:1", **values: object) -> RuntimeSpec:
    return RuntimeSpec(
        image=image,
        role_arn="arn:aws:iam::123456789012:role/lyftlearn-training",
        output_s3_uri="s3://lyftlearn-models/fraud",
        resources=ResourceProfile(instance_type="ml.m5.xlarge"),
        **values,  # type: ignore[arg-type]
    )


def dag(dag_id: str) -> DAG:
    return DAG(
        dag_id=dag_id,
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        # Configuration errors must fail at once: these retries must never be spent on them.
        default_args={"retries": 2, "retry_delay": dt.timedelta(seconds=0)},
    )


with dag("lyftlearn_e2e_soci_required") as soci_required:
    TrainModelOperator(
        task_id="train", spec=spec(f"{REGISTRY}/plain-model:1"), soci="require", poll_interval=0.2
    )

with dag("lyftlearn_e2e_undefined_template") as undefined_template:
    TrainModelOperator(
        task_id="train", spec=spec(hyperparameters={"window": "{{ no_such_variable }}"}), poll_interval=0.2
    )

with dag("lyftlearn_e2e_masked_variable") as masked_variable:
    TrainModelOperator(
        task_id="train",
        spec=spec(environment={"DB_PASSWORD": "{{ var.value.lyftlearn_db_password }}"}),
        poll_interval=0.2,
    )

with DAG(
    dag_id="lyftlearn_e2e_pod_retry",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    default_args={"retries": 1, "retry_delay": dt.timedelta(seconds=0)},
) as pod_retry:
    TrainModelOperator(
        task_id="train",
        spec=spec(),
        backend="kubernetes",
        deferrable=True,
        poll_interval=0.5,
        startup_timeout_seconds=30,
        execution_timeout=dt.timedelta(seconds=90),
    )
