"""Run the 15-minute retraining example end to end on Airflow itself, against both local emulators.

``make demo`` runs this: it starts the AWS emulator (moto's server plus our SageMaker training-job
lifecycle on autopilot) and the Kubernetes emulator, writes Airflow's settings to
``.airflow-demo/airflow.cfg`` and its connections to its database, starts ``airflow standalone``
(scheduler, DAG processor, triggerer, API server; SQLite) with the example DAGs, unpauses
``lyftlearn_retrain_every_15_minutes`` so the scheduler starts its latest 15-minute interval, and
reports what happened: every task of the run, the training job with its start-up breakdown, the
deployed revision (when the DAG deploys) and where the run is in the UI. It then clears the training
task — as an operator in the UI would — and shows that the retry adopted the finished job instead of
paying for a second one. Everything runs on this machine; nothing reaches AWS or a cluster.

``make demo-ui`` (``--ui``) does the same on fixed ports (UI on 28080, emulators on 28081 and 28082)
and keeps everything up in the background until ``make demo-stop`` (``--stop``). The settings stay in
``.airflow-demo``: ``AIRFLOW_HOME=.airflow-demo airflow dags list`` (or any other command) works
against it, then and later.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lyftlearn_provider.testing.standalone import (
    Standalone,
    free_port,
    store_connections,
    write_config,
)
from lyftlearn_provider.testing.standalone import wait_for as standalone_wait_for

REPO = Path(__file__).resolve().parents[2]
DAG_ID = "lyftlearn_retrain_every_15_minutes"
HOME = REPO / ".airflow-demo"
PID_FILE = HOME / "demo.pid"
LOG_FILE = HOME / "demo.log"
#: Fixed ports of ``--ui``: the UI and API, the AWS emulator, the Kubernetes emulator.
UI_PORTS = (28080, 28081, 28082)
READY = "[demo] ready"
NAMESPACE = "default"


def say(message: str) -> None:
    """Print one line of the demo's story."""
    print(f"[demo] {message}", flush=True)


