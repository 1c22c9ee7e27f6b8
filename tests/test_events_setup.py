from __future__ import annotations

import json
import subprocess
import sys

import boto3
import pytest

from lyftlearn_provider.event_route import (
    RouteNames,
    attribute_drift,
    dlq_attributes,
    queue_attributes,
    queue_policy,
    route_names,
    rule_pattern,
)
from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.hooks.events import TARGET_ID, EventRouteHook
from lyftlearn_provider.operators.events import SetupTrainingEventsOperator
from lyftlearn_provider.rendering.sagemaker import render_training_job
from tests.helpers import make_spec

QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:ll-training-events"
RULE_ARN = "arn:aws:events:us-east-1:123456789012:rule/ll-training-state-change"
DLQ_ARN = "arn:aws:sqs:us-east-1:123456789012:ll-training-events-dlq"
#: Everything ensure_route may write; a run that finds the route in place sends none of these.
WRITE_ACTIONS = ("CreateQueue", "SetQueueAttributes", "PutRule", "PutTargets", "RemoveTargets")


def writes(aws) -> list[str]:
    return [call["action"] for call in aws.control.calls() if call["action"] in WRITE_ACTIONS]


def drain(sqs, queue_url: str) -> list[dict]:
    received = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        )
        if not messages:
            return received
        received.extend(json.loads(message["Body"]) for message in messages)
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def hook() -> EventRouteHook:
    return EventRouteHook(aws_conn_id="aws_default", retry_delay=0.01)


# ---------------------------------------------------------------------------- pure documents
def test_rule_pattern_matches_terminal_state_changes_of_prefixed_jobs_only():
    # Both job kinds, training and processing (batch), each on its own name and status fields.
    assert rule_pattern("ll") == {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Processing Job State Change", "SageMaker Training Job State Change"],
        "$or": [
            {
                "detail": {
                    "ProcessingJobName": [{"prefix": "ll-"}],
                    "ProcessingJobStatus": ["Completed", "Failed", "Stopped"],
                }
            },
            {
                "detail": {
                    "TrainingJobName": [{"prefix": "ll-"}],
                    "TrainingJobStatus": ["Completed", "Failed", "Stopped"],
                }
            },
        ],
    }


def test_queue_policy_admits_only_the_rule_to_send():
    assert queue_policy(QUEUE_ARN, RULE_ARN) == {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowTrainingStateChangeRule",
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": QUEUE_ARN,
                "Condition": {"ArnEquals": {"aws:SourceArn": RULE_ARN}},
            }
        ],
    }


def test_queue_attributes_redrive_to_the_dlq_and_encrypt():
    attributes = queue_attributes(DLQ_ARN)
    assert json.loads(attributes.pop("RedrivePolicy")) == {
        "deadLetterTargetArn": DLQ_ARN,
        "maxReceiveCount": 5,
    }
    assert attributes == {
        "MessageRetentionPeriod": "86400",
        "VisibilityTimeout": "60",
        "ReceiveMessageWaitTimeSeconds": "20",
        "SqsManagedSseEnabled": "true",
    }
    assert dlq_attributes() == {"MessageRetentionPeriod": "1209600", "SqsManagedSseEnabled": "true"}


def test_names_derive_from_the_prefix_unless_given():
    assert route_names("ll") == RouteNames(
        queue="ll-training-events", dlq="ll-training-events-dlq", rule="ll-training-state-change"
    )
    assert route_names("ll", queue_name="q", dlq_name="q_dlq", rule_name="r.1") == RouteNames(
        "q", "q_dlq", "r.1"
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"prefix": "LL_bad"}, "prefix"),
        ({"prefix": "ll", "queue_name": "events.fifo"}, "queue_name"),
        ({"prefix": "ll", "queue_name": "q" * 81}, "queue_name"),
        ({"prefix": "ll", "dlq_name": "ll-training-events"}, "dlq_name"),
        ({"prefix": "ll", "rule_name": "has space"}, "rule_name"),
        ({"prefix": "ll", "rule_name": "r" * 65}, "rule_name"),
    ],
)
def test_bad_names_name_the_field_and_the_fix(kwargs, field):
    with pytest.raises(InvalidSpecError) as raised:
        route_names(**kwargs)
    assert raised.value.field == field
    assert raised.value.fix


