"""Runs without a logical date (Airflow 3 manual runs): the manual-run interval the operators give them."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from airflow.sdk import CronDataIntervalTimetable, DeltaDataIntervalTimetable

from lyftlearn_provider.run_dates import fill_manual_interval, manual_interval

AFTER = dt.datetime(2026, 11, 28, 15, 7, 30, tzinfo=dt.timezone.utc)


def test_the_interval_ends_at_run_after_and_is_one_schedule_interval_long():
    every_15 = CronDataIntervalTimetable("*/15 * * * *", timezone="UTC")
    assert manual_interval(AFTER, every_15) == (AFTER - dt.timedelta(minutes=15), AFTER)
    daily = DeltaDataIntervalTimetable(dt.timedelta(days=1))
    assert manual_interval(AFTER, daily) == (AFTER - dt.timedelta(days=1), AFTER)
    assert manual_interval(AFTER, None) == (AFTER, AFTER)  # no data-interval schedule: an empty interval


def test_only_a_run_without_a_data_interval_is_filled_in():
    context: dict = {"dag_run": SimpleNamespace(run_after=AFTER)}
    assert fill_manual_interval(context, CronDataIntervalTimetable("@daily", timezone="UTC"))
    assert context["data_interval_end"] == AFTER
    assert context["data_interval_start"] == AFTER - dt.timedelta(days=1)
    dates = (context["ds"], context["ds_nodash"], context["ts_nodash"])
    assert dates == ("2026-11-28", "20261128", "20261128T150730")
    scheduled = {"dag_run": SimpleNamespace(run_after=AFTER), "data_interval_end": AFTER, "ds": "2026-01-01"}
    assert not fill_manual_interval(scheduled)
    assert scheduled["ds"] == "2026-01-01"
