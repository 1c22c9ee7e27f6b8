from __future__ import annotations

import datetime as dt

import pytest

from lyftlearn_provider.results import from_training_job, phase_seconds, startup_breakdown
from lyftlearn_provider.status import is_terminal, to_datetime

T0 = dt.datetime(2026, 11, 28, 15, 0, tzinfo=dt.timezone.utc)


def at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


TRANSITIONS = [
    {"Status": "Starting", "StartTime": at(0), "EndTime": at(40)},
    {"Status": "Downloading", "StartTime": at(40), "EndTime": at(100)},
    {"Status": "Training", "StartTime": at(100), "EndTime": at(400)},
    {"Status": "Uploading", "StartTime": at(400), "EndTime": at(410)},
    {"Status": "Completed", "StartTime": at(410)},
]


def test_startup_breakdown_counts_phases_before_training():
    assert startup_breakdown(TRANSITIONS) == {"Starting": 40.0, "Downloading": 60.0}
    assert phase_seconds(TRANSITIONS, "Training") == 300.0


def test_open_phase_uses_next_start_and_unfinished_phase_is_left_out():
    transitions = [
        {"Status": "Starting", "StartTime": at(0)},
        {"Status": "Downloading", "StartTime": at(12.5)},
    ]
    assert startup_breakdown(transitions) == {"Starting": 12.5}


def test_timestamps_from_events_and_epochs_are_understood():
    assert to_datetime("2026-11-28T15:00:00Z") == T0
    assert to_datetime(T0.timestamp()) == T0
    assert to_datetime(T0.replace(tzinfo=None)) == T0
    assert to_datetime(None) is None


@pytest.mark.parametrize(
    ("status", "terminal"),
    [("InProgress", False), ("Stopping", False), ("Completed", True), ("Failed", True), ("Stopped", True)],
)
def test_terminal_states(status, terminal):
    assert is_terminal(status) is terminal


def test_training_result_is_json_safe_and_complete():
    import json

    description = {
        "TrainingJobName": "ll-x-0123456789",
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/ll-x-0123456789",
        "TrainingJobStatus": "Completed",
        "ModelArtifacts": {"S3ModelArtifacts": "s3://m/ll-x/output/model.tar.gz"},
        "AlgorithmSpecification": {"TrainingImage": "repo@sha256:" + "a" * 64},
        "FinalMetricDataList": [{"MetricName": "auc", "Value": 0.91, "Timestamp": at(400)}],
        "SecondaryStatusTransitions": TRANSITIONS,
        "BillableTimeInSeconds": 310,
        "ResourceConfig": {"KeepAlivePeriodInSeconds": 1800},
        "WarmPoolStatus": {"Status": "Available"},
        "CreationTime": at(0),
        "TrainingEndTime": at(410),
    }
    typed = from_training_job(description, attempt=2, adopted=True, data_interval_end=at(-60))
    result = typed.to_xcom()
    assert json.loads(json.dumps(result)) == result
    assert result["final_metrics"] == {"auc": 0.91}
    assert result["startup_total_seconds"] == 100.0
    assert result["training_seconds"] == 300.0
    assert result["warm_pool"] == {
        "status": "Available",
        "reused_by_job": None,
        "keep_alive_seconds": 1800,
        "reused_pool_of": None,
    }
    assert result["data_interval"] == {"start": None, "end": at(-60).isoformat()}
    assert (result["attempt"], result["adopted"]) == (2, True)
    assert (
        typed.describe_startup() == "start-up 100.0s (Starting 40.0s, Downloading 60.0s); warm pool Available"
    )
