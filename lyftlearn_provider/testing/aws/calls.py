"""The record of every AWS request the emulator received."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Call:
    """One AWS request: who it was for, what it asked, and how it ended.

    ``status`` is None when the connection was reset instead of answered; ``fault`` names the
    injected fault, if any; ``t`` is ``time.monotonic()`` on arrival (comparable across processes on
    one machine, so a benchmark can line calls up with its own clock).
    """

    service: str | None
    region: str | None
    action: str
    status: int | None
    job_name: str | None
    fault: str | None
    t: float


class CallLog:
    """Thread-safe, bounded list of :class:`Call` (the oldest are dropped past ``max_calls``)."""

    def __init__(self, max_calls: int = 200_000) -> None:
        self._calls: deque[Call] = deque(maxlen=max_calls)
        self._lock = threading.Lock()

    def record(self, call: Call) -> None:
        """Append a call."""
        with self._lock:
            self._calls.append(call)

    def calls(
        self, service: str | None = None, action: str | None = None, job_name: str | None = None
    ) -> list[dict[str, Any]]:
        """Return the calls matching every given filter, in order of arrival."""
        with self._lock:
            selected = [
                call
                for call in self._calls
                if (service is None or call.service == service)
                and (action is None or call.action == action)
                and (job_name is None or call.job_name == job_name)
            ]
        return [asdict(call) for call in sorted(selected, key=lambda call: call.t)]

    def clear(self) -> None:
        """Forget every call."""
        with self._lock:
            self._calls.clear()
