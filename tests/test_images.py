from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.images import (
    ImageReference,
    ImageResolution,
    SociPolicy,
    check_soci,
    ecr_registry,
    parse_image_reference,
    pinned,
    resolve_pinned_reference,
    soci_build_fix,
    soci_tag_for,
)
from lyftlearn_provider.manifests import (
    ANNOTATION_IMAGE_MANIFEST_DIGEST,
    ANNOTATION_SOCI_INDEX_DIGEST,
    DOCKER_MANIFEST_LIST,
    OCI_IMAGE_INDEX,
    OCI_IMAGE_MANIFEST,
    SOCI_INDEX_V1,
    SOCI_INDEX_V2,
    SociFinding,
    detect_soci_v1,
    detect_soci_v2,
    image_manifest_digests,
    newest_tags,
    not_runnable_reason,
    sha256_digest,
    soci_index_version,
    soci_v1_from_image_details,
    soci_v1_from_referrers,
    soci_v1_scan_candidates,
    soci_v2_links,
)

OCI = pathlib.Path(__file__).parent / "data" / "oci"
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def text(name: str) -> str:
    return (OCI / name).read_text(encoding="utf-8")


def doc(name: str) -> dict[str, Any]:
    return dict(json.loads(text(name)))


def digest(name: str) -> str:
    return sha256_digest((OCI / name).read_bytes())


# The fixtures are what `soci convert` and a v1 `soci create` push: every digest they name is real.


def test_fixture_manifests_reference_each_other_by_their_real_digests_and_sizes():
    index = doc("soci-v2/image-index.json")
    image_entry, soci_entry = index["manifests"]
    assert (image_entry["digest"], image_entry["size"]) == (
        digest("soci-v2/image-manifest.json"),
        len((OCI / "soci-v2/image-manifest.json").read_bytes()),
    )
    assert (soci_entry["digest"], soci_entry["size"]) == (
        digest("soci-v2/soci-index-manifest.json"),
        len((OCI / "soci-v2/soci-index-manifest.json").read_bytes()),
    )
    annotations = doc("soci-v2/image-manifest.json")["annotations"]
    assert annotations[ANNOTATION_SOCI_INDEX_DIGEST] == soci_entry["digest"]
    assert soci_entry["artifactType"] == SOCI_INDEX_V2
    assert doc("soci-v2/soci-index-manifest.json")["config"]["mediaType"] == SOCI_INDEX_V2
    subject = doc("soci-v1/soci-index-manifest.json")["subject"]
    assert subject["digest"] == digest("plain/image-manifest.json")
    # Layers under 10 MiB get no zTOC: two of the three image layers are indexed.
    indexed = {
        ztoc["annotations"]["com.amazon.soci.image-layer-digest"]
        for ztoc in doc("soci-v1/soci-index-manifest.json")["layers"]
    }
    big = {
        layer["digest"] for layer in doc("plain/image-manifest.json")["layers"] if layer["size"] >= 10 << 20
    }
    assert indexed == big and len(big) == 2


# References --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "registry", "repository", "tag", "digest_"),
    [
        (f"{REGISTRY}/fraud-model:v42", REGISTRY, "fraud-model", "v42", None),
        (f"{REGISTRY}/ml/fraud-model@{DIGEST_A}", REGISTRY, "ml/fraud-model", None, DIGEST_A),
        (f"{REGISTRY}/fraud-model:v42@{DIGEST_A}", REGISTRY, "fraud-model", "v42", DIGEST_A),
        ("ghcr.io/acme/fraud-model:1.2.3", "ghcr.io", "acme/fraud-model", "1.2.3", None),
        ("localhost:5000/fraud-model:dev", "localhost:5000", "fraud-model", "dev", None),
        ("localhost/fraud-model:dev", "localhost", "fraud-model", "dev", None),
        ("python:3.11-slim", None, "python", "3.11-slim", None),
        ("acme/fraud-model:v1", None, "acme/fraud-model", "v1", None),
    ],
)
def test_parse_splits_the_reference_and_prints_it_back_unchanged(
    reference, registry, repository, tag, digest_
):
    image = parse_image_reference(reference)
    assert (image.registry, image.repository, image.tag, image.digest) == (registry, repository, tag, digest_)
    assert str(image) == reference


