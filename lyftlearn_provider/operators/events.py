"""Set up the EventBridge → SQS route that the ``events`` tracking mode reads training-job state from."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from lyftlearn_provider.event_route import (
    DEFAULT_MAX_RECEIVE_COUNT,
    DEFAULT_RETENTION_SECONDS,
    DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
    route_names,
    validate_queue_settings,
)
from lyftlearn_provider.naming import DEFAULT_PREFIX

if TYPE_CHECKING:
    from airflow.sdk import Context

    from lyftlearn_provider.hooks.events import EventRouteHook


class SetupTrainingEventsOperator(BaseOperator):
    """
    Create or repair the route of training-job state changes: EventBridge rule → SQS queue → DLQ.

    Idempotent: every resource is compared with what it should be and only what differs is written,
    so the task can run on every deployment or on a schedule. The rule matches SageMaker's
    "Training Job State Change" and "Processing Job State Change" (batch) events of jobs named
    ``<prefix>-…``; the queue's policy admits only
    that rule (``sqs:SendMessage`` from ``events.amazonaws.com``); messages no consumer can handle go
    to the dead-letter queue. Returns (and pushes as XCom) the queue and DLQ URLs and ARNs, the
    rule's ARN and the list of what changed.

    :param prefix: the job-name prefix the trackers and ``TrainModelOperator(job_name_prefix=...)`` use.
    :param queue_name: default ``<prefix>-training-events``.
    :param dlq_name: default ``<prefix>-training-events-dlq``.
    :param rule_name: default ``<prefix>-training-state-change``.
    :param retention_seconds: how long the queue keeps an event nobody received.
    :param visibility_timeout_seconds: how long a received event stays hidden before another consumer
        may receive it.
    :param max_receive_count: receives after which an event moves to the dead-letter queue.
    :param aws_conn_id: the Airflow connection to AWS.
    :param region_name: AWS region; the connection's when None.
    :param verify: TLS verification for AWS clients.
    :param botocore_config: extra botocore client configuration, e.g. ``{"retries": {...}}``.
    """

    template_fields: Sequence[str] = ()
    ui_color = "#ffe8cc"

    def __init__(
        self,
        *,
        prefix: str = DEFAULT_PREFIX,
        queue_name: str | None = None,
        dlq_name: str | None = None,
        rule_name: str | None = None,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
        visibility_timeout_seconds: int = DEFAULT_VISIBILITY_TIMEOUT_SECONDS,
        max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        # Bad names fail when the DAG is parsed, long before anything is created.
        route_names(prefix, queue_name=queue_name, dlq_name=dlq_name, rule_name=rule_name)
        validate_queue_settings(
            retention_seconds=retention_seconds,
            visibility_timeout_seconds=visibility_timeout_seconds,
            max_receive_count=max_receive_count,
        )
        self.prefix = prefix
        self.queue_name = queue_name
        self.dlq_name = dlq_name
        self.rule_name = rule_name
        self.retention_seconds = retention_seconds
        self.visibility_timeout_seconds = visibility_timeout_seconds
        self.max_receive_count = max_receive_count
        self.aws_conn_id = aws_conn_id
        self.region_name = region_name
        self.verify = verify
        self.botocore_config = botocore_config

    @cached_property
    def hook(self) -> EventRouteHook:
        """Return the route hook (imported here: DAG parsing must not pay for boto3)."""
        from lyftlearn_provider.hooks.events import EventRouteHook

        return EventRouteHook(
            aws_conn_id=self.aws_conn_id,
            region_name=self.region_name,
            verify=self.verify,
            config=self.botocore_config,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        """Create or repair the route; log what changed and return the summary."""
        summary = self.hook.ensure_route(
            self.prefix,
            queue_name=self.queue_name,
            dlq_name=self.dlq_name,
            rule_name=self.rule_name,
            retention_seconds=self.retention_seconds,
            visibility_timeout_seconds=self.visibility_timeout_seconds,
            max_receive_count=self.max_receive_count,
        )
        if summary["changed"]:
            for change in summary["changed"]:
                self.log.info("Changed %s", change)
        else:
            self.log.info("Training event route for prefix %r already up to date.", self.prefix)
        self.log.info("Queue %s receives events of rule %s.", summary["queue_url"], summary["rule_arn"])
        return summary
