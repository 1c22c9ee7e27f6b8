"""One status watcher per triggerer process and AWS connection, serving every deferred training job in it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lyftlearn_provider.hooks.sagemaker import SageMakerTrainingHook
from lyftlearn_provider.retries import (
    DESCRIBE_TRAINING_JOB,
    LIST_TRAINING_JOBS,
    NO_BOTOCORE_RETRIES,
    backoff,
    classify,
    describe_error,
    is_not_found,
    is_throttling,
)
from lyftlearn_provider.status import FAILED, JobEvent, TrackingErrorKind, is_terminal
from lyftlearn_provider.tracking.budget import BudgetKey, LoopLocal, TokenBucket, process_budget
from lyftlearn_provider.tracking.outcomes import (
    DEFAULT_RETRY_AFTER_SECONDS,
    UNEXPECTED_FAILURES_TOLERATED,
    Fallback,
    Outcome,
    TrackerHealth,
    TrackerUnavailable,
    as_failure,
)

if TYPE_CHECKING:
    from botocore.client import BaseClient

#: Seconds the listing cursor is moved back: covers clock skew between us and AWS, and changes that
#: ListTrainingJobs (eventually consistent) shows a little after their LastModifiedTime.
DEFAULT_OVERLAP_SECONDS = 30.0
#: ListTrainingJobs' largest page.
PAGE_SIZE = 100

log = logging.getLogger(__name__)


class Subscription:
    """
    One trigger's interest in one job.

    ``outcome`` resolves with the job's :class:`JobEvent` (terminal, or an error about this job), or with
    a :class:`Fallback` when the watcher cannot follow jobs at all and the trigger must poll its own.
    """

    def __init__(self, watcher: SharedJobWatcher, job_name: str, interval: float) -> None:
        self.job_name = job_name
        self.interval = interval
        self.outcome: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        #: Whether a listing or a Describe has seen the job since it subscribed.
        self.confirmed = False
        #: Called with the job's secondary status (``Starting``, ``Downloading`` ...) each time it changes.
        self.on_progress: Callable[[str], None] | None = None
        self._secondary_status: str | None = None
        self._watcher = watcher

    def saw(self, secondary_status: str | None) -> None:
        """Note that a listing showed the job, and tell the subscriber when its secondary status moved on."""
        self.confirmed = True
        if secondary_status and secondary_status != self._secondary_status:
            self._secondary_status = secondary_status
            if self.on_progress is not None:
                self.on_progress(secondary_status)

    def resolve(self, outcome: Outcome) -> None:
        """Give the subscriber its answer and stop watching the job for it."""
        if not self.outcome.done():
            self.outcome.set_result(outcome)
        self.close()

    def close(self) -> None:
        """Stop watching (the trigger ended or was cancelled); safe to call more than once."""
        self._watcher.unsubscribe(self)


class SharedJobWatcher:
    """
    Follow every subscribed training job of one AWS connection and region with batched listings.

    One background task, started by the first subscriber and stopped when the last one leaves, runs a
    *pass* every ``interval`` seconds (the smallest interval any subscriber asked for) and as soon as
    a new subscriber arrives:

    1. ``ListTrainingJobs`` with ``LastModifiedTimeAfter`` = the start of the last complete pass minus
       ``overlap`` seconds, every page. A listed job confirms its subscribers; a terminal one resolves
       them (``Completed`` and ``Stopped`` straight from the summary).
    2. A targeted ``DescribeTrainingJob`` only where the summary is not enough: a ``Failed`` job (for
       its ``FailureReason``), and a new subscriber whose job the listing did not show — it has not
       changed lately, and may have ended long before the trigger started.

    A job seen (listed or described) in a pass that started at ``t`` cannot end unnoticed: any later
    change is newer than the next pass's cursor. Every call waits for the process's budget. What a
    failure does depends on :func:`~lyftlearn_provider.retries.classify`:

    - transient (throttling, which also penalizes the budget; 5xx answers; lost connections): back off
      and repeat the pass (the cursor only moves after a complete pass), for as long as it takes;
    - about one job (SageMaker does not know it, or rejects its name): that job's subscribers get an
      ``error`` event of kind ``job``; the others carry on. Another unexpected answer about one job
      sends that job's subscribers to poll it themselves;
    - the watcher cannot work (permissions, credentials): every subscriber gets a :class:`Fallback` and
      polls its own job; one warning names the missing permission; later subscribers go straight to
      polling, until ``retry_after`` seconds have passed and the next one tries the watcher again;
    - anything else: ridden out like a transient failure ``UNEXPECTED_FAILURES_TOLERATED`` passes in a
      row, then handled like the previous case (with the traceback in the warning). A watcher that
      fails everyone would only have them deferred again onto the same failure; polling still follows
      every job, and reports what it cannot follow, job by job.

    The client comes from the amazon provider's async hook with the settings of the subscriber that
    started the task; botocore's own retries are turned off so that every attempt passes the budget.
    """

    def __init__(
        self,
        aws_conn_id: str | None,
        region_name: str | None,
        *,
        budget: TokenBucket,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        overlap: float = DEFAULT_OVERLAP_SECONDS,
        retry_after: float = DEFAULT_RETRY_AFTER_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.budget = budget
        self.verify = verify
        self.botocore_config = botocore_config
        self.overlap = overlap
        self._clock = clock
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._cursor: float | None = None
        self.health = TrackerHealth(
            f"The shared training-job watcher of connection {aws_conn_id!r}, "
            f"region {region_name or 'default'}",
            instead="poll DescribeTrainingJob each (as tracking='poll' does)",
            alternative="use tracking='poll'",
            log=log,
            retry_after=retry_after,
        )

    @property
    def running(self) -> bool:
        """Tell whether the background task is running."""
        return self._task is not None and not self._task.done()

    @property
    def job_names(self) -> frozenset[str]:
        """Return the jobs someone is waiting for."""
        return frozenset(self._subscriptions)

    def subscribe(
        self,
        job_name: str,
        *,
        interval: float,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> Subscription:
        """
        Start watching ``job_name`` for a subscriber that wants news at least every ``interval`` seconds.

        ``verify`` and ``botocore_config`` are used when this subscriber (re)starts the background task.
        While the watcher cannot work, the subscription comes back resolved with a :class:`Fallback`.
        """
        subscription = Subscription(self, job_name, interval)
        if self.health.reason is not None and self.health.broken:
            subscription.outcome.set_result(Fallback(self.health.reason))
            return subscription
        self._subscriptions.setdefault(job_name, set()).add(subscription)
        if not self.running:
            self.verify, self.botocore_config = verify, botocore_config
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"lyftlearn-training-watcher-{self.aws_conn_id}-{self.region_name}"
            )
        self._wake.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Forget ``subscription``; stop the background task when nobody is left."""
        subscriptions = self._subscriptions.get(subscription.job_name)
        if subscriptions is None or subscription not in subscriptions:
            return
        subscriptions.discard(subscription)
        if not subscriptions:
            del self._subscriptions[subscription.job_name]
        if not self._subscriptions and self._task is not None:
            # From the task itself (its last job resolved) the loop ends by itself and closes its client.
            if self._task is not asyncio.current_task():
                self._task.cancel()
            self._task = None

    def _client_config(self) -> dict[str, Any]:
        return {**(self.botocore_config or {}), **NO_BOTOCORE_RETRIES}

    def _interval(self) -> float:
        return min((sub.interval for subs in self._subscriptions.values() for sub in subs), default=1.0)

    def _resolve(self, job_name: str, outcome: Outcome) -> None:
        for subscription in list(self._subscriptions.get(job_name, ())):
            subscription.resolve(outcome)

    def _fall_back(self, failure: TrackerUnavailable) -> None:
        fallback = self.health.fail(failure)
        for job_name in list(self._subscriptions):
            self._resolve(job_name, fallback)

    async def _backoff(self, failures: int) -> None:
        await asyncio.sleep(backoff(min(self._interval(), 1.0), failures))

    async def _run(self) -> None:
        hook = SageMakerTrainingHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self._client_config(),
        )
        failures = 0
        # A restarted watcher starts from now: its new subscribers are each confirmed by the first pass.
        self._cursor = None
        try:
            # Once the last subscriber has left, a new one starts a new task: this one just ends.
            while self._task is asyncio.current_task():
                try:
                    async with await hook.get_async_conn() as client:
                        await self._watch(client)
                except Exception as error:
                    # Making the client (e.g. assuming the connection's role), or what _watch gave up on.
                    failure = as_failure(error, LIST_TRAINING_JOBS)
                    if failure.kind is not TrackingErrorKind.TRANSIENT:
                        self._fall_back(failure)
                        return
                    failures += 1
                    await self._backoff(failures)
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    async def _watch(self, client: BaseClient) -> None:
        """Pass after pass until nobody is left; raise what cannot be ridden out."""
        failures = unexpected = 0
        while self._task is asyncio.current_task():
            self._wake.clear()
            try:
                await self._pass(client)
            except Exception as error:
                failure = as_failure(error, LIST_TRAINING_JOBS)
                if failure.kind is TrackingErrorKind.UNEXPECTED:
                    unexpected += 1
                if failure.kind is TrackingErrorKind.TRACKER or unexpected > UNEXPECTED_FAILURES_TOLERATED:
                    raise failure from failure.error
                # Throttling, 5xx, connection resets: the jobs are unaffected; try the pass again.
                if is_throttling(failure.error):
                    self.budget.penalize()
                failures += 1
                await self._backoff(failures)
                continue
            failures = unexpected = 0
            self.health.works()
            if self._task is not asyncio.current_task():
                break
            # A subscriber that arrived during the pass is looked at right away.
            if any(not sub.confirmed for subs in self._subscriptions.values() for sub in subs):
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._interval())

    async def _pass(self, client: BaseClient) -> None:
        started = self._clock()
        since = started - self.overlap if self._cursor is None else self._cursor - self.overlap
        failed: list[str] = []
        token: str | None = None
        while True:
            request: dict[str, Any] = {"LastModifiedTimeAfter": since, "MaxResults": PAGE_SIZE}
            if token:
                request["NextToken"] = token
            await self.budget.acquire()
            page = await client.list_training_jobs(**request)
            for summary in page.get("TrainingJobSummaries", []):
                name, status = summary["TrainingJobName"], summary["TrainingJobStatus"]
                for subscription in self._subscriptions.get(name, ()):
                    subscription.saw(summary.get("SecondaryStatus"))
                if name in self._subscriptions and is_terminal(status):
                    if status == FAILED:
                        failed.append(name)
                    else:
                        self._resolve(name, JobEvent.terminal(name, status))
            token = page.get("NextToken")
            if not token:
                break
        unconfirmed = [
            name for name, subs in self._subscriptions.items() if any(not sub.confirmed for sub in subs)
        ]
        outcomes = await asyncio.gather(
            *(self._describe(client, name) for name in {*failed, *unconfirmed}), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        self._cursor = started

    async def _describe(self, client: BaseClient, job_name: str) -> None:
        await self.budget.acquire()
        try:
            description = await client.describe_training_job(TrainingJobName=job_name)
        except Exception as error:
            kind = classify(error, operation=DESCRIBE_TRAINING_JOB)
            if kind is TrackingErrorKind.JOB:
                # About this job only (it is gone, or its name is invalid): the other subscribers carry on.
                message = (
                    f"training job {job_name} does not exist"
                    if is_not_found(error)
                    else f"training job {job_name} cannot be described: {describe_error(error)}"
                )
                self._resolve(job_name, JobEvent.error(job_name, message, kind))
                return
            if kind is TrackingErrorKind.UNEXPECTED:
                # An odd answer about one job: its own trigger polls it, and reports it if it lasts.
                log.warning(
                    "Could not describe training job %s (%s); its trigger follows it by itself.",
                    job_name,
                    describe_error(error),
                )
                self._resolve(job_name, Fallback(f"DescribeTrainingJob failed: {describe_error(error)}"))
                return
            raise TrackerUnavailable(DESCRIBE_TRAINING_JOB, error, kind) from error
        status = description["TrainingJobStatus"]
        if is_terminal(status):
            self._resolve(job_name, JobEvent.terminal(job_name, status, description.get("FailureReason")))
        for subscription in self._subscriptions.get(job_name, ()):
            subscription.confirmed = True


_WATCHERS: LoopLocal[BudgetKey, SharedJobWatcher] = LoopLocal()


def shared_watcher(aws_conn_id: str | None, region_name: str | None) -> SharedJobWatcher:
    """Return this process's watcher for one AWS connection and region, creating it on the running loop."""
    return _WATCHERS.get(
        (aws_conn_id, region_name),
        lambda: SharedJobWatcher(aws_conn_id, region_name, budget=process_budget(aws_conn_id, region_name)),
    )
