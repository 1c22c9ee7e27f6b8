"""Training and batch jobs followed side by side in one event loop (one triggerer process) by each tracker.

The shared watcher keeps one listing per job kind under the process's one call budget; the SQS consumer of
a prefix's queue serves both kinds' events, which the route's rule forwards with one ``$or`` pattern.
"""

from __future__ import annotations

import asyncio
import time

import boto3
import pytest

from lyftlearn_provider.hooks.events import EventRouteHook
from lyftlearn_provider.job_kinds import PROCESSING, TRAINING
from lyftlearn_provider.rendering.sagemaker import render_processing_job, render_training_job
from lyftlearn_provider.tracking.budget import process_budget
from lyftlearn_provider.tracking.sqs import sqs_consumer
from lyftlearn_provider.tracking.watcher import shared_watcher
from lyftlearn_provider.triggers.training import BatchJobTrigger, TrainingJobTrigger
from tests.batch.helpers import OUTPUTS, batch_spec
from tests.helpers import make_spec, until

FEW_RETRIES = {"retries": {"mode": "standard", "total_max_attempts": 2}}


def create_training(name: str) -> None:
    request = render_training_job(make_spec(), job_name=name, max_runtime_seconds=3600).request
    boto3.client("sagemaker").create_training_job(**request)


def create_batch(name: str) -> None:
    request = render_processing_job(batch_spec(), job_name=name, max_runtime_seconds=3600, outputs=OUTPUTS)
    boto3.client("sagemaker").create_processing_job(**request.request)


def triggers(names: dict[str, str], source: str, interval: float, queue_url: str | None = None):
    """Return one trigger per job: ``names`` maps a job name to its kind."""
    made = {}
    for name, kind in names.items():
        trigger_class = BatchJobTrigger if kind == "processing" else TrainingJobTrigger
        made[name] = trigger_class(
            name,
            source=source,
            poll_interval=interval,
            botocore_config=FEW_RETRIES,
            queue_url=queue_url,
            job_name_prefix="ll" if queue_url else None,
        )
    return made


async def first_events(made: dict, timeout: float) -> dict[str, dict]:
    async def one(trigger) -> dict:
        return (await asyncio.wait_for(anext(trigger.run()), timeout)).payload

    payloads = await asyncio.gather(*(one(trigger) for trigger in made.values()))
    return dict(zip(made, payloads, strict=True))


def end_all(aws, names: dict[str, str]) -> None:
    for index, (name, kind) in enumerate(names.items()):
        control = aws.control.processing() if kind == "processing" else aws.control
        if index % 3 == 2:
            control.fail(name, "AlgorithmError: bad rows")
        else:
            control.complete(name)


MIXED = {
    **{f"ll-mixed-train-{i}": "training" for i in range(4)},
    **{f"ll-mixed-batch-{i}": "processing" for i in range(4)},
}


def expected(names: dict[str, str]) -> dict[str, str]:
    return {name: "Failed" if index % 3 == 2 else "Completed" for index, name in enumerate(names)}


async def test_poll_follows_training_and_batch_jobs_each_with_its_own_describe(aws):
    names = {"ll-poll-train": "training", "ll-poll-batch": "processing"}
    create_training("ll-poll-train")
    create_batch("ll-poll-batch")
    waiting = asyncio.ensure_future(first_events(triggers(names, "poll", 0.1), timeout=30))
    await until(lambda: aws.control.calls(action="DescribeProcessingJob"), "the batch trigger's first poll")
    end_all(aws, names)
    payloads = await waiting
    assert {name: p["job_status"] for name, p in payloads.items()} == expected(names)
    assert {c["job_name"] for c in aws.control.calls(action="DescribeProcessingJob")} == {"ll-poll-batch"}
    assert {c["job_name"] for c in aws.control.calls(action="DescribeTrainingJob")} == {"ll-poll-train"}


