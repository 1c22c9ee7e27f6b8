from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import pathlib
import sys
import time

import boto3
import pytest

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.hooks.events import EventRouteHook
from lyftlearn_provider.rendering.sagemaker import render_training_job
from lyftlearn_provider.tracking.lattice import (
    JobLedger,
    MalformedEvent,
    SeenEvents,
    StateChange,
    epoch_seconds,
    parse_state_change,
    supersedes,
)
from lyftlearn_provider.tracking.outcomes import Fallback
from lyftlearn_provider.tracking.sqs import (
    SqsEventConsumer,
    release_limit,
    should_release,
    sqs_consumer,
)
from tests.helpers import event_body, make_spec, queue_depth, until

REPO = pathlib.Path(__file__).resolve().parents[2]
ACCOUNT, REGION = "123456789012", "us-east-1"
#: Every async test finishes well within this.
DEADLINE = 45.0


# ---------------------------------------------------------------------------- pure rules
def change(status: str, at: float, event_id: str = "e") -> StateChange:
    return StateChange("ll-a", status, None, at, event_id)


def test_parse_reads_the_emulator_and_the_documented_shapes():
    parsed = parse_state_change(event_body("ll-a", "Failed", 1_700_000_000.5, reason="OOM", event_id="e1"))
    assert parsed == StateChange("ll-a", "Failed", "Failed", 1_700_000_000.5, "e1", "OOM")
    assert parsed.terminal
    documented = json.loads(event_body("ll-a", "Completed", 0))
    documented["detail"]["LastModifiedTime"] = "2018-10-06T12:26:13Z"
    assert parse_state_change(json.dumps(documented)).event_time == epoch_seconds("2018-10-06T12:26:13Z")
    del documented["detail"]["LastModifiedTime"]
    documented["time"] = "2018-10-06T12:26:14Z"
    assert parse_state_change(json.dumps(documented)).event_time == epoch_seconds("2018-10-06T12:26:14Z")
    assert epoch_seconds(1_538_828_773_000) == epoch_seconds(1_538_828_773) == 1_538_828_773.0


def _without(field: str) -> str:
    event = json.loads(event_body("ll-a", "Completed", 1.0))
    event["detail"].pop(field, None)
    event.pop(field, None)
    return json.dumps(event)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        json.dumps({**json.loads(event_body("ll-a", "Completed", 1.0)), "source": "aws.ecs"}),
        json.dumps({**json.loads(event_body("ll-a", "Completed", 1.0)), "detail-type": "Other"}),
        _without("id"),
        _without("TrainingJobName"),
        _without("TrainingJobStatus"),
        event_body("ll-a", "Exploded", 1.0),
        json.dumps({**json.loads(_without("LastModifiedTime")), "time": "yesterday"}),
    ],
)
def test_parse_rejects_malformed_bodies(body):
    with pytest.raises(MalformedEvent):
        parse_state_change(body)


def test_status_order_is_monotonic_and_terminal_states_are_final():
    assert supersedes(change("InProgress", 1), None)
    assert supersedes(change("InProgress", 2), change("InProgress", 1))
    assert not supersedes(change("InProgress", 1), change("InProgress", 2))
    assert not supersedes(change("InProgress", 1), change("InProgress", 1))
    assert supersedes(change("Stopping", 1), change("InProgress", 5))
    assert supersedes(change("Completed", 1), change("InProgress", 5))
    assert not supersedes(change("InProgress", 9), change("Completed", 1))
    assert not supersedes(change("Failed", 9), change("Completed", 1))
    assert supersedes(change("Stopped", 9), change("Stopping", 99))


def test_ledger_and_seen_events_are_bounded():
    ledger = JobLedger(capacity=2)
    for name in ("ll-1", "ll-2", "ll-3"):
        assert ledger.observe(StateChange(name, "Completed", None, 1.0, name))
    assert len(ledger) == 2 and ledger.get("ll-1") is None and ledger.get("ll-3") is not None
    assert not ledger.observe(StateChange("ll-3", "InProgress", None, 5.0, "late"))
    seen = SeenEvents(capacity=2)
    for event_id in ("a", "b", "c"):
        seen.add(event_id)
    assert len(seen) == 2 and "a" not in seen and "c" in seen


