from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import boto3
import pytest
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import ClientError

from lyftlearn_provider.testing.aws import EmulatorControl


async def test_aiobotocore_talks_to_the_emulator_over_http(aws, job_request):
    config = AioConfig(retries={"total_max_attempts": 1})
    async with get_session().create_client("sagemaker", config=config) as client:
        created = await client.create_training_job(**job_request("async-train"))
        aws.control.advance("async-train", "Training")
        described = await client.describe_training_job(TrainingJobName="async-train")
        await client.stop_training_job(TrainingJobName="async-train")
        aws.control.inject("throttle", 1, action="DescribeTrainingJob")
        with pytest.raises(ClientError) as excinfo:
            await client.describe_training_job(TrainingJobName="async-train")

    assert created["TrainingJobArn"].endswith("training-job/async-train")
    assert described["SecondaryStatus"] == "Training"
    assert aws.control.job("async-train")["TrainingJobStatus"] in ("Stopping", "Stopped")
    assert excinfo.value.response["Error"]["Code"] == "ThrottlingException"


def test_calls_are_recorded_for_every_protocol(aws, sagemaker, create_job):
    create_job("recorded")
    sagemaker.describe_training_job(TrainingJobName="recorded")
    boto3.client("sts").get_caller_identity()
    boto3.client("s3").create_bucket(Bucket="recorded-bucket")
    boto3.client("sqs").create_queue(QueueName="recorded-queue")

    calls = aws.control.calls()

    assert [(c["service"], c["action"], c["status"]) for c in calls] == [
        ("sagemaker", "CreateTrainingJob", 200),
        ("sagemaker", "DescribeTrainingJob", 200),
        ("sts", "GetCallerIdentity", 200),
        ("s3", "PUT /recorded-bucket", 200),
        ("sqs", "CreateQueue", 200),
    ]
    assert [c["t"] for c in calls] == sorted(c["t"] for c in calls)
    assert calls[-1]["t"] <= time.monotonic()
    assert [c["action"] for c in aws.control.calls(job_name="recorded")] == [
        "CreateTrainingJob",
        "DescribeTrainingJob",
    ]
    aws.control.reset_calls()
    assert aws.control.calls() == []


def test_reset_forgets_jobs_events_faults_and_moto_state(aws, create_job):
    create_job("before-reset")
    boto3.client("s3").create_bucket(Bucket="before-reset")
    aws.control.inject("throttle", 3)
    aws.control.settings(publish_events=False, stop_delay=3)

    aws.control.reset()

    assert aws.control.jobs() == [] and aws.control.events() == [] and aws.control.faults() == []
    assert aws.control.calls() == []
    assert boto3.client("s3").list_buckets()["Buckets"] == []
    assert aws.control.settings() == {"publish_events": True, "stop_delay": 0.2}


def test_env_points_airflow_hooks_at_the_emulator(aws, create_job):
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook

    create_job("airflow-visible")
    connection = json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])

    described = SageMakerHook(aws_conn_id="aws_default").describe_training_job("airflow-visible")

    assert connection == {
        "conn_type": "aws",
        "extra": {"region_name": "us-east-1", "endpoint_url": aws.endpoint_url},
    }
    assert "login" not in connection and "password" not in connection
    assert os.environ["AWS_ENDPOINT_URL"] == aws.endpoint_url
    assert described["TrainingJobStatus"] == "InProgress"


def test_standalone_process_serves_until_sigterm(tmp_path, job_request):
    url_file = tmp_path / "aws-url"
    process = subprocess.Popen(
        [sys.executable, "-m", "lyftlearn_provider.testing.aws", "--port", "0", "--url-file", str(url_file)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not url_file.exists():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        url = url_file.read_text().strip()
        assert process.stdout is not None and process.stdout.readline().strip() == url
        control = EmulatorControl(url)
        sagemaker = boto3.client(
            "sagemaker",
            endpoint_url=url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

        sagemaker.create_training_job(**job_request("in-another-process"))
        control.complete("in-another-process")

        assert control.health()["status"] == "ok"
        assert (
            sagemaker.describe_training_job(TrainingJobName="in-another-process")["TrainingJobStatus"]
            == "Completed"
        )
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
