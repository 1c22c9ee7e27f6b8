"""Reliability of event-driven job tracking (DESIGN.md R2, R3, R4), against the AWS emulator.

- R2: a triggerer process following ~50 deferred jobs is SIGKILLed midway and a new one starts from the
  same serialized kwargs: no job is lost, none gets a wrong or second event.
- R3/R4: with ``source="events"``, duplicated, reordered, dropped, malformed and foreign events, an
  unavailable queue and a SageMaker throttling storm still end every trigger exactly once, in the job's
  true state, within the reconciliation bound.

Each test prints the counts it observed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import random
import sys
import time
import uuid

import boto3
import pytest

from lyftlearn_provider.hooks.events import EventRouteHook
from lyftlearn_provider.rendering.sagemaker import render_training_job
from lyftlearn_provider.status import is_terminal
from lyftlearn_provider.testing.aws import ControlError
from lyftlearn_provider.tracking.sqs import sqs_consumer
from lyftlearn_provider.tracking.watcher import shared_watcher
from lyftlearn_provider.triggers.training import TrainingJobTrigger
from tests.helpers import event_body, make_spec, queue_depth, until

REPO = pathlib.Path(__file__).resolve().parents[2]
TRIGGERER = pathlib.Path(__file__).with_name("triggerer_process.py")
FEW_RETRIES = {"retries": {"mode": "standard", "total_max_attempts": 2}}
ACCOUNT, REGION = "123456789012", "us-east-1"
#: Reconciliation interval of every trigger here.
POLL_INTERVAL = 2.0
#: Seconds a trigger may take past its job's end when the job's event arrived.
EVENT_BOUND = 3.0
#: Seconds a trigger may take past its job's end when the event was lost: one interval plus slack.
RECONCILIATION_BOUND = POLL_INTERVAL + 3.0


def create_job(name: str) -> None:
    request = render_training_job(make_spec(), job_name=name, max_runtime_seconds=3600).request
    boto3.client("sagemaker").create_training_job(**request)


def trigger(name: str, source: str, queue_url: str | None) -> TrainingJobTrigger:
    return TrainingJobTrigger(
        name,
        source=source,
        queue_url=queue_url if source == "events" else None,
        job_name_prefix="ll" if source == "events" else None,
        poll_interval=POLL_INTERVAL,
        botocore_config=FEW_RETRIES,
    )


def ended_at(aws, name: str) -> float:
    described = aws.control.job(name)
    return float(described.get("TrainingEndTime") or described["LastModifiedTime"])


def true_state(aws, name: str) -> tuple[str, str | None]:
    described = aws.control.job(name)
    return described["TrainingJobStatus"], described.get("FailureReason")


def end_job(aws, name: str, how: str) -> bool:
    """End an InProgress job ``how`` (complete, fail or stop); False when it had already ended."""
    try:
        if how == "complete":
            aws.control.complete(name)
        elif how == "fail":
            aws.control.fail(name, f"AlgorithmError: {name} diverged")
        else:
            aws.control.stop(name)
    except ControlError as error:
        if error.status != 409:
            raise
        return False
    return True


# ---------------------------------------------------------------------------- R2: restart safety
R2_JOBS = 50


class TriggererProcess:
    """A child process running triggers rebuilt from serialized kwargs; collects its tagged lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict] = []
        self.rebuilt: dict | None = None
        self.done: dict | None = None
        self.ready = asyncio.Event()
        self.reader = asyncio.ensure_future(self._read())

    @classmethod
    async def start(cls, triggers_file: pathlib.Path) -> TriggererProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(TRIGGERER),
            str(triggers_file),
            cwd=REPO,
            # The aws fixture pointed the endpoint, credentials and aws_default connection at the emulator.
            env={**os.environ, "PYTHONPATH": str(REPO)},
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := (await self.process.stdout.readline()).decode():
            tag, _, document = line.strip().partition(" ")
            if tag == "EVENT":
                self.events.append(json.loads(document))
            elif tag == "REBUILT":
                self.rebuilt = json.loads(document)
                self.ready.set()
            elif tag == "DONE":
                self.done = json.loads(document)

    async def kill(self) -> None:
        """SIGKILL the process (no clean-up of any kind) and collect what it printed before."""
        if self.process.returncode is None:
            self.process.kill()
        await asyncio.wait_for(self.process.wait(), 10)
        await asyncio.wait_for(self.reader, 10)


