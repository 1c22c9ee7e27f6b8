from __future__ import annotations

import socket
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionClosedError

from lyftlearn_provider.testing.aws import ControlError


@pytest.mark.parametrize(
    ("kind", "http_status", "code"),
    [
        ("throttle", 400, "ThrottlingException"),
        ("server_error", 500, "InternalFailure"),
        ("unavailable", 503, "ServiceUnavailable"),
    ],
)
def test_error_faults_as_botocore_sees_them_and_nothing_is_created(
    aws, sagemaker, job_request, kind, http_status, code
):
    aws.control.inject(kind, 1, service="sagemaker", action="CreateTrainingJob")

    with pytest.raises(ClientError) as excinfo:
        sagemaker.create_training_job(**job_request("faulted"))

    assert excinfo.value.response["Error"]["Code"] == code
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == http_status
    assert aws.control.jobs() == []
    [call] = aws.control.calls(action="CreateTrainingJob")
    assert (call["status"], call["fault"], call["job_name"]) == (http_status, kind, "faulted")
    assert aws.control.faults() == []  # used up


def test_reset_closes_the_connection_without_a_response(aws, sagemaker):
    aws.control.inject("reset", 1, service="sagemaker")

    with pytest.raises(ConnectionClosedError):
        sagemaker.list_training_jobs()

    [call] = aws.control.calls(service="sagemaker")
    assert (call["status"], call["fault"]) == (None, "reset")


def test_reset_is_a_real_tcp_rst(aws):
    aws.control.inject("reset", 1, action="GET /some-bucket")
    address = urlsplit(aws.endpoint_url)

    with socket.create_connection((address.hostname, address.port), timeout=5) as connection:
        connection.sendall(b"GET /some-bucket HTTP/1.1\r\nHost: localhost\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            connection.recv(1024)


def test_standard_retry_mode_rides_out_a_short_throttle_burst(aws):
    aws.control.inject("throttle", 2, service="sagemaker", action="ListTrainingJobs")
    patient = boto3.client("sagemaker", config=Config(retries={"mode": "standard", "max_attempts": 3}))

    response = patient.list_training_jobs()

    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert [c["status"] for c in aws.control.calls(action="ListTrainingJobs")] == [400, 400, 200]


def test_reset_after_create_creates_the_job_once_and_the_retry_sees_resource_in_use(aws, job_request):
    aws.control.inject("reset", 1, action="CreateTrainingJob", after=True)
    retrying = boto3.client("sagemaker", config=Config(retries={"mode": "standard", "max_attempts": 3}))

    with pytest.raises(ClientError) as excinfo:
        retrying.create_training_job(**job_request("created-unheard"))

    assert excinfo.value.response["Error"]["Code"] == "ResourceInUse"
    assert [job["TrainingJobName"] for job in aws.control.jobs()] == ["created-unheard"]
    calls = aws.control.calls(action="CreateTrainingJob")
    assert [(c["status"], c["fault"]) for c in calls] == [(None, "reset"), (400, None)]


def test_faults_hit_only_matching_requests_and_render_per_protocol(aws):
    s3 = boto3.client("s3", config=Config(retries={"total_max_attempts": 1}))
    sqs = boto3.client("sqs", config=Config(retries={"total_max_attempts": 1}))
    s3.create_bucket(Bucket="fault-bucket")
    aws.control.inject("throttle", 1, service="sqs")
    aws.control.inject("throttle", 1, service="s3", action="GET /fault-bucket/model.tar.gz")

    s3.put_object(Bucket="fault-bucket", Key="model.tar.gz", Body=b"weights")  # not targeted
    with pytest.raises(ClientError) as s3_error:
        s3.get_object(Bucket="fault-bucket", Key="model.tar.gz")
    with pytest.raises(ClientError) as sqs_error:
        sqs.list_queues()

    # S3 throttles with 503 SlowDown; JSON-protocol services with ThrottlingException.
    assert s3_error.value.response["Error"]["Code"] == "SlowDown"
    assert s3_error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert sqs_error.value.response["Error"]["Code"] == "ThrottlingException"
    assert s3.get_object(Bucket="fault-bucket", Key="model.tar.gz")["Body"].read() == b"weights"


def test_pending_faults_can_be_listed_and_cleared(aws, sagemaker):
    aws.control.inject("unavailable", 5, service="sagemaker")

    assert aws.control.faults() == [
        {"kind": "unavailable", "remaining": 5, "service": "sagemaker", "action": None, "after": False}
    ]
    aws.control.clear_faults()
    assert sagemaker.list_training_jobs()["TrainingJobSummaries"] == []
    with pytest.raises(ControlError) as excinfo:
        aws.control.inject("throttle", after=True)
    assert excinfo.value.status == 400


def test_access_denied_names_the_permission_in_each_protocol(aws, sagemaker):
    sqs = boto3.client("sqs", config=Config(retries={"total_max_attempts": 1}))
    sts = boto3.client("sts", config=Config(retries={"total_max_attempts": 1}))
    s3 = boto3.client("s3", config=Config(retries={"total_max_attempts": 1}))
    queue_url = sqs.create_queue(QueueName="denied")["QueueUrl"]
    s3.create_bucket(Bucket="denied-bucket")
    aws.control.inject("access_denied", 2, service="sagemaker", action="ListTrainingJobs")
    aws.control.inject("access_denied", 1, service="sqs", action="ReceiveMessage")
    aws.control.inject("access_denied", 1, service="sts", action="GetCallerIdentity")
    aws.control.inject("access_denied", 1, service="s3", action="GET /denied-bucket")

    errors = []
    for call in (
        sagemaker.list_training_jobs,
        lambda: sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0),
        sts.get_caller_identity,
        lambda: s3.list_objects_v2(Bucket="denied-bucket"),
    ):
        with pytest.raises(ClientError) as excinfo:
            call()
        errors.append(excinfo.value.response)

    summary = [(e["Error"]["Code"], e["ResponseMetadata"]["HTTPStatusCode"]) for e in errors]
    assert summary == [
        ("AccessDeniedException", 400),
        # SQS speaks JSON but reports the query-era code, as botocore reads real SQS's answers.
        ("AccessDenied", 400),
        ("AccessDenied", 403),
        ("AccessDenied", 403),
    ]
    assert errors[1]["Error"]["QueryErrorCode"] == "AccessDeniedException"
    assert "is not authorized to perform: sagemaker:ListTrainingJobs" in errors[0]["Error"]["Message"]
    assert "is not authorized to perform: sqs:ReceiveMessage" in errors[1]["Error"]["Message"]
    assert "is not authorized to perform: sts:GetCallerIdentity" in errors[2]["Error"]["Message"]
    # Only the targeted calls were denied, and the fault is counted down like any other.
    assert aws.control.faults() == [
        {
            "kind": "access_denied",
            "remaining": 1,
            "service": "sagemaker",
            "action": "ListTrainingJobs",
            "after": False,
        }
    ]
    assert sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=0).get("Messages") is None
    denied = [call for call in aws.control.calls() if call["fault"] == "access_denied"]
    assert [call["action"] for call in denied] == [
        "ListTrainingJobs",
        "ReceiveMessage",
        "GetCallerIdentity",
        "GET /denied-bucket",
    ]