def test_release_bounds_keep_two_receives_back():
    assert release_limit(5) == 3
    assert release_limit(4) == 2
    assert release_limit(2) == 0
    assert release_limit(None, 3) == 3
    assert should_release(3, 10.0, limit=3, window=300.0)
    assert not should_release(4, 10.0, limit=3, window=300.0)
    assert not should_release(1, 301.0, limit=3, window=300.0)


# ---------------------------------------------------------------------------- against the emulator
def route(**settings) -> dict:
    # A short visibility timeout lets kept and failed-to-delete messages come back within the test.
    return EventRouteHook(aws_conn_id="aws_default", retry_delay=0.01).ensure_route(
        "ll", visibility_timeout_seconds=1, **settings
    )


def create_job(name: str) -> None:
    request = render_training_job(make_spec(), job_name=name, max_runtime_seconds=3600).request
    boto3.client("sagemaker").create_training_job(**request)


def true_status(name: str) -> str:
    return boto3.client("sagemaker").describe_training_job(TrainingJobName=name)["TrainingJobStatus"]


def make_consumer(queue_url: str, **settings) -> SqsEventConsumer:
    return SqsEventConsumer(
        "aws_default",
        None,
        queue_url,
        prefix="ll",
        **{"wait_time_seconds": 1, "release_delay": 1, "retry_delay": 0.05, **settings},
    )


async def test_subscribers_resolve_with_the_true_terminal_state(aws):
    summary = route()
    consumer = make_consumer(summary["queue_url"])
    names = ("ll-ok-1", "ll-bad-1", "ll-stop-1")
    for name in names:
        create_job(name)
    try:
        subscriptions = [consumer.subscribe(name) for name in names]
        assert consumer.running and consumer.job_names == frozenset(names)
        aws.control.advance("ll-ok-1", "Training")
        aws.control.complete("ll-ok-1")
        aws.control.fail("ll-bad-1", "AlgorithmError: out of memory")
        aws.control.stop("ll-stop-1")

        payloads = await asyncio.wait_for(asyncio.gather(*subscriptions), DEADLINE)

        assert [p.job_status for p in payloads] == [true_status(n) for n in names]
        assert [p.job_status for p in payloads] == ["Completed", "Failed", "Stopped"]
        assert payloads[1].to_payload() == {
            "status": "terminal",
            "job_name": "ll-bad-1",
            "job_status": "Failed",
            "failure_reason": "AlgorithmError: out of memory",
        }
        await until(lambda: not consumer.running, "the consumer to stop without subscribers")
        assert consumer.stats.delivered == 3 and consumer.stats.malformed == 0
        assert queue_depth(summary["queue_url"]) == 0
        print("\nterminal states:", consumer.stats.as_dict())
    finally:
        await consumer.aclose()


async def test_duplicated_reordered_malformed_and_foreign_messages(aws):
    summary = route(max_receive_count=2)
    sqs = boto3.client("sqs")
    consumer = make_consumer(summary["queue_url"])
    for name in ("ll-dup-1", "ll-order-1", "ll-hold-1"):
        create_job(name)
    try:
        hold = consumer.subscribe("ll-hold-1")
        duplicated, reordered = consumer.subscribe("ll-dup-1"), consumer.subscribe("ll-order-1")
        aws.control.complete("ll-dup-1")
        aws.control.complete("ll-order-1")
        emitted = aws.control.events()
        [dup_completed] = [
            e
            for e in emitted
            if e["detail"]["TrainingJobName"] == "ll-dup-1"
            and e["detail"]["TrainingJobStatus"] == "Completed"
        ]
        for _ in range(2):
            sqs.send_message(QueueUrl=summary["queue_url"], MessageBody=json.dumps(dup_completed))
        # Another event (new id) for the same job, older than its Completed one, arriving after it.
        older = time.time() - 60
        sqs.send_message(
            QueueUrl=summary["queue_url"], MessageBody=event_body("ll-order-1", "InProgress", older)
        )
        malformed = [
            "not json",
            json.dumps(
                {"source": "aws.ecs", "detail-type": "ECS Task State Change", "id": "x", "detail": {}}
            ),
            json.dumps({**json.loads(event_body("ll-hold-1", "Completed", time.time())), "detail": {}}),
        ]
        for body in malformed:
            sqs.send_message(QueueUrl=summary["queue_url"], MessageBody=body)
        sqs.send_message(
            QueueUrl=summary["queue_url"], MessageBody=event_body("other-job-1", "Completed", time.time())
        )

        payloads = await asyncio.wait_for(asyncio.gather(duplicated, reordered), DEADLINE)
        assert [p.job_status for p in payloads] == ["Completed", "Completed"]
        await asyncio.wait_for(
            until(lambda: consumer.stats.duplicates == 2 and consumer.stats.stale >= 1, "duplicates"),
            DEADLINE,
        )
        await asyncio.wait_for(
            until(lambda: queue_depth(summary["dlq_url"]) == len(malformed), "the DLQ"), DEADLINE
        )

        # The guard kept the terminal state; a late subscriber resolves from memory at once.
        assert consumer.known_state("ll-order-1").job_status == "Completed"
        late = consumer.subscribe("ll-order-1")
        assert late.outcome.done() and (await late).job_status == true_status("ll-order-1")
        assert hold.outcome.done() is False, "a malformed event about a held job must not resolve it"
        aws.control.complete("ll-hold-1")
        assert (await asyncio.wait_for(hold, DEADLINE)).job_status == true_status("ll-hold-1")

        stats = consumer.stats
        assert stats.foreign == 1 and stats.delivered == 3
        # Two receives each (maxReceiveCount=2), then SQS moved them to the dead-letter queue.
        assert stats.malformed == 2 * len(malformed)
        dlq_bodies = {
            m["Body"]
            for m in sqs.receive_message(QueueUrl=summary["dlq_url"], MaxNumberOfMessages=10)["Messages"]
        }
        assert dlq_bodies == set(malformed)
        await until(lambda: not consumer.running, "the consumer to stop")
        assert queue_depth(summary["queue_url"]) == 0
        print("\nmessy queue:", stats.as_dict(), "dead-lettered:", len(dlq_bodies))
    finally:
        await consumer.aclose()


