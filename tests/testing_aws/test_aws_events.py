from __future__ import annotations

import json

import boto3

from lyftlearn_provider.testing.aws import EmulatorControl


def subscribe(prefix: str) -> tuple[object, str]:
    """Create the rule and queue a deployment would: SageMaker state changes for ``prefix*`` into SQS."""
    events = boto3.client("events")
    sqs = boto3.client("sqs")
    queue_url = sqs.create_queue(QueueName="training-events")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    pattern = {
        "source": ["aws.sagemaker"],
        "detail-type": ["SageMaker Training Job State Change"],
        "detail": {"TrainingJobName": [{"prefix": prefix}]},
    }
    rule_arn = events.put_rule(Name="training-state", EventPattern=json.dumps(pattern))["RuleArn"]
    policy = {
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "events.amazonaws.com"},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ]
    }
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps(policy)})
    events.put_targets(Rule="training-state", Targets=[{"Id": "queue", "Arn": queue_arn}])
    return sqs, queue_url


def drain(sqs, queue_url: str) -> list[dict]:
    received = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return received
        received.extend(json.loads(message["Body"]) for message in messages)
        for message in messages:
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_eventbridge_rule_delivers_state_changes_of_matching_jobs_to_sqs(aws, create_job):
    sqs, queue_url = subscribe("lyftlearn-")
    create_job("lyftlearn-train-1", Tags=[{"Key": "dag_id", "Value": "train"}])
    create_job("someone-else-1")
    aws.control.advance("lyftlearn-train-1", "Training")
    aws.control.advance("someone-else-1", "Training")
    aws.control.complete("lyftlearn-train-1", metrics={"validation:auc": 0.9})

    delivered = drain(sqs, queue_url)

    assert {event["detail"]["TrainingJobName"] for event in delivered} == {"lyftlearn-train-1"}
    statuses = [(e["detail"]["TrainingJobStatus"], e["detail"]["SecondaryStatus"]) for e in delivered]
    assert sorted(statuses) == [
        ("Completed", "Completed"),
        ("InProgress", "Starting"),
        ("InProgress", "Training"),
    ]
    completed = next(e for e in delivered if e["detail"]["TrainingJobStatus"] == "Completed")
    assert completed["source"] == "aws.sagemaker"
    assert completed["detail-type"] == "SageMaker Training Job State Change"
    assert completed["region"] == "us-east-1"
    assert completed["resources"] == [
        "arn:aws:sagemaker:us-east-1:123456789012:training-job/lyftlearn-train-1"
    ]
    detail = completed["detail"]
    assert detail["Tags"] == {"dag_id": "train"}
    assert detail["ModelArtifacts"]["S3ModelArtifacts"].endswith("/lyftlearn-train-1/output/model.tar.gz")
    # SageMaker's events carry epoch milliseconds where DescribeTrainingJob carries seconds.
    assert isinstance(detail["LastModifiedTime"], int) and detail["LastModifiedTime"] > 10**12
    assert detail["FinalMetricDataList"][0]["MetricName"] == "validation:auc"


def test_emitted_events_are_readable_through_the_control_api_and_can_be_switched_off(aws, create_job):
    create_job("events-on")
    aws.control.fail("events-on", "AlgorithmError: boom")
    aws.control.settings(publish_events=False)
    create_job("events-off")

    emitted = aws.control.events()

    assert [(e["detail"]["TrainingJobName"], e["detail"]["TrainingJobStatus"]) for e in emitted] == [
        ("events-on", "InProgress"),
        ("events-on", "Failed"),
    ]
    assert emitted[1]["detail"]["FailureReason"] == "AlgorithmError: boom"
    assert emitted[0]["id"] != emitted[1]["id"]
    assert emitted[1]["time"].endswith("Z")


def test_a_broken_event_bus_never_fails_the_api_call(aws, job_request, caplog):
    # moto has no EventBridge backend for an unknown region, so delivering the event fails.
    sagemaker = boto3.client("sagemaker", region_name="moon-east-1")

    sagemaker.create_training_job(**job_request("moon-job"))

    assert (
        EmulatorControl(aws.endpoint_url, region="moon-east-1").job("moon-job")["TrainingJobStatus"]
        == "InProgress"
    )
    assert [e["region"] for e in aws.control.events()] == ["moon-east-1"]
    assert "Could not publish SageMaker Training Job State Change" in caplog.text
