"""render_processing_job: the CreateProcessingJob request a batch spec becomes (pure, no AWS)."""

from __future__ import annotations

import json

from lyftlearn_provider.rendering.sagemaker import render_processing_job
from tests.batch.helpers import MODEL, OUTPUTS, batch_spec

VPC = {"VpcConfig": {"SecurityGroupIds": ["sg-0123456789abcdef0"], "Subnets": ["subnet-0123456789abcdef0"]}}


def test_a_batch_spec_renders_every_part_of_the_processing_request():
    spec = batch_spec(args=("--date", "2026-11-28"), secrets={"DB": "prod/fraud/db"})
    request = render_processing_job(
        spec,
        job_name="ll-score-1",
        max_runtime_seconds=3600,
        outputs=OUTPUTS,
        model_uri=MODEL,
        tags={"team": "fraud"},
        run_environment={"LYFTLEARN_RUN_ID": "r1"},
        network_config=VPC,
    ).request
    assert request["ProcessingJobName"] == "ll-score-1"
    assert request["RoleArn"] == spec.role_arn
    assert request["AppSpecification"] == {
        "ImageUri": spec.image,
        "ContainerEntrypoint": ["python", "-m", "fraud.score"],
        "ContainerArguments": ["--date", "2026-11-28"],
    }
    assert request["ProcessingResources"] == {
        "ClusterConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30}
    }
    assert request["StoppingCondition"] == {"MaxRuntimeInSeconds": 3600}
    assert request["NetworkConfig"] == VPC
    assert request["Tags"] == [{"Key": "team", "Value": "fraud"}]
    environment = request["Environment"]
    assert (environment["LYFTLEARN_RUNTIME"], environment["LYFTLEARN_JOB_NAME"]) == ("batch", "ll-score-1")
    assert environment["LYFTLEARN_RUN_ID"] == "r1"
    # A secret travels by reference only: the program resolves it with the job's role.
    assert json.loads(environment["LYFTLEARN_SECRETS"]) == {"DB": "prod/fraud/db"}
    assert "HyperParameters" not in request and "AlgorithmSpecification" not in request


def test_the_same_spec_renders_identically_twice():
    # Deterministic: a retried create sends the same request, which is what makes ResourceInUse ours.
    first = render_processing_job(
        batch_spec(), job_name="ll-score-2", max_runtime_seconds=60, outputs=OUTPUTS
    )
    again = render_processing_job(
        batch_spec(), job_name="ll-score-2", max_runtime_seconds=60, outputs=OUTPUTS
    )
    assert first == again
