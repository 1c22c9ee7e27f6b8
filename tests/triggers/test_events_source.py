"""TrainingJobTrigger(source="events"): EventBridge -> SQS for speed, the shared watcher as reconciliation."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import boto3
import pytest

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.hooks.events import EventRouteHook
from lyftlearn_provider.rendering.sagemaker import render_training_job
from lyftlearn_provider.status import JobEvent
from lyftlearn_provider.tracking.sqs import sqs_consumer
from lyftlearn_provider.tracking.watcher import shared_watcher
from lyftlearn_provider.triggers.training import TrainingJobTrigger
from tests.helpers import event_body, make_spec, until

FEW_RETRIES = {"retries": {"mode": "standard", "total_max_attempts": 2}}


def create_job(name: str) -> None:
    request = render_training_job(make_spec(), job_name=name, max_runtime_seconds=3600).request
    boto3.client("sagemaker").create_training_job(**request)


async def first_event(trigger: TrainingJobTrigger, timeout: float) -> tuple[dict, float]:
    started = time.monotonic()
    event = await asyncio.wait_for(anext(trigger.run()), timeout)
    return event.payload, time.monotonic() - started


@pytest.fixture
def queue_url(aws) -> str:
    return EventRouteHook(aws_conn_id="aws_default").ensure_route("ll")["queue_url"]


async def following(name: str, aws) -> None:
    """Wait until the trigger of ``name`` has subscribed and the watcher's first pass has looked."""
    await until(lambda: name in shared_watcher("aws_default", None).job_names, f"{name}'s subscriptions")
    await until(lambda: aws.control.calls(action="ListTrainingJobs"), "the watcher's first pass")


def trigger(name: str, queue_url: str, poll_interval: float) -> TrainingJobTrigger:
    return TrainingJobTrigger(
        name,
        source="events",
        queue_url=queue_url,
        job_name_prefix="ll",
        poll_interval=poll_interval,
        botocore_config=FEW_RETRIES,
    )


async def test_event_reports_the_end_long_before_reconciliation(aws, queue_url):
    create_job("ll-events-fast")
    waiting = asyncio.ensure_future(first_event(trigger("ll-events-fast", queue_url, 60.0), timeout=30))
    await following("ll-events-fast", aws)  # the watcher's next look is a minute away
    aws.control.fail("ll-events-fast", "AlgorithmError: diverged")
    payload, _ = await waiting
    assert payload["status"] == "terminal"
    assert (payload["job_status"], payload["failure_reason"]) == ("Failed", "AlgorithmError: diverged")
    listings = aws.control.calls(action="ListTrainingJobs")
    assert len(listings) <= 2  # the event, not a later reconciliation pass, ended the wait


async def test_lost_event_is_reconciled_within_the_interval(aws, queue_url):
    create_job("ll-events-lost")
    aws.control.settings(publish_events=False)  # every event of this job is lost
    waiting = asyncio.ensure_future(first_event(trigger("ll-events-lost", queue_url, 1.0), timeout=30))
    await following("ll-events-lost", aws)
    ended = time.monotonic()
    aws.control.complete("ll-events-lost")
    payload, _ = await waiting
    assert (payload["status"], payload["job_status"]) == ("terminal", "Completed")
    assert time.monotonic() - ended < 1.0 + 3.0  # interval + overlap of the budget and one pass


async def test_late_events_of_a_reconciled_job_are_old_news_not_released(aws, queue_url):
    # The watcher found the end first (events were late); when the job's own terminal event arrives, this
    # process knows the job ended and deletes it, instead of releasing it to other triggerer processes.
    create_job("ll-events-late")
    aws.control.settings(publish_events=False)
    waiting = asyncio.ensure_future(first_event(trigger("ll-events-late", queue_url, 1.0), timeout=30))
    await following("ll-events-late", aws)
    aws.control.complete("ll-events-late")
    payload, _ = await waiting
    assert payload["job_status"] == "Completed"

    consumer = sqs_consumer(queue_url, prefix="ll")
    keep_alive = consumer.subscribe("ll-events-other")  # keeps the consumer receiving
    try:
        boto3.client("sqs").send_message(
            QueueUrl=queue_url, MessageBody=event_body("ll-events-late", "Completed", time.time())
        )
        await until(lambda: consumer.stats.received > 0, "the late event")
        assert consumer.stats.received == 1
        assert (consumer.stats.released, consumer.stats.settled) == (0, 1)
    finally:
        keep_alive.close()
        await consumer.aclose()


def test_events_source_needs_its_queue():
    with pytest.raises(ValueError, match="queue_url and job_name_prefix") as excinfo:
        TrainingJobTrigger("ll-x", source="events")
    # The provider's configuration error, naming the arguments and the fix.
    assert isinstance(excinfo.value, InvalidSpecError)
    assert excinfo.value.field == "queue_url, job_name_prefix"
    assert "SetupTrainingEventsOperator" in excinfo.value.fix


def test_events_trigger_serializes_round_trip(queue_url):
    original = trigger("ll-x", queue_url, 30.0)
    classpath, kwargs = original.serialize()
    assert kwargs["source"] == "events"
    assert kwargs["queue_url"] == queue_url
    assert TrainingJobTrigger(**kwargs).serialize() == (classpath, kwargs)


