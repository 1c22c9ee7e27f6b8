"""The object store: objects by resource, namespace and name, numbered changes, and watch history.

It plays etcd's part: every write gets the next ``resourceVersion``, and the most recent changes are
kept so a watch can resume from a ``resourceVersion`` (or be told ``410 Gone`` when it is too old).
It knows nothing of API semantics (validation, defaults, compare-and-swap): that is the API server's
job (``apiserver.py``). Not thread-safe: use it from the emulator's event loop only.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from lyftlearn_provider.testing.k8s.meta import Obj
from lyftlearn_provider.testing.k8s.resources import ResourceType

DEFAULT_HISTORY = 5000


@dataclass(frozen=True)
class WatchEvent:
    """Record one change to one object: ``ADDED``, ``MODIFIED`` or ``DELETED``.

    ``previous`` is the object before a ``MODIFIED`` change, so a filtered watch can tell an object
    that stopped matching its selector (sent as ``DELETED``) from one that started to (``ADDED``).
    """

    resource_version: int
    resource: ResourceType
    type: str
    object: Obj
    previous: Obj | None = None


Listener = Callable[[WatchEvent], None]


class ChangeSignal:
    """Wake every coroutine waiting for the next change (watches and log followers wait on it)."""

    def __init__(self) -> None:
        self._event: asyncio.Event | None = None

    def current(self) -> asyncio.Event:
        """Return the event that the next change sets; take it *before* looking at the store."""
        if self._event is None:
            self._event = asyncio.Event()
        return self._event

    def fire(self, _: WatchEvent | None = None) -> None:
        """Wake the waiters and start a new generation of waiting."""
        if self._event is not None:
            self._event.set()
            self._event = None


class ObjectStore:
    """Keep objects and the history of their changes (see the module docstring)."""

    def __init__(self, history_size: int = DEFAULT_HISTORY) -> None:
        self._objects: dict[tuple[ResourceType, str | None, str], Obj] = {}
        self._history: deque[WatchEvent] = deque(maxlen=history_size)
        self._resource_version = 0
        self._listeners: list[Listener] = []

    @property
    def resource_version(self) -> int:
        """Return the ``resourceVersion`` of the latest change (what a list reports)."""
        return self._resource_version

    @property
    def oldest_watchable(self) -> int:
        """Return the oldest ``resourceVersion`` a watch can still resume from."""
        if self._history and len(self._history) == self._history.maxlen:
            return self._history[0].resource_version - 1
        return 0

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener`` synchronously after every change."""
        self._listeners.append(listener)

    @staticmethod
    def _key(
        resource: ResourceType, namespace: str | None, name: str
    ) -> tuple[ResourceType, str | None, str]:
        return resource, namespace if resource.namespaced else None, name

    def get(self, resource: ResourceType, namespace: str | None, name: str) -> Obj | None:
        """Return a copy of an object, or ``None``."""
        obj = self._objects.get(self._key(resource, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, resource: ResourceType, namespace: str | None = None) -> list[Obj]:
        """Return copies of a resource's objects (in one namespace, or all), ordered by namespace and name."""
        keys = sorted(
            (k for k in self._objects if k[0] == resource and (namespace is None or k[1] == namespace)),
            key=lambda k: (k[1] or "", k[2]),
        )
        return [copy.deepcopy(self._objects[k]) for k in keys]

    def put(self, resource: ResourceType, obj: Obj) -> Obj:
        """Store an object (adding or replacing it), give it the next ``resourceVersion``; return a copy."""
        md = obj["metadata"]
        key = self._key(resource, md.get("namespace"), md["name"])
        previous = self._objects.get(key)
        self._resource_version += 1
        stored = copy.deepcopy(obj)
        stored["apiVersion"] = resource.api_version
        stored["kind"] = resource.kind
        stored["metadata"]["resourceVersion"] = str(self._resource_version)
        self._objects[key] = stored
        self._record(
            WatchEvent(
                self._resource_version, resource, "MODIFIED" if previous else "ADDED", stored, previous
            )
        )
        return copy.deepcopy(stored)

    def remove(self, resource: ResourceType, namespace: str | None, name: str) -> Obj | None:
        """Delete an object; return its last state (with a new ``resourceVersion``), or ``None``."""
        last = self._objects.pop(self._key(resource, namespace, name), None)
        if last is None:
            return None
        self._resource_version += 1
        # The recorded ADDED/MODIFIED events share the stored dict: never change it in place.
        stored = copy.deepcopy(last)
        stored["metadata"]["resourceVersion"] = str(self._resource_version)
        self._record(WatchEvent(self._resource_version, resource, "DELETED", stored))
        return copy.deepcopy(stored)

    def changes_since(self, resource_version: int) -> builtins.list[WatchEvent]:
        """Return the recorded changes after ``resource_version``, oldest first."""
        newer: list[WatchEvent] = []
        for event in reversed(self._history):
            if event.resource_version <= resource_version:
                break
            newer.append(event)
        newer.reverse()
        return newer

    def clear(self) -> None:
        """Forget every object and the history; ``resourceVersion`` keeps counting up."""
        self._objects.clear()
        self._history.clear()

    def _record(self, event: WatchEvent) -> None:
        self._history.append(event)
        for listener in self._listeners:
            listener(event)
