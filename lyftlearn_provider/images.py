"""Container image references, pinned to a digest once per run, and the SOCI policy applied to them.

Training, validation and serving must run the *same* image, so a run resolves ``repo:tag`` once
(:class:`~lyftlearn_provider.hooks.ecr.EcrImageHook` asks ECR) and passes the
:class:`ImageResolution` on; everything after that uses :attr:`ImageResolution.pinned`,
``registry/repo@sha256:...``, which a later push to the tag cannot change.

This module is the one home of the image-reference rules (:func:`parse_image_reference`,
:func:`check_image_reference`): the spec, the renderings and the hooks all use it. SOCI indexes are
found in the manifests by :mod:`lyftlearn_provider.manifests`; :func:`check_soci` applies a
:class:`SociPolicy` to what was found. Everything here is pure and imports only the standard library
and this package's light modules: DAG files import it on every parse.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from typing import TYPE_CHECKING, Any, Literal

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.limits import MAX_IMAGE_LENGTH
from lyftlearn_provider.validation import is_templated

if TYPE_CHECKING:
    from lyftlearn_provider.manifests import SociSource, SociVersion

MAX_TAG_LENGTH = 128
SOCI_TAG_SUFFIX = "-soci"

#: How the digest was found: ECR resolved the tag, ECR confirmed the pinned digest, or the reference
#: was already pinned and taken at its word (a registry we have no API for).
ResolvedBy = Literal["tag", "digest", "reference"]

# Docker's reference grammar (distribution/reference), restricted to sha256 digests.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(
    rf"(?:(?P<registry>{_DOMAIN})/)?(?P<repository>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?(?:@(?P<digest>[^@]+))?",
    re.ASCII,
)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}", re.ASCII)
# <account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn], or dual-stack <account>.dkr-ecr.<region>.on.aws
_ECR_HOST = re.compile(
    r"(?P<account>[0-9]{12})\.(?:dkr\.ecr(?:-fips)?\.(?P<region>[a-z]{2}(?:-[a-z0-9]+)+)\.amazonaws\.com(?:\.cn)?"
    r"|dkr-ecr(?:-fips)?\.(?P<dualstack_region>[a-z]{2}(?:-[a-z0-9]+)+)\.on\.aws)",
    re.ASCII,
)

_REFERENCE_FIX = (
    "Use <registry>/<repository>:<tag>, <registry>/<repository>@sha256:<64 hex digits> or both, with a "
    "lowercase repository path, e.g. '123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:v42'."
)


class SociPolicy(str, enum.Enum):
    """Say what to do about an image without a SOCI index: fail, warn, or not look at all."""

    REQUIRE = "require"
    PREFER = "prefer"
    OFF = "off"

    @classmethod
    def coerce(cls, value: SociPolicy | str) -> SociPolicy:
        """Return the policy named by ``value``; raise :class:`InvalidSpecError` for an unknown name."""
        try:
            return cls(value)
        except ValueError:
            raise InvalidSpecError(
                "soci", f"{value!r} is not a SOCI policy", "Use one of 'require', 'prefer' or 'off'."
            ) from None


@dataclasses.dataclass(frozen=True)
class EcrRegistry:
    """An Amazon ECR private registry: one account in one region."""

    host: str
    account_id: str
    region: str


@dataclasses.dataclass(frozen=True)
class ImageReference:
    """A parsed image reference: ``[registry/]repository[:tag][@digest]``; a tag, a digest or both."""

    registry: str | None
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """Return ``registry/repository`` (just the repository when no registry is named)."""
        return f"{self.registry}/{self.repository}" if self.registry else self.repository

    @property
    def ecr(self) -> EcrRegistry | None:
        """Return the ECR registry this reference points into, or None for any other registry."""
        return ecr_registry(self.registry) if self.registry else None

    def __str__(self) -> str:
        tag = f":{self.tag}" if self.tag else ""
        digest = f"@{self.digest}" if self.digest else ""
        return f"{self.name}{tag}{digest}"


def ecr_registry(host: str) -> EcrRegistry | None:
    """Return the account and region of an ECR private registry host name, or None for another registry."""
    match = _ECR_HOST.fullmatch(host)
    if match is None:
        return None
    region = match.group("region") or match.group("dualstack_region")
    return EcrRegistry(host=host, account_id=match.group("account"), region=region)


def parse_image_reference(reference: object, field: str = "image") -> ImageReference:
    """Parse ``reference``; raise :class:`InvalidSpecError` naming ``field`` and the fix when it is invalid.

    The first path component is the registry when it looks like a host (has a ``.`` or a ``:``, or is
    ``localhost``), as Docker decides. A tag or a digest is required: an implicit ``latest`` cannot be
    pinned reproducibly. Only ``sha256`` digests are accepted, as ECR and SageMaker use.

    :param reference: ``[registry/]repository:tag``, ``...@sha256:<digest>``, or both.
    :param field: the argument to name in the error, e.g. ``image`` or ``input_loader_image``.
    """
    if not isinstance(reference, str) or not reference:
        raise InvalidSpecError(field, "is empty or not a string", _REFERENCE_FIX)
    if len(reference) > MAX_IMAGE_LENGTH:
        raise InvalidSpecError(
            field,
            f"is {len(reference)} characters long, over the {MAX_IMAGE_LENGTH} SageMaker accepts",
            "Use a shorter repository path or tag.",
        )
    match = _REFERENCE.fullmatch(reference)
    if match is None:
        raise InvalidSpecError(field, f"{reference!r} is not a valid image reference", _REFERENCE_FIX)
    registry, repository = match.group("registry"), match.group("repository")
    if registry is not None and not ("." in registry or ":" in registry or registry == "localhost"):
        # Docker reads "team/model" as a Docker Hub repository, not as registry "team".
        repository, registry = f"{registry}/{repository}", None
    digest = match.group("digest")
    if digest is not None:
        _check_digest(digest, field)
    if match.group("tag") is None and digest is None:
        raise InvalidSpecError(
            field,
            f"{reference!r} names neither a tag nor a digest",
            "Name the tag (e.g. repo:v42) or pin a digest (repo@sha256:...); an implicit tag cannot be "
            "pinned reproducibly.",
        )
    return ImageReference(registry=registry, repository=repository, tag=match.group("tag"), digest=digest)


def check_image_reference(reference: object, field: str = "image") -> ImageReference | None:
    """Parse ``reference`` like :func:`parse_image_reference`; a Jinja template passes unchecked (None).

    Also refuses, before anything is created, what no registry API could pin: a tag-only reference
    into a registry other than Amazon ECR.
    """
    if is_templated(reference):
        return None
    image = parse_image_reference(reference, field)
    if image.digest is None and image.ecr is None:
        raise unpinnable(str(reference), image, field)
    return image


def unpinnable(reference: str, image: ImageReference, field: str = "image") -> InvalidSpecError:
    """Return the error for a tag-only reference outside ECR: nothing here can turn it into a digest."""
    return InvalidSpecError(
        field,
        f"{reference!r} is a tag in {image.registry or 'Docker Hub'}, not in an Amazon ECR registry, "
        "so it cannot be pinned to a digest",
        f"Pin the digest: '{image.name}@sha256:<digest>' (find it with `crane digest {reference}` or "
        f"`docker buildx imagetools inspect {reference}`), or push the image to ECR and use that "
        "reference.",
    )


def _check_digest(digest: str, field: str = "image") -> None:
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise InvalidSpecError(
            field,
            f"digest {digest!r} is not valid",
            "Write the digest as sha256:<64 lowercase hex digits>.",
        )


def pinned(reference: str | ImageReference, digest: str) -> str:
    """Return ``registry/repository@digest``: the reference pinned to ``digest``, without its tag.

    A tag next to a digest is ignored by every runtime, and would only suggest that the tag still
    points there; so the pinned form drops it.
    """
    image = parse_image_reference(reference) if isinstance(reference, str) else reference
    _check_digest(digest)
    return f"{image.name}@{digest}"


# Resolutions and the policy ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ImageResolution:
    """An image reference resolved to the digest every runtime of the run uses, with its SOCI facts.

    :param reference: the reference as asked for, e.g. ``.../fraud-model:prod``.
    :param pinned: ``registry/repository@sha256:...``, what training, validation and serving run.
    :param digest: the digest the registry reports for the image (what runtimes pull by).
    :param media_type: the manifest's media type (image manifest or image index); None if unknown.
    :param soci: ``"v2"``, ``"v1"`` or None (none found, or not checked: see ``soci_source``).
    :param soci_index_digest: the SOCI index manifest's digest, when there is one.
    :param resolved_by: how the digest was found (see :data:`ResolvedBy`).
    :param soci_source: how the SOCI answer was reached (see :data:`SociSource`).
    :param notes: anything odd met on the way, for the task log.
    """

    reference: str
    pinned: str
    digest: str
    media_type: str | None
    soci: SociVersion | None
    soci_index_digest: str | None
    resolved_by: ResolvedBy
    soci_source: SociSource
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the resolution as JSON-safe primitives (for XCom)."""
        return {field.name: getattr(self, field.name) for field in dataclasses.fields(self)} | {
            "notes": list(self.notes)
        }


