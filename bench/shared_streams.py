"""Airflow 3.3's shared streams vs our per-process consumer: the cost of one event at N subscribers.

Airflow 3.3 lets ``BaseEventTrigger`` subclasses that return the same ``shared_stream_key()`` share
one poll loop in the triggerer (:mod:`airflow.triggers.shared_stream`): every raw event the loop
produces is put on every subscriber's queue, and every subscriber's ``filter_shared_stream`` wakes to
look at it. With ``create_shared_stream_producer`` (ack mode) the broker is advanced (an SQS delete)
only once every subscriber online at broadcast time has moved past the event and the trigger events
derived from it are persisted.

Our events source (:mod:`lyftlearn_provider.tracking.sqs`) has one consumer per queue and process
too, but hands a message to the one job it names: a dict lookup, whatever the number of waiters.

This measures, in one process and one event loop, for N subscribers each waiting for its own job:

* ``airflow fast path``: Airflow's own ``SharedStreamManager`` with N subscribed ``BaseEventTrigger``
  instances whose filter yields on its job's terminal event; E raw events (each naming one job) go
  through the shared poll; time from the first event produced to the last subscriber resolved;
* ``airflow ack mode``: the same with a ``SharedStreamProducer`` (persist-then-ack): each yielded
  trigger event is bound and confirmed persisted at once (as the triggerer's runner would after its
  database write), and the time runs until the producer was told to advance (delete) every event;
* ``ours``: ``SqsEventConsumer._decide`` (parse the SQS body, the monotonic guard, the lookup,
  resolve the waiter) for the same E messages with N subscriptions.

Per-event times are totals / E. Run: ``python bench/shared_streams.py [--subscribers 10000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"


def body(name: str, status: str = "Completed") -> str:
    """Return an SQS body as EventBridge delivers a training job's state change."""
    arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:training-job/{name}"
    return json.dumps(
        {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "SageMaker Training Job State Change",
            "source": "aws.sagemaker",
            "account": ACCOUNT,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "region": REGION,
            "resources": [arn],
            "detail": {
                "TrainingJobName": name,
                "TrainingJobArn": arn,
                "TrainingJobStatus": status,
                "SecondaryStatus": status,
                "LastModifiedTime": int(time.time() * 1000),
            },
        }
    )


