from __future__ import annotations

import time

import pytest

from lyftlearn_provider.testing.aws import ControlError

FAST = {"Starting": 0.1, "Downloading": 0.05, "Training": 0.1, "Uploading": 0.05}


def wait_until_finished(aws, names, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        jobs = {job["TrainingJobName"]: job for job in aws.control.jobs() if job["TrainingJobName"] in names}
        if all(job["TrainingJobStatus"] in ("Completed", "Failed") for job in jobs.values()):
            return jobs
        assert time.monotonic() < deadline, {name: job["SecondaryStatus"] for name, job in jobs.items()}
        time.sleep(0.05)


def test_autopilot_moves_jobs_through_their_phases_with_random_training_times(aws, create_job):
    aws.control.autopilot(phases=FAST, training_seconds=(0.2, 1.2), seed=7, metrics={"validation:auc": 0.88})
    names = [f"auto-{index}" for index in range(8)]
    for name in names:
        create_job(name)

    jobs = wait_until_finished(aws, names)

    training_times = []
    for job in jobs.values():
        assert job["TrainingJobStatus"] == "Completed"
        assert [t["Status"] for t in job["SecondaryStatusTransitions"]] == [*FAST, "Completed"]
        assert job["FinalMetricDataList"][0]["Value"] == pytest.approx(0.88)
        training = next(t for t in job["SecondaryStatusTransitions"] if t["Status"] == "Training")
        training_times.append(training["EndTime"] - training["StartTime"])
    # Drawn from 0.2-1.2 s; the upper slack absorbs a ticker thread delayed on a loaded machine.
    assert all(0.15 <= seconds <= 3.0 for seconds in training_times)
    assert max(training_times) - min(training_times) > 0.2  # each job draws its own duration


def test_autopilot_takes_over_running_jobs_can_fail_them_and_shortens_warm_starts(aws, create_job):
    warm = {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "KeepAlivePeriodInSeconds": 300}
    create_job("pool-owner", ResourceConfig=warm)
    aws.control.complete("pool-owner")
    create_job("cold-job")
    create_job("warm-job", ResourceConfig=warm)

    aws.control.autopilot(phases={"Starting": 1.0, "Training": 0.05}, outcome="Failed")
    jobs = wait_until_finished(aws, {"cold-job", "warm-job"})

    assert {job["TrainingJobStatus"] for job in jobs.values()} == {"Failed"}
    assert jobs["warm-job"]["FailureReason"].startswith("AlgorithmError")

    def starting_seconds(job):
        starting = job["SecondaryStatusTransitions"][0]
        return starting["EndTime"] - starting["StartTime"]

    assert starting_seconds(jobs["warm-job"]) < 0.5 < starting_seconds(jobs["cold-job"])


def test_autopilot_rejects_unknown_phases_and_can_be_switched_off(aws, create_job):
    with pytest.raises(ControlError) as excinfo:
        aws.control.autopilot(phases={"Completed": 1.0})
    assert excinfo.value.status == 400

    aws.control.autopilot(phases={"Starting": 0.05, "Training": 0.05})
    aws.control.autopilot(enabled=False)
    create_job("manual")
    time.sleep(0.3)
    assert aws.control.job("manual")["SecondaryStatus"] == "Starting"