async def test_queue_unavailable_for_a_while_fails_nobody(aws):
    summary = route()
    consumer = make_consumer(summary["queue_url"])
    names = ("ll-outage-1", "ll-outage-2")
    for name in names:
        create_job(name)
    try:
        subscriptions = [consumer.subscribe(name) for name in names]
        await until(lambda: aws.control.calls(service="sqs", action="ReceiveMessage"), "the first receive")
        aws.control.inject("unavailable", 8, service="sqs")
        # A long poll already in flight is not hit by the fault, and would deliver events sent now: the
        # jobs end only once the outage has reached the consumer, so their events must wait it out.
        await until(lambda: consumer.stats.receive_errors >= 1, "the outage to reach the consumer")
        aws.control.complete("ll-outage-1")
        aws.control.fail("ll-outage-2", "ClientError: bad data")

        payloads = await asyncio.wait_for(asyncio.gather(*subscriptions), DEADLINE)

        assert [p.job_status for p in payloads] == [true_status(n) for n in names] == ["Completed", "Failed"]
        assert payloads[1].failure_reason == "ClientError: bad data"
        faulted = [call for call in aws.control.calls(service="sqs") if call.get("fault")]
        assert len(faulted) == 8
        assert consumer.stats.receive_errors >= 1
        print("\noutage:", {"faulted_sqs_calls": len(faulted), **consumer.stats.as_dict()})
    finally:
        await consumer.aclose()


async def _wait(subscription) -> dict:
    return await subscription


async def test_cancelled_subscribers_leave_and_the_consumer_restarts_on_demand(aws):
    summary = route()
    consumer = make_consumer(summary["queue_url"])
    task_name = f"lyftlearn-sqs-consumer-{consumer.queue_url}"
    try:
        waiter = asyncio.create_task(_wait(consumer.subscribe("ll-gone-1")))
        await asyncio.sleep(0.2)
        assert consumer.running and consumer.job_names == frozenset({"ll-gone-1"})
        waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter
        await asyncio.sleep(0)
        assert consumer.job_names == frozenset()
        await asyncio.wait_for(until(lambda: not consumer.running, "the consumer to stop"), DEADLINE)
        assert task_name not in {task.get_name() for task in asyncio.all_tasks()}

        create_job("ll-life-1")
        again = consumer.subscribe("ll-life-1")
        assert consumer.running, "the next subscriber restarts the consumer"
        aws.control.complete("ll-life-1")
        assert (await asyncio.wait_for(again, DEADLINE)).job_status == "Completed"
        await asyncio.wait_for(until(lambda: not consumer.running, "the consumer to stop"), DEADLINE)
        assert task_name not in {task.get_name() for task in asyncio.all_tasks()}
    finally:
        await consumer.aclose()


