"""Pure rules for training-job state-change events: parse them, order them, and remember what was seen.

EventBridge may deliver a SageMaker state change more than once, late, out of order, or not at all.
These rules make the trackers indifferent to the first three (reconciliation covers the fourth):

- :func:`parse_state_change` turns an SQS message body into a :class:`StateChange` or rejects it
  with :class:`MalformedEvent`;
- :func:`supersedes` is the monotonic order: ``InProgress`` < ``Stopping``/``Deleting`` < a terminal
  state, then the event's ``LastModifiedTime``; nothing supersedes a terminal state;
- :class:`JobLedger` keeps each job's newest state under that order, :class:`SeenEvents` the ids of
  events already acted upon; both are bounded, forgetting the least recently used first.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from lyftlearn_provider.event_route import EVENT_DETAIL_TYPES, EVENT_SOURCE
from lyftlearn_provider.exceptions import TrackingError
from lyftlearn_provider.job_kinds import BY_DETAIL_TYPE
from lyftlearn_provider.status import COMPLETED, FAILED, IN_PROGRESS, STOPPED, STOPPING, is_terminal

DELETING = "Deleting"
#: Status order: a job only ever moves up it. ``Deleting`` follows the end of a job's run.
STATUS_RANK: dict[str, int] = {
    IN_PROGRESS: 0,
    STOPPING: 1,
    DELETING: 1,
    COMPLETED: 2,
    FAILED: 2,
    STOPPED: 2,
}
#: How many jobs and event ids a process remembers: far more than a triggerer's 1,000 triggers.
DEFAULT_MEMORY = 10_000
# Epoch numbers above this are milliseconds (SageMaker's events), below it seconds: 1e11 s is year 5138.
_MILLISECONDS_THRESHOLD = 1e11


class MalformedEvent(TrackingError, ValueError):
    """The message is not a SageMaker training-job state change this product can act on."""


@dataclass(frozen=True)
class StateChange:
    """One training job's state as one event reported it."""

    job_name: str
    job_status: str
    secondary_status: str | None
    #: The job's ``LastModifiedTime`` (else the event's ``time``), in epoch seconds.
    event_time: float
    event_id: str
    failure_reason: str | None = None

    @property
    def terminal(self) -> bool:
        """Tell whether the job had ended by this event."""
        return is_terminal(self.job_status)

    @property
    def order_key(self) -> tuple[int, float]:
        """Return the key that sorts a job's states from oldest to newest."""
        return (STATUS_RANK[self.job_status], self.event_time)


def epoch_seconds(value: Any) -> float | None:
    """Return epoch seconds from epoch seconds, epoch milliseconds or ISO 8601 text; None if unreadable."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value / 1000.0 if value > _MILLISECONDS_THRESHOLD else float(value)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)).timestamp()


def _text(document: dict[str, Any], field: str, where: str) -> str:
    value = document.get(field)
    if not isinstance(value, str) or not value:
        raise MalformedEvent(f"{where}{field} is missing or not a non-empty string")
    return value


def parse_state_change(body: str) -> StateChange:
    """Return the state change an SQS message body carries; raise ``MalformedEvent`` if it carries none."""
    try:
        event = json.loads(body)
    except ValueError as error:
        raise MalformedEvent(f"the body is not JSON: {error}") from None
    if not isinstance(event, dict):
        raise MalformedEvent("the body is not a JSON object")
    kind = BY_DETAIL_TYPE.get(str(event.get("detail-type"))) if event.get("source") == EVENT_SOURCE else None
    if kind is None:
        raise MalformedEvent(
            f"not a {' or '.join(map(repr, EVENT_DETAIL_TYPES))} event from {EVENT_SOURCE} "
            f"(source {event.get('source')!r}, detail-type {event.get('detail-type')!r})"
        )
    event_id = _text(event, "id", "")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise MalformedEvent("detail is missing or not an object")
    job_name = _text(detail, kind.name_field, "detail.")
    status = _text(detail, kind.status_field, "detail.")
    if status not in STATUS_RANK:
        raise MalformedEvent(f"detail.{kind.status_field} {status!r} is not a {kind.noun} status")
    event_time = epoch_seconds(detail.get("LastModifiedTime"))
    if event_time is None:
        event_time = epoch_seconds(event.get("time"))
    if event_time is None:
        raise MalformedEvent("neither detail.LastModifiedTime nor time is a timestamp")
    secondary = detail.get("SecondaryStatus")
    reason = detail.get("FailureReason")
    return StateChange(
        job_name=job_name,
        job_status=status,
        secondary_status=secondary if isinstance(secondary, str) else None,
        event_time=event_time,
        event_id=event_id,
        failure_reason=reason if isinstance(reason, str) and reason else None,
    )


def supersedes(new: StateChange, current: StateChange | None) -> bool:
    """Tell whether ``new`` is newer than ``current``: a terminal state is final, older events never win."""
    if current is None:
        return True
    if current.terminal:
        return False
    return new.order_key > current.order_key


class JobLedger:
    """Remember each job's newest known state, for ``capacity`` jobs at most (least recent go first)."""

    def __init__(self, capacity: int = DEFAULT_MEMORY) -> None:
        self.capacity = capacity
        self._states: OrderedDict[str, StateChange] = OrderedDict()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, job_name: str) -> StateChange | None:
        """Return the job's newest known state, or None when the ledger knows nothing of it."""
        return self._states.get(job_name)

    def observe(self, change: StateChange) -> bool:
        """Record ``change`` if it supersedes what is known; return whether it did."""
        if not supersedes(change, self._states.get(change.job_name)):
            return False
        self._states[change.job_name] = change
        self._states.move_to_end(change.job_name)
        while len(self._states) > self.capacity:
            self._states.popitem(last=False)
        return True


class SeenEvents:
    """The ids of the last ``capacity`` events acted upon: a redelivered one is recognised and dropped."""

    def __init__(self, capacity: int = DEFAULT_MEMORY) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, event_id: object) -> bool:
        return event_id in self._ids

    def add(self, event_id: str) -> None:
        """Remember ``event_id``, forgetting the oldest id beyond capacity."""
        self._ids[event_id] = None
        self._ids.move_to_end(event_id)
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
