"""EcrImageHook against the AWS emulator (moto's ECR over HTTP), with real OCI manifests pushed by PutImage.

``push(..., real_digest=True)`` passes ``imageDigest`` = sha256 of the manifest bytes, so the emulator
reports the digests real ECR would; ``real_digest=False`` leaves moto to make its own up, which is
how the hook's handling of that discrepancy is tested.
"""

from __future__ import annotations

import json
import pathlib
import time
from typing import Any

import boto3
import pytest

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.hooks.ecr import EcrImageHook
from lyftlearn_provider.images import SociPolicy
from lyftlearn_provider.manifests import sha256_digest

OCI = pathlib.Path(__file__).resolve().parent.parent / "data" / "oci"
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
REPOSITORY = "fraud-model"
IMAGE = f"{REGISTRY}/{REPOSITORY}"
ECR_READS = {"BatchGetImage", "DescribeImages", "ListImages", "ListImageReferrers"}


def digest(name: str) -> str:
    return sha256_digest((OCI / name).read_bytes())


def push(
    ecr: Any, name: str, tag: str | None = None, *, repository: str = REPOSITORY, real_digest: bool = True
) -> str:
    """Push a fixture manifest byte for byte, as a registry client would; return the digest ECR reports."""
    body = (OCI / name).read_text(encoding="utf-8")
    extra: dict[str, str] = {}
    if tag is not None:
        extra["imageTag"] = tag
    if real_digest:
        extra["imageDigest"] = sha256_digest(body)
    image = ecr.put_image(
        repositoryName=repository,
        imageManifest=body,
        imageManifestMediaType=json.loads(body)["mediaType"],
        **extra,
    )["image"]
    return str(image["imageId"]["imageDigest"])


def push_soci_v2(ecr: Any, tag: str = "v42-soci", real_digest: bool = True) -> str:
    """Push a SOCI-enabled image the way `nerdctl push` of a `soci convert` result does: children first."""
    push(ecr, "soci-v2/image-manifest.json", real_digest=real_digest)
    push(ecr, "soci-v2/soci-index-manifest.json", real_digest=real_digest)
    return push(ecr, "soci-v2/image-index.json", tag, real_digest=real_digest)


def push_soci_v1(ecr: Any, tag: str = "v42", real_digest: bool = True) -> str:
    """Push an image, then its v1 SOCI index as an untagged artifact whose subject is the image."""
    image = push(ecr, "plain/image-manifest.json", tag, real_digest=real_digest)
    push(ecr, "soci-v1/soci-index-manifest.json", real_digest=real_digest)
    return image


def push_plain(ecr: Any, tag: str = "v42", real_digest: bool = True) -> str:
    return push(ecr, "plain/image-manifest.json", tag, real_digest=real_digest)


@pytest.fixture
def ecr(aws):
    client = boto3.client("ecr")
    client.create_repository(repositoryName=REPOSITORY)
    return client


@pytest.fixture
def hook(aws):
    return EcrImageHook(aws_conn_id="aws_default", retry_delay=0.01)


def ecr_actions(aws) -> list[str]:
    return [call["action"] for call in aws.control.calls()]


def count_referrers_calls(hook: EcrImageHook, region: str = "us-east-1") -> list[int]:
    """Count ListImageReferrers requests as botocore sends them (moto's HTTP 500 bypasses the call log)."""
    sent = [0]

    def count(**_: Any) -> None:
        sent[0] += 1

    hook.client_for(region, botocore_retries=False).meta.events.register(
        "before-send.ecr.ListImageReferrers", count
    )
    return sent


# Digest pinning --------------------------------------------------------------------------------------


def test_a_tag_resolves_to_the_digest_ecr_reports_with_one_call(aws, ecr, hook):
    reported = push_plain(ecr)
    aws.control.reset_calls()
    resolution = hook.resolve(f"{IMAGE}:v42", soci="off")
    assert reported == digest("plain/image-manifest.json")
    assert resolution.digest == reported
    assert resolution.pinned == f"{IMAGE}@{reported}"
    assert resolution.media_type == "application/vnd.oci.image.manifest.v1+json"
    assert (resolution.resolved_by, resolution.soci, resolution.soci_source) == ("tag", None, "not-checked")
    assert ecr_actions(aws) == ["BatchGetImage"]


