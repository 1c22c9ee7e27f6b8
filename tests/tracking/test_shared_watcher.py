"""The shared source: one watcher per process follows many training jobs, against the emulator over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import statistics
import time
from typing import Any

import boto3
import pytest

from lyftlearn_provider.rendering.sagemaker import render_training_job
from lyftlearn_provider.status import JobEvent, to_datetime
from lyftlearn_provider.tracking import budget as budget_module
from lyftlearn_provider.tracking.outcomes import UNEXPECTED_FAILURES_TOLERATED, TrackerHealth
from lyftlearn_provider.tracking.watcher import SharedJobWatcher, shared_watcher
from lyftlearn_provider.triggers.training import TrainingJobTrigger
from tests.helpers import make_spec

JOBS = 200
INTERVAL = 0.1


def create_jobs(names: list[str]) -> None:
    sagemaker = boto3.client("sagemaker")
    for name in names:
        rendering = render_training_job(make_spec(), job_name=name, max_runtime_seconds=3600)
        sagemaker.create_training_job(**rendering.request)


def terminal(name: str, status: str, reason: str | None = None) -> dict[str, Any]:
    """Return the payload of a terminal event (``failure_reason`` only when the job has one)."""
    return JobEvent.terminal(name, status, reason).to_payload()


def shared_trigger(name: str, **kwargs: Any) -> TrainingJobTrigger:
    kwargs.setdefault("poll_interval", INTERVAL)
    return TrainingJobTrigger(name, source="shared", **kwargs)


async def events_of(trigger: TrainingJobTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


def watcher_tasks() -> list[asyncio.Task]:
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith("lyftlearn-training-watcher-") and not task.done()
    ]


async def wait_for_watcher_to_stop(timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while watcher_tasks():
        assert time.monotonic() < deadline, "the watcher task did not end"
        await asyncio.sleep(0.02)


async def wait_until(condition, timeout: float = 10.0, message: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, f"timed out waiting for {message}"
        await asyncio.sleep(0.02)


async def test_two_hundred_jobs_one_watcher_true_status_each_and_few_calls(aws):
    names = [f"fraud-train-{index:03d}" for index in range(JOBS)]
    await asyncio.to_thread(create_jobs, names)
    await asyncio.to_thread(aws.control.reset_calls)

    # Wall-clock seconds throughout: the emulator stamps TrainingEndTime with epoch seconds.
    started = time.time()
    ended_at: dict[str, float] = {}

    async def follow(name: str) -> list[dict[str, Any]]:
        events = await events_of(shared_trigger(name))
        ended_at[name] = time.time()
        return events

    runs = [asyncio.ensure_future(follow(name)) for name in names]
    # Jobs end at random times from now on: a quarter of them fail, at random times, then the autopilot
    # ends the others. Not both at once: 50 control calls through the default thread pool (six threads
    # on two cores) queue behind each other on a loaded machine, and the autopilot would complete a
    # doomed job before its failure came.
    doomed = random.Random(7).sample(names, JOBS // 4)

    async def fail_later(name: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await asyncio.to_thread(aws.control.fail, name, f"AlgorithmError: {name} ran out of memory")

    rng = random.Random(11)
    await asyncio.gather(*(fail_later(name, rng.uniform(0.0, 0.5)) for name in doomed))
    await asyncio.to_thread(
        aws.control.autopilot, phases={"Starting": 0.05, "Training": 0.1}, training_seconds=(1.0, 3.0), seed=7
    )

    results = await asyncio.wait_for(asyncio.gather(*runs), 45)
    elapsed = time.time() - started

    truth = {job["TrainingJobName"]: job for job in await asyncio.to_thread(aws.control.jobs)}
    statuses = {truth[name]["TrainingJobStatus"] for name in names}
    assert statuses == {"Completed", "Failed"}
    for name, events in zip(names, results, strict=True):
        job = truth[name]
        assert events == [terminal(name, job["TrainingJobStatus"], job.get("FailureReason"))], name

    calls = await asyncio.to_thread(aws.control.calls, service="sagemaker")
    lists = [call for call in calls if call["action"] == "ListTrainingJobs"]
    describes = [call for call in calls if call["action"] == "DescribeTrainingJob"]
    # What one Describe per job per poll interval would have cost over the same waits.
    polling_equivalent = sum((ended_at[name] - started) / INTERVAL for name in names)
    latencies = sorted(
        ended_at[name] - to_datetime(truth[name]["TrainingEndTime"]).timestamp() for name in names
    )
    print(
        f"\n{JOBS} shared triggers, {elapsed:.1f}s: {len(calls)} SageMaker calls "
        f"({len(lists)} ListTrainingJobs, {len(describes)} DescribeTrainingJob) vs "
        f"{polling_equivalent:.0f} for one Describe per job per {INTERVAL}s; "
        f"calls per job {len(calls) / JOBS:.2f}; notice latency p50 {statistics.median(latencies):.2f}s, "
        f"max {latencies[-1]:.2f}s"
    )
    assert len(calls) == len(lists) + len(describes)
    # One Describe per failed job (its FailureReason is not in the summary), none for the others.
    assert sorted(call["job_name"] for call in describes) == sorted(doomed)
    assert len(calls) < polling_equivalent / 20
    assert len(calls) < 3 * JOBS
    # The watcher stops by itself once every job has ended.
    await asyncio.wait_for(wait_for_watcher_to_stop(), 10)


async def test_jobs_that_ended_before_their_trigger_started_are_reported_at_once(aws):
    recent_failure, recent_success, old_failure = "fraud-train-recent", "fraud-train-done", "fraud-train-old"
    create_jobs([recent_failure, recent_success, old_failure])
    aws.control.fail(recent_failure, "AlgorithmError: bad data")
    aws.control.complete(recent_success)
    # Ended an hour ago: far older than any listing window.
    aws.control.fail(old_failure, "ClientError: no data", at=time.time() - 3600)
    aws.control.reset_calls()

    started = time.monotonic()
    names = [recent_failure, recent_success, old_failure, "fraud-train-never-created"]
    # A poll interval of 30 s: "at once" means without waiting for it.
    triggers = [shared_trigger(name, poll_interval=30.0) for name in names]
    results = await asyncio.wait_for(asyncio.gather(*(events_of(trigger) for trigger in triggers)), 10)
    assert time.monotonic() - started < 5

    assert results[:3] == [
        [terminal(recent_failure, "Failed", "AlgorithmError: bad data")],
        [terminal(recent_success, "Completed")],
        [terminal(old_failure, "Failed", "ClientError: no data")],
    ]
    assert results[3] == [
        {
            "status": "error",
            "job_name": "fraud-train-never-created",
            "message": "training job fraud-train-never-created does not exist",
            "error_kind": "job",
        }
    ]
    # The listing was enough for the recently completed job; the others needed one Describe each.
    described = [call["job_name"] for call in aws.control.calls(action="DescribeTrainingJob")]
    assert sorted(described) == sorted([recent_failure, old_failure, "fraud-train-never-created"])
    assert len(aws.control.calls(action="ListTrainingJobs")) <= 2


async def test_a_throttling_storm_on_the_listing_delays_but_does_not_fail(aws, monkeypatch):
    # A faster budget than the default keeps the storm short; the penalty halves it all the same.
    monkeypatch.setattr(budget_module, "DEFAULT_RATE", 100.0)
    name = "fraud-train-storm"
    create_jobs([name])
    aws.control.advance(name, "Training")
    aws.control.inject("throttle", 20, action="ListTrainingJobs")

    run = asyncio.ensure_future(events_of(shared_trigger(name, poll_interval=0.02)))
    await wait_until(lambda: sum(fault["remaining"] for fault in aws.control.faults()) <= 10, 20, "the storm")
    assert not run.done()
    budget = budget_module.process_budget("aws_default", None)
    assert budget.rate < budget.base_rate
    await asyncio.to_thread(aws.control.complete, name)
    events = await asyncio.wait_for(run, 30)

    assert events == [terminal(name, "Completed")]
    lists = aws.control.calls(action="ListTrainingJobs")
    assert [call["fault"] for call in lists[:20]] == ["throttle"] * 20
    assert all(call["status"] == 200 for call in lists[20:])
    # The job was running and listed: the storm never turned into a Describe per job.
    assert aws.control.calls(action="DescribeTrainingJob") == []


async def test_cancelled_triggers_unsubscribe_and_the_last_one_out_stops_the_watcher(aws):
    first, second = "fraud-train-a", "fraud-train-b"
    create_jobs([first, second])
    watcher = shared_watcher("aws_default", None)
    runs = {
        name: asyncio.ensure_future(events_of(shared_trigger(name, poll_interval=0.05)))
        for name in (first, second)
    }
    await wait_until(lambda: len(aws.control.calls(action="ListTrainingJobs")) >= 3, message="a few passes")
    assert watcher.running and watcher.job_names == {first, second}
    assert len(watcher_tasks()) == 1

    runs[first].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(runs[first], 5)
    assert watcher.running and watcher.job_names == {second}

    runs[second].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(runs[second], 5)
    assert not watcher.running and watcher.job_names == frozenset()
    await asyncio.wait_for(wait_for_watcher_to_stop(), 10)
    listed = len(aws.control.calls(action="ListTrainingJobs"))
    await asyncio.sleep(0.3)
    assert len(aws.control.calls(action="ListTrainingJobs")) == listed

    # The next subscriber starts it again.
    again = asyncio.ensure_future(events_of(shared_trigger(second, poll_interval=0.05)))
    await wait_until(lambda: len(aws.control.calls(action="ListTrainingJobs")) > listed, message="a restart")
    assert watcher.running
    await asyncio.to_thread(aws.control.complete, second)
    events = await asyncio.wait_for(again, 10)
    assert [(event["status"], event["job_status"]) for event in events] == [("terminal", "Completed")]
    await asyncio.wait_for(wait_for_watcher_to_stop(), 10)


async def test_deadline_times_out_a_shared_trigger_and_releases_the_watcher(aws):
    name = "fraud-train-slow"
    create_jobs([name])
    started = time.monotonic()
    events = await asyncio.wait_for(events_of(shared_trigger(name, deadline=time.time() + 0.5)), 10)
    assert events == [{"status": "timeout", "job_name": name, "message": "the task's deadline passed"}]
    assert 0.45 <= time.monotonic() - started < 3
    assert not shared_watcher("aws_default", None).running
    assert aws.control.job(name)["TrainingJobStatus"] == "InProgress"


@pytest.mark.parametrize("interval", [0.05, 30.0])
async def test_the_watcher_passes_at_the_smallest_interval_any_subscriber_asked_for(aws, interval):
    slow, fast = "fraud-train-slow", "fraud-train-fast"
    create_jobs([slow, fast])
    runs = [
        asyncio.ensure_future(events_of(shared_trigger(slow, poll_interval=30.0))),
        asyncio.ensure_future(events_of(shared_trigger(fast, poll_interval=interval))),
    ]
    # A second of watching from the first pass on, however long the triggers took to start.
    await wait_until(lambda: aws.control.calls(action="ListTrainingJobs"), message="the first pass")
    await asyncio.sleep(1.0)
    for run in runs:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(run, 5)
    passes = len(aws.control.calls(action="ListTrainingJobs"))
    if interval < 1:
        assert passes >= 5
    else:
        # The first passes that confirm the new subscribers, then nothing for 30 s.
        assert passes <= 3


# ---------------------------------------------------------------------------- a watcher that cannot work
WATCHER_LOGGER = "lyftlearn_provider.tracking.watcher"
DENIED_FOREVER = 10**6


def watcher_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == WATCHER_LOGGER and r.levelno >= logging.WARNING]


async def end_jobs(aws, names: list[str]) -> None:
    ways = ("complete", "fail", "stop")
    for index, name in enumerate(names):
        way = ways[index % 3]
        if way == "complete":
            await asyncio.to_thread(aws.control.complete, name)
        elif way == "fail":
            await asyncio.to_thread(aws.control.fail, name, f"AlgorithmError: {name} diverged")
        else:
            await asyncio.to_thread(aws.control.stop, name)


def true_terminal(aws, name: str) -> dict[str, Any]:
    job = aws.control.wait_for_status(name, "Completed", "Failed", "Stopped")
    return terminal(name, job["TrainingJobStatus"], job.get("FailureReason"))


async def test_listing_denied_every_trigger_ends_in_its_true_state_by_polling_with_one_warning(aws, caplog):
    caplog.set_level(logging.INFO, logger=WATCHER_LOGGER)
    names = [f"fraud-train-denied-{index}" for index in range(6)]
    create_jobs(names)
    aws.control.inject("access_denied", DENIED_FOREVER, action="ListTrainingJobs")
    runs = [asyncio.ensure_future(events_of(shared_trigger(name, poll_interval=0.05))) for name in names]
    # Every trigger polls its own job now: each job is described, by its trigger, again and again.
    await wait_until(
        lambda: all(len(aws.control.calls(action="DescribeTrainingJob", job_name=n)) >= 2 for n in names),
        message="every trigger to poll",
    )
    assert not any(run.done() for run in runs)
    await end_jobs(aws, names)
    results = await asyncio.wait_for(asyncio.gather(*runs), 30)

    # The job's true terminal state, not an error event: the tracker's trouble failed nobody.
    assert results == [[true_terminal(aws, name)] for name in names]
    # Tried once for the whole process, not once per subscriber.
    assert len(aws.control.calls(action="ListTrainingJobs")) == 1
    [warning] = watcher_warnings(caplog)
    message = warning.getMessage()
    assert "'aws_default'" in message and "AccessDeniedException" in message
    assert "grant sagemaker:ListTrainingJobs to the connection's role, or use tracking='poll'" in message
    assert warning.exc_info is None, "a missing permission needs no traceback"
    watcher = shared_watcher("aws_default", None)
    assert watcher.job_names == frozenset() and not watcher.running

    # A later subscriber goes straight to polling: no listing on its behalf, no second warning.
    late = "fraud-train-denied-late"
    create_jobs([late])
    aws.control.complete(late)
    assert await asyncio.wait_for(events_of(shared_trigger(late)), 10) == [true_terminal(aws, late)]
    assert len(aws.control.calls(action="ListTrainingJobs")) == 1
    assert len(watcher_warnings(caplog)) == 1


async def test_a_broken_watcher_is_tried_again_after_a_while_and_warns_once_per_outage(aws, caplog):
    caplog.set_level(logging.INFO, logger=WATCHER_LOGGER)
    watcher = shared_watcher("aws_default", None)
    now = [0.0]
    # The watcher's own health record, on a clock the test moves.
    watcher.health = TrackerHealth(
        watcher.health.name,
        instead=watcher.health.instead,
        alternative=watcher.health.alternative,
        log=logging.getLogger(WATCHER_LOGGER),
        retry_after=600.0,
        clock=lambda: now[0],
    )
    names = ["fraud-train-retry-a", "fraud-train-retry-b", "fraud-train-retry-c", "fraud-train-retry-d"]
    create_jobs(names)
    for name in names:
        aws.control.complete(name)
    aws.control.inject("access_denied", 2, action="ListTrainingJobs")

    def listings() -> int:
        return len(aws.control.calls(action="ListTrainingJobs"))

    async def follow(name: str) -> list[dict[str, Any]]:
        return await asyncio.wait_for(events_of(shared_trigger(name)), 10)

    assert await follow(names[0]) == [true_terminal(aws, names[0])]  # denied: polled
    assert listings() == 1 and len(watcher_warnings(caplog)) == 1
    now[0] += 599.0
    assert await follow(names[1]) == [true_terminal(aws, names[1])]  # still broken: straight to polling
    assert listings() == 1
    now[0] += 2.0
    assert await follow(names[2]) == [true_terminal(aws, names[2])]  # tried again, denied again: polled
    assert listings() == 2
    assert len(watcher_warnings(caplog)) == 1, "one warning per outage, not per retry"
    assert any("still cannot work" in r.getMessage() for r in caplog.records if r.name == WATCHER_LOGGER)
    now[0] += 601.0
    described_before = len(aws.control.calls(action="DescribeTrainingJob", job_name=names[3]))
    assert await follow(names[3]) == [true_terminal(aws, names[3])]  # the permission is back
    assert listings() == 3
    # The listing showed the job Completed: the watcher answered, no trigger had to describe it.
    assert len(aws.control.calls(action="DescribeTrainingJob", job_name=names[3])) == described_before == 0
    assert any("works again" in r.getMessage() for r in caplog.records if r.name == WATCHER_LOGGER)
    assert len(watcher_warnings(caplog)) == 1


async def test_a_job_that_does_not_exist_fails_only_its_own_trigger(aws):
    healthy = ["fraud-train-real-1", "fraud-train-real-2"]
    create_jobs(healthy)
    ghost = "fraud-train-ghost"
    runs = {name: asyncio.ensure_future(events_of(shared_trigger(name))) for name in [*healthy, ghost]}
    assert await asyncio.wait_for(runs[ghost], 10) == [
        {
            "status": "error",
            "job_name": ghost,
            "message": f"training job {ghost} does not exist",
            "error_kind": "job",
        }
    ]
    # The others carry on with the watcher, which still follows them.
    await wait_until(lambda: len(aws.control.calls(action="ListTrainingJobs")) >= 3, message="more passes")
    assert not any(runs[name].done() for name in healthy)
    assert shared_watcher("aws_default", None).job_names == set(healthy)
    await end_jobs(aws, healthy)
    results = await asyncio.wait_for(asyncio.gather(*(runs[name] for name in healthy)), 10)
    assert results == [[true_terminal(aws, name)] for name in healthy]


async def test_a_watcher_that_may_not_describe_falls_back_and_polling_names_the_permission(aws, caplog):
    # The listing works but the job ended long ago, so the watcher must describe it: denied. Polling
    # (which describes too) is the last resort, and it reports the missing permission as a tracker error.
    name = "fraud-train-undescribable"
    create_jobs([name])
    aws.control.fail(name, "AlgorithmError: bad data", at=time.time() - 3600)
    aws.control.inject("access_denied", DENIED_FOREVER, action="DescribeTrainingJob")
    [event] = await asyncio.wait_for(events_of(shared_trigger(name)), 10)
    assert (event["status"], event["error_kind"], event["job_name"]) == ("error", "tracker", name)
    assert "grant sagemaker:DescribeTrainingJob to the connection's role" in event["message"]
    [warning] = watcher_warnings(caplog)
    assert "sagemaker:DescribeTrainingJob" in warning.getMessage()
    # Denied twice: once to the watcher, once to the trigger's own poll; never in a loop.
    assert len(aws.control.calls(action="DescribeTrainingJob", job_name=name)) == 2


async def test_unexpected_pass_failures_are_ridden_out_a_few_times_then_fall_back(aws, caplog, monkeypatch):
    names = ["fraud-train-odd-1", "fraud-train-odd-2"]
    create_jobs(names)
    real_pass = SharedJobWatcher._pass
    failures: list[int] = []

    async def odd_pass(self, client):
        failures.append(1)
        raise KeyError("TrainingJobSummaries")

    # One odd answer is ridden out: the watcher, not polling, ends the trigger, and nobody is warned.
    calls = iter([odd_pass, real_pass])
    monkeypatch.setattr(SharedJobWatcher, "_pass", lambda self, client: next(calls, real_pass)(self, client))
    run = asyncio.ensure_future(events_of(shared_trigger(names[0])))
    await wait_until(lambda: len(aws.control.calls(action="ListTrainingJobs")) >= 2, message="the passes")
    await end_jobs(aws, names[:1])
    assert await asyncio.wait_for(run, 10) == [true_terminal(aws, names[0])]
    assert failures == [1] and watcher_warnings(caplog) == []
    assert aws.control.calls(action="DescribeTrainingJob", job_name=names[0]) == []

    # One that lasts: after UNEXPECTED_FAILURES_TOLERATED + 1 passes, the trigger polls; one warning, with
    # the traceback (nobody foresaw it).
    failures.clear()
    monkeypatch.setattr(SharedJobWatcher, "_pass", odd_pass)
    run = asyncio.ensure_future(events_of(shared_trigger(names[1])))
    await wait_until(
        lambda: aws.control.calls(action="DescribeTrainingJob", job_name=names[1]), message="the polls"
    )
    assert len(failures) == UNEXPECTED_FAILURES_TOLERATED + 1
    await end_jobs(aws, names[1:])
    assert await asyncio.wait_for(run, 10) == [true_terminal(aws, names[1])]
    [warning] = watcher_warnings(caplog)
    assert "KeyError" in warning.getMessage() and warning.exc_info is not None
