from __future__ import annotations

import boto3
import pytest

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.hooks.ecr import EcrImageHook
from lyftlearn_provider.testing.aws.images import push_image

REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


@pytest.mark.parametrize("soci", ["v2", "v1", None])
def test_pushed_images_resolve_and_are_detected_as_pushed(aws, soci):
    digest = push_image(boto3.client("ecr"), "fraud-model", "prod", soci=soci)
    hook = EcrImageHook(aws_conn_id="aws_default", retry_delay=0.01)
    resolution = hook.resolve(f"{REGISTRY}/fraud-model:prod", soci="prefer")
    assert resolution.digest == digest
    assert resolution.pinned == f"{REGISTRY}/fraud-model@{digest}"
    assert resolution.soci == soci
    if soci is None:
        with pytest.raises(InvalidSpecError, match="soci convert"):
            hook.resolve(f"{REGISTRY}/fraud-model:prod", soci="require")


def test_a_new_build_moves_the_tag_to_a_new_digest(aws):
    ecr = boto3.client("ecr")
    first = push_image(ecr, "fraud-model", "prod", soci=None)
    second = push_image(ecr, "fraud-model", "prod", soci=None, build="next")
    assert first != second
