"""DAGs for the end-to-end tests: the training operator under real Airflow, deferrable and not."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from lyftlearn_provider import ResourceProfile, RuntimeSpec, TrainModelOperator
from lyftlearn_provider.operators.events import SetupTrainingEventsOperator

SPEC = RuntimeSpec(
    image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:1",
    role_arn="arn:aws:iam::123456789012:role/lyftlearn-training",
    output_s3_uri="s3://lyftlearn-models/fraud",
    hyperparameters={"window_end": "{{ data_interval_end }}"},
    resources=ResourceProfile(instance_type="ml.m5.xlarge"),
)
# Few botocore retries: fault tests then exercise the operator's and trigger's own back-off.
FEW_RETRIES = {"retries": {"mode": "standard", "total_max_attempts": 2}}

for mode in ("deferrable", "sync"):
    with DAG(
        dag_id=f"lyftlearn_e2e_{mode}",
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
        default_args={"retries": 1, "retry_delay": dt.timedelta(seconds=0)},
    ) as dag:
        TrainModelOperator(
            task_id="train",
            spec=SPEC,
            deferrable=mode == "deferrable",
            poll_interval=0.2,
            botocore_config=FEW_RETRIES,
            execution_timeout=dt.timedelta(minutes=3),
        )
    globals()[f"{mode}_dag"] = dag

# Event-driven tracking: the route is set up first; its queue URL reaches the training task by XCom.
# Reconciliation every minute: a wait much shorter than that was ended by the job's event.
with DAG(
    dag_id="lyftlearn_e2e_events",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
) as events_dag:
    setup = SetupTrainingEventsOperator(task_id="setup_events", prefix="ll")
    train = TrainModelOperator(
        task_id="train",
        spec=SPEC,
        deferrable=True,
        tracking="events",
        events_queue_url="{{ ti.xcom_pull(task_ids='setup_events')['queue_url'] }}",
        poll_interval=60,
        botocore_config=FEW_RETRIES,
        execution_timeout=dt.timedelta(minutes=3),
    )
    setup >> train
