"""The whole loop twice for P4: ours (train, validate, deploy) and the same from upstream operators.

Read by ``bench/p4_overhead.py``. Both loops train the same job (ours renders it; upstream gets the
same request), validate in the same pod behaviour and put the model into a Deployment; both follow
their work from the triggerer at the same interval.
"""

from __future__ import annotations

import datetime as dt
import json
import os

from airflow.sdk import DAG

from lyftlearn_provider import (
    DeployModelOperator,
    ResourceProfile,
    RuntimeSpec,
    TrainModelOperator,
    ValidateModelOperator,
)

INTERVAL = float(os.environ.get("P4_INTERVAL", "2"))
SPEC = RuntimeSpec(
    image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:1",
    role_arn="arn:aws:iam::123456789012:role/lyftlearn-training",
    output_s3_uri="s3://bench-models/fraud",
    hyperparameters={"learning_rate": 0.05, "max_depth": 6},
    resources=ResourceProfile(instance_type="ml.m5.xlarge"),
)
# Airflow 3.3.2 can fail a resumed try on a stale executor "success" (apache/airflow#67287): one retry.
ARGS = {"retries": 1, "retry_delay": dt.timedelta(seconds=1)}
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)

with DAG("p4_ours", schedule=None, start_date=START, default_args=ARGS):
    train = TrainModelOperator(task_id="train", spec=SPEC, deferrable=True, poll_interval=INTERVAL)
    validate = ValidateModelOperator(
        task_id="validate", spec=SPEC, training_result=train.output, deferrable=True, poll_interval=INTERVAL
    )
    deploy = DeployModelOperator(
        task_id="deploy",
        spec=SPEC,
        training_result=train.output,
        namespace="default",
        deployment="fraud",
        container="server",
        deferrable=True,
        poll_interval=INTERVAL,
    )
    train >> validate >> deploy

if os.environ.get("P4_UPSTREAM_CONFIG"):
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.cncf.kubernetes.operators.resource import KubernetesCreateResourceOperator

    CONFIG = json.loads(os.environ["P4_UPSTREAM_CONFIG"])
    CONFIG["TrainingJobName"] = "up-{{ run_id }}"
    IMAGE = "{{ ti.xcom_pull(task_ids='train')['Training']['AlgorithmSpecification']['TrainingImage'] }}"
    MODEL = "{{ ti.xcom_pull(task_ids='train')['Training']['ModelArtifacts']['S3ModelArtifacts'] }}"
    # Upstream has no "put this image into a Deployment and wait": the closest is creating one per run.
    DEPLOYMENT = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "fraud-{{ run_id }}", "labels": {"app": "fraud-{{ run_id }}"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "fraud-{{ run_id }}"}},
            "template": {
                "metadata": {"labels": {"app": "fraud-{{ run_id }}"}},
                "spec": {
                    "serviceAccountName": "fraud-serving",
                    "containers": [
                        {
                            "name": "server",
                            "image": IMAGE,
                            "env": [{"name": "LYFTLEARN_MODEL_URI", "value": MODEL}],
                        }
                    ],
                },
            },
        },
    }

    with DAG("p4_upstream", schedule=None, start_date=START, default_args=ARGS):
        up_train = SageMakerTrainingOperator(
            task_id="train", config=CONFIG, deferrable=True, check_interval=int(INTERVAL), print_log=False
        )
        up_validate = KubernetesPodOperator(
            task_id="validate",
            name="validate",
            namespace="default",
            image=IMAGE,
            cmds=["python", "-m", "fraud.validate"],
            env_vars={"LYFTLEARN_MODEL_URI": MODEL, "LYFTLEARN_RUNTIME": "validation"},
            service_account_name="lyftlearn-training",
            deferrable=True,
            poll_interval=INTERVAL,
            get_logs=False,
        )
        up_deploy = KubernetesCreateResourceOperator(
            task_id="deploy", yaml_conf=json.dumps(DEPLOYMENT), namespace="default"
        )
        up_train >> up_validate >> up_deploy