def resolve_pinned_reference(reference: str) -> ImageResolution:
    """Return a resolution for a reference into a registry we cannot query: it must already be pinned.

    Without a registry API a tag cannot be turned into a digest here, and an unpinned tag would let
    training and serving run different images; so a tag-only reference is rejected with the fix.
    Nothing is checked over the network, and SOCI is reported ``not-checked``.
    """
    image = parse_image_reference(reference)
    if image.digest is None:
        raise unpinnable(reference, image)
    return ImageResolution(
        reference=reference,
        pinned=pinned(image, image.digest),
        digest=image.digest,
        media_type=None,
        soci=None,
        soci_index_digest=None,
        resolved_by="reference",
        soci_source="not-checked",
        notes=(
            f"{image.registry or 'Docker Hub'} is not an ECR registry: digest taken as given, unverified",
        ),
    )


def soci_tag_for(image: ImageReference) -> str:
    """Return the tag under which to push the SOCI-enabled (v2) version of ``image``: ``<tag>-soci``."""
    if image.tag:
        return image.tag[: MAX_TAG_LENGTH - len(SOCI_TAG_SUFFIX)] + SOCI_TAG_SUFFIX
    digest_hex = (image.digest or "").partition(":")[2]
    return f"sha256-{digest_hex[:12]}{SOCI_TAG_SUFFIX}"