@pytest.mark.parametrize(
    ("reference", "problem"),
    [
        ("", "is empty"),
        (f"{REGISTRY}/fraud-model", "names neither a tag nor a digest"),
        (f"{REGISTRY}/Fraud-Model:v1", "is not a valid image reference"),
        (f"{REGISTRY}/fraud-model:v1 ", "is not a valid image reference"),
        (f"{REGISTRY}/fraud-model:-v1", "is not a valid image reference"),
        (f"{REGISTRY}/fraud-model@sha256:abc", "digest 'sha256:abc' is not valid"),
        (f"{REGISTRY}/fraud-model@md5:{'a' * 32}", "is not valid"),
        (f"{REGISTRY}/fraud-model@{DIGEST_A.upper()}", "is not valid"),
        (f"{REGISTRY}/fraud-model:{'t' * 129}", "is not a valid image reference"),
        (f"{REGISTRY}/{'m' * 250}:v1", "characters long"),
    ],
)
def test_bad_references_fail_naming_the_field_and_a_fix(reference, problem):
    with pytest.raises(InvalidSpecError) as caught:
        parse_image_reference(reference)
    assert caught.value.field == "image"
    assert problem in caught.value.problem
    assert caught.value.fix


@pytest.mark.parametrize(
    ("host", "account", "region"),
    [
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com", "123456789012", "us-east-1"),
        ("210987654321.dkr.ecr.cn-northwest-1.amazonaws.com.cn", "210987654321", "cn-northwest-1"),
        ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "123456789012", "us-gov-west-1"),
        ("123456789012.dkr-ecr.eu-central-1.on.aws", "123456789012", "eu-central-1"),
    ],
)
def test_ecr_registries_yield_account_and_region(host, account, region):
    registry = parse_image_reference(f"{host}/team/fraud-model:v1").ecr
    assert registry is not None
    assert (registry.host, registry.account_id, registry.region) == (host, account, region)


@pytest.mark.parametrize(
    "host",
    [
        "public.ecr.aws",
        "12345678901.dkr.ecr.us-east-1.amazonaws.com",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.example",
        "123456789012.dkr.ecr.amazonaws.com",
        "ghcr.io",
    ],
)
def test_other_registries_are_not_ecr(host):
    assert ecr_registry(host) is None
    assert parse_image_reference(f"{host}/fraud-model:v1").ecr is None


def test_a_reference_without_registry_is_not_ecr():
    assert parse_image_reference("python:3.11").ecr is None


@pytest.mark.parametrize(
    "reference",
    [
        f"{REGISTRY}/fraud-model:prod",
        f"{REGISTRY}/fraud-model@{DIGEST_B}",
        f"{REGISTRY}/fraud-model:v1@{DIGEST_B}",
    ],
)
def test_pinned_replaces_tag_and_digest_with_the_digest(reference):
    assert pinned(reference, DIGEST_A) == f"{REGISTRY}/fraud-model@{DIGEST_A}"
    assert pinned(pinned(reference, DIGEST_A), DIGEST_A) == pinned(reference, DIGEST_A)
    assert pinned(parse_image_reference(reference), DIGEST_A) == pinned(reference, DIGEST_A)


def test_pinned_rejects_a_bad_digest():
    with pytest.raises(InvalidSpecError, match="Write the digest as sha256"):
        pinned(f"{REGISTRY}/fraud-model:v1", "sha256:short")


def test_pinned_keeps_docker_hub_names_as_written():
    assert pinned("acme/fraud-model:v1", DIGEST_A) == f"acme/fraud-model@{DIGEST_A}"


# Policy --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["require", "prefer", "off", SociPolicy.PREFER])
def test_policy_coerces_names_and_members(value):
    assert SociPolicy.coerce(value) is SociPolicy(value)


def test_unknown_policy_names_the_choices():
    with pytest.raises(InvalidSpecError) as caught:
        SociPolicy.coerce("always")
    assert caught.value.field == "soci"
    assert "'require', 'prefer' or 'off'" in caught.value.fix


# SOCI v2 --------------------------------------------------------------------------------------------


