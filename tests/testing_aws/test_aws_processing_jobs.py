"""Processing jobs in the AWS emulator, through botocore over HTTP: the training jobs' realism, for batch."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

ROLE = "arn:aws:iam::123456789012:role/SageMakerExecution"
ARN_PREFIX = "arn:aws:sagemaker:us-east-1:123456789012:processing-job/"


def create(sagemaker: Any, name: str, **overrides: Any) -> dict[str, Any]:
    request: dict[str, Any] = {
        "ProcessingJobName": name,
        "RoleArn": ROLE,
        "AppSpecification": {
            "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/score:1",
            "ContainerEntrypoint": ["python", "-m", "score"],
        },
        "ProcessingResources": {
            "ClusterConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 2, "VolumeSizeInGB": 30}
        },
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "predictions",
                    "S3Output": {
                        "S3Uri": "s3://out/predictions",
                        "LocalPath": "/opt/ml/processing/output/predictions",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "Environment": {"A": "1"},
        "Tags": [{"Key": "team", "Value": "ml"}],
    }
    request.update(overrides)
    sagemaker.create_processing_job(**request)
    return request


def test_a_processing_job_runs_through_the_states_training_jobs_do(aws, sagemaker):
    request = create(sagemaker, "score-1")
    control = aws.control.processing()
    described = sagemaker.describe_processing_job(ProcessingJobName="score-1")
    assert described["ProcessingJobArn"] == ARN_PREFIX + "score-1"
    assert described["ProcessingJobStatus"] == "InProgress"
    assert described["AppSpecification"] == request["AppSpecification"]
    assert described["ProcessingOutputConfig"] == request["ProcessingOutputConfig"]
    assert "ProcessingStartTime" not in described
    control.advance("score-1", "Downloading")
    control.advance("score-1", "Training")
    described = sagemaker.describe_processing_job(ProcessingJobName="score-1")
    assert "ProcessingStartTime" in described
    control.complete("score-1")
    described = sagemaker.describe_processing_job(ProcessingJobName="score-1")
    assert described["ProcessingJobStatus"] == "Completed"
    assert described["ProcessingEndTime"] >= described["ProcessingStartTime"]
    assert "SecondaryStatus" not in described and "ModelArtifacts" not in described


def test_a_taken_name_is_resource_in_use_and_training_names_are_another_namespace(aws, sagemaker):
    create(sagemaker, "score-dup")
    with pytest.raises(ClientError) as raised:
        create(sagemaker, "score-dup")
    assert raised.value.response["Error"]["Code"] == "ResourceInUse"
    with pytest.raises(ClientError) as raised:
        sagemaker.describe_training_job(TrainingJobName="score-dup")
    assert raised.value.response["Error"]["Code"] == "ValidationException"


def test_stop_stops_a_running_job_and_refuses_an_ended_one(aws, sagemaker):
    create(sagemaker, "score-stop")
    sagemaker.stop_processing_job(ProcessingJobName="score-stop")
    assert (
        sagemaker.describe_processing_job(ProcessingJobName="score-stop")["ProcessingJobStatus"] == "Stopping"
    )
    aws.control.processing().wait_for_status("score-stop", "Stopped")
    with pytest.raises(ClientError) as raised:
        sagemaker.stop_processing_job(ProcessingJobName="score-stop")
    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert "processing job is in status Stopped" in raised.value.response["Error"]["Message"]


def test_failure_reason_and_exit_message(aws, sagemaker):
    create(sagemaker, "score-fail")
    aws.control.processing().fail("score-fail", "AlgorithmError: exit 2")
    described = sagemaker.describe_processing_job(ProcessingJobName="score-fail")
    assert (described["ProcessingJobStatus"], described["FailureReason"]) == (
        "Failed",
        "AlgorithmError: exit 2",
    )
    assert described["ExitMessage"] == "AlgorithmError: exit 2"


def test_listing_filters_sorts_and_pages(aws, sagemaker):
    for name in ("score-b", "score-a", "score-c", "other-x"):
        create(sagemaker, name)
        time.sleep(0.01)
    cut = time.time() + 0.01
    time.sleep(0.03)
    aws.control.processing().complete("score-a")
    names = [
        s["ProcessingJobName"]
        for s in sagemaker.list_processing_jobs(NameContains="SCORE-")["ProcessingJobSummaries"]
    ]
    assert sorted(names) == ["score-a", "score-b", "score-c"]
    completed = sagemaker.list_processing_jobs(StatusEquals="Completed")["ProcessingJobSummaries"]
    assert [s["ProcessingJobName"] for s in completed] == ["score-a"]
    assert completed[0]["ProcessingJobStatus"] == "Completed" and "ProcessingEndTime" in completed[0]
    by_name = sagemaker.list_processing_jobs(SortBy="Name", SortOrder="Descending", MaxResults=2)
    assert [s["ProcessingJobName"] for s in by_name["ProcessingJobSummaries"]] == ["score-c", "score-b"]
    rest = sagemaker.list_processing_jobs(
        SortBy="Name", SortOrder="Descending", MaxResults=2, NextToken=by_name["NextToken"]
    )
    assert [s["ProcessingJobName"] for s in rest["ProcessingJobSummaries"]] == ["score-a", "other-x"]
    changed = sagemaker.list_processing_jobs(LastModifiedTimeAfter=cut)
    assert {s["ProcessingJobName"] for s in changed["ProcessingJobSummaries"]} == {"score-a"}
    assert sagemaker.list_training_jobs()["TrainingJobSummaries"] == []


def test_state_changes_are_processing_job_events_with_tags(aws, sagemaker):
    create(sagemaker, "score-events")
    aws.control.processing().complete("score-events")
    events = [e for e in aws.control.events() if e["resources"] == [ARN_PREFIX + "score-events"]]
    assert {e["detail-type"] for e in events} == {"SageMaker Processing Job State Change"}
    assert [e["detail"]["ProcessingJobStatus"] for e in events][-1] == "Completed"
    assert events[-1]["detail"]["Tags"] == {"team": "ml"}
    json.dumps(events)  # JSON as EventBridge delivers it


def test_tags_of_a_processing_job_are_served(aws, sagemaker):
    create(sagemaker, "score-tags")
    arn = ARN_PREFIX + "score-tags"
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "lyftlearn:run-id", "Value": "r1"}])
    assert sagemaker.list_tags(ResourceArn=arn)["Tags"] == [
        {"Key": "team", "Value": "ml"},
        {"Key": "lyftlearn:run-id", "Value": "r1"},
    ]


def test_the_autopilot_drives_processing_jobs_too(aws, sagemaker):
    aws.control.autopilot(phases={"Starting": 0.01, "Training": 0.01}, outcome="Completed")
    create(sagemaker, "score-auto")
    described = aws.control.processing().wait_for_status("score-auto", "Completed", timeout=10)
    assert described["ProcessingEndTime"] >= described["ProcessingStartTime"]
