"""Dates for runs that have none: Airflow 3 runs triggered without a logical date.

Airflow 3 lets a run be triggered with ``logical_date=None`` (the UI's and the REST API's default for a
manual run). Such a run has no data interval, and Airflow leaves ``data_interval_start``,
``data_interval_end``, ``ds``, ``ts``… out of the template context: a spec templated on them fails with
``UndefinedError: 'data_interval_end' is undefined``. A retraining DAG still has to train on
*something*, so the provider's operators give such a run a **manual-run interval that ends at the run's
``run_after``** (when it was triggered) and, when the DAG has a data-interval schedule, is as long as one
of its intervals (``CronDataIntervalTimetable``, ``DeltaDataIntervalTimetable``); otherwise it is empty
(start = end = ``run_after``), as Airflow's own trigger timetables make them. The interval fills the
missing keys only; a run that has a data interval keeps it. The training result records it, so
"never backwards" orders a manual run's model by when it was triggered.

Standard library plus ``croniter`` (which the Task SDK's cron timetables already import), lazily.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import MutableMapping
from typing import Any

#: Context keys Airflow leaves out when the run has no logical date, and this module fills in.
FILLED_KEYS = (
    "data_interval_start",
    "data_interval_end",
    "logical_date",
    "ds",
    "ds_nodash",
    "ts",
    "ts_nodash",
    "ts_nodash_with_tz",
)


def interval_length(timetable: Any, end: dt.datetime) -> dt.timedelta:
    """Return how long one data interval of ``timetable`` ending near ``end`` is; zero when it has none."""
    from airflow.sdk import CronDataIntervalTimetable, DeltaDataIntervalTimetable

    if isinstance(timetable, DeltaDataIntervalTimetable):
        delta = timetable.delta
        return (end - (end - delta)) if delta else dt.timedelta(0)
    if isinstance(timetable, CronDataIntervalTimetable):
        from croniter import croniter

        # The two cron boundaries at or before ``end``: their distance is one interval.
        previous = croniter(timetable.expression, end).get_prev(dt.datetime)
        before = croniter(timetable.expression, previous).get_prev(dt.datetime)
        return previous - before
    return dt.timedelta(0)


def manual_interval(run_after: dt.datetime, timetable: Any = None) -> tuple[dt.datetime, dt.datetime]:
    """Return the data interval of a run without a logical date: it ends at ``run_after``."""
    if run_after.tzinfo is None:
        raise ValueError(f"run_after must be timezone-aware, got {run_after!r}")
    end = run_after.astimezone(dt.timezone.utc)
    return end - interval_length(timetable, end), end


def fill_manual_interval(context: MutableMapping[str, Any], timetable: Any = None) -> bool:
    """Give a run without a data interval the manual-run interval in ``context``; return whether it did.

    Airflow caches the context of a task instance and hands the same mapping to ``execute``, so what is
    filled here is what the task sees too. A context that has ``data_interval_end`` is left alone.
    """
    if context.get("data_interval_end") is not None:
        return False
    dag_run = context.get("dag_run")
    run_after = getattr(dag_run, "run_after", None)
    if run_after is None:
        return False
    from airflow.sdk.timezone import coerce_datetime

    start, end = (coerce_datetime(value) for value in manual_interval(run_after, timetable))
    ds = end.strftime("%Y-%m-%d")
    ts = end.isoformat()
    values = {
        "data_interval_start": start,
        "data_interval_end": end,
        "logical_date": end,
        "ds": ds,
        "ds_nodash": ds.replace("-", ""),
        "ts": ts,
        "ts_nodash": end.strftime("%Y%m%dT%H%M%S"),
        "ts_nodash_with_tz": ts.replace("-", "").replace(":", ""),
    }
    for key in FILLED_KEYS:
        if context.get(key) is None:
            context[key] = values[key]
    return True
