"""Field rules shared by the spec and its renderings: pure, standard library only.

Each check raises :class:`~lyftlearn_provider.exceptions.InvalidSpecError` naming the field and the
fix, and never echoes a value that may be a credential.
"""

from __future__ import annotations

import decimal
import ipaddress
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.limits import ENVIRONMENT_KEY_PATTERN, MAX_ENVIRONMENT_KEY_LENGTH, MAX_S3_URI_LENGTH

#: A bucket name (3-63 lowercase letters, digits, dots, hyphens; letter or digit at both ends) and a key.
_S3_URI = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/.*)?", re.ASCII | re.DOTALL)
_ENVIRONMENT_KEY = re.compile(ENVIRONMENT_KEY_PATTERN, re.ASCII)
_SECRET_ARN = re.compile(
    r"arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+", re.ASCII
)
_SECRET_NAME = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}", re.ASCII)
_ACCESS_KEY_ID = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])", re.ASCII)
_SECRET_ACCESS_KEY_SHAPE = re.compile(r"[A-Za-z0-9/+]{40}", re.ASCII)
#: Environment variable names that carry static AWS credentials.
CREDENTIAL_NAMES = frozenset(
    {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"}
)
# Kubernetes' quantity grammar (apimachinery resource.Quantity) without signs: requests are positive.
_QUANTITY = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?P<suffix>[KMGTPE]i|[mkMGTPE]|[eE][+-]?[0-9]+)?", re.ASCII
)
_QUANTITY_FACTORS = {
    "": decimal.Decimal(1),
    "m": decimal.Decimal("0.001"),
    **{suffix: decimal.Decimal(1000) ** power for power, suffix in enumerate("kMGTPE", start=1)},
    **{f"{suffix}i": decimal.Decimal(1024) ** power for power, suffix in enumerate("KMGTPE", start=1)},
}
_TEMPLATE_MARKERS = ("{{", "{%")

USE_ROLE = (
    "Remove static AWS credentials: the job runs with the IAM role in role_arn (a service account's "
    "IAM role on Kubernetes), which the AWS SDKs pick up on their own."
)

_K = TypeVar("_K")
_V = TypeVar("_V")


class FrozenMapping(Mapping[_K, _V]):
    """Hold an immutable, hashable copy of a mapping; equal to any mapping with the same items."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[_K, _V] | Iterable[tuple[_K, _V]] = ()) -> None:
        self._data: dict[_K, _V] = dict(data)

    def __getitem__(self, key: _K) -> _V:
        return self._data[key]

    def __iter__(self) -> Iterator[_K]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"FrozenMapping({self._data!r})"


EMPTY: Mapping[str, str] = MappingProxyType({})


def is_templated(value: object) -> bool:
    """Return whether ``value`` is a string holding a Jinja template."""
    return isinstance(value, str) and any(marker in value for marker in _TEMPLATE_MARKERS)


def holds_template(value: Any) -> bool:
    """Return whether ``value`` (a string, or a mapping or tuple of them, at any depth) holds a template."""
    if isinstance(value, Mapping):
        return any(holds_template(item) for item in value.values())
    if isinstance(value, tuple):
        return any(holds_template(item) for item in value)
    return is_templated(value)


def thaw(value: Any) -> Any:
    """Return plain dicts and lists for frozen containers, recursively (for JSON and for Jinja)."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return [thaw(item) for item in value]
    return value