async def test_one_consumer_per_queue_per_loop(aws):
    first = sqs_consumer("http://queue/a", prefix="ll")
    assert sqs_consumer("http://queue/a", prefix="ll") is first
    assert sqs_consumer("http://queue/b", prefix="ll") is not first
    assert sqs_consumer("http://queue/a", prefix="ll", aws_conn_id="other") is not first
    with pytest.raises(ValueError, match="prefix"):
        sqs_consumer("http://queue/a", prefix="other")


OTHER_TRIGGERER = """
import asyncio, json, sys
from lyftlearn_provider.tracking.sqs import SqsEventConsumer


async def main(queue_url):
    consumer = SqsEventConsumer(
        "aws_default", None, queue_url, prefix="ll", wait_time_seconds=1, release_delay=3, retry_delay=0.05
    )
    # This process holds another job, so its consumer runs; it holds none of the test's jobs.
    held = consumer.subscribe("ll-held-elsewhere")
    print("OTHER-TRIGGERER ready", flush=True)
    while consumer.stats.released == 0:
        await asyncio.sleep(0.05)
    held.close()
    while consumer.running:
        await asyncio.sleep(0.05)
    print("OTHER-TRIGGERER", json.dumps(consumer.stats.as_dict()), flush=True)


asyncio.run(main(sys.argv[1]))
"""


async def report(stream: asyncio.StreamReader) -> str:
    """Return the other process's next report, skipping the log lines Airflow writes to stdout."""
    while True:
        line = (await stream.readline()).decode()
        if not line:
            raise AssertionError("the other process ended without reporting")
        if line.startswith("OTHER-TRIGGERER "):
            return line.removeprefix("OTHER-TRIGGERER ").strip()


async def test_a_terminal_event_received_by_another_process_reaches_the_holder(aws):
    summary = route()
    create_job("ll-handoff-1")
    other = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        OTHER_TRIGGERER,
        summary["queue_url"],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.PIPE,
    )
    consumer = make_consumer(summary["queue_url"])
    try:
        assert other.stdout is not None
        assert await asyncio.wait_for(report(other.stdout), DEADLINE) == "ready"
        # The job ends while only the other process consumes: it receives the event and releases it.
        aws.control.complete("ll-handoff-1")
        other_stats = json.loads(await asyncio.wait_for(report(other.stdout), DEADLINE))
        assert await asyncio.wait_for(other.wait(), DEADLINE) == 0

        payload = await asyncio.wait_for(consumer.subscribe("ll-handoff-1"), DEADLINE)

        assert payload.job_status == true_status("ll-handoff-1") == "Completed"
        assert other_stats["released"] == 1 and other_stats["delivered"] == 0
        assert consumer.stats.delivered == 1
        assert queue_depth(summary["dlq_url"]) == 0
        print("\nother process:", other_stats, "\nthis process:", consumer.stats.as_dict())
    finally:
        if other.returncode is None:
            other.kill()
            await other.wait()
        await consumer.aclose()


async def test_later_terminal_events_of_a_delivered_job_are_deleted_not_released(aws):
    # SageMaker sends several events per end; once this process delivered the job's end, the rest are
    # nobody's news and must not bounce between triggerer processes.
    summary = route()
    consumer = make_consumer(summary["queue_url"])
    create_job("ll-once-1")
    try:
        waiting = consumer.subscribe("ll-once-1")
        aws.control.complete("ll-once-1")
        payload = await asyncio.wait_for(waiting, DEADLINE)
        assert payload.job_status == "Completed"
        sqs = boto3.client("sqs")
        keep_alive = consumer.subscribe("ll-other-1")  # keeps the consumer receiving
        for _ in range(3):
            sqs.send_message(
                QueueUrl=summary["queue_url"], MessageBody=event_body("ll-once-1", "Completed", time.time())
            )
        await until(lambda: queue_depth(summary["queue_url"]) == 0, "the late copies to be deleted")
        assert (consumer.stats.released, consumer.stats.settled) == (0, 3)
        keep_alive.close()
    finally:
        await consumer.aclose()


