from __future__ import annotations

import os
import pathlib
import tempfile

import boto3
import pytest

from lyftlearn_provider.testing.aws.images import push_image

# The provider's test kit is opt-in, for this repository as for its users.
pytest_plugins = ["lyftlearn_provider.testing.pytest_plugin"]

# Airflow reads its configuration at import time: isolate it before any test module imports it.
REPO = pathlib.Path(__file__).resolve().parent.parent
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="lyftlearn-airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO)
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


# Short names for this repository's own tests (users get only the prefixed ones).
@pytest.fixture
def aws(lyftlearn_aws):
    return lyftlearn_aws


@pytest.fixture
def k8s(lyftlearn_k8s):
    return lyftlearn_k8s


@pytest.fixture(scope="session")
def airflow_db(lyftlearn_airflow_db: str) -> str:
    return lyftlearn_airflow_db


@pytest.fixture
def training_image(aws) -> str:
    """Push the SOCI-enabled images the test specs and the example DAG name into the emulator's ECR."""
    ecr = boto3.client("ecr")
    push_image(ecr, "fraud-model", "2026.11.28", soci="v2")
    return push_image(ecr, "fraud-model", "1", soci="v2")
