"""The EventBridge → SQS route of SageMaker job state changes (training, processing): its documents, pure.

The rule's event pattern, the least-privilege queue policy and the queue attributes, as
``EventRouteHook`` writes and compares them and the trackers read them; ``events_setup`` is the
command line that sets the route up.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.job_kinds import JOB_KINDS, TRAINING
from lyftlearn_provider.naming import DEFAULT_PREFIX, validate_prefix
from lyftlearn_provider.status import TERMINAL_STATES

EVENT_SOURCE = "aws.sagemaker"
EVENT_DETAIL_TYPE = TRAINING.detail_type
#: The detail-types the route forwards: every job kind's state changes, training and processing (batch).
EVENT_DETAIL_TYPES = tuple(sorted(kind.detail_type for kind in JOB_KINDS.values()))
EVENTS_PRINCIPAL = "events.amazonaws.com"
#: The target's id on the rule; ``EventRouteHook`` owns the target with this id and no other.
TARGET_ID = "lyftlearn-training-events"

#: Events older than a day are worth nothing: the trackers reconcile with DescribeTrainingJob anyway.
DEFAULT_RETENTION_SECONDS = 24 * 3600
#: Undeliverable events are kept for the SQS maximum, 14 days, so someone can look at them.
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
#: Long enough for a consumer to fan a batch out to its triggers and delete it; short enough that a
#: message held by a triggerer that died is seen by another one within a minute.
DEFAULT_VISIBILITY_TIMEOUT_SECONDS = 60
#: Queue-level long polling: a ReceiveMessage without ``WaitTimeSeconds`` still waits, up to SQS's 20 s.
RECEIVE_WAIT_SECONDS = 20
#: A message no consumer could handle in this many receives is poison: move it to the dead-letter queue.
DEFAULT_MAX_RECEIVE_COUNT = 5

_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_RULE_NAME = re.compile(r"^[.A-Za-z0-9_-]{1,64}$")


@dataclass(frozen=True)
class RouteNames:
    """The names of the route's three resources."""

    queue: str
    dlq: str
    rule: str


def route_names(
    prefix: str = DEFAULT_PREFIX,
    *,
    queue_name: str | None = None,
    dlq_name: str | None = None,
    rule_name: str | None = None,
) -> RouteNames:
    """
    Return the route's names, derived from the job-name prefix unless given; raise on invalid ones.

    Defaults: queue ``<prefix>-training-events``, dead-letter queue ``<prefix>-training-events-dlq``,
    rule ``<prefix>-training-state-change``.
    """
    validate_prefix(prefix, field="prefix")
    names = RouteNames(
        queue=queue_name or f"{prefix}-training-events",
        dlq=dlq_name or f"{prefix}-training-events-dlq",
        rule=rule_name or f"{prefix}-training-state-change",
    )
    for field, name in (("queue_name", names.queue), ("dlq_name", names.dlq)):
        if not _QUEUE_NAME.match(name):
            raise InvalidSpecError(
                field,
                f"{name!r} is not a valid standard SQS queue name",
                "Use 1-80 letters, digits, hyphens and underscores (FIFO queues are not supported: "
                "EventBridge events need no ordering and the trackers de-duplicate).",
            )
    if names.queue == names.dlq:
        raise InvalidSpecError(
            "dlq_name",
            f"the dead-letter queue cannot be the queue itself ({names.queue!r})",
            "Give the dead-letter queue another name, or leave it unset.",
        )
    if not _RULE_NAME.match(names.rule):
        raise InvalidSpecError(
            "rule_name",
            f"{names.rule!r} is not a valid EventBridge rule name",
            "Use 1-64 letters, digits, dots, hyphens and underscores.",
        )
    return names


