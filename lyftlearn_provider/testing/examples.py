"""Seed what the example DAGs need into an AWS endpoint and a Kubernetes cluster (the emulators, or k3s).

The example DAGs (``example_dags/``) name images, buckets, namespaces and Deployments that a fresh
emulator does not have. :func:`prepare` creates them, idempotently, over the ordinary APIs (boto3 and
the official Kubernetes client), so the same call works against the local emulators
(``python -m lyftlearn_provider.testing.aws`` and ``.k8s``) and against a real test cluster such as the
k3s of ``docker-compose.yaml``::

    from lyftlearn_provider.testing.examples import prepare

    prepare(aws_env=aws.env(), kubeconfig=kubeconfig_path)

Run as a script (``python -m lyftlearn_provider.testing.examples``) it reads the AWS endpoint from
``AWS_ENDPOINT_URL`` and the cluster from ``KUBECONFIG``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"
REGISTRY = f"{ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com"
#: The IAM role the fraud model's training, validation and serving run as (its service account's role).
FRAUD_ROLE = f"arn:aws:iam::{ACCOUNT}:role/lyftlearn-fraud"
#: The role of the other examples' jobs and pods.
TRAINING_ROLE = f"arn:aws:iam::{ACCOUNT}:role/lyftlearn-training"
#: ECR repository -> tags the examples run (each pushed with a SOCI v2 index).
IMAGES = {
    "fraud-model": ("2026.11.28",),
    "churn-model": ("5",),
    "eta-model": ("3",),
    "supply-model": ("7",),
    "pricing-model": ("7",),
}
BUCKETS = ("lyftlearn-models", "lyftlearn-features")
#: namespace -> (service account, its IAM role, the Deployments serving from it: name -> image repository).
SERVING = {
    "ml-serving": (
        "fraud-serving",
        FRAUD_ROLE,
        {name: name for name in ("fraud-model", "churn-model", "eta-model", "supply-model", "pricing-model")},
    ),
    "default": ("lyftlearn-training", TRAINING_ROLE, {}),
}
#: The serving container's name in every example Deployment.
CONTAINER = "server"
#: The image every example Deployment starts with, before a model was deployed.
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64


def prepare(
    aws_env: Mapping[str, str] | None = None,
    kubeconfig: str | Path | None = None,
    *,
    region: str = "us-east-1",
    serving_replicas: int = 1,
) -> dict[str, Any]:
    """Create what the example DAGs use, if missing; return what exists (image digests, Deployments).

    :param aws_env: the environment that points boto3 at the AWS endpoint (``AwsEmulator.env()``:
        ``AWS_ENDPOINT_URL``, credentials, region); None: this process's environment.
    :param kubeconfig: the cluster's kubeconfig (``EmulatorServer.write_kubeconfig(...)``, k3s's);
        None: skip the cluster.
    :param region: the AWS region of the images and buckets.
    :param serving_replicas: replicas of each serving Deployment.

    In the cluster: namespaces ``ml-serving`` (service account ``fraud-serving``; the Deployments of
    ``SERVING``, each with container ``server``) and ``default`` (service account
    ``lyftlearn-training``, for pods that train), the accounts annotated with their IAM role (IRSA).
    In AWS: the images of ``IMAGES`` with SOCI v2 indexes and the buckets of ``BUCKETS`` with one day of
    features. Safe to call again: what exists is kept.
    """
    digests = _prepare_aws(dict(aws_env) if aws_env is not None else dict(os.environ), region)
    deployments = _prepare_cluster(Path(kubeconfig), serving_replicas) if kubeconfig else []
    return {"images": digests, "deployments": deployments}


def report_from_validation_pods(cluster: Any, report: Mapping[str, Any] | None = None) -> None:
    """Make the emulated cluster's validation pods (tasks ``…validate``) log a line and return ``report``.

    For an in-process Kubernetes emulator (``EmulatedCluster``, e.g. the ``lyftlearn_k8s`` fixture): the
    examples' validation pods then hand back a JSON report through the XCom sidecar, as a real
    validation program would (by default a smoke AUC).
    """
    from lyftlearn_provider.testing.k8s import PodBehavior

    cluster.on_pod(
        PodBehavior(xcom=dict(report or {"smoke_auc": 0.9}), logs=["model loaded", "ok"]),
        predicate=lambda pod: "validate" in (pod["metadata"].get("labels") or {}).get("task_id", ""),
    )


def _prepare_aws(env: dict[str, str], region: str) -> dict[str, str]:
    import boto3

    from lyftlearn_provider.testing.aws.images import push_image

    session = boto3.session.Session(
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        region_name=env.get("AWS_DEFAULT_REGION", region),
    )
    endpoint = env.get("AWS_ENDPOINT_URL")
    ecr = session.client("ecr", endpoint_url=endpoint)
    s3 = session.client("s3", endpoint_url=endpoint)
    digests = {}
    for repository, tags in IMAGES.items():
        for tag in tags:
            digests[f"{repository}:{tag}"] = push_image(ecr, repository, tag, soci="v2")
    for bucket in BUCKETS:
        try:
            s3.create_bucket(Bucket=bucket)
        except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            pass
    s3.put_object(
        Bucket="lyftlearn-features", Key="fraud/2026-11-28/part-0.csv", Body=b"amount,is_fraud\n1,0\n"
    )
    return digests


def _prepare_cluster(kubeconfig: Path, replicas: int) -> list[str]:
    from kubernetes import client, config

    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    core, apps = client.CoreV1Api(api_client), client.AppsV1Api(api_client)
    created = []
    for namespace, (account, role, deployments) in SERVING.items():
        _ensure(
            core.create_namespace, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}}
        )
        account_body = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": account, "annotations": {"eks.amazonaws.com/role-arn": role}},
        }
        _ensure(core.create_namespaced_service_account, namespace, account_body)
        for name, repository in deployments.items():
            body = serving_deployment(name, repository, account, replicas)
            _ensure(apps.create_namespaced_deployment, namespace, body)
            created.append(f"{namespace}/{name}")
    return created


def serving_deployment(name: str, repository: str, account: str, replicas: int = 1) -> dict[str, Any]:
    """Return an example serving Deployment: container ``server`` on a placeholder image of ``repository``."""
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": labels},
        "spec": {
            "replicas": replicas,
            "progressDeadlineSeconds": 60,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "serviceAccountName": account,
                    "containers": [
                        {
                            "name": CONTAINER,
                            "image": f"{REGISTRY}/{repository}@{PLACEHOLDER_DIGEST}",
                            "ports": [{"containerPort": 8080}],
                        }
                    ],
                },
            },
        },
    }


def _ensure(create: Any, *args: Any) -> None:
    """Call ``create(*args)``; an object that already exists (409) is what we wanted."""
    from kubernetes.client.exceptions import ApiException

    try:
        create(*args)
    except ApiException as error:
        if error.status != 409:
            raise


def main(argv: list[str] | None = None) -> int:
    """Seed the endpoint of ``AWS_ENDPOINT_URL`` and the cluster of ``KUBECONFIG``; print what exists."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    args = parser.parse_args(argv)
    print(prepare(kubeconfig=args.kubeconfig, region=args.region))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
