from __future__ import annotations

import itertools
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from lyftlearn_provider.testing.aws import ControlError

ARN_PREFIX = "arn:aws:sagemaker:us-east-1:123456789012:training-job/"


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    return excinfo.value.response["Error"]["Code"], excinfo.value.response["Error"]["Message"]


def test_new_job_is_starting_and_keeps_everything_it_was_given(aws, sagemaker, create_job):
    request = create_job(
        "train-1",
        Environment={"MODEL": "xgboost", "RUN_ID": "manual__2024"},
        HyperParameters={"eta": "0.1"},
        Tags=[{"Key": "team", "Value": "ml"}],
    )

    described = sagemaker.describe_training_job(TrainingJobName="train-1")

    assert described["TrainingJobArn"] == ARN_PREFIX + "train-1"
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("InProgress", "Starting")
    assert described["Environment"] == {"MODEL": "xgboost", "RUN_ID": "manual__2024"}
    assert described["HyperParameters"] == {"eta": "0.1"}
    for field in (
        "RoleArn",
        "AlgorithmSpecification",
        "InputDataConfig",
        "OutputDataConfig",
        "ResourceConfig",
    ):
        assert described[field] == request[field]
    assert described["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert described["ModelArtifacts"] == {"S3ModelArtifacts": ""}
    assert isinstance(described["CreationTime"], datetime)
    assert abs(described["CreationTime"].timestamp() - time.time()) < 5
    [transition] = described["SecondaryStatusTransitions"]
    assert transition["Status"] == "Starting" and "EndTime" not in transition
    for absent in (
        "TrainingStartTime",
        "TrainingEndTime",
        "BillableTimeInSeconds",
        "FailureReason",
        "WarmPoolStatus",
    ):
        assert absent not in described


def test_duplicate_name_is_resource_in_use_and_keeps_the_first_job(sagemaker, create_job, job_request):
    create_job("train-dup", Environment={"ATTEMPT": "1"})

    with pytest.raises(ClientError) as excinfo:
        sagemaker.create_training_job(**job_request("train-dup", Environment={"ATTEMPT": "2"}))

    code, message = error_of(excinfo)
    assert code == "ResourceInUse"
    assert (
        "must be unique within an AWS account and region" in message and ARN_PREFIX + "train-dup" in message
    )
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert sagemaker.describe_training_job(TrainingJobName="train-dup")["Environment"] == {"ATTEMPT": "1"}


def test_unknown_job_is_a_validation_exception_as_aws_sends_it(sagemaker):
    for call in (sagemaker.describe_training_job, sagemaker.stop_training_job):
        with pytest.raises(ClientError) as excinfo:
            call(TrainingJobName="never-created")
        # The amazon provider's "does the job exist" check relies on exactly this code.
        assert error_of(excinfo) == ("ValidationException", "Requested resource not found.")


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        (
            {"TrainingJobName": "x" * 64},
            "at 'trainingJobName' failed to satisfy constraint: Member must have length",
        ),
        ({"TrainingJobName": "bad_name"}, "Member must satisfy regular expression pattern"),
        ({"Environment": {f"K{i}": "v" for i in range(101)}}, "at 'environment' failed"),
        ({"Environment": {"K": "v" * 513}}, "Map value must satisfy constraint"),
        ({"Environment": {"1BAD": "v"}}, "Map keys must satisfy constraint"),
        ({"HyperParameters": {f"h{i}": "1" for i in range(101)}}, "at 'hyperParameters' failed"),
        ({"HyperParameters": {"h": "1" * 2501}}, "less than or equal to 2500"),
        (
            {
                "ResourceConfig": {
                    "InstanceType": "ml.m5.xlarge",
                    "InstanceCount": 1,
                    "KeepAlivePeriodInSeconds": 21601,
                }
            },
            "at 'resourceConfig.keepAlivePeriodInSeconds'",
        ),
        ({"ResourceConfig": {"InstanceType": "ml.nope", "InstanceCount": 1}}, "enum value set"),
        ({"Tags": [{"Key": f"k{i}", "Value": "v"} for i in range(51)]}, "at 'tags'"),
    ],
)
def test_what_aws_rejects_and_botocore_lets_through_is_a_validation_exception(
    aws, sagemaker, job_request, overrides, fragment
):
    with pytest.raises(ClientError) as excinfo:
        sagemaker.create_training_job(**job_request("train-invalid", **overrides))

    code, message = error_of(excinfo)
    assert code == "ValidationException"
    assert re.match(r"\d+ validation errors? detected: ", message) and fragment in message
    assert aws.control.jobs() == []


