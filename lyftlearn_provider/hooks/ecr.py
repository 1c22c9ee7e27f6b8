"""Amazon ECR images resolved to a digest once per run, and their SOCI indexes found.

How each question is answered, with the fewest calls:

- **Which digest?** One ``BatchGetImage`` for the tag (or, for a pinned reference, for the digest,
  which verifies that it exists), asking for OCI and Docker manifests and indexes alike. The digest
  pinned is the one ECR reports for the image, which is what SageMaker and Kubernetes pull by.
- **SOCI v2?** Read from the image index just fetched; the SOCI index manifest it names is fetched
  (one more ``BatchGetImage``) to confirm it.
- **SOCI v1?** ``ListImageReferrers`` for the image manifest. Where that API fails (registries and
  emulators without it: moto answers HTTP 500), the repository is scanned instead: ``DescribeImages``,
  then ``BatchGetImage`` of the images that may be SOCI v1 indexes, matching their ``subject`` against
  the image. A v1 index's ``subject`` holds the sha256 of the image manifest's bytes; on ECR that is
  the digest ECR reports, on moto it is not (moto makes up digests unless ``PutImage`` is given
  ``imageDigest``), so both are matched.

References into registries other than ECR are not queried: a reference pinned by digest passes
through unverified (SOCI ``not-checked``), a tag-only one is rejected with the fix.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.amazon.aws.hooks.ecr import EcrHook
from botocore.config import Config
from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from lyftlearn_provider.exceptions import InvalidSpecError, ServiceError
from lyftlearn_provider.hooks.base import PatientHookMixin
from lyftlearn_provider.images import (
    EcrRegistry,
    ImageReference,
    ImageResolution,
    ResolvedBy,
    SociPolicy,
    check_soci,
    parse_image_reference,
    pinned,
    resolve_pinned_reference,
)
from lyftlearn_provider.manifests import (
    MANIFEST_MEDIA_TYPES,
    SOCI_INDEX_V1,
    SociFinding,
    detect_soci_v1,
    detect_soci_v2,
    image_manifest_digests,
    newest_tags,
    not_runnable_reason,
    sha256_digest,
    soci_v1_from_image_details,
    soci_v1_from_referrers,
    soci_v1_scan_candidates,
    soci_v2_links,
)
from lyftlearn_provider.retries import DEFAULT_PATIENCE_SECONDS, error_code, is_throttling

if TYPE_CHECKING:
    from botocore.client import BaseClient

#: At most this many images of a repository are described when scanning it for a SOCI v1 index...
DEFAULT_SCAN_LIMIT = 1000
#: ... and at most this many of their manifests fetched.
DEFAULT_SCAN_FETCH_LIMIT = 200
#: BatchGetImage takes at most 100 image ids; DescribeImages returns at most 1000 images a page.
BATCH_GET_IMAGE_MAX_IDS = 100
DESCRIBE_IMAGES_MAX_RESULTS = 1000
#: Tags named in a "tag not found" error.
TAGS_SHOWN = 5

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class _Manifest:
    """A manifest as ECR returned it: its reported digest and media type, its exact text, parsed."""

    digest: str
    media_type: str | None
    text: str
    document: Mapping[str, Any]


@dataclasses.dataclass(frozen=True)
class _Repository:
    """Where to look: a repository in a registry, and a client for the registry's region."""

    client: Any
    registry: EcrRegistry
    name: str

    def ids(self) -> dict[str, str]:
        """Return the request parameters that name the repository."""
        return {"registryId": self.registry.account_id, "repositoryName": self.name}


def _throttled_or_disconnected(error: BaseException) -> bool:
    if isinstance(error, (ConnectionError, HTTPClientError)):
        return True
    return is_throttling(error)


