"""TrainModelOperator against the AWS emulator over HTTP: adoption, attempts, stops, results."""

from __future__ import annotations

import datetime as dt
import threading
import time

import boto3
import pytest
from airflow.sdk.exceptions import TaskDeferred

from lyftlearn_provider.exceptions import InvalidSpecError, LyftLearnError, TrainingJobError
from lyftlearn_provider.naming import training_job_name
from lyftlearn_provider.operators.jobs import RECORD_XCOM_KEY as TRACKING_XCOM_KEY
from lyftlearn_provider.operators.training import TrainModelOperator
from lyftlearn_provider.triggers.training import TrainingJobTrigger
from tests.helpers import StandInTaskInstance, make_context, make_spec

BASE = training_job_name(
    dag_id="retrain_fraud", task_id="train", run_id="scheduled__2026-11-28T15:00:00+00:00"
)


FEW_RETRIES = {"retries": {"mode": "standard", "total_max_attempts": 2}}


def make_operator(**kwargs):
    kwargs.setdefault("spec", make_spec())
    kwargs.setdefault("poll_interval", 0.05)
    return TrainModelOperator(task_id="train", **kwargs)


def creates(aws) -> int:
    return len([c for c in aws.control.calls(action="CreateTrainingJob") if c["status"] == 200])


def defer(operator, context) -> TrainingJobTrigger:
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, TrainingJobTrigger)
    return trigger


