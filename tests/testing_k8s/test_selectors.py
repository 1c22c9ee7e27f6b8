from __future__ import annotations

import pytest

from lyftlearn_provider.testing.k8s.selectors import (
    SelectorError,
    label_selector_to_string,
    match_fields,
    match_labels,
    parse_field_selector,
    selector_object_matches,
)

LABELS = {"app": "web", "tier": "frontend", "example.com/team": "ml"}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=api", False),
        ("app!=api", True),
        ("missing!=x", True),  # != and notin hold when the key is absent, as in Kubernetes
        ("app", True),
        ("!app", False),
        ("!missing", True),
        ("tier in (frontend, backend)", True),
        ("tier in (backend)", False),
        ("tier notin (backend)", True),
        ("missing notin (x)", True),
        ("missing in (x)", False),
        ("app=web,tier in (frontend),!missing", True),
        ("app=web,tier=backend", False),
        ("example.com/team=ml", True),
    ],
)
def test_label_selector_grammar(selector: str, expected: bool) -> None:
    assert match_labels(selector, LABELS) is expected


@pytest.mark.parametrize("selector", ["app=web,", "tier in ()", "tier in (a", "app=we b", "=web"])
def test_label_selector_rejects_malformed_input(selector: str) -> None:
    with pytest.raises(SelectorError):
        match_labels(selector, LABELS)


def test_field_selectors_read_dotted_paths_and_escapes() -> None:
    event = {"involvedObject": {"name": "web-1", "kind": "Pod"}, "type": "Warning", "message": "a,b=c"}
    assert match_fields("involvedObject.name=web-1,involvedObject.kind=Pod", event)
    assert match_fields("type!=Normal", event)
    assert not match_fields("involvedObject.name==other", event)
    # A missing field reads as the empty string.
    assert match_fields("involvedObject.uid=", event)
    assert match_fields(r"message=a\,b\=c", event)
    assert parse_field_selector(r"a=x\\y")[0].value == "x\\y"


def test_field_selector_rejects_malformed_input() -> None:
    with pytest.raises(SelectorError):
        parse_field_selector("status.phase")
    with pytest.raises(SelectorError):
        parse_field_selector(r"a=b\q")


def test_selector_objects_render_and_match() -> None:
    selector = {
        "matchLabels": {"tier": "frontend", "app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "canary"]},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    }
    assert label_selector_to_string(selector) == "app=web,tier=frontend,env in (canary,prod),!legacy"
    assert selector_object_matches(selector, {**LABELS, "env": "prod"})
    assert not selector_object_matches(selector, {**LABELS, "env": "dev"})
    # An empty selector object selects nothing (unlike an empty selector string in a list request).
    assert not selector_object_matches({}, LABELS)
    with pytest.raises(SelectorError):
        label_selector_to_string({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})
