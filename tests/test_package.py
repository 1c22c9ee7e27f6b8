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


def by_class_path(path: str) -> object:
    """Import ``module.Name`` the way Airflow imports a provider's extra links."""
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


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


#: What Airflow stored of the job tasks' links (name to ``xcom_key``) in DAGs serialized before the links
#: were made from the job kinds: the same must be stored now, and read back, or old DAGs lose their links.
SERIALIZED_LINKS = {
    "train": {
        "SageMaker Training Job": "_link_TrainingJobLink",
        "Training Job Logs": "_link_TrainingJobLogsLink",
        "Image in ECR": "_link_TrainingImageLink",
    },
    "batch": {
        "SageMaker Processing Job": "_link_ProcessingJobLink",
        "Processing Job Logs": "_link_ProcessingJobLogsLink",
        "Image in ECR": "_link_ProcessingImageLink",
    },
}


def test_job_links_serialize_as_before_and_serialized_dags_read_them_back():
    import datetime as dt

    from airflow.sdk import DAG
    from airflow.serialization.serialized_objects import DagSerialization

    from lyftlearn_provider import RunBatchJobOperator, TrainModelOperator
    from tests.helpers import make_spec

    with DAG("links", schedule=None, start_date=dt.datetime(2026, 1, 1)) as dag:
        TrainModelOperator(task_id="train", spec=make_spec())
        RunBatchJobOperator(
            task_id="batch", spec=make_spec(hyperparameters={}), outputs={"scores": "s3://ml-out/scores"}
        )
    serialized = DagSerialization.to_dict(dag)
    stored = {
        task["__var"]["task_id"]: task["__var"]["_operator_extra_links"]
        for task in serialized["dag"]["tasks"]
    }
    assert stored == SERIALIZED_LINKS
    # What the task pushes when it runs (each link under its xcom_key) is what a serialized DAG reads.
    for task in dag.tasks:
        pushed = {link.name: link.xcom_key for link in task.operator_extra_links}
        assert pushed == SERIALIZED_LINKS[task.task_id]
    read_back = DagSerialization.from_dict(serialized)
    for task_id, links in SERIALIZED_LINKS.items():
        task = read_back.get_task(task_id)
        assert {link.name: link.xcom_key for link in task.operator_extra_links} == links


def test_every_job_kinds_links_are_registered_and_importable_by_class_path():
    import pickle

    from lyftlearn_provider.job_kinds import JOB_KINDS
    from lyftlearn_provider.links.sagemaker import links_of, links_xcom_key

    registered = set(get_provider_info()["extra-links"])
    for kind in JOB_KINDS.values():
        for link in links_of(kind):
            path = f"{link.__module__}.{link.__qualname__}"
            assert path in registered
            assert by_class_path(path) is link
            assert link.key == links_xcom_key(kind)
            assert type(pickle.loads(pickle.dumps(link()))) is link
    assert links_xcom_key(JOB_KINDS["training"]) == "lyftlearn_training_job"
    assert links_xcom_key(JOB_KINDS["processing"]) == "lyftlearn_processing_job"


def test_a_new_job_kind_gets_its_links_from_its_description(monkeypatch):
    from lyftlearn_provider import job_kinds
    from lyftlearn_provider.links.sagemaker import links_of

    transform = job_kinds.JobKind(
        name="transform",
        noun="transform job",
        resource="TransformJob",
        arn_resource="transform-job",
        detail_type="SageMaker Transform Job State Change",
        console_path="transform-jobs",
        log_group="/aws/sagemaker/TransformJobs",
    )
    monkeypatch.setitem(job_kinds.JOB_KINDS, "transform", transform)
    job, logs, image = links_of(transform)
    assert (job.__name__, logs.__name__, image.__name__) == (
        "TransformJobLink",
        "TransformJobLogsLink",
        "TransformImageLink",
    )
    assert (job.name, logs.name, image.name) == (
        "SageMaker Transform Job",
        "Transform Job Logs",
        "Image in ECR",
    )
    assert {job.key, logs.key, image.key} == {"lyftlearn_transform_job"}
    fields = {"region_name": "us-west-2", "aws_domain": "aws.amazon.com", "job_name": "ll-x-0123456789"}
    assert job().format_link(**fields) == (
        "https://console.aws.amazon.com/sagemaker/home?region=us-west-2#/transform-jobs/ll-x-0123456789"
    )
    assert "TransformJobs$3FlogStreamNameFilter$3Dll-x-0123456789$252F" in logs().format_link(**fields)
    assert by_class_path("lyftlearn_provider.links.sagemaker.TransformJobLink") is job


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