def wait_until_created(aws, name, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not any(job["TrainingJobName"] == name for job in aws.control.jobs()):
        assert time.monotonic() < deadline, f"{name} was never created"
        time.sleep(0.02)


def finish(aws, name, metrics=None):
    aws.control.advance(name, "Downloading")
    aws.control.advance(name, "Training")
    aws.control.advance(name, "Uploading")
    return aws.control.complete(name, metrics=metrics or {"validation:auc": 0.91})


def test_first_try_creates_the_job_and_defers_on_it(aws):
    context = make_context()
    trigger = defer(make_operator(deferrable=True), context)
    assert trigger.job_name == BASE
    assert creates(aws) == 1
    job = aws.control.job(BASE)
    assert job["TrainingJobStatus"] == "InProgress"
    assert job["Environment"]["LYFTLEARN_RUN_ID"] == "scheduled__2026-11-28T15:00:00+00:00"
    assert job["Environment"]["LYFTLEARN_RUNTIME"] == "sagemaker"
    assert context["ti"].xcom[TRACKING_XCOM_KEY]["job_name"] == BASE
    assert context["ti"].xcom[TRACKING_XCOM_KEY]["attempt"] == 1
    assert context["ti"].xcom["lyftlearn_training_job"]["job_name"] == BASE


def test_a_deferred_task_keeps_two_xcom_keys_and_three_links(aws):
    context = make_context()
    operator = make_operator(deferrable=True)
    defer(operator, context)
    assert sorted(context["ti"].xcom) == ["lyftlearn_job", "lyftlearn_training_job"]
    facts = context["ti"].xcom["lyftlearn_training_job"]
    job, logs, image = (link.format_link(**facts) for link in operator.operator_extra_links)
    assert job.endswith(f"#/jobs/{BASE}")
    assert f"logStreamNameFilter$3D{BASE}" in logs
    pinned = aws.control.job(BASE)["AlgorithmSpecification"]["TrainingImage"]
    digest = pinned.rpartition("@")[2]
    assert image == (
        "https://console.aws.amazon.com/ecr/repositories/private/123456789012/fraud-model/_/image/"
        f"{digest}/details?region=us-east-1"
    )


def test_a_task_deferred_before_the_record_key_was_renamed_resumes_on_its_record(aws):
    context = make_context()
    defer(make_operator(deferrable=True), context)
    record = context["ti"].xcom.pop(TRACKING_XCOM_KEY)
    context["ti"].xcom["training_job"] = {**record, "adopted": True}  # as earlier versions stored it
    finish(aws, BASE)
    event = {"status": "terminal", "job_name": BASE, "job_status": "Completed"}
    result = make_operator(deferrable=True).execute_complete(context, event)
    assert result["job_name"] == BASE
    assert result["adopted"] is True  # read from the old key, not rebuilt from the event


def test_job_carries_identity_tags_and_stopping_condition_from_the_timeout(aws):
    operator = make_operator(
        deferrable=True, execution_timeout=dt.timedelta(minutes=14), tags={"team": "fraud"}
    )
    defer(operator, make_context())
    request = aws.control.job(BASE)
    assert request["StoppingCondition"]["MaxRuntimeInSeconds"] == 14 * 60
    sagemaker = boto3.client("sagemaker")
    tags = {t["Key"]: t["Value"] for t in sagemaker.list_tags(ResourceArn=request["TrainingJobArn"])["Tags"]}
    assert tags["team"] == "fraud"
    assert tags["lyftlearn:dag-id"] == "retrain_fraud"
    assert tags["lyftlearn:run-id"] == "scheduled__2026-11-28T15:00:00+00:00"
    assert tags["lyftlearn:base-job-name"] == BASE


def test_shared_tracking_is_handed_to_the_trigger(aws):
    trigger = defer(make_operator(deferrable=True, tracking="shared"), make_context())
    assert trigger.source == "shared"
    assert trigger.serialize()[1]["source"] == "shared"


def test_events_tracking_hands_queue_and_prefix_to_the_trigger(aws):
    queue = "https://sqs.us-east-1.amazonaws.com/123456789012/ll-training-events"
    operator = make_operator(deferrable=True, tracking="events", events_queue_url=queue)
    trigger = defer(operator, make_context())
    assert (trigger.source, trigger.queue_url, trigger.job_name_prefix) == ("events", queue, "ll")


def test_retry_adopts_the_running_job(aws):
    defer(make_operator(deferrable=True), make_context())
    trigger = defer(make_operator(deferrable=True), make_context(StandInTaskInstance(try_number=2)))
    assert trigger.job_name == BASE
    assert creates(aws) == 1


def test_retry_reuses_a_completed_job_without_deferring(aws):
    defer(make_operator(deferrable=True), make_context())
    finish(aws, BASE, metrics={"validation:auc": 0.93})
    result = make_operator(deferrable=True).execute(make_context(StandInTaskInstance(try_number=2)))
    assert result["job_name"] == BASE
    assert result["adopted"] is True
    assert result["final_metrics"] == {"validation:auc": 0.93}
    assert creates(aws) == 1


@pytest.mark.parametrize("end", ["fail", "stop"])
def test_retry_after_failed_or_stopped_job_starts_a_new_attempt(aws, end):
    defer(make_operator(deferrable=True), make_context())
    if end == "fail":
        aws.control.fail(BASE, "AlgorithmError: out of memory")
    else:
        aws.control.stop(BASE)
        aws.control.wait_for_status(BASE, "Stopped")
    trigger = defer(make_operator(deferrable=True), make_context(StandInTaskInstance(try_number=2)))
    assert trigger.job_name == BASE + "-a2"
    # A third try while attempt 2 runs adopts it: still two jobs.
    trigger = defer(make_operator(deferrable=True), make_context(StandInTaskInstance(try_number=3)))
    assert trigger.job_name == BASE + "-a2"
    assert creates(aws) == 2


def test_fail_policy_fails_again_without_creating(aws):
    defer(make_operator(deferrable=True), make_context())
    aws.control.fail(BASE, "AlgorithmError: out of memory")
    with pytest.raises(TrainingJobError, match="out of memory.*if_job_failed='new_attempt'"):
        make_operator(deferrable=True, if_job_failed="fail").execute(make_context())
    assert creates(aws) == 1


def test_lost_create_response_is_adopted_not_duplicated(aws):
    # SageMaker creates the job but the connection drops before the answer: botocore retries the
    # request, gets ResourceInUse, and the operator recognises its own job.
    aws.control.inject("reset", action="CreateTrainingJob", after=True)
    trigger = defer(make_operator(deferrable=True), make_context())
    assert trigger.job_name == BASE
    assert [c["status"] for c in aws.control.calls(action="CreateTrainingJob")][-1] == 400
    assert len(aws.control.jobs()) == 1


def test_execute_complete_returns_the_result(aws, training_image):
    context = make_context()
    operator = make_operator(deferrable=True, keep_alive_seconds=600)
    defer(operator, context)
    finish(aws, BASE)
    result = operator.execute_complete(
        context, event={"status": "terminal", "job_name": BASE, "job_status": "Completed"}
    )
    assert result["status"] == "Completed"
    assert result["model_artifact_uri"].endswith(f"{BASE}/output/model.tar.gz")
    assert set(result["startup_seconds"]) == {"Starting", "Downloading"}
    assert result["warm_pool"]["status"] == "Available"
    assert result["data_interval"]["end"] == "2026-11-28T15:00:00+00:00"
    assert result["image"] == "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model@" + training_image
    assert result["soci"] == "v2"
    assert result["image_resolution"]["reference"] == make_spec().image


@pytest.mark.parametrize(
    ("end", "message"),
    [("fail", "ended Failed: AlgorithmError: bad data"), ("stop", "stopped outside this task")],
)
def test_execute_complete_fails_on_failed_or_foreign_stop(aws, end, message):
    operator = make_operator(deferrable=True)
    defer(operator, make_context())
    if end == "fail":
        aws.control.fail(BASE, "AlgorithmError: bad data")
    else:
        aws.control.stop(BASE)
        aws.control.wait_for_status(BASE, "Stopped")
    with pytest.raises(TrainingJobError, match=message):
        operator.execute_complete(make_context(), event={"status": "terminal", "job_name": BASE})


@pytest.mark.parametrize("event", [None, {}, {"status": "terminal"}, {"status": "done", "job_name": BASE}])
def test_execute_complete_rejects_unusable_events(aws, event):
    context = make_context()
    defer(make_operator(deferrable=True), context)
    with pytest.raises(LyftLearnError, match="unusable event"):
        make_operator(deferrable=True).execute_complete(context, event=event)


def test_execute_complete_without_a_record_resumes_on_the_events_job(aws):
    defer(make_operator(deferrable=True), make_context())
    aws.control.fail(BASE, "AlgorithmError: bad data")
    with pytest.raises(TrainingJobError, match="bad data"):
        make_operator(deferrable=True).execute_complete(
            make_context(), event={"status": "terminal", "job_name": BASE}
        )
    with pytest.raises(LyftLearnError, match="not one of this run's"):
        make_operator(deferrable=True).execute_complete(
            make_context(), event={"status": "terminal", "job_name": "ll-someone-else-0123456789"}
        )


def test_timeout_event_stops_the_job(aws):
    operator = make_operator(deferrable=True)
    context = make_context()
    defer(operator, context)
    with pytest.raises(TrainingJobError, match="timed out"):
        operator.execute_complete(context, event={"status": "timeout", "job_name": BASE})
    assert aws.control.wait_for_status(BASE, "Stopped", "Stopping")["TrainingJobStatus"] in (
        "Stopping",
        "Stopped",
    )
    assert len(aws.control.calls(action="StopTrainingJob")) == 1


def test_tracking_errors_never_stop_a_healthy_job_and_the_worker_takes_over(aws):
    # Item 4: an error event about a job that still runs defers again; after three in a row the task
    # follows the job from the worker. Nothing stops the job (it used to be stopped at the third).
    operator = make_operator(deferrable=True)
    context = make_context()
    defer(operator, context)
    event = {"status": "error", "job_name": BASE, "message": "AccessDenied", "error_kind": "tracker"}
    for errors in (1, 2):
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute_complete(context, event=event)
        assert deferred.value.trigger.job_name == BASE
        assert context["ti"].xcom[TRACKING_XCOM_KEY]["tracking_errors"] == errors
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(operator.execute_complete(context, event=event)))
    worker.start()
    deadline = time.monotonic() + 10
    while len(aws.control.calls(action="DescribeTrainingJob")) < 6:  # the worker is polling the job
        assert time.monotonic() < deadline
        time.sleep(0.02)
    finish(aws, BASE)
    worker.join(30)
    assert result["status"] == "Completed"
    assert context["ti"].xcom[TRACKING_XCOM_KEY]["tracking_errors"] == 3
    assert aws.control.calls(action="StopTrainingJob") == []


