from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from functools import partial
from typing import Any

import pytest
from botocore.loaders import Loader

from lyftlearn_provider import contract, limits, naming
from lyftlearn_provider.contract import container_environment, hyperparameter_values
from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.rendering.sagemaker import TrainingJobRendering, render_training_job
from lyftlearn_provider.runtime import ResourceProfile, RuntimeSpec
from lyftlearn_provider.validation import FrozenMapping

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud:v42"
DIGEST_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud@sha256:" + "a" * 64
ROLE = "arn:aws:iam::123456789012:role/sagemaker-training"
OUTPUT = "s3://ml-artifacts/fraud"
JOB = "ll-fraud-train-0123456789"
SPILL_URI = f"{OUTPUT}/lyftlearn-runtime/{JOB}/runtime.json"
# AWS's documented example credentials: shaped like real ones, valid nowhere.
EXAMPLE_ACCESS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
EXAMPLE_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"


@pytest.fixture(scope="module")
def shapes() -> dict[str, Any]:
    return Loader().load_service_model("sagemaker", "service-2")["shapes"]


def make_spec(**overrides: Any) -> RuntimeSpec:
    values: dict[str, Any] = {"image": IMAGE, "role_arn": ROLE, "output_s3_uri": OUTPUT}
    values.update(overrides)
    return RuntimeSpec(**values)


def typical_spec() -> RuntimeSpec:
    return make_spec(
        command=["python", "-m", "fraud.train"],
        args=["--epochs", "3"],
        environment={"LOG_LEVEL": "info", "MODEL_NAME": "fraud"},
        hyperparameters={"learning_rate": 0.1, "epochs": 3, "early_stopping": True, "optimizer": "adam"},
        config={"model": {"depth": 6, "features": ["amount", "country"]}},
        secrets={"DB_PASSWORD": "prod/fraud/db-password"},
        inputs={"train": "s3://ml-data/fraud/train/", "validation": "s3://ml-data/fraud/validation/"},
        resources=ResourceProfile(instance_type="ml.g5.2xlarge", instance_count=2, volume_size_gb=100),
        metrics_host="statsd.monitoring",
    )


def render(spec: RuntimeSpec, **kwargs: Any) -> TrainingJobRendering:
    kwargs.setdefault("job_name", JOB)
    kwargs.setdefault("max_runtime_seconds", 3600)
    return render_training_job(spec, **kwargs)


def assert_within_limits(request: dict[str, Any], shapes: dict[str, Any]) -> None:
    """Check the request against the service model's limits (botocore itself only checks minimums)."""
    environment = request["Environment"]
    assert len(environment) <= shapes["TrainingEnvironmentMap"]["max"]
    for key, value in environment.items():
        assert len(key) <= shapes["TrainingEnvironmentKey"]["max"]
        assert len(value) <= shapes["TrainingEnvironmentValue"]["max"]
        assert re.fullmatch(shapes["TrainingEnvironmentKey"]["pattern"], key)
    hyperparameters = request.get("HyperParameters", {})
    assert len(hyperparameters) <= shapes["HyperParameters"]["max"]
    for key, value in hyperparameters.items():
        assert isinstance(value, str)
        assert len(key) <= shapes["HyperParameterKey"]["max"]
        assert len(value) <= shapes["HyperParameterValue"]["max"]
    assert len(request.get("Tags", [])) <= shapes["TagList"]["max"]
    assert len(request["AlgorithmSpecification"]["TrainingImage"]) <= shapes["AlgorithmImage"]["max"]
    assert re.fullmatch(shapes["TrainingJobName"]["pattern"], request["TrainingJobName"])


def assert_nothing_lost(spec: RuntimeSpec, rendering: TrainingJobRendering, **env_kwargs: Any) -> None:
    """Request plus spill document must reproduce exactly what the container is meant to see."""
    document = rendering.spill_document or {"environment": {}, "hyperparameters": {}}
    environment = {**rendering.request["Environment"], **document["environment"]}
    assert environment.pop(contract.ENV_SPILL_URI, None) == rendering.spill_uri
    expected_environment = container_environment(spec, runtime="sagemaker", job_name=JOB, **env_kwargs)
    assert environment == expected_environment
    hyperparameters = {**rendering.request.get("HyperParameters", {}), **document["hyperparameters"]}
    assert hyperparameters == hyperparameter_values(spec)
    # An entry lives in exactly one place: nothing is duplicated between request and document.
    assert not set(document["environment"]) & set(rendering.request["Environment"])
    assert not set(document["hyperparameters"]) & set(rendering.request.get("HyperParameters", {}))


# --------------------------------------------------------------------------------------------- requests


