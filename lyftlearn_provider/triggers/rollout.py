"""Deferrable wait for a Deployment's rollout."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.providers.cncf.kubernetes.hooks.kubernetes import AsyncKubernetesHook
from airflow.triggers.base import BaseTrigger, TriggerEvent
from kubernetes_asyncio import client as async_client

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.hooks.kubernetes import is_transient, retry_after
from lyftlearn_provider.retries import backoff, jittered
from lyftlearn_provider.rollouts import (
    RolloutEvent,
    RolloutEventStatus,
    RolloutState,
    RolloutVerdict,
    headline,
    rollout_verdict,
)

#: Transient failures in a row after which the trigger says so in its log (and again at each doubling).
LOUD_FAILURES = 8
#: Bounds of one read's timeout: it never outlives the deadline by more than the lower one.
MIN_REQUEST_SECONDS = 5.0
MAX_REQUEST_SECONDS = 60.0


def _describe(error: BaseException) -> str:
    status = getattr(error, "status", None)
    reason = getattr(error, "reason", None)
    if status:
        return f"HTTP {status} {reason or ''}".rstrip()
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class RolloutTrigger(BaseTrigger):
    """
    Wait for a Deployment to roll out, then tell its task how it went.

    Reads the Deployment through the cncf provider's ``AsyncKubernetesHook`` every ``poll_interval``
    seconds (jittered) and applies :func:`~lyftlearn_provider.rollouts.rollout_verdict`. Fires exactly one
    event (a :class:`~lyftlearn_provider.rollouts.RolloutEvent` payload):

    - ``rolled_out``: the controller observed the spec (and ``generation``) and every replica is updated,
      ready and available;
    - ``failed``: the controller reported ``Progressing=False`` (``ProgressDeadlineExceeded``);
    - ``timeout``: ``deadline`` passed first -- the task decides whether to roll back;
    - ``error``: the trigger cannot follow the rollout -- the Deployment disappeared or is being deleted
      or was recreated, the connection may not read it, or something unexpected; ``message`` says which.

    Throttling (429, honouring ``Retry-After``), 5xx answers, dropped connections and reads that time
    out do not end the wait: the trigger backs off (doubling the interval, at most 16 times it) and
    carries on until ``deadline``. It only reads: whatever the outcome, the task acts on it.

    :param namespace: the Deployment's namespace.
    :param name: the Deployment's name.
    :param kubernetes_conn_id: the Airflow connection to the cluster.
    :param poll_interval: seconds between two reads.
    :param deadline: epoch seconds (``time.time()``) after which the trigger reports ``timeout``; None
        waits until the controller gives a verdict (a paused Deployment gives none: pass a deadline).
    :param generation: the ``metadata.generation`` the task's own write produced; the rollout is not
        judged until the controller has observed it. A Deployment whose generation is lower was
        recreated since, and is reported as an error.
    """

    def __init__(
        self,
        namespace: str,
        name: str,
        *,
        kubernetes_conn_id: str | None = "kubernetes_default",
        poll_interval: float = 5.0,
        deadline: float | None = None,
        generation: int | None = None,
    ) -> None:
        super().__init__()
        if not poll_interval > 0:
            raise InvalidSpecError(
                "poll_interval", f"{poll_interval!r} is not a positive number of seconds", "Set e.g. 5."
            )
        self.namespace = namespace
        self.name = name
        self.kubernetes_conn_id = kubernetes_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = deadline
        self.generation = generation

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """Return the classpath and the keyword arguments that recreate this trigger."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "namespace": self.namespace,
                "name": self.name,
                "kubernetes_conn_id": self.kubernetes_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "generation": self.generation,
            },
        )

    def hook(self) -> AsyncKubernetesHook:
        """Return the cncf provider's async hook for this trigger's connection."""
        return AsyncKubernetesHook(conn_id=self.kubernetes_conn_id)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Follow the rollout until it ends, fails, or the deadline passes; fire exactly one event."""
        event = await self._follow()
        yield TriggerEvent(event.to_payload())

    # --------------------------------------------------------------------------------------- waiting
    def _seconds_left(self) -> float:
        return float("inf") if self.deadline is None else self.deadline - time.time()

    async def _follow(self) -> RolloutEvent:
        started = time.monotonic()
        verdict: RolloutVerdict | None = None
        failures = 0
        last_error: BaseException | None = None
        try:
            hook = self.hook()
            while True:
                try:
                    deployment = await self._read(hook)
                except Exception as error:
                    if not is_transient(error):
                        raise
                    failures += 1
                    last_error = error
                    self._note_transient(failures, error)
                    if self._seconds_left() <= 0:
                        return self._timeout(verdict, time.monotonic() - started, last_error)
                    await self._pause(retry_after(error) or backoff(self.poll_interval, failures))
                    continue
                failures = 0
                if deployment is None:
                    return self._error(
                        "NotFound",
                        f"Deployment {self.namespace}/{self.name} no longer exists: it was deleted while "
                        "rolling out; recreate it from the serving manifest before deploying again.",
                        verdict,
                    )
                gone = self._gone(deployment)
                if gone is not None:
                    return gone
                previous, verdict = verdict, rollout_verdict(deployment, generation=self.generation)
                if previous is None or previous.summary != verdict.summary:
                    self.log.info("Deployment %s/%s: %s", self.namespace, self.name, verdict.summary)
                if verdict.state is not RolloutState.PROGRESSING:
                    return self._verdict_event(verdict, time.monotonic() - started)
                if self._seconds_left() <= 0:
                    return self._timeout(verdict, time.monotonic() - started, None)
                await self._pause(jittered(self.poll_interval))
        except Exception as error:
            # The API's own reason (Forbidden, Unauthorized...) where it gave one, else what broke.
            reason = getattr(error, "reason", None) if getattr(error, "status", None) else None
            return self._error(
                str(reason or type(error).__name__),
                f"could not follow the rollout of Deployment {self.namespace}/{self.name}: {_describe(error)}"
                f"{self._fix(error)}",
                verdict,
            )

    async def _read(self, hook: AsyncKubernetesHook) -> dict[str, Any] | None:
        """Return the Deployment as the API's JSON, or None when it does not exist."""
        timeout = min(MAX_REQUEST_SECONDS, max(MIN_REQUEST_SECONDS, self._seconds_left()))
        # A connection per read: the hook reloads short-lived (exec plugin) credentials for each one.
        async with hook.get_conn() as api:
            apps = async_client.AppsV1Api(api)
            try:
                model = await asyncio.wait_for(
                    apps.read_namespaced_deployment(self.name, self.namespace), timeout=timeout
                )
            except async_client.ApiException as error:
                if error.status == 404:
                    return None
                raise
            deployment: dict[str, Any] = api.sanitize_for_serialization(model)
            return deployment

    async def _pause(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, min(seconds, self._seconds_left())))

    def _note_transient(self, failures: int, error: BaseException) -> None:
        # Silent for a short storm, then once per doubling: visible in the task log, never a flood.
        if failures >= LOUD_FAILURES and failures & (failures - 1) == 0:
            self.log.warning(
                "The Kubernetes API failed %d times in a row while following Deployment %s/%s (last: %s); "
                "still trying.",
                failures,
                self.namespace,
                self.name,
                _describe(error),
            )

    # ---------------------------------------------------------------------------------------- events
    def _event(
        self, status: RolloutEventStatus, message: str, verdict: RolloutVerdict | None, reason: str | None
    ) -> RolloutEvent:
        summary = verdict.summary if verdict is not None else ""
        return RolloutEvent(status, self.namespace, self.name, summary, reason, message, verdict)

    def _verdict_event(self, verdict: RolloutVerdict, waited: float) -> RolloutEvent:
        status = (
            RolloutEventStatus.ROLLED_OUT
            if verdict.state is RolloutState.ROLLED_OUT
            else RolloutEventStatus.FAILED
        )
        return self._event(
            status, headline(self.namespace, self.name, verdict, waited) + ".", verdict, verdict.reason
        )

    def _timeout(
        self, verdict: RolloutVerdict | None, waited: float, error: BaseException | None
    ) -> RolloutEvent:
        if verdict is not None:
            message = headline(self.namespace, self.name, verdict, waited) + "."
            return self._event(RolloutEventStatus.TIMEOUT, message, verdict, verdict.reason)
        message = (
            f"Deployment {self.namespace}/{self.name}: the deadline passed before its status could be read"
            + (f" (last error: {_describe(error)})" if error is not None else "")
            + "; check that the Kubernetes API is reachable from the triggerer."
        )
        return self._event(RolloutEventStatus.TIMEOUT, message, None, None)

    def _error(self, reason: str, message: str, verdict: RolloutVerdict | None) -> RolloutEvent:
        return self._event(RolloutEventStatus.ERROR, message, verdict, reason)

    def _gone(self, deployment: dict[str, Any]) -> RolloutEvent | None:
        """Return the error event of a Deployment that is going away or was recreated, if it is."""
        where = f"Deployment {self.namespace}/{self.name}"
        metadata = deployment.get("metadata") or {}
        if metadata.get("deletionTimestamp"):
            return self._error(
                "Deleting", f"{where} is being deleted; recreate it before deploying again.", None
            )
        generation = int(metadata.get("generation") or 0)
        if self.generation is not None and generation < self.generation:
            return self._error(
                "Recreated",
                f"{where} was recreated while rolling out (generation {generation}, the deploy wrote "
                f"{self.generation}); deploy again.",
                None,
            )
        return None

    def _fix(self, error: BaseException) -> str:
        status = getattr(error, "status", None)
        if status in (401, 403):
            return (
                f"; allow the identity of connection {self.kubernetes_conn_id!r} to get deployments.apps in "
                f"namespace {self.namespace}"
            )
        return ""
