"""Bad input is caught where the README says (R5): when the DAG is parsed, or, for what only a template or
the connection settles, before anything is created — naming the field and the fix.

Run with ``-s`` to print the table (field, when, message) the closing note quotes.
"""

from __future__ import annotations

from typing import Any

import pytest

from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.operators.training import TrainModelOperator
from lyftlearn_provider.runtime import ResourceProfile
from tests.helpers import make_context, make_spec

QUEUE_EU = "https://sqs.eu-west-1.amazonaws.com/123456789012/ll-training-events"
LOADER = "public.ecr.aws/aws-cli/aws-cli@sha256:" + "b" * 64
KUBERNETES = {"backend": "kubernetes"}

#: (case, spec overrides, operator arguments, the field named)
AT_PARSE_TIME: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
    ("NUL in an environment value", {"environment": {"MODE": "fast\x00slow"}}, {}, "environment['MODE']"),
    (
        "NUL in an environment value (pod)",
        {"environment": {"MODE": "a\x00"}},
        KUBERNETES,
        "environment['MODE']",
    ),
    ("NUL in a hyperparameter", {"hyperparameters": {"name": "x\x00"}}, {}, "hyperparameters['name']"),
    ("NUL in an argument", {"args": ("--a", "b\x00")}, {}, "args[1]"),
    ("NUL in config", {"config": {"a": ["\x00"]}}, {}, "config['a'][0]"),
    ("empty command", {"command": ("",)}, {}, "command[0]"),
    ("empty argument", {"args": ("--epochs", "")}, {}, "args[1]"),
    ("bucket with two dots", {"output_s3_uri": "s3://my..bucket/models"}, {}, "output_s3_uri"),
    ("bucket shaped like an IP", {"inputs": {"train": "s3://192.168.5.4/x"}}, {}, "inputs['train']"),
    ("bucket too short", {"spill_s3_uri": "s3://ab/spill"}, {}, "spill_s3_uri"),
    (
        "instance type SageMaker lacks",
        {"resources": ResourceProfile(instance_type="ml.m5.huge")},
        {},
        "resources.instance_type",
    ),
    ("tag-only image outside ECR", {"image": "ghcr.io/lyft/fraud:v1"}, {}, "image"),
    ("tag-only image outside ECR (pod)", {"image": "python:3.11-slim"}, KUBERNETES, "image"),
    (
        "queue in another region",
        {},
        {"tracking": "events", "events_queue_url": QUEUE_EU, "region_name": "us-east-1"},
        "events_queue_url",
    ),
    ("namespace not a DNS label", {}, {**KUBERNETES, "namespace": "ML_Training"}, "namespace"),
    (
        "service account not a DNS name",
        {},
        {**KUBERNETES, "service_account_name": "Fraud Training"},
        "service_account_name",
    ),
    ("startup timeout of 0", {}, {**KUBERNETES, "startup_timeout_seconds": 0}, "startup_timeout_seconds"),
    (
        "several instances as a pod",
        {"resources": ResourceProfile(instance_type="ml.m5.xlarge", instance_count=2)},
        KUBERNETES,
        "resources.instance_count",
    ),
    (
        "inputs without a loader (pod)",
        {"inputs": {"train": "s3://ml-data/train/"}},
        KUBERNETES,
        "input_loader_image",
    ),
    (
        "role variable in a pod",
        {"environment": {"AWS_ROLE_ARN": "arn:aws:iam::1:role/x"}},
        KUBERNETES,
        "environment['AWS_ROLE_ARN']",
    ),
    ("SageMaker argument on a pod", {}, {**KUBERNETES, "keep_alive_seconds": 600}, "keep_alive_seconds"),
    ("SageMaker argument on a pod", {}, {**KUBERNETES, "tracking": "shared"}, "tracking"),
    ("SageMaker argument on a pod", {}, {**KUBERNETES, "tags": {"team": "fraud"}}, "tags"),
    ("Kubernetes argument on SageMaker", {}, {"namespace": "ml"}, "namespace"),
    ("Kubernetes argument on SageMaker", {}, {"service_account_name": "fraud"}, "service_account_name"),
    ("poll interval as text", {}, {"poll_interval": "30"}, "poll_interval"),
]

TABLE: list[tuple[str, str, str, str]] = []


def operator(spec_overrides: dict[str, Any], arguments: dict[str, Any]) -> TrainModelOperator:
    arguments = (
        {"input_loader_image": None, **arguments} if arguments.get("backend") == "kubernetes" else arguments
    )
    return TrainModelOperator(task_id="train", spec=make_spec(**spec_overrides), **arguments)


