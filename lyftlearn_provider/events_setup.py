"""Set up the EventBridge → SQS route for event-driven tracking from the command line.

The command-line twin of ``SetupTrainingEventsOperator``::

    python -m lyftlearn_provider.events_setup --prefix ll [--region us-east-1] [--aws-conn-id aws_default]

It prints the route's summary (queue and DLQ URLs and ARNs, the rule's ARN, what changed) as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator, Sequence

from lyftlearn_provider.event_route import route_names
from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.naming import DEFAULT_PREFIX


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send everything written to stdout to stderr meanwhile, so that stdout holds the summary alone.

    At the file-descriptor level: Airflow's log handlers bound ``sys.stdout`` when Airflow was imported.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: Sequence[str] | None = None) -> int:
    """Create or repair the route for a prefix and print its summary as JSON."""
    parser = argparse.ArgumentParser(
        prog="python -m lyftlearn_provider.events_setup",
        description="Create or repair the EventBridge rule, SQS queue and dead-letter queue that carry "
        "SageMaker training-job state changes for one job-name prefix. Safe to run again.",
    )
    parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="job-name prefix (default: %(default)s)")
    parser.add_argument("--region", default=None, help="AWS region (default: the connection's)")
    parser.add_argument("--aws-conn-id", default="aws_default", help="Airflow AWS connection id")
    parser.add_argument("--queue-name", default=None)
    parser.add_argument("--dlq-name", default=None)
    parser.add_argument("--rule-name", default=None)
    args = parser.parse_args(argv)
    try:
        names = route_names(
            args.prefix, queue_name=args.queue_name, dlq_name=args.dlq_name, rule_name=args.rule_name
        )
    except InvalidSpecError as error:
        parser.error(str(error))

    with _stdout_to_stderr():
        # Imported here: --help and argument errors answer without loading boto3 and Airflow's hooks.
        from lyftlearn_provider.hooks.events import EventRouteHook

        hook = EventRouteHook(aws_conn_id=args.aws_conn_id, region_name=args.region)
        summary = hook.ensure_route(
            args.prefix, queue_name=names.queue, dlq_name=names.dlq, rule_name=names.rule
        )
    json.dump(summary, sys.stdout, indent=2, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
