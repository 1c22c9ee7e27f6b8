"""Tags on SageMaker jobs: the user's, validated once, and the ``lyftlearn:*`` tags that tie a job to its run.

The provider tags every job it creates with the run's identity (:func:`identity_tags`), so cost
reports can group by DAG and a job can be found again. Those tags count against SageMaker's 50, so a
user may pass at most ``MAX_TAGS - len(IDENTITY_TAG_KEYS)`` of their own; :func:`check_user_tags`
says so when the DAG is parsed, and :func:`validated_tags` checks the whole set before a request.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.limits import MAX_TAG_KEY_LENGTH, MAX_TAG_VALUE_LENGTH, MAX_TAGS
from lyftlearn_provider.validation import is_templated, require_mapping

#: Tag keys of this prefix belong to the provider: a user may not set them.
RESERVED_TAG_PREFIX = "lyftlearn:"
#: The provider's own tags on every job, after the prefix.
IDENTITY_TAG_KEYS = (
    "dag-id",
    "task-id",
    "run-id",
    "map-index",
    "fingerprint",
    "base-job-name",
    "image-reference",
)
#: How many tags a user may add to a job.
MAX_USER_TAGS = MAX_TAGS - len(IDENTITY_TAG_KEYS)
_PUNCTUATION = frozenset("_.:/=+-@")
_UNSAFE_VALUE = re.compile(r"[^\w.:/=+\-@ ]")


def _allowed(text: str) -> bool:
    return all(char in _PUNCTUATION or unicodedata.category(char)[0] in "LZN" for char in text)


def _check_tag(key: Any, value: Any) -> None:
    field = f"tags[{key!r}]"
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_TAG_KEY_LENGTH or not _allowed(key):
        raise InvalidSpecError(
            field,
            "is not a valid tag key",
            f"Use 1-{MAX_TAG_KEY_LENGTH} letters, digits, spaces or _.:/=+-@ characters.",
        )
    if key.lower().startswith("aws:"):
        raise InvalidSpecError(field, "the aws: prefix is reserved by AWS", "Choose a key without 'aws:'.")
    if not isinstance(value, str) or len(value) > MAX_TAG_VALUE_LENGTH or not _allowed(value):
        raise InvalidSpecError(
            field,
            "is not a valid tag value",
            f"Use at most {MAX_TAG_VALUE_LENGTH} letters, digits, spaces or _.:/=+-@ characters.",
        )


def check_user_tags(tags: Any) -> dict[str, str]:
    """Return a copy of the user's tags when they can be added to a job; raise naming the fix otherwise.

    Templated keys and values are checked once rendered (by :func:`validated_tags`).

    :param tags: tag key to value, e.g. ``{"team": "fraud"}``.
    """
    tags = dict(require_mapping(tags, "tags", "{'team': 'fraud'}"))
    if len(tags) > MAX_USER_TAGS:
        raise InvalidSpecError(
            "tags",
            f"has {len(tags)} tags, but a job takes {MAX_TAGS} and the provider adds "
            f"{len(IDENTITY_TAG_KEYS)} of its own ({RESERVED_TAG_PREFIX}*)",
            f"Use at most {MAX_USER_TAGS} tags; tags cannot be moved to S3.",
        )
    for key, value in tags.items():
        if isinstance(key, str) and key.startswith(RESERVED_TAG_PREFIX):
            raise InvalidSpecError(
                f"tags[{key!r}]",
                f"the {RESERVED_TAG_PREFIX!r} tag prefix is reserved for the run's identity",
                "Choose another key.",
            )
        if not (is_templated(key) or is_templated(value)):
            _check_tag(key, value)
    return tags


def validated_tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    """Return the tags as SageMaker's ``Tags`` list, sorted by key; raise naming the fix when one is invalid.

    :param tags: every tag of the job, the provider's included.
    """
    tags = require_mapping(tags, "tags", "{'team': 'fraud'}")
    if len(tags) > MAX_TAGS:
        raise InvalidSpecError(
            "tags", f"has {len(tags)} tags", f"Use at most {MAX_TAGS} tags; tags cannot be moved to S3."
        )
    for key, value in tags.items():
        _check_tag(key, value)
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def identity_tags(
    *,
    dag_id: str,
    task_id: str,
    run_id: str,
    map_index: int,
    fingerprint: str,
    base_job_name: str,
    image_reference: str,
) -> dict[str, str]:
    """Return the ``lyftlearn:*`` tags that tie a job to its run and to the image reference it was given.

    Values are made safe for tags (other characters become ``_``) and cut to 256 characters.
    """
    identity = {
        "dag-id": dag_id,
        "task-id": task_id,
        "run-id": run_id,
        "map-index": str(map_index),
        "fingerprint": fingerprint,
        "base-job-name": base_job_name,
        "image-reference": image_reference,
    }
    return {
        RESERVED_TAG_PREFIX + key: _UNSAFE_VALUE.sub("_", value)[:MAX_TAG_VALUE_LENGTH]
        for key, value in identity.items()
    }


def tag_value(tags: Any, key: str) -> str | None:
    """Return the value of the provider's tag ``key`` (no prefix) in a SageMaker ``Tags`` list, or None."""
    for tag in tags or ():
        if isinstance(tag, Mapping) and tag.get("Key") == RESERVED_TAG_PREFIX + key:
            value = tag.get("Value")
            return value if isinstance(value, str) else None
    return None
