from __future__ import annotations

import boto3
import pytest

from lyftlearn_provider.testing.aws.images import push_image


@pytest.fixture(autouse=True)
def training_image(aws) -> str:
    """Push the image make_spec() names (SOCI-enabled) into the emulator's ECR; return its digest."""
    return push_image(boto3.client("ecr"), "fraud-model", "1", soci="v2")