def test_v2_is_read_from_the_image_index_alone():
    finding = detect_soci_v2(doc("soci-v2/image-index.json"))
    assert finding == SociFinding("v2", digest("soci-v2/soci-index-manifest.json"), "image-index")


def test_v2_is_confirmed_by_the_soci_index_manifest():
    soci_digest = digest("soci-v2/soci-index-manifest.json")
    finding = detect_soci_v2(
        doc("soci-v2/image-index.json"), None, {soci_digest: doc("soci-v2/soci-index-manifest.json")}
    )
    assert finding == SociFinding("v2", soci_digest, "soci-index-manifest")


def test_v2_index_that_cannot_be_fetched_is_judged_by_the_image_index_and_says_so():
    soci_digest = digest("soci-v2/soci-index-manifest.json")
    finding = detect_soci_v2(doc("soci-v2/image-index.json"), None, {soci_digest: None})
    assert finding is not None
    assert (finding.version, finding.source) == ("v2", "image-index")
    assert "could not be fetched" in finding.notes[0]


def test_v2_link_to_a_manifest_that_is_not_a_soci_index_is_refuted():
    soci_digest = digest("soci-v2/soci-index-manifest.json")
    finding = detect_soci_v2(
        doc("soci-v2/image-index.json"), None, {soci_digest: doc("plain/image-manifest.json")}
    )
    assert finding is not None
    assert finding.version is None
    assert "is not a SOCI v2 index" in finding.notes[0]


def test_v2_descriptor_that_does_not_declare_itself_needs_the_manifest():
    index = doc("soci-v2/image-index.json")
    soci_entry = index["manifests"][1]
    del soci_entry["artifactType"]
    del soci_entry["annotations"]
    soci_digest = soci_entry["digest"]
    assert [link.declared for link in soci_v2_links(index)] == [False]
    undecided = detect_soci_v2(index)
    assert undecided is not None and undecided.version is None
    confirmed = detect_soci_v2(index, None, {soci_digest: doc("soci-v2/soci-index-manifest.json")})
    assert confirmed == SociFinding("v2", soci_digest, "soci-index-manifest")


def test_v2_annotation_naming_a_manifest_missing_from_the_index_is_no_link():
    index = doc("soci-v2/image-index.json")
    index["manifests"] = index["manifests"][:1]
    assert soci_v2_links(index) == []
    assert detect_soci_v2(index) is None


def test_v2_back_annotation_alone_declares_the_soci_index():
    index = doc("soci-v2/image-index.json")
    del index["manifests"][1]["artifactType"]
    finding = detect_soci_v2(index)
    assert finding is not None and finding.version == "v2"


def test_v2_prefers_the_linux_amd64_soci_index_of_a_multi_platform_image():
    index = doc("soci-v2/image-index.json")
    arm = copy.deepcopy(index["manifests"])
    arm_image, arm_soci = arm
    arm_image["digest"], arm_soci["digest"] = DIGEST_A, DIGEST_B
    arm_image["annotations"][ANNOTATION_SOCI_INDEX_DIGEST] = DIGEST_B
    arm_soci["annotations"][ANNOTATION_IMAGE_MANIFEST_DIGEST] = DIGEST_A
    for entry in arm:
        entry["platform"] = {"architecture": "arm64", "os": "linux", "variant": "v8"}
    index["manifests"] = arm + index["manifests"]
    links = soci_v2_links(index)
    assert [link.platform for link in links] == ["linux/amd64", "linux/arm64/v8"]
    finding = detect_soci_v2(index)
    assert finding is not None and finding.index_digest == digest("soci-v2/soci-index-manifest.json")


@pytest.mark.parametrize("name", ["plain/image-manifest.json", "soci-v1/soci-index-manifest.json"])
def test_no_v2_in_a_plain_manifest_or_a_v1_artifact(name):
    assert detect_soci_v2(doc(name)) is None


def test_no_v2_in_a_docker_manifest_list_even_with_the_annotations():
    index = doc("soci-v2/image-index.json")
    index["mediaType"] = DOCKER_MANIFEST_LIST
    assert detect_soci_v2(index) is None


def test_v2_needs_no_media_type_field_when_the_registry_reports_it():
    index = doc("soci-v2/image-index.json")
    del index["mediaType"]
    finding = detect_soci_v2(index, OCI_IMAGE_INDEX)
    assert finding is not None and finding.version == "v2"


