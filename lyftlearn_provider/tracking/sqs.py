"""Consume training-job state changes from SQS: one long-poll consumer per queue per triggerer process.

This is the ``events`` source: it fans terminal states out to the triggers waiting in this process.

The queue is the one ``EventRouteHook.ensure_route`` sets up: EventBridge puts every "SageMaker
Training Job State Change" of jobs named ``<prefix>-…`` on it, at least once, in no particular
order. One background task per (connection, region, queue URL) and event loop long-polls it
(``WaitTimeSeconds`` 20, ten messages a call). A long poll returns as soon as one message is there,
so while events trickle in (a batch neither empty nor full) the consumer waits before its next
receive: as long as the observed arrival rate (over the last 5 s) needs to fill a batch, at most
``batch_window`` seconds (1.7). The trickle collects into fuller batches — fewer receives — for at
most that much more notice latency. A full batch is followed by the next receive once the batch's
newest message is ``batch_window`` old: what is left on the queue arrived after it, so every
message still waits at most the window, and the next batch fills meanwhile instead of bringing the
one or two messages that came during the round trip. A backlog — ``BACKLOG_BATCHES`` (3) full
batches in a row whose newest message was already a window old, e.g. after an outage — is received
at once and starts extra receive loops on its client, up to ``receivers`` (4) in all, each of which
ends at its first batch that is not full, so a drained queue has one long poll again (started on a
fresh flow, they would only split it into smaller batches).

**Deletes are coalesced across receives.** A message's news is delivered as soon as it is received;
its delete waits in a buffer that goes out as ``DeleteMessageBatch`` calls of ten as soon as ten are
due, and whatever is left within ``delete_delay`` seconds of its receive (5 s, and never more than a
quarter of the queue's visibility timeout, so a message is deleted long before it could reappear).
At a few job ends a second that is one delete call per ten ends instead of one per receive; at
1,000 jobs of 1–4 minutes (real time), 0.22 SQS calls per job end (0.10 of them deletes) against a
floor of 0.2. The buffer is
flushed when the consumer stops. A delete that never happened (a crash) only means the message
comes back after the visibility timeout, and is handled again like any redelivery.

For each message the consumer decides:

- **malformed** (not JSON, not a SageMaker training-job state change, fields missing): logged and
  left alone, neither deleted nor released, so that after the queue's ``maxReceiveCount`` receives
  SQS's redrive policy moves it to the dead-letter queue, where a human can look at it;
- **already acted upon** (an event id this process delivered or deleted before): deleted;
- every other event first goes through the monotonic guard (:mod:`lyftlearn_provider.tracking.lattice`):
  a terminal state is final and an older event never replaces a newer one. Then:

  - **foreign** (a job name without our prefix): deleted;
  - **a job held here** whose newest known state is terminal: every subscriber of the job resolves
    with that state; deleted;
  - **terminal, of a job whose end this process already knows** (it delivered it, or the shared
    watcher's reconciliation found it first — see :meth:`SqsEventConsumer.mark_settled`): deleted;
    SageMaker sends several terminal events per end, and they are nobody's news;
  - **terminal, but not held here**: *released* or deleted (below);
  - anything else (progress, or a stale event the guard rejected): deleted.

A subscriber that arrives after its job's terminal event was recorded resolves at once from memory.

**Several triggerer processes.** SQS consumers compete: each message goes to one of them, not
necessarily the one whose trigger waits for the job. A process that receives a terminal event for a
job it does not hold *releases* it — ``ChangeMessageVisibility`` to ``release_delay`` seconds — so
that another consumer receives it soon, but only

- while ``ApproximateReceiveCount`` ≤ ``R = min(max_releases, maxReceiveCount − 2)``, and
- while the message is younger than ``release_window`` seconds (by its ``SentTimestamp``).

Past either bound it is deleted, and the holder learns the state from reconciliation: the shared
watcher's listing or the trigger's own Describe. So a terminal event occupies at most ``R + 1``
receives; with the setup's default ``maxReceiveCount`` of 5, ``R`` is 3, which leaves one spare
receive for a consumer that dies or fails to delete, and a legitimate event never reaches the
dead-letter queue because of releases. If ``P`` processes receive at random, the holder misses an
event with probability about ``((P − 1) / P) ** (R + 1)`` (1/16 with two processes), and the event
leaves the queue within about ``R × release_delay`` seconds plus the consumers' receive latency.
A queue without a redrive policy allows ``max_releases`` releases.

**Failures.** Nobody is failed for the queue: the shared watcher's reconciliation still follows
every job. Connection errors, 5xx answers and throttling back off (doubling from ``retry_delay``,
jittered) and try again, with a new client; botocore's own retries are off so that the back-off is
ours alone. A queue that cannot work — missing, an invalid URL, access denied to ``ReceiveMessage`` or
``GetQueueAttributes``, an unusable KMS key, bad credentials (see
:func:`~lyftlearn_provider.retries.classify`) — is not retried in a loop: the consumer logs one
warning naming the fix, hands every subscriber a :class:`~lyftlearn_provider.tracking.outcomes.Fallback`
(their triggers then rely on reconciliation alone) and stops; new subscribers get the same answer at
once, until ``retry_after`` seconds have passed and the next one tries the queue again. Other errors
are backed off like transient ones ``UNEXPECTED_FAILURES_TOLERATED`` times in a row, then handled the
same way. A failed delete or release is logged: the message reappears after the queue's visibility
timeout and is handled again (and de-duplicated). SQS calls do not draw on the SageMaker call budget:
they are another API.

**Life cycle.** The task starts with the first subscriber. When the last one leaves it does not
cancel its receive in flight — an abandoned long poll would still take messages off the queue for a
visibility timeout — but finishes it, handles what it got, waits for its extra loops to do the same,
and ends; a subscriber arriving meanwhile keeps it going. :meth:`SqsEventConsumer.aclose` stops it
and its extra loops at once (shutdown). A cancelled ``await subscription`` unsubscribes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import enum
import json
import logging
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.hooks.sqs import SqsHook

from lyftlearn_provider.event_route import RECEIVE_WAIT_SECONDS
from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.retries import (
    GET_QUEUE_ATTRIBUTES,
    NO_BOTOCORE_RETRIES,
    RECEIVE_MESSAGE,
    backoff,
    describe_error,
)
from lyftlearn_provider.status import JobEvent, TrackingErrorKind
from lyftlearn_provider.tracking.budget import LoopLocal
from lyftlearn_provider.tracking.lattice import (
    DEFAULT_MEMORY,
    JobLedger,
    MalformedEvent,
    SeenEvents,
    StateChange,
    parse_state_change,
)
from lyftlearn_provider.tracking.outcomes import (
    DEFAULT_RETRY_AFTER_SECONDS,
    UNEXPECTED_FAILURES_TOLERATED,
    Fallback,
    Outcome,
    TrackerHealth,
    as_failure,
)

if TYPE_CHECKING:
    from botocore.client import BaseClient

log = logging.getLogger(__name__)

#: ReceiveMessage's largest batch.
MAX_MESSAGES = 10
#: Receive loops at most per consumer while batches come back full (one when the queue is drained).
DEFAULT_RECEIVERS = 4
#: Full batches in a row that mean a backlog, worth extra receive loops.
BACKLOG_BATCHES = 3
#: Longest wait before the next receive after a batch that was neither empty nor full. When ends
#: arrive a few a second (1,000 jobs ending over a few minutes) 1.7 s fills batches to about nine
#: messages, for a notice still within the 2 s target.
DEFAULT_BATCH_WINDOW_SECONDS = 1.7
#: Seconds of receives the arrival rate (which sets the wait after a batch that was not full) covers.
RATE_WINDOW_SECONDS = 5.0
#: Longest a received message waits for its delete (lowered to a quarter of the visibility timeout).
DEFAULT_DELETE_DELAY_SECONDS = 5.0
#: Seconds a released message stays invisible: long enough not to come straight back to us.
DEFAULT_RELEASE_DELAY_SECONDS = 2
#: Releases allowed per message, before the queue's ``maxReceiveCount`` lowers it further.
DEFAULT_MAX_RELEASES = 3
#: Older messages are not released: by then reconciliation has had time to find the job's state.
DEFAULT_RELEASE_WINDOW_SECONDS = 300.0


class Action(str, enum.Enum):
    """What the consumer does with a message it received."""

    #: Leave it: it reappears after the visibility timeout and counts towards ``maxReceiveCount``.
    KEEP = "keep"
    DELETE = "delete"
    #: Make it visible again after ``release_delay`` seconds, for another consumer.
    RELEASE = "release"


def release_limit(max_receive_count: int | None, max_releases: int = DEFAULT_MAX_RELEASES) -> int:
    """
    Return how many times a message may be released from a queue with this ``maxReceiveCount``.

    Two receives are kept back: one to act on the message, one spare for a consumer that dies or
    fails to delete it; so releases alone never move a message to the dead-letter queue.
    """
    if max_receive_count is None:
        return max_releases
    return max(0, min(max_releases, max_receive_count - 2))


def should_release(receive_count: int, age_seconds: float, *, limit: int, window: float) -> bool:
    """Tell whether a terminal event nobody here waits for goes back to the queue (else it is deleted)."""
    return receive_count <= limit and age_seconds <= window


def terminal_event(change: StateChange) -> JobEvent:
    """Return what a subscriber receives: its trigger's terminal event."""
    return JobEvent.terminal(change.job_name, change.job_status, change.failure_reason)


