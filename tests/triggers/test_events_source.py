"""TrainingJobTrigger(source="events"): EventBridge -> SQS for speed, the shared watcher as reconciliation."""

from __future__ import annotations

import asyncio
import time

import boto3
import pytest

from lyftlearn_provider.hooks.events import EventRouteHook
from lyftlearn_provider.rendering.sagemaker import render_training_job
from lyftlearn_provider.tracking.sqs import sqs_consumer
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
    await asyncio.sleep(1.0)  # the trigger is subscribed; the watcher's next look is a minute away
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
    await asyncio.sleep(0.5)
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
    await asyncio.sleep(0.5)
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
    with pytest.raises(ValueError, match="queue_url and job_name_prefix"):
        TrainingJobTrigger("ll-x", source="events")


def test_events_trigger_serializes_round_trip(queue_url):
    original = trigger("ll-x", queue_url, 30.0)
    classpath, kwargs = original.serialize()
    assert kwargs["source"] == "events"
    assert kwargs["queue_url"] == queue_url
    assert TrainingJobTrigger(**kwargs).serialize() == (classpath, kwargs)
