"""Deferrable tracking of SageMaker jobs: training and processing (batch), one trigger for both kinds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.hooks.sagemaker import (
    SageMakerJobHook,
    SageMakerProcessingHook,
    SageMakerTrainingHook,
)
from lyftlearn_provider.job_kinds import TRAINING
from lyftlearn_provider.job_kinds import job_kind as job_kind_of
from lyftlearn_provider.retries import (
    backoff,
    classify,
    describe_error,
    is_not_found,
    is_throttling,
    tracker_fix,
)
from lyftlearn_provider.status import JobEvent, TrackingErrorKind, TrackingSource, is_terminal
from lyftlearn_provider.tracking.budget import process_budget
from lyftlearn_provider.tracking.clients import shared_clients
from lyftlearn_provider.tracking.sqs import sqs_consumer
from lyftlearn_provider.tracking.watcher import shared_watcher

if TYPE_CHECKING:
    from botocore.client import BaseClient

    from lyftlearn_provider.tracking.budget import TokenBucket
    from lyftlearn_provider.tracking.sqs import EventSubscription, SqsEventConsumer
    from lyftlearn_provider.tracking.watcher import Subscription

#: Transient failures in a row after which a polling trigger says so in its log (and again at each doubling).
LOUD_FAILURES = 8


class TrainingJobTrigger(BaseTrigger):
    """
    Wait for a SageMaker training job to end, then hand the job back to its task.

    Polls ``DescribeTrainingJob`` with jitter through an aiobotocore client shared by every polling
    trigger of the process with the same AWS settings (:mod:`~lyftlearn_provider.tracking.clients`),
    each call drawn from the triggerer process's AWS call budget for the connection and region (a
    token bucket, ``[lyftlearn] api_calls_per_second``, shared with the shared watcher; a throttling
    answer slows every trigger of the process down, not just the one that got it). Throttling, 5xx answers and
    dropped connections do not end the wait: the trigger backs off (doubling the interval, at most 16
    times it and five minutes) and carries on for as long as it takes; the task's deadline bounds the
    wait. When the deadline passes first, it reports ``timeout`` so the task can stop the job.
    Otherwise it fires exactly one event (a :class:`~lyftlearn_provider.status.JobEvent`): ``terminal``
    with the job's status and failure reason, or ``error`` with a message and an ``error_kind``:
    ``job`` (SageMaker does not know the job, or rejects its name), ``tracker`` (the connection may not
    describe the job: the message names the permission) or ``unexpected`` (anything else).

    With ``source="shared"`` the trigger does not poll: it subscribes to the triggerer process's
    :class:`~lyftlearn_provider.tracking.watcher.SharedJobWatcher` for its connection and region, which
    follows every such job in the process with batched ``ListTrainingJobs`` calls (plus a Describe only
    where a listing is not enough) under one AWS call budget, and reports the same events. It is what
    ``TrainingOperator`` uses by default: the calls per job fall far below one Describe per poll
    interval, so SageMaker's (not adjustable) throttles are not reached, and 1,000 jobs in one triggerer
    are each noticed within about ``poll_interval``. With ``job_name_prefix`` its listings ask only for
    jobs named ``<prefix>-…`` (``NameContains``, then an exact check), so other teams' jobs in the
    account cost nothing. ``poll``, this class's default (the one a trigger serialized without
    ``source`` gets), suits a handful of jobs; held to the process budget (10 calls a second), 1,000
    polling jobs are noticed up to minutes late. The shared watcher backs off from
    throttling and failures for as long as it takes, so only the deadline bounds the wait. A watcher that
    cannot work (say the role lacks ``sagemaker:ListTrainingJobs``) warns once per process and the
    trigger polls its job itself, in the same run: a tracker's trouble never fails a healthy job.

    With ``source="events"`` the trigger also subscribes to the process's SQS consumer of
    ``queue_url``; whichever learns of the end first wins. A queue that cannot be used (missing, access
    denied, its KMS key) warns once per process and leaves the shared watcher (or, failing that, the
    trigger's own polls) to notice the end.

    :param job_name: the training job to follow.
    :param aws_conn_id: the Airflow connection to AWS.
    :param region_name: AWS region; the connection's when None.
    :param verify: TLS verification for the AWS client.
    :param botocore_config: extra botocore client configuration.
    :param poll_interval: seconds between two polls (jittered by ±20 %).
    :param deadline: epoch seconds after which the trigger reports ``timeout``; None for no deadline.
    :param source: ``poll`` (this class's default), ``shared`` (the operators' default) or ``events``
        (a :class:`TrackingSource` value); with ``shared``, ``poll_interval`` is the longest this
        trigger lets the watcher go between two looks at its job; with ``events`` it is the
        reconciliation interval: the shared watcher still looks that often, so a lost event delays the
        task by at most about ``poll_interval``, never hangs it.
    :param queue_url: the SQS queue the EventBridge rule feeds (``source="events"``; see
        ``SetupTrainingEventsOperator``).
    :param job_name_prefix: the prefix of the job's name (``<prefix>-…``): the shared watcher lists only
        that prefix's jobs (``shared`` and ``events``; a name without it is listed unfiltered), and the
        queue's rule matches it (``events``, where it is required). Unused by ``poll``.
    :param job_kind: ``training`` (default) or ``processing`` (batch): which kind of job ``job_name`` is.
    """

    def __init__(
        self,
        job_name: str,
        *,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        poll_interval: float = 30.0,
        deadline: float | None = None,
        source: str = "poll",
        queue_url: str | None = None,
        job_name_prefix: str | None = None,
        job_kind: str = TRAINING.name,
    ) -> None:
        super().__init__()
        try:
            self.kind = job_kind_of(job_kind)
        except ValueError as error:
            raise InvalidSpecError("job_kind", str(error), "Use 'training' or 'processing'.") from None
        try:
            tracking = TrackingSource(source)
        except ValueError:
            raise InvalidSpecError(
                "source",
                f"{source!r} is not a training job source",
                f"Set one of {', '.join(member.value for member in TrackingSource)}.",
            ) from None
        if tracking is TrackingSource.EVENTS and not (queue_url and job_name_prefix):
            raise InvalidSpecError(
                "queue_url, job_name_prefix",
                "source='events' needs queue_url and job_name_prefix",
                "Set both (SetupTrainingEventsOperator creates a prefix's queue), or use source='shared'.",
            )
        self.job_name = job_name
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.poll_interval = poll_interval
        self.deadline = deadline
        # The plain value: serialized kwargs are JSON primitives.
        self.source = tracking.value
        self.queue_url = queue_url
        self.job_name_prefix = job_name_prefix
        #: How many of the job's secondary status transitions the task log has shown.
        self._transitions_logged = 0
        self._last_status: str | None = None

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and the keyword arguments that recreate this trigger."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_name": self.job_name,
                "aws_conn_id": self.aws_conn_id,
                "region_name": self.region_name,
                "verify": self.verify,
                "botocore_config": self.botocore_config,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "source": self.source,
                "queue_url": self.queue_url,
                "job_name_prefix": self.job_name_prefix,
                "job_kind": self.kind.name,
            },
        )

    def hook(self) -> SageMakerJobHook:
        """Return the hook of this trigger's job kind, connection and region."""
        hook_class = SageMakerTrainingHook if self.kind is TRAINING else SageMakerProcessingHook
        return hook_class(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    @property
    def _describe_action(self) -> str:
        return self.kind.iam_action(self.kind.describe_operation)

    def _seconds_left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.time()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Follow the job until it ends or the deadline passes; fire exactly one event."""
        if self.source == TrackingSource.POLL:
            event = await self._poll()
        else:
            event = await self._watch_shared()
        yield TriggerEvent(event.to_payload())

    async def _watch_shared(self) -> JobEvent:
        """Follow the job through the process's shared watcher and, with ``events``, its SQS consumer."""
        if self._seconds_left() <= 0:
            return JobEvent.timeout(self.job_name)
        subscription: Subscription | None = None
        consumer: SqsEventConsumer | None = None
        event_subscription: EventSubscription | None = None
        poller: asyncio.Task[JobEvent] | None = None
        try:
            # Subscribed inside the guard: whatever fails here is this job's error event, and whatever
            # was subscribed before the failure is closed below.
            subscription = shared_watcher(self.aws_conn_id, self.region_name, self.kind).subscribe(
                self.job_name,
                interval=self.poll_interval,
                prefix=self.job_name_prefix,
                verify=self.verify,
                botocore_config=self.botocore_config,
            )
            subscription.on_progress = self._log_status
            if self.source == TrackingSource.EVENTS:
                consumer = sqs_consumer(
                    str(self.queue_url),
                    prefix=str(self.job_name_prefix),
                    aws_conn_id=self.aws_conn_id,
                    region_name=self.region_name,
                    verify=self.verify,
                    botocore_config=self.botocore_config,
                )
                event_subscription = consumer.subscribe(self.job_name)
            # The reconciler (the watcher, or this trigger's own polls once the watcher gives up) and the
            # events: whichever learns of the end first wins.
            reconciler: asyncio.Future[Any] = subscription.outcome
            waiting: set[asyncio.Future[Any]] = {reconciler}
            if event_subscription is not None:
                waiting.add(event_subscription.outcome)
            while True:
                seconds_left = self._seconds_left()
                done, waiting = await asyncio.wait(
                    waiting,
                    timeout=None if seconds_left == float("inf") else max(0.0, seconds_left),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    return JobEvent.timeout(self.job_name)
                if event_subscription is not None and event_subscription.outcome in done:
                    outcome = event_subscription.outcome.result()
                    if isinstance(outcome, JobEvent):
                        return outcome
                    self.log.info("Not using events for %s: %s", self.job_name, outcome.reason)
                if reconciler in done:
                    outcome = reconciler.result()
                    if isinstance(outcome, JobEvent):
                        if consumer is not None and outcome.job_status is not None:
                            # Reconciliation won: the job's own terminal events, arriving later, are old news.
                            consumer.mark_settled(self.job_name)
                        return outcome
                    self.log.info("Polling %s itself: %s", self.job_name, outcome.reason)
                    poller = reconciler = asyncio.get_running_loop().create_task(
                        self._poll(), name=f"lyftlearn-{self.kind.name}-poll-{self.job_name}"
                    )
                    waiting.add(poller)
        except Exception as error:
            kind = (
                TrackingErrorKind.TRACKER
                if isinstance(error, InvalidSpecError)
                else TrackingErrorKind.UNEXPECTED
            )
            return JobEvent.error(
                self.job_name,
                f"could not follow {self.kind.noun} {self.job_name} with source={self.source}: "
                f"{describe_error(error)}",
                kind,
            )
        finally:
            # Done, failed or cancelled, this trigger no longer needs them (the last one out stops each).
            if subscription is not None:
                subscription.close()
            if event_subscription is not None:
                event_subscription.close()
            if poller is not None and not poller.done():
                poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await poller

    async def _poll(self) -> JobEvent:
        """Follow the job with its own Describe calls; ride out transient failures until the deadline."""
        failures = 0
        try:
            hook = self.hook()
            budget = process_budget(self.aws_conn_id, self.region_name)
            # One client per process and AWS settings, not one per trigger (1,000 of those held 1.9 GiB).
            clients = shared_clients(self.aws_conn_id, self.region_name, self.verify, self.botocore_config)
            while True:
                try:
                    async with clients.client(self.hook) as client:
                        return await self._poll_with(hook, client, budget)
                except Exception as error:
                    # Making the client (e.g. assuming the connection's role) failed, or closing it.
                    if classify(error, operation=self._describe_action) is not TrackingErrorKind.TRANSIENT:
                        raise
                    failures += 1
                    self._note_transient(failures, error)
                    if self._seconds_left() <= 0:
                        return JobEvent.timeout(self.job_name)
                    await self._pause(failures)
        except Exception as error:
            return self._error(error, classify(error, operation=self._describe_action))

    async def _poll_with(self, hook: SageMakerJobHook, client: BaseClient, budget: TokenBucket) -> JobEvent:
        failures = 0
        while True:
            if self._seconds_left() <= 0:
                return JobEvent.timeout(self.job_name)
            try:
                await budget.acquire()
                description = await hook.describe_job_async(client, self.job_name)
            except Exception as error:
                kind = classify(error, operation=self._describe_action)
                if kind is not TrackingErrorKind.TRANSIENT:
                    return self._error(error, kind)
                # Throttling, 5xx, connection resets: the job itself is unaffected.
                if is_throttling(error):
                    budget.penalize()  # every trigger of this process slows down with this one
                failures += 1
                self._note_transient(failures, error)
            else:
                failures = 0
                self._log_transitions(description)
                status = description[self.kind.status_field]
                if is_terminal(status):
                    return JobEvent.terminal(self.job_name, status, description.get("FailureReason"))
            await self._pause(failures)

    def _log_status(self, status: str, message: str | None = None) -> None:
        """Show the job's progress in the task's log as it happens: one line per secondary status."""
        if status == self._last_status and not message:
            return
        self._last_status = status
        self.log.info(
            "%s %s: %s%s",
            self.kind.noun.capitalize(),
            self.job_name,
            status,
            f" ({message})" if message else "",
        )

    def _log_transitions(self, description: dict[str, Any]) -> None:
        """Log the secondary status transitions a Describe shows that the log has not shown yet."""
        transitions = description.get("SecondaryStatusTransitions") or []
        for transition in transitions[self._transitions_logged :]:
            self._log_status(str(transition.get("Status")), transition.get("StatusMessage"))
        self._transitions_logged = max(self._transitions_logged, len(transitions))

    async def _pause(self, failures: int) -> None:
        pause = backoff(self.poll_interval, failures)
        await asyncio.sleep(max(0.0, min(pause, self._seconds_left())))

    def _note_transient(self, failures: int, error: BaseException) -> None:
        # Silent for a short storm, then once per doubling: visible in the task log, never a flood.
        if failures >= LOUD_FAILURES and failures & (failures - 1) == 0:
            self.log.warning(
                "AWS failed %d times in a row while following %s (last: %s); still trying.",
                failures,
                self.job_name,
                describe_error(error),
            )

    def _error(self, error: BaseException, kind: TrackingErrorKind) -> JobEvent:
        """Return the error event of a poll that cannot go on, its message saying why and what to do."""
        if kind is TrackingErrorKind.JOB:
            message = (
                f"{self.kind.noun} {self.job_name} does not exist"
                if is_not_found(error)
                else f"{self.kind.noun} {self.job_name} cannot be described: {describe_error(error)}"
            )
        elif kind is TrackingErrorKind.TRACKER:
            action = self._describe_action
            message = (
                f"cannot follow {self.kind.noun} {self.job_name}: {action} failed "
                f"({describe_error(error)}); {tracker_fix(error, operation=action)}"
            )
        else:
            message = f"could not follow {self.kind.noun} {self.job_name}: {describe_error(error)}"
        return JobEvent.error(self.job_name, message, kind)

    async def on_kill(self) -> None:
        """Stop the job when a user marks the deferred task failed or clears it (Airflow ≥ 3.3)."""
        stopped = await self.hook().stop_job_async(self.job_name)
        self.log.info(
            "%s %s %s",
            self.kind.noun.capitalize(),
            self.job_name,
            "stopping" if stopped else "had already ended",
        )


class BatchJobTrigger(TrainingJobTrigger):
    """Wait for a SageMaker processing (batch) job to end: :class:`TrainingJobTrigger` for ``processing``."""

    def __init__(self, job_name: str, **kwargs: Any) -> None:
        kwargs.setdefault("job_kind", "processing")
        super().__init__(job_name, **kwargs)
