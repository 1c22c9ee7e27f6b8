"""Push realistic container images, SOCI-indexed or not, into the emulator's ECR.

The manifests are real OCI documents (compact JSON, digests that are the sha256 of the bytes, as
``soci convert`` and ``nerdctl push`` produce them); only the blobs they point at do not exist.
Use it to give a DAG under test the image its ``RuntimeSpec`` names::

    push_image(boto3.client("ecr"), "fraud-model", "2026.11.28", soci="v2")
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
SOCI_V1 = "application/vnd.amazon.soci.index.v1+json"
SOCI_V2 = "application/vnd.amazon.soci.index.v2+json"
_PLATFORM = {"architecture": "amd64", "os": "linux"}
_EMPTY_CONFIG = {
    "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    "size": 2,
}


def _json(document: dict[str, Any]) -> str:
    return json.dumps(document, separators=(",", ":"))


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def _blob(seed: str) -> str:
    return _digest(f"blob:{seed}")


def _put(ecr: Any, repository: str, body: str, tag: str | None = None) -> str:
    extra = {"imageTag": tag} if tag else {}
    # imageDigest makes moto report the real digest, as ECR does; moto would otherwise invent one.
    image = ecr.put_image(
        repositoryName=repository,
        imageManifest=body,
        imageManifestMediaType=json.loads(body)["mediaType"],
        imageDigest=_digest(body),
        **extra,
    )["image"]
    return str(image["imageId"]["imageDigest"])


def image_manifest(build: str, annotations: dict[str, str] | None = None) -> str:
    """Return an OCI image manifest with three gzip layers (28 MiB, 775 MiB, 4 MiB) for ``build``."""
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": _blob(f"{build}:config"),
            "size": 7023,
        },
        "layers": [
            {"mediaType": LAYER, "digest": _blob(f"{build}:layer{i}"), "size": size}
            for i, size in enumerate((29_534_055, 812_339_672, 4_194_304))
        ],
    }
    if annotations:
        document["annotations"] = annotations
    return _json(document)


def soci_index_manifest(image: str, version: Literal["v1", "v2"]) -> str:
    """Return a SOCI index for the image manifest ``image``: one zTOC per layer of 10 MiB or more."""
    layers = [layer for layer in json.loads(image)["layers"] if layer["size"] >= 10 * 1024 * 1024]
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": SOCI_V1 if version == "v1" else SOCI_V2, **_EMPTY_CONFIG},
        "layers": [
            {
                "mediaType": "application/octet-stream",
                "digest": _blob(f"ztoc:{layer['digest']}"),
                "size": 1_048_576,
                "annotations": {
                    "com.amazon.soci.image-layer-digest": layer["digest"],
                    "com.amazon.soci.image-layer-mediaType": layer["mediaType"],
                },
            }
            for layer in layers
        ],
    }
    if version == "v1":
        document["subject"] = {"mediaType": OCI_MANIFEST, "digest": _digest(image), "size": len(image)}
    return _json(document)


def push_image(
    ecr: Any, repository: str, tag: str, *, soci: Literal["v1", "v2"] | None = "v2", build: str | None = None
) -> str:
    """Push an image under ``repository:tag`` (creating the repository); return the digest a tag pins.

    ``soci="v2"`` pushes a SOCI-enabled image (an image index holding the annotated manifest and its
    SOCI index), ``"v1"`` the image plus a v1 SOCI index artifact whose subject is the image, and None
    a plain image. ``build`` varies the layers, e.g. to move a tag to a new build.
    """
    try:
        ecr.create_repository(repositoryName=repository)
    except ecr.exceptions.RepositoryAlreadyExistsException:
        pass
    build = build or f"{repository}:{tag}"
    if soci != "v2":
        image = image_manifest(build)
        digest = _put(ecr, repository, image, tag)
        if soci == "v1":
            _put(ecr, repository, soci_index_manifest(image, "v1"))
        return digest
    # A v2 index names the layers, not the manifest, so the manifest can carry the index's digest.
    index = soci_index_manifest(image_manifest(build), "v2")
    annotated = image_manifest(build, {"com.amazon.soci.index-digest": _digest(index)})
    _put(ecr, repository, annotated)
    _put(ecr, repository, index)
    listing = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            {
                "mediaType": OCI_MANIFEST,
                "digest": _digest(annotated),
                "size": len(annotated),
                "annotations": {"com.amazon.soci.index-digest": _digest(index)},
                "platform": _PLATFORM,
            },
            {
                "mediaType": OCI_MANIFEST,
                "digest": _digest(index),
                "size": len(index),
                "annotations": {"com.amazon.soci.image-manifest-digest": _digest(annotated)},
                "platform": _PLATFORM,
                "artifactType": SOCI_V2,
            },
        ],
    }
    return _put(ecr, repository, _json(listing), tag)
