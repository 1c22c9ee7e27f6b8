"""One aiobotocore client per triggerer process and AWS settings, shared by every polling trigger.

A client costs about 1.8 MiB and a few milliseconds of CPU to build (its service model, endpoint
resolution, credential chain and connection pool). One per trigger made a triggerer following 1,000
polling jobs hold 1.9 GiB; one per process and (connection, region, TLS verification, botocore
configuration) holds one. Calls from many triggers share its connection pool; the process's call
budget (:mod:`~lyftlearn_provider.tracking.budget`), not the pool, sets their pace.

The client is opened by its first user and closed when its last user leaves. It is replaced after
``max_age`` seconds (its users finish with the old one, new users get a new one), so that settings
read when it was made (an assumed role's session, a changed connection) do not live forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from lyftlearn_provider.tracking.budget import LoopLocal

if TYPE_CHECKING:
    from botocore.client import BaseClient

    from lyftlearn_provider.hooks.sagemaker import SageMakerJobHook

#: Seconds after which a shared client is replaced for new users.
DEFAULT_MAX_AGE_SECONDS = 3600.0

ClientKey = tuple[str | None, str | None, str, str]


@dataclasses.dataclass(eq=False)
class _Client:
    """One opened (or opening) client and who uses it."""

    opened: asyncio.Task[tuple[Any, BaseClient]]
    born: float
    users: int = 0


class SharedClients:
    """
    Hand out one aiobotocore client to every caller with the same settings, opened once.

    :param max_age: seconds after which new callers get a new client.
    :param clock: monotonic seconds; a fake one in tests.
    """

    def __init__(
        self, *, max_age: float = DEFAULT_MAX_AGE_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_age = max_age
        self._clock = clock
        self._current: _Client | None = None
        #: Clients opened so far (a test and the benchmark read it).
        self.opened = 0

    @contextlib.asynccontextmanager
    async def client(self, make_hook: Callable[[], SageMakerJobHook]) -> AsyncIterator[BaseClient]:
        """
        Lend the shared client for the duration of the ``async with`` block.

        ``make_hook`` builds the hook that opens the client when none is open. A failure to open it is
        raised to every caller that waited for it; the next caller tries again.
        """
        entry = self._current
        if entry is None or self._clock() - entry.born > self.max_age or _failed(entry):
            entry = self._current = _Client(
                asyncio.get_running_loop().create_task(_open(make_hook), name="lyftlearn-aws-client"),
                self._clock(),
            )
            self.opened += 1
        entry.users += 1
        try:
            # Shielded: a caller cancelled while the client opens does not cancel it for the others.
            _, client = await asyncio.shield(entry.opened)
            yield client
        finally:
            entry.users -= 1
            if entry.users == 0:
                if self._current is entry:
                    self._current = None
                await _close(entry)


def _failed(entry: _Client) -> bool:
    return entry.opened.done() and (entry.opened.cancelled() or entry.opened.exception() is not None)


async def _open(make_hook: Callable[[], SageMakerJobHook]) -> tuple[Any, BaseClient]:
    context = await make_hook().get_async_conn()
    client = await context.__aenter__()
    return context, client


async def _close(entry: _Client) -> None:
    if not entry.opened.done():
        # Still opening (its only users were cancelled): close it once open; cancelled halfway it would
        # leave aiobotocore's client coroutine never awaited.
        entry.opened.add_done_callback(lambda _: _close_later(entry))
        return
    if _failed(entry):
        return
    context, _ = entry.opened.result()
    with contextlib.suppress(Exception):
        await context.__aexit__(None, None, None)


#: Closings started from a callback, kept referenced until they end.
_BACKGROUND: set[asyncio.Task[None]] = set()


def _close_later(entry: _Client) -> None:
    task = asyncio.get_running_loop().create_task(_close(entry), name="lyftlearn-aws-client-close")
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


_CLIENTS: LoopLocal[ClientKey, SharedClients] = LoopLocal()


def shared_clients(
    aws_conn_id: str | None,
    region_name: str | None,
    verify: bool | str | None = None,
    botocore_config: dict[str, Any] | None = None,
) -> SharedClients:
    """Return this process's shared clients for one set of AWS settings, creating them on the running loop."""
    key = (
        aws_conn_id,
        region_name,
        json.dumps(verify),
        json.dumps(botocore_config or {}, sort_keys=True, default=str),
    )
    return _CLIENTS.get(key, SharedClients)
