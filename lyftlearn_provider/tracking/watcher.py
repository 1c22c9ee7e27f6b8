"""One status watcher per triggerer process and AWS connection, serving every deferred training job in it."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from lyftlearn_provider.hooks.sagemaker import SageMakerTrainingHook
from lyftlearn_provider.retries import (
    NO_BOTOCORE_RETRIES,
    backoff,
    is_not_found,
    is_throttling,
    is_transient,
)
from lyftlearn_provider.status import FAILED, is_terminal
from lyftlearn_provider.tracking.budget import BudgetKey, LoopLocal, TokenBucket, process_budget

if TYPE_CHECKING:
    from botocore.client import BaseClient

#: Seconds the listing cursor is moved back: covers clock skew between us and AWS, and changes that
#: ListTrainingJobs (eventually consistent) shows a little after their LastModifiedTime.
DEFAULT_OVERLAP_SECONDS = 30.0
#: ListTrainingJobs' largest page.
PAGE_SIZE = 100


@dataclasses.dataclass(frozen=True)
class JobOutcome:
    """How a watched job ended: its terminal status, or why the watcher cannot tell (``error``)."""

    job_status: str | None = None
    failure_reason: str | None = None
    error: str | None = None


class Subscription:
    """One trigger's interest in one job; ``outcome`` resolves when the job ends or cannot be followed."""

    def __init__(self, watcher: SharedJobWatcher, job_name: str, interval: float) -> None:
        self.job_name = job_name
        self.interval = interval
        self.outcome: asyncio.Future[JobOutcome] = asyncio.get_running_loop().create_future()
        #: Whether a listing or a Describe has seen the job since it subscribed.
        self.confirmed = False
        self._watcher = watcher

    def resolve(self, outcome: JobOutcome) -> None:
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
       changed lately, and may have ended long before the trigger started. A job SageMaker does not
       know resolves as an error.

    A job seen (listed or described) in a pass that started at ``t`` cannot end unnoticed: any later
    change is newer than the next pass's cursor. Every call waits for the process's budget; throttling
    penalizes the budget, and throttling, 5xx answers and lost connections back off and repeat the
    pass (the cursor only moves after a complete pass) without failing anyone. Any other error fails
    the current subscribers with an error outcome, as the poll source would.

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
        """
        subscription = Subscription(self, job_name, interval)
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

    def _resolve(self, job_name: str, outcome: JobOutcome) -> None:
        for subscription in list(self._subscriptions.get(job_name, ())):
            subscription.resolve(outcome)

    def _fail_everyone(self, message: str) -> None:
        for job_name in list(self._subscriptions):
            self._resolve(job_name, JobOutcome(error=message))

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
            async with await hook.get_async_conn() as client:
                # Once the last subscriber has left, a new one starts a new task: this one just ends.
                while self._task is asyncio.current_task():
                    self._wake.clear()
                    try:
                        await self._pass(client)
                    except Exception as error:
                        if not is_transient(error):
                            raise
                        # Throttling, 5xx, connection resets: the jobs are unaffected; try the pass again.
                        if is_throttling(error):
                            self.budget.penalize()
                        failures += 1
                        await asyncio.sleep(backoff(min(self._interval(), 1.0), failures))
                        continue
                    failures = 0
                    if self._task is not asyncio.current_task():
                        break
                    # A subscriber that arrived during the pass is looked at right away.
                    if any(not sub.confirmed for subs in self._subscriptions.values() for sub in subs):
                        continue
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self._interval())
        except Exception as error:
            self._fail_everyone(f"the shared watcher failed: {type(error).__name__}: {error}")
        finally:
            if self._task is asyncio.current_task():
                self._task = None

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
                    subscription.confirmed = True
                if name in self._subscriptions and is_terminal(status):
                    if status == FAILED:
                        failed.append(name)
                    else:
                        self._resolve(name, JobOutcome(job_status=status))
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
        # Imported here: this package is the triggerer's, but keep botocore off any import-time path.
        from botocore.exceptions import ClientError

        await self.budget.acquire()
        try:
            description = await client.describe_training_job(TrainingJobName=job_name)
        except ClientError as error:
            if is_transient(error):
                raise
            # About this job only (it is gone, or its name is invalid): the other subscribers carry on.
            message = (
                f"training job {job_name} does not exist"
                if is_not_found(error)
                else f"{type(error).__name__}: {error}"
            )
            self._resolve(job_name, JobOutcome(error=message))
            return
        status = description["TrainingJobStatus"]
        if is_terminal(status):
            self._resolve(
                job_name, JobOutcome(job_status=status, failure_reason=description.get("FailureReason"))
            )
        for subscription in self._subscriptions.get(job_name, ()):
            subscription.confirmed = True


_WATCHERS: LoopLocal[BudgetKey, SharedJobWatcher] = LoopLocal()


def shared_watcher(aws_conn_id: str | None, region_name: str | None) -> SharedJobWatcher:
    """Return this process's watcher for one AWS connection and region, creating it on the running loop."""
    return _WATCHERS.get(
        (aws_conn_id, region_name),
        lambda: SharedJobWatcher(aws_conn_id, region_name, budget=process_budget(aws_conn_id, region_name)),
    )