def wait_for(what: str, check: Any, timeout: float, interval: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail the demo after ``timeout`` seconds."""
    try:
        return standalone_wait_for(what, check, timeout, interval)
    except TimeoutError as error:
        raise SystemExit(f"[demo] {error}") from None


@dataclass(frozen=True)
class Emulators:
    """The two emulators the demo's Airflow talks to, and the kubeconfig of the Kubernetes one."""

    aws: Any
    k8s: Any
    kubeconfig: Path

    @property
    def cluster(self) -> Any:
        """Return a handle to look inside the emulated cluster."""
        from lyftlearn_provider.testing.k8s.cluster import EmulatedCluster

        return EmulatedCluster(self.k8s, self.kubeconfig, NAMESPACE)


@contextlib.contextmanager
def emulators(aws_port: int, k8s_port: int) -> Iterator[Emulators]:
    """Start the AWS and Kubernetes emulators on these ports (0: any free port) for a ``with`` block."""
    from lyftlearn_provider.testing.aws import AwsEmulator
    from lyftlearn_provider.testing.k8s.server import EmulatorServer

    with AwsEmulator(port=aws_port) as aws, EmulatorServer(port=k8s_port) as k8s:
        kubeconfig = k8s.write_kubeconfig(HOME / "kubeconfig", NAMESPACE)
        yield Emulators(aws, k8s, kubeconfig)


def seed_emulators(emulators: Emulators) -> None:
    """Put into the emulators what the example DAGs expect to find in a company's AWS account and cluster.

    What the examples need lives in :func:`lyftlearn_provider.testing.examples.prepare` (images in ECR
    with SOCI indexes, buckets, the serving namespace and Deployments); here only SageMaker's simulated
    job timings and metrics are added.
    """
    from lyftlearn_provider.testing.examples import prepare

    emulators.aws.control.autopilot(
        phases={"Starting": 3.0, "Downloading": 4.0, "Training": 6.0, "Uploading": 2.0},
        metrics={"validation:auc": 0.913, "train:loss": 0.187},
    )
    prepared = prepare(aws_env=emulators.aws.env(), kubeconfig=emulators.kubeconfig)
    for image, digest in sorted(prepared["images"].items()):
        say(f"pushed {image} ({digest}) with a SOCI v2 index to the emulator's ECR")
    for deployment in prepared["deployments"]:
        say(f"serving Deployment {deployment} in the Kubernetes emulator")


def configure_airflow(emulators: Emulators, api_port: int) -> dict[str, str]:
    """Write Airflow's settings and connections where ``airflow`` finds them; return the processes' env."""
    k8s_url = emulators.k8s.url
    write_config(
        HOME,
        REPO / "example_dags",
        port=api_port,
        extra={
            "lyftlearn": {
                # The "Serving Deployment" link: here the emulator's API answers with the Deployment.
                "deployment_url_template": (
                    f"{k8s_url}/apis/apps/v1/namespaces/{{namespace}}/deployments/{{name}}"
                )
            }
        },
    )
    env = {
        key: value
        for key, value in os.environ.items()
        # Airflow's settings come from airflow.cfg; the cluster from the connection's kubeconfig.
        if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))
        and key not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")
    }
    env.update(
        {
            "AIRFLOW_HOME": str(HOME),
            "PYTHONUNBUFFERED": "1",
            # airflow standalone starts its components as `airflow ...` from PATH.
            "PATH": os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))),
            # The emulator accepts any credentials; boto3 in this process needs some to sign with.
            **{k: v for k, v in emulators.aws.env().items() if not k.startswith("AIRFLOW_CONN_")},
        }
    )
    os.environ.clear()
    os.environ.update(env)  # this process reads the same metadata database and emulators
    subprocess.run(
        [sys.executable, "-m", "airflow", "db", "migrate"], env=env, check=True, capture_output=True
    )
    aws = emulators.aws
    store_connections(
        {
            "aws_default": {
                "conn_type": "aws",
                "login": "testing",
                "password": "testing",
                "extra": {"region_name": aws.region, "endpoint_url": aws.endpoint_url},
            },
            "kubernetes_default": {
                "conn_type": "kubernetes",
                "extra": {"namespace": NAMESPACE, "kube_config_path": str(emulators.kubeconfig)},
            },
        }
    )
    say(
        f"Airflow settings in {HOME / 'airflow.cfg'}; "
        "connections aws_default and kubernetes_default in its database"
    )
    return env


def run_demo(*, ports: tuple[int, int, int] | None, keep_up: bool) -> int:
    """Run the story; with ``keep_up``, leave everything running until SIGTERM. Return the exit status."""
    api_port, aws_port, k8s_port = ports or (free_port(), 0, 0)
    with emulators(aws_port, k8s_port) as emulated:
        say(f"AWS emulator on {emulated.aws.endpoint_url}; Kubernetes emulator on {emulated.k8s.url}")
        env = configure_airflow(emulated, api_port)
        seed_emulators(emulated)
        ui = f"http://127.0.0.1:{api_port}"
        try:
            with Standalone(env, HOME / "standalone.log", migrate=False) as airflow:
                status = run_story(airflow, emulated, ui)
                if keep_up:
                    say(f"the Airflow UI: {ui}/dags/{DAG_ID} (no login: every visitor is an admin here)")
                    say(f"the same installation from a shell: AIRFLOW_HOME={HOME} airflow dags list")
                    say("stop everything with: make demo-stop")
                    say(READY.removeprefix("[demo] "))
                    signal.pause()
                say("to keep it all up and open the UI: make demo-ui (then make demo-stop)")
                return status
        finally:
            say(f"Airflow stopped; its logs are under {HOME}")


