"""pytest fixtures for the Kubernetes emulator: ``lyftlearn_k8s_emulator`` and ``lyftlearn_k8s``.

Opt in with ``pytest_plugins = ["lyftlearn_provider.testing.pytest_plugin"]``. ``lyftlearn_k8s_emulator``
is one server per session; ``lyftlearn_k8s`` gives each test a clean cluster and points both the
Kubernetes clients (``KUBECONFIG``) and Airflow's ``kubernetes_default`` connection
(``AIRFLOW_CONN_KUBERNETES_DEFAULT``) at it, so a KubernetesPodOperator run through ``dag.test()``
talks to the emulator over HTTP::

    def test_validation_task(lyftlearn_k8s, lyftlearn_airflow_db):
        lyftlearn_k8s.on_pod(PodBehavior(xcom={"passed": True}), labels={"task_id": "validate"})
        run = my_dag.test()
        assert run.state == "success"
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from lyftlearn_provider.testing.k8s.cluster import EmulatedCluster
from lyftlearn_provider.testing.k8s.server import EmulatorServer, airflow_connection

NAMESPACE = "default"
CONNECTION_ENV = "AIRFLOW_CONN_KUBERNETES_DEFAULT"
#: Modules that read ``KUBECONFIG`` once, on import, into their default kubeconfig path.
CLIENT_CONFIG_MODULES = (
    "kubernetes.config",
    "kubernetes.config.kube_config",
    "kubernetes_asyncio.config",
    "kubernetes_asyncio.config.kube_config",
)


def point_clients_at(kubeconfig: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``kubeconfig`` the default of every Kubernetes client, in this process and in subprocesses."""
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    # The Python clients read KUBECONFIG when first imported, which is usually before this test ran.
    for name in CLIENT_CONFIG_MODULES:
        monkeypatch.setattr(importlib.import_module(name), "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))


@pytest.fixture(scope="session")
def lyftlearn_k8s_emulator() -> Iterator[EmulatorServer]:
    """Serve one Kubernetes emulator for the whole test session, on a free port of 127.0.0.1."""
    with EmulatorServer() as server:
        yield server


@pytest.fixture
def lyftlearn_k8s(
    lyftlearn_k8s_emulator: EmulatorServer,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[EmulatedCluster]:
    """Give the test a clean emulated cluster; point ``KUBECONFIG`` and ``kubernetes_default`` at it."""
    k8s_emulator = lyftlearn_k8s_emulator
    k8s_emulator.call(k8s_emulator.emulator.reset)
    path = k8s_emulator.write_kubeconfig(tmp_path_factory.mktemp("k8s") / "kubeconfig", NAMESPACE)
    point_clients_at(path, monkeypatch)
    # The connection names no kubeconfig: the hooks then load KUBECONFIG (see ``airflow_connection``).
    monkeypatch.setenv(CONNECTION_ENV, airflow_connection(NAMESPACE))
    # Without a kubeconfig in the connection the hooks try in-cluster config first: on a CI runner that
    # is itself a pod, that would reach the real cluster instead of the emulator.
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    yield EmulatedCluster(k8s_emulator, path, NAMESPACE)
    k8s_emulator.call(k8s_emulator.emulator.reset)
