"""One status watcher per triggerer process, AWS connection and job kind, serving every deferred job of it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lyftlearn_provider.hooks.sagemaker import job_hook
from lyftlearn_provider.job_kinds import TRAINING, JobKind
from lyftlearn_provider.retries import (
    NO_BOTOCORE_RETRIES,
    backoff,
    classify,
    describe_error,
    is_not_found,
    is_throttling,
)
from lyftlearn_provider.status import FAILED, JobEvent, TrackingErrorKind, is_terminal
from lyftlearn_provider.tracking.budget import LoopLocal, TokenBucket, process_budget
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
#: Unconfirmed subscribers (never seen by a listing) above which a pass lists the prefix's InProgress jobs
#: to confirm them, instead of one Describe each (a triggerer restarted with hundreds of deferred jobs).
IN_PROGRESS_LISTING_THRESHOLD = 20

log = logging.getLogger(__name__)


class Subscription:
    """
    One trigger's interest in one job.

    ``outcome`` resolves with the job's :class:`JobEvent` (terminal, or an error about this job), or with
    a :class:`Fallback` when the watcher cannot follow jobs at all and the trigger must poll its own.
    """

    def __init__(
        self, watcher: SharedJobWatcher, job_name: str, interval: float, prefix: str | None = None
    ) -> None:
        self.job_name = job_name
        self.interval = interval
        #: What the watcher's listings ask for (``NameContains``) to find this job: ``<prefix>-``, or
        #: None (every job of the account) when the name does not start with it.
        self.name_filter = f"{prefix}-" if prefix and job_name.startswith(f"{prefix}-") else None
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
    Follow every subscribed job of one kind (training, processing), connection and region by listings.

    One background task, started by the first subscriber and stopped when the last one leaves, runs a
    *pass* right away and then every ``interval`` seconds, start to start (the smallest interval any
    subscriber asked for). A subscriber that arrives meanwhile joins the next pass: a thousand triggers
    subscribing one after another cost the passes they would have had anyway, not a pass each.

    1. ``ListTrainingJobs`` with ``LastModifiedTimeAfter`` = the start of the last complete pass minus
       ``overlap`` seconds and ``NameContains`` = ``<prefix>-`` of the subscribers' job-name prefix (one
       listing per prefix; unfiltered for a subscriber without one), newest created first. Names are
       then matched exactly, so another team's ``x-ll-…`` job is never taken for ours. Paging stops
       once a page reaches jobs created before the oldest job waited for (when the creation times of
       all of them are known): older jobs of the prefix, another triggerer's, are not read. A listed
       job confirms its subscribers; a terminal one resolves them (``Completed`` and ``Stopped``
       straight from the summary).
    2. More than ``IN_PROGRESS_LISTING_THRESHOLD`` subscribers of this pass unconfirmed (their jobs
       have not changed lately: a restarted triggerer resuming many deferred jobs): one
       ``ListTrainingJobs`` of the prefix's ``InProgress`` jobs confirms the running ones.
    3. A targeted ``DescribeTrainingJob`` only where a summary is not enough: a ``Failed`` job (for
       its ``FailureReason``), and a subscriber of this pass whose job no listing showed — it may have
       ended long before the trigger started, or not exist.

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
        kind: JobKind = TRAINING,
    ) -> None:
        #: The kind of job this watcher lists and describes (one watcher per kind, one budget for all).
        self.kind = kind
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.budget = budget
        self.verify = verify
        self.botocore_config = botocore_config
        self.overlap = overlap
        self._clock = clock
        self._subscriptions: dict[str, set[Subscription]] = {}
        #: Epoch CreationTime of the jobs waited for, as listings and Describes showed them.
        self._created: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._cursor: float | None = None
        #: Monotonic start of the last pass (passes are spaced start to start).
        self._last_pass: float | None = None
        #: Calls and seconds of the last complete pass (the benchmark reads them).
        self.last_pass_calls = 0
        self.last_pass_seconds = 0.0
        self.health = TrackerHealth(
            f"The shared {kind.noun} watcher of connection {aws_conn_id!r}, "
            f"region {region_name or 'default'}",
            instead=f"poll {kind.describe_operation} each (as tracking='poll' does)",
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
        prefix: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
    ) -> Subscription:
        """
        Start watching ``job_name`` for a subscriber that wants news at least every ``interval`` seconds.

        ``prefix`` is the job-name prefix (``<prefix>-…``) the listings ask for. ``verify`` and
        ``botocore_config`` are used when this subscriber (re)starts the background task. While the
        watcher cannot work, the subscription comes back resolved with a :class:`Fallback`. The
        subscription joins the next pass (the first one runs at once).
        """
        subscription = Subscription(self, job_name, interval, prefix)
        if self.health.reason is not None and self.health.broken:
            subscription.outcome.set_result(Fallback(self.health.reason))
            return subscription
        self._subscriptions.setdefault(job_name, set()).add(subscription)
        if not self.running:
            self.verify, self.botocore_config = verify, botocore_config
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"lyftlearn-{self.kind.name}-watcher-{self.aws_conn_id}-{self.region_name}"
            )
        # Not a pass of its own: the watcher only re-reads its interval (this one may be shorter).
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
            self._created.pop(subscription.job_name, None)
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
        hook = job_hook(
            self.kind,
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self._client_config(),
        )
        failures = 0
        # A restarted watcher starts from now: its new subscribers are each confirmed by the first pass.
        self._cursor = self._last_pass = None
        try:
            # Once the last subscriber has left, a new one starts a new task: this one just ends.
            while self._task is asyncio.current_task():
                try:
                    async with await hook.get_async_conn() as client:
                        await self._watch(client)
                except Exception as error:
                    # Making the client (e.g. assuming the connection's role), or what _watch gave up on.
                    failure = as_failure(error, self.kind.iam_action(self.kind.list_operation))
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
            if self._last_pass is not None:
                # Start to start: a pass every interval, however long the last one took. A new
                # subscriber wakes this wait only to re-read the interval.
                self._wake.clear()
                wait = self._last_pass + self._interval() - time.monotonic()
                if wait > 0:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), wait)
                    continue
            if self._task is not asyncio.current_task():
                break
            started = time.monotonic()
            try:
                await self._pass(client)
            except Exception as error:
                failure = as_failure(error, self.kind.iam_action(self.kind.list_operation))
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
            self._last_pass = started
            self.last_pass_seconds = time.monotonic() - started
            self.health.works()

    async def _pass(self, client: BaseClient) -> None:
        started = self._clock()
        since = (started if self._cursor is None else self._cursor) - self.overlap
        # This pass's subscribers; those arriving while it runs are the next pass's.
        members = {sub for subs in self._subscriptions.values() for sub in subs}
        filters = {sub.name_filter for sub in members}
        # Without a filter the listing shows every job, ours included: one listing is enough.
        filters = {None} if None in filters else filters
        calls = 0
        failed: list[str] = []
        for name_filter in sorted(filters, key=str):
            calls += await self._list(client, {"LastModifiedTimeAfter": since}, name_filter, failed)
        unconfirmed = {sub for sub in members if not sub.confirmed and not sub.outcome.done()}
        if len(unconfirmed) > IN_PROGRESS_LISTING_THRESHOLD:
            for name_filter in sorted({sub.name_filter for sub in unconfirmed}, key=str):
                calls += await self._list(client, {"StatusEquals": "InProgress"}, name_filter, failed)
            unconfirmed = {sub for sub in unconfirmed if not sub.confirmed and not sub.outcome.done()}
        names = {*failed, *(sub.job_name for sub in unconfirmed)}
        outcomes = await asyncio.gather(
            *(self._describe(client, name) for name in names), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome
        self._cursor = started
        self.last_pass_calls = calls + len(names)

    async def _list(
        self, client: BaseClient, window: dict[str, Any], name_filter: str | None, failed: list[str]
    ) -> int:
        """List the jobs of ``window`` (newest created first); act on ours; return the pages read."""
        request: dict[str, Any] = {
            **window,
            "MaxResults": PAGE_SIZE,
            "SortBy": "CreationTime",
            "SortOrder": "Descending",
        }
        if name_filter is not None:
            request["NameContains"] = name_filter
        pages = 0
        while True:
            await self.budget.acquire()
            page = await getattr(client, self.kind.method(self.kind.list_operation))(**request)
            pages += 1
            summaries = page.get(self.kind.summaries_field, [])
            for summary in summaries:
                # NameContains matches anywhere in the name: only an exact name is one of ours.
                name, status = summary[self.kind.name_field], summary[self.kind.status_field]
                if name not in self._subscriptions:
                    continue
                self._created[name] = _epoch(summary.get("CreationTime"))
                for subscription in self._subscriptions[name]:
                    subscription.saw(summary.get("SecondaryStatus"))
                if is_terminal(status):
                    if status == FAILED:
                        failed.append(name)
                    else:
                        self._resolve(name, JobEvent.terminal(name, status))
            request["NextToken"] = page.get("NextToken")
            if not request["NextToken"] or (summaries and self._older_than_ours(summaries[-1], name_filter)):
                return pages

    def _older_than_ours(self, summary: dict[str, Any], name_filter: str | None) -> bool:
        """Tell whether the listing (newest created first) is past every job of ``name_filter`` waited for."""
        oldest = float("inf")
        for name, subscriptions in self._subscriptions.items():
            if name_filter is not None and not any(sub.name_filter == name_filter for sub in subscriptions):
                continue
            created = self._created.get(name)
            if created is None:
                return False  # not seen yet: it could be anywhere in the listing
            oldest = min(oldest, created)
        return _epoch(summary.get("CreationTime")) < oldest

    async def _describe(self, client: BaseClient, job_name: str) -> None:
        await self.budget.acquire()
        try:
            method = getattr(client, self.kind.method(self.kind.describe_operation))
            description = await method(**{self.kind.name_field: job_name})
        except Exception as error:
            action = self.kind.iam_action(self.kind.describe_operation)
            kind = classify(error, operation=action)
            if kind is TrackingErrorKind.JOB:
                # About this job only (it is gone, or its name is invalid): the other subscribers carry on.
                message = (
                    f"{self.kind.noun} {job_name} does not exist"
                    if is_not_found(error)
                    else f"{self.kind.noun} {job_name} cannot be described: {describe_error(error)}"
                )
                self._resolve(job_name, JobEvent.error(job_name, message, kind))
                return
            if kind is TrackingErrorKind.UNEXPECTED:
                # An odd answer about one job: its own trigger polls it, and reports it if it lasts.
                log.warning(
                    "Could not describe %s %s (%s); its trigger follows it by itself.",
                    self.kind.noun,
                    job_name,
                    describe_error(error),
                )
                self._resolve(
                    job_name, Fallback(f"{self.kind.describe_operation} failed: {describe_error(error)}")
                )
                return
            raise TrackerUnavailable(action, error, kind) from error
        status = description[self.kind.status_field]
        if job_name in self._subscriptions:
            self._created[job_name] = _epoch(description.get("CreationTime"))
        if is_terminal(status):
            self._resolve(job_name, JobEvent.terminal(job_name, status, description.get("FailureReason")))
        for subscription in self._subscriptions.get(job_name, ()):
            subscription.confirmed = True


def _epoch(value: Any) -> float:
    """Return a listing's or description's timestamp (a datetime from botocore) as epoch seconds."""
    if value is None:
        return float("-inf")
    return float(value.timestamp()) if hasattr(value, "timestamp") else float(value)


_WATCHERS: LoopLocal[tuple[str | None, str | None, str], SharedJobWatcher] = LoopLocal()


def shared_watcher(
    aws_conn_id: str | None, region_name: str | None, kind: JobKind = TRAINING
) -> SharedJobWatcher:
    """Return this process's watcher of ``kind`` for one AWS connection and region (on the running loop).

    Each kind has its own watcher (its own listing); all of a connection and region draw from one budget.
    """
    return _WATCHERS.get(
        (aws_conn_id, region_name, kind.name),
        lambda: SharedJobWatcher(
            aws_conn_id, region_name, budget=process_budget(aws_conn_id, region_name), kind=kind
        ),
    )