def test_typical_spec_renders_exactly_this_request() -> None:
    rendering = render(typical_spec(), keep_alive_seconds=900, tags={"team": "fraud", "cost-center": "ml"})

    assert rendering.spill_uri is None
    assert rendering.spill_document is None
    assert rendering.spill_payload() is None
    assert rendering.request == {
        "TrainingJobName": JOB,
        "RoleArn": ROLE,
        "AlgorithmSpecification": {
            "TrainingImage": IMAGE,
            "TrainingInputMode": "File",
            "ContainerEntrypoint": ["python", "-m", "fraud.train"],
            "ContainerArguments": ["--epochs", "3"],
        },
        "HyperParameters": {
            "early_stopping": "true",
            "epochs": "3",
            "learning_rate": "0.1",
            "optimizer": "adam",
        },
        "Environment": {
            "LOG_LEVEL": "info",
            "LYFTLEARN_CONFIG": '{"model":{"depth":6,"features":["amount","country"]}}',
            "LYFTLEARN_JOB_NAME": JOB,
            "LYFTLEARN_RUNTIME": "sagemaker",
            "LYFTLEARN_SECRETS": '{"DB_PASSWORD":"prod/fraud/db-password"}',
            "LYFTLEARN_STATSD_HOST": "statsd.monitoring",
            "LYFTLEARN_STATSD_PORT": "8125",
            "MODEL_NAME": "fraud",
            "STATSD_HOST": "statsd.monitoring",
            "STATSD_PORT": "8125",
        },
        "OutputDataConfig": {"S3OutputPath": OUTPUT},
        "ResourceConfig": {
            "InstanceType": "ml.g5.2xlarge",
            "InstanceCount": 2,
            "VolumeSizeInGB": 100,
            "KeepAlivePeriodInSeconds": 900,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://ml-data/fraud/train/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            },
            {
                "ChannelName": "validation",
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": "s3://ml-data/fraud/validation/",
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            },
        ],
        "Tags": [{"Key": "cost-center", "Value": "ml"}, {"Key": "team", "Value": "fraud"}],
    }


def test_minimal_spec_omits_optional_request_parts() -> None:
    request = render(make_spec()).request

    assert request["AlgorithmSpecification"] == {"TrainingImage": IMAGE, "TrainingInputMode": "File"}
    assert request["Environment"] == {"LYFTLEARN_JOB_NAME": JOB, "LYFTLEARN_RUNTIME": "sagemaker"}
    assert request["ResourceConfig"] == {
        "InstanceType": "ml.m5.xlarge",
        "InstanceCount": 1,
        "VolumeSizeInGB": 30,
    }
    for absent in ("HyperParameters", "InputDataConfig", "Tags"):
        assert absent not in request


def test_rendered_requests_pass_botocore_validation(shapes: dict[str, Any]) -> None:
    from botocore.model import ServiceModel
    from botocore.validate import ParamValidator

    model = ServiceModel(Loader().load_service_model("sagemaker", "service-2"), "sagemaker")
    shape = model.operation_model("CreateTrainingJob").input_shape
    spilling = make_spec(environment={f"VAR_{i:03d}": "v" * 600 for i in range(150)})
    for rendering in (render(typical_spec(), keep_alive_seconds=0, tags={"team": "fraud"}), render(spilling)):
        report = ParamValidator().validate(rendering.request, shape)
        assert not report.has_errors(), report.generate_report()
        assert_within_limits(rendering.request, shapes)


def test_run_environment_reaches_the_container() -> None:
    run_environment = {
        "LYFTLEARN_DAG_ID": "fraud",
        "LYFTLEARN_RUN_ID": "scheduled__2024-01-01T00:00:00+00:00",
    }
    environment = render(make_spec(), run_environment=run_environment).request["Environment"]

    assert environment["LYFTLEARN_DAG_ID"] == "fraud"
    assert environment["LYFTLEARN_RUN_ID"] == "scheduled__2024-01-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("adam", "adam"),
        ("", ""),
        ("3", "3"),
        (3, "3"),
        (-2, "-2"),
        (0.1, "0.1"),
        (1e-05, "1e-05"),
        (2.0, "2.0"),
        (True, "true"),
        (False, "false"),
    ],
)
def test_hyperparameters_become_strings(value: Any, expected: str) -> None:
    spec = make_spec(hyperparameters={"value": value})

    assert hyperparameter_values(spec) == {"value": expected}
    assert render(spec).request["HyperParameters"] == {"value": expected}


# -------------------------------------------------------------------------------------- the container view


def test_container_environments_differ_only_in_runtime() -> None:
    spec = typical_spec()
    views = {
        name: container_environment(
            spec, runtime=name, job_name=JOB, run_environment={"LYFTLEARN_RUN_ID": "r"}
        )
        for name in ("sagemaker", "kubernetes", "validation")
    }

    for name, view in views.items():
        assert view.pop("LYFTLEARN_RUNTIME") == name
    assert views["sagemaker"] == views["kubernetes"] == views["validation"]


def test_user_statsd_variables_are_not_overridden() -> None:
    spec = make_spec(
        environment={"STATSD_HOST": "localhost"}, metrics_host="statsd.monitoring", metrics_port=9125
    )
    environment = container_environment(spec, runtime="kubernetes", job_name=JOB)

    assert environment["STATSD_HOST"] == "localhost"
    assert environment["STATSD_PORT"] == "9125"
    assert environment["LYFTLEARN_STATSD_HOST"] == "statsd.monitoring"
    assert environment["LYFTLEARN_STATSD_PORT"] == "9125"


