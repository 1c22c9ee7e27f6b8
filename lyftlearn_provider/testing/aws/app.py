"""The emulator's WSGI application, in front of moto's server.

It serves our SageMaker training and processing jobs (including ListTags, AddTags and DeleteTags on
their ARNs), the control API, call recording and fault injection; moto answers every other AWS request,
tagging of other SageMaker resources included, unchanged.
"""

from __future__ import annotations

import io
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.http import HTTP_STATUS_CODES

from lyftlearn_provider.job_kinds import PROCESSING, TRAINING
from lyftlearn_provider.testing.aws.autopilot import Autopilot
from lyftlearn_provider.testing.aws.calls import Call, CallLog
from lyftlearn_provider.testing.aws.control_api import ControlApi
from lyftlearn_provider.testing.aws.events import EventLog
from lyftlearn_provider.testing.aws.faults import Fault, FaultInjector, error_response
from lyftlearn_provider.testing.aws.processing_jobs import ProcessingJobStore
from lyftlearn_provider.testing.aws.speedups import apply as apply_speedups
from lyftlearn_provider.testing.aws.training_jobs import (
    DEFAULT_STOP_DELAY,
    AwsError,
    TrainingJobStore,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CONTROL_PREFIX = "/_lyftlearn/"
TRAINING_JOB_ACTIONS = TRAINING.operations
PROCESSING_JOB_ACTIONS = PROCESSING.operations
_TRAINING_ARN = TRAINING.arn_pattern()
_PROCESSING_ARN = PROCESSING.arn_pattern()
# Served by us when their ResourceArn is a training job's, by moto for every other SageMaker resource.
TAGGING_ACTIONS = frozenset({"ListTags", "AddTags", "DeleteTags"})
_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/]+)/([^/]+)/aws4_request")
_JSON_CONTENT_TYPE = "application/x-amz-json-1.1"


class AbortConnection(BaseException):  # noqa: N818 - a signal to the request handler, not an error
    """Tell the request handler to reset the TCP connection instead of answering.

    It derives from BaseException so that werkzeug's request handler, which turns any Exception into
    a 500 response, lets it through to :class:`.server.EmulatorRequestHandler`.
    """


@dataclass(frozen=True)
class AwsRequest:
    """What the emulator needs to know about an AWS request."""

    service: str | None
    region: str | None
    action: str
    protocol: str
    body: bytes | None
    job_name: str | None
    resource_arn: str | None = None


def _read_body(environ: WSGIEnvironment) -> bytes:
    """Read the request body and put it back so that moto can read it again."""
    stream = environ["wsgi.input"]
    if environ.get("wsgi.input_terminated"):
        body = stream.read()
    else:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = stream.read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


def parse_aws_request(environ: WSGIEnvironment) -> AwsRequest:
    """Identify service, region, action and protocol; read the body only for JSON and query requests.

    The service and region come from the SigV4 credential scope (header, or query string for
    presigned URLs); the action from ``X-Amz-Target`` (JSON protocol), the ``Action`` parameter (query
    protocol) or, for REST services such as S3, ``"METHOD path"``. Bodies of REST requests are left
    alone: they can be large uploads, streamed by the client. ``job_name`` is the request's
    ``TrainingJobName`` or, for a ``ResourceArn`` of a training job, the name in that ARN.
    """
    query = parse_qs(environ.get("QUERY_STRING", ""))
    credential = environ.get("HTTP_AUTHORIZATION") or "Credential=" + query.get("X-Amz-Credential", [""])[0]
    scope = _CREDENTIAL_SCOPE.search(credential)
    region, service = (scope.group(1), scope.group(2)) if scope else (None, None)
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        body = _read_body(environ)
        job_name = resource_arn = None
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            params = None
        if isinstance(params, dict):
            for field in (TRAINING.name_field, PROCESSING.name_field):
                if isinstance(params.get(field), str):
                    job_name = params[field]
            if isinstance(params.get("ResourceArn"), str):
                resource_arn = params["ResourceArn"]
                arn = _TRAINING_ARN.fullmatch(resource_arn) or _PROCESSING_ARN.fullmatch(resource_arn)
                job_name = job_name or (arn.group(3) if arn else None)
        action = target.rsplit(".", 1)[-1]
        return AwsRequest(service, region, action, "json", body, job_name, resource_arn)
    form: bytes | None = None
    if environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        form = _read_body(environ)
        query.update(parse_qs(form.decode("utf-8", "replace")))
    if "Action" in query:
        return AwsRequest(service, region, query["Action"][0], "query", form, None)
    action = f"{environ.get('REQUEST_METHOD', 'GET')} {environ.get('PATH_INFO', '')}"
    return AwsRequest(service, region, action, "s3" if service == "s3" else "rest-json", form, None)


def _job_kind_of(request: AwsRequest) -> str | None:
    """Return which of our job models (``training``, ``processing``), not moto, answers ``request``."""
    if request.service != "sagemaker":
        return None
    arn = request.resource_arn or ""
    if request.action in TRAINING_JOB_ACTIONS or (
        request.action in TAGGING_ACTIONS and _TRAINING_ARN.fullmatch(arn)
    ):
        return TRAINING.name
    if request.action in PROCESSING_JOB_ACTIONS or (
        request.action in TAGGING_ACTIONS and _PROCESSING_ARN.fullmatch(arn)
    ):
        return PROCESSING.name
    return None


