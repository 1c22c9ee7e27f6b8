"""Retrain a fraud model every 15 minutes on SageMaker, with a warm pool between runs."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, CronDataIntervalTimetable, task

from lyftlearn_provider import ResourceProfile, RuntimeSpec, TrainModelOperator

# [START howto_retrain_every_15_minutes]
FRAUD_MODEL = RuntimeSpec(
    image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:2026.11.28",
    role_arn="arn:aws:iam::123456789012:role/lyftlearn-training",
    output_s3_uri="s3://lyftlearn-models/fraud",
    command=("python", "-m", "fraud.train"),
    hyperparameters={"learning_rate": 0.05, "max_depth": 6, "window": "{{ data_interval_end }}"},
    config={"features": ["amount", "merchant", "hour"], "label": "is_fraud"},
    inputs={"train": "s3://lyftlearn-features/fraud/{{ ds }}/"},
    resources=ResourceProfile(instance_type="ml.m5.xlarge", instance_count=1, volume_size_gb=30),
)

with DAG(
    dag_id="lyftlearn_retrain_every_15_minutes",
    # Data intervals (not just trigger times): each run trains on its own 15 minutes of data.
    schedule=CronDataIntervalTimetable("*/15 * * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": dt.timedelta(seconds=30)},
    tags=["lyftlearn", "example"],
) as dag:
    train = TrainModelOperator(
        task_id="train",
        spec=FRAUD_MODEL,
        # Keep the instances warm past the next run's start: the next job skips provisioning.
        keep_alive_seconds=1800,
        # Lazy image loading: refuse (before anything starts) an image without a SOCI index.
        soci="require",
        # Also SageMaker's MaxRuntimeInSeconds: a stuck run never overlaps the next one.
        execution_timeout=dt.timedelta(minutes=14),
        deferrable=True,
    )

    @task
    def report(result: dict) -> str:
        """Say what was trained, how fast it started and what it scored."""
        return (
            f"{result['job_name']}: {result['status']}, start-up {result['startup_total_seconds']}s, "
            f"metrics {result['final_metrics']}, model {result['model_artifact_uri']}"
        )

    report(train.output)
# [END howto_retrain_every_15_minutes]
