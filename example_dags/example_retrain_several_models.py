"""Retrain several models in one DAG: one retraining pipeline per model, side by side."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, CronDataIntervalTimetable

from lyftlearn_provider import ModelGate, ResourceProfile, RuntimeSpec, retraining_pipeline

# [START howto_retrain_several_models]
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
#: model name -> (image, instance type, the metric its gate needs)
MODELS = {
    "eta": ("eta-model:3", "ml.c5.2xlarge", {"validation:rmse": 120.0}),
    "supply": ("supply-model:7", "ml.m5.xlarge", {"validation:rmse": 0.5}),
}

with DAG(
    dag_id="lyftlearn_retrain_several_models",
    description="Retrain the ETA and supply models every hour, each through its own pipeline.",
    doc_md="""
### Retrain several models in one DAG

One `retraining_pipeline` per model (task groups `eta` and `supply`): each trains on the hour's data,
must keep its RMSE under its bound, and goes to its own Deployment in `ml-serving`. The pipelines are
independent: a model that misses its gate skips only its own deploy. Both track their jobs with
`tracking="shared"`: one batched `DescribeTrainingJob` watcher per triggerer serves every job in flight,
however many models the DAG retrains.

Adding a model is one entry in `MODELS`.
""",
    schedule=CronDataIntervalTimetable("0 * * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 1, "retry_delay": dt.timedelta(seconds=30)},
    tags=["lyftlearn", "example"],
) as dag:
    for name, (image, instance_type, at_most) in MODELS.items():
        retraining_pipeline(
            name,
            spec=RuntimeSpec(
                image=f"{REGISTRY}/{image}",
                role_arn="arn:aws:iam::123456789012:role/lyftlearn-fraud",
                output_s3_uri=f"s3://lyftlearn-models/{name}",
                command=("python", "-m", f"{name}.train"),
                hyperparameters={"hour": "{{ data_interval_start.strftime('%Y-%m-%dT%H') }}"},
                resources=ResourceProfile(instance_type=instance_type),
            ),
            namespace="ml-serving",
            deployment=f"{name}-model",
            container="server",
            gate=ModelGate(at_most=at_most),
            train_kwargs={"tracking": "shared", "execution_timeout": dt.timedelta(minutes=50)},
        )
# [END howto_retrain_several_models]
