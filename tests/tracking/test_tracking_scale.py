"""Tracking at scale: listings scoped to our prefix, passes without storms, one client, deletes in tens."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from typing import Any

import boto3
import pytest

from lyftlearn_provider.hooks.events import EventRouteHook
from lyftlearn_provider.rendering.sagemaker import render_training_job
from lyftlearn_provider.status import JobEvent
from lyftlearn_provider.tracking.clients import SharedClients, shared_clients
from lyftlearn_provider.tracking.sqs import SqsEventConsumer
from lyftlearn_provider.tracking.watcher import (
    IN_PROGRESS_LISTING_THRESHOLD,
    SharedJobWatcher,
    shared_watcher,
)
from lyftlearn_provider.triggers.training import TrainingJobTrigger
from tests.helpers import event_body, make_spec, queue_depth


def create_jobs(names: list[str]) -> None:
    sagemaker = boto3.client("sagemaker")
    for name in names:
        rendering = render_training_job(make_spec(), job_name=name, max_runtime_seconds=3600)
        sagemaker.create_training_job(**rendering.request)


def listings(aws) -> int:
    return len(aws.control.calls(action="ListTrainingJobs"))


async def until(condition, message: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(condition):
        assert time.monotonic() < deadline, f"timed out waiting for {message}"
        await asyncio.sleep(0.02)


async def events_of(trigger: TrainingJobTrigger) -> list[dict[str, Any]]:
    return [event.payload async for event in trigger.run()]


@contextlib.asynccontextmanager
async def following(watcher: SharedJobWatcher, names: list[str], interval: float, prefix: str | None):
    subscriptions = [watcher.subscribe(name, interval=interval, prefix=prefix) for name in names]
    try:
        yield subscriptions
    finally:
        for subscription in subscriptions:
            subscription.close()


# ---------------------------------------------------------------------------- listings scoped to our jobs
async def test_listings_ask_for_our_prefix_only_and_match_names_exactly(aws):
    # A busy account: 350 jobs of other teams changed just now, some with "ll-" inside their names.
    aws.control.seed(count=300, prefix="team-x")
    aws.control.seed(count=50, prefix="team-ll")  # "team-ll-000001" contains "ll-"
    ours, elsewhere = "ll-fraud-1", "team-ll-fraud-1"
    create_jobs([ours])
    aws.control.seed([elsewhere], status="Failed")  # a foreign job whose name ends like ours
    aws.control.reset_calls()

    watcher = shared_watcher("aws_default", None)
    async with following(watcher, [ours], 30.0, "ll") as [subscription]:
        await until(lambda: listings(aws) >= 1, "the first pass")
        await until(lambda: watcher.last_pass_calls, "the pass to end")
        # One page: the 300 team-x jobs were never read (unfiltered, this pass would take four).
        assert listings(aws) == 1 and watcher.last_pass_calls == 1
        # The foreign failed job was listed (NameContains "ll-" matches it) but is not ours: no Describe,
        # and our job, still running, is not resolved by it.
        assert aws.control.calls(action="DescribeTrainingJob") == []
        assert not subscription.outcome.done() and subscription.confirmed
        await asyncio.to_thread(aws.control.complete, ours)
        watcher._last_pass = None  # the next pass now, rather than in 30 s
        watcher._wake.set()
        outcome = await asyncio.wait_for(subscription.outcome, 10)
    assert outcome == JobEvent.terminal(ours, "Completed")


async def test_a_job_name_without_the_prefix_is_listed_unfiltered_and_still_followed(aws):
    # A name outside the prefix rule (say, given by hand) would never show under NameContains="ll-".
    name = "handmade-job-1"
    create_jobs([name])
    trigger = TrainingJobTrigger(name, source="shared", poll_interval=0.05, job_name_prefix="ll")
    run = asyncio.ensure_future(events_of(trigger))
    await until(lambda: listings(aws) >= 2, "a few passes")
    await asyncio.to_thread(aws.control.complete, name)
    assert await asyncio.wait_for(run, 10) == [JobEvent.terminal(name, "Completed").to_payload()]
    # The listing, not a Describe, saw it end.
    assert aws.control.calls(action="DescribeTrainingJob") == []


async def test_paging_stops_at_jobs_older_than_the_oldest_one_waited_for(aws):
    # 250 older jobs of the same prefix (another triggerer's), all changed within the window.
    aws.control.seed(count=250, prefix="ll-other", status="InProgress", at=time.time() - 5)
    name = "ll-fraud-new"
    create_jobs([name])
    aws.control.reset_calls()
    watcher = shared_watcher("aws_default", None)
    async with following(watcher, [name], 0.05, "ll"):
        await until(lambda: listings(aws) >= 4, "a few passes")
        # Newest created first: ours is on the first page, and the older ones are never paged through.
        assert watcher.last_pass_calls == 1
    # Every pass read one page, not three.
    passes = listings(aws)
    assert passes >= 4 and aws.control.calls(action="DescribeTrainingJob") == []


# ---------------------------------------------------------------------------- passes without storms
async def test_new_subscribers_join_the_next_pass_instead_of_each_forcing_one(aws):
    names = [f"ll-join-{index:02d}" for index in range(40)]
    create_jobs(names)
    aws.control.reset_calls()
    watcher = shared_watcher("aws_default", None)
    async with following(watcher, names[:1], 30.0, "ll"):
        await until(lambda: watcher.last_pass_calls, "the first pass")
        # Thirty-nine triggers arrive one after another: with a 30 s interval, no pass and no Describe.
        async with following(watcher, names[1:], 30.0, "ll") as late:
            for _ in range(5):
                await asyncio.sleep(0.1)
            assert listings(aws) == 1 and aws.control.calls(action="DescribeTrainingJob") == []
            assert not any(subscription.confirmed for subscription in late)
            # One that wants news more often wakes the watcher only to re-read its interval: the next
            # pass comes sooner, and every waiting subscriber joins it.
            async with following(watcher, ["ll-join-00"], 0.2, "ll"):
                await until(lambda: all(subscription.confirmed for subscription in late), "the next pass")
    assert aws.control.calls(action="DescribeTrainingJob") == []


async def test_passes_are_spaced_start_to_start(aws, monkeypatch):
    create_jobs(["ll-cadence-1"])
    starts: list[float] = []
    real_pass = SharedJobWatcher._pass

    async def slow_pass(self, client):
        starts.append(time.monotonic())
        await real_pass(self, client)
        await asyncio.sleep(0.4)  # a pass that takes most of the interval

    monkeypatch.setattr(SharedJobWatcher, "_pass", slow_pass)
    watcher = shared_watcher("aws_default", None)
    async with following(watcher, ["ll-cadence-1"], 0.6, "ll"):
        await until(lambda: len(starts) >= 5, "five passes")
    gaps = [later - earlier for earlier, later in zip(starts, starts[1:], strict=False)]
    # Start to start: 0.6 s apart, not 0.6 s after the end of a pass of 0.4 s or more (1 s or more).
    assert statistics.median(gaps) < 0.9, gaps


async def test_many_unconfirmed_subscribers_are_confirmed_by_one_in_progress_listing(aws):
    # A triggerer restarted with many deferred jobs that have not changed for an hour, two of which
    # ended meanwhile: one InProgress listing instead of a Describe each.
    hour_ago = time.time() - 3600
    running = [f"ll-resumed-{index:02d}" for index in range(IN_PROGRESS_LISTING_THRESHOLD + 5)]
    ended = ["ll-resumed-done-1", "ll-resumed-done-2"]
    aws.control.seed(running, status="InProgress", at=hour_ago)
    aws.control.seed(ended, status="Completed", at=hour_ago)
    aws.control.seed(count=120, prefix="foreign", status="InProgress")  # not ours: never paged through
    watcher = shared_watcher("aws_default", None)
    async with following(watcher, running + ended, 30.0, "ll") as subscriptions:
        outcomes = await asyncio.wait_for(asyncio.gather(*(sub.outcome for sub in subscriptions[-2:])), 10)
        assert outcomes == [JobEvent.terminal(name, "Completed") for name in ended]
        assert all(subscription.confirmed for subscription in subscriptions[:-2])
    # The windowed listing, then the InProgress listing; Describe for the two that ended only.
    assert listings(aws) == 2
    assert sorted(call["job_name"] for call in aws.control.calls(action="DescribeTrainingJob")) == ended


async def test_a_few_unconfirmed_subscribers_are_described(aws):
    hour_ago = time.time() - 3600
    names = [f"ll-quiet-{index}" for index in range(3)]
    aws.control.seed(names, status="InProgress", at=hour_ago)
    watcher = shared_watcher("aws_default", None)
    async with following(watcher, names, 30.0, "ll") as subscriptions:
        await until(lambda: all(sub.confirmed for sub in subscriptions), "the first pass")
    assert listings(aws) == 1
    assert sorted(call["job_name"] for call in aws.control.calls(action="DescribeTrainingJob")) == names


# ---------------------------------------------------------------------------- one client per process
async def test_polling_triggers_share_one_client_per_process_and_settings(aws):
    names = [f"ll-poll-{index:02d}" for index in range(30)]
    create_jobs(names)
    runs = [
        asyncio.ensure_future(events_of(TrainingJobTrigger(name, source="poll", poll_interval=0.05)))
        for name in names
    ]
    await until(
        lambda: len({c["job_name"] for c in aws.control.calls(action="DescribeTrainingJob")}) == len(names),
        "every trigger to poll",
    )
    clients = shared_clients("aws_default", None)
    assert clients.opened == 1
    # Other settings, another client.
    other = asyncio.ensure_future(
        events_of(
            TrainingJobTrigger(
                names[0], source="poll", poll_interval=0.05, botocore_config={"read_timeout": 30}
            )
        )
    )
    await until(lambda: len(aws.control.calls(action="DescribeTrainingJob", job_name=names[0])) >= 4, "polls")
    assert shared_clients("aws_default", None, botocore_config={"read_timeout": 30}).opened == 1
    for name in names:
        await asyncio.to_thread(aws.control.complete, name)
    results = await asyncio.wait_for(asyncio.gather(*runs, other), 30)
    assert results == [[JobEvent.terminal(n, "Completed").to_payload()] for n in [*names, names[0]]]
    assert clients.opened == 1 and clients._current is None, "closed once its last user left"


async def test_a_shared_client_that_failed_to_open_is_opened_again_and_old_ones_retire():
    opened: list[int] = []

    class FakeHook:
        async def get_async_conn(self):
            opened.append(1)
            if len(opened) == 1:
                raise ConnectionError("no route")
            return FakeContext()

    class FakeContext:
        closed = False

        async def __aenter__(self):
            return self

        async def __aexit__(self, *exc):
            FakeContext.closed = True

    now = [0.0]
    clients = SharedClients(max_age=100.0, clock=lambda: now[0])
    try:
        async with clients.client(FakeHook):
            raise AssertionError("opened a client that failed")
    except ConnectionError:
        pass
    async with clients.client(FakeHook) as first, clients.client(FakeHook) as second:
        assert first is second and len(opened) == 2
        now[0] = 101.0
        async with clients.client(FakeHook) as third:
            assert third is not first and len(opened) == 3
    assert FakeContext.closed and clients._current is None


# ---------------------------------------------------------------------------- deletes coalesced
def queue_and_consumer(visibility: int, **settings: Any) -> tuple[str, SqsEventConsumer]:
    queue_url = EventRouteHook(aws_conn_id="aws_default", retry_delay=0.01).ensure_route(
        "ll", visibility_timeout_seconds=visibility
    )["queue_url"]
    return queue_url, SqsEventConsumer(
        "aws_default", None, queue_url, prefix="ll", wait_time_seconds=1, **settings
    )


def send_end(queue_url: str, name: str) -> None:
    boto3.client("sqs").send_message(
        QueueUrl=queue_url, MessageBody=event_body(name, "Completed", time.time())
    )


async def test_deletes_are_coalesced_across_receives_and_done_well_inside_the_visibility_timeout(aws):
    # Visibility 4 s: every delete goes out within a second of its receive, in calls of up to ten.
    queue_url, consumer = queue_and_consumer(4, batch_window=0.2)
    names = [f"ll-coalesce-{index:02d}" for index in range(20)]
    try:
        subscriptions = [consumer.subscribe(name) for name in names]
        for name in names:
            send_end(queue_url, name)
            await asyncio.sleep(0.05)
        await asyncio.wait_for(asyncio.gather(*subscriptions), 20)
        keep_alive = consumer.subscribe("ll-coalesce-keep")  # the consumer keeps running
        # Deleted within a quarter of the visibility timeout (plus slack): nothing ever came back.
        await until(lambda: queue_depth(queue_url) == 0, "the deletes", timeout=10)
        await asyncio.sleep(4.5)
        stats = consumer.stats
        assert stats.received == len(names) and stats.duplicates == 0, stats.as_dict()
        # Twenty messages, however many receives brought them: two or three delete calls (four on a slow
        # machine, where the trickle outlasts a flush), not one a receive.
        assert stats.delete_calls <= 4, stats.as_dict()
        print(f"\n{stats.batches} receives with messages, {stats.delete_calls} delete calls")
        keep_alive.close()
    finally:
        await consumer.aclose()


async def test_pending_deletes_are_flushed_when_the_consumer_stops(aws):
    # Deletes could wait 15 s; the consumer stops before that, and deletes them on its way out.
    queue_url, consumer = queue_and_consumer(60, delete_delay=60)
    try:
        waiting = consumer.subscribe("ll-flush-1")
        send_end(queue_url, "ll-flush-1")
        await asyncio.wait_for(waiting, 20)
        await until(lambda: not consumer.running, "the consumer to stop without subscribers")
        assert queue_depth(queue_url) == 0 and consumer.stats.delete_calls == 1
    finally:
        await consumer.aclose()


# ---------------------------------------------------------------------------- the emulator's seeding
def test_seeding_adds_an_accounts_history_at_once_and_refuses_a_status_jobs_cannot_have(aws):
    from lyftlearn_provider.testing.aws import ControlError

    assert aws.control.seed(count=3, prefix="team-z", status="Failed") == 3
    # Existing names are left alone.
    assert aws.control.seed(["team-z-000000", "team-z-new"], status="InProgress") == 1
    jobs = {job["TrainingJobName"]: job for job in aws.control.jobs()}
    assert jobs["team-z-000000"]["TrainingJobStatus"] == "Failed"
    assert jobs["team-z-000000"]["FailureReason"] == "AlgorithmError: seeded"
    assert jobs["team-z-new"]["TrainingJobStatus"] == "InProgress"
    # A seeded running job moves on like any other (the autopilot and the control API drive it).
    assert aws.control.advance("team-z-new", "Uploading")["SecondaryStatus"] == "Uploading"
    assert aws.control.complete("team-z-new")["TrainingJobStatus"] == "Completed"
    described = boto3.client("sagemaker").describe_training_job(TrainingJobName="team-z-000001")
    assert described["TrainingJobStatus"] == "Failed"
    with pytest.raises(ControlError) as refused:
        aws.control.seed(["team-z-odd"], status="Running")
    assert refused.value.status == 400 and "InProgress" in refused.value.message


def test_the_wait_after_a_partial_batch_follows_the_arrival_rate_not_one_quick_receive(monkeypatch):
    from lyftlearn_provider.tracking import sqs as sqs_module

    now = [100.0]
    monkeypatch.setattr(sqs_module.time, "monotonic", lambda: now[0])
    consumer = SqsEventConsumer("aws_default", None, "https://sqs.example/q", prefix="ll", batch_window=1.5)
    assert consumer._collect_wait() == 1.5  # nothing known yet: the whole window

    def receive(at: float, messages: int) -> None:
        now[0] = 100.0 + at
        consumer._note_arrivals(messages)

    # Ends trickle in at about 6 a second: a full batch now and then, and the quick receive after it
    # brings one more message in no time. That is not a rate of hundreds a second.
    for at, messages in [(0.0, 0), (1.5, 8), (3.0, 10), (3.01, 1), (4.5, 9)]:
        receive(at, messages)
    assert 5 < consumer.arrival_rate() < 7
    assert consumer._collect_wait() == 1.5
    # A fast flow (20 a second) fills a batch in half a second: the wait shrinks to that.
    for step in range(1, 21):
        receive(4.5 + step * 0.5, 10)
    assert consumer._collect_wait() == pytest.approx(0.5, rel=0.05)


def test_after_a_full_batch_the_next_receive_waits_for_the_batch_newest_to_be_a_window_old(monkeypatch):
    from lyftlearn_provider.tracking import sqs as sqs_module

    now = [100.0]
    monkeypatch.setattr(sqs_module.time, "monotonic", lambda: now[0])
    consumer = SqsEventConsumer(
        "aws_default", None, "https://sqs.example/q", prefix="ll", batch_window=1.5, clock=lambda: 5000.0
    )
    consumer._newest_sent = None  # no SentTimestamp: nothing to go by, receive at once
    assert consumer._surplus_wait() == 0.0
    consumer._newest_sent = 4999.8  # the batch's newest message reached the queue 0.2 s ago
    # What is left arrived after that newest message: it waits 1.3 s more, 1.5 s in all, and the next
    # batch fills meanwhile. (Receiving at once after a full batch, as before, brought one or two
    # messages at six a second: 0.156 receives per job end at 1,000 jobs of 1-4 minutes.)
    assert consumer._surplus_wait() == pytest.approx(1.3)
    consumer._note_arrivals(0)
    for at in (1.5, 3.0, 4.5):  # a trickle: 6 a second
        now[0] = 100.0 + at
        consumer._note_arrivals(9)
    assert consumer._surplus_wait() == pytest.approx(1.3)
    # A fast flow (100 a second) does not change it: the window bounds the wait, and the batch after
    # it is full again.
    for step in range(1, 11):
        now[0] = 104.5 + step * 0.1
        consumer._note_arrivals(10)
    assert consumer._surplus_wait() == pytest.approx(1.3)
    # A backlog — the newest of the batch already a window old (after an outage): at once.
    consumer._newest_sent = 4998.5
    assert consumer._surplus_wait() == 0.0
    consumer._newest_sent = 4990.0
    assert consumer._surplus_wait() == 0.0
