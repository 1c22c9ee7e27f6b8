"""P2: the parse cost of a DAG file using our training operator vs the amazon provider's.

Each sample is a fresh interpreter that imports ``airflow.sdk`` first (every DAG file pays that) and
then times loading one DAG file. Runs alternate between the two files so machine noise hits both.
Prints the medians and the ratio ours / upstream (target: <= 0.5).
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
    with tempfile.TemporaryDirectory() as folder:
        files = {"ours": Path(folder, "ours.py"), "upstream": Path(folder, "upstream.py")}
        files["ours"].write_text(OURS)
        files["upstream"].write_text(UPSTREAM)
        samples: dict[str, list[float]] = {"ours": [], "upstream": []}
        sample(files["ours"])  # warm the OS file cache for both before measuring
        sample(files["upstream"])
        for _ in range(args.runs):
            for name, path in files.items():
                samples[name].append(sample(path))
    ours, upstream = (statistics.median(samples[name]) for name in ("ours", "upstream"))
    print(f"P2 parse cost above `import airflow.sdk` (median of {args.runs} fresh interpreters)")
    print(f"  TrainModelOperator DAG         {ours * 1000:8.1f} ms")
    print(f"  SageMakerTrainingOperator DAG  {upstream * 1000:8.1f} ms")
    print(f"  ratio ours/upstream            {ours / upstream:8.2f}x  (target <= 0.50x)")


if __name__ == "__main__":
    main()