def test_no_metrics_host_sets_no_metrics_variables() -> None:
    environment = container_environment(make_spec(), runtime="sagemaker", job_name=JOB)

    assert not {name for name in environment if "STATSD" in name}


def test_config_and_secrets_travel_as_json() -> None:
    environment = container_environment(typical_spec(), runtime="sagemaker", job_name=JOB)

    assert json.loads(environment["LYFTLEARN_CONFIG"]) == {
        "model": {"depth": 6, "features": ["amount", "country"]}
    }
    assert json.loads(environment["LYFTLEARN_SECRETS"]) == {"DB_PASSWORD": "prod/fraud/db-password"}
    assert "DB_PASSWORD" not in environment


# --------------------------------------------------------------------------------------------- spilling


def test_one_over_long_environment_value_spills(shapes: dict[str, Any]) -> None:
    spec = make_spec(environment={"FEATURES": "f" * 513, "LOG_LEVEL": "info"})
    rendering = render(spec)

    assert rendering.spill_uri == SPILL_URI
    assert rendering.spill_document == {"environment": {"FEATURES": "f" * 513}, "hyperparameters": {}}
    assert rendering.request["Environment"][contract.ENV_SPILL_URI] == SPILL_URI
    assert rendering.request["Environment"]["LOG_LEVEL"] == "info"
    assert_within_limits(rendering.request, shapes)
    assert_nothing_lost(spec, rendering)


def test_large_config_spills_and_round_trips(shapes: dict[str, Any]) -> None:
    config = {"features": [f"feature_{i}" for i in range(100)]}
    spec = make_spec(config=config)
    rendering = render(spec)

    assert rendering.spill_document is not None
    assert set(rendering.spill_document["environment"]) == {"LYFTLEARN_CONFIG"}
    assert json.loads(rendering.spill_document["environment"]["LYFTLEARN_CONFIG"]) == config
    assert_within_limits(rendering.request, shapes)
    assert_nothing_lost(spec, rendering)


def test_more_than_100_environment_entries_spill_in_key_order(shapes: dict[str, Any]) -> None:
    environment = {f"VAR_{i:03d}": str(i) for i in reversed(range(120))}
    spec = make_spec(environment=environment)
    rendering = render(spec)

    assert rendering.spill_document is not None
    request_environment = rendering.request["Environment"]
    # 120 user entries + LYFTLEARN_JOB_NAME + LYFTLEARN_RUNTIME: 99 stay, the pointer is the 100th.
    assert len(request_environment) == 100
    assert request_environment[contract.ENV_SPILL_URI] == SPILL_URI
    assert request_environment["LYFTLEARN_RUNTIME"] == "sagemaker"
    assert request_environment["LYFTLEARN_JOB_NAME"] == JOB
    assert rendering.spill_document == {
        "environment": {f"VAR_{i:03d}": str(i) for i in range(97, 120)},
        "hyperparameters": {},
    }
    assert_within_limits(rendering.request, shapes)
    assert_nothing_lost(spec, rendering)


def test_over_long_values_move_before_overflow(shapes: dict[str, Any]) -> None:
    environment = {f"VAR_{i:03d}": str(i) for i in range(101)}
    environment["VAR_000"] = "x" * 600
    spec = make_spec(environment=environment)
    rendering = render(spec)

    assert rendering.spill_document is not None
    moved = rendering.spill_document["environment"]
    # The over-long value moves first; of the remaining 100 user entries, the two provider entries and
    # the pointer leave room for 97, so the last three in key order follow it.
    assert moved == {"VAR_000": "x" * 600, "VAR_098": "98", "VAR_099": "99", "VAR_100": "100"}
    assert len(rendering.request["Environment"]) == 100
    assert_within_limits(rendering.request, shapes)
    assert_nothing_lost(spec, rendering)


def test_over_long_hyperparameter_spills(shapes: dict[str, Any]) -> None:
    spec = make_spec(hyperparameters={"vocabulary": "w" * 2501, "epochs": 3})
    rendering = render(spec)

    assert rendering.spill_uri == SPILL_URI
    assert rendering.spill_document == {"environment": {}, "hyperparameters": {"vocabulary": "w" * 2501}}
    assert rendering.request["HyperParameters"] == {"epochs": "3"}
    assert rendering.request["Environment"][contract.ENV_SPILL_URI] == SPILL_URI
    assert_within_limits(rendering.request, shapes)
    assert_nothing_lost(spec, rendering)


def test_more_than_100_hyperparameters_spill_in_key_order(shapes: dict[str, Any]) -> None:
    hyperparameters = {f"hp_{i:03d}": i for i in reversed(range(130))}
    spec = make_spec(hyperparameters=hyperparameters)
    rendering = render(spec)

    assert rendering.spill_document == {
        "environment": {},
        "hyperparameters": {f"hp_{i:03d}": str(i) for i in range(100, 130)},
    }
    assert list(rendering.request["HyperParameters"]) == [f"hp_{i:03d}" for i in range(100)]
    assert rendering.request["Environment"][contract.ENV_SPILL_URI] == SPILL_URI
    assert_within_limits(rendering.request, shapes)
    assert_nothing_lost(spec, rendering)


