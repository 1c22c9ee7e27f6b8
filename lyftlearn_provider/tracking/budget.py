"""One AWS call budget per process: a token bucket per (connection, region) that yields to throttling."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from lyftlearn_provider.exceptions import InvalidSpecError

#: Calls a second a budget allows: well below SageMaker's (not adjustable) control-plane limits, so
#: operators and other triggers sharing the account still get through.
DEFAULT_RATE = 10.0
#: Calls a budget allows in a burst after a quiet spell.
DEFAULT_BURST = 20.0
#: A throttled budget never drops below this fraction of its rate.
MIN_RATE_FRACTION = 1 / 8
#: Seconds a penalized rate is held before it starts to recover.
DEFAULT_HOLD_SECONDS = 5.0
#: Seconds a rate takes to climb back from nothing to its configured value (linearly).
DEFAULT_RECOVERY_SECONDS = 30.0

BudgetKey = tuple[str | None, str | None]
_ROUNDING = 1e-9


class TokenBucket:
    """
    Let calls through at ``rate`` a second on average and ``burst`` at once; slow down when AWS throttles.

    ``acquire()`` waits for a token; callers queue in order (a lock held while waiting), so a crowd of
    callers cannot overtake each other or overshoot the rate. ``penalize()`` is what to call when AWS
    answers with throttling: it halves the current rate (not below ``MIN_RATE_FRACTION`` of the
    configured one), empties the bucket so the next call waits, holds the lower rate for
    ``hold_seconds``, then lets it climb back linearly over ``recovery_seconds``.

    :param rate: calls a second when AWS is not throttling.
    :param burst: most tokens the bucket holds.
    :param clock: monotonic seconds; a fake one in tests.
    :param sleep: async sleep matching ``clock``.
    """

    def __init__(
        self,
        rate: float = DEFAULT_RATE,
        burst: float = DEFAULT_BURST,
        *,
        hold_seconds: float = DEFAULT_HOLD_SECONDS,
        recovery_seconds: float = DEFAULT_RECOVERY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise InvalidSpecError(
                "rate, burst",
                f"rate={rate}, burst={burst} let no call through",
                "A token bucket needs rate > 0 and burst >= 1.",
            )
        self.base_rate = rate
        self.burst = burst
        self.hold_seconds = hold_seconds
        self.recovery_seconds = recovery_seconds
        self._clock = clock
        self._sleep = sleep
        self._rate = rate
        self._tokens = burst
        self._updated_at = clock()
        self._penalized_at: float | None = None
        self._lock = asyncio.Lock()

    @property
    def rate(self) -> float:
        """Return the calls a second allowed now (lower than configured while recovering from throttling)."""
        self._refill()
        return self._rate

    @property
    def tokens(self) -> float:
        """Return the calls that could go out right now without waiting."""
        self._refill()
        return self._tokens

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._updated_at)
        self._tokens = min(self.burst, self._tokens + elapsed * self._rate)
        if self._penalized_at is not None:
            recovering_since = max(self._updated_at, self._penalized_at + self.hold_seconds)
            recovering = max(0.0, now - recovering_since)
            self._rate = min(self.base_rate, self._rate + self.base_rate * recovering / self.recovery_seconds)
            if self._rate >= self.base_rate:
                self._penalized_at = None
        self._updated_at = now

    async def acquire(self) -> None:
        """Wait until the budget allows one more call, and take it."""
        async with self._lock:
            self._refill()
            # The tolerance absorbs rounding: a wait of exactly (1 - tokens) / rate may refill 0.999… tokens.
            while self._tokens < 1 - _ROUNDING:
                await self._sleep((1 - self._tokens) / self._rate)
                self._refill()
            self._tokens = max(0.0, self._tokens - 1)

    def penalize(self) -> None:
        """Slow down after a throttling answer: halve the rate for a while and make the next call wait."""
        self._refill()
        self._rate = max(self.base_rate * MIN_RATE_FRACTION, self._rate / 2)
        self._tokens = min(self._tokens, 0.0)
        self._penalized_at = self._clock()


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LoopLocal(Generic[K, V]):
    """
    One ``V`` per key and running event loop, made on first use: the process-wide objects of tracking.

    Keyed by event loop too: their locks, tasks and futures belong to one loop, and the triggerer may
    run several loops over its life; weak keys let a closed loop's objects go with it.
    """

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[K, V]] = (
            weakref.WeakKeyDictionary()
        )

    def get(self, key: K, make: Callable[[], V]) -> V:
        """Return the running loop's object for ``key``, calling ``make()`` the first time."""
        objects = self._by_loop.setdefault(asyncio.get_running_loop(), {})
        if key not in objects:
            objects[key] = make()
        return objects[key]


_BUDGETS: LoopLocal[BudgetKey, TokenBucket] = LoopLocal()


def configured_budget() -> tuple[float, float]:
    """
    Return ``[lyftlearn] api_calls_per_second`` and ``api_burst``, the defaults when unset.

    Values that cannot make a budget raise :class:`~lyftlearn_provider.exceptions.InvalidSpecError`.
    """
    from airflow.configuration import conf

    rate = conf.getfloat("lyftlearn", "api_calls_per_second", fallback=DEFAULT_RATE)
    burst = conf.getfloat("lyftlearn", "api_burst", fallback=DEFAULT_BURST)
    if rate <= 0 or burst < 1:
        raise InvalidSpecError(
            "[lyftlearn] api_calls_per_second, api_burst",
            f"api_calls_per_second={rate} / api_burst={burst} cannot make a budget",
            "In the triggerer's configuration, set api_calls_per_second > 0 and api_burst >= 1.",
        )
    return rate, burst


def process_budget(aws_conn_id: str | None, region_name: str | None) -> TokenBucket:
    """
    Return this process's budget for one AWS connection and region, creating it on the running loop.

    Its rate and burst come from ``[lyftlearn] api_calls_per_second`` and ``api_burst`` when created.
    """
    return _BUDGETS.get((aws_conn_id, region_name), lambda: TokenBucket(*configured_budget()))
