"""RunBatchJobOperator against the AWS emulator over HTTP: request, result, and R1 (one job per run)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from lyftlearn_provider.exceptions import BatchJobError
from lyftlearn_provider.operators.jobs import RECORD_XCOM_KEY
from tests.batch.helpers import (
    BASE,
    MODEL,
    OUTPUTS,
    batch_spec,
    creates,
    defer,
    finish,
    make_batch,
    processing,
    wait_until_created,
)
from tests.helpers import StandInTaskInstance, make_context
from tests.operators.test_training_operator import hold_first_request, run_in_thread

TRAINING_RESULT = {
    "job_name": "ll-train-abc",
    "image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model@{digest}",
    "model_artifact_uri": MODEL,
    "final_metrics": {"validation:auc": 0.91},
    "data_interval": {"start": None, "end": None},
}


def test_first_try_creates_a_processing_job_with_the_batch_contract(aws):
    context = make_context()
    trigger = defer(make_batch(deferrable=True, model_uri=MODEL, tags={"team": "fraud"}), context)
    assert trigger.job_name == BASE
    assert creates(aws) == 1
    job = processing(aws).job(BASE)
    assert job["ProcessingJobStatus"] == "InProgress"
    assert job["AppSpecification"]["ContainerEntrypoint"] == ["python", "-m", "fraud.score"]
    assert "@sha256:" in job["AppSpecification"]["ImageUri"]  # pinned once per run
    environment = job["Environment"]
    assert environment["LYFTLEARN_RUNTIME"] == "batch"
    assert environment["LYFTLEARN_MODEL_URI"] == MODEL
    assert json.loads(environment["LYFTLEARN_INPUTS"]) == {
        "transactions": "/opt/ml/processing/input/transactions"
    }
    assert json.loads(environment["LYFTLEARN_OUTPUTS"]) == {
        "predictions": "/opt/ml/processing/output/predictions"
    }
    assert json.loads(environment["LYFTLEARN_OUTPUT_URIS"]) == OUTPUTS
    assert environment["LYFTLEARN_RUN_ID"] == StandInTaskInstance.run_id
    [source] = job["ProcessingInputs"]
    assert source["S3Input"]["LocalPath"] == "/opt/ml/processing/input/transactions"
    [output] = job["ProcessingOutputConfig"]["Outputs"]
    assert output["S3Output"] == {
        "S3Uri": OUTPUTS["predictions"],
        "LocalPath": "/opt/ml/processing/output/predictions",
        "S3UploadMode": "EndOfJob",
    }
    assert job["ProcessingResources"]["ClusterConfig"]["InstanceType"] == "ml.m5.xlarge"
    assert context["ti"].xcom[RECORD_XCOM_KEY]["job_name"] == BASE
    assert context["ti"].xcom["lyftlearn_processing_job"]["job_name"] == BASE


def test_stopping_condition_comes_from_the_execution_timeout(aws):
    defer(make_batch(deferrable=True, execution_timeout=dt.timedelta(minutes=14)), make_context())
    assert processing(aws).job(BASE)["StoppingCondition"] == {"MaxRuntimeInSeconds": 14 * 60}


def test_the_model_and_pinned_image_come_from_the_training_result(aws, training_image):
    result = {**TRAINING_RESULT, "image": TRAINING_RESULT["image"].format(digest=training_image)}
    defer(make_batch(deferrable=True, training_result=result), make_context())
    job = processing(aws).job(BASE)
    assert job["AppSpecification"]["ImageUri"] == result["image"]
    assert job["Environment"]["LYFTLEARN_MODEL_URI"] == MODEL


def test_execute_complete_returns_the_batch_result(aws, training_image):
    context = make_context()
    operator = make_batch(deferrable=True, model_uri=MODEL)
    defer(operator, context)
    finish(aws, BASE)
    result = operator.execute_complete(
        context, event={"status": "terminal", "job_name": BASE, "job_status": "Completed"}
    )
    assert result["backend"] == "sagemaker"
    assert result["job_name"] == BASE
    assert result["job_arn"].endswith(f":processing-job/{BASE}")
    assert result["status"] == "Completed"
    assert result["outputs"] == OUTPUTS
    assert result["model_uri"] == MODEL
    assert result["image"].endswith("@" + training_image)
    assert result["soci"] == "v2"
    assert result["run_seconds"] is not None and result["billable_seconds"] >= 1
    assert set(result["startup_seconds"]) == {"Starting"}
    assert result["data_interval"]["end"] == "2026-11-28T15:00:00+00:00"


# ---------------------------------------------------------------------------------------------- R1
def test_r1_retry_adopts_the_running_job(aws):
    defer(make_batch(deferrable=True), make_context())
    trigger = defer(make_batch(deferrable=True), make_context(StandInTaskInstance(try_number=2)))
    assert trigger.job_name == BASE
    assert creates(aws) == 1


def test_r1_clear_after_success_reuses_the_completed_job(aws):
    defer(make_batch(deferrable=True), make_context())
    finish(aws, BASE)
    # A clear runs the task again with the same run id: its job is found and its result reused.
    result = make_batch(deferrable=True).execute(make_context(StandInTaskInstance(try_number=3)))
    assert result["job_name"] == BASE
    assert result["adopted"] is True
    assert creates(aws) == 1


@pytest.mark.parametrize("end", ["fail", "stop"])
def test_r1_retry_after_a_failed_or_stopped_job_starts_one_new_attempt(aws, end):
    defer(make_batch(deferrable=True), make_context())
    if end == "fail":
        processing(aws).fail(BASE, "AlgorithmError: out of memory")
    else:
        processing(aws).stop(BASE)
        processing(aws).wait_for_status(BASE, "Stopped")
    trigger = defer(make_batch(deferrable=True), make_context(StandInTaskInstance(try_number=2)))
    assert trigger.job_name == BASE + "-a2"
    trigger = defer(make_batch(deferrable=True), make_context(StandInTaskInstance(try_number=3)))
    assert trigger.job_name == BASE + "-a2"
    assert creates(aws) == 2


def test_r1_fail_policy_creates_nothing_more(aws):
    defer(make_batch(deferrable=True), make_context())
    processing(aws).fail(BASE, "AlgorithmError: bad rows")
    with pytest.raises(BatchJobError, match="bad rows.*if_job_failed='new_attempt'"):
        make_batch(deferrable=True, if_job_failed="fail").execute(make_context())
    assert creates(aws) == 1


def test_r1_a_killed_worker_leaves_the_job_to_the_next_try(aws):
    # The worker running the task synchronously dies (no on_kill, nothing stopped): the next try adopts.
    operator = make_batch(deferrable=False)
    worker, _ = run_in_thread(lambda: operator.execute(make_context()))
    wait_until_created(aws, BASE)
    trigger = defer(make_batch(deferrable=True), make_context(StandInTaskInstance(try_number=2)))
    assert trigger.job_name == BASE
    finish(aws, BASE)
    worker.join(30)
    assert creates(aws) == 1


def test_r1_lost_create_response_is_adopted_not_duplicated(aws):
    aws.control.inject("reset", action="CreateProcessingJob", after=True)
    trigger = defer(make_batch(deferrable=True), make_context())
    assert trigger.job_name == BASE
    assert [c["status"] for c in aws.control.calls(action="CreateProcessingJob")][-1] == 400
    assert len(processing(aws).jobs()) == 1


def test_r1_on_kill_stops_the_job_being_waited_for(aws):
    operator = make_batch(deferrable=False)
    worker, outcome = run_in_thread(lambda: operator.execute(make_context()))
    wait_until_created(aws, BASE)
    operator.on_kill()  # the worker is told to stop: the job must not run on
    worker.join(10)
    assert processing(aws).wait_for_status(BASE, "Stopped")["ProcessingJobStatus"] == "Stopped"
    assert isinstance(outcome["error"], BatchJobError) and "killed" in str(outcome["error"])


def test_r1_kill_while_the_create_request_is_in_flight_stops_what_it_created(aws):
    operator = make_batch(deferrable=True)
    held, release = hold_first_request(operator, "CreateProcessingJob")
    worker, outcome = run_in_thread(lambda: operator.execute(make_context()))
    assert held.wait(20)
    operator.on_kill()
    release.set()
    worker.join(30)
    assert "killed" in str(outcome.get("error"))
    assert processing(aws).job(BASE)["ProcessingJobStatus"] in ("Stopping", "Stopped")


def test_r1_deferral_timeout_and_timeout_event_stop_the_job(aws):
    context = make_context()
    defer(make_batch(deferrable=True), context)
    with pytest.raises(BatchJobError, match="timed out"):
        make_batch(deferrable=True).execute_complete(context, event={"status": "timeout", "job_name": BASE})
    assert processing(aws).job(BASE)["ProcessingJobStatus"] in ("Stopping", "Stopped")


def test_r1_synchronous_deadline_stops_the_job(aws):
    operator = make_batch(deferrable=False, execution_timeout=dt.timedelta(seconds=1))
    with pytest.raises(BatchJobError, match="timed out"):
        operator.execute(make_context())
    assert processing(aws).job(BASE)["ProcessingJobStatus"] in ("Stopping", "Stopped")


def test_values_over_processings_limits_spill_to_s3(aws):
    import boto3

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lyftlearn-models")
    # 300 characters fit a training job's environment (512) but not a Processing job's (256).
    features = "x" * 300
    spec = batch_spec(environment={"FEATURES": features, **{f"V{i}": "1" for i in range(99)}})
    defer(make_batch(deferrable=True, spec=spec), make_context())
    environment = processing(aws).job(BASE)["Environment"]
    assert len(environment) <= 100 and "FEATURES" not in environment
    assert environment["LYFTLEARN_RUNTIME"] == "batch"
    uri = environment["LYFTLEARN_SPILL_URI"]
    assert uri.endswith(f"/{BASE}/runtime-batch.json")
    body = s3.get_object(Bucket="lyftlearn-models", Key=uri.removeprefix("s3://lyftlearn-models/"))["Body"]
    document = json.loads(body.read())
    assert document["environment"]["FEATURES"] == features
    kept = {name: value for name, value in environment.items() if name != "LYFTLEARN_SPILL_URI"}
    assert set(kept) | set(document["environment"]) >= {"FEATURES", "V0", "V98"}  # nothing lost
