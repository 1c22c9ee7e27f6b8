"""``kubernetes_asyncio`` (what Airflow's triggers use) against the emulator."""

from __future__ import annotations

import asyncio

from k8s_test_helpers import deployment_manifest
from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig
from kubernetes_asyncio import watch as awatch

from lyftlearn_provider.testing.k8s.cluster import EmulatedCluster


async def test_list_watch_and_read_a_deployment(k8s: EmulatedCluster) -> None:
    await aconfig.load_kube_config(config_file=str(k8s.kubeconfig))
    async with aclient.ApiClient() as api:
        apps = aclient.AppsV1Api(api)
        start = (await apps.list_namespaced_deployment("default")).metadata.resource_version
        k8s.create(deployment_manifest("async-web", "web:v1", replicas=2))

        seen: list[tuple[str, int | None]] = []
        stream = awatch.Watch().stream(
            apps.list_namespaced_deployment,
            "default",
            field_selector="metadata.name=async-web",
            resource_version=start,
            timeout_seconds=5,
        )
        async with asyncio.timeout(10):
            async for event in stream:
                deployment = event["object"]
                seen.append((event["type"], deployment.status.available_replicas))
                if deployment.status.available_replicas == 2:
                    break
        assert seen[0] == ("ADDED", None)
        assert seen[-1] == ("MODIFIED", 2)

        listed = await apps.list_namespaced_deployment("default", label_selector="app=async-web")
        assert [d.metadata.name for d in listed.items] == ["async-web"]
        read = await apps.read_namespaced_deployment("async-web", "default")
        assert read.metadata.annotations["deployment.kubernetes.io/revision"] == "1"
        assert read.status.observed_generation == read.metadata.generation == 1
