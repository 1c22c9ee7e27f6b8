"""Create (or repair) the EventBridge -> SQS route that reports training-job state changes."""

from __future__ import annotations

import datetime as dt

from airflow.sdk import DAG

from lyftlearn_provider.operators.events import SetupTrainingEventsOperator

DOC_MD = """
### Set up the training-job event route (EventBridge → SQS)

With `tracking="events"`, a deferred training task learns its job ended seconds after it did, from
SageMaker's *Training Job State Change* events, instead of polling `DescribeTrainingJob`. This DAG
creates what carries them: an SQS queue (`ll-training-events`, with a policy that lets only this rule
send) and an EventBridge rule matching jobs named `ll-*`. It is idempotent: the daily run repairs drift
(a widened queue policy, a disabled rule) and changes nothing otherwise.

Its task returns the `queue_url`. Store it once in the Variable the retraining DAGs read:

```bash
airflow variables set lyftlearn_events_queue_url <queue_url>
```

`lyftlearn_retrain_every_15_minutes` then tracks its jobs by event (and falls back to a shared watcher
while the Variable is unset). Needs `events:PutRule`, `events:PutTargets`, `sqs:CreateQueue` and
`sqs:SetQueueAttributes` for the `aws_default` connection.
"""

# [START howto_training_events_setup]
with DAG(
    dag_id="lyftlearn_training_events_setup",
    description="Create or repair the EventBridge rule and SQS queue that report training-job states.",
    doc_md=DOC_MD,
    # Idempotent: a daily run repairs drift (a widened queue policy, a disabled rule) and changes
    # nothing otherwise.
    schedule="@daily",
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    default_args={"retries": 1, "retry_delay": dt.timedelta(minutes=1)},
    tags=["lyftlearn", "example"],
) as dag:
    SetupTrainingEventsOperator(
        task_id="ensure_training_events_route",
        # Must match TrainModelOperator(job_name_prefix=...): the rule matches job names on it.
        prefix="ll",
    )
# [END howto_training_events_setup]
