"""Faults injected at the HTTP boundary, and the error responses AWS would send for them.

Each fault kind is rendered in the wire protocol of the service it hits, so botocore parses it into
the error code real AWS sends: ``ThrottlingException`` for JSON services (SageMaker, SQS, EventBridge,
ECR, CloudWatch Logs), ``Throttling`` for query services (STS, IAM) and S3's ``SlowDown`` (HTTP 503).
``access_denied`` is what a caller whose IAM policy lacks the action gets: ``AccessDeniedException``
naming the action (e.g. ``sagemaker:ListTrainingJobs``) from JSON services, ``AccessDenied`` (HTTP 403)
from query services and S3; SQS, which moved from the query to the JSON protocol, also sends the
``x-amzn-query-error`` header, so botocore reports ``AccessDenied`` as real SQS makes it do.
``reset`` has no response at all: the server closes the TCP connection with an RST.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import asdict, dataclass

FAULT_KINDS = ("throttle", "server_error", "unavailable", "access_denied", "reset")
#: The identity the emulator pretends denied callers have.
DENIED_PRINCIPAL = "arn:aws:sts::123456789012:assumed-role/lyftlearn-triggerer/airflow"
#: JSON services whose errors carry their query-protocol code in ``x-amzn-query-error`` (awsQueryCompatible).
_QUERY_COMPATIBLE = frozenset({"sqs"})

# (HTTP status, error code, message) per fault kind and protocol family.
_ERRORS: dict[str, dict[str, tuple[int, str, str]]] = {
    "throttle": {
        "json": (400, "ThrottlingException", "Rate exceeded"),
        "query": (400, "Throttling", "Rate exceeded"),
        "s3": (503, "SlowDown", "Please reduce your request rate."),
    },
    "server_error": {
        "json": (500, "InternalFailure", "The request processing has failed because of an unknown error."),
        "query": (500, "InternalFailure", "The request processing has failed because of an unknown error."),
        "s3": (500, "InternalError", "We encountered an internal error. Please try again."),
    },
    "unavailable": {
        "json": (503, "ServiceUnavailable", "Service is unable to handle request."),
        "query": (503, "ServiceUnavailable", "Service is unable to handle request."),
        "s3": (503, "ServiceUnavailable", "Service is unable to handle request."),
    },
    "access_denied": {
        "json": (
            400,
            "AccessDeniedException",
            "User: {principal} is not authorized to perform: {permission}",
        ),
        "query": (403, "AccessDenied", "User: {principal} is not authorized to perform: {permission}"),
        "s3": (403, "AccessDenied", "Access Denied"),
    },
}
#: The query-protocol codes of JSON errors, for services in ``_QUERY_COMPATIBLE``.
_QUERY_CODES = {"AccessDeniedException": "AccessDenied"}


@dataclass
class Fault:
    """A pending fault: the next ``remaining`` matching requests get ``kind``."""

    kind: str
    remaining: int
    service: str | None = None
    action: str | None = None
    after: bool = False

    def matches(self, service: str | None, action: str) -> bool:
        """Tell whether a request to ``service``/``action`` is one this fault targets."""
        return (self.service is None or self.service == service) and (
            self.action is None or self.action == action
        )


class FaultInjector:
    """Thread-safe list of pending faults; the first matching one wins."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def inject(
        self,
        kind: str,
        count: int = 1,
        service: str | None = None,
        action: str | None = None,
        after: bool = False,
    ) -> None:
        """Make the next ``count`` requests matching ``service`` and ``action`` (None: any) get ``kind``.

        ``after=True`` (only for ``reset``) lets the request take effect before the connection is reset:
        the client never hears that, say, its CreateTrainingJob succeeded.
        """
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {FAULT_KINDS}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if after and kind != "reset":
            raise ValueError("after=True only applies to 'reset'")
        with self._lock:
            self._faults.append(Fault(kind, count, service, action, after))

    def take(self, service: str | None, action: str) -> Fault | None:
        """Consume one occurrence of the first fault matching this request, if any."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(service, action):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def pending(self) -> list[dict[str, object]]:
        """Return the faults not yet used up."""
        with self._lock:
            return [asdict(fault) for fault in self._faults]

    def clear(self) -> None:
        """Drop every pending fault."""
        with self._lock:
            self._faults.clear()


def error_response(
    kind: str, protocol: str, service: str | None = None, action: str | None = None
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Render fault ``kind`` for a ``protocol`` (``json``, ``rest-json``, ``query`` or ``s3``).

    ``service`` and ``action`` name the request, as an access-denied message names the permission.
    """
    family = "json" if protocol == "rest-json" else protocol
    status, code, template = _ERRORS[kind][family]
    message = template.format(principal=DENIED_PRINCIPAL, permission=f"{service}:{action}")
    request_id = str(uuid.uuid4())
    if family == "json":
        headers = [("Content-Type", "application/x-amz-json-1.1"), ("x-amzn-RequestId", request_id)]
        if protocol == "rest-json":
            headers.append(("x-amzn-ErrorType", code))
        if service in _QUERY_COMPATIBLE and code in _QUERY_CODES:
            headers.append(("x-amzn-query-error", f"{_QUERY_CODES[code]};Sender"))
        return status, headers, json.dumps({"__type": code, "message": message}).encode()
    if family == "query":
        body = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error>"
            f"<RequestId>{request_id}</RequestId></ErrorResponse>"
        )
    else:
        body = f"<Error><Code>{code}</Code><Message>{message}</Message><RequestId>{request_id}</RequestId>"
        body += "</Error>"
    return status, [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], body.encode()
