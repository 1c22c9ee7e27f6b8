"""How the emulated controllers run: a work queue on the event loop, and the API they write through.

Changes to objects queue a sync of the object concerned (``WorkQueue.add``, de-duplicated per key);
a sync writes only what changed, so the system settles instead of looping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable
from typing import Protocol

from lyftlearn_provider.testing.k8s.meta import Obj
from lyftlearn_provider.testing.k8s.resources import ResourceType

log = logging.getLogger(__name__)


class ClusterApi(Protocol):
    """Offer the API-server operations controllers use (so admission and garbage collection apply)."""

    def create(self, resource: ResourceType, namespace: str | None, body: Obj) -> Obj:
        """Create an object."""
        ...

    def delete(self, resource: ResourceType, namespace: str | None, name: str) -> Obj:
        """Delete an object and its dependents."""
        ...


class WorkQueue:
    """Run controller syncs on the event loop: once per key however often asked, optionally later."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: dict[Hashable, tuple[float, asyncio.TimerHandle]] = {}

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run work on ``loop`` from now on (until then, requests are dropped)."""
        self._loop = loop

    def add(self, key: Hashable, work: Callable[[], None], delay: float = 0.0) -> None:
        """Run ``work`` after ``delay`` seconds, unless a run for ``key`` is already due by then."""
        if self._loop is None:
            return
        due = self._loop.time() + delay
        pending = self._pending.get(key)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()
        self._pending[key] = (due, self._loop.call_at(due, self._run, key, work))

    def _run(self, key: Hashable, work: Callable[[], None]) -> None:
        self._pending.pop(key, None)
        try:
            work()
        except Exception:
            log.exception("emulated controller failed to sync %s", key)

    def clear(self) -> None:
        """Cancel all pending work."""
        for _, handle in self._pending.values():
            handle.cancel()
        self._pending.clear()


def owner_name(obj: Obj, kind: str) -> str | None:
    """Return the name of the object's controlling owner of ``kind``, if it has one."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller") and ref.get("kind") == kind:
            return str(ref["name"])
    return None
