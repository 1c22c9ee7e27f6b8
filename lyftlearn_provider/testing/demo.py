"""Run the 15-minute retraining example end to end on Airflow itself, against the local AWS emulator.

``make demo`` runs this: it starts the AWS emulator (moto's server plus our SageMaker training-job
lifecycle on autopilot), then ``airflow standalone`` (scheduler, DAG processor, triggerer, API
server; SQLite) with the example DAGs, unpauses ``lyftlearn_retrain_every_15_minutes`` so the
scheduler starts its latest 15-minute interval, and reports what happened: the job's name, its
states, the start-up breakdown and the task's result. It then clears the training task — as an
operator in the UI would — and shows that the retry adopted the finished job instead of paying for a
second one. Everything runs on this machine; nothing reaches AWS.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from lyftlearn_provider.testing.standalone import Standalone
from lyftlearn_provider.testing.standalone import airflow_env as standalone_env
from lyftlearn_provider.testing.standalone import wait_for as standalone_wait_for

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "lyftlearn_retrain_every_15_minutes"
HOME = REPO / ".airflow-demo"


def say(message: str) -> None:
    """Print one line of the demo's story."""
    print(f"[demo] {message}", flush=True)


def airflow_env(aws_env: dict[str, str]) -> dict[str, str]:
    """Return the environment of the Airflow processes: the demo's home, the example DAGs, the emulator."""
    return standalone_env(HOME, REPO / "example_dags", aws_env)


def wait_for(what: str, check: Any, timeout: float, interval: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail the demo after ``timeout`` seconds."""
    try:
        return standalone_wait_for(what, check, timeout, interval)
    except TimeoutError as error:
        raise SystemExit(f"[demo] {error}") from None


def main() -> int:
    """Run the demo; return the process exit status."""
    if HOME.exists():
        shutil.rmtree(HOME)
    HOME.mkdir()
    import boto3

    from lyftlearn_provider.testing.aws import AwsEmulator
    from lyftlearn_provider.testing.aws.images import push_image

    with AwsEmulator() as aws:
        aws.control.autopilot(
            phases={"Starting": 3.0, "Downloading": 4.0, "Training": 6.0, "Uploading": 2.0},
            metrics={"validation:auc": 0.913, "train:loss": 0.187},
        )
        say(f"AWS emulator on {aws.endpoint_url} (SageMaker training jobs on autopilot)")
        env = airflow_env(aws.env())
        os.environ.update(env)  # this process reads the same metadata database below
        digest = push_image(boto3.client("ecr"), "fraud-model", "2026.11.28", soci="v2")
        say(f"pushed fraud-model:2026.11.28 ({digest}) with a SOCI v2 index to the emulator's ECR")
        try:
            with Standalone(env, HOME / "standalone.log"):
                return run_story(aws, env)
        finally:
            say(f"Airflow stopped; its logs are under {HOME}")


def run_story(aws: Any, env: dict[str, str]) -> int:
    """Drive the example DAG through a scheduled run and a clear; print what happened."""
    from lyftlearn_provider.testing._airflow_db import (
        clear_task,
        dag_is_parsed,
        latest_run,
        task_states,
        try_number,
        xcom_value,
    )

    wait_for("the DAG to be parsed", lambda: dag_is_parsed(DAG_ID), timeout=180)
    say(f"Airflow standalone is up; unpausing {DAG_ID} (every 15 minutes, catchup=False)")
    subprocess.run(
        [sys.executable, "-m", "airflow", "dags", "unpause", DAG_ID],
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    run = wait_for("the scheduler to start a run", lambda: latest_run(DAG_ID), timeout=120)
    say(
        f"scheduler started run {run['run_id']} for interval {run['data_interval_start']} .. "
        f"{run['data_interval_end']}"
    )
    run = wait_for("the run to finish", lambda: _finished(latest_run(DAG_ID)), timeout=300)
    say(f"run ended {run['state']}; task states {task_states(DAG_ID, run['run_id'])}")
    result = xcom_value(DAG_ID, run["run_id"], "train")
    report_job(aws, result)
    if run["state"] != "success":
        return 1

    tries = try_number(DAG_ID, run["run_id"], "train")
    say("clearing the training task, as an operator would in the UI ...")
    clear_task(DAG_ID, run["run_id"], "train")
    rerun = wait_for(
        "the cleared task to finish",
        lambda: try_number(DAG_ID, run["run_id"], "train") > tries and _finished(latest_run(DAG_ID)),
        timeout=300,
    )
    again = xcom_value(DAG_ID, rerun["run_id"], "train")
    creates = len(aws.control.calls(action="CreateTrainingJob"))
    say(
        f"after the clear: run {rerun['state']}, job {again and again['job_name']} "
        f"(adopted={again and again['adopted']}); CreateTrainingJob calls in total: {creates}"
    )
    ok = rerun["state"] == "success" and creates == 1 and bool(again) and again["adopted"]
    say("demo " + ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


def _finished(run: dict[str, Any] | None) -> dict[str, Any] | None:
    return run if run and run["state"] in ("success", "failed") else None


def report_job(aws: Any, result: dict[str, Any] | None) -> None:
    """Print the job as SageMaker (the emulator) saw it and as the task reported it."""
    if not result:
        say("the training task pushed no result")
        return
    job = aws.control.job(result["job_name"])
    states = " -> ".join(t["Status"] for t in job.get("SecondaryStatusTransitions", []))
    say(f"training job {result['job_name']}: {job['TrainingJobStatus']} ({states})")
    say(f"image {result['image']} (SOCI index: {result['soci'] or 'none'})")
    say(
        f"start-up breakdown (s): {result['startup_seconds']} = {result['startup_total_seconds']}s; "
        f"training {result['training_seconds']}s; billable {result['billable_seconds']}s; "
        f"warm pool {result['warm_pool']}"
    )
    say("task result (XCom):\n" + json.dumps(result, indent=2))


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