def test_a_tracker_that_cannot_work_is_replaced_by_polling_for_the_next_deferral(aws):
    # The shared watcher or the events queue misconfigured: deferring on it again would fail the same way.
    queue = "https://sqs.us-east-1.amazonaws.com/123456789012/ll-training-events"
    operator = make_operator(deferrable=True, tracking="events", events_queue_url=queue)
    context = make_context()
    assert defer(operator, context).source == "events"
    event = {"status": "error", "job_name": BASE, "message": "prefix mismatch", "error_kind": "tracker"}
    with pytest.raises(TaskDeferred) as deferred:
        make_operator(deferrable=True, tracking="events", events_queue_url=queue).execute_complete(
            context, event
        )
    assert deferred.value.trigger.source == "poll"
    assert aws.control.calls(action="StopTrainingJob") == []


def test_terminal_event_of_a_job_that_still_runs_defers_again(aws):
    # A stale or early end (SageMaker's Describe lags the event) is not "stopped outside this task".
    operator = make_operator(deferrable=True)
    context = make_context()
    defer(operator, context)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute_complete(
            context, event={"status": "terminal", "job_name": BASE, "job_status": "Completed"}
        )
    assert deferred.value.trigger.job_name == BASE
    assert aws.control.calls(action="StopTrainingJob") == []