def validate_queue_settings(
    *, retention_seconds: int, visibility_timeout_seconds: int, max_receive_count: int
) -> None:
    """Raise ``InvalidSpecError`` unless the queue settings are within SQS's limits."""
    for field, value, low, high in (
        ("retention_seconds", retention_seconds, 60, 1_209_600),
        ("visibility_timeout_seconds", visibility_timeout_seconds, 0, 43_200),
        ("max_receive_count", max_receive_count, 1, 1000),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidSpecError(
                field, f"{value!r} is outside {low}..{high}", f"Use an integer in {low}..{high}."
            )


def rule_pattern(prefix: str) -> dict[str, Any]:
    """
    Return the rule's event pattern: terminal state changes of SageMaker jobs named ``<prefix>-…``.

    Training and processing (batch) jobs both: one ``$or`` branch per kind, each on its own name and
    status fields, so one queue (and one consumer per triggerer process) serves both kinds.

    Only ``Completed``, ``Failed`` and ``Stopped`` are forwarded: the trackers wait for a job's end and
    nothing else, while SageMaker sends an event for every secondary status too (Starting, Downloading,
    Training, Uploading, …), about six per job. Filtering at the rule keeps those off the queue: fewer
    messages to receive, pay for and de-duplicate, and a queue that stays short when many jobs end.
    """
    validate_prefix(prefix, field="prefix")
    return {
        "source": [EVENT_SOURCE],
        "detail-type": list(EVENT_DETAIL_TYPES),
        "$or": [
            {
                "detail": {
                    kind.name_field: [{"prefix": f"{prefix}-"}],
                    kind.status_field: sorted(TERMINAL_STATES),
                }
            }
            for kind in sorted(JOB_KINDS.values(), key=lambda kind: kind.name)
        ],
    }


def queue_policy(queue_arn: str, rule_arn: str) -> dict[str, Any]:
    """
    Return the queue's policy: EventBridge may send messages to it, and only on behalf of our rule.

    Nothing else is granted: no other principal, action, resource or source. The queue uses
    SQS-managed encryption, so the principal needs no KMS permissions.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AllowTrainingStateChangeRule",
                "Effect": "Allow",
                "Principal": {"Service": EVENTS_PRINCIPAL},
                "Action": "sqs:SendMessage",
                "Resource": queue_arn,
                "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}},
            }
        ],
    }


def redrive_policy(dlq_arn: str, max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT) -> dict[str, Any]:
    """Return the queue's redrive policy: after ``max_receive_count`` receives a message moves to the DLQ."""
    return {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receive_count}


def dlq_attributes() -> dict[str, str]:
    """Return the dead-letter queue's attributes: long retention, SQS-managed encryption."""
    return {
        "MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS),
        "SqsManagedSseEnabled": "true",
    }


def queue_attributes(
    dlq_arn: str,
    *,
    retention_seconds: int = DEFAULT_RETENTION_SECONDS,
    visibility_timeout_seconds: int = DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
) -> dict[str, str]:
    """Return the queue's attributes, except its policy (which needs the rule's ARN)."""
    validate_queue_settings(
        retention_seconds=retention_seconds,
        visibility_timeout_seconds=visibility_timeout_seconds,
        max_receive_count=max_receive_count,
    )
    return {
        "MessageRetentionPeriod": str(retention_seconds),
        "VisibilityTimeout": str(visibility_timeout_seconds),
        "ReceiveMessageWaitTimeSeconds": str(RECEIVE_WAIT_SECONDS),
        "RedrivePolicy": json.dumps(redrive_policy(dlq_arn, max_receive_count), sort_keys=True),
        "SqsManagedSseEnabled": "true",
    }


#: Attributes whose values are JSON documents: compared parsed, not as text.
JSON_ATTRIBUTES = frozenset({"Policy", "RedrivePolicy"})


def _normalized(name: str, value: str) -> Any:
    if name not in JSON_ATTRIBUTES:
        return value.lower() if value.lower() in {"true", "false"} else value
    try:
        document = json.loads(value)
    except ValueError:
        return value
    if name == "RedrivePolicy" and isinstance(document, dict) and "maxReceiveCount" in document:
        # SQS has answered this number both as a JSON number and as a string.
        document = {**document, "maxReceiveCount": int(document["maxReceiveCount"])}
    return document


def attribute_drift(current: dict[str, str], desired: dict[str, str]) -> dict[str, str]:
    """Return the desired attributes whose current value differs (JSON documents compared parsed)."""
    return {
        name: value
        for name, value in desired.items()
        if name not in current or _normalized(name, current[name]) != _normalized(name, value)
    }
