"""Run the emulator: an HTTP server on a free local port, in a daemon thread of this process."""

from __future__ import annotations

import json
import socket
import struct
import threading
from types import TracebackType

from moto.moto_server.werkzeug_app import MotoRequestHandler
from werkzeug.serving import BaseWSGIServer, make_server

from lyftlearn_provider.testing.aws.app import AbortConnection, EmulatorApp
from lyftlearn_provider.testing.aws.control import EmulatorControl

# moto's conventional dummy credentials; the emulator accepts any.
DUMMY_CREDENTIAL = "testing"


class EmulatorRequestHandler(MotoRequestHandler):
    """moto's request handler, plus the ``reset`` fault and without a log line per request."""

    def handle(self) -> None:
        """Handle requests; on :class:`.app.AbortConnection`, reset the connection instead of answering."""
        try:
            super().handle()
        except AbortConnection:
            # Linger 0 makes close() send an RST rather than a FIN: the client sees "connection reset".
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            # The socket is only really closed once the file objects made from it are closed too.
            self.rfile.close()
            self.wfile.close()
            self.connection.close()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Log nothing: one line per request drowns the demo and benchmarks (see the recorded calls)."""


class AwsEmulator:
    """Local AWS (moto) with realistic SageMaker training jobs, fault injection and a control API.

    Use it as a context manager::

        with AwsEmulator() as aws:
            boto3.client("sagemaker", endpoint_url=aws.endpoint_url, region_name=aws.region, ...)
            aws.control.complete("my-job", metrics={"validation:auc": 0.91})

    ``port=0`` picks a free port. ``app`` is the in-process WSGI application (its ``store``,
    ``calls``, ``events`` and ``faults`` are the same objects the control API serves). An emulator
    runs once: start it, stop it, and make a new one if you need another.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, region: str = "us-east-1") -> None:
        self.host = host
        self.region = region
        self.app = EmulatorApp(region)
        self._requested_port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """Return the port the server listens on (only once started)."""
        if self._server is None:
            raise RuntimeError("the emulator is not running")
        return int(self._server.server_address[1])

    @property
    def endpoint_url(self) -> str:
        """Return the URL to pass as ``endpoint_url`` / ``AWS_ENDPOINT_URL``."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def control(self) -> EmulatorControl:
        """Return a client of the control API."""
        return EmulatorControl(self.endpoint_url, self.region)

    def env(self) -> dict[str, str]:
        """Return the environment variables that point boto3, aiobotocore and Airflow at the emulator."""
        connection = {
            "conn_type": "aws",
            "extra": {"region_name": self.region, "endpoint_url": self.endpoint_url},
        }
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": DUMMY_CREDENTIAL,
            "AWS_SECRET_ACCESS_KEY": DUMMY_CREDENTIAL,
            "AWS_DEFAULT_REGION": self.region,
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(connection),
        }

    def start(self) -> AwsEmulator:
        """Start serving in a daemon thread."""
        if self._server is not None:
            raise RuntimeError("the emulator is already running")
        self._server = make_server(
            self.host, self._requested_port, self.app, threaded=True, request_handler=EmulatorRequestHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"lyftlearn-aws-emulator-{self.port}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and stop the autopilot."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.app.close()
        self._server = None
        self._thread = None

    def __enter__(self) -> AwsEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()