def test_deferral_timeout_stops_the_job(aws):
    from airflow.sdk.exceptions import TaskDeferralTimeout

    context = make_context()
    defer(make_operator(deferrable=True), context)
    fresh = make_operator(deferrable=True)  # the worker resuming the task is a new process
    with pytest.raises(TaskDeferralTimeout):
        fresh.resume_execution("__fail__", {"error": "Trigger timeout"}, context)
    assert aws.control.job(BASE)["TrainingJobStatus"] in ("Stopping", "Stopped")


def test_a_crashed_trigger_fails_the_try_but_leaves_the_job_to_the_next_one(aws):
    # A trigger failure says nothing about the job: only the deadline, a kill or a user stops it.
    from airflow.sdk.exceptions import TaskDeferralError

    context = make_context()
    defer(make_operator(deferrable=True), context)
    fresh = make_operator(deferrable=True)
    with pytest.raises(TaskDeferralError):
        fresh.resume_execution("__fail__", {"error": "Trigger failure", "traceback": ["boom"]}, context)
    assert aws.control.job(BASE)["TrainingJobStatus"] == "InProgress"
    assert aws.control.calls(action="StopTrainingJob") == []
    trigger = defer(make_operator(deferrable=True), make_context(StandInTaskInstance(try_number=2)))
    assert trigger.job_name == BASE


def test_on_kill_stops_the_job_being_waited_for(aws):
    operator = make_operator(deferrable=False)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            operator.execute(make_context())
        except BaseException as error:  # the job ends Stopped: the task must fail
            errors.append(error)

    worker = threading.Thread(target=run)
    worker.start()
    wait_until_created(aws, BASE)
    operator.on_kill()
    worker.join(10)
    assert not worker.is_alive()
    assert aws.control.wait_for_status(BASE, "Stopped")["TrainingJobStatus"] == "Stopped"
    assert isinstance(errors[0], TrainingJobError)
    assert "killed" in str(errors[0])


def test_synchronous_mode_waits_through_a_throttling_storm(aws):
    # Few botocore retries, so the storm outlasts them and the operator's own back-off must carry on.
    operator = make_operator(deferrable=False, botocore_config=FEW_RETRIES, poll_interval=0.02)
    result: dict = {}

    def run() -> None:
        result.update(operator.execute(make_context()))

    worker = threading.Thread(target=run)
    worker.start()
    wait_until_created(aws, BASE)
    aws.control.inject("throttle", 25, action="DescribeTrainingJob")
    aws.control.inject("server_error", 5, action="DescribeTrainingJob")
    finish(aws, BASE)
    worker.join(60)
    assert result["status"] == "Completed"
    assert creates(aws) == 1
    assert aws.control.faults() == []


def test_synchronous_deadline_stops_the_job(aws):
    operator = make_operator(deferrable=False, execution_timeout=dt.timedelta(seconds=1))
    with pytest.raises(TrainingJobError, match="timed out"):
        operator.execute(make_context())
    assert aws.control.job(BASE)["TrainingJobStatus"] in ("Stopping", "Stopped")