def test_exactly_100_environment_entries_fit_without_spilling(shapes: dict[str, Any]) -> None:
    spec = make_spec(environment={f"VAR_{i:03d}": "v" for i in range(98)})
    rendering = render(spec)

    assert rendering.spill_document is None
    assert len(rendering.request["Environment"]) == 100
    assert contract.ENV_SPILL_URI not in rendering.request["Environment"]
    assert_within_limits(rendering.request, shapes)


def test_pointer_for_spilled_hyperparameters_makes_room_in_a_full_environment(shapes: dict[str, Any]) -> None:
    spec = make_spec(
        environment={f"VAR_{i:03d}": "v" for i in range(98)}, hyperparameters={"long": "h" * 3000}
    )
    rendering = render(spec)

    assert rendering.spill_document == {
        "environment": {"VAR_097": "v"},
        "hyperparameters": {"long": "h" * 3000},
    }
    assert len(rendering.request["Environment"]) == 100
    assert_within_limits(rendering.request, shapes)
    assert_nothing_lost(spec, rendering)


def test_spill_goes_to_spill_s3_uri_when_set() -> None:
    spec = make_spec(environment={"BIG": "b" * 1000}, spill_s3_uri="s3://ml-scratch/runtime/")
    rendering = render(spec)

    assert rendering.spill_uri == f"s3://ml-scratch/runtime/{JOB}/runtime.json"
    assert rendering.request["Environment"][contract.ENV_SPILL_URI] == rendering.spill_uri


def test_spill_payload_is_the_document_as_canonical_json() -> None:
    rendering = render(make_spec(environment={"BIG": "b" * 1000}, hyperparameters={"z": "z" * 3000}))

    payload = rendering.spill_payload()
    assert payload is not None
    assert json.loads(payload) == rendering.spill_document
    assert payload == json.dumps(rendering.spill_document, sort_keys=True, separators=(",", ":")).encode()


def test_rendering_is_deterministic_whatever_the_input_order() -> None:
    environment = {f"VAR_{i:03d}": "v" * (i * 7) for i in range(130)}
    hyperparameters = {f"hp_{i:03d}": "h" * (i * 30) for i in range(120)}
    forward = make_spec(
        environment=environment, hyperparameters=hyperparameters, config={"a": 1, "b": [1, 2]}
    )
    backward = make_spec(
        environment=dict(reversed(environment.items())),
        hyperparameters=dict(reversed(hyperparameters.items())),
        config={"b": [1, 2], "a": 1},
    )

    first, second, again = render(forward), render(backward), render(forward)
    assert first == second == again
    assert json.dumps(first.request) == json.dumps(second.request)
    assert first.spill_payload() == second.spill_payload()


# ------------------------------------------------------------------------------- templates and render_with


def templated_spec() -> RuntimeSpec:
    return make_spec(
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud:{{ params.tag }}",
        output_s3_uri="{{ params.bucket }}/{{ ds }}",
        args=["--date", "{{ ds }}"],
        environment={"RUN_DATE": "{{ ds }}"},
        hyperparameters={"learning_rate": "{{ params.lr }}", "epochs": 3},
        config={"window": {"end": "{{ ds }}"}},
        inputs={"train": "{{ params.data }}/{{ ds }}/"},
    )


def airflow_render(context: Any) -> Any:
    from airflow.sdk import BaseOperator

    return partial(BaseOperator(task_id="render").render_template, context=context)


CONTEXT: dict[str, Any] = {
    "ds": "2024-01-01",
    "params": {"tag": "v43", "bucket": "s3://ml-artifacts", "lr": 0.2, "data": "s3://ml-data"},
}


def test_templated_values_skip_format_checks_until_rendered() -> None:
    spec = templated_spec()

    assert spec.is_templated()
    assert not typical_spec().is_templated()
    with pytest.raises(InvalidSpecError) as caught:
        render(spec)
    assert caught.value.field == "image"
    assert "render_with" in caught.value.fix


def test_render_with_renders_every_template_field_through_airflow() -> None:
    rendered = templated_spec().render_with(airflow_render(CONTEXT))

    assert not rendered.is_templated()
    assert rendered.image == "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud:v43"
    assert rendered.output_s3_uri == "s3://ml-artifacts/2024-01-01"
    assert rendered.args == ("--date", "2024-01-01")
    assert rendered.environment == {"RUN_DATE": "2024-01-01"}
    assert rendered.hyperparameters == {"learning_rate": "0.2", "epochs": 3}
    assert rendered.config == {"window": {"end": "2024-01-01"}}
    assert rendered.inputs == {"train": "s3://ml-data/2024-01-01/"}
    assert rendered.role_arn == ROLE
    assert render(rendered).request["AlgorithmSpecification"]["ContainerArguments"] == [
        "--date",
        "2024-01-01",
    ]


