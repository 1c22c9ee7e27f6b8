"""Retrain a churn model once a day; safe to backfill: every day trains once, serving never goes back."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, CronDataIntervalTimetable

from lyftlearn_provider import ModelGate, ResourceProfile, RuntimeSpec, retraining_pipeline

# [START howto_retrain_daily]
CHURN_MODEL = RuntimeSpec(
    image="123456789012.dkr.ecr.us-east-1.amazonaws.com/churn-model:5",
    role_arn="arn:aws:iam::123456789012:role/lyftlearn-fraud",
    output_s3_uri="s3://lyftlearn-models/churn",
    command=("python", "-m", "churn.train"),
    hyperparameters={"day": "{{ ds }}", "epochs": 20},
    inputs={"train": "s3://lyftlearn-features/churn/{{ ds }}/"},
    resources=ResourceProfile(instance_type="ml.m5.2xlarge"),
)

with DAG(
    dag_id="lyftlearn_retrain_daily",
    description="Retrain the churn model on each day of data; backfills train every day, serve the newest.",
    doc_md="""
### Retrain the churn model daily — safe to backfill

Each run trains on one day (`{{ ds }}`) and deploys the model to `ml-serving/churn-model` if it clears
the gate (AUC ≥ 0.8). To retrain a past week, e.g. after fixing a feature:

```bash
airflow backfill create --dag-id lyftlearn_retrain_daily \\
    --from-date 2026-11-01 --to-date 2026-11-08
```

Every day of the backfill trains exactly once (a retry or a clear adopts that day's job), but serving is
**never rolled back**: a day older than the model that serves is trained and recorded, and its `gate`
and `deploy` are skipped with the reason. Backfills and the live schedule never interleave on the
Deployment (its writes are compare-and-swap). Validation is left out here (`validation_spec=None`):
each step of `retraining_pipeline` is optional or configurable.
""",
    schedule=CronDataIntervalTimetable("0 0 * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=3,
    default_args={"retries": 1, "retry_delay": dt.timedelta(minutes=1)},
    tags=["lyftlearn", "example"],
) as dag:
    retraining_pipeline(
        "churn",
        spec=CHURN_MODEL,
        namespace="ml-serving",
        deployment="churn-model",
        container="server",
        gate=ModelGate(at_least={"validation:auc": 0.8}),
        train_kwargs={"execution_timeout": dt.timedelta(hours=6)},
    )
# [END howto_retrain_daily]
