"""The emulator's WSGI application, in front of moto's server.

It serves our SageMaker training jobs (including ListTags, AddTags and DeleteTags on training-job
ARNs), the control API, call recording and fault injection; moto answers every other AWS request,
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

from lyftlearn_provider.testing.aws.autopilot import Autopilot
from lyftlearn_provider.testing.aws.calls import Call, CallLog
from lyftlearn_provider.testing.aws.control_api import ControlApi
from lyftlearn_provider.testing.aws.events import EventLog
from lyftlearn_provider.testing.aws.faults import Fault, FaultInjector, error_response
from lyftlearn_provider.testing.aws.speedups import apply as apply_speedups
from lyftlearn_provider.testing.aws.training_jobs import (
    DEFAULT_STOP_DELAY,
    AwsError,
    TrainingJobStore,
    training_job_arn_name,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

CONTROL_PREFIX = "/_lyftlearn/"
TRAINING_JOB_ACTIONS = frozenset(
    {"CreateTrainingJob", "DescribeTrainingJob", "StopTrainingJob", "ListTrainingJobs"}
)
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
            if isinstance(params.get("TrainingJobName"), str):
                job_name = params["TrainingJobName"]
            if isinstance(params.get("ResourceArn"), str):
                resource_arn = params["ResourceArn"]
                job_name = job_name or training_job_arn_name(resource_arn)
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


def _serves_training_jobs(request: AwsRequest) -> bool:
    """Tell whether our training-job model, not moto, answers ``request``."""
    if request.service != "sagemaker":
        return False
    return request.action in TRAINING_JOB_ACTIONS or (
        request.action in TAGGING_ACTIONS and training_job_arn_name(request.resource_arn) is not None
    )


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
        self.faults = FaultInjector()
        self.calls = CallLog()
        self._backend = DomainDispatcherApplication(create_backend_app)
        self._control = ControlApi(self)

    def reset(self) -> None:
        """Forget jobs, calls, events, faults and autopilot settings, and reset moto's backends."""
        self.autopilot.configure(enabled=False)
        self.faults.clear()
        self.store.reset()
        self.calls.clear()
        self.events.clear()
        self.events.enabled = True
        self.store.stop_delay = DEFAULT_STOP_DELAY
        moto_api_backend.reset()

    def close(self) -> None:
        """Stop background threads."""
        self.autopilot.close()

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
        if _serves_training_jobs(request):
            status, headers, body = self._training_jobs(request)
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

    def _training_jobs(self, request: AwsRequest) -> tuple[int, list[tuple[str, str]], bytes]:
        region = request.region or self.region
        try:
            params = json.loads(request.body or b"{}")
        except ValueError:
            params = None
        try:
            if not isinstance(params, dict):
                raise AwsError("SerializationException", "Start of structure or map expected.")
            if request.action == "CreateTrainingJob":
                result = self.store.create(region, params)
            elif request.action == "DescribeTrainingJob":
                result = self.store.describe(region, params.get("TrainingJobName"))
            elif request.action == "StopTrainingJob":
                self.store.stop(region, params.get("TrainingJobName"))
                result = {}
            elif request.action == "ListTrainingJobs":
                result = self.store.list_jobs(region, params)
            elif request.action == "ListTags":
                result = self.store.list_tags(region, params)
            elif request.action == "AddTags":
                result = self.store.add_tags(region, params)
            else:
                result = self.store.delete_tags(region, params)
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
