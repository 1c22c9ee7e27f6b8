"""The example DAGs as a user runs them: real Airflow (``dag.test()``), both emulators over HTTP.

Every example runs here at least once as a run triggered without a logical date (Airflow 3's manual
runs), which used to fail its templates. Assertions are on jobs created and final states, never on try
numbers: Airflow 3.3.2 can fail a deferred task on a stale executor event (apache/airflow#67287), which
the examples' retries absorb by adopting the run's job.
"""

from __future__ import annotations

import datetime as dt
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lyftlearn_provider.testing._airflow_db import task_states, xcom_value
from lyftlearn_provider.testing.examples import prepare, report_from_validation_pods
from lyftlearn_provider.testing.k8s import PodBehavior

EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
FAST_JOBS = {"Starting": 0.2, "Downloading": 0.2, "Training": 0.3, "Uploading": 0.1}
LOOP = ("fraud.train", "fraud.gate", "fraud.validate", "fraud.deploy")

pytestmark = pytest.mark.usefixtures("airflow_db")


def load(file: str, dag_id: str):
    """Parse one example file as the DAG processor would; make its waits short for the emulators."""
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(EXAMPLES / file))
    assert not bag.import_errors, bag.import_errors
    dag = bag.dags[dag_id]
    for task in dag.tasks:
        if hasattr(task, "poll_interval"):
            task.poll_interval = 0.2
    return dag


def succeeded(dagrun, *task_ids: str) -> dict[str, str]:
    states = task_states(dagrun.dag_id, dagrun.run_id)
    assert str(dagrun.state) == "success", states
    for task_id in task_ids:
        assert states[task_id] == "success", states
    return states


@pytest.fixture
def emulators(aws, k8s) -> dict[str, Any]:
    """Both emulators, seeded as the examples expect; training jobs run fast; validation pods report."""
    seeded = prepare(aws_env=aws.env(), kubeconfig=k8s.kubeconfig)
    aws.control.autopilot(phases=FAST_JOBS, metrics={"validation:auc": 0.91})
    report_from_validation_pods(k8s, {"smoke_auc": 0.9})
    return seeded


def serving(k8s, name: str = "fraud-model") -> dict[str, str]:
    deployment = k8s.get("Deployment", name, namespace="ml-serving")
    return deployment["spec"]["template"]["metadata"].get("annotations") or {}


def test_the_15_minute_loop_runs_without_a_logical_date_with_events_tracking(
    aws, k8s, emulators, monkeypatch
):
    # The event-route example first: its queue is what the 15-minute DAG tracks jobs by.
    setup = load("example_training_events_setup.py", "lyftlearn_training_events_setup")
    route_run = setup.test(logical_date=None)
    succeeded(route_run, "ensure_training_events_route")
    route = xcom_value(setup.dag_id, route_run.run_id, "ensure_training_events_route")
    monkeypatch.setenv("AIRFLOW_VAR_LYFTLEARN_EVENTS_QUEUE_URL", route["queue_url"])

    dag = load("example_retrain_every_15_minutes.py", "lyftlearn_retrain_every_15_minutes")
    assert (dag.max_active_runs, dag.catchup, dag.default_args["retries"]) == (1, False, 2)
    assert dag.get_task("fraud.train").tracking.value == "events"
    dagrun = dag.test(logical_date=None)
    succeeded(dagrun, *LOOP)
    assert dagrun.logical_date is None

    result = xcom_value(dag.dag_id, dagrun.run_id, "fraud.train")
    (job,) = aws.control.jobs()  # exactly one job for the run
    assert result["job_name"] == job["TrainingJobName"]
    # The manual-run interval: the 15 minutes before the run was triggered.
    end = dt.datetime.fromisoformat(result["data_interval"]["end"])
    start = dt.datetime.fromisoformat(result["data_interval"]["start"])
    assert (end, end - start) == (dagrun.run_after, dt.timedelta(minutes=15))
    assert dt.datetime.fromisoformat(job["HyperParameters"]["window"]) == end
    assert result["warm_pool"]["keep_alive_seconds"] == 1800
    assert result["soci"]
    assert aws.control.calls(service="sqs", action="ReceiveMessage")

    gate = xcom_value(dag.dag_id, dagrun.run_id, "fraud.gate")
    assert gate["status"] == "passed"
    validated = xcom_value(dag.dag_id, dagrun.run_id, "fraud.validate")
    assert validated["output"] == {"smoke_auc": 0.9}
    deployed = xcom_value(dag.dag_id, dagrun.run_id, "fraud.deploy")
    assert deployed["status"] == "deployed"
    annotations = serving(k8s)
    assert annotations["lyftlearn.io/model-uri"] == result["model_artifact_uri"]
    assert annotations["lyftlearn.io/image"] == result["image"] == validated["image"]
    # The model's asset event, for serving DAGs scheduled on it.
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        extras = session.scalars(
            select(AssetEvent.extra)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == "retrained_fraud_model")
        ).all()
    assert [extra["model_artifact_uri"] for extra in extras] == [result["model_artifact_uri"]]


