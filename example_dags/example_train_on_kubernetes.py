"""Migrate training from SageMaker to Kubernetes (or back) by changing one argument: ``backend``."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from lyftlearn_provider import ResourceProfile, RuntimeSpec, TrainModelOperator

# [START howto_train_on_kubernetes]
FRAUD_MODEL = RuntimeSpec(
    image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:2026.11.28",
    role_arn="arn:aws:iam::123456789012:role/lyftlearn-training",
    output_s3_uri="s3://lyftlearn-models/fraud",
    command=("python", "-m", "fraud.train"),
    hyperparameters={"learning_rate": 0.05, "window": "{{ data_interval_end }}"},
    config={"features": ["amount", "merchant", "hour"], "label": "is_fraud"},
    resources=ResourceProfile(instance_type="ml.m5.xlarge", volume_size_gb=30),
)

with DAG(
    dag_id="lyftlearn_train_on_kubernetes",
    description="Train the fraud model as a Kubernetes pod: the SageMaker spec, one argument changed.",
    doc_md="""
### Migrate training between SageMaker and Kubernetes

The task is the 15-minute example's training task with `backend="kubernetes"`: the same `RuntimeSpec`
runs as a pod (through the cncf provider's KubernetesPodOperator machinery) instead of a SageMaker
training job. The program sees the same contract — `/opt/ml/input/config/hyperparameters.json`,
`SM_*` variables, `LYFTLEARN_*` variables, the IAM role through the pod's service account
(`lyftlearn-training`, annotated `eks.amazonaws.com/role-arn`) — and the task returns the same result.
It keeps the lifecycle: one pod per run, adopted on retry, deleted on kill.

Arguments of one backend given to the other (`keep_alive_seconds` here) fail when the DAG is parsed,
naming the argument. To go back, remove `backend=` (SageMaker is the default).
""",
    schedule=None,
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    default_args={"retries": 1},
    tags=["lyftlearn", "example"],
) as dag:
    TrainModelOperator(
        task_id="train",
        spec=FRAUD_MODEL,
        backend="kubernetes",
        namespace="default",
        service_account_name="lyftlearn-training",
        deferrable=True,
        execution_timeout=dt.timedelta(minutes=30),
    )
# [END howto_train_on_kubernetes]
