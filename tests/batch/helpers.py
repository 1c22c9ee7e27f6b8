"""What the batch tests share: a batch spec, the operator, and the emulator's processing jobs."""

from __future__ import annotations

import time
from typing import Any

from lyftlearn_provider.naming import training_job_name
from lyftlearn_provider.operators.batch import RunBatchJobOperator
from lyftlearn_provider.triggers.training import TrainingJobTrigger
from tests.helpers import StandInTaskInstance, make_spec
from tests.operators.test_training_operator import defer as defer_training

#: The run's processing job: named as every job task's job is (dag, task, run — never the try).
BASE = training_job_name(dag_id="retrain_fraud", task_id="train", run_id=StandInTaskInstance.run_id)
OUTPUTS = {"predictions": "s3://lyftlearn-predictions/fraud/2026-11-28"}
MODEL = "s3://lyftlearn-models/fraud/run-1/output/model.tar.gz"


def batch_spec(**overrides: Any):
    values: dict[str, Any] = {
        "command": ("python", "-m", "fraud.score"),
        "hyperparameters": {},
        "inputs": {"transactions": "s3://lyftlearn-data/transactions/2026-11-28"},
        "resources": make_spec().resources,
    }
    values.update(overrides)
    return make_spec(**values)


def make_batch(**kwargs: Any) -> RunBatchJobOperator:
    kwargs.setdefault("spec", batch_spec())
    kwargs.setdefault("outputs", OUTPUTS)
    kwargs.setdefault("poll_interval", 0.05)
    kwargs.setdefault("task_id", "train")
    return RunBatchJobOperator(**kwargs)


def processing(aws):
    """Return the emulator's control client for processing jobs."""
    return aws.control.processing()


def creates(aws) -> int:
    return len([c for c in aws.control.calls(action="CreateProcessingJob") if c["status"] == 200])


def defer(operator, context) -> TrainingJobTrigger:
    """Execute until the task defers; return its trigger, which must follow a processing job."""
    trigger = defer_training(operator, context)
    assert trigger.kind.name == "processing"
    return trigger


def wait_until_created(aws, name: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not any(job["ProcessingJobName"] == name for job in processing(aws).jobs()):
        assert time.monotonic() < deadline, f"{name} was never created"
        time.sleep(0.02)


def finish(aws, name: str) -> dict[str, Any]:
    control = processing(aws)
    control.advance(name, "Downloading")
    control.advance(name, "Training")
    return control.complete(name)
