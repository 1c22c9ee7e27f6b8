"""docker-compose.yaml, checked without Docker: the services, their order, health, pins and settings."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from lyftlearn_provider.testing.standalone import airflow_env

REPO = Path(__file__).resolve().parents[1]
AIRFLOW = ("airflow-apiserver", "airflow-scheduler", "airflow-dag-processor", "airflow-triggerer")
#: Settings of the demo that name this machine's paths and ports, which the containers have their own of.
PER_HOST = {
    "AIRFLOW_HOME",
    "AIRFLOW__CORE__DAGS_FOLDER",
    "AIRFLOW__API__PORT",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yaml").read_text())


def test_every_component_is_a_service_that_waits_for_what_it_needs(compose):
    services = compose["services"]
    assert {"postgres", "aws", "k3s", "airflow-init", *AIRFLOW} <= set(services)
    commands = {name: services[name]["command"] for name in AIRFLOW}
    assert commands == {
        "airflow-apiserver": "api-server",
        "airflow-scheduler": "scheduler",
        "airflow-dag-processor": "dag-processor",
        "airflow-triggerer": "triggerer",
    }
    assert services["aws"]["command"][:3] == ["python", "-m", "lyftlearn_provider.testing.aws"]
    for name in AIRFLOW:
        needs = services[name]["depends_on"]
        assert needs["postgres"]["condition"] == "service_healthy", name
        assert needs["aws"]["condition"] == "service_healthy", name
        assert needs["airflow-init"]["condition"] == "service_completed_successfully", name
    init = services["airflow-init"]
    assert "airflow db migrate" in init["command"][0]
    assert "lyftlearn_provider.testing.examples" in init["command"][0]  # the examples' images, Deployments
    assert init["depends_on"]["kubeconfig"]["condition"] == "service_completed_successfully"
    assert services["kubeconfig"]["depends_on"]["k3s"]["condition"] == "service_healthy"
    # Every depends_on names a service that exists.
    for name, service in services.items():
        assert set(service.get("depends_on") or {}) <= set(services), name


def test_long_running_services_have_healthchecks_and_every_image_is_pinned(compose):
    for name, service in compose["services"].items():
        if name not in ("airflow-init", "kubeconfig"):
            check = service.get("healthcheck")
            assert check and check["test"][0] == "CMD", name
        image = service.get("image")
        assert image, name
        assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: {image} is not pinned to a tag"
        assert not image.endswith((":latest", ":stable")), name
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    (base,) = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert re.fullmatch(r"apache/airflow:3\.3\.\d+-python3\.\d+", base), base
    assert "apache-airflow==3.3." in dockerfile  # installing the provider never moves Airflow


def test_the_provider_comes_from_the_working_tree_and_the_examples_are_mounted(compose):
    common = compose["x-airflow-common"]
    assert common["build"] == {"context": ".", "dockerfile": "docker/Dockerfile"}
    assert "./example_dags:/opt/airflow/dags:ro" in common["volumes"]
    assert common["environment"]["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/dags"
    dockerfile = (REPO / "docker" / "Dockerfile").read_text()
    assert "COPY --chown=airflow:root lyftlearn_provider /opt/lyftlearn/lyftlearn_provider" in dockerfile
    assert '"/opt/lyftlearn[testing]"' in dockerfile
    named = set(compose["volumes"])
    for service in compose["services"].values():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            assert source.startswith(".") or source in named, volume
            if source.startswith("."):
                assert (REPO / source).exists(), volume


def test_airflow_runs_with_the_settings_of_the_demo_and_reaches_both_emulated_platforms(compose, tmp_path):
    environment = compose["x-airflow-common"]["environment"]
    demo = airflow_env(tmp_path, tmp_path)
    for key, value in demo.items():
        if key.startswith("AIRFLOW__") and key not in PER_HOST:
            assert environment.get(key) == value, f"{key}: the demo uses {value!r}"
    assert environment["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
    assert (
        environment["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    )
    assert json.loads(environment["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"] == "http://aws:5000"
    assert environment["AWS_ENDPOINT_URL"] == "http://aws:5000"
    kubernetes = json.loads(environment["AIRFLOW_CONN_KUBERNETES_DEFAULT"])
    assert kubernetes["extra"]["kube_config_path"] == environment["KUBECONFIG"] == "/kube/airflow.yaml"
    assert "--tls-san" in compose["services"]["k3s"]["command"]
    script = (REPO / "docker" / "kubeconfig.sh").read_text()
    assert "https://k3s:6443" in script and "/kube/airflow.yaml" in script
