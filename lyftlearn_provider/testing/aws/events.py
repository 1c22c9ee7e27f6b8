"""The EventBridge events SageMaker sends when a training job changes state, and their delivery.

Events go into moto's EventBridge default bus of the job's account and region, in-process, so that
rules with SQS (or any other moto-supported) targets receive them exactly as they would from AWS.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections import deque
from datetime import datetime, timezone
from typing import Any

from lyftlearn_provider.job_kinds import TRAINING, JobKind

log = logging.getLogger(__name__)

DETAIL_TYPE = "SageMaker Training Job State Change"
SOURCE = "aws.sagemaker"
_TIMESTAMP_FIELDS = (
    "CreationTime",
    "TrainingStartTime",
    "TrainingEndTime",
    "ProcessingStartTime",
    "ProcessingEndTime",
    "LastModifiedTime",
)


def _millis(seconds: float) -> int:
    return int(round(seconds * 1000))


def state_change_event(
    describe: dict[str, Any],
    tags: list[dict[str, str]],
    account: str,
    region: str,
    at: float,
    *,
    kind: JobKind = TRAINING,
) -> dict[str, Any]:
    """Build the event SageMaker emits for a job whose Describe…Job response is ``describe``.

    The detail mirrors DescribeTrainingJob, except that, as in SageMaker's published events,
    timestamps are epoch milliseconds and ``Tags`` is a ``{key: value}`` object.
    """
    detail = json.loads(json.dumps(describe))
    for field in _TIMESTAMP_FIELDS:
        if field in detail:
            detail[field] = _millis(detail[field])
    for transition in detail.get("SecondaryStatusTransitions", []):
        for field in ("StartTime", "EndTime"):
            if field in transition:
                transition[field] = _millis(transition[field])
    for metric in detail.get("FinalMetricDataList", []):
        metric["Timestamp"] = _millis(metric["Timestamp"])
    detail["Tags"] = {tag["Key"]: tag["Value"] for tag in tags}
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": kind.detail_type,
        "source": SOURCE,
        "account": account,
        "time": datetime.fromtimestamp(at, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [describe[kind.arn_field]],
        "detail": detail,
    }


class EventLog:
    """Keep the emitted events and deliver each to moto's EventBridge.

    ``enabled`` switches emission off entirely (nothing recorded, nothing delivered), for tests that
    want a job model without events.
    """

    def __init__(self, max_events: int = 100_000) -> None:
        self.enabled = True
        self._events: deque[dict[str, Any]] = deque(maxlen=max_events)
        self._lock = threading.Lock()

    def publish(self, event: dict[str, Any], at: float) -> None:
        """Deliver ``event`` to the default bus of its account/region and record it; never raise."""
        if not self.enabled:
            return
        try:
            event["id"] = self._put_into_moto(event, at) or event["id"]
        except Exception:
            # Like SageMaker's own delivery, publishing is best effort: a broken bus must never fail
            # the API call or the control operation that changed the job.
            log.exception("Could not publish %s for %s", event["detail-type"], event["resources"])
        with self._lock:
            self._events.append(event)

    def events(self) -> list[dict[str, Any]]:
        """Return the emitted events, oldest first."""
        with self._lock:
            return list(self._events)

    def clear(self) -> None:
        """Forget the emitted events."""
        with self._lock:
            self._events.clear()

    @staticmethod
    def _put_into_moto(event: dict[str, Any], at: float) -> str | None:
        # Imported on use: the job model imports this module and must not need moto.
        from moto.events.models import events_backends

        backend = events_backends[event["account"]][event["region"]]
        entries = backend.put_events(
            [
                {
                    "Source": event["source"],
                    "DetailType": event["detail-type"],
                    "Detail": json.dumps(event["detail"]),
                    "Resources": event["resources"],
                    "Time": at,
                }
            ]
        )
        event_id: str | None = entries[0].get("EventId")
        return event_id
