"""P2: the parse cost of DAG files using our operators vs the upstream providers' equivalents.

Two comparisons: a training DAG (``TrainModelOperator`` vs the amazon provider's
``SageMakerTrainingOperator``, target <= 0.5x), and the whole loop — train, validate in a pod, deploy to
a Deployment — (``TrainModelOperator`` + ``ValidateModelOperator`` + ``DeployModelOperator`` vs
``SageMakerTrainingOperator`` + cncf ``KubernetesPodOperator`` + ``KubernetesCreateResourceOperator``,
target <= 0.25x). Each sample is a fresh interpreter that imports ``airflow.sdk`` first (every DAG file
pays that) and then times loading one DAG file; runs alternate between the files so machine noise hits
all of them. Prints the medians and the ratios.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

OURS = """
import datetime as dt
from airflow.sdk import DAG
from lyftlearn_provider import ResourceProfile, RuntimeSpec, TrainModelOperator

with DAG("bench_ours", schedule=dt.timedelta(minutes=15), start_date=dt.datetime(2026, 1, 1)):
    TrainModelOperator(
        task_id="train",
        spec=RuntimeSpec(
            image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:1",
            role_arn="arn:aws:iam::123456789012:role/training",
            output_s3_uri="s3://models/fraud",
            hyperparameters={"learning_rate": 0.05},
            resources=ResourceProfile(instance_type="ml.m5.xlarge"),
        ),
        deferrable=True,
    )
"""

UPSTREAM = """
import datetime as dt
from airflow.sdk import DAG
from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator

with DAG("bench_upstream", schedule=dt.timedelta(minutes=15), start_date=dt.datetime(2026, 1, 1)):
    SageMakerTrainingOperator(
        task_id="train",
        config={
            "TrainingJobName": "fraud",
            "RoleArn": "arn:aws:iam::123456789012:role/training",
            "AlgorithmSpecification": {
                "TrainingImage": "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:1",
                "TrainingInputMode": "File",
            },
            "HyperParameters": {"learning_rate": "0.05"},
            "OutputDataConfig": {"S3OutputPath": "s3://models/fraud"},
            "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
        deferrable=True,
    )
"""

SPEC = """
SPEC = RuntimeSpec(
    image="123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:1",
    role_arn="arn:aws:iam::123456789012:role/training",
    output_s3_uri="s3://models/fraud",
    hyperparameters={"learning_rate": 0.05},
    resources=ResourceProfile(instance_type="ml.m5.xlarge"),
)
"""

OURS_LOOP = (
    """
import dataclasses
import datetime as dt
from airflow.sdk import DAG
from lyftlearn_provider import (
    DeployModelOperator, ModelGate, ResourceProfile, RuntimeSpec, TrainModelOperator, ValidateModelOperator,
)
"""
    + SPEC
    + """
with DAG("bench_ours_loop", schedule=dt.timedelta(minutes=15), start_date=dt.datetime(2026, 1, 1)):
    train = TrainModelOperator(task_id="train", spec=SPEC, deferrable=True)
    validate = ValidateModelOperator(
        task_id="validate",
        spec=dataclasses.replace(SPEC, command=("python", "-m", "fraud.validate")),
        training_result=train.output,
        namespace="ml-serving",
        deferrable=True,
    )
    deploy = DeployModelOperator(
        task_id="deploy",
        spec=SPEC,
        training_result=train.output,
        namespace="ml-serving",
        deployment="fraud-model",
        container="server",
        gate=ModelGate(at_least={"validation:auc": 0.85}),
        deferrable=True,
    )
    train >> validate >> deploy
"""
)

UPSTREAM_LOOP = """
import datetime as dt
from airflow.sdk import DAG
from airflow.providers.amazon.aws.operators.sagemaker import SageMakerTrainingOperator
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.operators.resource import KubernetesCreateResourceOperator

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/fraud-model:1"
with DAG("bench_upstream_loop", schedule=dt.timedelta(minutes=15), start_date=dt.datetime(2026, 1, 1)):
    train = SageMakerTrainingOperator(
        task_id="train",
        config={
            "TrainingJobName": "fraud",
            "RoleArn": "arn:aws:iam::123456789012:role/training",
            "AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "HyperParameters": {"learning_rate": "0.05"},
            "OutputDataConfig": {"S3OutputPath": "s3://models/fraud"},
            "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        },
        deferrable=True,
    )
    validate = KubernetesPodOperator(
        task_id="validate",
        namespace="ml-serving",
        image=IMAGE,
        cmds=["python", "-m", "fraud.validate"],
        env_vars={"MODEL_URI": "{{ ti.xcom_pull('train')['Training']['ModelArtifacts'] }}"},
        do_xcom_push=True,
        deferrable=True,
    )
    deploy = KubernetesCreateResourceOperator(
        task_id="deploy",
        namespace="ml-serving",
        yaml_conf=\"\"\"
apiVersion: apps/v1
kind: Deployment
metadata: {name: fraud-model}
spec:
  selector: {matchLabels: {app: fraud}}
  template:
    metadata: {labels: {app: fraud}}
    spec: {containers: [{name: server, image: IMAGE}]}
\"\"\",
    )
    train >> validate >> deploy
"""

PROBE = textwrap.dedent(
    """
    import runpy, sys, time
    import airflow.sdk
    start = time.perf_counter()
    runpy.run_path(sys.argv[1])
    print(time.perf_counter() - start)
    """
)


def sample(dag_file: Path) -> float:
    """Return the seconds one fresh interpreter spends loading the DAG file after ``airflow.sdk``."""
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(dag_file)], check=True, capture_output=True, text=True
    ).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=11, help="samples per DAG file (median is reported)")
    args = parser.parse_args()
    sources = {"ours": OURS, "upstream": UPSTREAM, "ours_loop": OURS_LOOP, "upstream_loop": UPSTREAM_LOOP}
    with tempfile.TemporaryDirectory() as folder:
        files = {name: Path(folder, f"{name}.py") for name in sources}
        for name, path in files.items():
            path.write_text(sources[name])
        samples: dict[str, list[float]] = {name: [] for name in files}
        for path in files.values():
            sample(path)  # warm the OS file cache for every file before measuring
        for _ in range(args.runs):
            for name, path in files.items():
                samples[name].append(sample(path))
    median = {name: statistics.median(values) for name, values in samples.items()}
    print(f"P2 parse cost above `import airflow.sdk` (median of {args.runs} fresh interpreters)")
    print(f"  TrainModelOperator DAG                 {median['ours'] * 1000:8.1f} ms")
    print(f"  SageMakerTrainingOperator DAG          {median['upstream'] * 1000:8.1f} ms")
    training = median["ours"] / median["upstream"]
    print(f"  ratio ours/upstream                    {training:8.2f}x  (target <= 0.50x)")
    print(f"  train + validate + deploy DAG          {median['ours_loop'] * 1000:8.1f} ms")
    print(f"  SageMaker + KPO + CreateResource DAG   {median['upstream_loop'] * 1000:8.1f} ms")
    ratio = median["ours_loop"] / median["upstream_loop"]
    print(f"  ratio ours/upstream (the loop)         {ratio:8.2f}x  (target <= 0.25x)")


if __name__ == "__main__":
    main()
