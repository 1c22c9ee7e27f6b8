"""When to retry an AWS call and how long to wait: pure rules shared by hooks, triggers and operators."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.status import TrackingErrorKind

T = TypeVar("T")

#: Longest pause between two attempts while AWS throttles us or fails.
MAX_BACKOFF_SECONDS = 300.0
#: Back-off doubles the base delay per consecutive failure, at most this many times.
MAX_BACKOFF_DOUBLINGS = 4

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "SlowDown",
        "RequestThrottled",
        # SQS cannot use a queue's KMS key as fast as it is asked to; botocore's query-compatible name too.
        "KmsThrottled",
        "KMS.ThrottlingException",
    }
)

#: The IAM actions the trackers call: what :func:`classify` is told, and what a warning asks to grant.
DESCRIBE_TRAINING_JOB = "sagemaker:DescribeTrainingJob"
LIST_TRAINING_JOBS = "sagemaker:ListTrainingJobs"
DESCRIBE_PROCESSING_JOB = "sagemaker:DescribeProcessingJob"
LIST_PROCESSING_JOBS = "sagemaker:ListProcessingJobs"
GET_QUEUE_ATTRIBUTES = "sqs:GetQueueAttributes"
RECEIVE_MESSAGE = "sqs:ReceiveMessage"
#: Operations whose only input is one job's name: an answer about their input is about that job.
JOB_OPERATIONS = frozenset({DESCRIBE_TRAINING_JOB, DESCRIBE_PROCESSING_JOB})

#: The caller's identity may not make the call: an IAM policy, a permission boundary or an SCP.
PERMISSION_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "NotAuthorized", "AuthFailure"}
)
#: The caller's credentials or requests are unusable: unknown, expired or mistyped keys, a skewed clock,
#: or plain HTTP where the queue's policy demands TLS.
CREDENTIAL_CODES = frozenset(
    {
        "UnrecognizedClientException",
        "InvalidClientTokenId",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidSignatureException",
        "IncompleteSignature",
        "MissingAuthenticationToken",
        "ExpiredToken",
        "ExpiredTokenException",
        "RequestExpired",
        "InvalidSecurity",
    }
)
#: The queue does not exist where the URL points, or the URL is not a queue's.
MISSING_QUEUE_CODES = frozenset(
    {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "InvalidAddress"}
)
#: SQS cannot use the queue's KMS key for us (SQS's JSON name, then botocore's query-compatible one).
QUEUE_KMS_CODES = frozenset(
    {
        "KmsAccessDenied",
        "KMS.AccessDeniedException",
        "KmsDisabled",
        "KMS.DisabledException",
        "KmsInvalidKeyUsage",
        "KMS.InvalidKeyUsageException",
        "KmsInvalidState",
        "KMS.InvalidStateException",
        "KmsNotFound",
        "KMS.NotFoundException",
        "KmsOptInRequired",
        "KMS.OptInRequired",
    }
)
#: Answers that say the tracker itself cannot work, whichever job it asks about.
TRACKER_CODES = PERMISSION_CODES | CREDENTIAL_CODES | MISSING_QUEUE_CODES | QUEUE_KMS_CODES


def jittered(seconds: float, spread: float = 0.2) -> float:
    """Return ``seconds`` moved at random by up to ``spread`` of itself, so pollers do not align."""
    return seconds * random.uniform(1 - spread, 1 + spread)


def backoff(base: float, failures: int) -> float:
    """Return the jittered pause before the next attempt after ``failures`` consecutive transient failures."""
    pause = base * 2 ** min(failures, MAX_BACKOFF_DOUBLINGS)
    return jittered(min(pause, max(base, MAX_BACKOFF_SECONDS)))


def error_code(error: Any) -> str:
    """Return the AWS error code of a botocore ``ClientError``."""
    return str(error.response.get("Error", {}).get("Code", ""))


def error_codes(error: Any) -> frozenset[str]:
    """
    Return every code AWS gave a botocore ``ClientError``.

    For services that moved from the query to the JSON protocol (SQS), botocore reports the query-era
    code (``AWS.SimpleQueueService.NonExistentQueue``) and keeps the JSON one as ``QueryErrorCode``
    (``QueueDoesNotExist``); either may be what a rule knows.
    """
    details = error.response.get("Error", {})
    return frozenset(str(details[key]) for key in ("Code", "QueryErrorCode") if details.get(key))


def is_not_found(error: Any) -> bool:
    """Return whether SageMaker said the named training job does not exist."""
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return error_code(error) in {"ValidationException", "ResourceNotFound"} and "not found" in message


def is_throttling(error: BaseException) -> bool:
    """Return whether AWS answered with throttling (a ``ClientError`` with a throttling code)."""
    from botocore.exceptions import ClientError

    return isinstance(error, ClientError) and error_code(error) in THROTTLING_CODES


def is_transient(error: BaseException) -> bool:
    """Return whether an error from botocore is worth retrying: throttling, 5xx, or a lost connection."""
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(error, (ConnectionError, HTTPClientError)):
        return True
    if isinstance(error, ClientError):
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return error_code(error) in THROTTLING_CODES or status >= 500
    return False


def classify(error: BaseException, *, operation: str) -> TrackingErrorKind:
    """
    Return what an error of ``operation`` (an IAM action, e.g. ``sagemaker:ListTrainingJobs``) means.

    - ``transient``: throttling, 5xx answers, lost connections (:func:`is_transient`): retry later;
    - ``job``: SageMaker said the job of a one-job operation does not exist or its name is invalid;
    - ``tracker``: the tracker cannot work whichever job it asks about: permissions, credentials, a
      missing or unusable queue (its URL, its KMS key), or our own configuration;
    - ``unexpected``: anything else.
    """
    from botocore.exceptions import (
        ClientError,
        NoCredentialsError,
        NoRegionError,
        PartialCredentialsError,
        ProfileNotFound,
    )

    if is_transient(error):
        return TrackingErrorKind.TRANSIENT
    if isinstance(
        error, (InvalidSpecError, NoCredentialsError, PartialCredentialsError, NoRegionError, ProfileNotFound)
    ):
        return TrackingErrorKind.TRACKER
    if not isinstance(error, ClientError):
        return TrackingErrorKind.UNEXPECTED
    codes = error_codes(error)
    if codes & TRACKER_CODES:
        return TrackingErrorKind.TRACKER
    if operation in JOB_OPERATIONS and codes & {"ValidationException", "ResourceNotFound"}:
        return TrackingErrorKind.JOB
    return TrackingErrorKind.UNEXPECTED


def describe_error(error: BaseException) -> str:
    """Return what went wrong, as a log line or an event message says it: ``Code: message``."""
    response = getattr(error, "response", None)
    if isinstance(response, dict) and response.get("Error", {}).get("Code"):
        # Without its final period: the message goes on after it.
        return f"{error_code(error)}: {str(response['Error'].get('Message') or error).rstrip('.')}"
    return f"{type(error).__name__}: {error}"


def tracker_fix(error: BaseException, *, operation: str) -> str:
    """Return what to change so that a tracker whose ``operation`` failed with ``error`` works."""
    if isinstance(error, InvalidSpecError):
        return "correct the setting the error names"
    codes = error_codes(error) if hasattr(error, "response") else frozenset()
    if codes & QUEUE_KMS_CODES:
        return "allow the connection's role kms:Decrypt and kms:GenerateDataKey on the queue's KMS key"
    if codes & MISSING_QUEUE_CODES:
        return "check the queue URL (SetupTrainingEventsOperator creates the queue and prints it)"
    if codes & PERMISSION_CODES:
        return f"grant {operation} to the connection's role"
    if codes & CREDENTIAL_CODES or classify(error, operation=operation) is TrackingErrorKind.TRACKER:
        return "check the AWS connection's credentials, region and settings"
    return "this looks like a bug: please report it with this message"


#: botocore retries throttling, 5xx and connection errors itself; "standard" backs off with jitter.
DEFAULT_BOTOCORE_RETRIES: dict[str, Any] = {"mode": "standard", "max_attempts": 10}
#: For clients whose every attempt goes through our own back-off (and, for SageMaker, the call budget).
NO_BOTOCORE_RETRIES: dict[str, Any] = {"retries": {"mode": "standard", "total_max_attempts": 1}}
#: How long a synchronous call keeps retrying transient failures after botocore's own retries.
DEFAULT_PATIENCE_SECONDS = 600.0


def call_patiently(
    call: Callable[[], T],
    *,
    patience: float,
    retry_delay: float,
    log: logging.Logger | Any,
    retry_if: Callable[[BaseException], bool] = is_transient,
) -> T:
    """Return ``call()``, retrying what ``retry_if`` accepts, with back-off, for ``patience`` seconds."""
    give_up_at = time.monotonic() + patience
    failures = 0
    while True:
        try:
            return call()
        except Exception as error:
            if not retry_if(error) or time.monotonic() >= give_up_at:
                raise
            failures += 1
            log.warning("AWS call failed (%s); retrying, attempt %d.", error, failures + 1)
            time.sleep(backoff(retry_delay, failures))