def test_render_with_hands_plain_containers_to_the_renderer() -> None:
    seen: dict[type, int] = {}

    def record(value: Any) -> Any:
        seen[type(value)] = seen.get(type(value), 0) + 1
        return value

    rendered = typical_spec().render_with(record)

    assert rendered == typical_spec()
    assert set(seen) <= {str, list, dict}
    assert sum(seen.values()) == len(RuntimeSpec.template_fields)


def test_render_with_revalidates_the_rendered_values() -> None:
    context = {**CONTEXT, "params": {**CONTEXT["params"], "bucket": "/local/dir"}}

    with pytest.raises(InvalidSpecError) as caught:
        templated_spec().render_with(airflow_render(context))
    assert caught.value.field == "output_s3_uri"


def test_render_with_catches_credentials_from_templates() -> None:
    spec = make_spec(environment={"KEY": "{{ params.key }}"})

    with pytest.raises(InvalidSpecError) as caught:
        spec.render_with(airflow_render({"params": {"key": EXAMPLE_ACCESS_KEY_ID}}))
    assert caught.value.field == "environment['KEY']"
    assert EXAMPLE_ACCESS_KEY_ID not in str(caught.value)


def test_template_fields_are_the_templated_constructor_fields() -> None:
    names = {field.name for field in dataclasses.fields(RuntimeSpec)}

    assert RuntimeSpec.template_fields == (
        "image",
        "command",
        "args",
        "environment",
        "hyperparameters",
        "config",
        "inputs",
        "output_s3_uri",
    )
    assert set(RuntimeSpec.template_fields) <= names
    assert "template_fields" not in names


# ------------------------------------------------------------------------------------------- immutability


def test_spec_is_frozen_and_copies_its_inputs() -> None:
    environment = {"LOG_LEVEL": "info"}
    command = ["python", "train.py"]
    config: dict[str, Any] = {"model": {"layers": [1, 2]}}
    spec = make_spec(environment=environment, command=command, config=config)
    environment["LOG_LEVEL"] = "debug"
    command.append("--oops")
    config["model"]["layers"].append(3)

    assert spec.environment == {"LOG_LEVEL": "info"}
    assert spec.command == ("python", "train.py")
    assert spec.config == {"model": {"layers": (1, 2)}}
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.image = "other:v1"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.environment["LOG_LEVEL"] = "debug"  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.config["model"]["depth"] = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.resources.instance_count = 3  # type: ignore[misc]


def test_equal_specs_are_equal_and_hash_alike() -> None:
    first, second = typical_spec(), typical_spec()

    assert first == second
    assert hash(first) == hash(second)
    assert len({first, second, make_spec()}) == 2
    assert hash(FrozenMapping({"a": 1, "b": 2})) == hash(FrozenMapping({"b": 2, "a": 1}))


# -------------------------------------------------------------------------------- limits match botocore


@pytest.mark.parametrize(
    ("constant", "shape", "bound"),
    [
        ("MAX_ENVIRONMENT_ENTRIES", "TrainingEnvironmentMap", "max"),
        ("MAX_ENVIRONMENT_KEY_LENGTH", "TrainingEnvironmentKey", "max"),
        ("MAX_ENVIRONMENT_VALUE_LENGTH", "TrainingEnvironmentValue", "max"),
        ("MAX_HYPERPARAMETERS", "HyperParameters", "max"),
        ("MAX_HYPERPARAMETER_KEY_LENGTH", "HyperParameterKey", "max"),
        ("MAX_HYPERPARAMETER_VALUE_LENGTH", "HyperParameterValue", "max"),
        ("MAX_TAGS", "TagList", "max"),
        ("MAX_TAG_KEY_LENGTH", "TagKey", "max"),
        ("MAX_TAG_VALUE_LENGTH", "TagValue", "max"),
        ("MAX_IMAGE_LENGTH", "AlgorithmImage", "max"),
        ("MAX_CONTAINER_ARGUMENTS", "TrainingContainerEntrypoint", "max"),
        ("MAX_CONTAINER_ARGUMENTS", "TrainingContainerArguments", "max"),
        ("MAX_CONTAINER_ARGUMENT_LENGTH", "TrainingContainerEntrypointString", "max"),
        ("MAX_CONTAINER_ARGUMENT_LENGTH", "TrainingContainerArgument", "max"),
        ("MAX_INPUT_CHANNELS", "InputDataConfig", "max"),
        ("MAX_CHANNEL_NAME_LENGTH", "ChannelName", "max"),
        ("MAX_S3_URI_LENGTH", "S3Uri", "max"),
        ("MIN_ROLE_ARN_LENGTH", "RoleArn", "min"),
        ("MAX_ROLE_ARN_LENGTH", "RoleArn", "max"),
        ("MAX_KEEP_ALIVE_SECONDS", "KeepAlivePeriodInSeconds", "max"),
        ("MIN_RUNTIME_SECONDS", "MaxRuntimeInSeconds", "min"),
    ],
)
def test_hard_coded_limits_equal_the_service_model(
    shapes: dict[str, Any], constant: str, shape: str, bound: str
) -> None:
    assert getattr(limits, constant) == shapes[shape][bound]


