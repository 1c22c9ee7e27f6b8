"""Server-side request validation that real SageMaker performs and botocore's client does not.

botocore checks required members, types and minimum lengths before sending; the service itself also
enforces maximum lengths, entry counts, patterns, enums and numeric ranges. This module derives all
of those from botocore's own service model, so the emulator rejects exactly what the model forbids,
with messages in the service's ``1 validation error detected: ...`` style.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import botocore.session
from botocore.model import ListShape, MapShape, ServiceModel, Shape, StructureShape


@functools.lru_cache(maxsize=1)
def sagemaker_model() -> ServiceModel:
    """Return botocore's SageMaker service model (loaded once; it takes ~0.3 s)."""
    return botocore.session.get_session().get_service_model("sagemaker")


def validation_errors(operation: str, params: dict[str, Any]) -> list[str]:
    """Return the constraint violations of ``params`` for a SageMaker ``operation`` (empty if valid)."""
    errors: list[str] = []
    _check(sagemaker_model().operation_model(operation).input_shape, params, "", errors)
    return errors


def validation_message(errors: list[str]) -> str:
    """Join violations the way the service does."""
    noun = "error" if len(errors) == 1 else "errors"
    return f"{len(errors)} validation {noun} detected: " + "; ".join(errors)


@functools.lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        # A few model patterns use Java classes such as \p{L}; the service checks them, we cannot.
        return None


def _lower_camel(name: str) -> str:
    return name[:1].lower() + name[1:]


def _render(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 100 else text[:100] + "..."


def _violation(value: Any, path: str, constraint: str) -> str:
    return f"Value '{_render(value)}' at '{path}' failed to satisfy constraint: {constraint}"


def _scalar_constraints(shape: Shape, value: Any) -> list[str]:
    """Return the constraints a string or number violates, in the service's wording."""
    meta = shape.metadata
    broken: list[str] = []
    if isinstance(value, str) and shape.type_name == "string":
        if "max" in meta and len(value) > meta["max"]:
            broken.append(f"Member must have length less than or equal to {meta['max']}")
        if "min" in meta and len(value) < meta["min"]:
            broken.append(f"Member must have length greater than or equal to {meta['min']}")
        pattern = _compiled(meta["pattern"]) if "pattern" in meta else None
        if pattern is not None and pattern.fullmatch(value) is None:
            broken.append(f"Member must satisfy regular expression pattern: {meta['pattern']}")
        if shape.enum and value not in shape.enum:
            broken.append(f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if shape.type_name in ("integer", "long", "float", "double"):
            if "max" in meta and value > meta["max"]:
                broken.append(f"Member must have value less than or equal to {meta['max']}")
            if "min" in meta and value < meta["min"]:
                broken.append(f"Member must have value greater than or equal to {meta['min']}")
    return broken


def _check_size(shape: Shape, value: list[Any] | dict[str, Any], path: str, errors: list[str]) -> None:
    meta = shape.metadata
    if "max" in meta and len(value) > meta["max"]:
        errors.append(_violation(value, path, f"Member must have length less than or equal to {meta['max']}"))
    if "min" in meta and len(value) < meta["min"]:
        errors.append(
            _violation(value, path, f"Member must have length greater than or equal to {meta['min']}")
        )


def _check(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    if isinstance(shape, StructureShape):
        if not isinstance(value, dict):
            return
        for name in shape.required_members:
            if value.get(name) is None:
                member_path = f"{path}.{_lower_camel(name)}" if path else _lower_camel(name)
                errors.append(
                    f"Value null at '{member_path}' failed to satisfy constraint: Member must not be null"
                )
        for name, member_value in value.items():
            if name in shape.members:
                member_path = f"{path}.{_lower_camel(name)}" if path else _lower_camel(name)
                _check(shape.members[name], member_value, member_path, errors)
    elif isinstance(shape, ListShape):
        if not isinstance(value, list):
            return
        _check_size(shape, value, path, errors)
        for index, item in enumerate(value, start=1):
            _check(shape.member, item, f"{path}.{index}.member", errors)
    elif isinstance(shape, MapShape):
        if not isinstance(value, dict):
            return
        _check_size(shape, value, path, errors)
        for label, part_shape, parts in (
            ("Map keys", shape.key, list(value.keys())),
            ("Map value", shape.value, list(value.values())),
        ):
            broken = sorted({c for part in parts for c in _scalar_constraints(part_shape, part)})
            if broken:
                errors.append(
                    _violation(value, path, f"{label} must satisfy constraint: [{', '.join(broken)}]")
                )
    else:
        errors.extend(_violation(value, path, constraint) for constraint in _scalar_constraints(shape, value))