def test_advance_and_complete_with_deterministic_timestamps(aws, sagemaker, create_job):
    create_job("train-ok")
    t0 = time.time()

    aws.control.advance("train-ok", "Starting", message="Launching requested ML instances", at=t0 + 1)
    aws.control.advance("train-ok", "Downloading", at=t0 + 10)
    aws.control.advance("train-ok", "Training", at=t0 + 20)
    aws.control.advance("train-ok", "Uploading", at=t0 + 80)
    aws.control.complete("train-ok", metrics={"validation:auc": 0.91, "train:loss": 0.2}, at=t0 + 90)

    described = sagemaker.describe_training_job(TrainingJobName="train-ok")
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == ("Completed", "Completed")
    transitions = described["SecondaryStatusTransitions"]
    assert [t["Status"] for t in transitions] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert transitions[0]["StatusMessage"] == "Launching requested ML instances"
    for previous, following in itertools.pairwise(transitions):
        assert previous["EndTime"] == following["StartTime"]
    assert transitions[-1]["EndTime"] == transitions[-1]["StartTime"]
    # Billing runs from the moment the instances are up (leaving Starting) to the end, per instance.
    assert described["TrainingStartTime"].timestamp() == pytest.approx(t0 + 10)
    assert described["TrainingEndTime"].timestamp() == pytest.approx(t0 + 90)
    assert described["TrainingTimeInSeconds"] == 80
    assert described["BillableTimeInSeconds"] == 80 * 2
    assert described["ModelArtifacts"]["S3ModelArtifacts"] == "s3://models/out/train-ok/output/model.tar.gz"
    metrics = {m["MetricName"]: m["Value"] for m in described["FinalMetricDataList"]}
    assert metrics == {"validation:auc": pytest.approx(0.91), "train:loss": pytest.approx(0.2)}
    assert described["LastModifiedTime"] == described["TrainingEndTime"]


def test_complete_accepts_an_explicit_model_artifact(aws, create_job):
    create_job("train-artifact")

    described = aws.control.complete("train-artifact", model_artifact="s3://elsewhere/model.tar.gz")

    assert described["ModelArtifacts"]["S3ModelArtifacts"] == "s3://elsewhere/model.tar.gz"
    assert described["TrainingTimeInSeconds"] >= 1


def test_fail_reports_the_reason_and_omits_billing_when_instances_never_started(aws, sagemaker, create_job):
    create_job("train-early-fail")
    create_job("train-late-fail")
    aws.control.advance("train-late-fail", "Training")

    aws.control.fail("train-early-fail", "CapacityError: Unable to provision requested ML compute capacity.")
    aws.control.fail("train-late-fail", "AlgorithmError: ExecuteUserScriptError")

    early = sagemaker.describe_training_job(TrainingJobName="train-early-fail")
    late = sagemaker.describe_training_job(TrainingJobName="train-late-fail")
    assert (early["TrainingJobStatus"], early["SecondaryStatus"]) == ("Failed", "Failed")
    assert early["FailureReason"].startswith("CapacityError")
    assert "TrainingStartTime" not in early and "BillableTimeInSeconds" not in early
    assert late["FailureReason"] == "AlgorithmError: ExecuteUserScriptError"
    assert late["BillableTimeInSeconds"] >= 2 and late["ModelArtifacts"]["S3ModelArtifacts"] == ""


def test_control_refuses_impossible_changes(aws, create_job):
    create_job("train-done")
    aws.control.complete("train-done")

    with pytest.raises(ControlError) as finished:
        aws.control.advance("train-done", "Training")
    with pytest.raises(ControlError) as unknown:
        aws.control.complete("no-such-job")
    create_job("train-running")
    with pytest.raises(ControlError) as terminal_status:
        aws.control.advance("train-running", "Completed")

    assert finished.value.status == 409 and "Completed" in finished.value.message
    assert unknown.value.status == 404
    assert terminal_status.value.status == 400
    assert aws.control.job("train-running")["SecondaryStatus"] == "Starting"


def test_stop_training_job_goes_through_stopping_to_stopped(aws, sagemaker, create_job):
    create_job("train-stop")
    aws.control.advance("train-stop", "Training")

    sagemaker.stop_training_job(TrainingJobName="train-stop")
    stopping = sagemaker.describe_training_job(TrainingJobName="train-stop")
    stopped = aws.control.wait_for_status("train-stop", "Stopped", timeout=5)

    assert (stopping["TrainingJobStatus"], stopping["SecondaryStatus"]) == ("Stopping", "Stopping")
    assert stopped["SecondaryStatus"] == "Stopped"
    statuses = [t["Status"] for t in stopped["SecondaryStatusTransitions"]]
    assert statuses == ["Starting", "Training", "Stopping", "Stopped"]
    assert stopped["TrainingEndTime"] >= stopped["TrainingStartTime"]
    # A job stopped during training uploads what it has, as SageMaker does.
    assert stopped["ModelArtifacts"]["S3ModelArtifacts"].endswith("/train-stop/output/model.tar.gz")
    with pytest.raises(ClientError) as excinfo:
        sagemaker.stop_training_job(TrainingJobName="train-stop")
    assert error_of(excinfo) == (
        "ValidationException",
        "The request was rejected because the training job is in status Stopped.",
    )


