"""Create (or repair) the EventBridge -> SQS route that reports training-job state changes."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from lyftlearn_provider.operators.events import SetupTrainingEventsOperator

# [START howto_training_events_setup]
with DAG(
    dag_id="lyftlearn_training_events_setup",
    # Idempotent: a daily run repairs drift (a widened queue policy, a disabled rule) and changes
    # nothing otherwise.
    schedule="@daily",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    tags=["lyftlearn", "example"],
) as dag:
    SetupTrainingEventsOperator(
        task_id="ensure_training_events_route",
        # Must match TrainModelOperator(job_name_prefix=...): the rule matches job names on it.
        prefix="ll",
    )
# [END howto_training_events_setup]
