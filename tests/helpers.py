"""Shared test helpers: a spec, a SageMaker state-change event, and a task-instance stand-in."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lyftlearn_provider.runtime import ResourceProfile, RuntimeSpec

T0 = dt.datetime(2026, 11, 28, 15, 0, tzinfo=dt.timezone.utc)
ACCOUNT, REGION = "123456789012", "us-east-1"


def make_spec(**overrides: Any) -> RuntimeSpec:
    values: dict[str, Any] = {
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:1",
        "role_arn": "arn:aws:iam::123456789012:role/lyftlearn-training",
        "output_s3_uri": "s3://lyftlearn-models/fraud",
        "command": ("python", "-m", "fraud.train"),
        "hyperparameters": {"learning_rate": 0.05},
        "resources": ResourceProfile(instance_type="ml.m5.xlarge"),
    }
    values.update(overrides)
    return RuntimeSpec(**values)


def event_body(
    name: str, status: str, at: float, *, reason: str | None = None, event_id: str | None = None
) -> str:
    """Return the SQS body EventBridge delivers for a "SageMaker Training Job State Change" event."""
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}"
    detail: dict[str, Any] = {
        "TrainingJobName": name,
        "TrainingJobArn": arn,
        "TrainingJobStatus": status,
        "SecondaryStatus": status,
        "LastModifiedTime": int(at * 1000),
    }
    if reason:
        detail["FailureReason"] = reason
    return json.dumps(
        {
            "version": "0",
            "id": event_id or str(uuid.uuid4()),
            "detail-type": "SageMaker Training Job State Change",
            "source": "aws.sagemaker",
            "account": ACCOUNT,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at)),
            "region": REGION,
            "resources": [arn],
            "detail": detail,
        }
    )


def queue_depth(queue_url: str) -> int:
    """Return the messages on the queue, visible or in flight."""
    import boto3

    attributes = boto3.client("sqs").get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


async def until(condition: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    """Wait until ``condition()`` is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class StandInTaskInstance:
    """The part of Airflow's runtime task instance an operator touches, for direct ``execute`` calls.

    End-to-end behaviour is tested through ``dag.test()``; this keeps the many small state
    combinations fast.
    """

    dag_id: str = "retrain_fraud"
    task_id: str = "train"
    run_id: str = "scheduled__2026-11-28T15:00:00+00:00"
    map_index: int = -1
    try_number: int = 1
    start_date: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    xcom: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        return self.xcom.get(key)


def make_context(ti: StandInTaskInstance | None = None) -> dict[str, Any]:
    ti = ti or StandInTaskInstance()
    return {
        "ti": ti,
        "task_instance": ti,
        "run_id": ti.run_id,
        "data_interval_start": T0 - dt.timedelta(minutes=15),
        "data_interval_end": T0,
    }


#: Modules whose import is what makes DAG parsing slow: AWS clients, Kubernetes clients, cncf operators.
HEAVY_MODULES = (
    "boto3",
    "aiobotocore",
    "kubernetes",
    "kubernetes_asyncio",
    "botocore.session",
    "botocore.client",
    "botocore.loaders",
    "airflow.providers.cncf.kubernetes.operators",
    "airflow.providers.cncf.kubernetes.hooks",
)


def heavy_modules_after(code: str) -> list[str]:
    """Run ``code`` in a fresh interpreter; return the heavy modules it imported."""
    import subprocess
    import sys

    probe = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({HEAVY_MODULES!r}))))\n"
    )
    output = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    return json.loads(output.stdout.strip().splitlines()[-1])
