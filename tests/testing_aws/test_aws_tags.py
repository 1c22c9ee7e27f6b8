from __future__ import annotations

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

ARN_PREFIX = "arn:aws:sagemaker:us-east-1:123456789012:training-job/"


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, str, int]:
    response = excinfo.value.response
    return (
        response["Error"]["Code"],
        response["Error"]["Message"],
        response["ResponseMetadata"]["HTTPStatusCode"],
    )


def tags(count: int, prefix: str = "k") -> list[dict[str, str]]:
    return [{"Key": f"{prefix}{index:02d}", "Value": f"v{index}"} for index in range(count)]


def test_tags_start_as_created_and_follow_add_and_delete(aws, sagemaker, create_job):
    create_job("tagged", Tags=[{"Key": "team", "Value": "ml"}, {"Key": "dag_id", "Value": "train"}])
    arn = ARN_PREFIX + "tagged"

    initial = sagemaker.list_tags(ResourceArn=arn)
    added = sagemaker.add_tags(
        ResourceArn=arn, Tags=[{"Key": "team", "Value": "ranking"}, {"Key": "run_id", "Value": "r1"}]
    )
    after_add = sagemaker.list_tags(ResourceArn=arn)["Tags"]
    sagemaker.delete_tags(ResourceArn=arn, TagKeys=["dag_id", "never-there"])
    after_delete = sagemaker.list_tags(ResourceArn=arn)["Tags"]

    assert initial["Tags"] == [{"Key": "team", "Value": "ml"}, {"Key": "dag_id", "Value": "train"}]
    assert "NextToken" not in initial
    assert added["Tags"] == [{"Key": "team", "Value": "ranking"}, {"Key": "run_id", "Value": "r1"}]
    # An existing key keeps its place with the new value; new keys come last.
    assert after_add == [
        {"Key": "team", "Value": "ranking"},
        {"Key": "dag_id", "Value": "train"},
        {"Key": "run_id", "Value": "r1"},
    ]
    assert after_delete == [{"Key": "team", "Value": "ranking"}, {"Key": "run_id", "Value": "r1"}]
    assert [c["action"] for c in aws.control.calls(job_name="tagged")] == [
        "CreateTrainingJob",
        "ListTags",
        "AddTags",
        "ListTags",
        "DeleteTags",
        "ListTags",
    ]
    assert {c["status"] for c in aws.control.calls(job_name="tagged")} == {200}


def test_a_job_created_without_tags_has_none(sagemaker, create_job):
    create_job("untagged")

    assert sagemaker.list_tags(ResourceArn=ARN_PREFIX + "untagged")["Tags"] == []


def test_state_change_events_carry_the_current_tags(aws, sagemaker, create_job):
    create_job("evented", Tags=[{"Key": "team", "Value": "ml"}])
    sagemaker.add_tags(ResourceArn=ARN_PREFIX + "evented", Tags=[{"Key": "owner", "Value": "ana"}])
    sagemaker.delete_tags(ResourceArn=ARN_PREFIX + "evented", TagKeys=["team"])
    aws.control.advance("evented", "Training")

    starting, training = aws.control.events()

    assert starting["detail"]["Tags"] == {"team": "ml"}
    assert training["detail"]["Tags"] == {"owner": "ana"}


@pytest.mark.parametrize(
    "arn",
    [
        ARN_PREFIX + "never-created",
        "arn:aws:sagemaker:us-west-2:123456789012:training-job/elsewhere",  # exists, but in us-west-2
        "arn:aws:sagemaker:us-east-1:999999999999:training-job/elsewhere",  # another account
    ],
)
def test_unknown_training_job_arn_is_a_validation_exception(aws, sagemaker, job_request, arn):
    boto3.client("sagemaker", region_name="us-west-2").create_training_job(**job_request("elsewhere"))
    calls = (
        lambda: sagemaker.list_tags(ResourceArn=arn),
        lambda: sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "a", "Value": "b"}]),
        lambda: sagemaker.delete_tags(ResourceArn=arn, TagKeys=["a"]),
    )
    for call in calls:
        with pytest.raises(ClientError) as excinfo:
            call()
        assert error_of(excinfo) == ("ValidationException", "Requested resource not found.", 400)