@pytest.mark.parametrize(
    ("name", "version"),
    [
        ("soci-v2/soci-index-manifest.json", "v2"),
        ("soci-v1/soci-index-manifest.json", "v1"),
        ("plain/image-manifest.json", None),
        ("soci-v2/image-index.json", None),
    ],
)
def test_soci_index_version_reads_the_config_media_type(name, version):
    assert soci_index_version(doc(name)) == version


def test_soci_index_version_also_reads_an_oci_1_1_artifact_type():
    artifact = doc("soci-v1/soci-index-manifest.json")
    artifact["config"]["mediaType"] = "application/vnd.oci.empty.v1+json"
    artifact["artifactType"] = SOCI_INDEX_V1
    assert soci_index_version(artifact) == "v1"


# SOCI v1 --------------------------------------------------------------------------------------------


def test_v1_is_the_artifact_whose_subject_is_the_image():
    image = text("plain/image-manifest.json")
    subjects = image_manifest_digests(json.loads(image), None, digest("plain/image-manifest.json"), image)
    candidates = {
        DIGEST_B: doc("soci-v1/soci-index-manifest.json"),
        DIGEST_A: doc("plain/image-manifest-next.json"),
    }
    assert detect_soci_v1(subjects, candidates, "repository-scan") == SociFinding(
        "v1", DIGEST_B, "repository-scan"
    )


def test_v1_of_another_image_does_not_count():
    other = text("plain/image-manifest-next.json")
    subjects = image_manifest_digests(
        json.loads(other), None, digest("plain/image-manifest-next.json"), other
    )
    assert (
        detect_soci_v1(subjects, {DIGEST_B: doc("soci-v1/soci-index-manifest.json")}, "repository-scan")
        is None
    )


def test_a_v2_soci_index_is_not_a_v1_index_even_with_a_subject():
    v2 = doc("soci-v2/soci-index-manifest.json")
    v2["subject"] = doc("soci-v1/soci-index-manifest.json")["subject"]
    subjects = {v2["subject"]["digest"]}
    assert detect_soci_v1(subjects, {DIGEST_B: v2}, "repository-scan") is None


def test_subject_digests_cover_reported_and_content_digests_and_index_children():
    image = text("plain/image-manifest.json")
    # moto reports made-up digests: the content digest is what a v1 subject holds.
    assert image_manifest_digests(json.loads(image), None, DIGEST_A, image) == {
        DIGEST_A,
        digest("plain/image-manifest.json"),
    }
    index = text("soci-v2/image-index.json")
    children = image_manifest_digests(json.loads(index), None, digest("soci-v2/image-index.json"), index)
    assert digest("soci-v2/image-manifest.json") in children
    assert digest("soci-v2/soci-index-manifest.json") in children  # harmless: never a v1 subject


def test_referrers_yield_an_active_v1_index():
    referrers = [
        {"digest": DIGEST_A, "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json"},
        {"digest": DIGEST_B, "artifactType": SOCI_INDEX_V1, "artifactStatus": "ARCHIVED"},
        {"digest": DIGEST_A, "artifactType": SOCI_INDEX_V1, "artifactStatus": "ACTIVE"},
    ]
    assert soci_v1_from_referrers(referrers) == DIGEST_A
    assert soci_v1_from_referrers(referrers[:2]) is None