def test_drift_compares_json_documents_parsed():
    desired = {"RedrivePolicy": json.dumps({"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 5}), "A": "1"}
    current = {"RedrivePolicy": f'{{"maxReceiveCount": "5", "deadLetterTargetArn": "{DLQ_ARN}"}}', "A": "1"}
    assert attribute_drift(current, desired) == {}
    assert attribute_drift({**current, "A": "2"}, desired) == {"A": "1"}
    assert attribute_drift({}, desired) == desired


# ---------------------------------------------------------------------------- against the emulator
def test_first_run_creates_the_route_and_second_run_changes_nothing(aws):
    summary = hook().ensure_route("ll")

    sqs, events = boto3.client("sqs"), boto3.client("events")
    assert summary["queue_arn"] == QUEUE_ARN
    assert summary["dlq_arn"] == DLQ_ARN
    assert summary["rule_arn"] == RULE_ARN
    assert summary["changed"] == [
        "dead-letter queue ll-training-events-dlq: created",
        "queue ll-training-events: created",
        "rule ll-training-state-change: created",
        "queue ll-training-events: set Policy",
        f"target {TARGET_ID} of rule ll-training-state-change: created",
    ]
    assert json.loads(json.dumps(summary)) == summary

    attributes = sqs.get_queue_attributes(QueueUrl=summary["queue_url"], AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"]) in (
        {"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": 5},
        {"deadLetterTargetArn": DLQ_ARN, "maxReceiveCount": "5"},
    )
    [statement] = json.loads(attributes["Policy"])["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Resource"] == QUEUE_ARN
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": RULE_ARN}}
    assert attributes["VisibilityTimeout"] == "60"
    assert attributes["MessageRetentionPeriod"] == "86400"
    assert attributes["SqsManagedSseEnabled"] == "true"
    dlq = sqs.get_queue_attributes(QueueUrl=summary["dlq_url"], AttributeNames=["All"])["Attributes"]
    assert dlq["MessageRetentionPeriod"] == "1209600"

    rule = events.describe_rule(Name="ll-training-state-change")
    assert json.loads(rule["EventPattern"]) == rule_pattern("ll")
    assert rule["State"] == "ENABLED"
    [target] = events.list_targets_by_rule(Rule="ll-training-state-change")["Targets"]
    assert target == {"Id": TARGET_ID, "Arn": QUEUE_ARN}

    aws.control.reset_calls()
    again = hook().ensure_route("ll")

    assert again["changed"] == []
    assert {k: v for k, v in again.items() if k != "changed"} == {
        k: v for k, v in summary.items() if k != "changed"
    }
    assert writes(aws) == []
    assert aws.control.calls(action="GetQueueAttributes"), "the second run must have compared, not skipped"


def test_drifted_policy_pattern_attributes_and_target_are_repaired(aws):
    summary = hook().ensure_route("ll")
    sqs, events = boto3.client("sqs"), boto3.client("events")
    too_open = {
        "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "sqs:*", "Resource": QUEUE_ARN}]
    }
    sqs.set_queue_attributes(
        QueueUrl=summary["queue_url"], Attributes={"Policy": json.dumps(too_open), "VisibilityTimeout": "5"}
    )
    events.put_rule(
        Name="ll-training-state-change",
        EventPattern=json.dumps({"source": ["aws.sagemaker"]}),
        State="DISABLED",
    )
    events.put_targets(
        Rule="ll-training-state-change",
        Targets=[{"Id": TARGET_ID, "Arn": DLQ_ARN, "InputPath": "$.detail"}],
    )
    aws.control.reset_calls()

    repaired = hook().ensure_route("ll")

    assert sorted(repaired["changed"]) == [
        "queue ll-training-events: set Policy, VisibilityTimeout",
        "rule ll-training-state-change: set EventPattern, State, Description",
        f"target {TARGET_ID} of rule ll-training-state-change: replaced",
    ]
    assert sorted(writes(aws)) == ["PutRule", "PutTargets", "RemoveTargets", "SetQueueAttributes"]
    attributes = sqs.get_queue_attributes(QueueUrl=summary["queue_url"], AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["Policy"]) == queue_policy(QUEUE_ARN, RULE_ARN)
    assert attributes["VisibilityTimeout"] == "60"
    rule = events.describe_rule(Name="ll-training-state-change")
    assert (json.loads(rule["EventPattern"]), rule["State"]) == (rule_pattern("ll"), "ENABLED")
    assert events.list_targets_by_rule(Rule="ll-training-state-change")["Targets"] == [
        {"Id": TARGET_ID, "Arn": QUEUE_ARN}
    ]
    assert hook().ensure_route("ll")["changed"] == []


def test_route_delivers_terminal_state_changes_of_prefixed_jobs_only(aws):
    summary = hook().ensure_route("ll")
    sagemaker, sqs = boto3.client("sagemaker"), boto3.client("sqs")
    for name in ("ll-ok-1", "ll-bad-1", "ll-stop-1", "other-ok-1", "llama-ok-1"):
        request = render_training_job(make_spec(), job_name=name, max_runtime_seconds=3600).request
        sagemaker.create_training_job(**request)
        aws.control.advance(name, "Training")
        if "stop" in name:
            aws.control.stop(name)
            aws.control.wait_for_status(name, "Stopped")
        elif "bad" in name:
            aws.control.fail(name, "AlgorithmError: boom")
        else:
            aws.control.complete(name)

    delivered = drain(sqs, summary["queue_url"])
    emitted = aws.control.events()

    # Every job emitted its progress (InProgress, Stopping) too; the rule forwards only our jobs' ends.
    assert {e["detail"]["TrainingJobStatus"] for e in emitted} >= {"InProgress", "Stopping", "Completed"}
    assert {(e["detail"]["TrainingJobName"], e["detail"]["TrainingJobStatus"]) for e in delivered} == {
        ("ll-ok-1", "Completed"),
        ("ll-bad-1", "Failed"),
        ("ll-stop-1", "Stopped"),
    }
    assert all(event["detail-type"] == "SageMaker Training Job State Change" for event in delivered)
    assert all(event["source"] == "aws.sagemaker" for event in delivered)


def test_bad_input_is_rejected_before_anything_is_created(aws):
    with pytest.raises(InvalidSpecError, match="rule_name"):
        hook().ensure_route("ll", rule_name="no spaces allowed")
    with pytest.raises(InvalidSpecError, match="max_receive_count"):
        hook().ensure_route("ll", max_receive_count=0)
    with pytest.raises(InvalidSpecError, match="prefix"):
        SetupTrainingEventsOperator(task_id="setup", prefix="Not Valid")

    assert aws.control.calls() == []
    assert boto3.client("sqs").list_queues().get("QueueUrls", []) == []


def test_operator_returns_the_summary_and_is_idempotent(aws):
    operator = SetupTrainingEventsOperator(task_id="setup_events", prefix="fraud-ml")

    first = operator.execute({})
    second = SetupTrainingEventsOperator(task_id="setup_events", prefix="fraud-ml").execute({})

    assert first["queue_url"].endswith("/fraud-ml-training-events")
    assert first["rule_arn"].endswith(":rule/fraud-ml-training-state-change")
    assert len(first["changed"]) == 5
    assert second["changed"] == []
    assert second["queue_arn"] == first["queue_arn"]


def test_command_prints_the_summary_as_json(aws):
    done = subprocess.run(
        [sys.executable, "-m", "lyftlearn_provider.events_setup", "--prefix", "cli", "--region", "us-east-1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["rule_arn"].endswith(":rule/cli-training-state-change")
    assert summary["queue_arn"].endswith(":cli-training-events")
    assert len(summary["changed"]) == 5
    rejected = subprocess.run(
        [sys.executable, "-m", "lyftlearn_provider.events_setup", "--prefix", "Bad Prefix"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert rejected.returncode == 2
    assert "prefix" in rejected.stderr
