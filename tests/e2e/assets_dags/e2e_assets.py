"""Two DAGs joined by the model's asset: one team trains, another validates whatever it trained.

The training DAG's task emits an event of the model's asset (``model_asset=``); the serving DAG is
scheduled on that asset and reads the model — URI, pinned image, metrics, data interval — from the
event that triggered its run. Run by tests on ``airflow standalone`` (the scheduler makes the link).

Both DAGs retry once, as production DAGs should: Airflow 3.3.2 can fail a task whose trigger fired
just as the executor reported the deferral's exit (apache/airflow#72716, #71580; still open),
and our retry adopts the finished job instead of starting another one.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG, Asset

from lyftlearn_provider import ResourceProfile, RuntimeSpec, TrainModelOperator, ValidateModelOperator

MODEL = Asset(name="fraud_model", uri="s3://lyftlearn-models/fraud/model")
SPEC = RuntimeSpec(
    image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:1",
    role_arn="arn:aws:iam::123456789012:role/lyftlearn-training",
    output_s3_uri="s3://lyftlearn-models/fraud",
    command=("python", "-m", "fraud.validate"),
    resources=ResourceProfile(instance_type="ml.m5.xlarge"),
)
RETRY_ONCE = {"retries": 1, "retry_delay": dt.timedelta(seconds=2)}

with DAG(
    dag_id="lyftlearn_e2e_asset_train",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    default_args=RETRY_ONCE,
) as training_team:
    TrainModelOperator(task_id="train", spec=SPEC, model_asset=MODEL, deferrable=True, poll_interval=1)

with DAG(
    dag_id="lyftlearn_e2e_asset_validate",
    schedule=[MODEL],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    default_args=RETRY_ONCE,
) as serving_team:
    ValidateModelOperator(
        task_id="validate",
        spec=SPEC,
        model_asset=MODEL,
        deferrable=True,
        poll_interval=1,
        startup_timeout_seconds=60,
        execution_timeout=dt.timedelta(minutes=3),
    )
