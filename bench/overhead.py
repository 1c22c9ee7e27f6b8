"""P3: overhead per cycle of our TrainModelOperator vs the amazon provider's SageMakerTrainingOperator.

Two measures, side by side in one run:

1. task start -> ``CreateTrainingJob``: from the moment ``execute`` begins (a ``pre_execute`` hook in the
   task's process takes ``time.time()``) to the moment the emulator received the request (its call record,
   ``time.monotonic()`` in this process, converted to epoch seconds here).
2. job terminal -> task knows: from the moment this script completed the job through the emulator's
   control API to the moment ``execute`` (or, when deferrable, ``execute_complete``) returned (a
   ``post_execute`` hook).

Each operator gets a task host: a fresh interpreter with its own AIRFLOW_HOME (SQLite metadata database
initialised once with ``airflow db migrate``) and DAGs folder holding only its DAG file. For every cycle
the host re-parses that file (new operator objects, hooks and AWS clients, as in a worker's task process)
and runs it with ``dag.test()``: a real Airflow task run, real botocore over HTTP against the AWS
emulator, nothing mocked in either operator. The host's first run is an unmeasured warm-up: it pays the
interpreter's imports and the boot of dag.test()'s in-process Execution API (about 20 s here), which a
real worker pays once, not per task. The emulator and the job lifecycle are shared: the job goes to
``Training`` as soon as it exists and completes a drawn delay later; cycle ``k`` uses the same delay for
both operators (paired draws), so neither gains from where the completion falls between two of its status
checks. Runs alternate ours/upstream (the order flips every cycle); medians and p90 are reported.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OPERATORS = ("ours", "upstream")
FEATURES_BUCKET, FEATURES_KEY = "bench-features", "fraud/train/part-00000.csv"
MODELS_BUCKET = "bench-models"
#: Whole-run limit: a benchmark that hangs is a failed benchmark.
DEADLINE_SECONDS = 170.0
#: Longest one measured cycle (a DAG run in a warm task host, the job included) may take.
CYCLE_TIMEOUT_SECONDS = 60.0
#: Longest a warm-up run may take (the first dag.test() in an interpreter boots a lot).
WARMUP_TIMEOUT_SECONDS = 120.0
PHASES = ("before", "create", "running", "after")
STRUCTURE_PREFIX = (
    "before creating, upstream Describes its job name and checks the S3 input (3 S3 calls), ours Describes "
    "the run's first attempt name;\n  "
)
STRUCTURE_SYNC = STRUCTURE_PREFIX + (
    "after creating, ours Describes at once and then every interval, upstream sleeps first; after terminal, "
    "upstream Describes once more for its result."
)
STRUCTURE_DEFERRABLE = STRUCTURE_PREFIX + (
    "after creating, both Describe once and defer; ours' trigger Describes every interval, upstream's runs a "
    "botocore waiter (waiter_delay=check_interval); on resume both Describe once more."
)

# The task-side timestamps: Airflow's pre_execute / post_execute hooks, outside both operators.
MARKS = """
import json, os, time


def _mark(event, context):
    ti = context["ti"]
    record = {
        "event": event,
        "wall": time.time(),
        "ti_start": ti.start_date.timestamp() if ti.start_date else None,
    }
    with open(os.environ["BENCH_MARKS"], "a") as marks:
        marks.write(json.dumps(record) + "\\n")


def mark_start(context):
    _mark("start", context)


def mark_end(context, result):
    _mark("end", context)
"""

OURS = """
import datetime as dt
import os
from airflow.sdk import DAG
from lyftlearn_provider import ResourceProfile, RuntimeSpec, TrainModelOperator

