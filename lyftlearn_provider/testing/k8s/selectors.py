r"""Label and field selectors: parsing and matching, as pure functions.

Label selectors follow the API server's grammar: ``key``, ``!key``, ``key=value``, ``key==value``,
``key!=value``, ``key in (a,b)``, ``key notin (a,b)``, comma-separated (all must hold). Field selectors
are ``path=value`` / ``path==value`` / ``path!=value`` over dotted paths into the object
(``metadata.name``, ``status.phase``, ``involvedObject.name``), with ``\,``, ``\=`` and ``\\``
escapes in values.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

_KEY = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?/)?[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?"
_VALUE = r"(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]*[A-Za-z0-9])?)?"
_EXISTS = re.compile(rf"^(!?)\s*({_KEY})$")
_EQUALITY = re.compile(rf"^({_KEY})\s*(==|=|!=)\s*({_VALUE})$")
_SET = re.compile(rf"^({_KEY})\s+(in|notin)\s*\(([^()]*)\)$")
_FIELD = re.compile(r"^([A-Za-z0-9_.]+)\s*(==|=|!=)(.*)$", re.DOTALL)


class SelectorError(ValueError):
    """Signal a selector that cannot be parsed."""


@dataclass(frozen=True)
class LabelRequirement:
    """Hold one term of a label selector.

    ``operator`` is one of ``exists``, ``!exists``, ``=``, ``!=``, ``in``, ``notin``.
    """

    key: str
    operator: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Tell whether a set of labels satisfies this term."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.operator == "exists":
            return present
        if self.operator == "!exists":
            return not present
        if self.operator in ("=", "in"):
            return present and value in self.values
        # "!=" and "notin" also hold when the key is absent, as in Kubernetes.
        return not present or value not in self.values


@dataclass(frozen=True)
class LabelSelector:
    """Hold a parsed label selector: every requirement must hold; the empty one matches everything."""

    requirements: tuple[LabelRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """Tell whether a set of labels satisfies the selector."""
        labels = labels or {}
        return all(req.matches(labels) for req in self.requirements)


def _split_terms(text: str) -> list[str]:
    """Split on the commas that separate terms (not those inside ``in (a,b)``)."""
    terms: list[str] = []
    depth = 0
    current: list[str] = []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise SelectorError(f"unbalanced parentheses in selector {text!r}")
        if ch == "," and depth == 0:
            terms.append("".join(current))
            current = []
        else:
            current.append(ch)
    if depth != 0:
        raise SelectorError(f"unbalanced parentheses in selector {text!r}")
    terms.append("".join(current))
    return [t.strip() for t in terms]


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse a label selector string; raise ``SelectorError`` when it is malformed."""
    if text is None or not text.strip():
        return LabelSelector()
    requirements: list[LabelRequirement] = []
    for term in _split_terms(text):
        if not term:
            raise SelectorError(f"found empty requirement in selector {text!r}")
        if m := _SET.match(term):
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            if not values:
                raise SelectorError(f"for 'in', 'notin' operators, values set can't be empty: {term!r}")
            requirements.append(LabelRequirement(m.group(1), m.group(2), values))
        elif m := _EQUALITY.match(term):
            op = "!=" if m.group(2) == "!=" else "="
            requirements.append(LabelRequirement(m.group(1), op, frozenset({m.group(3)})))
        elif m := _EXISTS.match(term):
            requirements.append(LabelRequirement(m.group(2), "!exists" if m.group(1) else "exists"))
        else:
            raise SelectorError(f"unable to parse requirement: {term!r}")
    return LabelSelector(tuple(requirements))


def match_labels(selector: str | None, labels: Mapping[str, str] | None) -> bool:
    """Tell whether labels satisfy a label selector string."""
    return parse_label_selector(selector).matches(labels)


def label_selector_to_string(selector: Mapping[str, Any] | None) -> str:
    """Render a ``LabelSelector`` object (``matchLabels``/``matchExpressions``) as a selector string.

    This is how a client turns a Deployment's ``spec.selector`` into a ``labelSelector`` query, e.g.
    to list the Deployment's ReplicaSets or pods.
    """
    if not selector:
        return ""
    terms = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op = expr["key"], expr["operator"]
        values = ",".join(sorted(expr.get("values") or []))
        if op == "In":
            terms.append(f"{key} in ({values})")
        elif op == "NotIn":
            terms.append(f"{key} notin ({values})")
        elif op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
        else:
            raise SelectorError(f"{op!r} is not a valid label selector operator")
    return ",".join(terms)


def selector_object_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """Tell whether labels satisfy a ``LabelSelector`` object; an empty selector matches nothing.

    Kubernetes treats an empty (or missing) selector object on a workload as "selects nothing",
    unlike an empty selector *string* in a list request.
    """
    text = label_selector_to_string(selector)
    return bool(text) and match_labels(text, labels)


@dataclass(frozen=True)
class FieldRequirement:
    """Hold one term of a field selector: ``path`` compared (``=`` or ``!=``) with ``value``."""

    path: str
    operator: str
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """Tell whether an object satisfies this term (a missing field reads as the empty string)."""
        actual = field_value(obj, self.path)
        return (actual == self.value) == (self.operator == "=")


def field_value(obj: Mapping[str, Any], path: str) -> str:
    """Return the value at a dotted path as a string (empty when absent)."""
    current: Any = obj
    for part in path.split("."):
        current = current.get(part) if isinstance(current, Mapping) else None
    if current is None:
        return ""
    if isinstance(current, bool):
        return str(current).lower()
    return str(current)


def _split_unescaped(text: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in text:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ",":
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if escaped:
        raise SelectorError(f"invalid trailing escape in field selector {text!r}")
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            if nxt not in ("\\", ",", "="):
                raise SelectorError(f"invalid field selector escape sequence: \\{nxt}")
            out.append(nxt)
        else:
            out.append(ch)
    return "".join(out)


def parse_field_selector(text: str | None) -> tuple[FieldRequirement, ...]:
    """Parse a field selector string; raise ``SelectorError`` when it is malformed."""
    if text is None or not text.strip():
        return ()
    requirements: list[FieldRequirement] = []
    for term in _split_unescaped(text):
        m = _FIELD.match(term.strip())
        if not m:
            raise SelectorError(f"invalid selector: {term!r}; can't understand {term!r}")
        op = "!=" if m.group(2) == "!=" else "="
        requirements.append(FieldRequirement(m.group(1), op, _unescape(m.group(3).strip())))
    return tuple(requirements)


def match_fields(selector: str | None, obj: Mapping[str, Any]) -> bool:
    """Tell whether an object satisfies a field selector string."""
    return all(req.matches(obj) for req in parse_field_selector(selector))


def unsupported_fields(requirements: Iterable[FieldRequirement], supported: Iterable[str]) -> list[str]:
    """Return the fields a selector uses that a resource does not support selecting on."""
    allowed = set(supported)
    return [req.path for req in requirements if req.path not in allowed]
