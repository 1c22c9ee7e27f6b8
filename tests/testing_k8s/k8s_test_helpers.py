"""Manifests and checks shared by the emulator tests."""

from __future__ import annotations

from typing import Any

from kubernetes import client


def pod_manifest(name: str, image: str = "busybox:1.36", restart_policy: str = "Never", **spec: Any) -> dict:
    return {
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"restartPolicy": restart_policy, "containers": [{"name": "main", "image": image}], **spec},
    }


def deployment_manifest(name: str, image: str, replicas: int = 2, **spec: Any) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "server", "image": image}]},
            },
            **spec,
        },
    }


def rollout_complete(
    apps: client.AppsV1Api, name: str, namespace: str = "default"
) -> client.V1Deployment | None:
    """Return the Deployment once its rollout is complete (the checks `kubectl rollout status` makes)."""
    d = apps.read_namespaced_deployment(name, namespace)
    status, replicas = d.status, d.spec.replicas
    progressing = next((c for c in status.conditions or [] if c.type == "Progressing"), None)
    done = (
        (status.observed_generation or 0) >= d.metadata.generation
        and (status.updated_replicas or 0) == replicas
        and (status.replicas or 0) == replicas
        and (status.available_replicas or 0) == replicas
        and progressing is not None
        and progressing.reason == "NewReplicaSetAvailable"
    )
    return d if done else None