def test_over_limit_environment_is_spilled_to_s3(aws):
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="lyftlearn-models")
    big = "x" * 2000
    defer(make_operator(deferrable=True, spec=make_spec(environment={"FEATURES": big})), make_context())
    job = aws.control.job(BASE)
    uri = job["Environment"]["LYFTLEARN_SPILL_URI"]
    assert "FEATURES" not in job["Environment"]
    key = uri.removeprefix("s3://lyftlearn-models/")
    import json

    document = json.loads(s3.get_object(Bucket="lyftlearn-models", Key=key)["Body"].read())
    assert document["environment"]["FEATURES"] == big


def test_templated_spec_is_rendered_and_revalidated(aws):
    spec = make_spec(hyperparameters={"window_end": "{{ data_interval_end }}"})
    operator = make_operator(spec=spec, deferrable=True)
    rendered = operator.render_template(spec, {"data_interval_end": "2026-11-28T15:00:00+00:00"})
    assert rendered.hyperparameters["window_end"] == "2026-11-28T15:00:00+00:00"


BAD_OPERATOR_ARGUMENTS = [
    ({"job_name_prefix": "Bad_Prefix"}, "job_name_prefix"),
    ({"keep_alive_seconds": 999_999}, "keep_alive"),
    ({"max_runtime_seconds": 0}, "max_runtime"),
    ({"if_job_failed": "sometimes"}, "if_job_failed"),
    ({"tracking": "carrier-pigeon"}, "tracking"),
    ({"tracking": "events"}, "events_queue_url"),
    ({"tracking": "events", "events_queue_url": "ll-training-events"}, "events_queue_url"),
    ({"poll_interval": 0}, "poll_interval"),
    ({"tags": {"lyftlearn:run-id": "x"}}, "tags"),
    ({"tags": {f"k{i}": "v" for i in range(60)}}, "tags"),
    ({"spec": {"image": "x"}}, "spec"),
]


@pytest.mark.parametrize(("kwargs", "field"), BAD_OPERATOR_ARGUMENTS)
def test_bad_operator_arguments_fail_at_parse_time(aws, kwargs, field):
    with pytest.raises(InvalidSpecError) as raised:
        make_operator(**kwargs)
    assert field in raised.value.field
    assert raised.value.fix
    assert aws.control.calls(service="sagemaker") == []


def test_templated_queue_url_is_rendered_then_checked_before_anything_is_created(aws):
    queue = "https://sqs.us-east-1.amazonaws.com/123456789012/ll-training-events"
    operator = make_operator(
        deferrable=True, tracking="events", events_queue_url="{{ params.queue }}", params={"queue": queue}
    )
    assert "events_queue_url" in operator.template_fields
    operator.events_queue_url = operator.render_template(
        operator.events_queue_url, {"params": {"queue": queue}}
    )
    assert defer(operator, make_context()).queue_url == queue

    operator = make_operator(deferrable=True, tracking="events", events_queue_url="{{ params.queue }}")
    operator.events_queue_url = operator.render_template(operator.events_queue_url, {"params": {"queue": ""}})
    with pytest.raises(InvalidSpecError) as raised:
        operator.execute(make_context())
    assert raised.value.field == "events_queue_url"
    assert creates(aws) == 1  # the first operator's job only


def test_bad_rendered_template_fails_before_anything_is_created(aws):
    spec = make_spec(image="{{ params.image }}")
    operator = make_operator(spec=spec, deferrable=True)
    with pytest.raises(InvalidSpecError) as raised:
        operator.render_template(spec, {"params": {"image": "not a valid image!"}})
    assert raised.value.field == "image"
    assert aws.control.calls(service="sagemaker") == []


REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"


def test_job_runs_the_pinned_digest_and_a_moved_tag_does_not_change_the_run(aws, training_image):
    from lyftlearn_provider.testing.aws.images import push_image

    defer(make_operator(deferrable=True), make_context())
    assert aws.control.job(BASE)["AlgorithmSpecification"]["TrainingImage"] == (
        f"{REGISTRY}/fraud-model@{training_image}"
    )
    aws.control.fail(BASE, "AlgorithmError: flaky")
    # moto deletes an image whose last tag moves away (real ECR keeps it untagged): keep a second tag.
    push_image(boto3.client("ecr"), "fraud-model", "1-previous", soci="v2", build="fraud-model:1")
    moved = push_image(boto3.client("ecr"), "fraud-model", "1", soci="v2", build="next")
    assert moved != training_image
    trigger = defer(make_operator(deferrable=True), make_context(StandInTaskInstance(try_number=2)))
    # The retry's new attempt runs what the run pinned first, not what the tag points at now.
    assert aws.control.job(trigger.job_name)["AlgorithmSpecification"]["TrainingImage"] == (
        f"{REGISTRY}/fraud-model@{training_image}"
    )


