"""P4: orchestration overhead of the whole loop on ``airflow standalone``, ours vs upstream operators.

One ``airflow standalone`` (scheduler, DAG processor, triggerer, API server; LocalExecutor, SQLite)
runs two DAGs from ``bench/p4_dags/p4_loops.py`` against both emulators:

- **ours**: ``TrainModelOperator`` → ``ValidateModelOperator`` → ``DeployModelOperator`` (patch the
  serving Deployment, wait for its rollout: from the worker for ``defer_after_seconds``, then deferred;
  ``--defer-after 0`` defers unless its first look finds the rollout over);
- **upstream**: ``SageMakerTrainingOperator`` (the same ``CreateTrainingJob`` request) →
  ``KubernetesPodOperator`` (the same validation pod) → ``KubernetesCreateResourceOperator`` (a new
  Deployment per run: upstream cannot update one and does not wait for a rollout, which flatters it).

All deferrable, all following their work every ``--interval`` seconds. Runs alternate ours/upstream,
one at a time. The work is the same for both and measured where it happens: the job from its
``CreationTime`` to its ``TrainingEndTime`` (the AWS emulator), the validation pod from its creation
to its container's end (the Kubernetes emulator, a fixed behaviour), the rollout as configured (a
pod's ready delay). **Overhead = the DAG run's wall time − that work**: scheduling, task start-up
(a fresh interpreter per try), deferral and resumption, the time between a job's end and its task
noticing, and what the operators do around their calls. Medians over the runs; ratio ours/upstream.
What both drivers of the loop share (emulators, environment, seeding, the DAGs' deploy task) is in
``bench/_standalone.py``.

    .venv/bin/python bench/p4_overhead.py [--runs 4] [--interval 2] [--job-seconds 8] [--defer-after S]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _standalone

DAGS = Path(__file__).resolve().parent / "p4_dags"
LOOPS = {"ours": "p4_ours", "upstream": "p4_upstream"}
POD_SECONDS = 2.0
POD = {"schedule_delay": 0.05, "start_delay": 0.1, "run_seconds": POD_SECONDS}
READY_DELAY = 0.1


def say(message: str) -> None:
    """Print one line of progress."""
    _standalone.say("p4", message)


def upstream_config() -> dict[str, Any]:
    """Return ours' rendering of the loop's spec as upstream's ``config`` (its name set per run)."""
    sys.path.insert(0, str(DAGS))
    from p4_loops import SPEC  # type: ignore[import-not-found]

    from lyftlearn_provider.rendering.sagemaker import render_training_job

    return dict(render_training_job(SPEC, job_name="up", max_runtime_seconds=3600).request)


def seed(emulated: _standalone.Emulated, job_seconds: float) -> None:
    """Seed the loop (image, jobs' timings, accounts, Deployment), the pods' and the rollout's behaviour."""
    from lyftlearn_provider.testing.k8s import PodBehavior
    from lyftlearn_provider.testing.k8s.behaviors import RolloutBehavior

    phases = {"Starting": 0.25, "Downloading": 0.25, "Training": 0.5}
    phases = {phase: share * job_seconds for phase, share in phases.items()}
    _standalone.seed_loop(
        emulated, tag="1", phases=phases, accounts=("lyftlearn-training", _standalone.SERVING_ACCOUNT)
    )
    emulated.cluster.on_pod(
        PodBehavior(xcom={"smoke_auc": 0.9}, **POD),
        predicate=lambda pod: "validate" in pod["metadata"]["name"],
    )
    emulated.cluster.on_rollout(_standalone.DEPLOYMENT, RolloutBehavior(ready_delay=READY_DELAY))


def run_once(airflow: Any, dag_id: str, run_id: str, timeout: float = 300) -> dict[str, Any]:
    """Trigger one run, wait for it, return its state, wall time and task states."""
    from lyftlearn_provider.testing.standalone import wait_for

    airflow.airflow("dags", "trigger", dag_id, "--run-id", run_id)

    def ended() -> dict[str, Any] | None:
        runs = _standalone.dag_runs(dag_id, run_id)
        if not runs or runs[0]["state"] not in ("success", "failed") or runs[0]["end_date"] is None:
            return None
        run = runs[0]
        tis = _standalone.task_instances(dag_id, run_id=run_id)
        return {
            "state": run["state"],
            "wall": (run["end_date"] - run["start_date"]).total_seconds(),
            "tasks": {ti["task_id"]: ti["state"] for ti in tis},
            "retries": sum(max(0, ti["try_number"] - 1) for ti in tis),
            # Each task's span (its last try's start to its end), for where the overhead goes.
            "spans": {
                ti["task_id"]: (ti["end_date"] - ti["start_date"]).total_seconds()
                for ti in tis
                if ti["start_date"] and ti["end_date"]
            },
        }

    return wait_for(f"{dag_id} {run_id}", ended, timeout, interval=0.5)


def job_seconds_of(aws: Any, name: str) -> float:
    """Return the training job's own time, creation to end, as the AWS emulator recorded it."""
    job = aws.control.job(name)
    created, ended = job["CreationTime"], job["TrainingEndTime"]
    return float(ended) - float(created)