def test_a_job_holds_at_most_50_tags(aws, sagemaker, create_job):
    create_job("full", Tags=tags(45))
    arn = ARN_PREFIX + "full"

    with pytest.raises(ClientError) as too_many:
        sagemaker.add_tags(ResourceArn=arn, Tags=tags(6, prefix="new"))
    unchanged = sagemaker.list_tags(ResourceArn=arn)["Tags"]
    sagemaker.add_tags(ResourceArn=arn, Tags=tags(5, prefix="new"))
    # At the limit, overwriting existing keys is still allowed: the count does not change.
    sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "k00", "Value": "changed"}])
    with pytest.raises(ClientError) as one_more:
        sagemaker.add_tags(ResourceArn=arn, Tags=[{"Key": "one-more", "Value": "x"}])
    with pytest.raises(ClientError) as too_many_in_one_request:
        sagemaker.add_tags(ResourceArn=arn, Tags=tags(51, prefix="big"))

    code, message, status = error_of(too_many)
    assert (code, status) == ("ValidationException", 400) and "at most 50 tags" in message
    assert unchanged == tags(45)
    assert error_of(one_more)[0] == "ValidationException"
    code, message, _ = error_of(too_many_in_one_request)
    assert code == "ValidationException" and "at 'tags'" in message
    final = sagemaker.list_tags(ResourceArn=arn)["Tags"]
    assert len(final) == 50 and final[0] == {"Key": "k00", "Value": "changed"}


def test_list_tags_pages_as_botocore_paginates(aws, sagemaker, create_job):
    create_job("paged", Tags=tags(50))
    arn = ARN_PREFIX + "paged"
    paginator = sagemaker.get_paginator("list_tags")

    whole = sagemaker.list_tags(ResourceArn=arn, MaxResults=50)
    pages = list(paginator.paginate(ResourceArn=arn, PaginationConfig={"PageSize": 50}))
    first = paginator.paginate(ResourceArn=arn, PaginationConfig={"MaxItems": 20}).build_full_result()
    rest = paginator.paginate(
        ResourceArn=arn, PaginationConfig={"StartingToken": first["NextToken"]}
    ).build_full_result()

    # MaxResults is at least 50 and a job holds at most 50 tags, so one page always holds them all.
    assert whole["Tags"] == tags(50) and "NextToken" not in whole
    assert [page["Tags"] for page in pages] == [tags(50)]
    assert first["Tags"] + rest["Tags"] == tags(50) and len(first["Tags"]) == 20


def test_list_tags_rejects_what_aws_rejects(aws, create_job):
    create_job("strict")
    # Without the client's own checks, the request reaches the emulator as it would reach AWS.
    unchecked = boto3.client(
        "sagemaker", config=Config(parameter_validation=False, retries={"total_max_attempts": 1})
    )

    with pytest.raises(ClientError) as small_page:
        unchecked.list_tags(ResourceArn=ARN_PREFIX + "strict", MaxResults=49)
    with pytest.raises(ClientError) as bad_token:
        unchecked.list_tags(ResourceArn=ARN_PREFIX + "strict", NextToken="not-a-token")
    with pytest.raises(ClientError) as no_keys:
        unchecked.delete_tags(ResourceArn=ARN_PREFIX + "strict", TagKeys=[])

    code, message, _ = error_of(small_page)
    assert code == "ValidationException" and "at 'maxResults'" in message
    assert error_of(bad_token)[:2] == ("ValidationException", "Invalid pagination token.")
    code, message, _ = error_of(no_keys)
    assert code == "ValidationException" and "at 'tagKeys'" in message


def test_tags_of_other_sagemaker_resources_still_go_to_moto(aws, sagemaker):
    model_arn = sagemaker.create_model(
        ModelName="a-model",
        ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerExecution",
        PrimaryContainer={"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/serve:1"},
        Tags=[{"Key": "team", "Value": "ml"}],
    )["ModelArn"]

    sagemaker.add_tags(ResourceArn=model_arn, Tags=[{"Key": "stage", "Value": "prod"}])
    sagemaker.delete_tags(ResourceArn=model_arn, TagKeys=["team"])

    assert sagemaker.list_tags(ResourceArn=model_arn)["Tags"] == [{"Key": "stage", "Value": "prod"}]
    assert aws.control.jobs() == []
    assert [(c["action"], c["status"], c["job_name"]) for c in aws.control.calls(service="sagemaker")][
        1:
    ] == [
        ("AddTags", 200, None),
        ("DeleteTags", 200, None),
        ("ListTags", 200, None),
    ]


def test_faults_hit_tagging_calls_too(aws, sagemaker, create_job):
    create_job("throttled", Tags=[{"Key": "team", "Value": "ml"}])
    aws.control.inject("throttle", 1, action="ListTags")

    with pytest.raises(ClientError) as excinfo:
        sagemaker.list_tags(ResourceArn=ARN_PREFIX + "throttled")

    assert error_of(excinfo)[0] == "ThrottlingException"
    assert sagemaker.list_tags(ResourceArn=ARN_PREFIX + "throttled")["Tags"] == [
        {"Key": "team", "Value": "ml"}
    ]