def test_soci_required_but_missing_fails_before_any_job_is_created(aws):
    from lyftlearn_provider.testing.aws.images import push_image

    push_image(boto3.client("ecr"), "plain-model", "1", soci=None)
    spec = make_spec(image=f"{REGISTRY}/plain-model:1")
    with pytest.raises(InvalidSpecError, match="soci convert") as raised:
        make_operator(deferrable=True, spec=spec, soci="require").execute(make_context())
    assert raised.value.field == "image"
    assert aws.control.calls(action="CreateTrainingJob") == []
    # The same image is accepted when SOCI is only preferred; the result says it had no index.
    trigger = defer(make_operator(deferrable=True, spec=spec, soci="prefer"), make_context())
    assert aws.control.job(trigger.job_name)["TrainingJobStatus"] == "InProgress"


@pytest.mark.parametrize(
    ("image", "problem"),
    [(f"{REGISTRY}/no-such-repo:1", "not found"), (f"{REGISTRY}/fraud-model:no-such-tag", "no-such-tag")],
)
def test_unknown_image_or_tag_fails_before_any_job_is_created(aws, image, problem):
    with pytest.raises(InvalidSpecError, match=problem) as raised:
        make_operator(deferrable=True, spec=make_spec(image=image)).execute(make_context())
    assert raised.value.field == "image"
    assert aws.control.calls(action="CreateTrainingJob") == []


def test_bad_soci_policy_fails_at_parse_time(aws):
    with pytest.raises(InvalidSpecError) as raised:
        make_operator(soci="always")
    assert raised.value.field == "soci"


def test_result_names_the_warm_pool_the_next_run_started_on(aws):
    first_ti = StandInTaskInstance(run_id="scheduled__2026-11-28T15:00:00+00:00")
    first = make_operator(deferrable=True, keep_alive_seconds=1800)
    first_job = defer(first, make_context(first_ti)).job_name
    finish(aws, first_job)
    second_ti = StandInTaskInstance(run_id="scheduled__2026-11-28T15:15:00+00:00")
    second = make_operator(deferrable=True, keep_alive_seconds=1800)
    second_job = defer(second, make_context(second_ti)).job_name
    finish(aws, second_job)
    result = second.execute_complete(
        make_context(second_ti), event={"status": "terminal", "job_name": second_job}
    )
    assert result["warm_pool"]["reused_pool_of"] == first_job
    assert aws.control.job(first_job)["WarmPoolStatus"]["Status"] == "Reused"


def test_startup_and_training_times_reach_statsd(aws, monkeypatch):
    import socket

    from airflow.sdk.observability import stats
    from airflow.sdk.observability.metrics import stats_utils

    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5)
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(listener.getsockname()[1]))
    stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
    try:
        context = make_context()
        operator = make_operator(deferrable=True)
        defer(operator, context)
        finish(aws, BASE)
        result = operator.execute_complete(context, event={"status": "terminal", "job_name": BASE})
        received = {listener.recv(1024).decode() for _ in range(2)}
    finally:
        monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "False")
        stats.initialize(factory=stats_utils.get_stats_factory(), export_legacy_names=False)
        listener.close()
    names = {line.split(":")[0] for line in received}
    assert names == {
        "airflow.lyftlearn.startup.retrain_fraud.train",
        "airflow.lyftlearn.training.retrain_fraud.train",
    }
    startup = next(line for line in received if ".startup." in line)
    assert startup.endswith("|ms")
    assert float(startup.split(":")[1].split("|")[0]) == pytest.approx(result["startup_total_seconds"] * 1000)


def test_adopting_a_running_job_survives_an_image_lookup_failure(aws):
    defer(make_operator(deferrable=True), make_context())
    boto3.client("ecr").delete_repository(repositoryName="fraud-model", force=True)
    trigger = defer(make_operator(deferrable=True), make_context(StandInTaskInstance(try_number=2)))
    assert trigger.job_name == BASE
    assert len(aws.control.jobs()) == 1


