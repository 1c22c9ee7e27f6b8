"""P1 (mixed): half training, half batch (Processing) jobs deferred in one event loop, ours vs upstream.

The same method as ``bench/tracking.py`` (whose helpers this imports: the emulator in its own process,
the scaled budget, ``track``, the latency and CPU accounting), with N/2 training jobs and N/2 processing
jobs followed side by side in ONE event loop (a stand-in for one triggerer process):

* ``upstream``: the amazon provider's ``SageMakerTrigger`` with ``job_type="training"`` or
  ``job_type="processing"`` (a botocore waiter per job), ``waiter_delay`` = the interval;
* ``shared``: ``TrainingJobTrigger``/``BatchJobTrigger(source="shared")``: one batched listing watcher per
  job kind (ListTrainingJobs, ListProcessingJobs), both under the process's one call budget;
* ``events``: ``source="events"``: one SQS consumer of the prefix's queue for both kinds (the route's rule
  forwards both detail-types), the watchers reconciling every 10 intervals;
* ``poll`` (reference, off by default): one Describe per job per interval.

Quote the real-time figures (``--scale 1``, jobs of 1–4 minutes): a scaled run (k > 1) divides every
interval by k but not the SQS batch window or HTTP costs, so it flatters the events source's latency
less than it inflates everyone's CPU per job-hour. Calls per job-hour, CPU per job and notice latency
(event observed − the job's end time in the emulator) are reported per tracker, with ratios to upstream,
and split by kind.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tracking import (  # noqa: E402 - bench/ is not a package: its sibling is imported by path
    DEFAULT_INTERVAL,
    EVENTS_RECONCILE_INTERVALS,
    Result,
    check_event,
    create_jobs,
    emulator_process,
    percentile,
    point_at,
    track,
    trigger_factories,
)

KINDS = ("training", "processing")


def kind_of(name: str) -> str:
    return "processing" if "-batch-" in name else "training"


def mixed_factories(interval: float) -> dict[str, Callable[[str], Any]]:
    """Return, per tracker, a factory that builds the right trigger for a training or a batch job."""
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

    from lyftlearn_provider.triggers.training import BatchJobTrigger

    training = trigger_factories(interval)
    batch: dict[str, Callable[[str], Any]] = {
        "upstream": lambda name: SageMakerTrigger(
            job_name=name, job_type="processing", waiter_delay=interval
        ),
        "poll": lambda name: BatchJobTrigger(name, poll_interval=interval, source="poll"),
        "shared": lambda name: BatchJobTrigger(name, poll_interval=interval, source="shared"),
        "events": lambda name: BatchJobTrigger(
            name,
            poll_interval=interval * EVENTS_RECONCILE_INTERVALS,
            source="events",
            queue_url=os.environ["LYFTLEARN_BENCH_QUEUE_URL"],
            job_name_prefix="ll",
        ),
    }

    def factory(tracker: str) -> Callable[[str], Any]:
        def make(name: str) -> Any:
            chosen = batch[tracker] if kind_of(name) == "processing" else training[tracker]
            assert chosen is not None
            return chosen(name)

        return make

    return {tracker: factory(tracker) for tracker in batch}


def run_mixed(tracker: str, factory: Callable[[str], Any], control: Any, url: str, args: Any) -> dict:
    """Reset the emulator, create N/2 jobs of each kind and follow all of them with ``tracker``."""
    half = args.jobs // 2
    names = [f"ll-bench-{tracker}-train-{i:05d}" for i in range(args.jobs - half)]
    names += [f"ll-bench-{tracker}-batch-{i:05d}" for i in range(half)]
    control.reset()
    if tracker == "events":
        from lyftlearn_provider.hooks.events import EventRouteHook

        route = EventRouteHook(aws_conn_id="aws_default").ensure_route("ll")
        os.environ["LYFTLEARN_BENCH_QUEUE_URL"] = route["queue_url"]
    create_jobs(url, [n for n in names if kind_of(n) == "training"])
    create_jobs(url, [n for n in names if kind_of(n) == "processing"], kind="processing")
    control.reset_calls()
    try:
        tracked = asyncio.run(track(factory, names, control, args))
    except SystemExit as error:
        raise SystemExit(f"{tracker}: {error}") from None
    ended: dict[str, tuple[str, float]] = {}
    for job in control.jobs():
        ended[job["TrainingJobName"]] = (job["TrainingJobStatus"], job["TrainingEndTime"])
    for job in control.processing().jobs():
        ended[job["ProcessingJobName"]] = (job["ProcessingJobStatus"], job["ProcessingEndTime"])
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    job_seconds = 0.0
    for name in names:
        status, end = ended[name]
        event = tracked.events.get(name)
        check_event(tracker, name, event and event[1], status)
        observed = tracked.events[name][0]
        latencies[kind_of(name)].append(observed - end)
        job_seconds += observed - tracked.start_wall
    calls = [
        call
        for call in control.calls()
        if call["service"] in ("sagemaker", "sqs") and call["t"] >= tracked.start_mono
    ]
    result = Result(
        name=tracker,
        jobs=len(names),
        window=tracked.window,
        job_seconds=job_seconds,
        cpu=tracked.cpu,
        calls=Counter(call["action"] for call in calls),
        latencies=latencies["training"] + latencies["processing"],
        startup=tracked.startup,
        startup_cpu=tracked.startup_cpu,
    )
    return {"result": result, "by_kind": latencies}


def report(runs: dict[str, dict], args: Any, took: float) -> None:
    k = args.scale
    interval = DEFAULT_INTERVAL / k
    lo, hi = args.training_seconds
    print("P1 mixed: N concurrent deferred jobs, half training, half batch (Processing), in one event loop")
    print(
        f"  N = {args.jobs}; k = {k:g} (interval {interval:g} s{', real time' if k == 1 else ''}); jobs run "
        f"U({lo:g}, {hi:g}) bench s = {lo * k / 60:g}-{hi * k / 60:g} min unscaled; seed {args.seed}"
    )
    print(
        "  calls/job-h = SageMaker + SQS calls in the window / (sum of tracked job-seconds x k / 3600); "
        "CPU = this process's CPU over the window; latency = event observed - job's end time"
    )
    print()
    print(
        f"  {'tracker':9} {'calls':>7} {'calls/job-h':>11} {'x upstr':>8} {'CPU/job':>9} {'x upstr':>8} "
        f"{'p50 s':>7} {'p99 s':>7} {'x upstr p99':>11} {'train p99':>9} {'batch p99':>9}"
    )
    upstream = runs.get("upstream", {}).get("result")
    for name, run in runs.items():
        result: Result = run["result"]
        rate = result.calls_per_job_hour(k)
        cpu = result.cpu / result.jobs
        p50, p99 = percentile(result.latencies, 50) * k, percentile(result.latencies, 99) * k
        if upstream is not None:
            call_ratio = rate / upstream.calls_per_job_hour(k)
            cpu_ratio = cpu / (upstream.cpu / upstream.jobs)
            lat_ratio = p99 / (percentile(upstream.latencies, 99) * k)
        else:
            call_ratio = cpu_ratio = lat_ratio = float("nan")
        train = percentile(run["by_kind"]["training"], 99) * k
        batch = percentile(run["by_kind"]["processing"], 99) * k
        print(
            f"  {name:9} {result.total_calls:7d} {rate:11.1f} {call_ratio:8.3f} {cpu * 1000:7.2f}ms "
            f"{cpu_ratio:8.3f} {p50:7.2f} {p99:7.2f} {lat_ratio:11.3f} {train:9.2f} {batch:9.2f}"
        )
    print()
    print("  Calls by action:")
    for name, run in runs.items():
        calls = run["result"].calls
        print(f"    {name:9} " + ", ".join(f"{a} x{c}" for a, c in sorted(calls.items())))
    print("  Every trigger yielded exactly one event with its job's true terminal status.")
    print(f"  (run took {took:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--jobs", type=int, default=1000, help="concurrent jobs per tracker, half of each kind"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="time scale k (1: real time)")
    parser.add_argument(
        "--training-seconds", type=float, nargs=2, default=(60.0, 240.0), metavar=("LO", "HI")
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trackers", nargs="+", default=["upstream", "shared", "events"])
    args = parser.parse_args()
    if args.jobs < 2 or args.scale <= 0 or not 0 <= args.training_seconds[0] <= args.training_seconds[1]:
        parser.error("need --jobs >= 2, --scale > 0 and 0 <= LO <= HI")
    began = time.monotonic()
    runs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="lyftlearn-bench-p1-mixed-") as temporary:
        with emulator_process(Path(temporary)) as url:
            point_at(url, args.scale)
            logging.disable(logging.INFO)
            from lyftlearn_provider.testing.aws import EmulatorControl

            control = EmulatorControl(url, timeout=120)
            factories = mixed_factories(DEFAULT_INTERVAL / args.scale)
            for tracker in args.trackers:
                runs[tracker] = run_mixed(tracker, factories[tracker], control, url, args)
                print(
                    f"  ... {tracker} done at {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True
                )
    report(runs, args, time.monotonic() - began)


if __name__ == "__main__":
    main()
