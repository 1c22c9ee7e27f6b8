"""The 15-minute loop's shape for R2 on real Airflow: train (events tracking) then deploy, in a group.

Read by ``bench/r2_standalone.py`` (and its light test); the queue URL comes from a Variable the
bench sets after creating the event route in the AWS emulator. Its tasks are built from
``bench/_standalone.py``, as P4's loop is.
"""

from __future__ import annotations

import datetime as dt
import os

from _standalone import deploy_to_serving, fraud_spec
from airflow.sdk import DAG, CronDataIntervalTimetable, TaskGroup

from lyftlearn_provider import TrainModelOperator

SPEC = fraud_spec(
    "2026.11.28",
    command=("python", "-m", "fraud.train"),
    hyperparameters={"window": "{{ data_interval_end | default(run_after) }}"},
)

with DAG(
    dag_id="lyftlearn_r2_loop",
    schedule=CronDataIntervalTimetable("*/15 * * * *", timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
    catchup=False,
    # Several runs deferred at once, so a killed triggerer holds many triggers.
    max_active_runs=int(os.environ.get("LYFTLEARN_R2_MAX_ACTIVE_RUNS", "6")),
    # Retries adopt the run's job (Airflow 3.3's stale "success" race can fail a try: apache/airflow#67287).
    default_args={"retries": 2, "retry_delay": dt.timedelta(seconds=3)},
) as dag:
    with TaskGroup("fraud"):
        train = TrainModelOperator(
            task_id="train",
            spec=SPEC,
            tracking="events",
            events_queue_url="{{ var.value.lyftlearn_events_queue_url }}",
            # The reconciliation interval: an event that never arrives shows as a notice this late.
            poll_interval=float(os.environ.get("LYFTLEARN_R2_RECONCILE_SECONDS", "60")),
            deferrable=True,
            execution_timeout=dt.timedelta(minutes=14),
        )
        train >> deploy_to_serving(SPEC, train.output, poll_interval=1, rollout_timeout_seconds=120)