@pytest.mark.parametrize(
    ("constant", "shape"),
    [
        ("ENVIRONMENT_KEY_PATTERN", "TrainingEnvironmentKey"),
        ("CHANNEL_NAME_PATTERN", "ChannelName"),
        ("ROLE_ARN_PATTERN", "RoleArn"),
    ],
)
def test_patterns_equal_the_service_model(shapes: dict[str, Any], constant: str, shape: str) -> None:
    assert getattr(limits, constant) == shapes[shape]["pattern"]


def test_other_bounds_agree_with_the_service_model(shapes: dict[str, Any]) -> None:
    assert shapes["KeepAlivePeriodInSeconds"]["min"] == 0
    # The model has no maximum run time; the limit we use is the one its documentation states.
    assert "max" not in shapes["MaxRuntimeInSeconds"]
    stopping_doc = Loader().load_service_model("sagemaker", "service-2")["shapes"]["StoppingCondition"]
    assert "The maximum value is 28 days" in stopping_doc["members"]["MaxRuntimeInSeconds"]["documentation"]
    assert limits.MAX_RUNTIME_SECONDS == 28 * 24 * 3600
    assert shapes["TrainingJobName"]["max"] == naming.MAX_JOB_NAME_LENGTH
    # Our volume and instance-count minimums are stricter than the model's, never looser.
    assert shapes["OptionalVolumeSizeInGB"]["min"] <= 1
    assert shapes["TrainingInstanceCount"]["min"] <= 1


def test_every_sagemaker_instance_type_is_accepted(shapes: dict[str, Any]) -> None:
    instance_types = shapes["TrainingInstanceType"]["enum"]

    assert len(instance_types) > 100
    for instance_type in instance_types:
        assert ResourceProfile(instance_type=instance_type).instance_type == instance_type


# --------------------------------------------------------------------------------------------- bad input


def assert_names_field_and_fix(error: InvalidSpecError, field: str) -> None:
    assert error.field == field
    message = str(error)
    assert message.startswith(f"{field}: ")
    assert error.fix and error.fix[0].isupper() and error.fix.endswith(".")
    assert error.fix in message