class EcrImageHook(PatientHookMixin, EcrHook):
    """
    Resolve image references in Amazon ECR to digests and find their SOCI indexes.

    Built on the amazon provider's ``EcrHook`` (its connection, region and credentials). The
    registry's region comes from the reference, so one hook serves images in any region.
    Throttling, 5xx answers and lost connections are retried by botocore (standard mode, unless the
    connection configures its own retries) and then with this hook's back-off for up to
    ``patience`` seconds.

    :param patience: seconds a call keeps retrying transient failures.
    :param retry_delay: base delay of that back-off (doubled per failure, jittered).
    :param scan_limit: images described, at most, when scanning a repository for a SOCI v1 index.
    :param scan_fetch_limit: manifests fetched, at most, in that scan.
    """

    def __init__(
        self,
        *,
        patience: float = DEFAULT_PATIENCE_SECONDS,
        retry_delay: float = 1.0,
        scan_limit: int = DEFAULT_SCAN_LIMIT,
        scan_fetch_limit: int = DEFAULT_SCAN_FETCH_LIMIT,
        **kwargs: Any,
    ) -> None:
        super().__init__(patience=patience, retry_delay=retry_delay, **kwargs)
        self.scan_limit = scan_limit
        self.scan_fetch_limit = scan_fetch_limit
        self._clients: dict[tuple[str, bool], BaseClient] = {}
        # Regions whose ListImageReferrers failed once: not asked again by this hook.
        self._no_referrers_api: set[str] = set()

    def client_for(self, region: str, *, botocore_retries: bool = True) -> BaseClient:
        """Return an ECR client for ``region`` (cached); without botocore's own retries if asked."""
        key = (region, botocore_retries)
        if key not in self._clients:
            config = (
                None if botocore_retries else self.config.merge(Config(retries={"total_max_attempts": 1}))
            )
            self._clients[key] = self.get_client_type(region_name=region, config=config)
        return self._clients[key]

    def resolve(self, reference: str, soci: SociPolicy | str = SociPolicy.PREFER) -> ImageResolution:
        """
        Resolve ``reference`` to the digest to run, and find its SOCI index as ``soci`` asks.

        A tag is resolved once; a pinned reference is verified to exist (a tag next to its digest is
        ignored, as every runtime ignores it). Bad input raises
        :class:`~lyftlearn_provider.exceptions.InvalidSpecError` (field ``image``) naming the fix: an
        unknown repository, tag or digest, a manifest that is not an image, a tag-only reference into
        a registry other than ECR, or -- with ``soci="require"`` -- an image without a SOCI index.
        Nothing is written anywhere.

        :param reference: ``<registry>/<repository>:<tag>``, ``...@sha256:<digest>``, or both.
        :param soci: ``require`` (fail without an index), ``prefer`` (log a warning) or ``off`` (do not look).
        """
        policy = SociPolicy.coerce(soci)
        image = parse_image_reference(reference)
        registry = image.ecr
        if registry is None:
            resolution = resolve_pinned_reference(reference)
        else:
            client = self.client_for(registry.region)
            resolution = self._resolve_in_ecr(
                reference, image, _Repository(client, registry, image.repository), policy
            )
        for note in resolution.notes:
            self.log.info("%s", note)
        warning = check_soci(resolution, policy)
        if warning:
            self.log.warning("%s", warning)
        self.log.info(
            "Resolved %s to %s (by %s); SOCI: %s (%s).",
            reference,
            resolution.pinned,
            resolution.resolved_by,
            resolution.soci or "none",
            resolution.soci_source,
        )
        return resolution

    def _resolve_in_ecr(
        self, reference: str, image: ImageReference, repository: _Repository, policy: SociPolicy
    ) -> ImageResolution:
        resolved_by: ResolvedBy
        if image.digest is not None:
            manifest = self._get_one(repository, {"imageDigest": image.digest})
            if manifest is None:
                raise InvalidSpecError(
                    "image",
                    f"digest {image.digest} not found in repository {repository.name!r} of registry "
                    f"{repository.registry.host}",
                    "Push the image, or use a digest the repository holds: "
                    f"{self._describe_command(repository)}.",
                )
            resolved_by = "digest"
        else:
            manifest = self._get_one(repository, {"imageTag": str(image.tag)})
            if manifest is None:
                raise InvalidSpecError(
                    "image",
                    f"tag {image.tag!r} not found in repository {repository.name!r} of registry "
                    f"{repository.registry.host} ({self._newest_tags(repository)})",
                    f"Push the image with that tag, or use an existing tag or digest: "
                    f"{self._describe_command(repository)}.",
                )
            resolved_by = "tag"
        reason = not_runnable_reason(manifest.document, manifest.media_type)
        if reason is not None:
            raise InvalidSpecError(
                "image",
                f"{reference} ({manifest.digest}) is not a container image: {reason}",
                "Use the image's own tag or digest; for lazy loading, the SOCI-enabled image's tag "
                "(e.g. '<tag>-soci').",
            )
        notes: tuple[str, ...] = ()
        content_digest = sha256_digest(manifest.text)
        if content_digest != manifest.digest:
            notes = (
                f"ECR reports digest {manifest.digest} for {reference} but its manifest hashes to "
                f"{content_digest}; pinned ECR's digest, which runtimes pull by (real ECR reports the hash)",
            )
        if policy is SociPolicy.OFF:
            finding = SociFinding(None, None, "not-checked")
        else:
            finding = self._find_soci(repository, manifest)
        return ImageResolution(
            reference=reference,
            pinned=pinned(image, manifest.digest),
            digest=manifest.digest,
            media_type=manifest.media_type,
            soci=finding.version,
            soci_index_digest=finding.index_digest,
            resolved_by=resolved_by,
            soci_source=finding.source,
            notes=notes + finding.notes,
        )

    # SOCI ------------------------------------------------------------------------------------------

    def _find_soci(self, repository: _Repository, manifest: _Manifest) -> SociFinding:
        notes: tuple[str, ...] = ()
        links = soci_v2_links(manifest.document, manifest.media_type)
        if links:
            wanted = [link.index_digest for link in links]
            fetched = self._get_many(repository, wanted)
            soci_manifests = {
                digest: fetched[digest].document if digest in fetched else None for digest in wanted
            }
            finding = detect_soci_v2(manifest.document, manifest.media_type, soci_manifests)
            if finding is not None and finding.version is not None:
                return finding
            notes = finding.notes if finding is not None else ()
        subjects = image_manifest_digests(
            manifest.document, manifest.media_type, manifest.digest, manifest.text
        )
        finding = self._find_soci_v1(repository, subjects)
        return dataclasses.replace(finding, notes=notes + finding.notes)

    def _find_soci_v1(self, repository: _Repository, subjects: frozenset[str]) -> SociFinding:
        notes: tuple[str, ...] = ()
        region = repository.registry.region
        client = self.client_for(region, botocore_retries=False)
        if not hasattr(client, "list_image_referrers"):
            notes = ("this botocore has no ListImageReferrers; scanned the repository",)
        elif region not in self._no_referrers_api:
            try:
                return self._soci_v1_by_referrers(repository, client, subjects)
            except ClientError as error:
                # Registries without the referrers API (moto: HTTP 500) still get an answer from a scan.
                self._no_referrers_api.add(region)
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                notes = (
                    f"ListImageReferrers failed ({error_code(error)}, HTTP {status}); scanned the repository",
                )
        details = self._describe_images(repository, self.scan_limit)
        if len(details) >= self.scan_limit:
            notes += (f"scanned only {self.scan_limit} images of {repository.name!r} for a SOCI v1 index",)
        digest = soci_v1_from_image_details(details, subjects)
        if digest is not None:
            return SociFinding("v1", digest, "repository-scan", notes)
        candidates = soci_v1_scan_candidates(details, subjects, self.scan_fetch_limit)
        documents = {
            digest: fetched.document for digest, fetched in self._get_many(repository, candidates).items()
        }
        finding = detect_soci_v1(subjects, documents, "repository-scan")
        if finding is None:
            return SociFinding(None, None, "repository-scan", notes)
        return dataclasses.replace(finding, notes=notes)

    def _soci_v1_by_referrers(
        self, repository: _Repository, client: BaseClient, subjects: Iterable[str]
    ) -> SociFinding:
        for subject in sorted(subjects):
            request: dict[str, Any] = {
                **repository.ids(),
                "subjectId": {"imageDigest": subject},
                "filter": {"artifactTypes": [SOCI_INDEX_V1]},
            }
            while True:
                try:
                    # Only throttling and lost connections are waited out: any other failure means
                    # the API is missing here, and the scan answers just as well.
                    page = self.patiently(
                        functools.partial(client.list_image_referrers, **request),
                        retry_if=_throttled_or_disconnected,
                    )
                except ClientError as error:
                    if error_code(error) == "ImageNotFoundException":
                        break
                    raise
                found = soci_v1_from_referrers(page.get("referrers", ()))
                if found is not None:
                    return SociFinding("v1", found, "referrers-api")
                if not page.get("nextToken"):
                    break
                request["nextToken"] = page["nextToken"]
        return SociFinding(None, None, "referrers-api")

    # ECR calls -------------------------------------------------------------------------------------

    def _call(self, repository: _Repository, method: str, **params: Any) -> dict[str, Any]:
        """Call an ECR method on the repository patiently; an unknown repository is bad input."""
        call = getattr(repository.client, method)
        try:
            return dict(self.patiently(lambda: call(**repository.ids(), **params)))
        except ClientError as error:
            if error_code(error) == "RepositoryNotFoundException":
                raise InvalidSpecError(
                    "image",
                    f"repository {repository.name!r} not found in registry {repository.registry.host}",
                    f"Create it (`aws ecr create-repository --repository-name {repository.name} --region "
                    f"{repository.registry.region}`) and push the image, or correct the repository, account "
                    "or region in the reference.",
                ) from None
            raise

    def _batch_get(self, repository: _Repository, image_ids: list[dict[str, str]]) -> list[_Manifest]:
        response = self._call(
            repository, "batch_get_image", imageIds=image_ids, acceptedMediaTypes=list(MANIFEST_MEDIA_TYPES)
        )
        for failure in response.get("failures", ()):
            if failure.get("failureCode") != "ImageNotFound":
                raise ServiceError(
                    f"ECR could not return image {failure.get('imageId')} from repository "
                    f"{repository.name!r}: {failure.get('failureCode')}: {failure.get('failureReason')}"
                )
        manifests = []
        for image in response.get("images", ()):
            text = image["imageManifest"]
            try:
                document = json.loads(text)
            except ValueError:
                document = None
            if not isinstance(document, dict):
                raise ServiceError(
                    f"ECR returned a manifest that is not a JSON object for {image['imageId']} "
                    f"in repository {repository.name!r}"
                )
            media_type = image.get("imageManifestMediaType") or document.get("mediaType")
            manifests.append(_Manifest(image["imageId"]["imageDigest"], media_type, text, document))
        return manifests

    def _get_one(self, repository: _Repository, image_id: dict[str, str]) -> _Manifest | None:
        manifests = self._batch_get(repository, [image_id])
        if "imageDigest" in image_id:
            manifests = [manifest for manifest in manifests if manifest.digest == image_id["imageDigest"]]
        return manifests[0] if manifests else None

    def _get_many(self, repository: _Repository, digests: list[str]) -> dict[str, _Manifest]:
        wanted = list(dict.fromkeys(digests))
        found: dict[str, _Manifest] = {}
        for start in range(0, len(wanted), BATCH_GET_IMAGE_MAX_IDS):
            chunk = wanted[start : start + BATCH_GET_IMAGE_MAX_IDS]
            for manifest in self._batch_get(repository, [{"imageDigest": digest} for digest in chunk]):
                if manifest.digest in chunk:
                    found.setdefault(manifest.digest, manifest)
        return found

    def _describe_images(self, repository: _Repository, limit: int, **params: Any) -> list[dict[str, Any]]:
        details: list[dict[str, Any]] = []
        request: dict[str, Any] = {"maxResults": min(limit, DESCRIBE_IMAGES_MAX_RESULTS), **params}
        while len(details) < limit:
            page = self._call(repository, "describe_images", **request)
            details.extend(page.get("imageDetails", ()))
            if not page.get("nextToken"):
                break
            request["nextToken"] = page["nextToken"]
        return details[:limit]

    def _newest_tags(self, repository: _Repository) -> str:
        """Describe a few of the repository's newest tags for an error message (one call; best effort)."""
        try:
            details = self._describe_images(repository, 100, filter={"tagStatus": "TAGGED"})
        except ClientError as error:
            return f"its tags could not be listed: {error_code(error)}"
        tags = newest_tags(details, TAGS_SHOWN)
        if not tags:
            return "it has no tagged images"
        return "newest tags: " + ", ".join(tags)

    @staticmethod
    def _describe_command(repository: _Repository) -> str:
        registry = repository.registry
        return (
            f"`aws ecr describe-images --repository-name {repository.name} --registry-id "
            f"{registry.account_id} --region {registry.region}`"
        )
