from __future__ import annotations

import os
import pathlib
import tempfile

import boto3
import pytest

from lyftlearn_provider.testing.aws.images import push_image

# Airflow reads its configuration at import time: isolate it before any test module imports it.
REPO = pathlib.Path(__file__).resolve().parent.parent
os.environ["AIRFLOW_HOME"] = tempfile.mkdtemp(prefix="lyftlearn-airflow-home-")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO)
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture
def training_image(aws) -> str:
    """Push the SOCI-enabled images the test specs and the example DAG name into the emulator's ECR."""
    ecr = boto3.client("ecr")
    push_image(ecr, "fraud-model", "2026.11.28", soci="v2")
    return push_image(ecr, "fraud-model", "1", soci="v2")