async def test_a_backlog_is_received_by_several_loops_and_aclose_leaves_no_task(aws):
    summary = route()
    consumer = make_consumer(summary["queue_url"])
    sqs = boto3.client("sqs")
    names = [f"ll-burst-{index}" for index in range(80)]
    try:
        # The backlog is there before the consumer starts (as after an outage): full batches in a row.
        for start in range(0, len(names), 10):
            sqs.send_message_batch(
                QueueUrl=summary["queue_url"],
                Entries=[
                    {"Id": str(index), "MessageBody": event_body(name, "Completed", time.time())}
                    for index, name in enumerate(names[start : start + 10])
                ],
            )
        subscriptions = [consumer.subscribe(name) for name in names]
        payloads = await asyncio.wait_for(asyncio.gather(*subscriptions), DEADLINE)
        assert {p.job_name for p in payloads} == set(names)
        assert consumer.stats.delivered == len(names)
        assert consumer.stats.extra_loops >= 1, consumer.stats.as_dict()
    finally:
        await consumer.aclose()
    leftovers = [
        task for task in asyncio.all_tasks() if "sqs-consumer" in task.get_name() and not task.done()
    ]
    assert leftovers == []


@pytest.mark.parametrize("window", [0.0, 1.0])
async def test_a_trickle_of_events_collects_into_batches_within_the_window(aws, window):
    # A long poll returns at the first message; the window makes the next receive wait for the trickle.
    summary = route()
    consumer = make_consumer(summary["queue_url"], batch_window=window, wait_time_seconds=5)
    sqs = boto3.client("sqs")
    names = [f"ll-trickle-{index}" for index in range(12)]
    try:
        subscriptions = {name: consumer.subscribe(name) for name in names}
        delays = []
        for name in names:
            sent = time.monotonic()
            sqs.send_message(
                QueueUrl=summary["queue_url"], MessageBody=event_body(name, "Completed", time.time())
            )
            subscriptions[name].outcome.add_done_callback(
                lambda _, sent=sent: delays.append(time.monotonic() - sent)
            )
            await asyncio.sleep(0.1)
        await asyncio.wait_for(asyncio.gather(*subscriptions.values()), DEADLINE)
        stats = consumer.stats
        assert stats.delivered == len(names)
        assert stats.extra_loops == 0, "a trickle is no backlog"
        if window:
            # 12 messages over 1.2 s: the first wakes the poll, the window gathers most of the rest.
            assert stats.batches <= 4, stats.as_dict()
            assert max(delays) < window + 1.0, delays
        else:
            assert stats.batches >= 5, stats.as_dict()
        print(f"\nwindow {window:g} s: {stats.batches} batches, worst notice {max(delays):.2f} s")
    finally:
        await consumer.aclose()


async def test_a_flow_faster_than_a_batch_a_window_is_received_in_full_batches_not_a_quick_receive_after_each(
    aws,
):
    # Twenty events a second with a 1 s window: batches come back full. Receiving at once after each
    # full batch (as the consumer once did whenever the flow reached a batch a window) brought the few
    # messages that arrived during the round trip: many more receives than batches of ten.
    summary = route()
    consumer = make_consumer(summary["queue_url"], batch_window=1.0, wait_time_seconds=5)
    sqs = boto3.client("sqs")
    names = [f"ll-flow-{index}" for index in range(80)]
    try:
        subscriptions = {name: consumer.subscribe(name) for name in names}
        delays: list[float] = []
        began = time.monotonic()
        for index, name in enumerate(names):
            sent = time.monotonic()
            sqs.send_message(
                QueueUrl=summary["queue_url"], MessageBody=event_body(name, "Completed", time.time())
            )
            subscriptions[name].outcome.add_done_callback(
                lambda _, sent=sent: delays.append(time.monotonic() - sent)
            )
            # Paced on the clock (not per send), so that a slow send does not stretch the flow.
            await asyncio.sleep(max(0.0, began + (index + 1) * 0.05 - time.monotonic()))
        await asyncio.wait_for(asyncio.gather(*subscriptions.values()), DEADLINE)
        stats = consumer.stats
        flow_seconds = time.monotonic() - began
        assert stats.delivered == len(names)
        assert stats.extra_loops == 0, "a flow of fresh messages is no backlog"
        # Batches of ten, or one a window if a busy machine sent slower than twenty a second (plus the
        # first long poll's one message and the tail), not a full batch and a quick small one after it.
        assert stats.batches <= max(len(names) / 10, flow_seconds / 1.0) + 3, (stats.as_dict(), flow_seconds)
        assert max(delays) < 1.0 + 1.0, delays
        print(f"\n{stats.batches} batches for {len(names)} events in {flow_seconds:.1f} s")
    finally:
        await consumer.aclose()


# ---------------------------------------------------------------------------- a queue that cannot work
SQS_LOGGER = "lyftlearn_provider.tracking.sqs"


