"""Deferrable tracking of SageMaker training jobs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from botocore.exceptions import ClientError

from lyftlearn_provider.hooks.sagemaker import SageMakerTrainingHook
from lyftlearn_provider.retries import backoff, is_not_found, is_transient
from lyftlearn_provider.status import TrainingEventStatus, is_terminal

#: Consecutive transient failures tolerated before the trigger gives the job back to its task.
MAX_TRANSIENT_FAILURES = 40


class TrainingJobTrigger(BaseTrigger):
    """
    Wait for a SageMaker training job to end, then hand the job back to its task.

    Polls ``DescribeTrainingJob`` with jitter through the amazon provider's async client. Throttling,
    5xx answers and dropped connections do not end the wait: the trigger backs off (doubling the
    interval, at most 16 times it and five minutes) and carries on; only after 40 failures in a row
    does it hand the job back with an ``error`` event, and the task then follows it again (at most
    three times before it stops the job). Anything unexpected becomes an ``error`` event naming the
    job. When the task's deadline passes first, it reports ``timeout`` so the task can stop the job.

    :param job_name: the training job to follow.
    :param aws_conn_id: the Airflow connection to AWS.
    :param region_name: AWS region; the connection's when None.
    :param verify: TLS verification for the AWS client.
    :param botocore_config: extra botocore client configuration.
    :param poll_interval: seconds between two polls (jittered by ±20 %).
    :param deadline: epoch seconds after which the trigger reports ``timeout``; None for no deadline.
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
    ) -> None:
        super().__init__()
        self.job_name = job_name
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config
        self.poll_interval = poll_interval
        self.deadline = deadline

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
        """Poll until the job ends, the deadline passes or something unexpected happens."""
        hook = self.hook()
        failures = 0
        try:
            async with await hook.get_async_conn() as client:
                while True:
                    if self._seconds_left() <= 0:
                        yield self._event(TrainingEventStatus.TIMEOUT, message="the task's deadline passed")
                        return
                    try:
                        description = await hook.describe_job_async(client, self.job_name)
                    except Exception as error:
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
