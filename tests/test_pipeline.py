"""retraining_pipeline and GateModelOperator: what a DAG author gets by default, and what they can change."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowSkipException

from lyftlearn_provider import GateModelOperator, ModelGate, retraining_pipeline
from lyftlearn_provider.exceptions import InvalidSpecError
from tests.helpers import StandInTaskInstance, heavy_modules_after, make_context, make_spec

REPO = Path(__file__).resolve().parents[1]
QUEUE = "https://sqs.us-east-1.amazonaws.com/123456789012/ll-training-events"
RESULT = {
    "job_name": "ll-fraud-train-0123456789",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model@sha256:" + "a" * 64,
    "model_artifact_uri": "s3://lyftlearn-models/fraud/a/output/model.tar.gz",
    "final_metrics": {"validation:auc": 0.81},
    "data_interval": {"start": None, "end": "2026-11-28T15:00:00+00:00"},
}


def build(**kwargs):
    with DAG("pipeline", schedule=None, start_date=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)) as dag:
        values = {
            "spec": make_spec(),
            "namespace": "ml-serving",
            "deployment": "fraud-model",
            "container": "server",
        }
        values.update(kwargs)
        group = retraining_pipeline("fraud", **values)
    return dag, group


def test_the_pipeline_chains_its_steps_with_deferrable_defaults():
    dag, group = build(validation_spec=make_spec(command=("python", "-m", "fraud.validate")))
    assert group.group_id == "fraud"
    assert [task.task_id for task in dag.topological_sort()] == [
        "fraud.train",
        "fraud.gate",
        "fraud.validate",
        "fraud.deploy",
    ]
    assert all(dag.get_task(f"fraud.{step}").deferrable for step in ("train", "validate", "deploy"))
    assert dag.get_task("fraud.train").tracking.value == "shared"  # no queue: the operator's default
    assert (
        dag.get_task("fraud.deploy").spec == dag.get_task("fraud.train").spec
    )  # serving = training contract


def test_a_queue_means_events_tracking_and_step_arguments_win_over_the_pipelines():
    gate = ModelGate(at_least={"validation:auc": 0.8})
    dag, _ = build(
        gate=gate,
        events_queue_url=QUEUE,
        deferrable=False,
        train_kwargs={"keep_alive_seconds": 600, "soci": "require"},
        deploy_kwargs={"deferrable": True, "rollout_timeout_seconds": 30},
    )
    train, deploy = dag.get_task("fraud.train"), dag.get_task("fraud.deploy")
    assert (train.tracking.value, train.events_queue_url) == ("events", QUEUE)
    assert (train.keep_alive_seconds, train.soci.value, train.deferrable) == (600, "require", False)
    assert (deploy.deferrable, deploy.rollout_timeout_seconds, deploy.gate) == (True, 30, gate)
    assert "fraud.validate" not in dag.task_dict  # no validation_spec, no validation step


def test_the_pipeline_owns_its_task_ids():
    with pytest.raises(InvalidSpecError, match="gate_kwargs.*task_id"):
        build(gate_kwargs={"task_id": "check"})


def test_the_gate_skips_a_model_below_its_threshold_with_the_reason_in_the_xcom():
    gate = GateModelOperator(
        task_id="gate", gate=ModelGate(at_least={"validation:auc": 0.85}), training_result=RESULT
    )
    ti = StandInTaskInstance(task_id="gate")
    with pytest.raises(AirflowSkipException, match="below the gate's 0.85"):
        gate.execute(make_context(ti))
    assert ti.xcom["return_value"]["status"] == "skipped"
    assert "validation:auc is 0.81" in ti.xcom["return_value"]["reason"]
    passed = GateModelOperator(
        task_id="gate", gate=ModelGate(at_least={"validation:auc": 0.8}), training_result=RESULT
    ).execute(make_context(StandInTaskInstance(task_id="gate")))
    assert (passed["status"], passed["metrics"]) == ("passed", {"validation:auc": 0.81})


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"gate": ModelGate(not_worse_than_serving={"validation:auc": "higher"})}, "deployment"),
        ({}, "deployment"),  # nothing to decide
        ({"gate": ModelGate(), "namespace": "ml-serving"}, "deployment"),
        ({"gate": {"at_least": {}}}, "gate"),
        ({"gate": ModelGate(), "namespace": "ml-serving", "deployment": "Bad_Name"}, "deployment"),
    ],
)
def test_gate_arguments_are_checked_when_the_dag_is_parsed(kwargs, field):
    with pytest.raises(InvalidSpecError) as raised:
        GateModelOperator(task_id="gate", training_result=RESULT, **kwargs)
    assert raised.value.field == field


@pytest.mark.parametrize("example", ["example_retrain_every_15_minutes.py", "example_model_asset_handoff.py"])
def test_a_pipeline_dag_file_parses_without_boto3_or_kubernetes(example):
    path = REPO / "example_dags" / example
    assert heavy_modules_after(f"import runpy; runpy.run_path({str(path)!r})") == []
