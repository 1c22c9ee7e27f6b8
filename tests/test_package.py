"""The provider as Airflow and DAG authors see it: registration, parse-time cost, links, example DAGs."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from lyftlearn_provider.get_provider_info import get_provider_info
from lyftlearn_provider.links.sagemaker import TrainingJobLink, TrainingJobLogsLink
from tests.helpers import heavy_modules_after

REPO = Path(__file__).resolve().parents[1]


def test_provider_info_points_at_importable_modules_and_links():
    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-lyftlearn"
    for section in ("operators", "hooks", "triggers"):
        for entry in info[section]:
            for module in entry["python-modules"]:
                importlib.import_module(module)
    for classpath in info["extra-links"]:
        module, _, name = classpath.rpartition(".")
        assert hasattr(importlib.import_module(module), name)


def test_provider_is_registered_with_airflow():
    from airflow.providers_manager import ProvidersManager

    assert "airflow-provider-lyftlearn" in ProvidersManager().providers


def test_dag_parsing_does_not_import_boto3_or_kubernetes():
    # botocore.exceptions alone comes with the amazon provider's link base class (a few ms);
    # clients, sessions and service models are what cost DAG parsing.
    code = "from lyftlearn_provider import RuntimeSpec, ResourceProfile, TrainModelOperator"
    assert heavy_modules_after(code) == []


def test_parsing_a_sagemaker_dag_loads_no_pod_code_and_no_execute_time_modules():
    # Parse time is paid on every DAG parse: backends, results and manifests are for execute time, and
    # a DAG of SageMaker tasks does not need the pod rendering at all (about 30 ms together, measured).
    probe = (
        "import sys, json\n"
        "from lyftlearn_provider import RuntimeSpec, ResourceProfile, TrainModelOperator\n"
        "spec = RuntimeSpec(image='123456789012.dkr.ecr.us-east-1.amazonaws.com/m:1',\n"
        "    role_arn='arn:aws:iam::123456789012:role/training', output_s3_uri='s3://models/m')\n"
        "TrainModelOperator(task_id='train', spec=spec)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.startswith('lyftlearn_provider'))))\n"
    )
    output = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True, text=True)
    loaded = set(json.loads(output.stdout.strip().splitlines()[-1]))
    execute_time = {
        "lyftlearn_provider.backends.kubernetes",
        "lyftlearn_provider.backends.sagemaker",
        "lyftlearn_provider.rendering.kubernetes",
        "lyftlearn_provider.results",
        "lyftlearn_provider.manifests",
        "lyftlearn_provider.hooks.sagemaker",
        "lyftlearn_provider.triggers.training",
    }
    assert loaded & execute_time == set()
    assert "lyftlearn_provider.operators.training" in loaded


def test_links_point_at_the_job_and_its_log_streams():
    fields = {"region_name": "us-west-2", "aws_domain": "aws.amazon.com", "job_name": "ll-x-0123456789"}
    assert TrainingJobLink().format_link(**fields) == (
        "https://console.aws.amazon.com/sagemaker/home?region=us-west-2#/jobs/ll-x-0123456789"
    )
    logs = TrainingJobLogsLink().format_link(**fields)
    assert logs.startswith("https://console.aws.amazon.com/cloudwatch/home?region=us-west-2#logsV2:")
    assert "TrainingJobs$3FlogStreamNameFilter$3Dll-x-0123456789$252F" in logs


@pytest.mark.parametrize("path", sorted((REPO / "example_dags").glob("*.py")), ids=lambda p: p.name)
def test_example_dags_import_without_errors(path):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path))
    assert bag.import_errors == {}
    assert bag.dags, f"{path.name} defines no DAG"
    for dag in bag.dags.values():
        # What a user reads first, in the DAG list and on the DAG's page.
        assert dag.description and len(dag.description) <= 120, dag.dag_id
        assert dag.doc_md and dag.doc_md.strip().startswith("###"), dag.dag_id
        assert "example" in dag.tags, dag.dag_id
