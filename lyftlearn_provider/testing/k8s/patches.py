"""The three PATCH flavours of the Kubernetes API, as pure functions over JSON values.

- JSON merge patch (RFC 7386, ``application/merge-patch+json``): maps merge, ``null`` deletes,
  everything else (lists included) replaces.
- Strategic merge patch (``application/strategic-merge-patch+json``, what ``kubectl patch`` and
  the Python clients send for dict bodies): like a merge patch, but lists of known kinds merge by
  their merge key (containers by ``name``, ports by ``containerPort``/``port``...), and the
  ``$patch: replace|delete`` and ``$retainKeys`` directives are honoured. Lists of other kinds are
  replaced, as Kubernetes does for lists without a patch strategy.
- JSON patch (RFC 6902, ``application/json-patch+json``): ``add``, ``remove``, ``replace``, ``move``,
  ``copy`` and ``test`` operations on JSON pointers.

Every function returns a new value; inputs are never modified.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

#: Lists that strategic merge patch merges item by item, with the key that identifies an item.
#: ``ports`` is keyed by ``containerPort`` in containers and by ``port`` in services.
MERGE_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "ports": ("containerPort", "port"),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "hostAliases": ("ip",),
    "conditions": ("type",),
    "containerStatuses": ("name",),
    "initContainerStatuses": ("name",),
    "ownerReferences": ("uid",),
    "topologySpreadConstraints": ("topologyKey",),
}

#: Lists of scalars that strategic merge patch treats as sets (patch items are added, not replaced).
MERGED_SCALAR_LISTS = frozenset({"finalizers"})


class PatchError(ValueError):
    """Signal a patch that cannot be applied (``status``: the HTTP status the API server answers with)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = copy.deepcopy(dict(target)) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _merge_key(field: str, items: Sequence[Any]) -> str | None:
    candidates = MERGE_KEYS.get(field)
    if not candidates:
        return None
    for key in candidates:
        if any(isinstance(item, Mapping) and key in item for item in items):
            return key
    return candidates[0]


def _merge_list(field: str, target: list[Any], patch: list[Any]) -> list[Any]:
    if any(isinstance(item, Mapping) and item.get("$patch") == "replace" for item in patch):
        return [copy.deepcopy(item) for item in patch if not (isinstance(item, Mapping) and "$patch" in item)]
    if field in MERGED_SCALAR_LISTS:
        result = copy.deepcopy(target)
        result.extend(copy.deepcopy(item) for item in patch if item not in result)
        return result
    key = _merge_key(field, [*target, *patch])
    if key is None:
        return copy.deepcopy(patch)
    result = copy.deepcopy(target)
    for item in patch:
        if not isinstance(item, Mapping):
            raise PatchError(f"strategic merge patch: {field} items must be objects keyed by {key!r}")
        index = next(
            (i for i, cur in enumerate(result) if isinstance(cur, Mapping) and cur.get(key) == item.get(key)),
            None,
        )
        if item.get("$patch") == "delete":
            if index is not None:
                result.pop(index)
        elif index is None:
            result.append(strategic_merge_patch(None, item))
        else:
            result[index] = strategic_merge_patch(result[index], item)
    return result


def strategic_merge_patch(target: Any, patch: Any, field: str | None = None) -> Any:
    """Apply a Kubernetes strategic merge patch (``field`` names the member being patched)."""
    if isinstance(patch, list):
        if isinstance(target, list) and field is not None:
            return _merge_list(field, target, patch)
        return [strategic_merge_patch(None, item) if isinstance(item, Mapping) else item for item in patch]
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "delete":
        return None
    base: dict[str, Any] = {}
    if directive != "replace" and isinstance(target, Mapping):
        base = copy.deepcopy(dict(target))
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        base = {k: v for k, v in base.items() if k in retain}
    for key, value in patch.items():
        if key.startswith("$"):
            # $setElementOrder/... only orders lists; the merge result is the same without it.
            continue
        if value is None:
            base.pop(key, None)
            continue
        merged = strategic_merge_patch(base.get(key), value, key)
        if merged is None:
            base.pop(key, None)
        else:
            base[key] = merged
    return base


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"json patch: path {path!r} must start with '/'", status=400)
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def _index(container: list[Any], token: str, *, allow_end: bool) -> int:
    if token == "-" and allow_end:
        return len(container)
    if not token.isdigit():
        raise PatchError(f"json patch: {token!r} is not a valid array index")
    index = int(token)
    if index > len(container) or (index == len(container) and not allow_end):
        raise PatchError(f"json patch: array index {index} out of bounds")
    return index


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    current = doc
    for token in parts[:-1]:
        if isinstance(current, list):
            current = current[_index(current, token, allow_end=False)]
        elif isinstance(current, dict) and token in current:
            current = current[token]
        else:
            raise PatchError(f"json patch: missing path {path!r}")
    return current


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, list):
        return parent[_index(parent, last, allow_end=False)]
    if isinstance(parent, dict) and last in parent:
        return parent[last]
    raise PatchError(f"json patch: missing path {path!r}")


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        raise PatchError("json patch: cannot remove the whole document")
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, allow_end=False))
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    raise PatchError(f"json patch: unable to remove nonexistent key {last!r} at {path!r}")


def _add(doc: Any, path: str, value: Any, *, replace: bool) -> Any:
    parts = _pointer(path)
    if not parts:
        return copy.deepcopy(value)
    parent = _parent(doc, parts, path)
    last = parts[-1]
    if isinstance(parent, list):
        index = _index(parent, last, allow_end=not replace)
        if replace:
            parent[index] = copy.deepcopy(value)
        else:
            parent.insert(index, copy.deepcopy(value))
    elif isinstance(parent, dict):
        if replace and last not in parent:
            raise PatchError(f"json patch: replace operation does not apply: doc is missing key {path!r}")
        parent[last] = copy.deepcopy(value)
    else:
        raise PatchError(f"json patch: cannot add below a scalar at {path!r}")
    return doc


def json_patch(target: Any, operations: Sequence[Mapping[str, Any]]) -> Any:
    """Apply an RFC 6902 JSON patch; a failed ``test`` raises ``PatchError`` (HTTP 422)."""
    if not isinstance(operations, Sequence) or isinstance(operations, (str, bytes)):
        raise PatchError("json patch: the body must be a list of operations", status=400)
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, Mapping) or "op" not in op or "path" not in op:
            raise PatchError(f"json patch: malformed operation {op!r}", status=400)
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f"json patch: {kind} operation at {path!r} has no value", status=400)
        if kind == "add":
            doc = _add(doc, path, op["value"], replace=False)
        elif kind == "replace":
            doc = _add(doc, path, op["value"], replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "move":
            value = _remove(doc, op["from"])
            doc = _add(doc, path, value, replace=False)
        elif kind == "copy":
            doc = _add(doc, path, _get(doc, op["from"]), replace=False)
        elif kind == "test":
            if _get(doc, path) != op["value"]:
                raise PatchError(f"testing value {path} failed: test failed")
        else:
            raise PatchError(f"json patch: unsupported operation {kind!r}", status=400)
    return doc
