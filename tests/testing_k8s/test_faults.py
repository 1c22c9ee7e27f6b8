"""Faults the emulator injects at its HTTP boundary, as the official clients see them."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
import urllib3
from k8s_test_helpers import deployment_manifest
from kubernetes import client
from kubernetes.client.rest import ApiException
from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig

from lyftlearn_provider.testing.k8s.cluster import EmulatedCluster
from lyftlearn_provider.testing.k8s.faults import FaultInjector

NO_RETRIES = urllib3.Retry(total=0, connect=0, read=0, redirect=0, status=0)


@pytest.mark.parametrize(
    ("kind", "status", "reason"),
    [
        ("throttle", 429, "TooManyRequests"),
        ("server_error", 500, "InternalError"),
        ("unavailable", 503, "ServiceUnavailable"),
        ("gateway_timeout", 504, "Timeout"),
        ("forbidden", 403, "Forbidden"),
    ],
)
def test_error_faults_answer_matching_requests_then_are_used_up(
    k8s: EmulatedCluster, api_client: client.ApiClient, kind: str, status: int, reason: str
) -> None:
    # urllib3 would otherwise retry a 429 or 503 that carries Retry-After by itself.
    api_client.configuration.retries = NO_RETRIES
    api_client.rest_client = type(api_client.rest_client)(api_client.configuration)
    apps = client.AppsV1Api(api_client)
    k8s.create(deployment_manifest("web", "web:v1"))
    k8s.inject_fault(kind, count=2, method="GET", path="/deployments/web", retry_after=3)
    # Other requests are not affected.
    assert apps.list_namespaced_deployment("default").items[0].metadata.name == "web"
    for _ in range(2):
        with pytest.raises(ApiException) as raised:
            apps.read_namespaced_deployment("web", "default")
        assert raised.value.status == status
        assert json.loads(raised.value.body)["reason"] == reason
        if kind == "throttle":
            assert raised.value.headers["Retry-After"] == "3"
    assert k8s.faults() == []
    assert apps.read_namespaced_deployment("web", "default").metadata.name == "web"
    # Requests that met a fault are recorded like any other.
    reads = [path for method, path in k8s.requests() if method == "GET" and path.endswith("/deployments/web")]
    assert len(reads) == 3


def test_reset_closes_the_connection_without_serving_the_request(
    k8s: EmulatedCluster, api_client: client.ApiClient
) -> None:
    api_client.configuration.retries = NO_RETRIES
    api_client.rest_client = type(api_client.rest_client)(api_client.configuration)
    apps = client.AppsV1Api(api_client)
    k8s.inject_fault("reset", method="POST", path="/deployments")
    with pytest.raises(urllib3.exceptions.HTTPError):
        apps.create_namespaced_deployment("default", deployment_manifest("web", "web:v1"), _request_timeout=5)
    # The request was never served: nothing was created, and the next one goes through.
    assert k8s.get("deploy", "web") is None
    apps.create_namespaced_deployment("default", deployment_manifest("web", "web:v1"))
    assert k8s.get("deploy", "web") is not None


def test_reset_after_serving_loses_only_the_answer(
    k8s: EmulatedCluster, api_client: client.ApiClient
) -> None:
    api_client.configuration.retries = NO_RETRIES
    api_client.rest_client = type(api_client.rest_client)(api_client.configuration)
    apps = client.AppsV1Api(api_client)
    k8s.inject_fault("reset", method="POST", path="/deployments", after=True)
    with pytest.raises(urllib3.exceptions.HTTPError):
        apps.create_namespaced_deployment("default", deployment_manifest("web", "web:v1"), _request_timeout=5)
    # The write landed although the client never heard so: a resent create meets AlreadyExists.
    assert k8s.get("deploy", "web") is not None
    with pytest.raises(ApiException) as raised:
        apps.create_namespaced_deployment("default", deployment_manifest("web", "web:v1"))
    assert raised.value.status == 409


async def test_faults_reach_the_asyncio_client_and_delays_only_slow_down(k8s: EmulatedCluster) -> None:
    k8s.create(deployment_manifest("web", "web:v1"))
    await aconfig.load_kube_config(config_file=str(k8s.kubeconfig))
    async with aclient.ApiClient() as api:
        apps = aclient.AppsV1Api(api)
        # Twice: aiohttp resends an idempotent request once when its connection drops.
        await asyncio.to_thread(k8s.inject_fault, "reset", 2, method="GET", path="/deployments/web")
        with pytest.raises(aiohttp.ClientError):
            await apps.read_namespaced_deployment("web", "default")
        await asyncio.to_thread(k8s.inject_fault, "delay", seconds=0.3, path="/deployments/web")
        loop = asyncio.get_running_loop()
        started = loop.time()
        read = await apps.read_namespaced_deployment("web", "default")
        assert read.metadata.name == "web"
        assert loop.time() - started >= 0.3
        await asyncio.to_thread(k8s.inject_fault, "unavailable", path="/deployments/web")
        with pytest.raises(aclient.ApiException) as raised:
            await apps.read_namespaced_deployment("web", "default")
        assert raised.value.status == 503


def test_injector_rejects_what_it_cannot_do() -> None:
    faults = FaultInjector()
    with pytest.raises(ValueError, match="unknown fault kind"):
        faults.inject("explode")
    with pytest.raises(ValueError, match="at least 1"):
        faults.inject("throttle", count=0)
    with pytest.raises(ValueError, match="only applies to 'reset'"):
        faults.inject("throttle", after=True)
    faults.inject("throttle", method="get", path="/pods")
    assert faults.take("POST", "/api/v1/namespaces/default/pods") is None
    taken = faults.take("GET", "/api/v1/namespaces/default/pods?limit=1")
    assert taken is not None and taken.kind == "throttle"
    assert faults.pending() == []
