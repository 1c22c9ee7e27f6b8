"""The one table that decides what a tracker's error means (retries.classify) and what the fix is."""

from __future__ import annotations

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    NoRegionError,
    ReadTimeoutError,
)

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.retries import (
    DESCRIBE_TRAINING_JOB,
    GET_QUEUE_ATTRIBUTES,
    LIST_TRAINING_JOBS,
    RECEIVE_MESSAGE,
    classify,
    describe_error,
    tracker_fix,
)
from lyftlearn_provider.status import TrackingErrorKind

TRANSIENT, JOB, TRACKER, UNEXPECTED = (
    TrackingErrorKind.TRANSIENT,
    TrackingErrorKind.JOB,
    TrackingErrorKind.TRACKER,
    TrackingErrorKind.UNEXPECTED,
)


def client_error(
    code: str, status: int = 400, message: str = "", query_code: str | None = None, operation: str = "Op"
) -> ClientError:
    error = {"Code": code, "Message": message}
    if query_code:
        error["QueryErrorCode"] = query_code
    return ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}, operation)


@pytest.mark.parametrize(
    ("error", "operation", "kind"),
    [
        # Transient: throttling (any status), 5xx, lost connections, timeouts.
        (client_error("ThrottlingException"), LIST_TRAINING_JOBS, TRANSIENT),
        (client_error("ThrottlingException"), DESCRIBE_TRAINING_JOB, TRANSIENT),
        (client_error("RequestThrottled", 403), RECEIVE_MESSAGE, TRANSIENT),
        (client_error("KMS.ThrottlingException", query_code="KmsThrottled"), RECEIVE_MESSAGE, TRANSIENT),
        (client_error("InternalFailure", 500), LIST_TRAINING_JOBS, TRANSIENT),
        (client_error("ServiceUnavailable", 503), RECEIVE_MESSAGE, TRANSIENT),
        # A 5xx answer is transient whatever its code says.
        (client_error("AccessDeniedException", 503), LIST_TRAINING_JOBS, TRANSIENT),
        (EndpointConnectionError(endpoint_url="https://api.sagemaker"), DESCRIBE_TRAINING_JOB, TRANSIENT),
        (ConnectionClosedError(endpoint_url="https://sqs"), RECEIVE_MESSAGE, TRANSIENT),
        (ReadTimeoutError(endpoint_url="https://sqs"), RECEIVE_MESSAGE, TRANSIENT),
        # About the job: only for an operation on one named job.
        (
            client_error("ValidationException", message="Requested resource not found."),
            DESCRIBE_TRAINING_JOB,
            JOB,
        ),
        (
            client_error("ValidationException", message="Value 'a_b' at 'trainingJobName' failed to satisfy"),
            DESCRIBE_TRAINING_JOB,
            JOB,
        ),
        (client_error("ResourceNotFound", message="Training job not found"), DESCRIBE_TRAINING_JOB, JOB),
        # ... the same answers to a listing are about our request: a bug, not a job.
        (
            client_error("ValidationException", message="Requested resource not found."),
            LIST_TRAINING_JOBS,
            UNEXPECTED,
        ),
        (client_error("ValidationException"), RECEIVE_MESSAGE, UNEXPECTED),
        # The tracker itself: permissions, whatever the operation.
        (client_error("AccessDeniedException"), LIST_TRAINING_JOBS, TRACKER),
        (client_error("AccessDeniedException"), DESCRIBE_TRAINING_JOB, TRACKER),
        (client_error("AccessDenied", 403, query_code="AccessDeniedException"), RECEIVE_MESSAGE, TRACKER),
        (client_error("AccessDenied", 403), GET_QUEUE_ATTRIBUTES, TRACKER),
        (client_error("UnauthorizedOperation", 403), LIST_TRAINING_JOBS, TRACKER),
        # ... credentials.
        (client_error("UnrecognizedClientException"), LIST_TRAINING_JOBS, TRACKER),
        (client_error("InvalidClientTokenId", 403), RECEIVE_MESSAGE, TRACKER),
        (client_error("ExpiredToken", 403), DESCRIBE_TRAINING_JOB, TRACKER),
        (client_error("ExpiredTokenException"), LIST_TRAINING_JOBS, TRACKER),
        (client_error("SignatureDoesNotMatch", 403), RECEIVE_MESSAGE, TRACKER),
        (NoCredentialsError(), LIST_TRAINING_JOBS, TRACKER),
        (NoRegionError(), DESCRIBE_TRAINING_JOB, TRACKER),
        # ... the queue: missing (either code botocore reports), a bad URL, its KMS key.
        (
            client_error("AWS.SimpleQueueService.NonExistentQueue", query_code="QueueDoesNotExist"),
            GET_QUEUE_ATTRIBUTES,
            TRACKER,
        ),
        (client_error("QueueDoesNotExist"), RECEIVE_MESSAGE, TRACKER),
        (client_error("InvalidAddress", 404), RECEIVE_MESSAGE, TRACKER),
        (client_error("KMS.AccessDeniedException", query_code="KmsAccessDenied"), RECEIVE_MESSAGE, TRACKER),
        (client_error("KmsDisabled"), RECEIVE_MESSAGE, TRACKER),
        (client_error("KMS.NotFoundException"), RECEIVE_MESSAGE, TRACKER),
        # ... our own configuration.
        (
            InvalidSpecError("job_name_prefix", "not the queue's", "Use one queue per prefix."),
            RECEIVE_MESSAGE,
            TRACKER,
        ),
        # Anything else.
        (client_error("SomethingNew"), LIST_TRAINING_JOBS, UNEXPECTED),
        (client_error("SomethingNew"), DESCRIBE_TRAINING_JOB, UNEXPECTED),
        (KeyError("TrainingJobSummaries"), LIST_TRAINING_JOBS, UNEXPECTED),
        (TypeError("boom"), DESCRIBE_TRAINING_JOB, UNEXPECTED),
    ],
)
def test_classify(error, operation, kind):
    assert classify(error, operation=operation) is kind


@pytest.mark.parametrize(
    ("error", "operation", "fix"),
    [
        (client_error("AccessDeniedException"), LIST_TRAINING_JOBS, "grant sagemaker:ListTrainingJobs to"),
        (
            client_error("AccessDenied", query_code="AccessDeniedException"),
            GET_QUEUE_ATTRIBUTES,
            "grant sqs:GetQueueAttributes",
        ),
        (client_error("QueueDoesNotExist"), RECEIVE_MESSAGE, "check the queue URL"),
        (client_error("KmsAccessDenied"), RECEIVE_MESSAGE, "kms:Decrypt"),
        (client_error("ExpiredToken"), DESCRIBE_TRAINING_JOB, "credentials"),
        (NoCredentialsError(), DESCRIBE_TRAINING_JOB, "credentials"),
        (InvalidSpecError("job_name_prefix", "x", "Y."), RECEIVE_MESSAGE, "correct the setting"),
        (KeyError("x"), LIST_TRAINING_JOBS, "bug"),
    ],
)
def test_tracker_fix_says_what_to_change(error, operation, fix):
    assert fix in tracker_fix(error, operation=operation)


def test_describe_error_gives_the_code_and_message():
    assert describe_error(client_error("AccessDeniedException", message="not authorized")) == (
        "AccessDeniedException: not authorized"
    )
    assert describe_error(KeyError("TrainingJobStatus")) == "KeyError: 'TrainingJobStatus'"