# ---------------------------------------------------------------------------- a queue that cannot work
SQS_LOGGER = "lyftlearn_provider.tracking.sqs"
WATCHER_LOGGER = "lyftlearn_provider.tracking.watcher"


def warnings_of(caplog, logger: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == logger and r.levelno >= logging.WARNING]


def end_jobs(aws, names: list[str]) -> None:
    for index, name in enumerate(names):
        if index % 3 == 0:
            aws.control.complete(name)
        elif index % 3 == 1:
            aws.control.fail(name, f"AlgorithmError: {name} diverged")
        else:
            aws.control.stop(name)


def true_terminal(aws, name: str) -> dict[str, Any]:
    job = aws.control.wait_for_status(name, "Completed", "Failed", "Stopped")
    return JobEvent.terminal(name, job["TrainingJobStatus"], job.get("FailureReason")).to_payload()


async def run_to_end(job_trigger: TrainingJobTrigger) -> list[dict]:
    return [event.payload async for event in job_trigger.run()]


async def test_missing_queue_triggers_end_by_reconciliation_with_one_warning_and_no_hot_loop(
    aws, queue_url, caplog
):
    missing = f"{queue_url}-missing"
    names = [f"ll-noqueue-{index}" for index in range(4)]
    for name in names:
        create_job(name)
    aws.control.reset_calls()
    runs = [asyncio.ensure_future(run_to_end(trigger(name, missing, 0.5))) for name in names]
    consumer = sqs_consumer(missing, prefix="ll")
    await until(lambda: consumer.health.reason is not None, "the consumer to give up on the queue")
    await until(lambda: shared_watcher("aws_default", None).job_names == set(names), "reconciliation")
    await asyncio.to_thread(end_jobs, aws, names)
    results = await asyncio.wait_for(asyncio.gather(*runs), 30)

    # Reconciliation (the shared watcher) ended every trigger in its job's true state; no error event.
    assert results == [[true_terminal(aws, name)] for name in names]
    [warning] = warnings_of(caplog, SQS_LOGGER)
    assert missing in warning.getMessage() and "check the queue URL" in warning.getMessage()
    assert warnings_of(caplog, WATCHER_LOGGER) == []
    # The queue was asked about once for the whole process: no receive loop, hot or otherwise.
    sqs = aws.control.calls(service="sqs")
    assert [call["action"] for call in sqs] == ["GetQueueAttributes"]


async def test_queue_and_listing_both_denied_every_trigger_polls_its_own_job(aws, queue_url, caplog):
    names = [f"ll-alldenied-{index}" for index in range(3)]
    for name in names:
        create_job(name)
    aws.control.inject("access_denied", 10**6, service="sqs", action="ReceiveMessage")
    aws.control.inject("access_denied", 10**6, action="ListTrainingJobs")
    runs = [asyncio.ensure_future(run_to_end(trigger(name, queue_url, 0.2))) for name in names]
    await until(
        lambda: all(aws.control.calls(action="DescribeTrainingJob", job_name=name) for name in names),
        "every trigger to poll its own job",
    )
    await asyncio.to_thread(end_jobs, aws, names)
    results = await asyncio.wait_for(asyncio.gather(*runs), 30)

    assert results == [[true_terminal(aws, name)] for name in names]
    assert len(warnings_of(caplog, SQS_LOGGER)) == 1
    assert len(warnings_of(caplog, WATCHER_LOGGER)) == 1
    assert len(aws.control.calls(action="ReceiveMessage")) == 1
    assert len(aws.control.calls(action="ListTrainingJobs")) == 1


async def test_listing_denied_events_still_end_the_wait_and_polling_reconciles(aws, queue_url, caplog):
    delivered, lost = "ll-evpoll-delivered", "ll-evpoll-lost"
    for name in (delivered, lost):
        create_job(name)
    aws.control.inject("access_denied", 10**6, action="ListTrainingJobs")
    consumer = sqs_consumer(queue_url, prefix="ll")
    runs = {
        name: asyncio.ensure_future(run_to_end(trigger(name, queue_url, 60.0))) for name in (delivered, lost)
    }
    await until(lambda: consumer.job_names == {delivered, lost}, "the event subscriptions")
    await until(
        lambda: shared_watcher("aws_default", None).health.reason is not None, "the watcher to give up"
    )
    # Polling every 60 s now reconciles: an event still ends the wait long before that.
    aws.control.complete(delivered)
    [payload] = await asyncio.wait_for(runs[delivered], 30)
    assert payload == true_terminal(aws, delivered)
    assert consumer.stats.delivered == 1
    runs[lost].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await runs[lost]
    assert consumer.job_names == frozenset()


async def test_cancelling_a_waiting_events_trigger_leaves_no_subscription_and_no_event(aws, queue_url):
    name = "ll-events-cancelled"
    create_job(name)
    events: list[dict] = []

    async def follow() -> None:
        async for event in trigger(name, queue_url, 1.0).run():
            events.append(event.payload)

    run = asyncio.ensure_future(follow())
    consumer = sqs_consumer(queue_url, prefix="ll")
    watcher = shared_watcher("aws_default", None)
    await until(lambda: consumer.job_names == {name} and watcher.job_names == {name}, "the subscriptions")
    run.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(run, 10)
    assert run.cancelled() and events == []
    assert consumer.job_names == frozenset() and watcher.job_names == frozenset()
    assert not watcher.running
    await consumer.aclose()