def test_tag_moved_after_resolution_leaves_the_run_on_the_first_digest(aws, ecr, hook):
    # A second tag keeps the first image alive on moto, which (unlike ECR) deletes an image when its
    # only tag moves.
    first = push_plain(ecr, "prod")
    push_plain(ecr, "v41")
    resolved = hook.resolve(f"{IMAGE}:prod", soci="off")

    moved = push(ecr, "plain/image-manifest-next.json", "prod")
    assert moved != first

    assert resolved.pinned == f"{IMAGE}@{first}"
    assert hook.resolve(f"{IMAGE}:prod", soci="off").digest == moved
    # What serving receives (the pinned reference) still resolves to the image training ran.
    again = hook.resolve(resolved.pinned, soci="off")
    assert (again.digest, again.resolved_by, again.pinned) == (first, "digest", resolved.pinned)


def test_a_pinned_reference_is_verified_and_its_tag_ignored(aws, ecr, hook):
    reported = push_plain(ecr)
    push(ecr, "plain/image-manifest-next.json", "v43")
    resolution = hook.resolve(f"{IMAGE}:v43@{reported}", soci="off")
    assert resolution.pinned == f"{IMAGE}@{reported}"
    assert resolution.resolved_by == "digest"


def test_unknown_repository_names_repository_registry_and_fix(aws, ecr, hook):
    with pytest.raises(InvalidSpecError) as caught:
        hook.resolve(f"{REGISTRY}/fraud-modle:v42")
    assert caught.value.field == "image"
    assert caught.value.problem == f"repository 'fraud-modle' not found in registry {REGISTRY}"
    assert "aws ecr create-repository --repository-name fraud-modle --region us-east-1" in caught.value.fix


def test_tag_not_found_names_the_tag_and_the_newest_existing_ones(aws, ecr, hook):
    push_plain(ecr, "v41")
    time.sleep(1.1)  # moto stamps pushes to the second
    push(ecr, "plain/image-manifest-next.json", "v42")
    with pytest.raises(InvalidSpecError) as caught:
        hook.resolve(f"{IMAGE}:v43")
    assert caught.value.problem == (
        f"tag 'v43' not found in repository 'fraud-model' of registry {REGISTRY} (newest tags: v42, v41)"
    )
    assert "aws ecr describe-images --repository-name fraud-model" in caught.value.fix


def test_tag_not_found_in_an_empty_repository_says_it_is_empty(aws, ecr, hook):
    with pytest.raises(InvalidSpecError, match=r"tag 'v1' not found .* \(it has no tagged images\)"):
        hook.resolve(f"{IMAGE}:v1")


def test_digest_not_found_is_bad_input(aws, ecr, hook):
    push_plain(ecr)
    missing = "sha256:" + "0" * 64
    with pytest.raises(InvalidSpecError) as caught:
        hook.resolve(f"{IMAGE}@{missing}")
    assert (
        caught.value.problem
        == f"digest {missing} not found in repository 'fraud-model' of registry {REGISTRY}"
    )


def test_pinning_the_soci_index_instead_of_the_image_is_rejected(aws, ecr, hook):
    push_soci_v1(ecr)
    artifact = digest("soci-v1/soci-index-manifest.json")
    with pytest.raises(InvalidSpecError) as caught:
        hook.resolve(f"{IMAGE}@{artifact}")
    assert "is not a container image: it is a SOCI v1 index" in caught.value.problem


def test_a_registry_in_another_region_is_asked_in_its_region(aws, hook):
    west = boto3.client("ecr", region_name="us-west-2")
    west.create_repository(repositoryName=REPOSITORY)
    reported = push(west, "plain/image-manifest.json", "v42")
    resolution = hook.resolve(f"123456789012.dkr.ecr.us-west-2.amazonaws.com/{REPOSITORY}:v42", soci="off")
    assert resolution.digest == reported
    assert {call["region"] for call in aws.control.calls(action="BatchGetImage")} == {"us-west-2"}


def test_other_registries_pass_through_pinned_without_a_call(aws, hook):
    reference = "ghcr.io/acme/fraud-model@sha256:" + "c" * 64
    resolution = hook.resolve(reference, soci="prefer")
    assert resolution.pinned == reference
    assert (resolution.resolved_by, resolution.soci_source) == ("reference", "not-checked")
    with pytest.raises(InvalidSpecError, match="not in an Amazon ECR registry"):
        hook.resolve("ghcr.io/acme/fraud-model:v1", soci="off")
    assert aws.control.calls() == []


# SOCI detection x policy -----------------------------------------------------------------------------

