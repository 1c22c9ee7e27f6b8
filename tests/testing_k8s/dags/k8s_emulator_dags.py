"""DAGs that run KubernetesPodOperator against the Kubernetes emulator (used by tests/testing_k8s).

The pods' behaviour (logs, exit code, XCom) is registered by the tests, keyed on the ``task_id``
label the operator puts on its pods; the images and commands here are never run.
"""

from __future__ import annotations

import datetime as dt

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.sdk import DAG

START = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
# Bounds every run: a hang in the operator or the emulator fails the task instead of stalling the suite.
TASK_TIMEOUT = dt.timedelta(seconds=60)


def _pod_task(task_id: str, **kwargs: object) -> KubernetesPodOperator:
    return KubernetesPodOperator(
        task_id=task_id,
        name=task_id.replace("_", "-"),
        namespace="default",
        image="registry.example.com/model@sha256:" + "0" * 64,
        cmds=["python", "-m", "model.validate"],
        startup_timeout_seconds=30,
        startup_check_interval_seconds=1,
        execution_timeout=TASK_TIMEOUT,
        retries=0,
        **kwargs,
    )


with DAG("k8s_emulator_kpo_sync", schedule=None, start_date=START, catchup=False) as kpo_sync:
    _pod_task("validate_sync", do_xcom_push=True, get_logs=True)

with DAG("k8s_emulator_kpo_deferrable", schedule=None, start_date=START, catchup=False) as kpo_deferrable:
    _pod_task("validate_deferred", do_xcom_push=True, deferrable=True, poll_interval=0.5)

with DAG("k8s_emulator_kpo_failing", schedule=None, start_date=START, catchup=False) as kpo_failing:
    _pod_task("validate_failing", get_logs=True)
