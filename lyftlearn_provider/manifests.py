"""OCI manifests as registries return them: media types, what is runnable, and SOCI indexes.

SOCI (Seekable OCI) lets SageMaker and the SOCI snapshotter start a container before its image
is downloaded. Two formats exist and both are recognised here, from the manifests alone:

- **v2, a SOCI-enabled image** (``soci convert``, soci-snapshotter >= 0.10, the default now): an OCI
  image index whose image manifest descriptor is annotated ``com.amazon.soci.index-digest: <d>``
  and which also lists the manifest ``<d>``, the SOCI index: an OCI image manifest whose
  ``config.mediaType`` is ``application/vnd.amazon.soci.index.v2+json`` and whose descriptor in the
  index has that ``artifactType`` and the annotation ``com.amazon.soci.image-manifest-digest``
  pointing back. The index alone is enough to tell; fetching ``<d>`` confirms it.
- **v1**: a separate artifact, an OCI image manifest whose ``config.mediaType`` (or
  ``artifactType``) is ``application/vnd.amazon.soci.index.v1+json`` and whose ``subject`` is the
  image manifest. It is found through the OCI referrers API or by scanning the repository.
  soci-snapshotter >= 0.10 ignores v1 indexes unless configured to use them.

Everything here is pure and imports only the standard library: the ECR hook fetches, this decides.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, cast

OCI_IMAGE_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_IMAGE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
#: What we ask ECR for (``acceptedMediaTypes``): without it ECR may down-convert to schema 1.
MANIFEST_MEDIA_TYPES = (OCI_IMAGE_INDEX, OCI_IMAGE_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)
INDEX_MEDIA_TYPES = frozenset({OCI_IMAGE_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_MANIFEST_MEDIA_TYPES = frozenset({OCI_IMAGE_MANIFEST, DOCKER_MANIFEST})
IMAGE_CONFIG_MEDIA_TYPES = frozenset(
    {"application/vnd.oci.image.config.v1+json", "application/vnd.docker.container.image.v1+json"}
)

SOCI_INDEX_V1 = "application/vnd.amazon.soci.index.v1+json"
SOCI_INDEX_V2 = "application/vnd.amazon.soci.index.v2+json"
SOCI_INDEX_TYPES = frozenset({SOCI_INDEX_V1, SOCI_INDEX_V2})
#: On an image manifest (and its descriptor) in a SOCI-enabled image: the digest of its SOCI index.
ANNOTATION_SOCI_INDEX_DIGEST = "com.amazon.soci.index-digest"
#: On the SOCI index descriptor in a SOCI-enabled image: the digest of the image manifest it indexes.
ANNOTATION_IMAGE_MANIFEST_DIGEST = "com.amazon.soci.image-manifest-digest"
#: The platform SageMaker training instances run; its SOCI index is the one reported.
PREFERRED_PLATFORM = "linux/amd64"

SociVersion = Literal["v2", "v1"]
#: How the SOCI answer (yes or no) was reached. ``image-index``: from the image index alone;
#: ``soci-index-manifest``: the image index, confirmed by the SOCI index manifest it names;
#: ``referrers-api``: ECR's ListImageReferrers; ``repository-scan``: the repository's manifests;
#: ``not-checked``: policy ``off``, or a registry we cannot query.
SociSource = Literal["image-index", "soci-index-manifest", "referrers-api", "repository-scan", "not-checked"]

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}", re.ASCII)


def sha256_digest(data: bytes | str) -> str:
    """Return the OCI digest (``sha256:<hex>``) of a manifest's bytes (a ``str`` is encoded as UTF-8)."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def media_type_of(document: Mapping[str, Any], reported: str | None = None) -> str | None:
    """Return a manifest's media type: its own ``mediaType``, else the registry's, else guessed by shape."""
    own = document.get("mediaType")
    if isinstance(own, str) and own:
        return own
    if reported:
        return reported
    if isinstance(document.get("manifests"), list):
        return OCI_IMAGE_INDEX
    if isinstance(document.get("config"), Mapping):
        return OCI_IMAGE_MANIFEST
    return None


