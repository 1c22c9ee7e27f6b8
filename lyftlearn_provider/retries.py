"""When to retry an AWS call and how long to wait: pure rules shared by hooks, triggers and operators."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

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
    }
)


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
