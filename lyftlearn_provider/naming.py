"""Deterministic, SageMaker-valid training job names derived from a task instance's identity.

A name depends on (dag id, task id, run id, map index) and never on the try number, so a retry,
a clear or a worker killed mid-job finds the job it started instead of starting a second one.
"""

from __future__ import annotations

import hashlib
import re

from lyftlearn_provider.exceptions import InvalidSpecError

MAX_JOB_NAME_LENGTH = 63
JOB_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
PREFIX_PATTERN = re.compile(r"^[a-z0-9](-?[a-z0-9]){0,15}$")
DEFAULT_PREFIX = "ll"
HASH_LENGTH = 10
#: Attempts after the first get a ``-a<n>`` suffix; the base name leaves room for it.
MAX_ATTEMPTS = 99
_ATTEMPT_SUFFIX_ROOM = len(f"-a{MAX_ATTEMPTS}")


def slug(text: str) -> str:
    """Reduce text to lowercase alphanumerics separated by single hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def validate_prefix(prefix: str, field: str = "job_name_prefix") -> str:
    """Return the prefix when it is a valid job-name prefix, else raise ``InvalidSpecError``."""
    if not PREFIX_PATTERN.match(prefix):
        raise InvalidSpecError(
            field,
            f"{prefix!r} is not a valid job-name prefix",
            "Use 1-16 lowercase letters, digits and single hyphens, starting and ending with a letter or "
            "digit, e.g. 'll' or 'fraud-ml'.",
        )
    return prefix


def run_fingerprint(dag_id: str, task_id: str, run_id: str, map_index: int = -1) -> str:
    """Return the short hash that identifies one task instance across all its tries."""
    identity = "\x1f".join((dag_id, task_id, run_id, str(map_index)))
    return hashlib.sha256(identity.encode()).hexdigest()[:HASH_LENGTH]


def training_job_name(
    *, dag_id: str, task_id: str, run_id: str, map_index: int = -1, prefix: str = DEFAULT_PREFIX
) -> str:
    """
    Return the base training job name of one task instance.

    ``<prefix>-<dag>-<task>-<hash>``: readable where it can be, unique through the hash of the full
    identity, at most 59 characters so an attempt suffix still fits SageMaker's 63.
    """
    validate_prefix(prefix)
    fingerprint = run_fingerprint(dag_id, task_id, run_id, map_index)
    room = MAX_JOB_NAME_LENGTH - _ATTEMPT_SUFFIX_ROOM - len(prefix) - len(fingerprint) - 2
    readable = "-".join(part for part in (slug(dag_id), slug(task_id)) if part)
    readable = readable[:room].strip("-")
    return "-".join(part for part in (prefix, readable, fingerprint) if part)


def attempt_job_name(base: str, attempt: int) -> str:
    """Return the job name of the given attempt: the base name for 1, ``<base>-a<n>`` after that."""
    if not 1 <= attempt <= MAX_ATTEMPTS:
        raise InvalidSpecError(
            "attempt", f"{attempt} is outside 1..{MAX_ATTEMPTS}", "Start a new DAG run instead of retrying."
        )
    name = base if attempt == 1 else f"{base}-a{attempt}"
    validate_job_name(name)
    return name


def validate_job_name(name: str, field: str = "job_name") -> str:
    """Return the name when SageMaker accepts it as a training job name, else raise ``InvalidSpecError``."""
    if len(name) > MAX_JOB_NAME_LENGTH or not JOB_NAME_PATTERN.match(name):
        raise InvalidSpecError(
            field,
            f"{name!r} is not a valid SageMaker training job name",
            "Use 1-63 letters, digits and hyphens, starting and ending with a letter or digit.",
        )
    return name
