from __future__ import annotations

import boto3
import pytest

from lyftlearn_provider.testing.aws.images import push_image


@pytest.fixture(autouse=True)
def training_image(aws) -> str:
    """Push the images the test DAGs and the example name (SOCI-enabled) into the emulator's ECR."""
    ecr = boto3.client("ecr")
    push_image(ecr, "fraud-model", "2026.11.28", soci="v2")
    return push_image(ecr, "fraud-model", "1", soci="v2")
