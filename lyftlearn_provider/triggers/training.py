"""Deferrable tracking of SageMaker training jobs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from botocore.exceptions import ClientError

from lyftlearn_provider.hooks.sagemaker import SageMakerTrainingHook
from lyftlearn_provider.retries import backoff, is_not_found, is_throttling, is_transient
from lyftlearn_provider.status import TrainingEventStatus, is_terminal
from lyftlearn_provider.tracking.budget import process_budget
from lyftlearn_provider.tracking.sqs import sqs_consumer
from lyftlearn_provider.tracking.watcher import shared_watcher

#: Consecutive transient failures tolerated before the trigger gives the job back to its task.
MAX_TRANSIENT_FAILURES = 40
#: Where a trigger learns about its job: its own Describe polls, or the process's shared watcher.
SOURCES = ("poll", "shared", "events")


class TrainingJobTrigger(BaseTrigger):
    """
    Wait for a SageMaker training job to end, then hand the job back to its task.

    Polls ``DescribeTrainingJob`` with jitter through the amazon provider's async client, each call
    drawn from the triggerer process's AWS call budget for the connection and region (a token bucket,
    ``[lyftlearn] api_calls_per_second``, shared with the shared watcher; a throttling answer slows
    every trigger of the process down, not just the one that got it). Throttling,
    5xx answers and dropped connections do not end the wait: the trigger backs off (doubling the
    interval, at most 16 times it and five minutes) and carries on; only after 40 failures in a row
    does it hand the job back with an ``error`` event, and the task then follows it again (at most
    three times before it stops the job). Anything unexpected becomes an ``error`` event naming the
    job. When the task's deadline passes first, it reports ``timeout`` so the task can stop the job.

    With ``source="shared"`` the trigger does not poll: it subscribes to the triggerer process's
    :class:`~lyftlearn_provider.tracking.watcher.SharedJobWatcher` for its connection and region, which
    follows every such job in the process with batched ``ListTrainingJobs`` calls (plus a Describe only
    where a listing is not enough) under one AWS call budget, and reports the same events. Choose it
    when one triggerer follows many jobs at once (dozens or more): the calls per job fall far below one
    Describe per poll interval, so SageMaker's (not adjustable) throttles are not reached. ``poll``,
    the default, suits a handful of jobs and needs no shared state. The shared watcher backs off from
    throttling and failures for as long as it takes, so only the deadline bounds the wait.

    :param job_name: the training job to follow.
    :param aws_conn_id: the Airflow connection to AWS.
    :param region_name: AWS region; the connection's when None.
    :param verify: TLS verification for the AWS client.
    :param botocore_config: extra botocore client configuration.
    :param poll_interval: seconds between two polls (jittered by ±20 %).
    :param deadline: epoch seconds after which the trigger reports ``timeout``; None for no deadline.
    :param source: ``poll`` (default), ``shared`` or ``events``; with ``shared``, ``poll_interval`` is
        the longest this trigger lets the watcher go between two looks at its job; with ``events`` it
        is the reconciliation interval: the shared watcher still looks that often, so a lost event
        delays the task by at most about ``poll_interval``, never hangs it.
    :param queue_url: the SQS queue the EventBridge rule feeds (``source="events"``; see
        ``SetupTrainingEventsOperator``).
    :param job_name_prefix: the job-name prefix the queue's rule matches (``source="events"``).
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
    ) -> None:
        super().__init__()
        if source not in SOURCES:
            raise ValueError(
                f"source={source!r} is not a training job source; set one of {', '.join(SOURCES)}."
            )
        if source == "events" and not (queue_url and job_name_prefix):
            raise ValueError("source='events' needs queue_url and job_name_prefix; set both.")
        self.job_name = job_name
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.poll_interval = poll_interval
        self.deadline = deadline
        self.source = source
        self.queue_url = queue_url
        self.job_name_prefix = job_name_prefix

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
            },
        )

    def hook(self) -> SageMakerTrainingHook:
        """Return the hook for this trigger's connection and region."""
        return SageMakerTrainingHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    def _event(self, status: TrainingEventStatus, **payload: Any) -> TriggerEvent:
        return TriggerEvent({"status": status.value, "job_name": self.job_name, **payload})

    def _seconds_left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.time()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Follow the job until it ends, the deadline passes or something unexpected happens."""
        events = self._poll() if self.source == "poll" else self._watch_shared()
        async for event in events:
            yield event

    async def _watch_shared(self) -> AsyncIterator[TriggerEvent]:
        if self._seconds_left() <= 0:
            yield self._event(TrainingEventStatus.TIMEOUT, message="the task's deadline passed")
            return
        subscription = shared_watcher(self.aws_conn_id, self.region_name).subscribe(
            self.job_name,
            interval=self.poll_interval,
            verify=self.verify,
            botocore_config=self.botocore_config,
        )
        # With events, the watcher is the reconciliation: whichever learns of the end first wins.
        consumer = (
            sqs_consumer(
                str(self.queue_url),
                prefix=str(self.job_name_prefix),
                aws_conn_id=self.aws_conn_id,
                region_name=self.region_name,
                verify=self.verify,
                botocore_config=self.botocore_config,
            )
            if self.source == "events"
            else None
        )
        event_subscription = consumer.subscribe(self.job_name) if consumer is not None else None
        waiting: set[asyncio.Future[Any]] = {subscription.outcome}
        if event_subscription is not None:
            waiting.add(event_subscription.outcome)
        try:
            seconds_left = self._seconds_left()
            await asyncio.wait(
                waiting,
                timeout=None if seconds_left == float("inf") else seconds_left,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            # Cancelled or done, this trigger no longer needs them (the last one out stops each).
            subscription.close()
            if event_subscription is not None:
                event_subscription.close()
        if event_subscription is not None and event_subscription.outcome.done():
            payload = event_subscription.outcome.result()
            yield self._event(
                TrainingEventStatus.TERMINAL,
                job_status=payload["job_status"],
                failure_reason=payload.get("failure_reason"),
            )
            return
        if not subscription.outcome.done():
            yield self._event(TrainingEventStatus.TIMEOUT, message="the task's deadline passed")
            return
        outcome = subscription.outcome.result()
        if consumer is not None and outcome.job_status is not None:
            # Reconciliation won: the job's own terminal events, arriving later, are old news here.
            consumer.mark_settled(self.job_name)
        if outcome.error is not None:
            yield self._event(TrainingEventStatus.ERROR, message=outcome.error)
        else:
            yield self._event(
                TrainingEventStatus.TERMINAL,
                job_status=outcome.job_status,
                failure_reason=outcome.failure_reason,
            )

    async def _poll(self) -> AsyncIterator[TriggerEvent]:
        hook = self.hook()
        budget = process_budget(self.aws_conn_id, self.region_name)
        failures = 0
        try:
            async with await hook.get_async_conn() as client:
                while True:
                    if self._seconds_left() <= 0:
                        yield self._event(TrainingEventStatus.TIMEOUT, message="the task's deadline passed")
                        return
                    try:
                        await budget.acquire()
                        description = await hook.describe_job_async(client, self.job_name)
                    except Exception as error:
                        if is_throttling(error):
                            budget.penalize()  # every trigger of this process slows down with this one
                        if isinstance(error, ClientError) and is_not_found(error):
                            yield self._event(
                                TrainingEventStatus.ERROR,
                                message=f"training job {self.job_name} does not exist",
                            )
                            return
                        if not is_transient(error):
                            raise
                        # Throttling, 5xx, connection resets: the job itself is unaffected.
                        failures += 1
                    else:
                        failures = 0
                        status = description["TrainingJobStatus"]
                        if is_terminal(status):
                            yield self._event(
                                TrainingEventStatus.TERMINAL,
                                job_status=status,
                                failure_reason=description.get("FailureReason"),
                            )
                            return
                    if failures > MAX_TRANSIENT_FAILURES:
                        yield self._event(
                            TrainingEventStatus.ERROR,
                            message=f"AWS kept failing for {failures} polls in a row",
                        )
                        return
                    pause = backoff(self.poll_interval, failures)
                    await asyncio.sleep(max(0.0, min(pause, self._seconds_left())))
        except Exception as error:
            yield self._event(TrainingEventStatus.ERROR, message=f"{type(error).__name__}: {error}")

    async def on_kill(self) -> None:
        """Stop the training job when a user marks the deferred task failed or clears it (Airflow ≥ 3.3)."""
        stopped = await self.hook().stop_job_async(self.job_name)
        self.log.info("Training job %s %s", self.job_name, "stopping" if stopped else "had already ended")