@dataclasses.dataclass
class ConsumerStats:
    """What a consumer has done since it was created, message by message."""

    received: int = 0
    #: Receives that returned messages (``received / batches`` is the mean batch size).
    batches: int = 0
    malformed: int = 0
    duplicates: int = 0
    foreign: int = 0
    #: Events the monotonic guard rejected: older than, or the same as, what was known.
    stale: int = 0
    #: Newer non-terminal states (progress), recorded and deleted.
    progress: int = 0
    delivered: int = 0
    released: int = 0
    #: Terminal events nobody here held, deleted past the release bounds (reconciliation's turn).
    unclaimed: int = 0
    #: Terminal events of jobs whose end this process already knew (delivered or reconciled), deleted.
    settled: int = 0
    receive_errors: int = 0
    #: Extra receive loops started for a backlog.
    extra_loops: int = 0
    #: Deletes and releases SQS did not carry out.
    action_errors: int = 0
    #: DeleteMessageBatch calls (``received / delete_calls``: messages a delete call carried).
    delete_calls: int = 0

    def as_dict(self) -> dict[str, int]:
        """Return the counters by name."""
        return dataclasses.asdict(self)


class EventSubscription:
    """
    One waiter's interest in one job; await it for the outcome, ``close()`` to give up.

    The outcome is the job's terminal :class:`JobEvent`, or a :class:`Fallback` when the queue cannot
    be used: the waiter then relies on reconciliation alone.
    """

    def __init__(self, consumer: SqsEventConsumer, job_name: str) -> None:
        self.job_name = job_name
        self.outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._consumer = consumer
        # A waiter cancelled while awaiting cancels the future: that is its way of leaving.
        self.outcome.add_done_callback(lambda future: self.close() if future.cancelled() else None)

    def __await__(self) -> Generator[Any, None, Outcome]:
        return self.outcome.__await__()

    def resolve(self, outcome: Outcome) -> None:
        """Give the waiter its answer and unsubscribe."""
        if not self.outcome.done():
            self.outcome.set_result(outcome)
        self.close()

    def close(self) -> None:
        """Unsubscribe; safe to call more than once."""
        self._consumer.unsubscribe(self)