PUSHERS = {"soci-v2": push_soci_v2, "soci-v1": push_soci_v1, "none": push_plain}
TAGS = {"soci-v2": "v42-soci", "soci-v1": "v42", "none": "v42"}
EXPECTED: dict[tuple[str, str], tuple[str | None, str]] = {
    # (image, policy): (soci reported, outcome)
    ("soci-v2", "require"): ("v2", "ok"),
    ("soci-v2", "prefer"): ("v2", "ok"),
    ("soci-v2", "off"): (None, "ok, not checked"),
    ("soci-v1", "require"): ("v1", "ok, warns v1 is ignored by default"),
    ("soci-v1", "prefer"): ("v1", "ok, warns v1 is ignored by default"),
    ("soci-v1", "off"): (None, "ok, not checked"),
    ("none", "require"): (None, "InvalidSpecError before anything is created"),
    ("none", "prefer"): (None, "ok, warns: no SOCI index"),
    ("none", "off"): (None, "ok, not checked"),
}


@pytest.mark.parametrize(
    ("kind", "policy"), list(EXPECTED), ids=[f"{k}|{p}|{EXPECTED[k, p][1]}" for k, p in EXPECTED]
)
def test_soci_detection_and_policy_matrix(aws, ecr, hook, capfd, kind, policy):
    soci, outcome = EXPECTED[kind, policy]
    image_digest = PUSHERS[kind](ecr)
    aws.control.reset_calls()
    reference = f"{IMAGE}:{TAGS[kind]}"
    if outcome.startswith("InvalidSpecError"):
        with pytest.raises(InvalidSpecError) as caught:
            hook.resolve(reference, soci=policy)
        assert caught.value.field == "image"
        assert "soci convert" in caught.value.fix
        print(f"\n{kind:8} x {policy:8} -> raised: {caught.value.problem}")
        return
    resolution = hook.resolve(reference, soci=policy)
    logged = "".join(capfd.readouterr())
    assert resolution.digest == image_digest
    assert resolution.soci == soci
    if soci == "v2":
        assert resolution.soci_index_digest == digest("soci-v2/soci-index-manifest.json")
        assert resolution.soci_source == "soci-index-manifest"
        assert resolution.media_type == "application/vnd.oci.image.index.v1+json"
    elif soci == "v1":
        assert resolution.soci_index_digest == digest("soci-v1/soci-index-manifest.json")
        assert resolution.soci_source == "repository-scan"  # moto has no ListImageReferrers
        assert "only a SOCI v1 index" in logged
    if policy == "off":
        assert resolution.soci_source == "not-checked"
        assert ecr_actions(aws) == ["BatchGetImage"]  # detection skipped entirely
    if outcome == "ok, warns: no SOCI index":
        assert resolution.soci_source == "repository-scan"
        assert "has no SOCI index; it will start without lazy loading" in logged
    if outcome == "ok":
        assert "SOCI index" not in logged.replace("SOCI: v2", "")
    print(f"\n{kind:8} x {policy:8} -> soci={resolution.soci} via {resolution.soci_source}")


def test_require_without_an_index_fails_before_anything_is_created(aws, ecr, hook):
    push_plain(ecr)
    aws.control.reset_calls()
    with pytest.raises(InvalidSpecError) as caught:
        hook.resolve(f"{IMAGE}:v42", soci=SociPolicy.REQUIRE)
    message = str(caught.value)
    assert message.startswith(f"image: {IMAGE}:v42 ({digest('plain/image-manifest.json')}) has no SOCI index")
    assert f"soci convert --all-platforms {IMAGE}:v42 {IMAGE}:v42-soci" in message
    assert f"set image to '{IMAGE}:v42-soci'" in message
    # Only ECR was read: nothing written, nothing created anywhere.
    assert {call["service"] for call in aws.control.calls()} == {"ecr"}
    assert set(ecr_actions(aws)) <= ECR_READS


def test_require_for_a_registry_we_cannot_query_fails_without_a_call(aws, hook):
    with pytest.raises(InvalidSpecError, match="could not be checked for a SOCI index"):
        hook.resolve("ghcr.io/acme/fraud-model@sha256:" + "c" * 64, soci="require")
    assert aws.control.calls() == []


def test_v2_costs_two_calls_and_never_looks_for_v1(aws, ecr, hook):
    push_soci_v2(ecr)
    aws.control.reset_calls()
    referrers = count_referrers_calls(hook)
    resolution = hook.resolve(f"{IMAGE}:v42-soci", soci="require")
    assert resolution.soci == "v2"
    assert ecr_actions(aws) == ["BatchGetImage", "BatchGetImage"]
    assert referrers[0] == 0


