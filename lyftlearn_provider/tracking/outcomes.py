"""What a shared tracker tells its subscribers, and how it behaves while it cannot work at all."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from lyftlearn_provider.exceptions import TrackingError
from lyftlearn_provider.retries import classify, describe_error, tracker_fix
from lyftlearn_provider.status import JobEvent, TrackingErrorKind

#: Seconds a tracker that cannot work is left alone before a new subscriber tries it again: a fixed IAM
#: policy or queue is picked up without restarting the triggerer, for one failed call per ten minutes.
DEFAULT_RETRY_AFTER_SECONDS = 600.0
#: Unexpected failures in a row a tracker rides out (with back-off) before it gives its jobs away: one odd
#: answer should not move a thousand jobs to a costlier tracker, a persistent one should not hold them.
UNEXPECTED_FAILURES_TOLERATED = 3


@dataclasses.dataclass(frozen=True)
class Fallback:
    """
    The tracker cannot follow jobs (its permissions, credentials or queue): follow the job another way.

    :param reason: what went wrong, for the trigger's own log (the tracker warned about it once).
    """

    reason: str


#: What a subscription to a shared tracker resolves with.
Outcome = JobEvent | Fallback


class TrackerUnavailable(TrackingError):
    """A shared tracker's call failed in a way its subscribers cannot wait out; never reaches a trigger."""

    def __init__(self, operation: str, error: BaseException, kind: TrackingErrorKind) -> None:
        self.operation = operation
        self.error = error
        self.kind = kind
        super().__init__(f"{operation} failed: {describe_error(error)}")


class TrackerHealth:
    """
    Remember that a shared tracker cannot work, warn about it once, and tell when to try it again.

    While broken, the tracker sends new subscribers elsewhere at once, without a call on their behalf;
    after ``retry_after`` seconds the next subscriber starts it again. One WARNING per outage, however
    many subscribers and retries it sees (a retry that fails again is logged at INFO); an INFO line
    when it works again, after which a new outage warns again.

    :param name: what the log calls the tracker.
    :param instead: what its subscribers do while it cannot work.
    :param alternative: the other fix, besides repairing the tracker.
    """

    def __init__(
        self,
        name: str,
        *,
        instead: str,
        alternative: str,
        log: logging.Logger,
        retry_after: float = DEFAULT_RETRY_AFTER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.instead = instead
        self.alternative = alternative
        self.retry_after = retry_after
        #: Why the tracker cannot work, while it cannot.
        self.reason: str | None = None
        self._log = log
        self._clock = clock
        self._retry_at = 0.0
        self._warned = False

    @property
    def broken(self) -> bool:
        """Tell whether the tracker cannot work and is not due for another try yet."""
        return self.reason is not None and self._clock() < self._retry_at

    def fail(self, failure: TrackerUnavailable) -> Fallback:
        """Record that the tracker cannot work; warn the first time; return what its subscribers get."""
        self.reason = f"{self.name} cannot work: {failure}"
        self._retry_at = self._clock() + self.retry_after
        fix = tracker_fix(failure.error, operation=failure.operation)
        if not self._warned:
            self._warned = True
            # A traceback only for what nobody foresaw: for a missing permission it is noise.
            self._log.warning(
                "%s. Fix: %s, or %s. Meanwhile nobody fails and no job is stopped: its jobs %s. "
                "It tries again in %.0f s.",
                self.reason,
                fix,
                self.alternative,
                self.instead,
                self.retry_after,
                exc_info=failure.error if failure.kind is TrackingErrorKind.UNEXPECTED else None,
            )
        else:
            self._log.info(
                "%s still cannot work (%s); trying again in %.0f s.", self.name, failure, self.retry_after
            )
        return Fallback(self.reason)

    def works(self) -> None:
        """Record a call that worked: the outage, if any, is over."""
        if self._warned:
            self._log.info("%s works again.", self.name)
        self.reason = None
        self._warned = False


def as_failure(error: BaseException, operation: str) -> TrackerUnavailable:
    """Return ``error`` as a :class:`TrackerUnavailable` of ``operation``, classified unless it is one."""
    if isinstance(error, TrackerUnavailable):
        return error
    return TrackerUnavailable(operation, error, classify(error, operation=operation))