def run_story(airflow: Standalone, emulated: Emulators, ui: str) -> int:
    """Drive the example DAG through a scheduled run and a clear; print what happened."""
    from lyftlearn_provider.testing._airflow_db import clear_task, latest_run, try_number

    airflow.wait_until_parsed(DAG_ID)
    say(f"Airflow standalone is up; unpausing {DAG_ID} (every 15 minutes, catchup=False)")
    airflow.unpause(DAG_ID)
    run = wait_for("the scheduler to start a run", lambda: latest_run(DAG_ID), timeout=120)
    say(
        f"scheduler started run {run['run_id']} for interval {run['data_interval_start']} .. "
        f"{run['data_interval_end']}; follow it at {ui}/dags/{DAG_ID}/runs/{run['run_id']}"
    )
    run = wait_for("the run to finish", lambda: _finished(latest_run(DAG_ID)), timeout=420)
    say(f"run {run['run_id']} ended {run['state']}")
    report = report_run(emulated, run["run_id"])
    if run["state"] != "success" or report.training_task is None:
        return 1

    train = report.training_task
    tries = try_number(DAG_ID, run["run_id"], train)
    say(f"clearing {train}, as an operator would in the UI ...")
    clear_task(DAG_ID, run["run_id"], train)
    rerun = wait_for(
        "the cleared task to finish",
        lambda: try_number(DAG_ID, run["run_id"], train) > tries and _finished(latest_run(DAG_ID)),
        timeout=300,
    )
    from lyftlearn_provider.testing._airflow_db import xcom_value

    again = xcom_value(DAG_ID, rerun["run_id"], train)
    creates = len(emulated.aws.control.calls(action="CreateTrainingJob"))
    say(
        f"after the clear: run {rerun['state']}, job {again and again['job_name']} "
        f"(adopted={again and again['adopted']}); CreateTrainingJob calls in total: {creates}"
    )
    ok = rerun["state"] == "success" and creates == 1 and bool(again) and again["adopted"]
    say(f"the run in the UI: {ui}/dags/{DAG_ID}/runs/{run['run_id']}")
    say("demo " + ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


def _finished(run: dict[str, Any] | None) -> dict[str, Any] | None:
    return run if run and run["state"] in ("success", "failed") else None


@dataclass
class RunReport:
    """What :func:`report_run` found in a run: the task that trained, if any."""

    training_task: str | None = None


def is_training_result(value: Any) -> bool:
    """Tell whether a task's result is a training job's (``TrainingResult.to_xcom()``)."""
    return isinstance(value, dict) and {"job_name", "startup_seconds", "backend"} <= set(value)


def is_deploy_result(value: Any) -> bool:
    """Tell whether a task's result is a deploy task's."""
    return isinstance(value, dict) and {"deployment", "namespace", "model_uri"} <= set(value)


def report_run(emulated: Emulators, run_id: str) -> RunReport:
    """Print every task of the run, the training job and, when the run deployed, the serving revision."""
    from lyftlearn_provider.testing._airflow_db import task_instances, xcom_value

    report = RunReport()
    tasks = task_instances(DAG_ID, run_id)
    width = max((len(ti["label"]) for ti in tasks), default=4)
    say("tasks of the run:")
    for ti in tasks:
        duration = f"{ti['duration']:.1f}s" if ti["duration"] is not None else "-"
        say(f"  {ti['label']:<{width}}  {ti['state']:<14} try {ti['try_number']}  {duration}")
    for ti in tasks:
        result = xcom_value(DAG_ID, run_id, ti["task_id"])
        if is_training_result(result) and report.training_task is None:
            report.training_task = ti["task_id"]
            report_job(emulated, ti["task_id"], result)
        elif is_deploy_result(result):
            report_deployment(emulated, ti["task_id"], result)
    return report


def report_job(emulated: Emulators, task_id: str, result: dict[str, Any]) -> None:
    """Print the job as SageMaker (the emulator) saw it and as the task reported it."""
    if result.get("backend") == "sagemaker":
        job = emulated.aws.control.job(result["job_name"])
        states = " -> ".join(t["Status"] for t in job.get("SecondaryStatusTransitions", []))
        say(
            f"{task_id} trained with SageMaker job {result['job_name']}: "
            f"{job['TrainingJobStatus']} ({states})"
        )
    else:
        say(f"{task_id} trained in pod {result['job_name']}: {result['status']}")
    say(f"  image {result['image']} (SOCI index: {result.get('soci') or 'none'})")
    breakdown = ", ".join(f"{phase} {seconds}s" for phase, seconds in result["startup_seconds"].items())
    say(
        f"  start-up {result['startup_total_seconds']}s ({breakdown}); "
        f"training {result['training_seconds']}s; billable {result.get('billable_seconds')}s"
    )
    say(f"  metrics {json.dumps(result['final_metrics'])}; model {result['model_artifact_uri']}")


def report_deployment(emulated: Emulators, task_id: str, result: dict[str, Any]) -> None:
    """Print what the deploy task did and the Deployment's revision as the cluster (the emulator) shows it."""
    namespace, name = result["namespace"], result["deployment"]
    say(f"{task_id}: {result['status']} {namespace}/{name} ({result.get('reason') or result.get('rollout')})")
    deployment = emulated.cluster.get("deployments", name, namespace)
    if deployment is None:
        say(f"  Deployment {namespace}/{name} does not exist")
        return
    annotations = deployment["metadata"].get("annotations", {})
    images = [c["image"] for c in deployment["spec"]["template"]["spec"]["containers"]]
    say(
        f"  serving revision {annotations.get('deployment.kubernetes.io/revision')}: "
        f"{', '.join(images)}, model {result['model_uri']}"
    )


# ---------------------------------------------------------------------------------- the background demo
def running_pid() -> int | None:
    """Return the pid of a background demo that is still running, or None."""
    try:
        pid = int(PID_FILE.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


def start_in_background() -> int:
    """Start the ``--ui`` demo as a background process, echo its story until it is ready, and return."""
    LOG_FILE.parent.mkdir(parents=True, exist_ok=True)
    with LOG_FILE.open("wb") as log:
        child = subprocess.Popen(
            [sys.executable, "-m", "lyftlearn_provider.testing.demo", "--ui", "--foreground"],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in this shell does not reach it; demo-stop does
        )
    PID_FILE.write_text(str(child.pid))
    offset = 0
    while True:
        with LOG_FILE.open("rb") as log:
            log.seek(offset)
            chunk = log.read()
        offset += len(chunk)
        for line in chunk.decode(errors="replace").splitlines():
            if line.startswith("[demo]") and line != READY:
                print(line, flush=True)
        if READY.encode() in chunk:
            print(f"[demo] running in the background (pid {child.pid}); its log: {LOG_FILE}", flush=True)
            return 0
        if child.poll() is not None:
            print(f"[demo] the demo ended with status {child.returncode}; see {LOG_FILE}", flush=True)
            return child.returncode or 1
        time.sleep(0.5)


def stop() -> int:
    """Stop a background demo (Airflow and both emulators)."""
    pid = running_pid()
    if pid is None:
        say("no demo is running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.5)
    else:
        os.kill(pid, signal.SIGKILL)
    PID_FILE.unlink(missing_ok=True)
    say(f"stopped the demo (pid {pid}); its settings and logs stay in {HOME}")
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m lyftlearn_provider.testing.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--ui", action="store_true", help="fixed ports (UI on 28080); keep everything up")
    parser.add_argument("--stop", action="store_true", help="stop a demo started with --ui")
    parser.add_argument("--foreground", action="store_true", help="with --ui: stay in the foreground")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; return the process exit status."""
    args = parse_args(argv)
    if args.stop:
        return stop()
    pid = running_pid()
    if pid is not None and pid != os.getpid():
        say(
            f"a demo is already running (pid {pid}): open http://127.0.0.1:{UI_PORTS[0]}, "
            "or stop it with make demo-stop"
        )
        return 1
    if args.ui and not args.foreground:
        if HOME.exists():
            shutil.rmtree(HOME)
        return start_in_background()
    if not args.ui:
        if HOME.exists():
            shutil.rmtree(HOME)
    HOME.mkdir(parents=True, exist_ok=True)
    return run_demo(ports=UI_PORTS if args.ui else None, keep_up=args.ui)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(main())
