"""The serving rules, pure: which model, already serving, never backwards (R6), the gate, the rewrite."""

from __future__ import annotations

import json

import pytest

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.serving import (
    Decision,
    Model,
    ModelGate,
    ServingRecord,
    asset_extra,
    decide,
    serving_deployment,
    serving_record,
)

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model@sha256:" + "a" * 64
OTHER_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model@sha256:" + "b" * 64
RESULT = {
    "backend": "sagemaker",
    "job_name": "ll-retrain-train-0123456789",
    "image": IMAGE,
    "model_artifact_uri": "s3://lyftlearn-models/fraud/ll-retrain-train-0123456789/output/model.tar.gz",
    "final_metrics": {"validation:auc": 0.91},
    "data_interval": {"start": "2026-11-28T14:45:00+00:00", "end": "2026-11-28T15:00:00+00:00"},
    "ended_at": "2026-11-28T15:09:00+00:00",
    "status": "Completed",
}


def model(**changes: object) -> Model:
    return Model(**{**vars(Model.from_training_result(RESULT)), **changes})  # type: ignore[arg-type]


def serving(**changes: object) -> ServingRecord:
    return ServingRecord(**{**vars(ServingRecord.of(model(), "dag/run/deploy")), **changes})  # type: ignore[arg-type]


def test_a_training_result_or_its_json_or_its_asset_extra_is_a_model():
    expected = model()
    assert Model.from_training_result(json.dumps(RESULT)) == expected
    assert Model.from_training_result(asset_extra(RESULT)) == expected
    assert (expected.image, expected.uri, expected.training_job) == (
        IMAGE,
        RESULT["model_artifact_uri"],
        RESULT["job_name"],
    )
    assert expected.metrics == {"validation:auc": 0.91}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (None, "is not a training result"),
        ("not json", "is not a training result"),
        ({**RESULT, "model_artifact_uri": None}, "has no 'model_artifact_uri'"),
        ({**RESULT, "image": None}, "has no 'image'"),
    ],
)
def test_what_is_not_a_training_result_is_refused_naming_the_fix(value, problem):
    with pytest.raises(InvalidSpecError) as raised:
        Model.from_training_result(value)
    assert raised.value.field == "training_result"
    assert problem in raised.value.problem
    assert "train.output" in raised.value.fix or "image=" in raised.value.fix


def test_only_a_pinned_image_serves():
    with pytest.raises(InvalidSpecError) as raised:
        model(image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:2026.11.28")
    assert raised.value.field == "image"
    assert "tag" in raised.value.problem


def test_the_same_model_already_serving_is_a_no_op():
    assert decide(model(), serving()).decision is Decision.ALREADY_SERVING


def test_a_model_trained_on_older_data_never_replaces_a_newer_one():
    newer = serving(data_interval_end="2026-11-28T16:00:00+00:00", model_uri="s3://m/newer/model.tar.gz")
    verdict = decide(model(), newer)
    assert verdict.decision is Decision.SKIP
    assert "newer than this run's" in verdict.reason
    assert "2026-11-28T16:00:00+00:00" in verdict.reason


def test_equal_data_but_another_model_deploys_and_newer_data_deploys():
    retrained = serving(model_uri="s3://m/earlier-try/model.tar.gz")
    assert decide(model(), retrained).decision is Decision.DEPLOY
    older = serving(data_interval_end="2026-11-28T14:00:00+00:00", model_uri="s3://m/older/model.tar.gz")
    assert decide(model(), older).decision is Decision.DEPLOY
    assert decide(model(), None).decision is Decision.DEPLOY


def test_without_data_intervals_the_training_end_orders_models():
    undated = model(data_interval_end=None, trained_at="2026-11-28T12:00:00+00:00")
    later = serving(
        data_interval_end=None, trained_at="2026-11-28T13:00:00+00:00", model_uri="s3://m/x/m.tgz"
    )
    assert decide(undated, later).decision is Decision.SKIP


@pytest.mark.parametrize(
    ("gate", "passes", "says"),
    [
        (ModelGate(at_least={"validation:auc": 0.9}), True, None),
        (ModelGate(at_least={"validation:auc": 0.95}), False, "below the gate's 0.95"),
        (ModelGate(at_most={"validation:auc": 0.5}), False, "above the gate's 0.5"),
        (ModelGate(at_least={"validation:f1": 0.5}), False, "validation:f1 is missing"),
        (
            ModelGate(not_worse_than_serving={"validation:auc": "higher"}),
            False,
            "worse than the serving model's 0.93",
        ),
        (ModelGate(not_worse_than_serving={"validation:auc": "lower"}), True, None),
    ],
)
def test_the_gate(gate, passes, says):
    current = serving(
        model_uri="s3://m/current/model.tar.gz",
        metrics={"validation:auc": 0.93},
        data_interval_end="2026-11-28T14:00:00+00:00",
    )
    verdict = decide(model(), current, gate)
    assert (verdict.decision is Decision.DEPLOY) is passes
    if says:
        assert verdict.decision is Decision.SKIP and says in verdict.reason


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"at_least": {"auc": "high"}}, "gate.at_least['auc']"),
        ({"not_worse_than_serving": {"auc": "up"}}, "gate.not_worse_than_serving['auc']"),
    ],
)
def test_a_gate_that_cannot_decide_is_refused_when_the_dag_is_parsed(kwargs, field):
    with pytest.raises(InvalidSpecError) as raised:
        ModelGate(**kwargs)
    assert raised.value.field == field


DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {
        "name": "fraud",
        "namespace": "serving",
        "resourceVersion": "41",
        "annotations": {"team": "a"},
    },
    "spec": {
        "replicas": 2,
        "template": {
            "metadata": {"labels": {"app": "fraud"}},
            "spec": {
                "containers": [
                    {
                        "name": "server",
                        "image": "old@sha256:" + "c" * 64,
                        "env": [
                            {"name": "PORT", "value": "8080"},
                            {"name": "LYFTLEARN_RUNTIME", "value": "x"},
                        ],
                    },
                    {"name": "sidecar", "image": "proxy:1"},
                ]
            },
        },
    },
}


def test_the_rewrite_sets_image_and_contract_keeps_the_teams_settings_and_records_the_model():
    record = ServingRecord.of(model(), "dag/run/deploy")
    environment = {"LYFTLEARN_RUNTIME": "serving", "LYFTLEARN_MODEL_URI": model().uri, "LOG_LEVEL": "info"}
    updated = serving_deployment(
        DEPLOYMENT, container="server", image=IMAGE, environment=environment, record=record
    )
    server, sidecar = updated["spec"]["template"]["spec"]["containers"]
    assert server["image"] == IMAGE and sidecar == DEPLOYMENT["spec"]["template"]["spec"]["containers"][1]
    env = {entry["name"]: entry["value"] for entry in server["env"]}
    assert env == {"PORT": "8080", **environment}
    assert updated["metadata"]["resourceVersion"] == "41"  # written back as a compare-and-swap
    assert updated["metadata"]["annotations"]["team"] == "a"
    assert serving_record(updated) == record
    assert updated["spec"]["template"]["metadata"]["annotations"]["lyftlearn.io/model-uri"] == model().uri
    assert DEPLOYMENT["spec"]["template"]["spec"]["containers"][0]["image"].startswith("old")  # not mutated


def test_a_missing_container_is_named_with_the_ones_there_are():
    with pytest.raises(InvalidSpecError) as raised:
        serving_deployment(DEPLOYMENT, container="model", image=IMAGE, environment={}, record=serving())
    assert raised.value.field == "container"
    assert "it has: server, sidecar" in raised.value.problem


def test_the_record_round_trips_through_annotations_on_the_template_or_the_deployment():
    record = serving()
    assert ServingRecord.from_annotations(record.to_annotations()) == record
    assert ServingRecord.from_annotations({"team": "a"}) is None
    # A Deployment changed by a team's own tooling (pod mode) has the record on the Deployment alone.
    assert serving_record({"metadata": {"annotations": record.to_annotations()}, "spec": {}}) == record