def _status_line(status: int) -> str:
    return f"{status} {HTTP_STATUS_CODES.get(status, 'Unknown')}"


def _json_response(payload: dict[str, Any]) -> tuple[list[tuple[str, str]], bytes]:
    headers = [("Content-Type", _JSON_CONTENT_TYPE), ("x-amzn-RequestId", str(uuid.uuid4()))]
    return headers, json.dumps(payload).encode()


class EmulatorApp:
    """WSGI application of the emulator; moto's server application answers everything it does not.

    ``region`` is the default for control operations and for unsigned requests.
    """

    def __init__(self, region: str = "us-east-1") -> None:
        self.region = region
        apply_speedups()
        self.events = EventLog()
        self.store = TrainingJobStore(self.events.publish)
        self.autopilot = Autopilot(self.store)
        #: Processing (batch) jobs: the same state machine, driven by the same control API and autopilot.
        self.processing = ProcessingJobStore(self.events.publish)
        self.processing_autopilot = Autopilot(self.processing)
        self.stores = {TRAINING.name: self.store, PROCESSING.name: self.processing}
        self.faults = FaultInjector()
        self.calls = CallLog()
        self._backend = DomainDispatcherApplication(create_backend_app)
        self._control = ControlApi(self)

    def reset(self) -> None:
        """Forget jobs, calls, events, faults and autopilot settings, and reset moto's backends."""
        self.autopilot.configure(enabled=False)
        self.processing_autopilot.configure(enabled=False)
        self.faults.clear()
        self.store.reset()
        self.processing.reset()
        self.calls.clear()
        self.events.clear()
        self.events.enabled = True
        self.store.stop_delay = self.processing.stop_delay = DEFAULT_STOP_DELAY
        moto_api_backend.reset()

    def close(self) -> None:
        """Stop background threads."""
        self.autopilot.close()
        self.processing_autopilot.close()

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request."""
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL_PREFIX):
            return self._control(environ, start_response)
        if path.startswith("/moto-api"):
            return self._backend(environ, start_response)
        arrived = time.monotonic()
        request = parse_aws_request(environ)
        fault = self.faults.take(request.service, request.action)
        if fault is not None and not fault.after:
            return self._fail(request, fault, arrived, start_response)
        kind = _job_kind_of(request)
        if kind is not None:
            status, headers, body = self._jobs(request, self.stores[kind])
            chunks: Iterable[bytes] = [body]
        else:
            status, headers, chunks = self._call_backend(environ)
        if fault is not None:
            # The request took effect; the client never learns it did.
            if hasattr(chunks, "close"):
                chunks.close()
            self._record(request, None, fault, arrived)
            raise AbortConnection()
        self._record(request, status, None, arrived)
        start_response(_status_line(status), headers)
        return chunks

    def _fail(
        self, request: AwsRequest, fault: Fault, arrived: float, start_response: StartResponse
    ) -> list[bytes]:
        if fault.kind == "reset":
            self._record(request, None, fault, arrived)
            raise AbortConnection()
        status, headers, body = error_response(fault.kind, request.protocol, request.service, request.action)
        self._record(request, status, fault, arrived)
        start_response(_status_line(status), headers)
        return [body]

    def _call_backend(self, environ: WSGIEnvironment) -> tuple[int, list[tuple[str, str]], Iterable[bytes]]:
        """Run moto on the request, holding back its status line so that the caller decides what to send."""
        captured: dict[str, Any] = {}

        def capture(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = self._backend(environ, capture)
        return int(captured["status"].split(" ", 1)[0]), captured["headers"], chunks

    def _jobs(self, request: AwsRequest, store: TrainingJobStore) -> tuple[int, list[tuple[str, str]], bytes]:
        region = request.region or self.region
        kind = store.kind
        try:
            params = json.loads(request.body or b"{}")
        except ValueError:
            params = None
        try:
            if not isinstance(params, dict):
                raise AwsError("SerializationException", "Start of structure or map expected.")
            if request.action == kind.create_operation:
                result = store.create(region, params)
            elif request.action == kind.describe_operation:
                result = store.describe(region, params.get(kind.name_field))
            elif request.action == kind.stop_operation:
                store.stop(region, params.get(kind.name_field))
                result = {}
            elif request.action == kind.list_operation:
                result = store.list_jobs(region, params)
            elif request.action == "ListTags":
                result = store.list_tags(region, params)
            elif request.action == "AddTags":
                result = store.add_tags(region, params)
            else:
                result = store.delete_tags(region, params)
        except AwsError as error:
            headers, body = _json_response({"__type": error.code, "message": error.message})
            return error.status, headers, body
        headers, body = _json_response(result)
        return 200, headers, body

    def _record(self, request: AwsRequest, status: int | None, fault: Fault | None, arrived: float) -> None:
        self.calls.record(
            Call(
                service=request.service,
                region=request.region,
                action=request.action,
                status=status,
                job_name=request.job_name,
                fault=fault.kind if fault is not None else None,
                t=arrived,
            )
        )
