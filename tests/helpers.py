"""Shared test helpers: a spec, and a task-instance stand-in for calling operators directly."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from lyftlearn_provider.runtime import ResourceProfile, RuntimeSpec

T0 = dt.datetime(2026, 11, 28, 15, 0, tzinfo=dt.timezone.utc)


def make_spec(**overrides: Any) -> RuntimeSpec:
    values: dict[str, Any] = {
        "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:1",
        "role_arn": "arn:aws:iam::123456789012:role/lyftlearn-training",
        "output_s3_uri": "s3://lyftlearn-models/fraud",
        "command": ("python", "-m", "fraud.train"),
        "hyperparameters": {"learning_rate": 0.05},
        "resources": ResourceProfile(instance_type="ml.m5.xlarge"),
    }
    values.update(overrides)
    return RuntimeSpec(**values)


@dataclass
class StandInTaskInstance:
    """The part of Airflow's runtime task instance an operator touches, for direct ``execute`` calls.

    End-to-end behaviour is tested through ``dag.test()``; this keeps the many small state
    combinations fast.
    """

    dag_id: str = "retrain_fraud"
    task_id: str = "train"
    run_id: str = "scheduled__2026-11-28T15:00:00+00:00"
    map_index: int = -1
    try_number: int = 1
    start_date: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))
    xcom: dict[str, Any] = field(default_factory=dict)

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value

    def xcom_pull(self, task_ids: Any = None, key: str = "return_value", **_: Any) -> Any:
        return self.xcom.get(key)


def make_context(ti: StandInTaskInstance | None = None) -> dict[str, Any]:
    ti = ti or StandInTaskInstance()
    return {
        "ti": ti,
        "task_instance": ti,
        "run_id": ti.run_id,
        "data_interval_start": T0 - dt.timedelta(minutes=15),
        "data_interval_end": T0,
    }