def _descriptors(document: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = document.get(key)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _annotations(item: Mapping[str, Any]) -> Mapping[str, Any]:
    value = item.get("annotations")
    return value if isinstance(value, Mapping) else {}


def _valid_digest(value: object) -> str | None:
    return value if isinstance(value, str) and _DIGEST.fullmatch(value) else None


def _platform(descriptor: Mapping[str, Any]) -> str | None:
    platform = descriptor.get("platform")
    if not isinstance(platform, Mapping):
        return None
    os_name, architecture = platform.get("os"), platform.get("architecture")
    if not isinstance(os_name, str) or not isinstance(architecture, str):
        return None
    variant = platform.get("variant")
    return f"{os_name}/{architecture}" + (f"/{variant}" if isinstance(variant, str) and variant else "")


def soci_index_version(document: Mapping[str, Any]) -> SociVersion | None:
    """Return ``"v1"`` or ``"v2"`` when ``document`` is a SOCI index manifest, else None.

    A SOCI index is an OCI image manifest whose ``config.mediaType`` (or ``artifactType``) is one of
    the two SOCI index media types.
    """
    if media_type_of(document) != OCI_IMAGE_MANIFEST:
        return None
    config = document.get("config")
    kinds = {document.get("artifactType"), config.get("mediaType") if isinstance(config, Mapping) else None}
    if SOCI_INDEX_V2 in kinds:
        return "v2"
    if SOCI_INDEX_V1 in kinds:
        return "v1"
    return None


def not_runnable_reason(document: Mapping[str, Any], media_type: str | None = None) -> str | None:
    """Return why a manifest is not a runnable container image (an index of images counts as one), or None."""
    kind = media_type_of(document, media_type)
    if kind in INDEX_MEDIA_TYPES:
        return None
    if kind not in IMAGE_MANIFEST_MEDIA_TYPES:
        return f"its manifest media type is {kind!r}, not an image manifest or image index"
    version = soci_index_version(document)
    if version is not None:
        return f"it is a SOCI {version} index, not the image it indexes"
    config = document.get("config")
    config_type = config.get("mediaType") if isinstance(config, Mapping) else None
    if config_type not in IMAGE_CONFIG_MEDIA_TYPES:
        return f"it is an artifact with config media type {config_type!r}, not a container image"
    return None


def image_manifest_digests(
    document: Mapping[str, Any],
    media_type: str | None,
    reported_digest: str,
    manifest_text: str | None = None,
) -> frozenset[str]:
    """Return every digest a SOCI v1 index may name as its ``subject`` for this image.

    That is the digest the registry reports, the sha256 of the manifest bytes (the same on ECR; not
    on moto, whose digests are not the manifests' hashes), and for an image index the digest of
    each image manifest it lists (a v1 index is made per platform manifest).
    """
    digests = {reported_digest}
    if manifest_text is not None:
        digests.add(sha256_digest(manifest_text))
    if media_type_of(document, media_type) in INDEX_MEDIA_TYPES:
        for descriptor in _descriptors(document, "manifests"):
            digest = _valid_digest(descriptor.get("digest"))
            if digest and descriptor.get("mediaType") in IMAGE_MANIFEST_MEDIA_TYPES:
                digests.add(digest)
    return frozenset(digests)


# SOCI detection ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SociFinding:
    """The answer to "is this image SOCI-indexed?": which version, which index, and how we know."""

    version: SociVersion | None
    index_digest: str | None
    source: SociSource
    notes: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class SociV2Link:
    """An image manifest in an image index that names its SOCI index, which the image index also lists.

    ``declared`` says whether the SOCI index's descriptor declares itself (``artifactType`` v2, or the
    annotation pointing back at the image manifest), so that the image index alone is proof.
    """

    manifest_digest: str
    index_digest: str
    platform: str | None
    declared: bool


def soci_v2_links(index: Mapping[str, Any], media_type: str | None = None) -> list[SociV2Link]:
    """Return the SOCI v2 links of an image index, preferred platform first; empty for any other image."""
    if media_type_of(index, media_type) != OCI_IMAGE_INDEX:
        return []
    descriptors = _descriptors(index, "manifests")
    by_digest = {digest: item for item in descriptors if (digest := _valid_digest(item.get("digest")))}
    links = []
    for item in descriptors:
        manifest_digest = _valid_digest(item.get("digest"))
        index_digest = _valid_digest(_annotations(item).get(ANNOTATION_SOCI_INDEX_DIGEST))
        if manifest_digest is None or index_digest is None or item.get("artifactType") in SOCI_INDEX_TYPES:
            continue
        soci = by_digest.get(index_digest)
        if soci is None:
            continue
        declared = (
            soci.get("artifactType") == SOCI_INDEX_V2
            or _annotations(soci).get(ANNOTATION_IMAGE_MANIFEST_DIGEST) == manifest_digest
        )
        links.append(SociV2Link(manifest_digest, index_digest, _platform(item), declared))
    return sorted(links, key=lambda link: link.platform != PREFERRED_PLATFORM)


def detect_soci_v2(
    index: Mapping[str, Any],
    media_type: str | None = None,
    soci_manifests: Mapping[str, Mapping[str, Any] | None] | None = None,
) -> SociFinding | None:
    """Return the SOCI v2 finding for an image index, or None when nothing in it points at a SOCI index.

    ``soci_manifests`` maps SOCI index digests (from :func:`soci_v2_links`) to the manifests fetched
    for them, None where a fetch found nothing; leave it out to decide from the index alone. A fetched
    manifest that is a v2 SOCI index confirms the link, one that is not refutes it; an unfetched one
    leaves the decision to the index, which must then declare the SOCI index itself.
    """
    links = soci_v2_links(index, media_type)
    if not links:
        return None
    notes: list[str] = []
    for link in links:
        fetched = soci_manifests.get(link.index_digest) if soci_manifests is not None else None
        if fetched is not None:
            if soci_index_version(fetched) == "v2":
                return SociFinding("v2", link.index_digest, "soci-index-manifest", tuple(notes))
            notes.append(f"manifest {link.index_digest}, named by the image index, is not a SOCI v2 index")
            continue
        if soci_manifests is not None:
            notes.append(
                f"SOCI index manifest {link.index_digest} could not be fetched; judged by the image index"
            )
        if link.declared:
            return SociFinding("v2", link.index_digest, "image-index", tuple(notes))
        notes.append(f"descriptor {link.index_digest} in the image index does not declare a SOCI v2 index")
    return SociFinding(None, None, "image-index", tuple(notes))


def detect_soci_v1(
    image_digests: Iterable[str], candidates: Mapping[str, Mapping[str, Any]], source: SociSource
) -> SociFinding | None:
    """Return the SOCI v1 finding among ``candidates`` (digest to manifest) whose subject is the image.

    ``image_digests`` come from :func:`image_manifest_digests`; the candidate's digest is the one the
    registry reports for it. None when no candidate is a v1 SOCI index of this image.
    """
    subjects = frozenset(image_digests)
    for digest, document in sorted(candidates.items()):
        subject = document.get("subject")
        if (
            soci_index_version(document) == "v1"
            and isinstance(subject, Mapping)
            and _valid_digest(subject.get("digest")) in subjects
        ):
            return SociFinding("v1", digest, source)
    return None


def soci_v1_from_referrers(referrers: Iterable[Mapping[str, Any]]) -> str | None:
    """Return the digest of an active SOCI v1 index among ECR ``ListImageReferrers`` results, or None."""
    for referrer in referrers:
        status = referrer.get("artifactStatus", "ACTIVE")
        if (
            referrer.get("artifactType") == SOCI_INDEX_V1
            and status == "ACTIVE"
            and _valid_digest(referrer.get("digest"))
        ):
            return cast(str, referrer["digest"])
    return None


def soci_v1_from_image_details(
    details: Iterable[Mapping[str, Any]], image_digests: Iterable[str]
) -> str | None:
    """Return a SOCI v1 index digest from ECR ``DescribeImages`` details that say so outright, or None.

    Real ECR reports ``artifactMediaType`` and ``subjectManifestDigest`` for referrers; when it does,
    no manifest has to be fetched.
    """
    subjects = frozenset(image_digests)
    for detail in details:
        if (
            detail.get("artifactMediaType") == SOCI_INDEX_V1
            and detail.get("subjectManifestDigest") in subjects
        ):
            return _valid_digest(detail.get("imageDigest"))
    return None


def soci_v1_scan_candidates(
    details: Sequence[Mapping[str, Any]], image_digests: Iterable[str], limit: int
) -> list[str]:
    """Return the digests of up to ``limit`` images whose manifests may be SOCI v1 indexes of this image.

    Images that ECR describes as something else (another ``artifactMediaType``, another subject, an
    index) are skipped; the rest (a registry that does not describe referrers, like moto) are taken
    untagged first (indexes are pushed untagged), newest first.
    """
    subjects = frozenset(image_digests)
    chosen = []
    for detail in details:
        digest = _valid_digest(detail.get("imageDigest"))
        if digest is None or digest in subjects:
            continue
        if detail.get("imageManifestMediaType", OCI_IMAGE_MANIFEST) != OCI_IMAGE_MANIFEST:
            continue
        if detail.get("artifactMediaType") not in (None, SOCI_INDEX_V1):
            continue
        if detail.get("subjectManifestDigest") not in (None, *subjects):
            continue
        chosen.append(detail)
    chosen.sort(key=lambda detail: (bool(detail.get("imageTags")), -_pushed_at(detail)))
    return [cast(str, detail["imageDigest"]) for detail in chosen[:limit]]


def newest_tags(details: Iterable[Mapping[str, Any]], count: int) -> list[str]:
    """Return up to ``count`` tags from ECR ``DescribeImages`` details, most recently pushed first."""
    ordered = sorted(details, key=_pushed_at, reverse=True)
    return [tag for detail in ordered for tag in detail.get("imageTags") or ()][:count]


def _pushed_at(detail: Mapping[str, Any]) -> float:
    pushed = detail.get("imagePushedAt")
    if isinstance(pushed, datetime.datetime):
        return pushed.timestamp()
    return float(pushed) if isinstance(pushed, (int, float)) else 0.0
