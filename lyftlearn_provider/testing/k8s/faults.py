"""Faults injected at the HTTP boundary of the Kubernetes emulator, answered as a real API server would.

- ``throttle``: ``429 TooManyRequests`` with a ``Retry-After`` header, as API Priority and Fairness
  answers a client over its share;
- ``server_error``: ``500 InternalError``; ``unavailable``: ``503 ServiceUnavailable`` (an API server
  restarting behind its load balancer); ``gateway_timeout``: ``504`` from that load balancer;
- ``forbidden``: ``403 Forbidden``, as RBAC (which the emulator does not otherwise enforce) denies a
  caller without the permission;
- ``reset``: no answer at all -- the connection is closed with a TCP RST before the request is served,
  or, with ``after=True``, once it has been served: the write happened, but the client never hears so;
- ``delay``: the request is served normally, ``seconds`` late (a slow or overloaded API server).

A fault applies to the next ``count`` requests that match its method and path (None matches any),
then it is used up. Requests that meet a fault are still recorded in the emulator's request log.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

FAULT_KINDS = ("throttle", "server_error", "unavailable", "gateway_timeout", "forbidden", "reset", "delay")

#: (HTTP status, Status reason, Status message) of the faults answered with an error.
ERRORS: dict[str, tuple[int, str, str]] = {
    "throttle": (429, "TooManyRequests", "Too many requests, please try again later."),
    "server_error": (500, "InternalError", "Internal error occurred: injected by the emulator"),
    "unavailable": (503, "ServiceUnavailable", "the server is currently unable to handle the request"),
    "gateway_timeout": (504, "Timeout", "the server was unable to return a response in the time allotted"),
    "forbidden": (
        403,
        "Forbidden",
        'User "system:serviceaccount:airflow:triggerer" cannot perform this request (denied by the emulator)',
    ),
}


@dataclass
class Fault:
    """A pending fault: the next ``remaining`` matching requests meet ``kind``.

    :param kind: one of :data:`FAULT_KINDS`.
    :param remaining: how many more requests it applies to.
    :param method: the HTTP method it targets (``GET``, ``PUT``...); None for any.
    :param path: a substring of the request path (with its query) it targets; None for any.
    :param seconds: the delay of a ``delay`` fault.
    :param retry_after: the ``Retry-After`` seconds of a ``throttle`` fault.
    :param after: for ``reset``, serve the request first, then reset instead of answering.
    """

    kind: str
    remaining: int
    method: str | None = None
    path: str | None = None
    seconds: float = 0.0
    retry_after: int = 1
    after: bool = False

    def matches(self, method: str, path: str) -> bool:
        """Tell whether a request is one this fault targets."""
        return (self.method is None or self.method.upper() == method.upper()) and (
            self.path is None or self.path in path
        )


class FaultInjector:
    """The pending faults of one emulator; the first registered one that matches a request wins.

    Used from the emulator's event loop only (``EmulatedCluster`` reaches it through ``server.call``).
    """

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def inject(
        self,
        kind: str,
        count: int = 1,
        *,
        method: str | None = None,
        path: str | None = None,
        seconds: float = 0.0,
        retry_after: int = 1,
        after: bool = False,
    ) -> None:
        """Make the next ``count`` requests matching ``method`` and ``path`` meet fault ``kind``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; use one of {FAULT_KINDS}")
        if count < 1:
            raise ValueError("count must be at least 1")
        if seconds < 0 or retry_after < 0:
            raise ValueError("seconds and retry_after cannot be negative")
        if after and kind != "reset":
            raise ValueError("after=True only applies to 'reset'")
        self._faults.append(Fault(kind, count, method, path, seconds, retry_after, after))

    def take(self, method: str, path: str) -> Fault | None:
        """Consume one occurrence of the first fault matching this request, if any."""
        for fault in self._faults:
            if fault.matches(method, path):
                fault.remaining -= 1
                if fault.remaining == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def pending(self) -> list[dict[str, object]]:
        """Return the faults not yet used up."""
        return [asdict(fault) for fault in self._faults]

    def clear(self) -> None:
        """Drop every pending fault."""
        self._faults.clear()
