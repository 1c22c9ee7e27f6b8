"""Spilling: values too large for a runtime's API travel in one S3 document, never truncated.

SageMaker caps the request's ``Environment`` (100 entries, values of 512 characters) and
``HyperParameters`` (100 entries, values of 2500 characters). Entries beyond those limits are never
truncated: :func:`~lyftlearn_provider.rendering.sagemaker.render_training_job` moves them,
deterministically, into one JSON document ``{"environment": {...}, "hyperparameters": {...}}`` stored at
``<spill_s3_uri or output_s3_uri + "/lyftlearn-runtime">/<job name>/runtime.json`` and sets
``LYFTLEARN_SPILL_URI`` to that object's URI. A program that finds ``LYFTLEARN_SPILL_URI`` set reads
the object (with the role's credentials) and merges it over its environment and hyperparameters;
after the merge it sees exactly :func:`~lyftlearn_provider.contract.container_environment` (plus
``LYFTLEARN_SPILL_URI``) and every hyperparameter.

Pods spill by the same rule (:func:`split_for_spill`) against Kubernetes' much larger limits: what
Linux can pass to a program (128 KiB per ``NAME=value``), a 512 KiB environment, and a 128 KiB
hyperparameters annotation. Their document goes to ``.../<job name>/runtime-<runtime>.json``, so a
pod and a SageMaker job of the same name never overwrite each other's.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from lyftlearn_provider.contract import ENV_JOB_NAME, ENV_RUNTIME, ENV_SPILL_URI, Runtime
from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.validation import thaw

if TYPE_CHECKING:
    from lyftlearn_provider.runtime import RuntimeSpec

SPILL_DIRECTORY = "lyftlearn-runtime"
SPILL_OBJECT_NAME = "runtime.json"


def spill_payload_for(document: Mapping[str, Mapping[str, str]] | None) -> bytes | None:
    """Return a spill document as canonical JSON bytes (identical for identical input), or None.

    :param document: ``{"environment": {...}, "hyperparameters": {...}}`` or None.
    """
    if document is None:
        return None
    return json.dumps(thaw(document), sort_keys=True, separators=(",", ":")).encode()


def _value_length(name: str, value: str) -> int:
    return len(value)


@dataclasses.dataclass(frozen=True)
class EntryLimits:
    """Describe how many and how large entries a runtime passes to the program directly.

    :param max_entry_size: the largest ``size(name, value)`` one entry may have.
    :param size: measures one entry; by default the value's length in characters.
    :param max_entries: the most entries, None for no limit.
    :param max_total_size: the largest sum of the kept entries' sizes, None for no limit.
    """

    max_entry_size: int
    size: Callable[[str, str], int] = _value_length
    max_entries: int | None = None
    max_total_size: int | None = None

    def reserving(self, name: str, value: str) -> EntryLimits:
        """Return these limits with room kept for one more entry, e.g. the spill pointer."""
        return dataclasses.replace(
            self,
            max_entries=None if self.max_entries is None else self.max_entries - 1,
            max_total_size=None
            if self.max_total_size is None
            else self.max_total_size - self.size(name, value),
        )


def split_to_fit(
    entries: Mapping[str, str], limits: EntryLimits, *, pinned: frozenset[str] = frozenset()
) -> tuple[dict[str, str], dict[str, str]]:
    """Split entries into (kept, moved), both sorted by key.

    Over-sized entries move first; of the rest, in key order with ``pinned`` names first, everything
    from the first entry that would break the count or total limit moves too.

    :param entries: name to value.
    :param limits: what the runtime passes directly.
    :param pinned: names to keep ahead of the others.
    """
    moved = {
        key: value
        for key, value in sorted(entries.items())
        if limits.size(key, value) > limits.max_entry_size
    }
    remaining = sorted((key for key in entries if key not in moved), key=lambda key: (key not in pinned, key))
    kept: dict[str, str] = {}
    total = 0
    for index, key in enumerate(remaining):
        total += limits.size(key, entries[key])
        if (limits.max_entries is not None and index >= limits.max_entries) or (
            limits.max_total_size is not None and total > limits.max_total_size
        ):
            moved.update((overflow, entries[overflow]) for overflow in remaining[index:])
            break
        kept[key] = entries[key]
    return dict(sorted(kept.items())), dict(sorted(moved.items()))


@dataclasses.dataclass(frozen=True)
class SpillSplit:
    """Hold what a runtime passes directly and what travels in the spill document.

    :param environment: the environment to set, with ``LYFTLEARN_SPILL_URI`` when anything spilled.
    :param hyperparameters: the hyperparameters to pass directly.
    :param spill_uri: where the document goes, or None when nothing spilled.
    :param spill_document: ``{"environment": {...}, "hyperparameters": {...}}`` or None.
    """

    environment: dict[str, str]
    hyperparameters: dict[str, str]
    spill_uri: str | None = None
    spill_document: dict[str, dict[str, str]] | None = None


def split_for_spill(
    spec: RuntimeSpec,
    *,
    job_name: str,
    environment: Mapping[str, str],
    hyperparameters: Mapping[str, str],
    environment_limits: EntryLimits,
    hyperparameter_limits: EntryLimits,
    runtime: str = Runtime.SAGEMAKER.value,
) -> SpillSplit:
    """Apply the spill rule of the module docstring for one runtime's limits.

    The variables a program needs before it can read the document (``LYFTLEARN_RUNTIME``,
    ``LYFTLEARN_JOB_NAME``) always stay, and room is kept for the pointer.

    :param spec: the runtime spec (for the spill location).
    :param job_name: names the document's folder.
    :param environment: :func:`container_environment`'s result.
    :param hyperparameters: :func:`hyperparameter_values`' result.
    :param environment_limits: what the runtime's environment carries.
    :param hyperparameter_limits: what the runtime's hyperparameters carry.
    :param runtime: the runtime, which names the document (see :func:`spill_uri_for`).
    """
    kept_hyperparameters, moved_hyperparameters = split_to_fit(hyperparameters, hyperparameter_limits)
    kept_environment, moved_environment = split_to_fit(environment, environment_limits)
    if not (moved_environment or moved_hyperparameters):
        return SpillSplit(environment=kept_environment, hyperparameters=kept_hyperparameters)
    spill_uri = spill_uri_for(spec, job_name, runtime=runtime)
    limit = environment_limits.max_entry_size
    if environment_limits.size(ENV_SPILL_URI, spill_uri) > limit:
        raise InvalidSpecError(
            "spill_s3_uri",
            f"the spill URI {spill_uri!r} is longer than an environment value may be",
            f"Set spill_s3_uri to a prefix short enough that the URI fits {limit} characters.",
        )
    kept_environment, moved_environment = split_to_fit(
        environment,
        environment_limits.reserving(ENV_SPILL_URI, spill_uri),
        pinned=frozenset({ENV_RUNTIME, ENV_JOB_NAME}),
    )
    return SpillSplit(
        environment=dict(sorted({**kept_environment, ENV_SPILL_URI: spill_uri}.items())),
        hyperparameters=kept_hyperparameters,
        spill_uri=spill_uri,
        spill_document={"environment": moved_environment, "hyperparameters": moved_hyperparameters},
    )


def spill_uri_for(spec: RuntimeSpec, job_name: str, *, runtime: str = Runtime.SAGEMAKER.value) -> str:
    """Return the S3 URI of the job's spill document.

    :param spec: the runtime spec.
    :param job_name: the training job (or pod's job) name.
    :param runtime: ``runtime.json`` holds SageMaker's document, ``runtime-<runtime>.json`` a pod's.
    """
    base = spec.spill_s3_uri or f"{spec.output_s3_uri.rstrip('/')}/{SPILL_DIRECTORY}"
    name = SPILL_OBJECT_NAME if runtime == Runtime.SAGEMAKER else f"runtime-{Runtime(runtime).value}.json"
    return f"{base.rstrip('/')}/{job_name}/{name}"
