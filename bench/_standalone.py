"""What the whole-loop benches share: the loop's tasks, both emulators under ``airflow standalone``, the runs.

``bench/p4_overhead.py`` (P4) and ``bench/r2_standalone.py`` (R2) drive the same loop -- the fraud model
trained from ECR image ``fraud-model`` and put into Deployment ``default/fraud`` -- on ``airflow
standalone`` against the AWS and Kubernetes emulators. Their DAG files (``p4_dags/``, ``r2_dags/``)
build its tasks here (:func:`fraud_spec`, :func:`deploy_to_serving`; :func:`emulated_airflow` puts this
folder on the DAG processor's ``PYTHONPATH``); the drivers start the emulators and point Airflow at them
(:func:`emulated_airflow`), seed them (:func:`seed_loop`) and read runs back from the metadata database
(:func:`dag_runs`, :func:`task_instances`).

Standard library only at module level: DAG files import this module on every parse.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lyftlearn_provider import DeployModelOperator, RuntimeSpec
    from lyftlearn_provider.testing.standalone import Standalone

BENCH = Path(__file__).resolve().parent
REGISTRY = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
ROLE = "arn:aws:iam::123456789012:role/lyftlearn-training"
#: The ECR repository the loop trains from, and the Deployment it serves from.
REPOSITORY = "fraud-model"
BUCKET = "lyftlearn-models"
NAMESPACE, DEPLOYMENT, CONTAINER = "default", "fraud", "server"
SERVING_ACCOUNT = "fraud-serving"
SERVING_REPLICAS = 2


# ------------------------------------------------------------------------------ the DAG files' side
def fraud_spec(tag: str, **fields: Any) -> RuntimeSpec:
    """Return the fraud model's training spec on image ``fraud-model:<tag>``; ``fields`` override."""
    from lyftlearn_provider import ResourceProfile, RuntimeSpec

    values: dict[str, Any] = {
        "image": f"{REGISTRY}/{REPOSITORY}:{tag}",
        "role_arn": ROLE,
        "output_s3_uri": f"s3://{BUCKET}/fraud",
        "resources": ResourceProfile(instance_type="ml.m5.xlarge"),
        **fields,
    }
    return RuntimeSpec(**values)


def deploy_to_serving(spec: RuntimeSpec, training_result: Any, **kwargs: Any) -> DeployModelOperator:
    """Return the loop's deferrable ``deploy`` task: the trained model into ``default/fraud``."""
    from lyftlearn_provider import DeployModelOperator

    return DeployModelOperator(
        task_id="deploy",
        spec=spec,
        training_result=training_result,
        namespace=NAMESPACE,
        deployment=DEPLOYMENT,
        container=CONTAINER,
        deferrable=True,
        **kwargs,
    )


# --------------------------------------------------------------------------------- the drivers' side
def say(bench: str, message: str) -> None:
    """Print one line of a bench's progress, ``[bench] message``."""
    print(f"[{bench}] {message}", flush=True)


@dataclass
class Emulated:
    """Both emulators and the environment of the Airflow processes that use them."""

    home: Path
    aws: Any
    k8s: Any
    cluster: Any
    env: dict[str, str]

    def standalone(self) -> Standalone:
        """Return ``airflow standalone`` on this environment, logging to ``home/standalone.log``."""
        from lyftlearn_provider.testing.standalone import Standalone

        return Standalone(self.env, self.home / "standalone.log")