def _detail(digest_: str, pushed: int, tags: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    detail = {
        "imageDigest": digest_,
        "imagePushedAt": dt.datetime(2026, 11, 28, 15, 0, pushed, tzinfo=dt.timezone.utc),
        "imageManifestMediaType": OCI_IMAGE_MANIFEST,
        **extra,
    }
    if tags:
        detail["imageTags"] = tags
    return detail


def test_image_details_that_name_the_subject_answer_without_fetching():
    image = "sha256:" + "1" * 64
    details = [
        _detail("sha256:" + "2" * 64, 1, artifactMediaType=SOCI_INDEX_V1, subjectManifestDigest=DIGEST_A),
        _detail("sha256:" + "3" * 64, 2, artifactMediaType=SOCI_INDEX_V1, subjectManifestDigest=image),
    ]
    assert soci_v1_from_image_details(details, {image}) == "sha256:" + "3" * 64
    assert soci_v1_from_image_details(details[:1], {image}) is None


def test_scan_candidates_skip_what_ecr_describes_as_something_else_and_order_the_rest():
    image = "sha256:" + "1" * 64
    details = [
        _detail(image, 0, ["v42"]),
        _detail("sha256:" + "2" * 64, 1, ["v41"]),
        _detail("sha256:" + "3" * 64, 2),
        _detail("sha256:" + "4" * 64, 3),
        _detail("sha256:" + "5" * 64, 4, artifactMediaType="application/vnd.oci.image.config.v1+json"),
        _detail("sha256:" + "6" * 64, 5, artifactMediaType=SOCI_INDEX_V1, subjectManifestDigest=DIGEST_A),
        _detail("sha256:" + "7" * 64, 6, imageManifestMediaType=OCI_IMAGE_INDEX),
    ]
    assert soci_v1_scan_candidates(details, {image}, limit=10) == [
        "sha256:" + "4" * 64,
        "sha256:" + "3" * 64,
        "sha256:" + "2" * 64,
    ]
    assert soci_v1_scan_candidates(details, {image}, limit=1) == ["sha256:" + "4" * 64]


def test_newest_tags_come_first():
    details = [_detail(DIGEST_A, 1, ["v41", "stable"]), _detail(DIGEST_B, 9, ["v42"]), _detail(DIGEST_A, 5)]
    assert newest_tags(details, 2) == ["v42", "v41"]


# Runnable images --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("plain/image-manifest.json", None),
        ("soci-v2/image-index.json", None),
        ("soci-v1/soci-index-manifest.json", "it is a SOCI v1 index"),
        ("soci-v2/soci-index-manifest.json", "it is a SOCI v2 index"),
    ],
)
def test_only_images_and_image_indexes_are_runnable(name, reason):
    found = not_runnable_reason(doc(name))
    if reason is None:
        assert found is None
    else:
        assert reason in str(found)


def test_an_oci_artifact_that_is_not_an_image_is_not_runnable():
    chart = doc("plain/image-manifest.json")
    chart["config"]["mediaType"] = "application/vnd.cncf.helm.config.v1+json"
    assert "application/vnd.cncf.helm.config.v1+json" in str(not_runnable_reason(chart))


# The policy matrix: three images x three policies ---------------------------------------------------


def _resolution_of(kind: str) -> ImageResolution:
    """Resolve one of the fixture images the way the ECR hook does, from its manifests alone."""
    if kind == "soci-v2":
        name, reference = "soci-v2/image-index.json", f"{REGISTRY}/fraud-model:v42-soci"
        finding = detect_soci_v2(doc(name), None, {digest("soci-v2/soci-index-manifest.json"): None})
    else:
        name, reference = "plain/image-manifest.json", f"{REGISTRY}/fraud-model:v42"
        subjects = image_manifest_digests(doc(name), None, digest(name), text(name))
        artifacts = {digest("soci-v1/soci-index-manifest.json"): doc("soci-v1/soci-index-manifest.json")}
        finding = detect_soci_v1(subjects, artifacts if kind == "soci-v1" else {}, "repository-scan")
        finding = finding or SociFinding(None, None, "repository-scan")
    assert finding is not None
    return ImageResolution(
        reference=reference,
        pinned=pinned(reference, digest(name)),
        digest=digest(name),
        media_type=doc(name)["mediaType"],
        soci=finding.version,
        soci_index_digest=finding.index_digest,
        resolved_by="tag",
        soci_source=finding.source,
        notes=finding.notes,
    )


MATRIX = [
    ("soci-v2", "require", "ok"),
    ("soci-v2", "prefer", "ok"),
    ("soci-v2", "off", "ok"),
    ("soci-v1", "require", "warn:v1"),
    ("soci-v1", "prefer", "warn:v1"),
    ("soci-v1", "off", "ok"),
    ("none", "require", "fail"),
    ("none", "prefer", "warn:none"),
    ("none", "off", "ok"),
]


