"""DAGs for the end-to-end tests of the kubernetes backend: the training spec run as a pod."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from lyftlearn_provider import ResourceProfile, RuntimeSpec, TrainModelOperator

SPEC = RuntimeSpec(
    image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:1",
    role_arn="arn:aws:iam::123456789012:role/lyftlearn-training",
    output_s3_uri="s3://lyftlearn-models/fraud",
    command=("python", "-m", "fraud.train"),
    hyperparameters={"learning_rate": 0.05},
    resources=ResourceProfile(instance_type="ml.m5.xlarge"),
)

for mode in ("deferrable", "sync"):
    with DAG(
        dag_id=f"lyftlearn_e2e_kubernetes_{mode}",
        schedule=None,
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    ) as dag:
        TrainModelOperator(
            task_id="train",
            spec=SPEC,
            backend="kubernetes",
            deferrable=mode == "deferrable",
            poll_interval=0.5,
            startup_timeout_seconds=30,
            execution_timeout=dt.timedelta(seconds=90),
        )
    globals()[f"{mode}_dag"] = dag

# The same kind of spec run as a batch pod: LYFTLEARN_RUNTIME=batch, the model and the outputs' URIs.
with DAG(
    dag_id="lyftlearn_e2e_kubernetes_batch",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
) as batch_dag:
    from lyftlearn_provider import RunBatchJobOperator

    RunBatchJobOperator(
        task_id="score",
        spec=RuntimeSpec(
            image=SPEC.image,
            role_arn=SPEC.role_arn,
            output_s3_uri=SPEC.output_s3_uri,
            command=("python", "-m", "fraud.score"),
            resources=SPEC.resources,
        ),
        outputs={"predictions": "s3://lyftlearn-predictions/fraud/{{ ds }}/"},
        model_uri="s3://lyftlearn-models/fraud/run-1/model.tar.gz",
        backend="kubernetes",
        deferrable=True,
        poll_interval=0.5,
        startup_timeout_seconds=30,
        execution_timeout=dt.timedelta(seconds=90),
    )
