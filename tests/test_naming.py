from __future__ import annotations

import re

import pytest

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.naming import (
    JOB_NAME_PATTERN,
    MAX_JOB_NAME_LENGTH,
    attempt_job_name,
    training_job_name,
    validate_job_name,
    validate_prefix,
)

IDENTITY = {
    "dag_id": "retrain_fraud",
    "task_id": "train",
    "run_id": "scheduled__2026-11-28T15:00:00+00:00",
    "map_index": -1,
}


def test_name_is_readable_and_stable():
    name = training_job_name(**IDENTITY)
    assert name == training_job_name(**IDENTITY)
    assert re.fullmatch(r"ll-retrain-fraud-train-[0-9a-f]{10}", name)


@pytest.mark.parametrize(
    "change",
    [
        {"dag_id": "retrain_fraud2"},
        {"task_id": "train2"},
        {"run_id": "manual__2026-11-28T15:00:00+00:00"},
        {"map_index": 3},
    ],
)
def test_every_part_of_the_identity_changes_the_name(change):
    assert training_job_name(**{**IDENTITY, **change}) != training_job_name(**IDENTITY)


def test_names_that_differ_only_beyond_the_readable_part_stay_distinct():
    long_dag = "a" * 200
    first = training_job_name(**{**IDENTITY, "dag_id": long_dag + "x"})
    second = training_job_name(**{**IDENTITY, "dag_id": long_dag + "y"})
    assert first != second
    assert len(first) <= MAX_JOB_NAME_LENGTH - 4


@pytest.mark.parametrize(
    "dag_id",
    ["x" * 250, "___", "Ünïcode-dåg", "dots.and spaces", "-leading-hyphen-", "UPPER_case"],
)
def test_any_dag_id_yields_a_valid_name_with_room_for_attempts(dag_id):
    base = training_job_name(**{**IDENTITY, "dag_id": dag_id})
    for attempt in (1, 2, 99):
        name = attempt_job_name(base, attempt)
        assert JOB_NAME_PATTERN.match(name), name
        assert len(name) <= MAX_JOB_NAME_LENGTH


def test_attempt_names():
    base = training_job_name(**IDENTITY)
    assert attempt_job_name(base, 1) == base
    assert attempt_job_name(base, 2) == base + "-a2"
    with pytest.raises(InvalidSpecError, match="attempt"):
        attempt_job_name(base, 100)


@pytest.mark.parametrize("prefix", ["", "UPPER", "has_underscore", "-x", "x-", "a--b", "p" * 17])
def test_bad_prefixes_are_rejected_with_a_fix(prefix):
    with pytest.raises(InvalidSpecError) as raised:
        validate_prefix(prefix)
    assert raised.value.field == "job_name_prefix"
    assert "Use 1-16 lowercase" in str(raised.value)


@pytest.mark.parametrize("name", ["", "-x", "x" * 64, "has_underscore", "a.b"])
def test_invalid_job_names_are_rejected(name):
    with pytest.raises(InvalidSpecError, match="job_name"):
        validate_job_name(name)
