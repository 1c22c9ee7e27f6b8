"""Kubernetes API errors and the ``Status`` objects the API server answers them with.

Messages follow the real API server's wording, so client code that matches on them (or a person
reading a task log) sees what a real cluster would say.
"""

from __future__ import annotations

from typing import Any

from lyftlearn_provider.testing.k8s.meta import Obj


def status_body(
    code: int, reason: str, message: str, *, status: str = "Failure", details: Obj | None = None
) -> Obj:
    """Return a ``v1/Status`` object."""
    body: Obj = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": status,
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


class ApiError(Exception):
    """Fail an API request: the HTTP layer answers with ``code`` and a ``Status`` body."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message
        self.details = details or {}

    def to_status(self) -> Obj:
        """Return the ``Status`` object that describes this error."""
        return status_body(self.code, self.reason, self.message, details=self.details)


def _details(name: str, group: str, kind: str, **extra: Any) -> Obj:
    details: Obj = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    details.update(extra)
    return details


def not_found(qualified: str, name: str, group: str = "", plural: str = "") -> ApiError:
    """Return the 404 for a missing object, e.g. ``deployments.apps "web" not found``."""
    return ApiError(
        404, "NotFound", f'{qualified} "{name}" not found', _details(name, group, plural or qualified)
    )


def already_exists(qualified: str, name: str, group: str = "", plural: str = "") -> ApiError:
    """Return the 409 for creating an object whose name is taken."""
    return ApiError(
        409,
        "AlreadyExists",
        f'{qualified} "{name}" already exists',
        _details(name, group, plural or qualified),
    )


def conflict(qualified: str, name: str, group: str = "", plural: str = "", why: str = "") -> ApiError:
    """Return the 409 for a write based on a stale ``resourceVersion`` (optimistic concurrency)."""
    why = why or "the object has been modified; please apply your changes to the latest version and try again"
    return ApiError(
        409,
        "Conflict",
        f'Operation cannot be fulfilled on {qualified} "{name}": {why}',
        _details(name, group, plural or qualified),
    )


def invalid(kind_qualified: str, name: str, causes: list[tuple[str, str, str]], group: str = "") -> ApiError:
    """Return the 422 for an object that fails validation; ``causes`` are ``(field, reason, message)``."""
    summary = ", ".join(f"{field}: {message}" for field, _, message in causes)
    kind = kind_qualified.split(".", 1)[0]
    return ApiError(
        422,
        "Invalid",
        f'{kind_qualified} "{name}" is invalid: {summary}',
        _details(
            name,
            group,
            kind,
            causes=[
                {"field": field, "reason": reason, "message": message} for field, reason, message in causes
            ],
        ),
    )


def bad_request(message: str) -> ApiError:
    """Return a 400 (malformed request, unsupported parameter)."""
    return ApiError(400, "BadRequest", message)