def compact_json(value: Any) -> str:
    """Return ``value`` as compact JSON with sorted keys, frozen containers thawed."""
    return json.dumps(thaw(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def require_int(value: object, field: str, low: int, high: int | None, fix: str) -> None:
    """Raise unless ``value`` is an integer (not a bool) in ``low..high`` (no upper bound when None)."""
    # bool is an int subclass, but True as a count or port is always a mistake.
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidSpecError(field, f"{value!r} is not an integer", fix)
    if value < low or (high is not None and value > high):
        problem = f"{value} is outside {low}..{high}" if high is not None else f"{value} is less than {low}"
        raise InvalidSpecError(field, problem, fix)


def require_seconds(value: object, field: str, *, example: float, zero: str | None = None) -> float:
    """
    Return ``value`` as seconds when it is a finite number above 0; raise naming ``field`` and the fix.

    With ``zero`` (what 0 means, for the fix), 0 is accepted too.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidSpecError(
            field,
            f"{value!r} is not a number of seconds",
            f"Pass a number, e.g. {example:g} (not '{example:g}').",
        )
    if not math.isfinite(value) or value < 0 or (value == 0 and zero is None):
        kind = "positive" if zero is None else "non-negative"
        fix = f"Use e.g. {example:g}." if zero is None else f"Use e.g. {example:g}, or 0 to {zero}."
        raise InvalidSpecError(field, f"{value!r} is not a {kind}, finite number", fix)
    return float(value)


def require_mapping(value: object, field: str, example: str) -> Mapping[Any, Any]:
    """Return ``value`` when it is a mapping; raise with ``example`` as the fix otherwise."""
    if not isinstance(value, Mapping):
        raise InvalidSpecError(
            field, f"must be a mapping, got {type(value).__name__}", f"Pass a dict, e.g. {example}."
        )
    return value


def check_no_access_key(value: str, field: str) -> None:
    """Raise when ``value`` contains what looks like an AWS access key id."""
    # The message must not echo the value: it may be a live credential (R7).
    if _ACCESS_KEY_ID.search(value):
        raise InvalidSpecError(field, "contains what looks like an AWS access key id", USE_ROLE)


def check_text(value: str, field: str) -> str:
    """Return ``value`` when a process can receive it: no NUL character and no AWS access key id.

    A NUL ends a C string: ``execve`` cannot pass it in an argument or an environment value, and
    SageMaker and the Kubernetes API refuse it (or worse, cut the value short).
    """
    if "\x00" in value:
        raise InvalidSpecError(
            field,
            "contains a NUL character (\\x00)",
            "Remove it: no process can receive it in an argument or variable.",
        )
    check_no_access_key(value, field)
    return value


def s3_bucket_problem(bucket: str) -> str | None:
    """Return why ``bucket`` is not a valid S3 bucket name (general purpose), or None when it is."""
    if not 3 <= len(bucket) <= 63 or not re.fullmatch(r"[a-z0-9][a-z0-9.-]*[a-z0-9]", bucket, re.ASCII):
        return "is not 3-63 lowercase letters, digits, dots and hyphens, with a letter or digit at both ends"
    if ".." in bucket:
        return "has two adjacent dots"
    try:
        ipaddress.IPv4Address(bucket)
    except ValueError:
        pass
    else:
        return "is formatted as an IP address"
    if bucket.startswith(("xn--", "sthree-", "amzn-s3-demo-")):
        return "starts with a prefix S3 reserves (xn--, sthree-, amzn-s3-demo-)"
    return None


def check_s3_uri(value: object, field: str) -> None:
    """Raise unless ``value`` is ``s3://<valid bucket>[/key]`` of at most 1024 characters (templates pass)."""
    fix = f"Use s3://<bucket>/<prefix> with a valid bucket name, at most {MAX_S3_URI_LENGTH} characters."
    if not isinstance(value, str):
        raise InvalidSpecError(
            field, f"must be a string, got {type(value).__name__}", "Use an s3://bucket/prefix URI."
        )
    if is_templated(value):
        return
    check_text(value, field)
    match = _S3_URI.fullmatch(value)
    if len(value) > MAX_S3_URI_LENGTH or match is None:
        raise InvalidSpecError(field, f"{value!r} is not an S3 URI", fix)
    problem = s3_bucket_problem(match.group("bucket"))
    if problem is not None:
        raise InvalidSpecError(field, f"bucket {match.group('bucket')!r} {problem}", fix)


def check_environment_name(name: object, field: str) -> str:
    """Return ``name`` when it is a valid environment variable name that carries no AWS credentials."""
    if not isinstance(name, str) or not _ENVIRONMENT_KEY.fullmatch(name):
        raise InvalidSpecError(
            field,
            f"{name!r} is not a valid environment variable name",
            "Use letters, digits and underscores, not starting with a digit, e.g. 'MODEL_NAME'.",
        )
    if len(name) > MAX_ENVIRONMENT_KEY_LENGTH:
        raise InvalidSpecError(
            field,
            f"the name is {len(name)} characters long",
            f"Use a name of at most {MAX_ENVIRONMENT_KEY_LENGTH} characters.",
        )
    if name.upper() in CREDENTIAL_NAMES:
        raise InvalidSpecError(field, f"{name} passes static AWS credentials", USE_ROLE)
    return name


def check_secret_reference(reference: object, field: str) -> None:
    """Raise unless ``reference`` names a secret (a Secrets Manager ARN or name) rather than holding one."""
    fix = (
        "Pass a reference, not a value: a Secrets Manager ARN (arn:aws:secretsmanager:<region>:<account>:"
        "secret:<name>) or a secret name of at most 512 letters, digits and /_+=.@- characters."
    )
    if not isinstance(reference, str) or not (
        _SECRET_ARN.fullmatch(reference) or _SECRET_NAME.fullmatch(reference)
    ):
        raise InvalidSpecError(field, "is not a secret reference", fix)
    check_no_access_key(reference, field)
    # A 40-character mixed-case base64 string has the shape of an AWS secret access key, not of a name.
    if _SECRET_ACCESS_KEY_SHAPE.fullmatch(reference) and all(
        any(test(char) for char in reference) for test in (str.isupper, str.islower, str.isdigit)
    ):
        raise InvalidSpecError(field, "looks like a secret value rather than a reference", fix)


def freeze_json(value: Any, field: str) -> Any:
    """Return a deep immutable copy of a JSON-serialisable value, or raise naming the offending path."""
    fix = "Use only dicts with string keys, lists, strings, finite numbers, booleans and None."
    if isinstance(value, str):
        return check_text(value, field)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidSpecError(field, f"{value!r} is not representable in JSON", fix)
        return value
    if isinstance(value, Mapping):
        frozen: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidSpecError(field, f"key {key!r} is not a string", fix)
            frozen[key] = freeze_json(item, f"{field}[{key!r}]")
        return FrozenMapping(frozen)
    if isinstance(value, (list, tuple)):
        return tuple(freeze_json(item, f"{field}[{index}]") for index, item in enumerate(value))
    raise InvalidSpecError(field, f"{type(value).__name__} is not JSON-serialisable", fix)


def quantity_value(quantity: str, field: str = "quantity") -> decimal.Decimal:
    """Return the value of a Kubernetes quantity: ``'500m'`` is 0.5, ``'1Ki'`` is 1024.

    Raise :class:`InvalidSpecError` naming ``field`` when it is not an unsigned quantity.

    :param quantity: an unsigned quantity such as ``'2'``, ``'500m'``, ``'4Gi'`` or ``'1e9'``.
    """
    match = _QUANTITY.fullmatch(quantity) if isinstance(quantity, str) else None
    if match is None:
        raise InvalidSpecError(
            field, f"{quantity!r} is not a Kubernetes quantity", "Use e.g. '2', '500m', '4Gi' or '1e9'."
        )
    suffix = match.group("suffix") or ""
    number = decimal.Decimal(match.group("number"))
    if suffix[:1] in ("e", "E"):
        return number.scaleb(int(suffix[1:]))
    return number * _QUANTITY_FACTORS[suffix]


def check_cpu(value: object, field: str) -> None:
    """Raise unless ``value`` is a Kubernetes CPU quantity of at least one millicore."""
    fix = "Use Kubernetes CPU units: cores as a string ('2', '0.5') or millicores ('500m'), at least '1m'."
    if not isinstance(value, str):
        raise InvalidSpecError(field, f"{value!r} is not a string", fix)
    match = _QUANTITY.fullmatch(value)
    if match is None or (match.group("suffix") or "") not in ("", "m"):
        raise InvalidSpecError(field, f"{value!r} is not a CPU quantity", fix)
    if quantity_value(value) < decimal.Decimal("0.001"):
        raise InvalidSpecError(field, f"{value!r} is less than one millicore", fix)


def check_memory(value: object, field: str) -> None:
    """Raise unless ``value`` is a Kubernetes memory quantity of at least 1 Mi."""
    fix = "Use Kubernetes memory units as a string, e.g. '512Mi' or '4Gi' (powers of 1024), at least '1Mi'."
    if not isinstance(value, str):
        raise InvalidSpecError(field, f"{value!r} is not a string", fix)
    match = _QUANTITY.fullmatch(value)
    if match is None:
        raise InvalidSpecError(field, f"{value!r} is not a memory quantity", fix)
    if match.group("suffix") == "m":
        raise InvalidSpecError(
            field, f"{value!r} is in thousandths of a byte", "Use 'Mi' for mebibytes, e.g. '512Mi'."
        )
    # Less than a mebibyte is a missing unit ('512' meaning '512Mi'), never a real memory size.
    if quantity_value(value) < 1024**2:
        raise InvalidSpecError(field, f"{value!r} is less than 1Mi", fix)