# ----------------------------------------------------------------- bugs found by trying it (issue 8)


def hold_first_request(operator, action: str):
    """Hold the operator's first ``action`` request at the HTTP boundary until released.

    A botocore ``before-send`` handler on the operator's own SageMaker client: the request is built and
    about to leave when it blocks, as a slow network would hold it.
    """
    held, release = threading.Event(), threading.Event()

    def gate(**_: object) -> None:
        if not held.is_set():
            held.set()
            assert release.wait(20), "the test never released the held request"

    operator._backend.hook.conn.meta.events.register(f"before-send.sagemaker.{action}", gate)
    return held, release


def run_in_thread(call):
    outcome: dict[str, object] = {}

    def target() -> None:
        try:
            outcome["result"] = call()
        except BaseException as error:  # the test inspects what the task raised
            outcome["error"] = error

    worker = threading.Thread(target=target)
    worker.start()
    return worker, outcome


def test_kill_while_a_retry_looks_up_the_running_job_stops_it(aws):
    # Bug: a kill, execution timeout or mark-failed arriving while a retry still looked up the run's
    # running job (before adopting it) stopped nothing, and the job kept running.
    defer(make_operator(deferrable=True), make_context())
    retry = make_operator(deferrable=True)
    held, release = hold_first_request(retry, "DescribeTrainingJob")
    worker, outcome = run_in_thread(lambda: retry.execute(make_context(StandInTaskInstance(try_number=2))))
    assert held.wait(20)
    retry.on_kill()  # Airflow calls it on SIGTERM (mark-failed, kill) and after an execution timeout
    release.set()
    worker.join(30)
    assert aws.control.job(BASE)["TrainingJobStatus"] in ("Stopping", "Stopped")
    assert isinstance(outcome.get("error"), TrainingJobError)
    assert "killed" in str(outcome["error"])
    assert creates(aws) == 1


def test_kill_while_the_create_request_is_in_flight_stops_what_it_created(aws):
    operator = make_operator(deferrable=True)
    held, release = hold_first_request(operator, "CreateTrainingJob")
    worker, outcome = run_in_thread(lambda: operator.execute(make_context()))
    assert held.wait(20)
    operator.on_kill()  # the job does not exist yet: nothing to stop now
    release.set()
    worker.join(30)
    assert "killed" in str(outcome.get("error"))
    assert aws.control.job(BASE)["TrainingJobStatus"] in ("Stopping", "Stopped")


@pytest.mark.parametrize("interval", [float("nan"), float("inf"), -1, "30", True])
def test_poll_interval_must_be_a_finite_positive_number(aws, interval):
    # Bug: NaN and infinity were accepted (a synchronous task created its job, then crashed in its
    # wait loop and left the job running), and "30" raised a bare TypeError.
    with pytest.raises(InvalidSpecError) as raised:
        make_operator(poll_interval=interval)
    assert raised.value.field == "poll_interval"
    assert aws.control.calls(service="sagemaker") == []


def test_adopting_its_own_pinned_job_warns_of_no_image_drift(aws, capsys):
    # Bug: every adoption logged "The running job uses image …@sha256:…, not …:tag".
    defer(make_operator(deferrable=True), make_context())
    capsys.readouterr()
    defer(make_operator(deferrable=True), make_context(StandInTaskInstance(try_number=2)))
    assert "as the DAG now says" not in capsys.readouterr().out
    # A DAG that now names another repository is told that the running job is not what it names.
    from lyftlearn_provider.testing.aws.images import push_image

    push_image(boto3.client("ecr"), "other-model", "1", soci="v2")
    other = make_spec(image=f"{REGISTRY}/other-model:1")
    defer(make_operator(deferrable=True, spec=other), make_context(StandInTaskInstance(try_number=3)))
    assert "as the DAG now says" in capsys.readouterr().out