@pytest.mark.parametrize(("case", "spec_overrides", "arguments", "field"), AT_PARSE_TIME)
def test_bad_input_fails_when_the_dag_is_parsed(case, spec_overrides, arguments, field):
    # No fixture: parsing touches no AWS and no cluster, so none is there to be called.
    with pytest.raises(InvalidSpecError) as raised:
        operator(spec_overrides, arguments)
    assert raised.value.field == field, raised.value
    assert raised.value.fix
    assert "\x00" not in str(raised.value)
    TABLE.append((case, field, "parse", str(raised.value)))


def test_instance_type_error_suggests_close_names():
    with pytest.raises(InvalidSpecError) as raised:
        operator({"resources": ResourceProfile(instance_type="ml.m5.xlrage")}, {})
    assert "'ml.m5.xlarge'" in raised.value.fix


def test_valid_kubernetes_arguments_on_the_kubernetes_backend_are_accepted():
    task = operator({}, {**KUBERNETES, "namespace": "ml-training", "service_account_name": "fraud-training"})
    assert (task.namespace, task.service_account_name) == ("ml-training", "fraud-training")


def test_rendered_queue_in_another_region_fails_before_anything_is_created(aws, training_image):
    task = operator({}, {"tracking": "events", "events_queue_url": "{{ params.queue }}", "deferrable": True})
    task.events_queue_url = task.render_template(task.events_queue_url, {"params": {"queue": QUEUE_EU}})
    with pytest.raises(InvalidSpecError) as raised:
        task.execute(make_context())  # the region comes from the connection: us-east-1
    assert raised.value.field == "events_queue_url"
    assert "eu-west-1" in raised.value.problem and "us-east-1" in raised.value.problem
    assert aws.control.calls(service="sagemaker") == []
    TABLE.append(("queue in another region (templated)", "events_queue_url", "execute", str(raised.value)))


def test_rendered_spec_error_fails_before_anything_is_created(aws, training_image):
    task = operator({"output_s3_uri": "{{ params.out }}"}, {"deferrable": True})
    with pytest.raises(InvalidSpecError) as raised:
        task.render_template(task.spec, {"params": {"out": "s3://my..bucket/models"}})
    assert raised.value.field == "output_s3_uri"
    assert aws.control.calls(service="sagemaker") == []
    TABLE.append(("templated bucket with two dots", "output_s3_uri", "render", str(raised.value)))


def test_print_the_table():
    # Keeps the closing note honest: the table is what these tests saw (pytest -s shows it).
    assert len(TABLE) >= len(AT_PARSE_TIME)
    for case, field, when, message in TABLE:
        print(f"| {case} | `{field}` | {when} | {message} |")


VALIDATE_AT_PARSE_TIME: list[tuple[dict[str, Any], str]] = [
    ({}, "training_result"),
    ({"training_result": {"image": "x"}, "model_uri": "s3://m/model.tar.gz"}, "training_result"),
    ({"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud:1", "model_uri": "s3://m/m.tgz"}, "image"),
    ({"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud@sha256:" + "a" * 64}, "model_uri"),
    ({"image": "repo@sha256:" + "a" * 64, "model_uri": "s3://my..bucket/m.tgz"}, "model_uri"),
    ({"training_result": {"image": "later"}, "namespace": "ML"}, "namespace"),
]


@pytest.mark.parametrize(("arguments", "field"), VALIDATE_AT_PARSE_TIME)
def test_bad_validation_input_fails_when_the_dag_is_parsed(arguments, field):
    from lyftlearn_provider import ValidateModelOperator

    with pytest.raises(InvalidSpecError) as raised:
        ValidateModelOperator(task_id="validate", spec=make_spec(), **arguments)
    assert raised.value.field == field
    assert raised.value.fix


POD_ARGUMENTS: list[tuple[dict[str, Any], str, str]] = [
    ({"namespace": "ML_Training"}, "namespace", "e.g. 'ml-{team}'"),
    ({"service_account_name": "Fraud Training"}, "service_account_name", "e.g. 'fraud-{team}'"),
    ({"startup_timeout_seconds": 0}, "startup_timeout_seconds", "Use the seconds a pod may take to start"),
]


@pytest.mark.parametrize(("arguments", "field", "fix"), POD_ARGUMENTS)
def test_every_operator_that_runs_a_pod_checks_its_pod_arguments_alike(arguments, field, fix):
    # One check for the pod's arguments (RunsPods): training as a pod and validation say the same, each
    # suggesting its own namespace and service account.
    from lyftlearn_provider import ValidateModelOperator

    def train() -> Any:
        return operator({}, {**KUBERNETES, **arguments})

    def validate() -> Any:
        return ValidateModelOperator(
            task_id="validate", spec=make_spec(), training_result={"image": "later"}, **arguments
        )

    for build, team in ((train, "training"), (validate, "serving")):
        with pytest.raises(InvalidSpecError) as raised:
            build()
        assert raised.value.field == field
        assert fix.format(team=team) in raised.value.fix