@pytest.mark.parametrize(("kind", "policy", "outcome"), MATRIX, ids=[f"{k}-{p}-{o}" for k, p, o in MATRIX])
def test_soci_policy_matrix(kind, policy, outcome):
    resolution = _resolution_of(kind)
    assert resolution.soci == {"soci-v2": "v2", "soci-v1": "v1", "none": None}[kind]
    if outcome == "fail":
        with pytest.raises(InvalidSpecError) as caught:
            check_soci(resolution, policy)
        assert caught.value.field == "image"
        assert "has no SOCI index, and soci='require'" in caught.value.problem
        return
    warning = check_soci(resolution, policy)
    if outcome == "ok":
        assert warning is None
    elif outcome == "warn:v1":
        assert warning is not None and "only a SOCI v1 index" in warning and "soci convert" in warning
    else:
        assert warning is not None and "has no SOCI index" in warning and "without lazy loading" in warning


def test_require_without_an_index_says_how_to_build_one_and_which_tag_to_use():
    with pytest.raises(InvalidSpecError) as caught:
        check_soci(_resolution_of("none"), SociPolicy.REQUIRE)
    message = str(caught.value)
    assert message.startswith(f"image: {REGISTRY}/fraud-model:v42 (sha256:")
    source, target = f"{REGISTRY}/fraud-model:v42", f"{REGISTRY}/fraud-model:v42-soci"
    assert f"soci convert --all-platforms {source} {target}" in message
    assert f"nerdctl image convert --soci {source} {target}" in message
    assert f"nerdctl push --all-platforms {target}" in message
    assert f"set image to '{target}'" in message
    assert "soci-snapshotter >= 0.10" in message


def test_soci_tag_fits_the_tag_limit_and_exists_for_digest_references():
    assert soci_tag_for(parse_image_reference(f"{REGISTRY}/m:{'t' * 128}")) == "t" * 123 + "-soci"
    assert soci_tag_for(parse_image_reference(f"{REGISTRY}/m@{DIGEST_A}")) == "sha256-aaaaaaaaaaaa-soci"
    assert f"{REGISTRY}/m:sha256-aaaaaaaaaaaa-soci" in soci_build_fix(f"{REGISTRY}/m@{DIGEST_A}")


# Registries without an API ---------------------------------------------------------------------------


def test_a_pinned_reference_elsewhere_passes_through_unchecked():
    resolution = resolve_pinned_reference(f"ghcr.io/acme/fraud-model:v1@{DIGEST_A}")
    assert resolution.pinned == f"ghcr.io/acme/fraud-model@{DIGEST_A}"
    assert (resolution.resolved_by, resolution.soci_source, resolution.soci) == (
        "reference",
        "not-checked",
        None,
    )
    assert check_soci(resolution, "off") is None
    assert "could not be checked for a SOCI index" in str(check_soci(resolution, "prefer"))
    with pytest.raises(InvalidSpecError, match="ghcr.io is not an ECR registry"):
        check_soci(resolution, "require")


def test_a_tag_elsewhere_cannot_be_pinned_and_the_fix_says_how():
    with pytest.raises(InvalidSpecError) as caught:
        resolve_pinned_reference("python:3.11-slim")
    assert "not in an Amazon ECR registry" in caught.value.problem
    assert "'python@sha256:<digest>'" in caught.value.fix
    assert "crane digest python:3.11-slim" in caught.value.fix


# Resolutions travel through XCom ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["soci-v2", "soci-v1", "none"])
def test_resolution_is_json_safe_for_xcom(kind):
    resolution = _resolution_of(kind)
    data = json.loads(json.dumps(resolution.to_dict()))
    assert data == {**dataclasses.asdict(resolution), "notes": list(resolution.notes)}
    assert data["pinned"] == resolution.pinned and isinstance(data["notes"], list)


def test_importing_images_pulls_in_no_aws_sdk():
    code = (
        "import sys, lyftlearn_provider.images; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in {'boto3', 'botocore', 'aiobotocore'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_image_reference_is_hashable_and_frozen():
    image = ImageReference(REGISTRY, "fraud-model", "v1")
    assert {image: 1}[parse_image_reference(f"{REGISTRY}/fraud-model:v1")] == 1
    with pytest.raises(AttributeError):
        image.tag = "v2"  # type: ignore[misc]
