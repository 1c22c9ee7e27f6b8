"""The emulator's moto speed-ups change no answer: retention still expires messages, JSONPath still finds."""

from __future__ import annotations

import time

import boto3
from moto import mock_aws

from lyftlearn_provider.testing.aws import speedups


def test_retention_rule_reads_the_queue_attribute_and_still_expires_messages():
    speedups.apply()
    speedups.apply()  # idempotent
    from moto.sqs.models import Message, SQSBackend, sqs_backends

    assert SQSBackend.is_message_valid_based_on_retention_period.__module__ == speedups.__name__
    with mock_aws():
        boto3.client("sqs", region_name="us-east-1").create_queue(
            QueueName="retained", Attributes={"MessageRetentionPeriod": "60"}
        )
        backend = sqs_backends["123456789012"]["us-east-1"]
        fresh, stale = Message("m1", "fresh", {}), Message("m2", "stale", {})
        fresh.sent_timestamp = int(time.time() * 1000)
        stale.sent_timestamp = int((time.time() - 61) * 1000)
        assert backend.is_message_valid_based_on_retention_period("retained", fresh) is True
        assert backend.is_message_valid_based_on_retention_period("retained", stale) is False


def test_cached_jsonpath_expressions_find_the_same_values():
    speedups.apply()
    import jsonpath_ng.ext

    event = {"detail": {"TrainingJobName": "ll-a"}, "id": "e1"}
    first = jsonpath_ng.ext.parse("$.detail.TrainingJobName")
    assert jsonpath_ng.ext.parse("$.detail.TrainingJobName") is first
    assert [match.value for match in first.find(event)] == ["ll-a"]
    assert [match.value for match in jsonpath_ng.ext.parse("$.id").find(event)] == ["e1"]
