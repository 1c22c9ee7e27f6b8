"""The EventBridge → SQS route of training-job state changes, set up idempotently."""

from __future__ import annotations

import json
from functools import cached_property
from typing import Any, TypeVar

from airflow.providers.amazon.aws.hooks.eventbridge import EventBridgeHook
from airflow.providers.amazon.aws.hooks.sqs import SqsHook
from botocore.exceptions import ClientError

from lyftlearn_provider.event_route import (
    DEFAULT_MAX_RECEIVE_COUNT,
    DEFAULT_RETENTION_SECONDS,
    DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
    TARGET_ID,
    attribute_drift,
    dlq_attributes,
    queue_attributes,
    queue_policy,
    route_names,
    rule_pattern,
    validate_queue_settings,
)
from lyftlearn_provider.exceptions import ServiceError
from lyftlearn_provider.hooks.base import PatientHookMixin
from lyftlearn_provider.naming import DEFAULT_PREFIX
from lyftlearn_provider.retries import (
    error_code,
)

T = TypeVar("T")

_NO_QUEUE = frozenset({"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"})
_QUEUE_EXISTS = frozenset({"QueueAlreadyExists", "QueueNameExists"})
#: Target fields that would change the message body away from the plain event JSON the trackers read.
_BODY_CHANGING_TARGET_FIELDS = ("Input", "InputPath", "InputTransformer")
RULE_DESCRIPTION = "SageMaker training-job state changes for LyftLearn trackers (managed by EventRouteHook)"


