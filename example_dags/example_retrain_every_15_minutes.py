"""Retrain a fraud model every 15 minutes on SageMaker and put it into serving on Kubernetes."""

from __future__ import annotations

import dataclasses
import datetime as dt

from airflow.sdk import DAG, Asset, CronDataIntervalTimetable, Variable

from lyftlearn_provider import ModelGate, ResourceProfile, RuntimeSpec, retraining_pipeline

DOC_MD = """
### Retrain the fraud model every 15 minutes

Each run trains on its own 15-minute data interval (`{{ ds }}`, `{{ data_interval_end }}`), then:

- `fraud.train` pins `fraud-model:2026.11.28` to its digest (refusing an image without a SOCI
  index) and trains on SageMaker on a **warm pool** kept 30 minutes: the next run skips provisioning;
- `fraud.gate`: the model must reach AUC 0.85 and be no worse than the serving model, else the rest
  is **skipped**, with the reason in the log and the XCom;
- `fraud.validate`: the image that trained loads the model in a pod (`LYFTLEARN_RUNTIME=validation`);
- `fraud.deploy` puts it into Deployment `ml-serving/fraud-model`, waits for the rollout and rolls a
  failed one back; serving never goes back to a model trained on older data.

`max_active_runs=1` and a 14-minute `execution_timeout` keep runs from overlapping; `catchup=False`.
Job state comes from EventBridge through SQS when the Variable `lyftlearn_events_queue_url` is set
(see `lyftlearn_training_events_setup`), else from one shared watcher per triggerer.
A run triggered without a logical date trains on the 15 minutes before it was triggered.
Retries adopt the run's job: a retry never trains twice.
"""

# [START howto_retrain_every_15_minutes]
FRAUD_MODEL = RuntimeSpec(
    image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:2026.11.28",
    role_arn="arn:aws:iam::123456789012:role/lyftlearn-fraud",
    output_s3_uri="s3://lyftlearn-models/fraud",
    command=("python", "-m", "fraud.train"),
    hyperparameters={"learning_rate": 0.05, "max_depth": 6, "window": "{{ data_interval_end }}"},
    config={"features": ["amount", "merchant", "hour"], "label": "is_fraud"},
    inputs={"train": "s3://lyftlearn-features/fraud/{{ ds }}/"},
    resources=ResourceProfile(instance_type="ml.m5.xlarge", instance_count=1, volume_size_gb=30),
)
# The same program and contract, run by the image that trained: a smoke test of the model in a pod.
FRAUD_VALIDATION = dataclasses.replace(FRAUD_MODEL, command=("python", "-m", "fraud.validate"), inputs={})
# Read when the DAG is parsed (cached by Airflow); set it once the events route exists
# (example_training_events_setup.py returns its queue_url).
EVENTS_QUEUE_URL = Variable.get("lyftlearn_events_queue_url", default=None)

with DAG(
    dag_id="lyftlearn_retrain_every_15_minutes",
    description="Retrain the fraud model on each 15 minutes of data and serve it if it is better.",
    doc_md=DOC_MD,
    # Data intervals (not just trigger times): each run trains on its own 15 minutes of data.
    schedule=CronDataIntervalTimetable("*/15 * * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": dt.timedelta(seconds=30)},
    tags=["lyftlearn", "example"],
) as dag:
    retraining_pipeline(
        "fraud",
        spec=FRAUD_MODEL,
        validation_spec=FRAUD_VALIDATION,
        namespace="ml-serving",
        deployment="fraud-model",
        container="server",
        gate=ModelGate(
            at_least={"validation:auc": 0.85}, not_worse_than_serving={"validation:auc": "higher"}
        ),
        # Named, not an s3:// URI: Airflow normalizes s3:// asset URIs with the amazon provider's S3
        # hook, which would import boto3 on every parse. The event's extra says where the model is.
        model_asset=Asset(name="retrained_fraud_model"),
        events_queue_url=EVENTS_QUEUE_URL,
        train_kwargs={
            # Keep the instances warm past the next run's start: the next job skips provisioning.
            "keep_alive_seconds": 1800,
            # Lazy image loading: refuse (before anything starts) an image without a SOCI index.
            "soci": "require",
            # Also SageMaker's MaxRuntimeInSeconds: a stuck run never overlaps the next one.
            "execution_timeout": dt.timedelta(minutes=14),
            **({} if EVENTS_QUEUE_URL else {"tracking": "shared"}),
        },
        validate_kwargs={"namespace": "ml-serving", "service_account_name": "fraud-serving"},
        deploy_kwargs={"rollout_timeout_seconds": 300},
    )
# [END howto_retrain_every_15_minutes]