async def test_shared_watchers_of_both_kinds_run_in_one_process_under_one_budget(aws):
    for name, kind in MIXED.items():
        (create_batch if kind == "processing" else create_training)(name)
    waiting = asyncio.ensure_future(first_events(triggers(MIXED, "shared", 0.5), timeout=30))
    training_watcher = shared_watcher("aws_default", None, TRAINING)
    batch_watcher = shared_watcher("aws_default", None, PROCESSING)
    await until(lambda: len(training_watcher.job_names) == 4, "the training subscriptions")
    await until(lambda: len(batch_watcher.job_names) == 4, "the batch subscriptions")
    assert training_watcher is not batch_watcher
    assert training_watcher.budget is batch_watcher.budget is process_budget("aws_default", None)
    end_all(aws, MIXED)
    payloads = await waiting
    assert {name: p["job_status"] for name, p in payloads.items()} == expected(MIXED)
    assert payloads["ll-mixed-batch-1"]["failure_reason"] == "AlgorithmError: bad rows"
    assert aws.control.calls(action="ListProcessingJobs")
    assert aws.control.calls(action="ListTrainingJobs")
    # Batched: far fewer calls than jobs times passes; Describe only for the failed jobs' reasons and
    # for jobs a first listing had not shown.
    describes = aws.control.calls(action="DescribeProcessingJob") + aws.control.calls(
        action="DescribeTrainingJob"
    )
    assert len(describes) <= 2 * len(MIXED)


async def test_shared_batch_watcher_rides_out_throttling_of_its_listing(aws):
    names = {"ll-throttled-batch": "processing", "ll-throttled-train": "training"}
    create_batch("ll-throttled-batch")
    create_training("ll-throttled-train")
    aws.control.inject("throttle", 3, action="ListProcessingJobs")
    aws.control.inject("server_error", 1, action="ListProcessingJobs")
    waiting = asyncio.ensure_future(first_events(triggers(names, "shared", 0.2), timeout=60))
    await until(lambda: aws.control.calls(action="ListProcessingJobs"), "the batch watcher's first pass")
    end_all(aws, names)
    payloads = await waiting
    assert {p["job_status"] for p in payloads.values()} == {"Completed"}
    assert aws.control.faults() == []


@pytest.fixture
def queue_url(aws) -> str:
    return EventRouteHook(aws_conn_id="aws_default").ensure_route("ll")["queue_url"]


async def test_events_of_both_kinds_reach_one_consumer_long_before_reconciliation(aws, queue_url):
    names = {"ll-events-train": "training", "ll-events-batch": "processing"}
    create_training("ll-events-train")
    create_batch("ll-events-batch")
    made = triggers(names, "events", 60.0, queue_url=queue_url)  # reconciliation a minute away
    waiting = asyncio.ensure_future(first_events(made, timeout=30))
    consumer = sqs_consumer(queue_url, prefix="ll", aws_conn_id="aws_default", region_name=None)
    await until(lambda: consumer.job_names == set(names), "both subscriptions on one consumer")
    await until(lambda: aws.control.calls(action="ListProcessingJobs"), "the batch watcher's first pass")
    ended = time.monotonic()
    end_all(aws, names)
    payloads = await waiting
    assert time.monotonic() - ended < 20  # the events, not a pass 60 s later, ended both waits
    assert {name: p["job_status"] for name, p in payloads.items()} == {
        "ll-events-train": "Completed",
        "ll-events-batch": "Completed",
    }
    kinds = {event["detail-type"] for event in aws.control.events()}
    assert "SageMaker Processing Job State Change" in kinds
    assert len(aws.control.calls(action="ListProcessingJobs")) <= 2


async def test_batch_trigger_round_trips_and_stops_its_processing_job_on_mark_failed(aws):
    create_batch("ll-kill-batch")
    trigger = BatchJobTrigger("ll-kill-batch", source="shared", poll_interval=5.0)
    classpath, kwargs = trigger.serialize()
    assert classpath == "lyftlearn_provider.triggers.training.BatchJobTrigger"
    assert kwargs["job_kind"] == "processing"
    await BatchJobTrigger(**kwargs).on_kill()  # what Airflow >= 3.3 calls when the task is marked failed
    assert [c["job_name"] for c in aws.control.calls(action="StopProcessingJob")] == ["ll-kill-batch"]
    assert aws.control.calls(action="StopTrainingJob") == []


async def test_polling_a_batch_job_rides_out_throttling_5xx_and_resets(aws):
    create_batch("ll-poll-storm")
    for kind, count in (("throttle", 3), ("server_error", 2), ("reset", 2)):
        aws.control.inject(kind, count, action="DescribeProcessingJob")
    waiting = asyncio.ensure_future(first_events(triggers({"ll-poll-storm": "processing"}, "poll", 0.05), 30))
    await until(lambda: aws.control.faults() == [], "the storm to pass")
    aws.control.processing().complete("ll-poll-storm")
    payloads = await waiting
    assert (payloads["ll-poll-storm"]["status"], payloads["ll-poll-storm"]["job_status"]) == (
        "terminal",
        "Completed",
    )
