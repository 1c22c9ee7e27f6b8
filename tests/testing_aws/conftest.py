from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config

from lyftlearn_provider.testing.aws.server import AwsEmulator

# botocore's "max_attempts" counts retries, not attempts: only total_max_attempts=1 shows the raw error.
NO_RETRIES = Config(retries={"total_max_attempts": 1})
ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"


def _job_request(name: str, **overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TrainingJobName": name,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {
            "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/train:1",
            "TrainingInputMode": "File",
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/train/"}},
            }
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://models/out/"},
        "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
    }
    request.update(overrides)
    return request


@pytest.fixture
def job_request() -> Callable[..., dict[str, Any]]:
    return _job_request


@pytest.fixture
def sagemaker(aws: AwsEmulator) -> Any:
    # No endpoint_url: the client finds the emulator through the variables the fixture set.
    return boto3.client("sagemaker", config=NO_RETRIES)


@pytest.fixture
def create_job(sagemaker: Any) -> Callable[..., dict[str, Any]]:
    def create(name: str, **overrides: Any) -> dict[str, Any]:
        request = _job_request(name, **overrides)
        sagemaker.create_training_job(**request)
        return request

    return create
