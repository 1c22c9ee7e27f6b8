"""### Train, then score in batch

Train a fraud model, then score yesterday's transactions with it as a batch job, on SageMaker.

The scoring task (``RunBatchJobOperator``) takes the training task's result: it runs the *pinned image
that trained* (the code that reads the model is the code that wrote it, even if the tag moved since)
and loads the model from ``LYFTLEARN_MODEL_URI``; the program sees ``LYFTLEARN_RUNTIME=batch``, reads
``/opt/ml/processing/input/transactions`` and writes ``/opt/ml/processing/output/predictions``, which
SageMaker Processing uploads to the run's prefix. Both tasks have training's guarantees: one job per
run across retries and clears, stopped on kill and timeouts, followed by the shared watcher.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, task

from lyftlearn_provider import ResourceProfile, RunBatchJobOperator, RuntimeSpec, TrainModelOperator

# [START howto_train_then_batch_score]
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:2026.11.28"
ROLE = "arn:aws:iam::123456789012:role/lyftlearn-training"

TRAIN = RuntimeSpec(
    image=IMAGE,
    role_arn=ROLE,
    output_s3_uri="s3://lyftlearn-models/fraud",
    command=("python", "-m", "fraud.train"),
    hyperparameters={"learning_rate": 0.05, "max_depth": 6},
    inputs={"train": "s3://lyftlearn-features/fraud/{{ ds }}/"},
    resources=ResourceProfile(instance_type="ml.m5.xlarge"),
)
# The same image, another entrypoint; its image is replaced by the training result's pinned digest.
SCORE = RuntimeSpec(
    image=IMAGE,
    role_arn=ROLE,
    output_s3_uri="s3://lyftlearn-models/fraud",
    command=("python", "-m", "fraud.score"),
    config={"threshold": 0.8},
    inputs={"transactions": "s3://lyftlearn-data/transactions/{{ ds }}/"},
    resources=ResourceProfile(instance_type="ml.m5.2xlarge", instance_count=2),
)

with DAG(
    dag_id="lyftlearn_train_then_batch_score",
    description="Train a model, then batch-score a day of data with exactly that model and image.",
    doc_md=__doc__,
    schedule="@daily",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 2, "retry_delay": dt.timedelta(seconds=30)},
    tags=["lyftlearn", "example", "batch"],
) as dag:
    train = TrainModelOperator(
        task_id="train",
        spec=TRAIN,
        tracking="shared",
        execution_timeout=dt.timedelta(hours=2),
        deferrable=True,
    )
    score = RunBatchJobOperator(
        task_id="score",
        spec=SCORE,
        training_result=train.output,
        outputs={"predictions": "s3://lyftlearn-predictions/fraud/{{ ds }}/"},
        tracking="shared",
        execution_timeout=dt.timedelta(hours=1),
        deferrable=True,
    )

    @task
    def report(trained: dict, scored: dict) -> str:
        """Say which model scored which data, and where the predictions are."""
        return (
            f"{scored['job_name']} scored with {trained['model_artifact_uri']} "
            f"({scored['image']}): predictions in {scored['outputs']['predictions']}"
        )

    report(train.output, score.output)
# [END howto_train_then_batch_score]
