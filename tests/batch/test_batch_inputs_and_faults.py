"""Batch jobs: R5 (bad input refused before anything is created, naming the field and the fix) and R4
(throttling, 5xx answers and connection resets delay a batch task, never fail it or double its job)."""

from __future__ import annotations

import pytest

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.runtime import ResourceProfile
from tests.batch.helpers import (
    BASE,
    MODEL,
    batch_spec,
    creates,
    defer,
    finish,
    make_batch,
    processing,
    wait_until_created,
)
from tests.helpers import make_context
from tests.operators.test_training_operator import run_in_thread

FEW_RETRIES = {"retries": {"mode": "standard", "total_max_attempts": 2}}

# ---------------------------------------------------------------------------------------------- R5
BAD_BATCH_ARGUMENTS = [
    ({"spec": batch_spec(hyperparameters={"lr": 0.1})}, "spec.hyperparameters", "spec.config"),
    ({"outputs": {"bad name": "s3://bucket-x/p"}}, "outputs['bad name']", "letters"),
    ({"outputs": {"predictions": "/tmp/predictions"}}, "outputs['predictions']", "s3://"),
    ({"outputs": {f"o{i}": f"s3://bucket-x/{i}" for i in range(11)}}, "outputs", "one prefix"),
    ({"outputs": ["s3://bucket-x/p"]}, "outputs", "outputs={"),
    (
        {"spec": batch_spec(inputs={f"i{i}": f"s3://bucket-x/{i}" for i in range(11)})},
        "spec.inputs",
        "one prefix",
    ),
    ({"model_uri": "model.tar.gz"}, "model_uri", "s3://"),
    ({"model_uri": MODEL, "training_result": {"image": "x"}}, "model_uri", "not both"),
    ({"network_config": "vpc-123"}, "network_config", "VpcConfig"),
    (
        {"network_config": {"EnableNetworkIsolation": True}, "backend": "kubernetes"},
        "network_config",
        "backend",
    ),
    ({"namespace": "ml"}, "namespace", "backend='kubernetes'"),
    ({"max_runtime_seconds": 10 * 24 * 3600}, "max_runtime_seconds", "9 days"),
    (
        {"spec": batch_spec(resources=ResourceProfile(instance_type="ml.m5.xlargee"))},
        "instance_type",
        "ml.m5",
    ),
    ({"tracking": "carrier-pigeon"}, "tracking", "shared"),
    ({"tracking": "events"}, "events_queue_url", "SetupTrainingEventsOperator"),
    ({"backend": "lambda"}, "backend", "sagemaker"),
    ({"job_name_prefix": "Bad_Prefix"}, "job_name_prefix", ""),
    ({"if_job_failed": "sometimes"}, "if_job_failed", "new_attempt"),
]


@pytest.mark.parametrize(("kwargs", "field", "fix"), BAD_BATCH_ARGUMENTS)
def test_r5_bad_arguments_fail_at_parse_time_naming_field_and_fix(aws, kwargs, field, fix):
    with pytest.raises(InvalidSpecError) as raised:
        make_batch(**kwargs)
    assert field in raised.value.field
    assert raised.value.fix and fix in raised.value.fix
    assert aws.control.calls(service="sagemaker") == []


def test_r5_a_templated_output_that_renders_bad_fails_before_anything_is_created(aws):
    operator = make_batch(deferrable=True, outputs={"predictions": "{{ params.where }}"})
    operator.outputs = operator.render_template(operator.outputs, {"params": {"where": "predictions/"}})
    with pytest.raises(InvalidSpecError) as raised:
        operator.execute(make_context())
    assert raised.value.field == "outputs['predictions']"
    assert "s3://" in raised.value.fix
    assert creates(aws) == 0


@pytest.mark.parametrize(
    ("training_result", "problem"),
    [
        ({"job_name": "ll-train", "image": "repo@sha256:" + "a" * 64}, "model_artifact_uri"),
        ("not json", "not a training result"),
        ({"model_artifact_uri": MODEL, "image": "repo:latest"}, "digest"),
    ],
)
def test_r5_an_unusable_training_result_fails_before_anything_is_created(aws, training_result, problem):
    operator = make_batch(deferrable=True, training_result=training_result)
    with pytest.raises(InvalidSpecError) as raised:
        operator.execute(make_context())
    assert raised.value.field in ("training_result", "image")
    assert problem in str(raised.value)
    assert aws.control.calls(action="CreateProcessingJob") == []


def test_r5_a_value_airflow_masks_is_refused_before_anything_is_created(aws):
    from airflow.sdk.log import mask_secret

    mask_secret("hunter2-batch-secret")
    operator = make_batch(
        deferrable=True, spec=batch_spec(environment={"DB_PASSWORD": "hunter2-batch-secret"})
    )
    with pytest.raises(InvalidSpecError) as raised:
        operator.execute(make_context())
    assert "DB_PASSWORD" in raised.value.field
    assert "secrets=" in raised.value.fix
    assert creates(aws) == 0


def test_r5_soci_required_but_missing_fails_before_any_job_is_created(aws):
    import boto3

    from lyftlearn_provider.testing.aws.images import push_image

    push_image(boto3.client("ecr"), "fraud-scorer", "1", soci=None)
    spec = batch_spec(image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-scorer:1")
    with pytest.raises(Exception, match="SOCI") as raised:
        make_batch(deferrable=True, spec=spec, soci="require").execute(make_context())
    assert "soci" in str(raised.value).lower()
    assert creates(aws) == 0


# ---------------------------------------------------------------------------------------------- R4
def test_r4_create_survives_5xx_and_a_reset_with_exactly_one_job(aws):
    aws.control.inject("server_error", 2, action="CreateProcessingJob")
    aws.control.inject("reset", action="CreateProcessingJob", after=True)
    trigger = defer(make_batch(deferrable=True, botocore_config=FEW_RETRIES), make_context())
    assert trigger.job_name == BASE
    # The reset request took effect unanswered; the retry that followed got ResourceInUse.
    assert [job["ProcessingJobName"] for job in processing(aws).jobs()] == [BASE]
    assert aws.control.faults() == []


def test_r4_synchronous_wait_rides_out_throttling_5xx_and_resets(aws):
    # Few botocore retries, so the storm outlasts them and the hook's own back-off must carry on.
    operator = make_batch(deferrable=False, botocore_config=FEW_RETRIES, poll_interval=0.02)
    worker, outcome = run_in_thread(lambda: operator.execute(make_context()))
    wait_until_created(aws, BASE)
    for kind, count in (("throttle", 8), ("server_error", 3), ("reset", 2)):
        aws.control.inject(kind, count, action="DescribeProcessingJob")
    finish(aws, BASE)
    worker.join(60)
    assert outcome["result"]["status"] == "Completed"
    assert (creates(aws), aws.control.faults()) == (1, [])


def test_r4_stop_on_kill_survives_throttling(aws):
    operator = make_batch(deferrable=True)
    defer(operator, make_context())
    aws.control.inject("throttle", 2, action="StopProcessingJob")
    operator.on_kill()

    assert processing(aws).wait_for_status(BASE, "Stopped")["ProcessingJobStatus"] == "Stopped"