def test_missing_referrers_api_is_tried_once_then_the_repository_is_scanned(aws, ecr, hook):
    push_soci_v1(ecr)
    referrers = count_referrers_calls(hook)
    first = hook.resolve(f"{IMAGE}:v42", soci="prefer")
    second = hook.resolve(f"{IMAGE}:v42", soci="prefer")
    assert first.soci == second.soci == "v1"
    assert referrers[0] == 1  # moto answers HTTP 500: no retry storm, and not asked again
    assert "ListImageReferrers failed (500, HTTP 500); scanned the repository" in first.notes


def test_throttled_referrers_api_is_waited_out_before_falling_back(aws, ecr, hook):
    push_soci_v1(ecr)
    aws.control.inject("throttle", 2, service="ecr", action="ListImageReferrers")
    referrers = count_referrers_calls(hook)
    resolution = hook.resolve(f"{IMAGE}:v42", soci="prefer")
    assert referrers[0] == 3  # two throttled, then moto's 500 sends us to the scan
    assert resolution.soci == "v1"
    assert aws.control.faults() == []


# moto's made-up digests --------------------------------------------------------------------------


def test_v2_is_found_from_the_index_when_its_soci_manifest_cannot_be_fetched_by_digest(aws, ecr, hook):
    reported = push_soci_v2(ecr, real_digest=False)
    resolution = hook.resolve(f"{IMAGE}:v42-soci", soci="require")
    assert resolution.digest == reported != digest("soci-v2/image-index.json")
    assert (resolution.soci, resolution.soci_source) == ("v2", "image-index")
    assert resolution.soci_index_digest == digest("soci-v2/soci-index-manifest.json")
    assert any("could not be fetched" in note for note in resolution.notes)
    assert any("pinned ECR's digest" in note for note in resolution.notes)


def test_v1_subject_matches_the_manifest_hash_when_the_registry_reports_another_digest(aws, ecr, hook):
    reported = push_soci_v1(ecr, real_digest=False)
    assert reported != digest("plain/image-manifest.json")
    resolution = hook.resolve(f"{IMAGE}:v42", soci="require")
    assert resolution.pinned == f"{IMAGE}@{reported}"  # what the registry serves the image by
    assert resolution.soci == "v1"


# Transient errors -------------------------------------------------------------------------------------


def test_throttling_burst_is_ridden_out_by_the_hook_itself(aws, ecr):
    push_soci_v2(ecr)
    # botocore's own retries off: the hook's back-off alone must carry the resolution through.
    hook = EcrImageHook(
        aws_conn_id="aws_default",
        retry_delay=0.01,
        config={"retries": {"mode": "standard", "total_max_attempts": 1}},
    )
    aws.control.reset_calls()
    aws.control.inject("throttle", 3, service="ecr")
    resolution = hook.resolve(f"{IMAGE}:v42-soci", soci="require")
    assert resolution.soci == "v2"
    calls = aws.control.calls(service="ecr")
    assert [call["fault"] for call in calls[:3]] == ["throttle"] * 3
    assert [call["status"] for call in calls[3:]] == [200, 200]
    assert aws.control.faults() == []


def test_throttling_burst_is_ridden_out_with_default_settings(aws, ecr, hook):
    push_soci_v2(ecr)
    aws.control.reset_calls()
    aws.control.inject("throttle", 3, service="ecr")
    resolution = hook.resolve(f"{IMAGE}:v42-soci", soci="require")
    assert resolution.soci == "v2"
    faults = [call["fault"] for call in aws.control.calls(service="ecr", action="BatchGetImage")]
    assert faults == ["throttle", "throttle", "throttle", None, None]


def test_throttling_and_5xx_during_lookup_and_repository_scan_are_ridden_out(aws, ecr, hook):
    push_soci_v1(ecr)
    aws.control.inject("throttle", 2, service="ecr", action="DescribeImages")
    aws.control.inject("server_error", 1, service="ecr", action="BatchGetImage")
    resolution = hook.resolve(f"{IMAGE}:v42", soci="require")
    assert resolution.soci == "v1"
    assert aws.control.faults() == []


def test_resolution_is_json_safe_for_xcom(aws, ecr, hook):
    push_soci_v2(ecr)
    data = hook.resolve(f"{IMAGE}:v42-soci").to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["soci"] == "v2" and data["pinned"].startswith(f"{IMAGE}@sha256:")