async def airflow_shared_stream(subscribers: int, events: int, *, ack: bool) -> float:
    """Return seconds per raw event through Airflow's SharedStreamManager with ``subscribers`` waiting."""
    from airflow.triggers.base import BaseEventTrigger, TriggerEvent
    from airflow.triggers.shared_stream import AdvanceItem, SharedStreamManager, SharedStreamProducer

    feed: asyncio.Queue[str] = asyncio.Queue()
    advanced: list[int] = []
    all_advanced = asyncio.Event()

    class Producer(SharedStreamProducer):
        async def open_stream(self) -> AsyncIterator[tuple[Any, Any]]:  # type: ignore[override]
            index = 0
            while True:
                # Parsed once by the producer, not by every subscriber.
                yield json.loads(await feed.get()), index
                index += 1

        async def advance(self, batch: Sequence[AdvanceItem]) -> None:
            advanced.extend(item.broker_payload for item in batch)
            if len(advanced) >= events:
                all_advanced.set()

    class JobEndTrigger(BaseEventTrigger):
        def __init__(self, job_name: str) -> None:
            super().__init__()
            self.job_name = job_name

        def serialize(self) -> tuple[str, dict[str, Any]]:
            return f"{__name__}.JobEndTrigger", {"job_name": self.job_name}

        async def run(self) -> AsyncIterator[TriggerEvent]:  # pragma: no cover - not used shared
            raise NotImplementedError
            yield

        def shared_stream_key(self) -> str:
            return "training-events-queue"

        @classmethod
        async def open_shared_stream(cls, kwargs: dict[str, Any]) -> AsyncIterator[Any]:
            while True:
                yield json.loads(await feed.get())

        if ack:

            @classmethod
            def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> SharedStreamProducer:
                return Producer()

        async def filter_shared_stream(
            self, shared_stream: AsyncIterator[Any]
        ) -> AsyncIterator[TriggerEvent]:
            async for raw in shared_stream:
                if raw["detail"]["TrainingJobName"] == self.job_name:
                    yield TriggerEvent({"job_name": self.job_name})

    manager = SharedStreamManager(max_subscriber_queue=events + 2)
    key = "training-events-queue"
    names = [f"ll-job-{index:05d}" for index in range(subscribers)]
    fired: set[str] = set()
    done = asyncio.Event()
    targets = set(names[:events])

    async def follow(trigger_id: int, trigger: JobEndTrigger) -> None:
        stream = manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
        async for _ in trigger.filter_shared_stream(stream):
            # The runner binds the event, writes it to the database and confirms it.
            seq = manager.bind_pending_event(trigger_id=trigger_id, key=key)
            if seq is not None:
                manager.confirm_persisted([seq])
            fired.add(trigger.job_name)
            if fired >= targets:
                done.set()
            # Fired: the task resumes; the trigger leaves (its next pull resolves the event first).
            break
        await manager.unsubscribe(trigger_id, key)

    tasks = [asyncio.create_task(follow(index, JobEndTrigger(name))) for index, name in enumerate(names)]
    await asyncio.sleep(0.5)  # every subscriber is waiting on its queue
    bodies = [body(name) for name in names[:events]]
    started = time.perf_counter()
    for raw in bodies:
        feed.put_nowait(raw)
    # One more, for nobody: a subscriber resolves an event when it pulls the next one.
    feed.put_nowait(body("ll-nobody"))
    await done.wait()
    if ack:
        await all_advanced.wait()
    elapsed = time.perf_counter() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await manager.stop_all()
    return elapsed / events


async def ours(subscribers: int, events: int) -> float:
    """Return seconds per message through our consumer's decision with ``subscribers`` waiting."""
    from lyftlearn_provider.tracking.sqs import EventSubscription, SqsEventConsumer

    consumer = SqsEventConsumer("aws_default", None, "https://sqs.example/queue", prefix="ll")
    consumer._release_limit = 3
    names = [f"ll-job-{index:05d}" for index in range(subscribers)]
    # Subscribed without starting the receive loop: only the per-message work is measured.
    for name in names:
        consumer._subscriptions.setdefault(name, set()).add(EventSubscription(consumer, name))
    messages = [
        {"MessageId": str(index), "ReceiptHandle": str(index), "Body": body(name), "Attributes": {}}
        for index, name in enumerate(names[:events])
    ]
    started = time.perf_counter()
    for message in messages:
        consumer._decide(message)
    elapsed = time.perf_counter() - started
    assert consumer.stats.delivered == events, consumer.stats.as_dict()
    return elapsed / events


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--subscribers", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--events", type=int, default=200, help="raw events pushed through (<= subscribers)")
    args = parser.parse_args()
    print("Cost of one job-end event in one triggerer process, by number of waiting triggers")
    print(
        f"  {'subscribers':>11} {'airflow fast ms':>16} {'airflow ack ms':>15} {'ours ms':>9} "
        f"{'fast/ours':>10}"
    )
    for subscribers in args.subscribers:
        events = min(args.events, subscribers)
        fast = asyncio.run(airflow_shared_stream(subscribers, events, ack=False))
        acked = asyncio.run(airflow_shared_stream(subscribers, events, ack=True))
        own = asyncio.run(ours(subscribers, events))
        print(
            f"  {subscribers:11d} {fast * 1000:16.3f} {acked * 1000:15.3f} {own * 1000:9.4f} "
            f"{fast / own:10.0f}"
        )
    print(
        "  airflow: every raw event goes to every subscriber's queue and wakes its filter (O(subscribers));"
        "\n  ours: one dict lookup by job name (O(1)). Per-event ms = total / events."
    )


if __name__ == "__main__":
    main()