with DAG("bench_overhead_ours", schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
    TrainModelOperator(
        task_id="train",
        spec=RuntimeSpec(
            image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:1",
            role_arn="arn:aws:iam::123456789012:role/training",
            output_s3_uri="s3://{models}/fraud",
            hyperparameters={{"learning_rate": 0.05, "max_depth": 6}},
            inputs={{"train": "s3://{features}/fraud/train/"}},
            resources=ResourceProfile(instance_type="ml.m5.xlarge"),
        ),
        poll_interval=float(os.environ["BENCH_POLL_INTERVAL"]),
        deferrable=os.environ["BENCH_DEFERRABLE"] == "1",
        pre_execute=mark_start,
        post_execute=mark_end,
    )
"""

UPSTREAM = """
import datetime as dt
import json
import os
from airflow.sdk import DAG
from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator

# The same CreateTrainingJob request ours renders from its RuntimeSpec (without our run-identity tags).
CONFIG = json.loads({config!r})
CONFIG["TrainingJobName"] = os.environ["BENCH_JOB_NAME"]

with DAG("bench_overhead_upstream", schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
    SageMakerTrainingOperator(
        task_id="train",
        config=CONFIG,
        check_interval=int(os.environ["BENCH_POLL_INTERVAL"]),
        # print_log=True would Describe only every 30 s whatever check_interval says (it tails CloudWatch).
        print_log=False,
        deferrable=os.environ["BENCH_DEFERRABLE"] == "1",
        pre_execute=mark_start,
        post_execute=mark_end,
    )
"""

# A task host: a fresh interpreter that runs the operator's DAG with dag.test() once per line on stdin.
# Every run re-parses the DAG file, so each cycle has new operator objects (new hooks, new AWS clients),
# as a worker's task process has; only the interpreter, its imports and dag.test()'s in-process
# Execution API (about 20 s to boot, paid in the unmeasured warm-up) are reused.
HOST = textwrap.dedent(
    """
    import json, os, runpy, sys, traceback
    for line in sys.stdin:
        os.environ.update(json.loads(line))
        try:
            state = str(runpy.run_path(sys.argv[1])["dag"].test().state)
        except Exception as error:
            traceback.print_exc()
            state = f"error: {error!r}"
        print("BENCH-RESULT " + json.dumps(state), flush=True)
    """
)
RESULT_PREFIX = "BENCH-RESULT "


class TaskHost:
    """One operator's task host process, driven over stdin/stdout."""

    def __init__(self, operator: str, home: Path, env: dict[str, str]) -> None:
        self.operator = operator
        self.log_path = home / "host.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOST, str(home / "dags" / f"bench_overhead_{operator}.py")],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            bufsize=1,
        )
        self._results: queue.Queue[str | None] = queue.Queue()
        self._tail: deque[str] = deque(maxlen=40)
        threading.Thread(target=self._read, name=f"bench-host-{operator}", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(RESULT_PREFIX):
                self._results.put(json.loads(line[len(RESULT_PREFIX) :]))
            else:
                self._tail.append(line.rstrip())
        self._results.put(None)  # the process ended

    def send(self, variables: dict[str, str]) -> None:
        """Start one DAG run with these extra environment variables."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(variables) + "\n")
        self.process.stdin.flush()

    def wait(self, timeout: float) -> None:
        """Wait for the DAG run started last; raise SystemExit unless it succeeded."""
        try:
            state = self._results.get(timeout=timeout)
        except queue.Empty:
            state = f"no answer within {timeout:.0f} s"
        if state != "success":
            tail = "\n".join(self._tail)
            errors = self.log_path.read_text()[-3000:]
            raise SystemExit(f"{self.operator}: DAG run ended {state!r}\n{tail}\n{errors}")

    def close(self) -> None:
        """Stop the process (end of input first, then terminate, then kill) and close its log."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@dataclass
class Cycle:
    """What one task run measured."""

    operator: str
    start_to_create: float
    ti_start_to_create: float
    terminal_to_done: float
    calls: dict[str, Counter[str]] = field(default_factory=dict)  # phase -> action -> count


def upstream_config() -> dict[str, Any]:
    """Return ours' rendering of the benchmark spec as an upstream ``config`` (name set per cycle)."""
    from lyftlearn_provider import ResourceProfile, RuntimeSpec
    from lyftlearn_provider.operators.jobs import DEFAULT_MAX_RUNTIME_SECONDS
    from lyftlearn_provider.rendering.sagemaker import render_training_job

    spec = RuntimeSpec(
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:1",
        role_arn="arn:aws:iam::123456789012:role/training",
        output_s3_uri=f"s3://{MODELS_BUCKET}/fraud",
        hyperparameters={"learning_rate": 0.05, "max_depth": 6},
        inputs={"train": f"s3://{FEATURES_BUCKET}/fraud/train/"},
        resources=ResourceProfile(instance_type="ml.m5.xlarge"),
    )
    rendering = render_training_job(
        spec, job_name="bench-upstream", max_runtime_seconds=DEFAULT_MAX_RUNTIME_SECONDS
    )
    return dict(rendering.request)


def prepare_homes(root: Path) -> dict[str, Path]:
    """Create one AIRFLOW_HOME with its DAGs folder per operator, sharing one migrated database file."""
    sources = {
        "ours": MARKS + OURS.format(models=MODELS_BUCKET, features=FEATURES_BUCKET),
        "upstream": MARKS + UPSTREAM.format(config=json.dumps(upstream_config())),
    }
    homes = {}
    for name, source in sources.items():
        home = root / name
        (home / "dags").mkdir(parents=True)
        (home / "dags" / f"bench_overhead_{name}.py").write_text(source)
        homes[name] = home
    env = {**os.environ, "AIRFLOW_HOME": str(homes["ours"]), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    airflow = Path(sys.executable).with_name("airflow")
    migrate = subprocess.run(
        [str(airflow), "db", "migrate"], env=env, capture_output=True, text=True, timeout=120
    )
    if migrate.returncode != 0:
        raise SystemExit(f"airflow db migrate failed:\n{migrate.stdout[-2000:]}\n{migrate.stderr[-2000:]}")
    shutil.copy(homes["ours"] / "airflow.db", homes["upstream"] / "airflow.db")
    return homes


def task_env(aws_env: dict[str, str], home: Path, args: argparse.Namespace) -> dict[str, str]:
    """Return the environment of a task host: its own Airflow home, AWS pointed at the emulator."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AWS_", "AIRFLOW_")) and name.lower() != "no_proxy"
    }
    env.update(aws_env)
    env.update(
        {
            "NO_PROXY": "127.0.0.1,localhost",
            "no_proxy": "127.0.0.1,localhost",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "BENCH_POLL_INTERVAL": str(args.poll_interval),
            "BENCH_DEFERRABLE": "1" if args.deferrable else "0",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def seed_aws(aws: Any) -> None:
    """Create the input data upstream's config check looks for, the output bucket, and the image.

    Our operator pins the image through ECR before it creates a job (one BatchGetImage, and one more
    to confirm the SOCI index): that is part of what its cycle costs, and upstream does none of it.
    """
    import boto3

    from lyftlearn_provider.testing.aws.images import push_image

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=aws.endpoint_url,
            region_name=aws.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    s3 = client("s3")
    for bucket in (FEATURES_BUCKET, MODELS_BUCKET):
        s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=FEATURES_BUCKET, Key=FEATURES_KEY, Body=b"amount,merchant,hour,is_fraud\n")
    push_image(client("ecr"), "fraud-model", "1", soci="v2")


class JobDriver(threading.Thread):
    """Play SageMaker for one cycle: once the job exists, start training, complete it ``delay`` s later."""

    def __init__(self, control: Any, delay: float, abort: threading.Event) -> None:
        super().__init__(name="bench-job-driver", daemon=True)
        self.control = control
        self.delay = delay
        self.abort = abort
        self.job_name: str | None = None
        self.terminal_at: float | None = None  # epoch seconds
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.abort.is_set():
                created = [c for c in self.control.calls(action="CreateTrainingJob") if c["status"] == 200]
                if created:
                    break
                time.sleep(0.01)
            else:
                return
            self.job_name = created[0]["job_name"]
            self.control.advance(self.job_name, "Training")
            created_at = created[0]["t"]  # monotonic, like the emulator's records
            if self.abort.wait(max(0.0, created_at + self.delay - time.monotonic())):
                return
            before = time.time()
            self.control.complete(self.job_name, metrics={"validation:auc": 0.91}, at=before)
            self.terminal_at = time.time()  # the job is terminal by now (the control call has returned)
        except BaseException as error:  # reported by the main thread
            self.error = error


def run_cycle(
    host: TaskHost, number: int, aws: Any, delay: float, clock_offset: float, marks_dir: Path
) -> Cycle:
    """Run the operator's DAG once in its task host while the driver plays the job; measure the cycle."""
    control = aws.control
    control.reset_calls()
    marks_file = marks_dir / f"marks-{number}.jsonl"
    abort = threading.Event()
    driver = JobDriver(control, delay, abort)
    driver.start()
    try:
        host.send({"BENCH_MARKS": str(marks_file), "BENCH_JOB_NAME": f"bench-upstream-{number}"})
        host.wait(CYCLE_TIMEOUT_SECONDS)
    finally:
        abort.set()
        driver.join(timeout=10)
    name = f"{host.operator} cycle {number}"
    if driver.error is not None:
        raise SystemExit(f"{name}: the job driver failed: {driver.error!r}")
    if driver.terminal_at is None:
        raise SystemExit(f"{name}: the task finished before its job was completed")
    marks = [json.loads(line) for line in marks_file.read_text().splitlines()]
    start = next(mark for mark in marks if mark["event"] == "start")
    end = [mark for mark in marks if mark["event"] == "end"][-1]
    calls = control.calls()
    created = [c for c in calls if c["action"] == "CreateTrainingJob"]
    if len(created) != 1 or created[0]["job_name"] != driver.job_name:
        raise SystemExit(f"{name}: expected one CreateTrainingJob, got {created}")
    if control.job(driver.job_name)["TrainingJobStatus"] != "Completed":
        raise SystemExit(f"{name}: job {driver.job_name} did not complete")
    create_wall = created[0]["t"] + clock_offset
    terminal_mono = driver.terminal_at - clock_offset
    phases: dict[str, Counter[str]] = {phase: Counter() for phase in PHASES}
    for call in calls:
        if call is created[0]:
            phase = "create"
        elif call["t"] < created[0]["t"]:
            phase = "before"
        elif call["t"] < terminal_mono:
            phase = "running"
        else:
            phase = "after"
        phases[phase][call["action"]] += 1
    return Cycle(
        operator=host.operator,
        start_to_create=create_wall - start["wall"],
        ti_start_to_create=create_wall - start["ti_start"],
        terminal_to_done=end["wall"] - driver.terminal_at,
        calls=phases,
    )


def p90(values: list[float]) -> float:
    """Return the 90th percentile (linear interpolation between the samples)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=10, method="inclusive")[-1]


def describe_calls(cycles: list[Cycle]) -> str:
    """Return the median count of each action per phase, e.g. ``before: DescribeTrainingJob x1``."""
    parts = []
    for phase in PHASES:
        actions = sorted({action for cycle in cycles for action in cycle.calls[phase]})
        counts = [
            f"{action} x{statistics.median([c.calls[phase][action] for c in cycles]):g}" for action in actions
        ]
        parts.append(f"{phase}: {', '.join(counts) or '-'}")
    return " | ".join(parts)


def report(cycles: dict[str, list[Cycle]], args: argparse.Namespace) -> None:
    """Print the side-by-side table, the AWS calls and the structural differences."""
    mode = "deferrable=True (dag.test runs the trigger inline)" if args.deferrable else "deferrable=False"
    print("P3 overhead per cycle: TrainModelOperator (ours) vs SageMakerTrainingOperator (upstream)")
    print(
        f"  {args.cycles} cycles each, alternating, after {args.warmup} warm-up run(s) each; real Airflow "
        "(dag.test(), one task-host interpreter per operator, DAG file re-parsed every cycle),"
    )
    print("  real botocore over HTTP to the AWS emulator, nothing mocked in either operator")
    print(
        f"  mode {mode}; status check every {args.poll_interval} s (ours poll_interval, jittered +-20%; "
        "upstream check_interval, print_log=False)"
    )
    print(
        f"  job lifecycle: Training once it exists, Completed {args.training_seconds:g} s + U(0, "
        f"{args.poll_interval}) s after its CreateTrainingJob arrived (same draw for both in each cycle)"
    )
    print()
    print(
        f"  {'seconds':34} {'ours p50':>9} {'p90':>7}   {'upstream p50':>12} {'p90':>7}   "
        f"{'ours/upstream':>13}"
    )
    rows = (
        ("task start -> CreateTrainingJob", "start_to_create"),
        ("  same, from the TI's start_date", "ti_start_to_create"),
        ("job terminal -> task finished", "terminal_to_done"),
    )
    for label, attribute in rows:
        ours = [getattr(c, attribute) for c in cycles["ours"]]
        upstream = [getattr(c, attribute) for c in cycles["upstream"]]
        ratio = statistics.median(ours) / statistics.median(upstream)
        print(
            f"  {label:34} {statistics.median(ours):9.3f} {p90(ours):7.3f}   "
            f"{statistics.median(upstream):12.3f} {p90(upstream):7.3f}   {ratio:12.2f}x"
        )
    totals = {
        name: [float(sum(sum(counter.values()) for counter in c.calls.values())) for c in cycles[name]]
        for name in OPERATORS
    }
    ours_calls, upstream_calls = (statistics.median(totals[name]) for name in OPERATORS)
    print(
        f"  {'AWS calls per cycle (count)':34} {ours_calls:9g} {p90(totals['ours']):7g}   "
        f"{upstream_calls:12g} {p90(totals['upstream']):7g}   {ours_calls / upstream_calls:12.2f}x"
    )
    print()
    print(
        "  AWS calls per cycle by phase (median; before CreateTrainingJob, it, job running, after terminal):"
    )
    for name in OPERATORS:
        print(f"    {name:8} {describe_calls(cycles[name])}")
    print("  Per-cycle samples (s), in run order:")
    for label, attribute in (("start->Create", "start_to_create"), ("terminal->done", "terminal_to_done")):
        for name in OPERATORS:
            samples = " ".join(f"{getattr(c, attribute):.3f}" for c in cycles[name])
            print(f"    {label:15} {name:8} {samples}")
    print("  Structure: " + (STRUCTURE_DEFERRABLE if args.deferrable else STRUCTURE_SYNC))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cycles", type=int, default=5, help="measured cycles per operator")
    parser.add_argument("--warmup", type=int, default=1, help="unmeasured runs per operator first (>= 1)")
    parser.add_argument("--poll-interval", type=int, default=1, help="seconds between status checks")
    parser.add_argument("--training-seconds", type=float, default=1.0, help="least time a job trains")
    parser.add_argument("--deferrable", action="store_true", help="run both operators deferrable")
    parser.add_argument("--seed", type=int, default=3, help="seed of the completion delays")
    args = parser.parse_args()
    if args.cycles < 1 or args.warmup < 1 or args.poll_interval < 1:
        parser.error("need --cycles >= 1, --warmup >= 1 and --poll-interval >= 1")

    from lyftlearn_provider.testing.aws import AwsEmulator

    began = time.monotonic()
    rng = random.Random(args.seed)
    delays = [args.training_seconds + rng.uniform(0, args.poll_interval) for _ in range(args.cycles)]
    cycles: dict[str, list[Cycle]] = {name: [] for name in OPERATORS}
    # Unwound in reverse: task hosts stop first, then the emulator, then the temporary folder goes.
    with contextlib.ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="lyftlearn-bench-p3-")))
        homes = prepare_homes(root)
        aws = stack.enter_context(AwsEmulator())
        seed_aws(aws)
        hosts = {}
        for name in OPERATORS:
            hosts[name] = TaskHost(name, homes[name], task_env(aws.env(), homes[name], args))
            stack.callback(hosts[name].close)
        # Warm-up: both hosts at once, their jobs on the emulator's autopilot; nothing is measured.
        aws.control.autopilot(phases={"Starting": 0.2, "Training": args.training_seconds})
        for number in range(args.warmup):
            for name, host in hosts.items():
                marks = root / f"warmup-{name}-{number}.jsonl"
                host.send({"BENCH_MARKS": str(marks), "BENCH_JOB_NAME": f"bench-warmup-{number}"})
            for host in hosts.values():
                host.wait(WARMUP_TIMEOUT_SECONDS)
        aws.control.autopilot(enabled=False)
        clock_offset = time.time() - time.monotonic()  # the emulator records time.monotonic()
        number = 0
        for index, delay in enumerate(delays):
            for name in OPERATORS if index % 2 == 0 else reversed(OPERATORS):
                if time.monotonic() - began > DEADLINE_SECONDS:
                    raise SystemExit(f"P3 benchmark exceeded {DEADLINE_SECONDS:.0f} s; use fewer --cycles")
                number += 1
                cycles[name].append(run_cycle(hosts[name], number, aws, delay, clock_offset, root))
    report(cycles, args)
    print(f"  (run took {time.monotonic() - began:.0f} s)")


if __name__ == "__main__":
    main()