def test_someone_else_stopping_the_job_looks_like_stop_training_job(aws, create_job):
    create_job("train-outside-stop")
    aws.control.settings(stop_delay=0.05)

    stopping = aws.control.stop("train-outside-stop")

    assert stopping["TrainingJobStatus"] == "Stopping"
    assert (
        aws.control.wait_for_status("train-outside-stop", "Stopped", timeout=5)["SecondaryStatus"]
        == "Stopped"
    )


def test_list_training_jobs_filters(aws, sagemaker, create_job):
    create_job("nightly-a")
    create_job("nightly-b")
    create_job("adhoc-c")
    now = time.time()
    # botocore sends whole seconds, so the time filters are checked against a far-off modification.
    aws.control.complete("nightly-a", at=now + 120)

    def names(**filters):
        return [s["TrainingJobName"] for s in sagemaker.list_training_jobs(**filters)["TrainingJobSummaries"]]

    def utc(seconds):
        return datetime.fromtimestamp(seconds, tz=timezone.utc)

    assert names() == ["nightly-a", "nightly-b", "adhoc-c"]  # CreationTime, Ascending by default
    assert names(NameContains="nightly") == ["nightly-a", "nightly-b"]
    assert names(StatusEquals="Completed") == ["nightly-a"]
    assert names(StatusEquals="InProgress") == ["nightly-b", "adhoc-c"]
    assert names(CreationTimeAfter=utc(now - 60)) == ["nightly-a", "nightly-b", "adhoc-c"]
    assert names(CreationTimeAfter=utc(now + 60)) == []
    assert names(CreationTimeBefore=utc(now + 60)) == ["nightly-a", "nightly-b", "adhoc-c"]
    assert names(CreationTimeBefore=utc(now - 60)) == []
    assert names(LastModifiedTimeAfter=utc(now + 60)) == ["nightly-a"]
    assert names(LastModifiedTimeBefore=utc(now + 60)) == ["nightly-b", "adhoc-c"]
    assert names(SortBy="Name") == ["adhoc-c", "nightly-a", "nightly-b"]
    assert names(SortBy="Name", SortOrder="Descending") == ["nightly-b", "nightly-a", "adhoc-c"]
    assert names(SortBy="Status")[0] == "nightly-a"  # Completed sorts before InProgress
    summary = sagemaker.list_training_jobs(StatusEquals="Completed")["TrainingJobSummaries"][0]
    assert summary["TrainingJobArn"] == ARN_PREFIX + "nightly-a"
    assert summary["TrainingEndTime"].timestamp() == pytest.approx(now + 120)
    assert {"CreationTime", "LastModifiedTime", "SecondaryStatus"} <= summary.keys()
    with pytest.raises(ClientError) as excinfo:
        sagemaker.list_training_jobs(MaxResults=101)
    assert error_of(excinfo)[0] == "ValidationException"


def test_list_training_jobs_paginates_with_next_token(aws, sagemaker, create_job):
    for index in range(23):
        create_job(f"sweep-{index:02d}")

    first = sagemaker.list_training_jobs(SortBy="Name")
    pages = list(
        sagemaker.get_paginator("list_training_jobs").paginate(
            SortBy="Name", PaginationConfig={"PageSize": 10}
        )
    )

    assert len(first["TrainingJobSummaries"]) == 10 and "NextToken" in first  # MaxResults defaults to 10
    assert [len(page["TrainingJobSummaries"]) for page in pages] == [10, 10, 3]
    assert "NextToken" not in pages[-1]
    listed = [s["TrainingJobName"] for page in pages for s in page["TrainingJobSummaries"]]
    assert listed == [f"sweep-{index:02d}" for index in range(23)]


def test_concurrent_creates_of_one_name_make_exactly_one_job(aws, job_request):
    def create(_):
        client = boto3.session.Session().client("sagemaker", config=Config(retries={"total_max_attempts": 1}))
        try:
            client.create_training_job(**job_request("raced"))
        except ClientError as error:
            return error.response["Error"]["Code"]
        return "created"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = sorted(pool.map(create, range(8)))

    assert outcomes == ["ResourceInUse"] * 7 + ["created"]
    assert [job["TrainingJobName"] for job in aws.control.jobs()] == ["raced"]
