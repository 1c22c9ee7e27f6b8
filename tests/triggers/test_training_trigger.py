"""TrainingJobTrigger against the AWS emulator over HTTP (aiobotocore through the amazon provider's hook)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import itertools
import json
import re
import time
from typing import Any

import boto3
import pytest
from airflow.sdk.exceptions import TaskDeferred

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.operators.training import TrainModelOperator
from lyftlearn_provider.rendering.sagemaker import render_training_job
from lyftlearn_provider.status import JobEvent
from lyftlearn_provider.tracking.budget import process_budget
from lyftlearn_provider.tracking.sqs import sqs_consumer
from lyftlearn_provider.tracking.watcher import shared_watcher
from lyftlearn_provider.triggers import training as training_module
from lyftlearn_provider.triggers.training import TrainingJobTrigger
from tests.helpers import make_context, make_spec

#: botocore retries once; storms longer than that have to be carried by the trigger's own back-off.
FEW_RETRIES = {"retries": {"mode": "standard", "total_max_attempts": 2}}
#: botocore does not retry at all: every injected fault reaches the trigger.
NO_RETRIES = {"retries": {"mode": "standard", "total_max_attempts": 1}}
POLL = 0.02
#: Slack for timestamps taken by the emulator (time.monotonic on arrival) versus asyncio's clock.
EPSILON = 0.005
JOB = "fraud-train-1"


# ------------------------------------------------------------------------------------------ helpers
def create_job(name: str = JOB) -> str:
    rendering = render_training_job(make_spec(), job_name=name, max_runtime_seconds=3600)
    boto3.client("sagemaker").create_training_job(**rendering.request)
    return name


def make_trigger(name: str = JOB, **kwargs: Any) -> TrainingJobTrigger:
    kwargs.setdefault("botocore_config", FEW_RETRIES)
    kwargs.setdefault("poll_interval", POLL)
    return TrainingJobTrigger(name, **kwargs)


def revive(trigger: TrainingJobTrigger) -> TrainingJobTrigger:
    """Rebuild the trigger the way the triggerer does: from its serialized (JSON) form."""
    classpath, kwargs = trigger.serialize()
    module, _, name = classpath.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    return cls(**json.loads(json.dumps(kwargs)))


async def collect(trigger: TrainingJobTrigger, timeout: float = 15.0) -> list[dict[str, Any]]:
    """Run the trigger to its end and return every event's payload (fails instead of hanging)."""

    async def drain() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return await asyncio.wait_for(drain(), timeout)


