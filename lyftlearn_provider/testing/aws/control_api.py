"""The emulator's control API: JSON over HTTP under ``/_lyftlearn/``.

It is HTTP (not Python calls) so that tests, the demo and the benchmarks drive the emulator the same
way whether it runs in a thread of their process or in a process of its own. Use it through
:class:`.control.EmulatorControl`. Status codes: 404 unknown job, 409 the job's state forbids the
change, 400 bad arguments.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from lyftlearn_provider.testing.aws.training_jobs import AwsError, JobNotFound, TrainingJobStore

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from lyftlearn_provider.testing.aws.app import EmulatorApp

Handler = Callable[[Request, dict[str, Any], Mapping[str, Any]], Any]


def _json(payload: Any, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json")


class ControlApi:
    """WSGI application serving the control operations of one :class:`.app.EmulatorApp`."""

    def __init__(self, app: EmulatorApp) -> None:
        self._app = app
        routes: list[tuple[str, str, Handler]] = [
            ("GET", "/health", self._health),
            ("POST", "/seed", self._seed),  # training jobs, many at once
            ("GET", "/calls", self._calls),
            ("DELETE", "/calls", self._reset_calls),
            ("GET", "/events", self._events),
            ("GET", "/faults", self._faults),
            ("POST", "/faults", self._inject),
            ("DELETE", "/faults", self._clear_faults),
            ("POST", "/autopilot", self._autopilot),
            ("POST", "/settings", self._settings),
            ("POST", "/reset", self._reset),
        ]
        self._handlers: dict[str, Handler] = {}
        rules = []
        # Training jobs under /jobs, processing (batch) jobs under /processing-jobs: the same operations.
        for base, kind in (("/jobs", "training"), ("/processing-jobs", "processing")):
            for verb, suffix, job_handler in (
                ("GET", "", self._jobs),
                ("GET", "/<name>", self._job),
                ("POST", "/<name>/advance", self._advance),
                ("POST", "/<name>/complete", self._complete),
                ("POST", "/<name>/fail", self._fail),
                ("POST", "/<name>/stop", self._stop),
            ):
                endpoint = f"{verb} {base}{suffix}"
                self._handlers[endpoint] = job_handler
                rules.append(
                    Rule(
                        f"/_lyftlearn{base}{suffix}",
                        endpoint=endpoint,
                        methods=[verb],
                        defaults={"kind": kind},
                    )
                )
        for method, path, handler in routes:
            endpoint = f"{method} {path}"
            self._handlers[endpoint] = handler
            rules.append(Rule(f"/_lyftlearn{path}", endpoint=endpoint, methods=[method]))
        self._routes = Map(rules)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """Serve one control request."""
        request = Request(environ)
        try:
            endpoint, arguments = self._routes.bind_to_environ(environ).match()
            body = request.get_json(silent=True) or {}
            response = _json(self._handlers[endpoint](request, body, arguments))
        except HTTPException as error:
            response = _json({"error": error.description}, error.code or 500)
        except JobNotFound:
            response = _json({"error": "no such job"}, 404)
        except AwsError as error:
            response = _json({"error": error.message}, 409)
        except (KeyError, TypeError, ValueError) as error:
            response = _json({"error": f"bad request: {error!r}"}, 400)
        return response(environ, start_response)

    def _region(self, request: Request, body: dict[str, Any]) -> str:
        return str(request.args.get("region") or body.get("region") or self._app.region)

    def _health(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        return {"status": "ok", "region": self._app.region}

    def _jobs(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        return {"jobs": self._store(arguments).jobs(request.args.get("region"))}

    def _store(self, arguments: Mapping[str, Any]) -> TrainingJobStore:
        return self._app.stores[arguments.get("kind", "training")]

    def _job(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        return self._store(arguments).describe(self._region(request, body), arguments["name"])

    def _advance(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        return self._store(arguments).advance(
            self._region(request, body),
            arguments["name"],
            body["secondary_status"],
            body.get("message"),
            body.get("at"),
        )

    def _complete(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        return self._store(arguments).complete(
            self._region(request, body),
            arguments["name"],
            metrics=body.get("metrics"),
            model_artifact=body.get("model_artifact"),
            at=body.get("at"),
        )

    def _fail(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        return self._store(arguments).fail(
            self._region(request, body), arguments["name"], body["reason"], body.get("at")
        )

    def _stop(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        region = self._region(request, body)
        self._store(arguments).stop(region, arguments["name"])
        return self._store(arguments).describe(region, arguments["name"])

    def _seed(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        names = [str(name) for name in body["names"]]
        added = self._app.store.seed(
            self._region(request, body), names, str(body.get("status", "Completed")), body.get("at")
        )
        return {"added": added}

    def _calls(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        return {
            "calls": self._app.calls.calls(
                service=request.args.get("service"),
                action=request.args.get("action"),
                job_name=request.args.get("job_name"),
            )
        }

    def _reset_calls(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        self._app.calls.clear()
        return {}

    def _events(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        return {"events": self._app.events.events()}

    def _faults(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        return {"faults": self._app.faults.pending()}

    def _inject(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        self._app.faults.inject(
            body["kind"],
            int(body.get("count", 1)),
            service=body.get("service"),
            action=body.get("action"),
            after=bool(body.get("after", False)),
        )
        return {"faults": self._app.faults.pending()}

    def _clear_faults(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        self._app.faults.clear()
        return {}

    def _autopilot(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        training_seconds = body.get("training_seconds")
        # One setting drives both kinds: a processing job's run phase is its "Training" phase.
        for autopilot in (self._app.autopilot, self._app.processing_autopilot):
            autopilot.configure(
                enabled=bool(body.get("enabled", True)),
                phases=body.get("phases"),
                training_seconds=None
                if training_seconds is None
                else (training_seconds[0], training_seconds[1]),
                seed=body.get("seed"),
                outcome=body.get("outcome", "Completed"),
                metrics=body.get("metrics"),
            )
        return {"enabled": self._app.autopilot.enabled}

    def _settings(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        if "publish_events" in body:
            self._app.events.enabled = bool(body["publish_events"])
        if "stop_delay" in body:
            stop_delay = float(body["stop_delay"])
            if stop_delay < 0:
                raise ValueError("stop_delay must not be negative")
            self._app.store.stop_delay = self._app.processing.stop_delay = stop_delay
        return {"publish_events": self._app.events.enabled, "stop_delay": self._app.store.stop_delay}

    def _reset(self, request: Request, body: dict[str, Any], arguments: Mapping[str, Any]) -> Any:
        self._app.reset()
        return {}