@contextmanager
def emulated_airflow(home: Path, dags: Path, extra: Mapping[str, str] | None = None) -> Iterator[Emulated]:
    """Start both emulators and point Airflow at them: its processes' environment, and this process's.

    This process's environment is replaced (Airflow reads its settings once, on import: call this
    before anything imports Airflow), so that it reads the same metadata database as the components.

    :param home: ``AIRFLOW_HOME`` (the database, logs, the kubeconfig).
    :param dags: the DAGs folder.
    :param extra: more environment (Airflow settings, the DAG files' knobs).
    """
    from lyftlearn_provider.testing.aws import AwsEmulator
    from lyftlearn_provider.testing.k8s.cluster import EmulatedCluster
    from lyftlearn_provider.testing.k8s.server import EmulatorServer, airflow_connection
    from lyftlearn_provider.testing.standalone import airflow_env

    with AwsEmulator() as aws, EmulatorServer() as k8s:
        kubeconfig = k8s.write_kubeconfig(home / "kubeconfig")
        path = os.pathsep.join(p for p in (str(BENCH), os.environ.get("PYTHONPATH", "")) if p)
        env = airflow_env(
            home,
            dags,
            {
                **aws.env(),
                "KUBECONFIG": str(kubeconfig),
                "AIRFLOW_CONN_KUBERNETES_DEFAULT": airflow_connection(NAMESPACE),
                "PYTHONPATH": path,  # the DAG files build their tasks with this module
                **(extra or {}),
            },
        )
        # Not a pod: the hooks must not try in-cluster configuration first.
        env.pop("KUBERNETES_SERVICE_HOST", None)
        os.environ.clear()
        os.environ.update(env)
        yield Emulated(home, aws, k8s, EmulatedCluster(k8s, kubeconfig, NAMESPACE), env)


def seed_loop(
    emulated: Emulated,
    *,
    tag: str,
    phases: Mapping[str, float],
    accounts: Sequence[str] = (SERVING_ACCOUNT,),
) -> None:
    """Seed the loop's jobs' phases, its image (SOCI v2) and bucket, IRSA accounts, the serving Deployment.

    :param tag: the image tag the loop's spec names (:func:`fraud_spec`).
    :param phases: seconds of each SageMaker phase of every job.
    :param accounts: service accounts to create with the loop's role (the serving one, the pods').
    """
    import boto3

    from lyftlearn_provider.testing.aws.images import push_image
    from lyftlearn_provider.testing.examples import serving_deployment

    emulated.aws.control.autopilot(phases=dict(phases), metrics={"validation:auc": 0.91})
    push_image(boto3.client("ecr"), REPOSITORY, tag, soci="v2")
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    for name in accounts:
        emulated.cluster.create(
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": name, "annotations": {"eks.amazonaws.com/role-arn": ROLE}},
            }
        )
    emulated.cluster.create(serving_deployment(DEPLOYMENT, REPOSITORY, SERVING_ACCOUNT, SERVING_REPLICAS))


def dag_runs(dag_id: str, run_id: str | None = None) -> list[dict[str, Any]]:
    """Return the DAG's runs (or the one ``run_id``): id, state, start, end, data interval's end."""
    from airflow.models import DagRun
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = select(DagRun).where(DagRun.dag_id == dag_id)
    if run_id is not None:
        query = query.where(DagRun.run_id == run_id)
    with create_session() as session:
        return [
            {
                "run_id": run.run_id,
                "state": str(run.state),
                "start_date": run.start_date,
                "end_date": run.end_date,
                "data_interval_end": run.data_interval_end,
            }
            for run in session.scalars(query)
        ]


def task_instances(
    dag_id: str, *, run_id: str | None = None, task_id: str | None = None
) -> list[dict[str, Any]]:
    """Return the DAG's task instances (of one run, of one task): ids, state, try number, start, end."""
    from airflow.models import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    query = select(TaskInstance).where(TaskInstance.dag_id == dag_id)
    if run_id is not None:
        query = query.where(TaskInstance.run_id == run_id)
    if task_id is not None:
        query = query.where(TaskInstance.task_id == task_id)
    with create_session() as session:
        return [
            {
                "run_id": ti.run_id,
                "task_id": ti.task_id,
                "state": str(ti.state),
                "try_number": ti.try_number,
                "start_date": ti.start_date,
                "end_date": ti.end_date,
            }
            for ti in session.scalars(query)
        ]