async def control(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Call the emulator's (blocking) control client without stalling the trigger's event loop."""
    return await asyncio.to_thread(call, *args, **kwargs)


def describes(aws, name: str = JOB) -> list[dict[str, Any]]:
    return aws.control.calls(action="DescribeTrainingJob", job_name=name)


async def wait_for_describes(aws, count: int, name: str = JOB, timeout: float = 10.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        calls = await control(describes, aws, name)
        if len(calls) >= count:
            return calls
        assert time.monotonic() < deadline, f"only {len(calls)} DescribeTrainingJob calls, expected {count}"
        await asyncio.sleep(0.02)


async def wait_for_faults_left(aws, at_most: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while sum(fault["remaining"] for fault in await control(aws.control.faults)) > at_most:
        assert time.monotonic() < deadline, "the injected faults were not used up"
        await asyncio.sleep(0.02)


async def cancel(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)


def terminal(name: str, status: str, reason: str | None = None) -> dict[str, Any]:
    """Return the payload of a terminal event (``failure_reason`` only when the job has one)."""
    return JobEvent.terminal(name, status, reason).to_payload()


def is_json_primitive(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(is_json_primitive(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and is_json_primitive(item) for key, item in value.items())
    return False


# ------------------------------------------------------------------------------------ serialization
@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {
            "aws_conn_id": "aws_training",
            "region_name": "eu-west-1",
            "verify": "/etc/ssl/certs/corp.pem",
            "botocore_config": {"retries": {"mode": "standard", "total_max_attempts": 2}},
            "poll_interval": 12.5,
            "deadline": 1_900_000_000.25,
        },
        {"aws_conn_id": None, "verify": False, "poll_interval": 1, "deadline": 1_900_000_000},
    ],
    ids=["defaults", "everything-set", "falsy-values"],
)
def test_serialize_round_trips(kwargs):
    trigger = TrainingJobTrigger(JOB, **kwargs)
    classpath, serialized = trigger.serialize()

    module, _, name = classpath.rpartition(".")
    assert getattr(importlib.import_module(module), name) is TrainingJobTrigger
    parameters = set(inspect.signature(TrainingJobTrigger.__init__).parameters) - {"self"}
    assert set(serialized) == parameters
    assert serialized["job_name"] == JOB
    for key, value in kwargs.items():
        assert serialized[key] == value
    assert is_json_primitive(serialized)
    assert json.loads(json.dumps(serialized)) == serialized

    again = revive(trigger)
    assert type(again) is TrainingJobTrigger
    assert again.serialize() == (classpath, serialized)


# ---------------------------------------------------------------------------------- terminal states
@pytest.mark.parametrize("end", ["complete", "fail", "stop"])
async def test_one_event_per_terminal_state_then_stops(aws, end):
    create_job()
    trigger = revive(make_trigger())
    run = asyncio.ensure_future(collect(trigger))
    # The trigger is polling a running job and has nothing to say yet.
    await wait_for_describes(aws, 3)
    assert not run.done()

    if end == "complete":
        await control(aws.control.complete, JOB, metrics={"validation:auc": 0.91})
        expected_status, expected_reason = "Completed", None
    elif end == "fail":
        await control(aws.control.fail, JOB, "AlgorithmError: out of memory")
        expected_status, expected_reason = "Failed", "AlgorithmError: out of memory"
    else:
        # Stopping is not terminal: the trigger has to wait for Stopped (0.2 s later in the emulator).
        await control(aws.control.stop, JOB)
        expected_status, expected_reason = "Stopped", None

    events = await run
    assert events == [terminal(JOB, expected_status, expected_reason)]
    json.dumps(events)  # the triggerer stores the payload as JSON
    # The last thing the trigger did was read the terminal state; nothing polls any more.
    calls = describes(aws)
    assert all(call["status"] == 200 for call in calls)
    await asyncio.sleep(5 * POLL)
    assert len(describes(aws)) == len(calls)


async def test_already_finished_job_reports_on_the_first_poll(aws):
    create_job()
    aws.control.fail(JOB, "ClientError: no data in s3://lyftlearn-data/fraud/")
    events = await collect(make_trigger())
    assert events == [
        {
            "status": "terminal",
            "job_name": JOB,
            "job_status": "Failed",
            "failure_reason": "ClientError: no data in s3://lyftlearn-data/fraud/",
        }
    ]
    assert len(describes(aws)) == 1


async def test_keeps_polling_through_secondary_statuses_until_the_job_completes(aws):
    create_job()
    run = asyncio.ensure_future(collect(make_trigger()))
    await wait_for_describes(aws, 2)
    for secondary in ("Downloading", "Training"):
        seen = len(await control(describes, aws))
        await control(aws.control.advance, JOB, secondary)
        # At least two polls observed the job in this phase, and none of them ended the trigger.
        await wait_for_describes(aws, seen + 3)
        assert not run.done()
    assert aws.control.job(JOB)["SecondaryStatus"] == "Training"

    completed_at = time.monotonic()
    await control(aws.control.complete, JOB)
    events = await run
    assert [(e["status"], e["job_status"]) for e in events] == [("terminal", "Completed")]
    # The poll that found Completed came after the completion, not before.
    assert describes(aws)[-1]["t"] >= completed_at


async def test_trigger_from_the_operator_follows_the_job_to_completion(training_image, aws):
    aws.control.autopilot(
        phases={"Starting": 0.05, "Downloading": 0.05, "Training": 0.1, "Uploading": 0.05},
        metrics={"validation:auc": 0.93},
    )
    operator = TrainModelOperator(
        task_id="train", spec=make_spec(), deferrable=True, poll_interval=POLL, botocore_config=FEW_RETRIES
    )
    context = make_context()
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, TrainingJobTrigger)

    events = await collect(revive(trigger))
    assert len(events) == 1
    assert events[0]["status"] == "terminal"
    assert events[0]["job_status"] == "Completed"
    assert events[0]["job_name"] == trigger.job_name
    # The event is one the operator can resume from (with whatever kwargs it deferred with).
    resume_kwargs = deferred.value.kwargs or {}
    result = await asyncio.to_thread(operator.execute_complete, context, event=events[0], **resume_kwargs)
    assert result["job_name"] == trigger.job_name
    assert result["status"] == "Completed"
    assert result["final_metrics"] == {"validation:auc": 0.93}


# ------------------------------------------------------------------------------------------- errors
async def test_missing_job_is_an_error_naming_it(aws):
    events = await collect(make_trigger("fraud-train-never-created"))
    assert len(events) == 1
    [event] = events
    assert event["status"] == "error"
    assert event["error_kind"] == "job"
    assert event["job_name"] == "fraud-train-never-created"
    assert "fraud-train-never-created" in event["message"]
    assert "does not exist" in event["message"]
    # "Not found" is an answer, not a transient failure: asked once, not retried.
    assert len(describes(aws, "fraud-train-never-created")) == 1


async def test_invalid_job_name_is_an_error_event_about_the_job(aws):
    # A name SageMaker rejects: a 400 ValidationException that is neither "not found" nor worth retrying.
    name = "fraud_train_1"
    events = await collect(make_trigger(name))
    assert len(events) == 1
    [event] = events
    assert event["status"] == "error"
    assert event["error_kind"] == "job"
    assert event["job_name"] == name
    assert "ValidationException" in event["message"]
    assert name in event["message"]
    calls = describes(aws, name)
    assert [call["status"] for call in calls] == [400]


async def test_access_denied_is_a_tracker_error_naming_the_permission(aws):
    create_job()
    aws.control.inject("access_denied", 5, action="DescribeTrainingJob")
    events = await collect(make_trigger())
    [event] = events
    assert (event["status"], event["error_kind"], event["job_name"]) == ("error", "tracker", JOB)
    assert JOB in event["message"]
    assert "AccessDeniedException" in event["message"]
    assert "grant sagemaker:DescribeTrainingJob to the connection's role" in event["message"]
    # Asked once: a missing permission does not come back by asking again.
    assert len(describes(aws)) == 1
    assert aws.control.job(JOB)["TrainingJobStatus"] == "InProgress"


async def test_anything_unexpected_is_an_error_event_carrying_the_job_name(aws, monkeypatch):
    create_job()

    async def garbled(self, client, name):
        raise KeyError("TrainingJobStatus")

    monkeypatch.setattr(training_module.SageMakerTrainingHook, "describe_job_async", garbled)
    [event] = await collect(make_trigger())
    assert (event["status"], event["error_kind"], event["job_name"]) == ("error", "unexpected", JOB)
    assert JOB in event["message"] and "KeyError" in event["message"]


async def test_a_storm_of_more_than_forty_failures_still_ends_terminal(aws, capsys):
    # The old rule gave the job back after 40 transient failures in a row; only the deadline bounds it now.
    create_job()
    storm = 60
    aws.control.inject("unavailable", storm, action="DescribeTrainingJob")
    run = asyncio.ensure_future(
        collect(make_trigger(botocore_config=NO_RETRIES, poll_interval=0.001), timeout=60)
    )
    await wait_for_faults_left(aws, 0, timeout=50)
    await control(aws.control.complete, JOB)
    events = await run

    assert events == [terminal(JOB, "Completed")]
    calls = describes(aws)
    assert [call["fault"] for call in calls[:storm]] == ["unavailable"] * storm
    assert calls[-1]["status"] == 200
    # The task log says the storm lasts, once per doubling (8, 16, 32 failures), not once per failure.
    # (A trigger logs through Airflow's structlog, to the task's log; here, to stdout.)
    out = capsys.readouterr().out
    assert re.findall(r"AWS failed (\d+) times in a row while following fraud-train-1", out) == [
        "8",
        "16",
        "32",
    ]


def test_the_pause_between_polls_is_capped():
    # Sixteen intervals at most, and never more than five minutes unless the interval itself is longer.
    assert max(training_module.backoff(1.0, failures) for failures in range(100)) <= 16 * 1.2
    assert max(training_module.backoff(30.0, failures) for failures in range(100)) <= 300 * 1.2
    assert 0.8 * 600 <= training_module.backoff(600.0, 50) <= 1.2 * 600


# ----------------------------------------------------------------------------------------- deadline
async def test_deadline_in_the_past_times_out_immediately(aws):
    create_job()
    started = time.monotonic()
    events = await collect(make_trigger(deadline=time.time() - 1), timeout=10)
    assert events == [{"status": "timeout", "job_name": JOB, "message": "the task's deadline passed"}]
    assert time.monotonic() - started < 5
    assert describes(aws) == []
    # Stopping the job is the task's business, not the trigger's.
    assert aws.control.job(JOB)["TrainingJobStatus"] == "InProgress"
    assert aws.control.calls(action="StopTrainingJob") == []


@pytest.mark.parametrize("poll_interval", [0.05, 30.0], ids=["fast-polls", "poll-longer-than-deadline"])
async def test_deadline_in_the_future_times_out_about_then(aws, poll_interval):
    create_job()
    # The first client of a process and event loop pays for imports and thread pools (over 2 s under
    # stress-ng); an earlier trigger of the triggerer would have paid it: do so before the clock starts.
    async with await make_trigger().hook().get_async_conn():
        pass
    # Room for the first look even on a loaded machine.
    allowed = 2.0
    started = time.monotonic()
    trigger = make_trigger(poll_interval=poll_interval, deadline=time.time() + allowed)
    events = await collect(trigger, timeout=10)
    elapsed = time.monotonic() - started

    assert events == [{"status": "timeout", "job_name": JOB, "message": "the task's deadline passed"}]
    # Not before the deadline; and not a whole poll interval after it either.
    assert allowed - 0.05 <= elapsed < allowed + 3
    calls = describes(aws)
    assert calls, "the trigger should have looked at the job before the deadline"
    assert all(call["status"] == 200 for call in calls)
    if poll_interval < allowed:
        assert len(calls) >= 3
    assert aws.control.job(JOB)["TrainingJobStatus"] == "InProgress"


# ----------------------------------------------------------------------------------- transient storms
@pytest.mark.parametrize(
    ("kind", "count"),
    [("throttle", 30), ("server_error", 4), ("unavailable", 4), ("reset", 4)],
)
async def test_transient_storm_while_the_job_completes_still_ends_completed(aws, kind, count):
    create_job()
    aws.control.advance(JOB, "Training")
    aws.control.inject(kind, count, action="DescribeTrainingJob")
    run = asyncio.ensure_future(collect(make_trigger(), timeout=35))

    # The job finishes in the middle of the storm.
    await wait_for_faults_left(aws, count // 2)
    assert not run.done()
    await control(aws.control.complete, JOB)
    events = await run

    assert events == [terminal(JOB, "Completed")]
    assert aws.control.faults() == []
    calls = describes(aws)
    assert [call["fault"] for call in calls[:count]] == [kind] * count
    # After the storm the trigger went back to plain polling and found the job Completed.
    assert len(calls) > count
    assert all(call["status"] == 200 and call["fault"] is None for call in calls[count:])

    # botocore tries each poll twice, so the calls come in pairs; between two pairs the trigger
    # waited its own back-off: the poll interval doubled per failure in a row (at most 16 times), ±20 %.
    for failures in range(1, count // 2 + 1):
        gap = calls[2 * failures]["t"] - calls[2 * failures - 1]["t"]
        least = 0.8 * POLL * 2 ** min(failures, 4)
        assert gap >= least - EPSILON, (
            f"after {failures} failures the trigger waited {gap:.3f}s < {least:.3f}s"
        )


# ------------------------------------------------------------------------------------------ polling
async def test_polling_is_jittered_and_paced_by_the_poll_interval(aws, monkeypatch):
    create_job()
    pauses: list[tuple[int, float]] = []
    real_backoff = training_module.backoff

    def recording_backoff(base: float, failures: int) -> float:
        pause = real_backoff(base, failures)
        pauses.append((failures, pause))
        return pause

    monkeypatch.setattr(training_module, "backoff", recording_backoff)
    poll, window = 0.1, 1.2
    run = asyncio.ensure_future(collect(make_trigger(poll_interval=poll), timeout=15))
    first = (await wait_for_describes(aws, 1))[0]["t"]
    await asyncio.sleep(max(0.0, first + window + 0.3 - time.monotonic()))
    await cancel(run)

    calls = [call for call in describes(aws) if call["t"] <= first + window]
    # Never faster than the shortest jittered pause allows; not stalled either (generous: loaded CI).
    assert len(calls) <= int(window / (0.8 * poll)) + 1
    assert len(calls) >= int(0.4 * window / (1.2 * poll))
    gaps = [later["t"] - earlier["t"] for earlier, later in itertools.pairwise(calls)]
    assert min(gaps) >= 0.8 * poll - EPSILON

    # Every pause was the poll interval moved at random by up to 20 %, never the same twice.
    assert pauses and all(failures == 0 for failures, _ in pauses)
    values = [pause for _, pause in pauses]
    assert all(0.8 * poll <= value <= 1.2 * poll for value in values)
    assert len(values) > 3
    assert len(set(values)) == len(values)
    assert max(values) - min(values) > 0.01 * poll


async def test_poll_triggers_of_a_process_share_one_call_budget_and_its_penalty(aws, monkeypatch):
    # Alone, four triggers polling every 20 ms would make ~200 calls a second; the budget allows 5.
    monkeypatch.setenv("AIRFLOW__LYFTLEARN__API_CALLS_PER_SECOND", "5")
    monkeypatch.setenv("AIRFLOW__LYFTLEARN__API_BURST", "1")
    names = [create_job(f"fraud-budget-{index}") for index in range(4)]
    runs = [asyncio.ensure_future(collect(make_trigger(name), timeout=30)) for name in names]
    # Every trigger gets its turn (however long a loaded machine takes to make their clients) ...
    for name in names:
        await wait_for_describes(aws, 1, name, timeout=20)
    calls = await control(aws.control.calls, action="DescribeTrainingJob")
    first = calls[0]["t"]
    # ... and, over the 1.5 s after the first call, they share one budget between them.
    await asyncio.sleep(max(0.0, first + 1.5 - time.monotonic()) + 0.1)
    calls = await control(aws.control.calls, action="DescribeTrainingJob")
    in_window = [call for call in calls if call["t"] <= first + 1.5]
    assert len(in_window) <= 5 * 1.5 + 1 + 1, len(in_window)
    assert {call["job_name"] for call in calls} == set(names), "every trigger gets its turn"

    # A throttling answer to one trigger slows the whole process down.
    budget = process_budget("aws_default", None)
    # botocore retries each call once: eight throttles are sure to fail at least one call outright.
    await control(aws.control.inject, "throttle", 8, service="sagemaker", action="DescribeTrainingJob")
    deadline = time.monotonic() + 10
    while budget.rate >= 5 and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert budget.rate < 5
    for name in names:
        await control(aws.control.complete, name)
    results = await asyncio.gather(*runs)
    assert [events[-1]["job_status"] for events in results] == ["Completed"] * len(names)


# ------------------------------------------------------------------------------------------ on_kill
async def test_on_kill_stops_a_running_job(aws):
    create_job()
    aws.control.advance(JOB, "Training")
    trigger = revive(make_trigger())
    run = asyncio.ensure_future(collect(trigger))
    await wait_for_describes(aws, 2)
    # What the triggerer does when a user marks the task failed: cancel run(), then on_kill().
    await cancel(run)
    await asyncio.wait_for(trigger.on_kill(), 10)

    assert aws.control.job(JOB)["TrainingJobStatus"] in ("Stopping", "Stopped")
    assert [call["status"] for call in aws.control.calls(action="StopTrainingJob")] == [200]
    assert aws.control.wait_for_status(JOB, "Stopped")["TrainingJobStatus"] == "Stopped"
    # A trigger following the job now sees it stopped.
    events = await collect(revive(trigger))
    assert [(e["status"], e["job_status"]) for e in events] == [("terminal", "Stopped")]


async def test_on_kill_survives_a_throttle_on_stop(aws):
    create_job()
    aws.control.inject("throttle", 1, action="StopTrainingJob")
    await asyncio.wait_for(make_trigger().on_kill(), 10)
    assert [call["status"] for call in aws.control.calls(action="StopTrainingJob")] == [400, 200]
    assert aws.control.job(JOB)["TrainingJobStatus"] in ("Stopping", "Stopped")


@pytest.mark.parametrize("end", ["complete", "fail", "stop"])
async def test_on_kill_is_harmless_on_a_finished_job(aws, end):
    create_job()
    if end == "complete":
        aws.control.complete(JOB)
    elif end == "fail":
        aws.control.fail(JOB, "AlgorithmError: bad data")
    else:
        aws.control.stop(JOB)
        aws.control.wait_for_status(JOB, "Stopped")
    before = aws.control.job(JOB)

    assert await asyncio.wait_for(make_trigger().on_kill(), 10) is None

    after = aws.control.job(JOB)
    assert after["TrainingJobStatus"] == before["TrainingJobStatus"]
    assert after.get("FailureReason") == before.get("FailureReason")
    # It asked (SageMaker refused: the job had ended) and took no for an answer.
    assert [call["status"] for call in aws.control.calls(action="StopTrainingJob")] == [400]


# ------------------------------------------------------------------------------------ shared source
def test_serialize_round_trips_the_source():
    trigger = TrainingJobTrigger(JOB, source="shared", poll_interval=5, deadline=1_900_000_000)
    classpath, serialized = trigger.serialize()
    assert serialized["source"] == "shared"
    assert is_json_primitive(serialized)
    again = revive(trigger)
    assert again.source == "shared"
    assert again.serialize() == (classpath, serialized)
    # Triggers serialized before the parameter existed come back polling, as they did.
    del serialized["source"]
    assert TrainingJobTrigger(**serialized).source == "poll"


def test_the_operator_defers_on_the_shared_watcher_with_its_prefix_by_default(training_image, aws):
    # What a DAG author gets without choosing: the tracker that holds a thousand jobs in one triggerer,
    # listing only the jobs of the operator's prefix.
    operator = TrainModelOperator(task_id="train", spec=make_spec(), deferrable=True, job_name_prefix="fraud")
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(make_context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, TrainingJobTrigger)
    assert (trigger.source, trigger.job_name_prefix) == ("shared", "fraud")
    assert trigger.job_name.startswith("fraud-")
    assert revive(trigger).serialize()[1]["job_name_prefix"] == "fraud"
    # Polling, asked for, needs no prefix: none is handed on.
    polling = TrainModelOperator(task_id="train", spec=make_spec(), deferrable=True, tracking="poll")
    with pytest.raises(TaskDeferred) as deferred:
        polling.execute(make_context())
    assert (deferred.value.trigger.source, deferred.value.trigger.job_name_prefix) == ("poll", None)


def test_rejects_an_unknown_source():
    # An InvalidSpecError (still a ValueError) naming the argument and the fix.
    with pytest.raises(
        InvalidSpecError,
        match="source: 'carrier-pigeon' is not a training job source. Set one of poll, shared, events.",
    ) as excinfo:
        TrainingJobTrigger(JOB, source="carrier-pigeon")
    assert isinstance(excinfo.value, ValueError)
    assert excinfo.value.field == "source"


def test_accepts_the_tracking_source_enum_and_serializes_its_value():
    from lyftlearn_provider.status import TrackingSource

    trigger = TrainingJobTrigger(JOB, source=TrackingSource.SHARED)
    assert trigger.serialize()[1]["source"] == "shared"
    assert type(trigger.serialize()[1]["source"]) is str


@pytest.mark.parametrize("end", ["complete", "fail", "stop"])
async def test_shared_source_yields_the_same_events_as_the_poll_source(aws, end):
    create_job()
    shared = asyncio.ensure_future(collect(revive(make_trigger(source="shared"))))
    await wait_for_calls(aws, "ListTrainingJobs", 2)
    assert not shared.done()
    if end == "complete":
        await control(aws.control.complete, JOB, metrics={"validation:auc": 0.91})
    elif end == "fail":
        await control(aws.control.fail, JOB, "AlgorithmError: out of memory")
    else:
        await control(aws.control.stop, JOB)
    shared_events = await shared
    polled_events = await collect(make_trigger())
    assert shared_events == polled_events
    assert len(shared_events) == 1 and shared_events[0]["status"] == "terminal"


async def test_shared_source_deadline_in_the_past_times_out_without_calls(aws):
    create_job()
    events = await collect(make_trigger(source="shared", deadline=time.time() - 1), timeout=10)
    assert events == [{"status": "timeout", "job_name": JOB, "message": "the task's deadline passed"}]
    assert aws.control.calls(action="ListTrainingJobs") == []
    assert describes(aws) == []


async def test_shared_source_on_kill_stops_a_running_job(aws):
    create_job()
    aws.control.advance(JOB, "Training")
    trigger = revive(make_trigger(source="shared"))
    run = asyncio.ensure_future(collect(trigger))
    await wait_for_calls(aws, "ListTrainingJobs", 2)
    await cancel(run)
    await asyncio.wait_for(trigger.on_kill(), 10)
    assert [call["status"] for call in aws.control.calls(action="StopTrainingJob")] == [200]
    assert aws.control.wait_for_status(JOB, "Stopped")["TrainingJobStatus"] == "Stopped"


async def wait_for_calls(aws, action: str, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while len(await control(aws.control.calls, action=action)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} {action} calls"
        await asyncio.sleep(0.02)


# ------------------------------------------------------------------ the shared sources' catch-all guard
class ExplodingConsumer:
    """An events consumer that raises when a trigger subscribes."""

    def subscribe(self, job_name: str) -> Any:
        raise RuntimeError(f"no room for {job_name}")


def events_trigger(name: str = JOB, **kwargs: Any) -> TrainingJobTrigger:
    kwargs.setdefault("queue_url", "https://sqs.us-east-1.amazonaws.com/123456789012/ll-training-events")
    kwargs.setdefault("job_name_prefix", "fraud")
    return make_trigger(name, source="events", **kwargs)


async def test_a_consumer_that_raises_at_subscription_is_an_error_event_and_leaves_no_subscription(
    aws, monkeypatch
):
    create_job()
    monkeypatch.setattr(training_module, "sqs_consumer", lambda *args, **kwargs: ExplodingConsumer())
    [event] = await collect(events_trigger())
    assert (event["status"], event["error_kind"], event["job_name"]) == ("error", "unexpected", JOB)
    assert f"no room for {JOB}" in event["message"] and JOB in event["message"]
    # The watcher subscription made before the failure was closed: nobody is left waiting in the process.
    watcher = shared_watcher("aws_default", None)
    assert watcher.job_names == frozenset()
    assert not watcher.running


async def test_a_watcher_whose_subscribe_raises_is_an_error_event(aws, monkeypatch):
    create_job()

    def exploding_subscribe(self, job_name, **kwargs):
        raise RuntimeError("the watcher is full")

    monkeypatch.setattr(
        training_module.shared_watcher("aws_default", None).__class__, "subscribe", exploding_subscribe
    )
    [event] = await collect(make_trigger(source="shared"))
    assert (event["status"], event["error_kind"], event["job_name"]) == ("error", "unexpected", JOB)
    assert "the watcher is full" in event["message"]


async def test_a_queue_shared_by_two_prefixes_is_a_tracker_error_naming_the_setting(aws):
    create_job()
    queue_url = "https://sqs.us-east-1.amazonaws.com/123456789012/ll-training-events"
    sqs_consumer(queue_url, prefix="ll")  # another task's trigger already follows this queue for "ll"
    [event] = await collect(events_trigger(queue_url=queue_url, job_name_prefix="fraud"))
    assert (event["status"], event["error_kind"], event["job_name"]) == ("error", "tracker", JOB)
    assert "job_name_prefix" in event["message"] and "its own queue" in event["message"]
    assert shared_watcher("aws_default", None).job_names == frozenset()
    assert sqs_consumer(queue_url, prefix="ll").job_names == frozenset()


async def test_cancelling_a_waiting_shared_trigger_leaves_no_subscription_and_no_event(aws):
    create_job()
    events: list[dict[str, Any]] = []

    async def follow() -> None:
        async for event in make_trigger(source="shared").run():
            events.append(event.payload)

    run = asyncio.ensure_future(follow())
    watcher = shared_watcher("aws_default", None)
    await wait_for_calls(aws, "ListTrainingJobs", 1)
    assert watcher.job_names == {JOB}
    await cancel(run)
    assert run.cancelled()
    assert events == []
    assert watcher.job_names == frozenset()
    assert not watcher.running


# ------------------------------------------------------------------ progress in the task log
@pytest.mark.parametrize("source", ["poll", "shared"])
async def test_the_task_log_shows_each_secondary_status_as_it_happens(aws, capsys, source):
    create_job()
    action = "DescribeTrainingJob" if source == "poll" else "ListTrainingJobs"
    run = asyncio.ensure_future(collect(revive(make_trigger(source=source))))
    for secondary in ("Downloading", "Training"):
        seen = len(await control(aws.control.calls, action=action))
        await wait_for_calls(aws, action, seen + 2)
        await control(aws.control.advance, JOB, secondary)
    seen = len(await control(aws.control.calls, action=action))
    await wait_for_calls(aws, action, seen + 2)
    lines = re.findall(r"Training job fraud-train-1: (\w+)", capsys.readouterr().out)
    await control(aws.control.complete, JOB)
    assert (await run)[0]["job_status"] == "Completed"
    # Once each, in order, while the job ran (not all at the end); the poll also shows SageMaker's message.
    assert lines == ["Starting", "Downloading", "Training"]