@pytest.mark.parametrize("source", ["shared", "events"])
async def test_r2_triggerer_killed_and_restarted_loses_and_duplicates_nothing(aws, tmp_path, source):
    queue_url = EventRouteHook(aws_conn_id="aws_default").ensure_route("ll")["queue_url"]
    aws.control.settings(stop_delay=0.5)
    names = [f"ll-r2-{source}-{index:02d}" for index in range(R2_JOBS)]
    for name in names:
        create_job(name)
    serialized = [trigger(name, source, queue_url).serialize() for name in names]
    # What the triggerer keeps in its database: JSON, and nothing else about a trigger.
    triggers_file = tmp_path / "triggers.json"
    triggers_file.write_text(json.dumps(serialized))
    rng = random.Random(20240601)
    hand_failed = rng.sample(names, 10)
    hand_stopped = rng.sample(sorted(set(names) - set(hand_failed)), 4)
    processes: list[TriggererProcess] = []
    try:
        first = await TriggererProcess.start(triggers_file)
        processes.append(first)
        await asyncio.wait_for(first.ready.wait(), 30)
        aws.control.autopilot(
            phases={"Starting": 0.2, "Downloading": 0.1, "Training": 1.0, "Uploading": 0.1},
            training_seconds=(0.5, 9.0),
            seed=7,
        )
        await asyncio.sleep(0.5)
        ended_by_hand = [name for name in hand_failed[:6] if end_job(aws, name, "fail")]
        ended_by_hand += [name for name in hand_stopped if end_job(aws, name, "stop")]
        # Kill the first process midway: some jobs reported, most still running.
        await asyncio.wait_for(until(lambda: len(first.events) >= R2_JOBS // 3, "a third of the events"), 30)
        await first.kill()
        killed_after = len(first.events)
        # While no triggerer runs, more jobs end, by hand and by the autopilot.
        ended_by_hand += [name for name in hand_failed[6:] if end_job(aws, name, "fail")]
        await asyncio.sleep(1.0)
        ended_while_down = sum(
            1
            for name in names
            if is_terminal(aws.control.job(name)["TrainingJobStatus"])
            and name not in {event["job_name"] for event in first.events}
        )

        second = await TriggererProcess.start(triggers_file)
        processes.append(second)
        await asyncio.wait_for(second.process.wait(), 45)
        await asyncio.wait_for(second.reader, 10)
    finally:
        for process in processes:
            with contextlib.suppress(ProcessLookupError):
                await process.kill()

    truth = {name: true_state(aws, name) for name in names}
    assert all(is_terminal(status) for status, _ in truth.values())
    outcomes = {status: sum(1 for s, _ in truth.values() if s == status) for status, _ in truth.values()}
    assert {"Completed", "Failed", "Stopped"} <= set(outcomes), outcomes

    # Trigger state is only what serialize() returns: the rebuilt triggers serialize to their kwargs.
    for process in processes:
        assert process.rebuilt == {"mismatches": [], "count": R2_JOBS}
    assert second.done == {"mismatches": []}
    assert second.process.returncode == 0

    # Every event either process delivered is terminal and true, and at most one per trigger each.
    for process in processes:
        delivered = [event["job_name"] for event in process.events]
        assert len(delivered) == len(set(delivered)), "a trigger fired twice in one process"
        for event in process.events:
            payload = event["payload"]
            assert payload["status"] == "terminal", payload
            assert (payload["job_status"], payload.get("failure_reason")) == truth[event["job_name"]]
    # None lost: every job has its true terminal event in the union of both processes' outputs.
    assert {event["job_name"] for process in processes for event in process.events} == set(names)
    # The restarted process delivers exactly one event per trigger.
    assert sorted(event["job_name"] for event in second.events) == sorted(names)
    assert 0 < killed_after < R2_JOBS

    print(
        f"\nR2[{source}]: jobs={R2_JOBS} outcomes={outcomes} ended_by_hand={len(ended_by_hand)} "
        f"first_process_events_before_kill={killed_after} ended_while_down={ended_while_down} "
        f"second_process_events={len(second.events)} "
        f"union_jobs_with_true_terminal={len({e['job_name'] for p in processes for e in p.events})} "
        f"serialize_mismatches=0"
    )


# ---------------------------------------------------------------------------- R3/R4: events faults
R3_GROUPS = {
    # Their events arrive, plus duplicates and older copies sent after the terminal one.
    "delivered": 8,
    # Publishing is off while they end: only reconciliation can tell their triggers.
    "dropped": 15,
    # They end while the queue answers every receive with 503.
    "outage": 3,
    # They end during a SageMaker throttling storm; their events arrive.
    "storm": 4,
}


def throttled_calls(aws) -> int:
    return sum(1 for call in aws.control.calls(service="sagemaker") if call.get("fault"))


async def all_events(job_trigger: TrainingJobTrigger) -> list[tuple[dict, float]]:
    """Run a trigger to its end; return every event it yielded with the wall-clock time it came."""
    return [(event.payload, time.time()) async for event in job_trigger.run()]


async def test_r3_r4_event_faults_end_every_trigger_once_in_the_true_state(aws):
    # A short visibility timeout and three receives let malformed messages reach the DLQ within the test.
    route = EventRouteHook(aws_conn_id="aws_default").ensure_route(
        "ll", visibility_timeout_seconds=2, max_receive_count=3
    )
    queue_url, dlq_url = route["queue_url"], route["dlq_url"]
    sqs = boto3.client("sqs")
    groups: dict[str, list[str]] = {}
    for group, size in R3_GROUPS.items():
        groups[group] = [f"ll-r3-{group}-{index:02d}" for index in range(size)]
        for name in groups[group]:
            create_job(name)
    names = [name for members in groups.values() for name in members]
    ways = ("complete", "fail", "stop")
    aws.control.settings(stop_delay=0.2)

    tasks = {name: asyncio.ensure_future(all_events(trigger(name, "events", queue_url))) for name in names}
    await asyncio.sleep(0)
    consumer = sqs_consumer(queue_url, prefix="ll")
    # The rule forwards only ends, so the consumer's first long poll waits on an empty queue: wait for
    # every trigger to subscribe, and for the watcher's first pass to confirm every job.
    await asyncio.wait_for(
        until(lambda: consumer.job_names == frozenset(names) and consumer.running, "the subscriptions"), 20
    )
    # A listing that started after the last subscription confirms every job: the second one recorded
    # from now on (the first may have been in flight already).
    listed = len(aws.control.calls(action="ListTrainingJobs"))
    await asyncio.wait_for(
        until(lambda: len(aws.control.calls(action="ListTrainingJobs")) >= listed + 2, "a confirming pass"),
        20,
    )

    # Delivered, duplicated, reordered; malformed and foreign messages on the queue meanwhile.
    for index, name in enumerate(groups["delivered"]):
        end_job(aws, name, ways[index % 3])
    await asyncio.sleep(0.5)
    emitted = [e for e in aws.control.events() if e["detail"]["TrainingJobName"] in groups["delivered"]]
    duplicates = reordered = 0
    for name in groups["delivered"]:
        own = [e for e in emitted if e["detail"]["TrainingJobName"] == name]
        terminal = [e for e in own if is_terminal(e["detail"]["TrainingJobStatus"])]
        older = [e for e in own if e["detail"]["TrainingJobStatus"] == "InProgress"]
        for _ in range(2):
            sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(terminal[-1]))
            duplicates += 1
        # Another delivery (its own event id) of an older state, arriving after the terminal one.
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({**older[0], "id": str(uuid.uuid4())}))
        reordered += 1
    held = groups["dropped"][0]
    malformed = [
        "not json",
        json.dumps({"source": "aws.ecs", "detail-type": "ECS Task State Change", "id": "x", "detail": {}}),
        # About a held job, but without its status: must not end its trigger.
        json.dumps({**json.loads(event_body(held, "Completed", time.time())), "detail": {}}),
    ]
    for body in malformed:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    foreign = [event_body(f"other-{held}", "Failed", time.time()), event_body("llama-r3-1", "Completed", 0)]
    for body in foreign:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)

    # Dropped: about half of the jobs end while nothing is published.
    await asyncio.sleep(0.5)
    aws.control.settings(publish_events=False)
    for index, name in enumerate(groups["dropped"]):
        end_job(aws, name, ways[index % 3])
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.3)
    aws.control.settings(publish_events=True)

    # The queue unavailable: a foreign message wakes the long poll, the next receives get 503.
    await asyncio.wait_for(
        until(lambda: all(tasks[name].done() for name in groups["dropped"]), "the dropped jobs"), 30
    )
    aws.control.inject("unavailable", 2, service="sqs", action="ReceiveMessage")
    sqs.send_message(QueueUrl=queue_url, MessageBody=event_body("other-wake-1", "Completed", time.time()))
    await asyncio.wait_for(until(lambda: consumer.stats.receive_errors >= 1, "the outage to start"), 20)
    for index, name in enumerate(groups["outage"]):
        end_job(aws, name, ways[index % 3])
    await asyncio.wait_for(until(lambda: not aws.control.faults(), "the outage to end"), 30)
    # The consumer receives again once it handles a new message (after its back-off).
    foreign_seen = consumer.stats.foreign
    sqs.send_message(QueueUrl=queue_url, MessageBody=event_body("other-wake-2", "Completed", time.time()))
    await asyncio.wait_for(until(lambda: consumer.stats.foreign > foreign_seen, "the consumer's return"), 30)

    # A SageMaker throttling storm (R4): the watcher backs off, events still end the triggers.
    aws.control.inject("throttle", 40, service="sagemaker")
    await asyncio.wait_for(until(lambda: throttled_calls(aws) >= 1, "the storm to hit the watcher"), 20)
    for index, name in enumerate(groups["storm"]):
        end_job(aws, name, ways[index % 3])

    try:
        results = dict(zip(tasks, await asyncio.wait_for(asyncio.gather(*tasks.values()), 40), strict=True))
    finally:
        for task in tasks.values():
            task.cancel()
        throttled = throttled_calls(aws)
        aws.control.clear_faults()

    delays: dict[str, list[float]] = {group: [] for group in groups}
    for group, members in groups.items():
        for name in members:
            events = results[name]
            assert len(events) == 1, f"{name} yielded {events}"
            [(payload, fired)] = events
            assert payload["status"] == "terminal", payload
            assert (payload["job_status"], payload.get("failure_reason")) == true_state(aws, name)
            delay = fired - ended_at(aws, name)
            assert delay >= -0.05, f"{name} fired {-delay:.2f} s before its job ended"
            delays[group].append(delay)
    worst = {group: round(max(values), 2) for group, values in delays.items()}
    assert max(delays["delivered"]) < EVENT_BOUND, worst
    assert max(delays["storm"]) < EVENT_BOUND, worst
    assert max(delays["dropped"]) < RECONCILIATION_BOUND, worst
    assert max(delays["outage"]) < RECONCILIATION_BOUND, worst
    assert throttled >= 1, "the storm never hit the watcher"

    # A late trigger of a job whose older event came after its terminal one resolves at once, truly.
    late_name = groups["delivered"][0]
    [(late, _)] = await asyncio.wait_for(all_events(trigger(late_name, "events", queue_url)), 5)
    assert (late["job_status"], late.get("failure_reason")) == true_state(aws, late_name)

    # Malformed messages went to the dead-letter queue (kept, never deleted); everything else was deleted.
    stats = consumer.stats
    keeper = asyncio.ensure_future(all_events(trigger("ll-r3-keeper", "events", queue_url)))
    create_job("ll-r3-keeper")  # keeps the consumer receiving until the DLQ holds the malformed ones
    try:
        await asyncio.wait_for(until(lambda: queue_depth(dlq_url) == len(malformed), "the DLQ"), 20)
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
    dlq_bodies = {
        m["Body"] for m in sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10).get("Messages", [])
    }
    assert dlq_bodies == set(malformed)
    assert stats.malformed >= len(malformed)
    assert stats.duplicates >= duplicates and stats.foreign >= len(foreign)
    assert stats.stale >= reordered, "the older copies must be rejected by the monotonic guard"
    assert stats.delivered >= len(groups["delivered"]) // 2, "events, not reconciliation, should end most"

    print(
        f"\nR3/R4: jobs={len(names)} groups={ {g: len(m) for g, m in groups.items()} } "
        f"duplicates_sent={duplicates} reordered_sent={reordered} malformed_sent={len(malformed)} "
        f"foreign_sent={len(foreign)} dead_lettered={len(dlq_bodies)} throttled_sagemaker_calls={throttled} "
        f"worst_delay_s={worst} consumer={stats.as_dict()}"
    )