def measure(
    runs: int, interval: float, job_seconds: float, home: Path, defer_after: float | None = None
) -> dict[str, list[dict[str, float]]]:
    """Run the loops in one standalone; return each loop's per-run wall time, work and overhead."""
    results: dict[str, list[dict[str, float]]] = {loop: [] for loop in LOOPS}
    knobs = {"P4_INTERVAL": str(interval)}
    if defer_after is not None:
        knobs["P4_DEFER_AFTER"] = str(defer_after)
    with _standalone.emulated_airflow(home, DAGS, knobs) as emulated:
        emulated.env["P4_UPSTREAM_CONFIG"] = os.environ["P4_UPSTREAM_CONFIG"] = json.dumps(upstream_config())
        seed(emulated, job_seconds)
        from lyftlearn_provider.naming import training_job_name

        with emulated.standalone() as airflow:
            airflow.wait_until_parsed(*LOOPS.values())
            airflow.unpause(*LOOPS.values())
            # One unmeasured run each: the first task processes pay imports and caches a worker keeps.
            for index in range(-1, runs):
                order = list(LOOPS.items()) if index % 2 else list(reversed(LOOPS.items()))
                for loop, dag_id in order:
                    run_id = f"p4-{loop[:2]}-{index + 1}"
                    outcome = run_once(airflow, dag_id, run_id)
                    if outcome["state"] != "success":
                        raise RuntimeError(f"{dag_id} {run_id} ended {outcome['state']}: {outcome['tasks']}")
                    name = (
                        training_job_name(dag_id=dag_id, task_id="train", run_id=run_id)
                        if loop == "ours"
                        else f"up-{run_id}"
                    )
                    work = job_seconds_of(emulated.aws, name) + sum(POD.values()) + READY_DELAY
                    say(
                        f"{loop:<8} {run_id}: wall {outcome['wall']:.1f}s, work {work:.1f}s, "
                        f"retries {outcome['retries']}"
                    )
                    if index >= 0:
                        results[loop].append(
                            {
                                "wall": outcome["wall"],
                                "work": work,
                                "overhead": outcome["wall"] - work,
                                "retries": outcome["retries"],
                                **{f"span:{task}": span for task, span in outcome["spans"].items()},
                            }
                        )
    return results


def main(argv: list[str] | None = None) -> int:
    """Measure and print the side-by-side table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=4, help="measured runs per loop (default 4)")
    parser.add_argument("--interval", type=float, default=2.0, help="every operator's poll interval (s)")
    parser.add_argument("--job-seconds", type=float, default=8.0, help="each training job's length (s)")
    parser.add_argument(
        "--defer-after",
        type=float,
        default=None,
        help="our deploy's defer_after_seconds (default: the operator's; 0: only its first look)",
    )
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="lyftlearn_p4_"))
    started = time.monotonic()
    load_before = os.getloadavg()
    results = measure(args.runs, args.interval, args.job_seconds, home, args.defer_after)
    load_after = os.getloadavg()

    def median(loop: str, key: str) -> float:
        return statistics.median(row[key] for row in results[loop])

    print()
    print(
        "P4 whole-loop orchestration overhead on airflow standalone (LocalExecutor, SQLite), "
        f"{args.runs} runs each, interval {args.interval:g}s, job {args.job_seconds:g}s, pod {POD_SECONDS:g}s"
    )
    defer_after = "the operator's default" if args.defer_after is None else f"{args.defer_after:g}s"
    print(
        f"our deploy's defer_after_seconds: {defer_after}; load average (1/5/15 min) before "
        f"{'/'.join(f'{x:.2f}' for x in load_before)}, after {'/'.join(f'{x:.2f}' for x in load_after)}"
    )
    print(f"{'':<22}{'ours':>10}{'upstream':>10}{'ours/upstream':>15}")
    for key, label in (("wall", "run wall (s)"), ("work", "work (s)"), ("overhead", "overhead (s)")):
        ours, upstream = median("ours", key), median("upstream", key)
        print(f"{label:<22}{ours:>10.1f}{upstream:>10.1f}{ours / upstream:>14.2f}x")
    for task in ("train", "validate", "deploy"):
        key = f"span:{task}"
        ours, upstream = median("ours", key), median("upstream", key)
        print(f"{task + ' task span (s)':<22}{ours:>10.1f}{upstream:>10.1f}{ours / upstream:>14.2f}x")
    for loop in LOOPS:
        spread = sorted(round(row["overhead"], 1) for row in results[loop])
        retries = sum(int(row["retries"]) for row in results[loop])
        print(f"overhead per run, {loop:<9}{spread}  (tries retried: {retries})")
    print(
        "upstream's deploy creates a Deployment and returns without waiting for its rollout (ours waits and "
        "can roll back);\nits overhead therefore leaves out the rollout wait ours pays. "
        f"(bench took {time.monotonic() - started:.0f}s; its files: {home})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