class EventRouteHook(PatientHookMixin, SqsHook):
    """
    Set up the route that brings SageMaker training-job state changes to an SQS queue, idempotently.

    Built on the amazon provider's ``SqsHook`` (this hook's client) and ``EventBridgeHook`` (same
    connection, region and client config). :meth:`ensure_route` reads every resource first and writes
    only what differs, so running it again changes nothing. Transient failures (throttling, 5xx, lost
    connections) are retried by botocore and then with back-off for up to ``patience`` seconds.

    :param patience: seconds a call keeps retrying transient failures.
    :param retry_delay: base delay of that back-off (doubled per failure, jittered).
    """

    @cached_property
    def events_hook(self) -> EventBridgeHook:
        """Return an EventBridge hook on the same connection, region and client config."""
        return EventBridgeHook(
            aws_conn_id=self.aws_conn_id, region_name=self.region_name, verify=self.verify, config=self.config
        )

    def ensure_route(
        self,
        prefix: str = DEFAULT_PREFIX,
        *,
        queue_name: str | None = None,
        dlq_name: str | None = None,
        rule_name: str | None = None,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
        visibility_timeout_seconds: int = DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
        max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
    ) -> dict[str, Any]:
        """
        Create or repair the dead-letter queue, the queue, the rule and its target; return a summary.

        Compared before anything is written: each queue's attributes (JSON documents ``Policy`` and
        ``RedrivePolicy`` parsed), the rule's event pattern (parsed), state and description, and our
        target's ARN and body (no input transformation). Other targets on the rule are left alone.
        Every input is validated before the first call to AWS.

        :return: JSON-safe ``queue_name``, ``queue_url``, ``queue_arn``, ``dlq_name``, ``dlq_url``,
            ``dlq_arn``, ``rule_name``, ``rule_arn`` and ``changed``: what was created or updated,
            in order (empty when everything already matched).
        """
        names = route_names(prefix, queue_name=queue_name, dlq_name=dlq_name, rule_name=rule_name)
        pattern = rule_pattern(prefix)
        validate_queue_settings(
            retention_seconds=retention_seconds,
            visibility_timeout_seconds=visibility_timeout_seconds,
            max_receive_count=max_receive_count,
        )
        changed: list[str] = []

        dlq_url, dlq_current = self._ensure_queue(names.dlq, dlq_attributes(), changed, "dead-letter queue")
        dlq_arn = dlq_current["QueueArn"]
        self._ensure_attributes(
            dlq_url, names.dlq, dlq_current, dlq_attributes(), changed, "dead-letter queue"
        )

        desired = queue_attributes(
            dlq_arn,
            retention_seconds=retention_seconds,
            visibility_timeout_seconds=visibility_timeout_seconds,
            max_receive_count=max_receive_count,
        )
        queue_url, queue_current = self._ensure_queue(names.queue, desired, changed, "queue")
        queue_arn = queue_current["QueueArn"]

        rule_arn = self._ensure_rule(names.rule, pattern, changed)
        # The policy names the rule, so the queue's attributes are settled once the rule exists.
        desired["Policy"] = json.dumps(queue_policy(queue_arn, rule_arn), sort_keys=True)
        self._ensure_attributes(queue_url, names.queue, queue_current, desired, changed, "queue")

        self._ensure_target(names.rule, queue_arn, changed)
        return {
            "queue_name": names.queue,
            "queue_url": queue_url,
            "queue_arn": queue_arn,
            "dlq_name": names.dlq,
            "dlq_url": dlq_url,
            "dlq_arn": dlq_arn,
            "rule_name": names.rule,
            "rule_arn": rule_arn,
            "changed": changed,
        }

    # ------------------------------------------------------------------ queues
    def queue_url(self, name: str) -> str | None:
        """Return the URL of the queue with this name, or None when there is none."""
        try:
            return str(self.patiently(lambda: self.conn.get_queue_url(QueueName=name))["QueueUrl"])
        except ClientError as error:
            if error_code(error) in _NO_QUEUE:
                return None
            raise

    def queue_attributes(self, url: str) -> dict[str, str]:
        """Return every attribute of the queue."""
        response = self.patiently(
            lambda: self.conn.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])
        )
        return dict(response.get("Attributes", {}))

    def _ensure_queue(
        self, name: str, attributes: dict[str, str], changed: list[str], kind: str
    ) -> tuple[str, dict[str, str]]:
        url = self.queue_url(name)
        if url is None:
            try:
                url = str(self.patiently(lambda: self.create_queue(name, attributes))["QueueUrl"])
                changed.append(f"{kind} {name}: created")
            except ClientError as error:
                # Someone created it between our look-up and our request, with other attributes.
                if error_code(error) not in _QUEUE_EXISTS:
                    raise
                url = self.queue_url(name)
                if url is None:
                    raise
        return url, self.queue_attributes(url)

    def _ensure_attributes(
        self,
        url: str,
        name: str,
        current: dict[str, str],
        desired: dict[str, str],
        changed: list[str],
        kind: str,
    ) -> None:
        drift = attribute_drift(current, desired)
        if not drift:
            return
        self.patiently(lambda: self.conn.set_queue_attributes(QueueUrl=url, Attributes=drift))
        current.update(drift)
        changed.append(f"{kind} {name}: set {', '.join(sorted(drift))}")

    # ------------------------------------------------------------------ rule and target
    def _ensure_rule(self, name: str, pattern: dict[str, Any], changed: list[str]) -> str:
        events = self.events_hook.conn
        try:
            current: dict[str, Any] | None = self.patiently(lambda: events.describe_rule(Name=name))
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise
            current = None
        if current is not None:
            drift = [
                field
                for field, matches in (
                    ("EventPattern", _parsed(current.get("EventPattern")) == pattern),
                    ("State", current.get("State") == "ENABLED"),
                    ("Description", current.get("Description") == RULE_DESCRIPTION),
                )
                if not matches
            ]
            if not drift:
                return str(current["Arn"])
        response = self.patiently(
            lambda: self.events_hook.put_rule(
                name=name,
                description=RULE_DESCRIPTION,
                event_pattern=json.dumps(pattern, sort_keys=True),
                state="ENABLED",
            )
        )
        changed.append(f"rule {name}: " + ("created" if current is None else f"set {', '.join(drift)}"))
        return str(response["RuleArn"])

    def _ensure_target(self, rule: str, queue_arn: str, changed: list[str]) -> None:
        events = self.events_hook.conn
        response = self.patiently(lambda: events.list_targets_by_rule(Rule=rule))
        ours = next((t for t in response.get("Targets", []) if t.get("Id") == TARGET_ID), None)
        if (
            ours is not None
            and ours.get("Arn") == queue_arn
            and not any(ours.get(field) for field in _BODY_CHANGING_TARGET_FIELDS)
        ):
            return
        if ours is not None and any(ours.get(field) for field in _BODY_CHANGING_TARGET_FIELDS):
            # Drop it first, so that no input transformation survives whatever PutTargets keeps of it.
            self.patiently(lambda: events.remove_targets(Rule=rule, Ids=[TARGET_ID]))
        result = self.patiently(
            lambda: events.put_targets(Rule=rule, Targets=[{"Id": TARGET_ID, "Arn": queue_arn}])
        )
        if result.get("FailedEntryCount"):
            raise ServiceError(
                f"EventBridge did not accept target {TARGET_ID} of rule {rule}: {result['FailedEntries']}"
            )
        changed.append(f"target {TARGET_ID} of rule {rule}: " + ("created" if ours is None else "replaced"))


def _parsed(document: str | None) -> Any:
    try:
        return json.loads(document) if document else None
    except ValueError:
        return None
