from __future__ import annotations

import time

import pytest

WARM = {
    "InstanceType": "ml.g5.xlarge",
    "InstanceCount": 1,
    "VolumeSizeInGB": 50,
    "KeepAlivePeriodInSeconds": 600,
}


def pool(aws, name):
    return aws.control.job(name).get("WarmPoolStatus")


def test_completed_job_leaves_an_available_pool_that_a_matching_job_reuses(aws, sagemaker, create_job):
    create_job("warm-1", ResourceConfig=WARM)
    assert pool(aws, "warm-1") is None  # nothing is retained while the job runs cold
    aws.control.advance("warm-1", "Training")
    aws.control.complete("warm-1", at=time.time() - 30)
    assert pool(aws, "warm-1")["Status"] == "Available"
    assert pool(aws, "warm-1")["ResourceRetainedBillableTimeInSeconds"] >= 30

    create_job(
        "warm-2",
        ResourceConfig=WARM,
        AlgorithmSpecification={"TrainingImage": "other-image:2", "TrainingInputMode": "File"},
    )

    assert pool(aws, "warm-1") == {
        "Status": "Reused",
        "ResourceRetainedBillableTimeInSeconds": 30,
        "ReusedByJob": "warm-2",
    }
    assert pool(aws, "warm-2") == {"Status": "InUse"}
    listed = sagemaker.list_training_jobs(WarmPoolStatusEquals="InUse")["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in listed] == ["warm-2"]
    assert listed[0]["WarmPoolStatus"] == {"Status": "InUse"}
    aws.control.complete("warm-2")
    assert pool(aws, "warm-2")["Status"] == "Available"  # the pool moves on with the new keep-alive period


@pytest.mark.parametrize(
    "overrides",
    [
        {"ResourceConfig": {**WARM, "InstanceType": "ml.g5.2xlarge"}},
        {"ResourceConfig": {**WARM, "InstanceCount": 2}},
        {"ResourceConfig": {**WARM, "VolumeSizeInGB": 100}},
        {"RoleArn": "arn:aws:iam::123456789012:role/Other"},
        {"ResourceConfig": {**WARM, "KeepAlivePeriodInSeconds": 0}},
    ],
    ids=["instance-type", "instance-count", "volume", "role", "no-keep-alive"],
)
def test_a_job_that_does_not_match_starts_cold(aws, create_job, overrides):
    create_job("warm-src", ResourceConfig=WARM)
    aws.control.complete("warm-src")

    create_job("cold", **overrides)

    assert pool(aws, "warm-src")["Status"] == "Available"
    assert pool(aws, "cold") is None


def test_pool_terminates_when_the_keep_alive_period_expires(aws, sagemaker, create_job):
    create_job("warm-old", ResourceConfig={**WARM, "KeepAlivePeriodInSeconds": 60})
    aws.control.complete("warm-old", at=time.time() - 120)

    assert pool(aws, "warm-old") == {"Status": "Terminated", "ResourceRetainedBillableTimeInSeconds": 60}
    create_job("after-expiry", ResourceConfig={**WARM, "KeepAlivePeriodInSeconds": 60})
    assert pool(aws, "after-expiry") is None
    terminated = sagemaker.list_training_jobs(WarmPoolStatusEquals="Terminated")["TrainingJobSummaries"]
    assert [s["TrainingJobName"] for s in terminated] == ["warm-old"]


def test_pool_kept_after_algorithm_errors_and_stops_but_not_after_infrastructure_failures(aws, create_job):
    aws.control.settings(stop_delay=0.01)
    for name in ("algo-fail", "infra-fail", "stopped"):
        create_job(name, ResourceConfig=WARM)
        aws.control.advance(name, "Training")
    aws.control.fail("algo-fail", "AlgorithmError: ExecuteUserScriptError")
    aws.control.fail("infra-fail", "InternalServerError: We encountered an internal error.")
    aws.control.stop("stopped")
    aws.control.wait_for_status("stopped", "Stopped")

    assert pool(aws, "algo-fail")["Status"] == "Available"
    assert pool(aws, "infra-fail") == {"Status": "Terminated", "ResourceRetainedBillableTimeInSeconds": 0}
    assert pool(aws, "stopped")["Status"] == "Available"
