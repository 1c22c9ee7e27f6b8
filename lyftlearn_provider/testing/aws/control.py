"""Python client of the emulator's control API (standard library only, so any process can use it)."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any


class ControlError(Exception):
    """The control API refused an operation (``status``: 404 no such job, 409 wrong state, 400 bad input)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.message = message


class EmulatorControl:
    """Drive a running emulator at ``endpoint_url``: jobs, faults, recorded calls, events, autopilot.

    Job operations address ``region`` (the emulator's default region when None). Timestamps (``at``)
    are epoch seconds; pass them to make a test's timestamps deterministic.
    """

    def __init__(
        self, endpoint_url: str, region: str | None = None, timeout: float = 10.0, *, kind: str = "training"
    ) -> None:
        self.endpoint_url = endpoint_url.rstrip("/")
        self.region = region
        self.timeout = timeout
        #: Which jobs the job operations address: ``training`` (``/jobs``) or ``processing``.
        self.kind = kind
        self._jobs_path = "/processing-jobs" if kind == "processing" else "/jobs"
        self._status_field = "ProcessingJobStatus" if kind == "processing" else "TrainingJobStatus"
        # The emulator is local: never send its traffic through an HTTP proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _request(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
    ) -> Any:
        arguments = {key: value for key, value in (query or {}).items() if value is not None}
        url = f"{self.endpoint_url}/_lyftlearn{path}"
        if arguments:
            url += "?" + urllib.parse.urlencode(arguments)
        data = None if body is None else json.dumps({k: v for k, v in body.items() if v is not None}).encode()
        request = urllib.request.Request(
            url, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            try:
                message = json.loads(error.read()).get("error", error.reason)
            except ValueError:
                message = error.reason
            raise ControlError(error.code, str(message)) from None

    def _job_path(self, name: str, operation: str = "") -> str:
        return f"{self._jobs_path}/{urllib.parse.quote(name, safe='')}" + (
            f"/{operation}" if operation else ""
        )

    def processing(self) -> Any:
        """Return a client of the same emulator whose job operations address processing (batch) jobs."""
        return type(self)(self.endpoint_url, self.region, self.timeout, kind="processing")

    def health(self) -> dict[str, Any]:
        """Return the emulator's status and default region (raises if it does not answer)."""
        result: dict[str, Any] = self._request("GET", "/health")
        return result

    # Training jobs -----------------------------------------------------------------------------

    def job(self, name: str) -> dict[str, Any]:
        """Return the job's DescribeTrainingJob response (timestamps as epoch seconds)."""
        result: dict[str, Any] = self._request("GET", self._job_path(name), query={"region": self.region})
        return result

    def jobs(self) -> list[dict[str, Any]]:
        """Describe every job (of ``region`` when the client has one), oldest first."""
        result: list[dict[str, Any]] = self._request("GET", self._jobs_path, query={"region": self.region})[
            "jobs"
        ]
        return result

    def advance(
        self, name: str, secondary_status: str, message: str | None = None, at: float | None = None
    ) -> dict[str, Any]:
        """Move an InProgress job to ``secondary_status`` (Downloading, Training, Uploading, ...)."""
        body = {"secondary_status": secondary_status, "message": message, "at": at, "region": self.region}
        result: dict[str, Any] = self._request("POST", self._job_path(name, "advance"), body)
        return result

    def complete(
        self,
        name: str,
        metrics: Mapping[str, float] | None = None,
        model_artifact: str | None = None,
        at: float | None = None,
    ) -> dict[str, Any]:
        """Complete an InProgress job (artifact defaults to ``<S3OutputPath>/<name>/output/model.tar.gz``)."""
        body = {
            "metrics": None if metrics is None else dict(metrics),
            "model_artifact": model_artifact,
            "at": at,
            "region": self.region,
        }
        result: dict[str, Any] = self._request("POST", self._job_path(name, "complete"), body)
        return result

    def fail(self, name: str, reason: str, at: float | None = None) -> dict[str, Any]:
        """Fail an InProgress job with ``reason`` (e.g. ``"AlgorithmError: ..."``)."""
        body = {"reason": reason, "at": at, "region": self.region}
        result: dict[str, Any] = self._request("POST", self._job_path(name, "fail"), body)
        return result

    def stop(self, name: str) -> dict[str, Any]:
        """Stop a job as someone outside the DAG would (same effect as StopTrainingJob)."""
        result: dict[str, Any] = self._request("POST", self._job_path(name, "stop"), {"region": self.region})
        return result

    def seed(
        self,
        names: Sequence[str] | None = None,
        *,
        count: int = 0,
        prefix: str = "foreign",
        status: str = "Completed",
        at: float | None = None,
    ) -> int:
        """Add many jobs at once, as an account's history (no validation, events or autopilot).

        ``names``, or ``count`` names ``<prefix>-<index>``; ``status`` is a terminal status or
        ``InProgress``; created and last modified at ``at`` (now by default). Returns how many were added
        (existing names are left alone). For listings over a busy account: 10,000 jobs in a second.
        """
        chosen = list(names) if names is not None else [f"{prefix}-{index:06d}" for index in range(count)]
        body = {"names": chosen, "status": status, "at": at, "region": self.region}
        result: dict[str, Any] = self._request("POST", "/seed", body)
        return int(result["added"])

    def wait_for_status(
        self, name: str, *statuses: str, timeout: float = 10.0, interval: float = 0.02
    ) -> dict[str, Any]:
        """Poll until the job's TrainingJobStatus is one of ``statuses``; return its description."""
        deadline = time.monotonic() + timeout
        while True:
            described = self.job(name)
            if described[self._status_field] in statuses:
                return described
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"{name} is {described[self._status_field]} after {timeout} s, not {statuses}"
                )
            time.sleep(interval)

    # Calls, events, faults ---------------------------------------------------------------------

    def calls(
        self, service: str | None = None, action: str | None = None, job_name: str | None = None
    ) -> list[dict[str, Any]]:
        """Return recorded AWS requests (service, region, action, status, job_name, fault, t)."""
        query = {"service": service, "action": action, "job_name": job_name}
        result: list[dict[str, Any]] = self._request("GET", "/calls", query=query)["calls"]
        return result

    def reset_calls(self) -> None:
        """Forget the recorded requests."""
        self._request("DELETE", "/calls")

    def events(self) -> list[dict[str, Any]]:
        """Return the EventBridge events emitted so far, oldest first."""
        result: list[dict[str, Any]] = self._request("GET", "/events")["events"]
        return result

    def inject(
        self,
        kind: str,
        count: int = 1,
        service: str | None = None,
        action: str | None = None,
        after: bool = False,
    ) -> list[dict[str, Any]]:
        """Make the next ``count`` requests matching ``service``/``action`` fail; return the pending faults.

        Kinds: ``throttle``, ``server_error``, ``unavailable``, ``access_denied`` (the caller's policy
        lacks the action: ``AccessDeniedException`` naming it), ``reset`` (TCP RST, no response);
        ``after=True`` with ``reset`` processes the request first, then resets the connection.
        """
        body = {"kind": kind, "count": count, "service": service, "action": action, "after": after}
        result: list[dict[str, Any]] = self._request("POST", "/faults", body)["faults"]
        return result

    def faults(self) -> list[dict[str, Any]]:
        """Return the faults not used up yet."""
        result: list[dict[str, Any]] = self._request("GET", "/faults")["faults"]
        return result

    def clear_faults(self) -> None:
        """Drop every pending fault."""
        self._request("DELETE", "/faults")

    # Emulator settings -------------------------------------------------------------------------

    def autopilot(
        self,
        enabled: bool = True,
        phases: Mapping[str, float] | None = None,
        training_seconds: tuple[float, float] | None = None,
        seed: int | None = None,
        outcome: str = "Completed",
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Let a background clock move every InProgress job through ``phases`` and finish it with ``outcome``.

        ``phases`` maps secondary statuses to seconds (default Starting 2, Downloading 1, Training 3,
        Uploading 1); ``training_seconds=(lo, hi)`` draws each job's Training time from a generator
        seeded with ``seed``. Jobs that reuse a warm pool spend a tenth of the start-up time.
        """
        body = {
            "enabled": enabled,
            "phases": None if phases is None else dict(phases),
            "training_seconds": None if training_seconds is None else list(training_seconds),
            "seed": seed,
            "outcome": outcome,
            "metrics": None if metrics is None else dict(metrics),
        }
        self._request("POST", "/autopilot", body)

    def settings(self, publish_events: bool | None = None, stop_delay: float | None = None) -> dict[str, Any]:
        """Change (and return) whether state changes are published and how long Stopping lasts."""
        result: dict[str, Any] = self._request(
            "POST", "/settings", {"publish_events": publish_events, "stop_delay": stop_delay}
        )
        return result

    def reset(self) -> None:
        """Forget jobs, calls, events, faults and autopilot; restore settings; reset moto's backends."""
        self._request("POST", "/reset")
