"""A clock-driven driver that moves InProgress training jobs through their phases by itself.

Meant for the demo and the benchmarks; tests drive jobs explicitly instead. Every job gets a plan of
absolute due times when it is created (or when the autopilot is switched on); one thread sleeps until
the earliest due step in a heap, so a thousand jobs cost nothing between transitions and a transition
happens within a millisecond or two of its due time.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import random
import threading
import time
from collections.abc import Mapping

from lyftlearn_provider.testing.aws.training_jobs import IN_PROGRESS_PHASES, AwsError, TrainingJobStore

DEFAULT_PHASES: dict[str, float] = {"Starting": 2.0, "Downloading": 1.0, "Training": 3.0, "Uploading": 1.0}
# A job that reuses a warm pool skips provisioning and most of the data/image download.
WARM_POOL_SPEEDUP = 0.1
_WARM_POOL_SHORTENED = frozenset(
    {
        "Starting",
        "Pending",
        "LaunchingMLInstances",
        "PreparingTrainingStack",
        "Downloading",
        "DownloadingTrainingImage",
    }
)
OUTCOMES = ("Completed", "Failed")
AUTOPILOT_FAILURE_REASON = "AlgorithmError: training script exited with non-zero status 1"


@dataclasses.dataclass(order=True)
class _Step:
    due: float
    seq: int
    region: str = dataclasses.field(compare=False)
    name: str = dataclasses.field(compare=False)
    started: float = dataclasses.field(compare=False)
    plan: list[tuple[float, str | None]] = dataclasses.field(compare=False)
    index: int = dataclasses.field(compare=False)
    generation: int = dataclasses.field(compare=False)


class Autopilot:
    """Advance every InProgress job of ``store`` through ``phases`` and finish it, while enabled."""

    def __init__(self, store: TrainingJobStore) -> None:
        self._store = store
        self._cond = threading.Condition()
        self._heap: list[_Step] = []
        self._seq = itertools.count()
        self._generation = 0
        self._enabled = False
        self._closed = False
        self._thread: threading.Thread | None = None
        self._phases: dict[str, float] = dict(DEFAULT_PHASES)
        self._training_seconds: tuple[float, float] | None = None
        self._random = random.Random()
        self._outcome = "Completed"
        self._metrics: dict[str, float] = {}
        store.on_created(self._on_created)

    @property
    def enabled(self) -> bool:
        """Tell whether the autopilot is driving jobs."""
        return self._enabled

    def configure(
        self,
        enabled: bool = True,
        phases: Mapping[str, float] | None = None,
        training_seconds: tuple[float, float] | None = None,
        seed: int | None = None,
        outcome: str = "Completed",
        metrics: Mapping[str, float] | None = None,
    ) -> None:
        """Switch the autopilot on (re-planning every InProgress job from now) or off.

        ``phases`` maps secondary statuses, in order, to seconds spent in each; ``training_seconds``
        (lo, hi) draws each job's Training duration uniformly instead, from a generator seeded with
        ``seed``. After the last phase the job ends with ``outcome`` (Completed with ``metrics``, or
        Failed with an AlgorithmError).
        """
        phases = dict(DEFAULT_PHASES if phases is None else phases)
        unknown = set(phases) - IN_PROGRESS_PHASES
        if unknown:
            raise ValueError(f"not InProgress secondary statuses: {sorted(unknown)}")
        if any(seconds < 0 for seconds in phases.values()):
            raise ValueError("phase durations must not be negative")
        if training_seconds is not None and not 0 <= training_seconds[0] <= training_seconds[1]:
            raise ValueError("training_seconds must be (lo, hi) with 0 <= lo <= hi")
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}")
        with self._cond:
            self._heap.clear()
            self._generation += 1
            self._enabled = enabled
            self._phases = phases
            self._training_seconds = (
                None if training_seconds is None else (training_seconds[0], training_seconds[1])
            )
            self._random = random.Random(seed)
            self._outcome = outcome
            self._metrics = dict(metrics or {})
            if enabled and self._thread is None:
                self._thread = threading.Thread(target=self._run, name="lyftlearn-aws-autopilot", daemon=True)
                self._thread.start()
        if enabled:
            for region, name, reused in self._store.in_progress():
                self._schedule(region, name, reused)

    def close(self) -> None:
        """Stop the driver thread."""
        with self._cond:
            self._closed = True
            self._enabled = False
            self._heap.clear()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _on_created(self, region: str, name: str, reused: bool) -> None:
        self._schedule(region, name, reused)

    def _plan(self, reused: bool) -> list[tuple[float, str | None]]:
        """Return (seconds after start, secondary status or None for the end) steps for one job."""
        steps: list[tuple[float, str | None]] = []
        offset = 0.0
        for index, (status, seconds) in enumerate(self._phases.items()):
            if status == "Training" and self._training_seconds is not None:
                seconds = self._random.uniform(*self._training_seconds)
            if reused and status in _WARM_POOL_SHORTENED:
                seconds *= WARM_POOL_SPEEDUP
            if index > 0 or status != "Starting":  # new jobs are already Starting
                steps.append((offset, status))
            offset += seconds
        steps.append((offset, None))
        return steps

    def _schedule(self, region: str, name: str, reused: bool) -> None:
        with self._cond:
            if not self._enabled:
                return
            now = time.monotonic()
            plan = self._plan(reused)
            step = _Step(now + plan[0][0], next(self._seq), region, name, now, plan, 0, self._generation)
            heapq.heappush(self._heap, step)
            self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and (not self._heap or self._heap[0].due > time.monotonic()):
                    self._cond.wait(timeout=self._heap[0].due - time.monotonic() if self._heap else None)
                if self._closed:
                    return
                now = time.monotonic()
                due: list[_Step] = []
                while self._heap and self._heap[0].due <= now:
                    due.append(heapq.heappop(self._heap))
                outcome, metrics = self._outcome, self._metrics
            # The store is called without our lock held: the store calls back into _schedule.
            for step in due:
                if self._apply(step, outcome, metrics) and step.index + 1 < len(step.plan):
                    following = step.index + 1
                    with self._cond:
                        # A reconfiguration meanwhile has re-planned the job: drop the old plan.
                        if self._enabled and step.generation == self._generation:
                            heapq.heappush(
                                self._heap,
                                dataclasses.replace(
                                    step,
                                    due=step.started + step.plan[following][0],
                                    seq=next(self._seq),
                                    index=following,
                                ),
                            )

    def _apply(self, step: _Step, outcome: str, metrics: dict[str, float]) -> bool:
        """Perform one step; return False when the job left InProgress (stopped, failed, reset)."""
        status = step.plan[step.index][1]
        try:
            if status is not None:
                self._store.advance(step.region, step.name, status)
            elif outcome == "Completed":
                self._store.complete(step.region, step.name, metrics=metrics)
            else:
                self._store.fail(step.region, step.name, AUTOPILOT_FAILURE_REASON)
        except AwsError:
            return False
        return True