BAD_SPECS = [
    pytest.param({"image": ""}, "image", id="empty-image"),
    pytest.param({"image": "Fraud/Model:v1"}, "image", id="uppercase-repository"),
    pytest.param(
        {"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud"}, "image", id="no-tag-or-digest"
    ),
    pytest.param({"image": "fraud@sha256:abc123"}, "image", id="short-digest"),
    pytest.param({"image": "registry.example.com/" + "a" * 240 + ":v1"}, "image", id="image-too-long"),
    pytest.param({"image": "fraud: v1"}, "image", id="image-with-space"),
    pytest.param({"role_arn": "arn:aws:iam::1234:role/training"}, "role_arn", id="short-account-id"),
    pytest.param({"role_arn": "arn:aws:iam::123456789012:user/bob"}, "role_arn", id="user-not-role"),
    pytest.param({"role_arn": "sagemaker-training"}, "role_arn", id="role-name-not-arn"),
    pytest.param({"output_s3_uri": "https://ml-artifacts/fraud"}, "output_s3_uri", id="https-output"),
    pytest.param({"output_s3_uri": "s3://ML_Artifacts/fraud"}, "output_s3_uri", id="bad-bucket-name"),
    pytest.param({"spill_s3_uri": "gs://scratch"}, "spill_s3_uri", id="non-s3-spill"),
    pytest.param({"inputs": {"train": "/data/train"}}, "inputs['train']", id="local-input"),
    pytest.param({"inputs": {"train data": "s3://d/x"}}, "inputs['train data']", id="channel-with-space"),
    pytest.param({"inputs": {f"c{i}": "s3://dd/x" for i in range(21)}}, "inputs", id="too-many-channels"),
    pytest.param({"environment": {"1ST": "x"}}, "environment['1ST']", id="env-name-starts-with-digit"),
    pytest.param({"environment": {"MY-VAR": "x"}}, "environment['MY-VAR']", id="env-name-with-hyphen"),
    pytest.param(
        {"environment": {"LYFTLEARN_RUNTIME": "x"}}, "environment['LYFTLEARN_RUNTIME']", id="reserved"
    ),
    pytest.param({"environment": {"PORT": 8080}}, "environment['PORT']", id="env-value-not-string"),
    pytest.param({"environment": ["LOG_LEVEL=info"]}, "environment", id="env-not-mapping"),
    pytest.param(
        {"environment": {"AWS_ACCESS_KEY_ID": "x"}}, "environment['AWS_ACCESS_KEY_ID']", id="env-key-id"
    ),
    pytest.param(
        {"environment": {"aws_secret_access_key": "x"}},
        "environment['aws_secret_access_key']",
        id="env-secret",
    ),
    pytest.param(
        {"environment": {"AWS_SESSION_TOKEN": "x"}}, "environment['AWS_SESSION_TOKEN']", id="env-token"
    ),
    pytest.param(
        {"environment": {"CREDS": EXAMPLE_ACCESS_KEY_ID}}, "environment['CREDS']", id="env-akia-value"
    ),
    pytest.param(
        {"hyperparameters": {"AWS_SECRET_ACCESS_KEY": "x"}},
        "hyperparameters['AWS_SECRET_ACCESS_KEY']",
        id="hp-credential-name",
    ),
    pytest.param(
        {"hyperparameters": {"key": "ASIAIOSFODNN7EXAMPLE"}}, "hyperparameters['key']", id="hp-asia-value"
    ),
    pytest.param({"hyperparameters": {"layers": [64, 32]}}, "hyperparameters['layers']", id="hp-list-value"),
    pytest.param({"hyperparameters": {"dropout": None}}, "hyperparameters['dropout']", id="hp-none-value"),
    pytest.param({"hyperparameters": {"lr": float("nan")}}, "hyperparameters['lr']", id="hp-nan"),
    pytest.param({"hyperparameters": {7: "x"}}, "hyperparameters[7]", id="hp-int-key"),
    pytest.param(
        {"hyperparameters": {"k" * 257: "x"}}, f"hyperparameters[{'k' * 257!r}]", id="hp-key-too-long"
    ),
    pytest.param({"config": {"as_of": dt.date(2024, 1, 1)}}, "config['as_of']", id="config-date"),
    pytest.param({"config": {"weights": {1: 0.5}}}, "config['weights']", id="config-int-key"),
    pytest.param({"config": {"scale": float("inf")}}, "config['scale']", id="config-infinity"),
    pytest.param(
        {"config": {"aws": {"key": EXAMPLE_ACCESS_KEY_ID}}}, "config['aws']['key']", id="config-akia"
    ),
    pytest.param(
        {"secrets": {"DB_PASSWORD": "correct horse battery staple"}},
        "secrets['DB_PASSWORD']",
        id="secret-value-with-spaces",
    ),
    pytest.param(
        {"secrets": {"SIGNING_KEY": EXAMPLE_SECRET_ACCESS_KEY}},
        "secrets['SIGNING_KEY']",
        id="secret-key-shaped",
    ),
    pytest.param(
        {"secrets": {"API_KEY": "arn:aws:secretsmanager:us-east-1:123:secret:api"}},
        "secrets['API_KEY']",
        id="secret-arn-bad-account",
    ),
    pytest.param(
        {"environment": {"DB_PASSWORD": "x"}, "secrets": {"DB_PASSWORD": "prod/db"}},
        "secrets['DB_PASSWORD']",
        id="secret-collides-with-env",
    ),
    pytest.param(
        {"secrets": {"LYFTLEARN_TOKEN": "prod/token"}}, "secrets['LYFTLEARN_TOKEN']", id="secret-reserved"
    ),
    pytest.param({"metrics_port": 0}, "metrics_port", id="port-zero"),
    pytest.param({"metrics_port": 70000}, "metrics_port", id="port-too-high"),
    pytest.param({"metrics_port": "8125"}, "metrics_port", id="port-string"),
    pytest.param({"metrics_host": "statsd host"}, "metrics_host", id="host-with-space"),
    pytest.param({"command": "python train.py"}, "command", id="command-as-string"),
    pytest.param({"args": ["--epochs", 3]}, "args[1]", id="arg-not-string"),
    pytest.param({"args": ["x" * 257]}, "args[0]", id="arg-too-long"),
    pytest.param({"args": ["a"] * 101}, "args", id="too-many-args"),
    pytest.param({"resources": {"instance_type": "ml.m5.xlarge"}}, "resources", id="resources-dict"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_SPECS)
def test_bad_spec_is_rejected_naming_field_and_fix(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        make_spec(**overrides)
    assert_names_field_and_fix(caught.value, field)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"instance_type": "m5.xlarge"}, "resources.instance_type", id="no-ml-prefix"),
        pytest.param({"instance_type": "ml.m5"}, "resources.instance_type", id="no-size"),
        pytest.param({"instance_count": 0}, "resources.instance_count", id="zero-instances"),
        pytest.param({"instance_count": 1.5}, "resources.instance_count", id="fractional-instances"),
        pytest.param({"instance_count": True}, "resources.instance_count", id="bool-instances"),
        pytest.param({"volume_size_gb": 0}, "resources.volume_size_gb", id="zero-volume"),
    ],
)
def test_bad_resources_are_rejected_naming_field_and_fix(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        ResourceProfile(**overrides)
    assert_names_field_and_fix(caught.value, field)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        pytest.param({"job_name": "fraud_train"}, "job_name", id="job-name-underscore"),
        pytest.param({"job_name": "j" * 64}, "job_name", id="job-name-too-long"),
        pytest.param({"max_runtime_seconds": 0}, "max_runtime_seconds", id="no-runtime"),
        pytest.param({"max_runtime_seconds": 28 * 24 * 3600 + 1}, "max_runtime_seconds", id="over-28-days"),
        pytest.param({"keep_alive_seconds": 21601}, "keep_alive_seconds", id="keep-alive-too-long"),
        pytest.param({"keep_alive_seconds": -1}, "keep_alive_seconds", id="negative-keep-alive"),
        pytest.param({"tags": {f"t{i}": "v" for i in range(51)}}, "tags", id="too-many-tags"),
        pytest.param({"tags": {"aws:team": "ml"}}, "tags['aws:team']", id="reserved-tag-prefix"),
        pytest.param({"tags": {"k" * 129: "v"}}, f"tags[{'k' * 129!r}]", id="tag-key-too-long"),
        pytest.param({"tags": {"team": "v" * 257}}, "tags['team']", id="tag-value-too-long"),
        pytest.param({"tags": {"team": "<fraud>"}}, "tags['team']", id="tag-value-bad-characters"),
        pytest.param(
            {"run_environment": {"DAG_ID": "d"}}, "run_environment['DAG_ID']", id="run-env-unprefixed"
        ),
        pytest.param(
            {"run_environment": {"LYFTLEARN_JOB_NAME": "x"}},
            "run_environment['LYFTLEARN_JOB_NAME']",
            id="run-env-provider-key",
        ),
        pytest.param(
            {"run_environment": {"LYFTLEARN_RUN_ID": EXAMPLE_ACCESS_KEY_ID}},
            "run_environment['LYFTLEARN_RUN_ID']",
            id="run-env-credential",
        ),
    ],
)
def test_bad_render_arguments_are_rejected_naming_field_and_fix(kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        render(typical_spec(), **kwargs)
    assert_names_field_and_fix(caught.value, field)


def test_unknown_runtime_is_rejected() -> None:
    with pytest.raises(InvalidSpecError) as caught:
        container_environment(make_spec(), runtime="lambda", job_name=JOB)
    assert_names_field_and_fix(caught.value, "runtime")
    assert "kubernetes" in caught.value.fix


def test_spill_uri_too_long_for_the_pointer_is_rejected() -> None:
    spec = make_spec(environment={"BIG": "b" * 600}, spill_s3_uri="s3://ml-scratch/" + "p" * 480)

    with pytest.raises(InvalidSpecError) as caught:
        render(spec)
    assert_names_field_and_fix(caught.value, "spill_s3_uri")


@pytest.mark.parametrize(
    "overrides",
    [
        {"environment": {"CREDS": f"key={EXAMPLE_ACCESS_KEY_ID}"}},
        {"hyperparameters": {"creds": EXAMPLE_ACCESS_KEY_ID}},
        {"args": ["--key", EXAMPLE_ACCESS_KEY_ID]},
        {"secrets": {"KEY": EXAMPLE_SECRET_ACCESS_KEY}},
    ],
)
def test_credential_errors_never_echo_the_credential(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidSpecError) as caught:
        make_spec(**overrides)
    assert EXAMPLE_ACCESS_KEY_ID not in str(caught.value)
    assert EXAMPLE_SECRET_ACCESS_KEY not in str(caught.value)
    assert "role" in caught.value.fix or "reference" in caught.value.fix


@pytest.mark.parametrize(
    "image",
    [
        IMAGE,
        DIGEST_IMAGE,
        "fraud@sha256:" + "1" * 64,
        "localhost:5000/team/fraud:v1@sha256:" + "2" * 64,
        "ghcr.io/lyft/fraud_model:2024.01.01-rc1@sha256:" + "3" * 64,
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud:v42@sha256:" + "0" * 64,
    ],
)
def test_valid_image_references_are_accepted(image: str) -> None:
    assert render(make_spec(image=image)).request["AlgorithmSpecification"]["TrainingImage"] == image


@pytest.mark.parametrize(
    "reference",
    [
        "prod/fraud/db-password",
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/fraud/db-password-AbCdEf",
    ],
)
def test_secret_references_are_accepted(reference: str) -> None:
    spec = make_spec(secrets={"DB_PASSWORD": reference})

    assert json.loads(render(spec).request["Environment"]["LYFTLEARN_SECRETS"]) == {"DB_PASSWORD": reference}


def test_the_spec_is_shown_as_json_with_the_fields_its_backend_uses():
    spec = RuntimeSpec(
        image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:1",
        role_arn="arn:aws:iam::123456789012:role/lyftlearn-training",
        output_s3_uri="s3://lyftlearn-models/fraud",
        hyperparameters={"depth": 6},
        secrets={"DB_PASSWORD": "prod/fraud/db"},
    )
    sagemaker = spec.for_backend("sagemaker")
    assert sagemaker == spec  # only what is shown differs
    shown = json.loads(json.dumps(sagemaker.serialize()))
    assert shown["resources"]["instance_type"] == "ml.m5.xlarge"
    assert shown["secrets"] == {"DB_PASSWORD": "prod/fraud/db"}  # a reference, never a value
    assert "pod_security" not in shown and "pod_resources" not in shown
    pods = spec.for_backend("kubernetes").serialize()
    assert "resources" not in pods
    assert pods["pod_security"] == "restricted"
    assert pods["pod_resources"]["instance_type"] == "ml.m5.xlarge"
    assert pods["pod_resources"]["cpu"].endswith("m")  # derived from the instance type
    assert {"resources", "pod_resources", "pod_security"} <= set(spec.serialize())
