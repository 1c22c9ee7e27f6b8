"""The whole loop twice for P4: ours (train, validate, deploy) and the same from upstream operators.

Read by ``bench/p4_overhead.py``. Both loops train the same job (ours renders it; upstream gets the
same request), validate in the same pod behaviour and put the model into a Deployment; both follow
their work from the triggerer at the same interval. Ours is built from ``bench/_standalone.py``, as
R2's loop is.
"""

from __future__ import annotations

import datetime as dt
import json
import os

from _standalone import SERVING_REPLICAS, deploy_to_serving, fraud_spec
from airflow.sdk import DAG

from lyftlearn_provider import TrainModelOperator, ValidateModelOperator

INTERVAL = float(os.environ.get("P4_INTERVAL", "2"))
#: Our deploy's defer_after_seconds (None: the operator's default); 0 defers unless its first look ends it.
DEFER_AFTER = os.environ.get("P4_DEFER_AFTER")
SPEC = fraud_spec("1", hyperparameters={"learning_rate": 0.05, "max_depth": 6})
# Airflow 3.3.2 can fail a resumed try on a stale executor "success" (apache/airflow#67287): one retry.
ARGS = {"retries": 1, "retry_delay": dt.timedelta(seconds=1)}
START = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)

with DAG("p4_ours", schedule=None, start_date=START, default_args=ARGS):
    train = TrainModelOperator(task_id="train", spec=SPEC, deferrable=True, poll_interval=INTERVAL)
    validate = ValidateModelOperator(
        task_id="validate", spec=SPEC, training_result=train.output, deferrable=True, poll_interval=INTERVAL
    )
    extra = {} if DEFER_AFTER is None else {"defer_after_seconds": float(DEFER_AFTER)}
    train >> validate >> deploy_to_serving(SPEC, train.output, poll_interval=INTERVAL, **extra)

if os.environ.get("P4_UPSTREAM_CONFIG"):
    from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.providers.cncf.kubernetes.operators.resource import KubernetesCreateResourceOperator

    CONFIG = json.loads(os.environ["P4_UPSTREAM_CONFIG"])
    CONFIG["TrainingJobName"] = "up-{{ run_id }}"
    IMAGE = "{{ ti.xcom_pull(task_ids='train')['Training']['AlgorithmSpecification']['TrainingImage'] }}"
    MODEL = "{{ ti.xcom_pull(task_ids='train')['Training']['ModelArtifacts']['S3ModelArtifacts'] }}"
    # Upstream has no "put this image into a Deployment and wait": the closest is creating one per run.
    LABELS = {"app": "fraud-{{ run_id }}"}
    SERVER = {"name": "server", "image": IMAGE, "env": [{"name": "LYFTLEARN_MODEL_URI", "value": MODEL}]}
    DEPLOYMENT = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "fraud-{{ run_id }}", "labels": LABELS},
        "spec": {
            "replicas": SERVING_REPLICAS,
            "selector": {"matchLabels": LABELS},
            "template": {
                "metadata": {"labels": LABELS},
                "spec": {"serviceAccountName": "fraud-serving", "containers": [SERVER]},
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
