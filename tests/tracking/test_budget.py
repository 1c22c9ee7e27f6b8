"""The process's AWS call budget: a token bucket with a throttling penalty, on a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.tracking import budget as budget_module
from lyftlearn_provider.tracking.budget import MIN_RATE_FRACTION, TokenBucket, process_budget


class FakeClock:
    """Monotonic seconds that only move when someone sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def bucket(clock: FakeClock, rate: float = 10.0, burst: float = 5.0, **kwargs) -> TokenBucket:
    return TokenBucket(rate, burst, clock=clock, sleep=clock.sleep, **kwargs)


async def test_a_full_bucket_lets_a_burst_through_then_paces_calls_at_the_rate():
    clock = FakeClock()
    tokens = bucket(clock, rate=10.0, burst=5.0)
    for _ in range(5):
        await asyncio.wait_for(tokens.acquire(), 5)
    assert clock.now == 1000.0 and clock.sleeps == []

    for _ in range(20):
        await asyncio.wait_for(tokens.acquire(), 5)
    # 20 calls beyond the burst at 10 a second.
    assert clock.now - 1000.0 == pytest.approx(2.0)
    assert all(pause == pytest.approx(0.1) for pause in clock.sleeps)


async def test_tokens_refill_while_idle_but_never_beyond_the_burst():
    clock = FakeClock()
    tokens = bucket(clock, rate=10.0, burst=5.0)
    for _ in range(5):
        await tokens.acquire()
    assert tokens.tokens == pytest.approx(0.0)
    clock.now += 0.25
    assert tokens.tokens == pytest.approx(2.5)
    clock.now += 3600
    assert tokens.tokens == pytest.approx(5.0)


async def test_concurrent_callers_share_the_rate():
    clock = FakeClock()
    tokens = bucket(clock, rate=20.0, burst=1.0)

    async def caller() -> float:
        await tokens.acquire()
        return clock.now

    times = await asyncio.wait_for(asyncio.gather(*(caller() for _ in range(41))), 5)
    # One call from the burst, then 40 at 20 a second: no two callers shared a token.
    assert max(times) - 1000.0 == pytest.approx(2.0)
    assert sorted(times) == times


async def test_penalize_halves_the_rate_empties_the_bucket_and_floors():
    clock = FakeClock()
    tokens = bucket(clock, rate=16.0, burst=10.0)
    tokens.penalize()
    assert tokens.rate == pytest.approx(8.0)
    assert tokens.tokens == pytest.approx(0.0)
    # The next call waits for a token at the lower rate.
    await asyncio.wait_for(tokens.acquire(), 5)
    assert clock.sleeps == [pytest.approx(1 / 8)]

    for _ in range(10):
        tokens.penalize()
    assert tokens.rate == pytest.approx(16.0 * MIN_RATE_FRACTION)


async def test_a_penalized_rate_is_held_then_recovers_gradually_to_the_configured_rate():
    clock = FakeClock()
    tokens = bucket(clock, rate=10.0, burst=10.0, hold_seconds=5.0, recovery_seconds=20.0)
    tokens.penalize()
    tokens.penalize()
    assert tokens.rate == pytest.approx(2.5)

    clock.now += 4.9
    assert tokens.rate == pytest.approx(2.5)
    # After the hold, it climbs 10 / 20 = 0.5 calls a second per second.
    clock.now += 0.1 + 4.0
    assert tokens.rate == pytest.approx(4.5)
    clock.now += 4.0
    assert tokens.rate == pytest.approx(6.5)
    clock.now += 60.0
    assert tokens.rate == pytest.approx(10.0)

    # A new throttle starts the hold again from the current rate.
    tokens.penalize()
    assert tokens.rate == pytest.approx(5.0)
    clock.now += 2.0
    assert tokens.rate == pytest.approx(5.0)


def test_rejects_a_budget_that_lets_nothing_through():
    with pytest.raises(ValueError, match="rate > 0 and burst >= 1"):
        TokenBucket(0, 5)
    with pytest.raises(ValueError, match="rate > 0 and burst >= 1") as excinfo:
        TokenBucket(5, 0.5)
    # The provider's configuration error (a ValueError too), naming the arguments.
    assert isinstance(excinfo.value, InvalidSpecError)
    assert excinfo.value.field == "rate, burst"


def test_one_budget_per_connection_region_and_event_loop():
    async def budgets() -> tuple[TokenBucket, TokenBucket, TokenBucket]:
        return (
            process_budget("aws_default", "us-east-1"),
            process_budget("aws_default", "us-east-1"),
            process_budget("aws_default", "eu-west-1"),
        )

    first_loop = asyncio.new_event_loop()
    try:
        same, again, other_region = first_loop.run_until_complete(budgets())
    finally:
        first_loop.close()
    assert same is again
    assert other_region is not same
    assert (same.base_rate, same.burst) == (budget_module.DEFAULT_RATE, budget_module.DEFAULT_BURST)

    # A later event loop (the triggerer restarted its loop) gets its own, usable, bucket.
    second_loop = asyncio.new_event_loop()
    try:
        later, _, _ = second_loop.run_until_complete(budgets())
        second_loop.run_until_complete(asyncio.wait_for(later.acquire(), 5))
    finally:
        second_loop.close()
    assert later is not same


def test_budget_comes_from_the_lyftlearn_config_section(monkeypatch):
    monkeypatch.setenv("AIRFLOW__LYFTLEARN__API_CALLS_PER_SECOND", "2.5")
    monkeypatch.setenv("AIRFLOW__LYFTLEARN__API_BURST", "4")

    async def configured() -> TokenBucket:
        return process_budget("aws_configured", None)

    bucket = asyncio.run(configured())
    assert (bucket.base_rate, bucket.burst) == (2.5, 4.0)

    monkeypatch.setenv("AIRFLOW__LYFTLEARN__API_CALLS_PER_SECOND", "0")
    with pytest.raises(
        ValueError, match=r"api_calls_per_second=0.0 .* set api_calls_per_second > 0"
    ) as excinfo:
        budget_module.configured_budget()
    assert isinstance(excinfo.value, InvalidSpecError)
    assert excinfo.value.field == "[lyftlearn] api_calls_per_second, api_burst"
