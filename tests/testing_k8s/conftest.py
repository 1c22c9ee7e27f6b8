from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes import config as kube_config

from lyftlearn_provider.testing.k8s.cluster import EmulatedCluster


@pytest.fixture
def api_client(k8s: EmulatedCluster) -> Iterator[client.ApiClient]:
    """An official-client ApiClient configured from the fixture's kubeconfig (no global state)."""
    api = kube_config.new_client_from_config(config_file=str(k8s.kubeconfig))
    yield api
    api.close()


@pytest.fixture
def core(api_client: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def apps(api_client: client.ApiClient) -> client.AppsV1Api:
    return client.AppsV1Api(api_client)