def soci_build_fix(reference: str) -> str:
    """Return how to build and push a SOCI-enabled image (SOCI index manifest v2) for ``reference``."""
    image = parse_image_reference(reference)
    source = str(image)
    target = f"{image.name}:{soci_tag_for(image)}"
    return (
        f"Build a SOCI-enabled image (SOCI index manifest v2, soci-snapshotter >= 0.10): "
        f"`nerdctl pull --all-platforms {source}`, then `soci convert --all-platforms {source} {target}` "
        f"(or `nerdctl image convert --soci {source} {target}`), then "
        f"`nerdctl push --all-platforms {target}`; then set image to '{target}'"
    )


def check_soci(resolution: ImageResolution, policy: SociPolicy | str) -> str | None:
    """Apply ``policy`` to a resolution: raise, or return a warning to log (None when all is well).

    ``require`` raises :class:`InvalidSpecError` (field ``image``) when no SOCI index was found or none
    could be looked for, with the commands that build one; ``prefer`` returns that as a warning; ``off``
    accepts anything. A v1 index satisfies both, with a warning that the SOCI snapshotter ignores v1 by
    default.
    """
    policy = SociPolicy.coerce(policy)
    if policy is SociPolicy.OFF:
        return None
    if resolution.soci == "v2":
        return None
    fix = soci_build_fix(resolution.reference)
    if resolution.soci == "v1":
        return (
            f"image {resolution.pinned} has only a SOCI v1 index ({resolution.soci_index_digest}), which "
            f"soci-snapshotter >= 0.10 ignores by default. {fix}."
        )
    if resolution.soci_source == "not-checked":
        why = "; ".join(resolution.notes) or "SOCI detection was off when it was resolved"
        problem = f"{resolution.reference} could not be checked for a SOCI index ({why})"
        fix = (
            "Resolve the image from Amazon ECR with SOCI detection on (push it to ECR if it lives elsewhere)"
        )
    else:
        problem = f"{resolution.reference} ({resolution.digest}) has no SOCI index"
    if policy is SociPolicy.REQUIRE:
        raise InvalidSpecError(
            "image",
            f"{problem}, and soci='require'",
            f"{fix}. Or set soci='prefer' to run without lazy loading.",
        )
    return f"image: {problem}; it will start without lazy loading. {fix}."