def consumer_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == SQS_LOGGER and r.levelno >= logging.WARNING]


def sqs_calls(aws, action: str) -> int:
    return len(aws.control.calls(service="sqs", action=action))


async def test_a_missing_queue_hands_its_subscribers_to_reconciliation_once_without_a_hot_loop(aws, caplog):
    missing = route()["queue_url"] + "-missing"
    aws.control.reset_calls()
    consumer = make_consumer(missing)
    try:
        subscriptions = [consumer.subscribe(name) for name in ("ll-nowhere-1", "ll-nowhere-2")]
        outcomes = await asyncio.wait_for(asyncio.gather(*subscriptions), DEADLINE)

        assert all(isinstance(outcome, Fallback) for outcome in outcomes)
        assert "QueueDoesNotExist" in outcomes[0].reason or "NonExistentQueue" in outcomes[0].reason
        [warning] = consumer_warnings(caplog)
        assert missing in warning.getMessage()
        assert (
            "check the queue URL" in warning.getMessage() and "use tracking='shared'" in warning.getMessage()
        )
        await until(lambda: not consumer.running, "the consumer to stop")
        assert consumer.job_names == frozenset()

        # Later subscribers get the same answer at once, without a call; nothing keeps asking meanwhile.
        late = consumer.subscribe("ll-nowhere-3")
        assert late.outcome.done() and isinstance(late.outcome.result(), Fallback)
        assert not consumer.running
        await asyncio.sleep(0.5)
        assert (sqs_calls(aws, "GetQueueAttributes"), sqs_calls(aws, "ReceiveMessage")) == (1, 0)
        assert len(consumer_warnings(caplog)) == 1
    finally:
        await consumer.aclose()


async def test_receive_denied_falls_back_once_and_names_the_permission(aws, caplog):
    queue_url = route()["queue_url"]
    aws.control.reset_calls()
    consumer = make_consumer(queue_url)
    aws.control.inject("access_denied", 10**6, service="sqs", action="ReceiveMessage")
    try:
        outcome = await asyncio.wait_for(consumer.subscribe("ll-denied-1"), DEADLINE)
        assert isinstance(outcome, Fallback)
        [warning] = consumer_warnings(caplog)
        assert "grant sqs:ReceiveMessage to the connection's role" in warning.getMessage()
        assert warning.exc_info is None
        assert isinstance(consumer.subscribe("ll-denied-2").outcome.result(), Fallback)
        assert sqs_calls(aws, "ReceiveMessage") == 1
        assert consumer.stats.receive_errors == 1
    finally:
        await consumer.aclose()


async def test_a_broken_queue_is_tried_again_by_a_later_subscriber(aws, caplog):
    caplog.set_level(logging.INFO, logger=SQS_LOGGER)
    summary = route()
    missing = summary["queue_url"] + "-later"
    # No wait between outages and retries: every new subscriber tries the queue again.
    consumer = make_consumer(missing, retry_after=0.0)
    try:
        assert isinstance(await asyncio.wait_for(consumer.subscribe("ll-later-1"), DEADLINE), Fallback)
        assert consumer.health.reason is not None
        # Someone creates the queue; the next subscriber finds it working and gets its event.
        boto3.client("sqs").create_queue(QueueName=missing.rsplit("/", 1)[1])
        create_job("ll-later-2")
        waiting = consumer.subscribe("ll-later-2")
        await until(lambda: sqs_calls(aws, "ReceiveMessage") >= 1, "a receive from the new queue")
        boto3.client("sqs").send_message(
            QueueUrl=missing, MessageBody=event_body("ll-later-2", "Completed", time.time())
        )
        outcome = await asyncio.wait_for(waiting, DEADLINE)
        assert outcome.job_status == "Completed"
        assert consumer.health.reason is None
        assert any("works again" in r.getMessage() for r in caplog.records if r.name == SQS_LOGGER)
        assert len(consumer_warnings(caplog)) == 1
    finally:
        await consumer.aclose()


def test_a_queue_with_another_prefix_is_an_invalid_spec():
    async def ask() -> None:
        sqs_consumer("http://queue/a", prefix="ll")
        sqs_consumer("http://queue/a", prefix="fraud")

    with pytest.raises(
        InvalidSpecError, match="job_name_prefix: 'fraud' does not match the queue"
    ) as excinfo:
        asyncio.run(ask())
    assert "its own queue" in str(excinfo.value)
