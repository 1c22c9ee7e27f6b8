"""Small helpers for Kubernetes object metadata: timestamps, names, uids, owner references."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from collections.abc import Mapping
from typing import Any

#: A Kubernetes object as JSON (what the API server stores and serves).
Obj = dict[str, Any]

#: The alphabet Kubernetes uses for generated name suffixes and pod-template hashes (no vowels, no
#: look-alike characters, so generated names never spell words).
SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def utcnow() -> dt.datetime:
    """Return the current time in UTC."""
    return dt.datetime.now(dt.timezone.utc)


def rfc3339(moment: dt.datetime | None = None) -> str:
    """Format a moment (default: now) the way ``metav1.Time`` does, to the second."""
    return (moment or utcnow()).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_nano(moment: dt.datetime | None = None) -> str:
    """Format a moment (default: now) the way container log timestamps are written, to the nanosecond."""
    return (moment or utcnow()).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


def parse_time(value: str) -> dt.datetime:
    """Parse an RFC 3339 timestamp as sent by clients (``Z`` or an offset, with or without fractions)."""
    text = value.strip().replace("Z", "+00:00")
    if "." in text:
        head, _, rest = text.partition(".")
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def new_uid() -> str:
    """Return a fresh object uid."""
    return str(uuid.uuid4())


def random_suffix(length: int = 5) -> str:
    """Return a random suffix for ``generateName``, from the alphabet Kubernetes uses."""
    return "".join(secrets.choice(SAFE_ALPHABET) for _ in range(length))


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """Return an object's labels (empty when it has none)."""
    return dict((obj.get("metadata") or {}).get("labels") or {})


def annotations_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """Return an object's annotations (empty when it has none)."""
    return dict((obj.get("metadata") or {}).get("annotations") or {})


def owner_reference(owner: Mapping[str, Any]) -> Obj:
    """Return the controller ``ownerReference`` that ties a dependent object to ``owner``."""
    md = owner["metadata"]
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": md["name"],
        "uid": md["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_uid(obj: Mapping[str, Any]) -> str | None:
    """Return the uid of the object's controlling owner, if it has one."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return str(ref.get("uid"))
    return None


def owner_uids(obj: Mapping[str, Any]) -> set[str]:
    """Return the uids of all the object's owners."""
    return {str(ref.get("uid")) for ref in (obj.get("metadata") or {}).get("ownerReferences") or []}


def prune_empty(value: Any) -> Any:
    """Return a copy of a JSON value without ``null``, ``{}`` and ``[]`` members.

    Clients disagree on how they write an unset field (Python clients omit it, Go clients write
    ``{}`` for empty structs, some write ``null``); pruned values compare equal however written.
    """
    if isinstance(value, dict):
        pruned = {k: prune_empty(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [prune_empty(v) for v in value]
    return value


def find_condition(obj: Mapping[str, Any], kind: str) -> Obj | None:
    """Return the status condition of a kind (``Ready``, ``Available``, ``Progressing``...), if present."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == kind), None)
