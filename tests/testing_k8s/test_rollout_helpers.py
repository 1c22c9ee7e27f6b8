from __future__ import annotations

import pytest

from lyftlearn_provider.testing.k8s.deployments import (
    fnv32a,
    int_or_percent,
    pod_template_hash,
    surge_and_unavailable,
    templates_equal,
)
from lyftlearn_provider.testing.k8s.meta import SAFE_ALPHABET

TEMPLATE = {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "s", "image": "web:1"}]}}


def test_fnv32a_matches_the_reference_vectors() -> None:
    assert fnv32a(b"") == 0x811C9DC5
    assert fnv32a(b"a") == 0xE40C292C
    assert fnv32a(b"foobar") == 0xBF9CF968


def test_pod_template_hash_is_stable_and_ignores_how_empty_fields_are_written() -> None:
    value = pod_template_hash(TEMPLATE)
    assert 1 <= len(value) <= 10 and set(value) <= set(SAFE_ALPHABET)
    # What a Go client writes back (the hash label, null timestamps, empty structs) is the same template.
    round_tripped = {
        "metadata": {"labels": {"app": "web", "pod-template-hash": value}, "creationTimestamp": None},
        "spec": {"containers": [{"name": "s", "image": "web:1", "resources": {}}]},
    }
    assert pod_template_hash(round_tripped) == value
    assert templates_equal(round_tripped, TEMPLATE)
    changed = {**TEMPLATE, "spec": {"containers": [{"name": "s", "image": "web:2"}]}}
    assert pod_template_hash(changed) != value
    assert pod_template_hash(TEMPLATE, collision_count=1) != value


@pytest.mark.parametrize(
    ("value", "total", "round_up", "expected"),
    [
        ("25%", 2, True, 1),
        ("25%", 2, False, 0),
        ("50%", 5, True, 3),
        ("50%", 5, False, 2),
        (3, 10, True, 3),
        ("2", 10, False, 2),
        (None, 4, True, 1),
    ],
)
def test_int_or_percent(value: int | str | None, total: int, round_up: bool, expected: int) -> None:
    assert int_or_percent(value, total, round_up=round_up) == expected


def test_surge_and_unavailable() -> None:
    assert surge_and_unavailable({"spec": {"replicas": 2}}) == (1, 0)
    assert surge_and_unavailable(
        {"spec": {"replicas": 4, "strategy": {"rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}}}
    ) == (0, 1)
    assert surge_and_unavailable({"spec": {"replicas": 3, "strategy": {"type": "Recreate"}}}) == (0, 0)