# ---------------------------------------------------------------------------- regressions
# Found by this suite: the events consumer was created without the trigger's verify and
# botocore_config, so a custom CA bundle or proxy reached SageMaker but not SQS.
async def test_events_consumer_uses_the_triggers_client_settings(aws):
    queue_url = EventRouteHook(aws_conn_id="aws_default").ensure_route("ll")["queue_url"]
    create_job("ll-r3-settings")
    config = {"connect_timeout": 7, "retries": {"mode": "standard", "total_max_attempts": 2}}
    job_trigger = TrainingJobTrigger(
        "ll-r3-settings",
        source="events",
        queue_url=queue_url,
        job_name_prefix="ll",
        poll_interval=POLL_INTERVAL,
        verify=False,
        botocore_config=config,
    )
    waiting = asyncio.ensure_future(all_events(job_trigger))
    try:
        # The trigger made the consumer when it subscribed (with the watcher, in the same step).
        await asyncio.wait_for(
            until(lambda: shared_watcher("aws_default", None).job_names == {"ll-r3-settings"}, "the trigger"),
            20,
        )
        consumer = sqs_consumer(queue_url, prefix="ll")
        print(
            f"\nconsumer client settings: verify={consumer.verify} botocore_config={consumer.botocore_config}"
        )
        assert consumer.verify is False
        assert consumer.botocore_config.get("connect_timeout") == 7
    finally:
        aws.control.complete("ll-r3-settings")
        [(payload, _)] = await asyncio.wait_for(waiting, 10)
        assert payload["job_status"] == "Completed"