class SqsEventConsumer:
    """
    Receive the training-job state changes of one SQS queue and hand terminal states to subscribers.

    See the module's documentation for what happens to each message and how the consumer shares the
    queue with other processes. Get one through :func:`sqs_consumer` (one per process and queue).

    :param prefix: the job-name prefix of the route; other jobs' events are foreign.
    :param wait_time_seconds: ReceiveMessage's long-poll wait.
    :param release_delay: seconds a released message stays invisible.
    :param max_releases: releases per message at most (lowered to ``maxReceiveCount − 2``).
    :param release_window: seconds after being sent that a message may still be released.
    :param retry_delay: base of the back-off after a failed receive.
    :param receivers: receive loops at most; extra loops run while a backlog lasts.
    :param batch_window: longest wait after a batch neither empty nor full, so that events arriving
        one by one are received ten at a time (shorter when they arrive fast enough to fill a batch
        sooner), and the age a full batch's newest message reaches before the next receive; 0
        receives again at once.
    :param delete_delay: longest a handled message waits for its delete, so that deletes go out ten
        at a time across receives; capped at a quarter of the queue's visibility timeout.
    :param retry_after: seconds a queue that cannot be used is left alone before a subscriber tries it again.
    """

    def __init__(
        self,
        aws_conn_id: str | None,
        region_name: str | None,
        queue_url: str,
        *,
        prefix: str,
        verify: bool | str | None = None,
        botocore_config: Mapping[str, Any] | None = None,
        wait_time_seconds: int = RECEIVE_WAIT_SECONDS,
        release_delay: int = DEFAULT_RELEASE_DELAY_SECONDS,
        max_releases: int = DEFAULT_MAX_RELEASES,
        release_window: float = DEFAULT_RELEASE_WINDOW_SECONDS,
        retry_delay: float = 1.0,
        receivers: int = DEFAULT_RECEIVERS,
        batch_window: float = DEFAULT_BATCH_WINDOW_SECONDS,
        delete_delay: float = DEFAULT_DELETE_DELAY_SECONDS,
        memory: int = DEFAULT_MEMORY,
        retry_after: float = DEFAULT_RETRY_AFTER_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.queue_url = queue_url
        self.prefix = prefix
        self.verify = verify
        self.botocore_config = dict(botocore_config or {})
        self.wait_time_seconds = wait_time_seconds
        self.release_delay = release_delay
        self.max_releases = max_releases
        self.release_window = release_window
        self.retry_delay = retry_delay
        self.receivers = max(1, receivers)
        self.batch_window = max(0.0, batch_window)
        self.delete_delay = max(0.0, delete_delay)
        self.stats = ConsumerStats()
        self._clock = clock
        self._ledger = JobLedger(memory)
        self._seen = SeenEvents(memory)
        # Jobs whose end this process already knows (delivered or reconciled): their later terminal
        # events (SageMaker sends several) are nobody's news, deleted rather than released to others.
        self._settled = SeenEvents(memory)
        self._subscriptions: dict[str, set[EventSubscription]] = {}
        self._task: asyncio.Task[None] | None = None
        #: Extra receive loops of the running task, sharing its client; they end when a batch is not full.
        self._helpers: set[asyncio.Task[None]] = set()
        #: Releases allowed per message; read from the queue's redrive policy when a task starts.
        self._release_limit: int | None = None
        #: Seconds a handled message may wait for its delete; set with the release limit.
        self._flush_after = self.delete_delay
        #: Handled messages waiting for their delete: (monotonic time it is due, receipt handle).
        self._pending_deletes: list[tuple[float, str]] = []
        self._flusher: asyncio.Task[None] | None = None
        #: (monotonic time, messages) of the receives of the last ``RATE_WINDOW_SECONDS``.
        self._arrivals: collections.deque[tuple[float, int]] = collections.deque()
        self._arrivals_since: float | None = None
        #: Epoch seconds SQS received the newest message of the last batch (its ``SentTimestamp``).
        self._newest_sent: float | None = None
        self.health = TrackerHealth(
            f"The training-events consumer of queue {queue_url}",
            instead="rely on the shared watcher's reconciliation alone (a job's end is noticed within "
            "its poll_interval instead of seconds)",
            alternative="use tracking='shared'",
            log=log,
            retry_after=retry_after,
        )

    @property
    def running(self) -> bool:
        """Tell whether the background task is running."""
        return self._task is not None and not self._task.done()

    @property
    def job_names(self) -> frozenset[str]:
        """Return the jobs someone in this process waits for."""
        return frozenset(self._subscriptions)

    def known_state(self, job_name: str) -> StateChange | None:
        """Return the newest state the consumer has seen for the job, if it remembers one."""
        return self._ledger.get(job_name)

    def subscribe(self, job_name: str) -> EventSubscription:
        """Return a subscription that resolves with the job's terminal event; start the task if needed."""
        subscription = EventSubscription(self, job_name)
        known = self._ledger.get(job_name)
        if known is not None and known.terminal:
            subscription.outcome.set_result(terminal_event(known))
            return subscription
        if self.health.reason is not None and self.health.broken:
            subscription.outcome.set_result(Fallback(self.health.reason))
            return subscription
        self._subscriptions.setdefault(job_name, set()).add(subscription)
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"lyftlearn-sqs-consumer-{self.queue_url}"
            )
        return subscription

    def mark_settled(self, job_name: str) -> None:
        """
        Record that this process learned of the job's end another way (reconciliation).

        Its terminal events, when they come, are then deleted as old news instead of being released for
        another process that might hold the job.
        """
        self._settled.add(job_name)

    def unsubscribe(self, subscription: EventSubscription) -> None:
        """Forget ``subscription``; the task ends after its receive in flight once nobody is left."""
        subscriptions = self._subscriptions.get(subscription.job_name)
        if subscriptions is None or subscription not in subscriptions:
            return
        subscriptions.discard(subscription)
        if not subscriptions:
            del self._subscriptions[subscription.job_name]

    async def aclose(self) -> None:
        """Stop the background task now, receive in flight included; a later subscribe starts a new one."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # ------------------------------------------------------------------ the background task
    def _hook(self) -> SqsHook:
        return SqsHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config={**self.botocore_config, **NO_BOTOCORE_RETRIES},
        )

    async def _run(self) -> None:
        failures = unexpected = 0
        try:
            while self._subscriptions:
                try:
                    async with await self._hook().get_async_conn() as client:
                        try:
                            full_in_a_row = 0
                            while self._subscriptions:
                                received = await self._receive(client)
                                failures = unexpected = 0
                                self.health.works()
                                if received >= MAX_MESSAGES:
                                    # More is probably waiting: receive again at once (a backlog), or
                                    # once the newest of it is as old as a trickle's wait (below).
                                    full_in_a_row += 1
                                    pause = self._surplus_wait()
                                    if full_in_a_row >= BACKLOG_BATCHES and not pause:
                                        # Behind: full batches of messages already a window old.
                                        self._add_helper(client)
                                    if pause and self._subscriptions:
                                        await asyncio.sleep(pause)
                                    continue
                                full_in_a_row = 0
                                if received and self.batch_window and self._subscriptions:
                                    # A trickle: let it collect into a fuller batch.
                                    await asyncio.sleep(self._collect_wait())
                        except asyncio.CancelledError:
                            await self._cancel_helpers()
                            raise
                        finally:
                            # The helpers share this client: they finish their receive in flight first.
                            await self._join_helpers()
                            await self._flush_all(client)
                except Exception as error:
                    self.stats.receive_errors += 1
                    failure = as_failure(error, RECEIVE_MESSAGE)
                    if failure.kind is TrackingErrorKind.UNEXPECTED:
                        unexpected += 1
                    if (
                        failure.kind is TrackingErrorKind.TRACKER
                        or unexpected > UNEXPECTED_FAILURES_TOLERATED
                    ):
                        # Retrying would only repeat the answer: the subscribers rely on reconciliation.
                        fallback = self.health.fail(failure)
                        for subscription in [sub for subs in self._subscriptions.values() for sub in subs]:
                            subscription.resolve(fallback)
                        return
                    # An outage, throttling, a lost connection: the jobs are unaffected and
                    # reconciliation covers the gap; back off and try again with a new client.
                    failures += 1
                    pause = backoff(self.retry_delay, failures)
                    log.warning(
                        "Receiving from %s failed (%s); retrying in %.1f s.",
                        self.queue_url,
                        describe_error(failure.error),
                        pause,
                    )
                    await asyncio.sleep(pause)
        finally:
            await self._cancel_helpers()
            if self._task is asyncio.current_task():
                self._task = None

    def _collect_wait(self) -> float:
        """Return the wait after a batch that was not full: long enough to fill one, at most the window."""
        rate = self.arrival_rate()
        if rate <= 0:
            return self.batch_window
        return min(self.batch_window, MAX_MESSAGES / rate)

    def _surplus_wait(self) -> float:
        """
        Return the wait after a full batch: until the batch's newest message is ``batch_window`` old.

        What is left on the queue arrived after the batch's newest message (SQS is roughly first in,
        first out), so waiting that long keeps every message's wait within the window and lets the next
        batch fill up, however fast messages come: at six a second a receive right after a full batch
        mostly brought one or two, and at hundreds a second the queue fills a batch in that time
        anyway. A backlog — the newest message already a window old, as after an outage — is received
        at once (and, after ``BACKLOG_BATCHES`` full batches in a row, by extra loops). Without
        ``SentTimestamp`` it is received at once too.
        """
        if self._newest_sent is None:
            return 0.0
        return max(0.0, self.batch_window - (self._clock() - self._newest_sent))

    def arrival_rate(self) -> float:
        """Return the messages a second the receives brought over the last few seconds."""
        if self._arrivals_since is None:
            return 0.0
        now = time.monotonic()
        while self._arrivals and self._arrivals[0][0] <= now - RATE_WINDOW_SECONDS:
            self._arrivals.popleft()
        span = now - max(self._arrivals_since, now - RATE_WINDOW_SECONDS)
        # Not from one receive: a receive right after a full one brings a few messages in no time.
        return sum(count for _, count in self._arrivals) / max(span, 1.0)

    def _note_arrivals(self, received: int) -> None:
        now = time.monotonic()
        if self._arrivals_since is None:
            self._arrivals_since = now
        elif received:
            self._arrivals.append((now, received))

    def _add_helper(self, client: BaseClient) -> None:
        """Start one more receive loop on ``client``, unless ``receivers`` loops already run."""
        self._helpers.difference_update([helper for helper in self._helpers if helper.done()])
        if 1 + len(self._helpers) >= self.receivers:
            return
        helper = asyncio.get_running_loop().create_task(
            self._help(client), name=f"lyftlearn-sqs-consumer-{self.queue_url}-receiver"
        )
        self._helpers.add(helper)
        helper.add_done_callback(self._helpers.discard)
        self.stats.extra_loops += 1

    async def _help(self, client: BaseClient) -> None:
        """Receive while batches come back full and someone waits; the main loop handles failures."""
        try:
            while self._subscriptions and await self._receive(client) >= MAX_MESSAGES:
                pass
        except Exception as error:
            self.stats.receive_errors += 1
            log.warning(
                "An extra receive loop on %s failed (%s: %s); it ends.",
                self.queue_url,
                type(error).__name__,
                error,
            )

    async def _join_helpers(self) -> None:
        """Wait until the helpers end (after their receive in flight); cancel them if cancelled meanwhile."""
        try:
            while self._helpers:
                await asyncio.wait(set(self._helpers))
                self._helpers.difference_update([helper for helper in self._helpers if helper.done()])
        except asyncio.CancelledError:
            await self._cancel_helpers()
            raise

    async def _cancel_helpers(self) -> None:
        helpers = set(self._helpers)
        self._helpers.clear()
        for helper in helpers:
            helper.cancel()
        if helpers:
            await asyncio.gather(*helpers, return_exceptions=True)

    async def _receive(self, client: BaseClient) -> int:
        """Receive one batch and act on it; return its size (a full batch: more is probably waiting)."""
        if self._release_limit is None:
            try:
                attributes = await client.get_queue_attributes(
                    QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy", "VisibilityTimeout"]
                )
            except Exception as error:
                raise as_failure(error, GET_QUEUE_ATTRIBUTES) from error
            values = attributes.get("Attributes", {})
            self._release_limit = release_limit(_max_receive_count(values), self.max_releases)
            self._flush_after = min(self.delete_delay, _visibility_timeout(values) / 4)
        response = await client.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=MAX_MESSAGES,
            WaitTimeSeconds=self.wait_time_seconds,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        self._note_arrivals(len(messages))
        sent = [int(m.get("Attributes", {}).get("SentTimestamp", 0)) for m in messages]
        self._newest_sent = max(sent) / 1000.0 if sent and min(sent) > 0 else None
        if messages:
            self.stats.batches += 1
        actions = [(message, self._decide(message)) for message in messages]
        due = time.monotonic() + self._flush_after
        self._pending_deletes.extend(
            (due, message["ReceiptHandle"]) for message, action in actions if action is Action.DELETE
        )
        await asyncio.gather(
            self._flush_due(client),
            self._apply(client, [m for m, action in actions if action is Action.RELEASE], Action.RELEASE),
        )
        return len(messages)

    async def _flush_due(self, client: BaseClient) -> None:
        """Delete in batches of ten while ten are waiting, and whatever is due; time the rest."""
        now = time.monotonic()
        while self._pending_deletes and (
            len(self._pending_deletes) >= MAX_MESSAGES or self._pending_deletes[0][0] <= now
        ):
            await self._delete_batch(client)
        if self._pending_deletes and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.get_running_loop().create_task(
                self._flush_later(client), name=f"lyftlearn-sqs-consumer-{self.queue_url}-deletes"
            )

    async def _flush_later(self, client: BaseClient) -> None:
        """Delete the waiting messages when the oldest is due (the receive loop may be in a long poll)."""
        while self._pending_deletes:
            await asyncio.sleep(max(0.0, self._pending_deletes[0][0] - time.monotonic()))
            now = time.monotonic()
            while self._pending_deletes and self._pending_deletes[0][0] <= now:
                await self._delete_batch(client)

    async def _flush_all(self, client: BaseClient) -> None:
        """Delete every waiting message now (the client is about to close)."""
        flusher, self._flusher = self._flusher, None
        if flusher is not None and not flusher.done():
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        while self._pending_deletes:
            await self._delete_batch(client)

    async def _delete_batch(self, client: BaseClient) -> None:
        """Delete the (up to) ten oldest waiting messages in one call."""
        batch, self._pending_deletes = (
            self._pending_deletes[:MAX_MESSAGES],
            self._pending_deletes[MAX_MESSAGES:],
        )
        await self._apply(client, [{"ReceiptHandle": handle} for _, handle in batch], Action.DELETE)

    def _decide(self, message: Mapping[str, Any]) -> Action:
        """Return what to do with one message, delivering its news first when someone here waits for it."""
        self.stats.received += 1
        attributes = message.get("Attributes", {})
        receive_count = int(attributes.get("ApproximateReceiveCount", 1))
        try:
            change = parse_state_change(str(message.get("Body", "")))
        except MalformedEvent as error:
            self.stats.malformed += 1
            log.warning(
                "Leaving malformed message %s on %s for the dead-letter queue (receive %d): %s",
                message.get("MessageId"),
                self.queue_url,
                receive_count,
                error,
            )
            return Action.KEEP
        if change.event_id in self._seen:
            self.stats.duplicates += 1
            return Action.DELETE
        newer = self._ledger.observe(change)
        newest = self._ledger.get(change.job_name)
        held = change.job_name in self._subscriptions
        if not change.job_name.startswith(f"{self.prefix}-"):
            self.stats.foreign += 1
        elif held and newest is not None and newest.terminal:
            self.stats.delivered += 1
            self._settled.add(change.job_name)
            for subscription in list(self._subscriptions.get(change.job_name, ())):
                subscription.resolve(terminal_event(newest))
        elif change.terminal and not held and change.job_name in self._settled:
            self.stats.settled += 1
        elif change.terminal and not held:
            sent = attributes.get("SentTimestamp")
            age = self._clock() - int(sent) / 1000.0 if sent else 0.0
            if should_release(receive_count, age, limit=self._release_limit or 0, window=self.release_window):
                # Not remembered as acted upon: when it comes back, it is judged again.
                self.stats.released += 1
                return Action.RELEASE
            self.stats.unclaimed += 1
        elif newer:
            self.stats.progress += 1
        else:
            self.stats.stale += 1
        self._seen.add(change.event_id)
        return Action.DELETE

    async def _apply(self, client: BaseClient, messages: Sequence[Mapping[str, Any]], action: Action) -> None:
        if not messages:
            return
        entries: list[dict[str, Any]] = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
            for index, message in enumerate(messages)
        ]
        try:
            if action is Action.DELETE:
                self.stats.delete_calls += 1
                response = await client.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            else:
                for entry in entries:
                    entry["VisibilityTimeout"] = self.release_delay
                response = await client.change_message_visibility_batch(
                    QueueUrl=self.queue_url, Entries=entries
                )
        except Exception as error:
            # The messages come back after the visibility timeout and are judged again, de-duplicated.
            self.stats.action_errors += len(entries)
            log.warning(
                "Could not %s %d messages on %s: %s", action.value, len(entries), self.queue_url, error
            )
            return
        failed = response.get("Failed", [])
        if failed:
            self.stats.action_errors += len(failed)
            log.warning(
                "SQS did not %s %d messages on %s: %s", action.value, len(failed), self.queue_url, failed
            )


def _visibility_timeout(attributes: Mapping[str, str]) -> float:
    """Return the queue's visibility timeout (SQS's default, 30 s, when it does not say)."""
    try:
        return float(attributes["VisibilityTimeout"])
    except (KeyError, TypeError, ValueError):
        return 30.0


def _max_receive_count(attributes: Mapping[str, str]) -> int | None:
    try:
        return int(json.loads(attributes["RedrivePolicy"])["maxReceiveCount"])
    except (KeyError, TypeError, ValueError):
        return None


_CONSUMERS: LoopLocal[tuple[str | None, str | None, str], SqsEventConsumer] = LoopLocal()


def sqs_consumer(
    queue_url: str,
    *,
    prefix: str,
    aws_conn_id: str | None = "aws_default",
    region_name: str | None = None,
    **settings: Any,
) -> SqsEventConsumer:
    """
    Return this process's consumer of ``queue_url``, creating it on the running loop.

    ``settings`` (see :class:`SqsEventConsumer`) apply when the consumer is created. One queue
    carries one prefix's events: asking for the same queue with another prefix raises
    :class:`~lyftlearn_provider.exceptions.InvalidSpecError`.
    """
    consumer = _CONSUMERS.get(
        (aws_conn_id, region_name, queue_url),
        lambda: SqsEventConsumer(aws_conn_id, region_name, queue_url, prefix=prefix, **settings),
    )
    if consumer.prefix != prefix:
        raise InvalidSpecError(
            "job_name_prefix",
            f"{prefix!r} does not match the queue {queue_url}, which carries the events of prefix "
            f"{consumer.prefix!r} in this triggerer",
            "Give each job-name prefix its own queue (one SetupTrainingEventsOperator per prefix).",
        )
    return consumer