def test_the_daily_retrain_backfilled_behind_a_newer_live_run_trains_each_day_once_and_serves_the_newest(
    aws, k8s, emulators
):
    dag = load("example_retrain_daily.py", "lyftlearn_retrain_daily")
    days = [dt.datetime(2026, 11, day, tzinfo=dt.timezone.utc) for day in (25, 26, 27, 28)]
    # The live schedule ran the newest day first; the backfill then runs the older days, newest first.
    live = dag.test(logical_date=days[-1], run_after=days[-1])
    succeeded(live, "churn.train", "churn.gate", "churn.deploy")
    newest = xcom_value(dag.dag_id, live.run_id, "churn.train")["model_artifact_uri"]
    for day in reversed(days[:-1]):
        dagrun = dag.test(logical_date=day, run_after=day)
        states = succeeded(dagrun, "churn.train")
        # Trained, but never deployed over the newer model: skipped with the reason.
        assert states["churn.gate"] == "skipped", states
        assert states["churn.deploy"] == "skipped", states
        gate = xcom_value(dag.dag_id, dagrun.run_id, "churn.gate")
        assert "never rolled back" in gate["reason"]
    jobs = aws.control.jobs()
    assert len(jobs) == len(days)  # every interval trained, exactly once
    assert len({job["HyperParameters"]["day"] for job in jobs}) == len(days)
    assert serving(k8s, "churn-model")["lyftlearn.io/model-uri"] == newest
    # A clear of a backfilled day adopts its job: still one job per day.
    again = dag.test(logical_date=days[0], run_after=days[0])
    succeeded(again, "churn.train")
    assert len(aws.control.jobs()) == len(days)


def test_the_daily_retrain_runs_without_a_logical_date_and_the_readme_backfill_command_is_accepted(
    aws, k8s, emulators
):
    dag = load("example_retrain_daily.py", "lyftlearn_retrain_daily")
    dagrun = dag.test(logical_date=None)  # also stores the DAG, as the DAG processor would
    succeeded(dagrun, "churn.train", "churn.gate", "churn.deploy")
    (job,) = aws.control.jobs()
    assert job["HyperParameters"]["day"] == dagrun.run_after.strftime("%Y-%m-%d")
    # The command as the README shows it, dry-run: Airflow parses it and lists the runs it would create.
    readme = (EXAMPLES.parent / "README.md").read_text()
    (command,) = re.findall(
        r"^airflow backfill create --dag-id lyftlearn_retrain_daily .*$", readme, re.MULTILINE
    )
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *shlex.split(command)[1:], "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2026-11-01" in result.stdout and "2026-11-07" in result.stdout, result.stdout[-3000:]


def test_several_models_each_retrain_and_serve_through_their_own_pipeline(aws, k8s, emulators):
    aws.control.autopilot(phases=FAST_JOBS, metrics={"validation:rmse": 0.3})
    dag = load("example_retrain_several_models.py", "lyftlearn_retrain_several_models")
    dagrun = dag.test(logical_date=None)
    states = succeeded(dagrun, "eta.train", "eta.gate", "eta.deploy", "supply.train", "supply.gate")
    assert len(aws.control.jobs()) == 2  # one job per model
    for name in ("eta", "supply"):
        trained = xcom_value(dag.dag_id, dagrun.run_id, f"{name}.train")
        assert trained["image"].split("@")[0].endswith(f"/{name}-model")
        assert states[f"{name}.deploy"] == "success", states
        assert serving(k8s, f"{name}-model")["lyftlearn.io/model-uri"] == trained["model_artifact_uri"]


def test_the_migration_example_trains_the_same_spec_as_a_pod(aws, k8s, emulators):
    returned = {"model_artifact_uri": "s3://lyftlearn-models/fraud/pod/model.tar.gz", "metrics": {"auc": 0.9}}
    k8s.on_pod(PodBehavior(xcom=returned), labels={"task_id": "train"})
    dag = load("example_train_on_kubernetes.py", "lyftlearn_train_on_kubernetes")
    dagrun = dag.test(logical_date=None)
    succeeded(dagrun, "train")
    result = xcom_value(dag.dag_id, dagrun.run_id, "train")
    assert (result["backend"], result["model_artifact_uri"]) == ("kubernetes", returned["model_artifact_uri"])
    assert result["data_interval"]["end"] is not None  # the manual-run interval reached the pod's contract
    assert aws.control.jobs() == []  # nothing ran on SageMaker
    created = [path for method, path in k8s.requests() if method == "POST" and path.endswith("/pods")]
    assert len(created) == 1, created  # one pod for the run


def test_two_dags_joined_by_the_models_asset(aws, k8s, emulators, monkeypatch):
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    aws.control.autopilot(phases=FAST_JOBS, metrics={"validation:mae": 1.9})
    training = load("example_model_asset_handoff.py", "lyftlearn_train_pricing_model")
    trained_run = training.test(logical_date=None)
    succeeded(trained_run, "train")
    trained = xcom_value(training.dag_id, trained_run.run_id, "train")
    with create_session() as session:
        event_id = session.scalar(
            select(AssetEvent.id)
            .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
            .where(AssetModel.name == "pricing_model")
            .order_by(AssetEvent.id.desc())
        )
    assert event_id is not None

    # The scheduler's one part in the hand-off: a run of the serving DAG that consumed the event (the
    # whole path through the scheduler runs in tests/e2e/test_asset_handoff.py on airflow standalone).
    import airflow.models.dagrun as dagrun_module

    create = dagrun_module.get_or_create_dagrun

    def consuming_the_event(**kwargs: Any) -> DagRun:
        run = create(**kwargs)
        session = kwargs["session"]
        run.consumed_asset_events.append(session.get(AssetEvent, event_id))
        session.commit()
        return run

    monkeypatch.setattr(dagrun_module, "get_or_create_dagrun", consuming_the_event)
    serving_dag = load("example_model_asset_handoff.py", "lyftlearn_serve_pricing_model")
    served_run = serving_dag.test(logical_date=None)
    succeeded(served_run, "gate", "validate", "deploy")
    deployed = xcom_value(serving_dag.dag_id, served_run.run_id, "deploy")
    assert (deployed["model_uri"], deployed["image"]) == (trained["model_artifact_uri"], trained["image"])
    assert serving(k8s, "pricing-model")["lyftlearn.io/training-job"] == trained["job_name"]