def test_new_attempt_after_the_image_reference_changed_pins_the_new_reference(aws, training_image):
    # Bug: a new attempt always reran its predecessor's digest, also after the DAG's image was changed
    # to fix the failure. Now the predecessor's digest is reused only while the reference is the same.
    from lyftlearn_provider.testing.aws.images import push_image

    defer(make_operator(deferrable=True), make_context())
    aws.control.fail(BASE, "AlgorithmError: the bug the new image fixes")
    fixed = push_image(boto3.client("ecr"), "fraud-model", "2", soci="v2", build="fixed")
    operator = make_operator(deferrable=True, spec=make_spec(image=f"{REGISTRY}/fraud-model:2"))
    trigger = defer(operator, make_context(StandInTaskInstance(try_number=2)))
    assert trigger.job_name == BASE + "-a2"
    assert aws.control.job(trigger.job_name)["AlgorithmSpecification"]["TrainingImage"] == (
        f"{REGISTRY}/fraud-model@{fixed}"
    )
    assert fixed != training_image


def test_user_tags_leave_room_for_the_providers_own(aws):
    # Bug: the 50-tag limit was checked without the provider's own lyftlearn:* tags, so 45 user tags
    # passed parsing and failed at run time.
    from lyftlearn_provider.tags import IDENTITY_TAG_KEYS, MAX_USER_TAGS

    assert MAX_USER_TAGS == 50 - len(IDENTITY_TAG_KEYS)
    with pytest.raises(InvalidSpecError) as raised:
        make_operator(tags={f"k{i}": "v" for i in range(MAX_USER_TAGS + 1)})
    assert raised.value.field == "tags"
    assert f"use at most {MAX_USER_TAGS}" in str(raised.value).lower()
    trigger = defer(
        make_operator(deferrable=True, tags={f"k{i}": "v" for i in range(MAX_USER_TAGS)}), make_context()
    )
    arn = aws.control.job(trigger.job_name)["TrainingJobArn"]
    assert len(boto3.client("sagemaker").list_tags(ResourceArn=arn, MaxResults=100)["Tags"]) == 50


def test_warm_pool_donor_is_found_past_the_first_page(aws):
    # Bug: find_warm_pool_donor read one page of 100 reused pools, so busy accounts saw no donor.
    from lyftlearn_provider.rendering.sagemaker import render_training_job
    from lyftlearn_provider.runtime import ResourceProfile

    first_ti = StandInTaskInstance(run_id="scheduled__2026-11-28T15:00:00+00:00")
    donor = defer(make_operator(deferrable=True, keep_alive_seconds=1800), make_context(first_ti)).job_name
    finish(aws, donor)
    sagemaker = boto3.client("sagemaker")
    other = make_spec(resources=ResourceProfile(instance_type="ml.m5.large"))  # other teams' pools
    for index in range(101):
        for role in ("a", "b"):
            request = render_training_job(
                other, job_name=f"busy-{index}-{role}", max_runtime_seconds=3600, keep_alive_seconds=600
            ).request
            sagemaker.create_training_job(**request)
            aws.control.complete(request["TrainingJobName"])  # -b reuses -a's pool: -a is "Reused"
    second_ti = StandInTaskInstance(run_id="scheduled__2026-11-28T15:15:00+00:00")
    second = make_operator(deferrable=True, keep_alive_seconds=1800)
    context = make_context(second_ti)
    job = defer(second, context).job_name
    finish(aws, job)
    result = second.execute_complete(context, event={"status": "terminal", "job_name": job})
    reused = sagemaker.list_training_jobs(WarmPoolStatusEquals="Reused", MaxResults=100)
    assert reused.get("NextToken"), "the donor must not be on the first page for this test to mean anything"
    assert result["warm_pool"]["reused_pool_of"] == donor


def test_a_value_airflow_masks_is_refused_before_anything_is_created(aws):
    # R7: a sensitive Variable or Connection field templated into the environment would reach SageMaker
    # in clear text, readable by anyone who may describe the job.
    from airflow.sdk.log import mask_secret

    mask_secret("hunter2-very-secret")
    spec = make_spec(environment={"DB_PASSWORD": "{{ params.password }}"})
    operator = make_operator(spec=spec, deferrable=True)
    operator.spec = operator.render_template(spec, {"params": {"password": "hunter2-very-secret"}})
    with pytest.raises(InvalidSpecError) as raised:
        operator.execute(make_context())
    assert raised.value.field == "spec.environment['DB_PASSWORD']"
    assert "secrets=" in raised.value.fix
    assert "hunter2" not in str(raised.value)
    assert aws.control.calls(service="sagemaker") == []
