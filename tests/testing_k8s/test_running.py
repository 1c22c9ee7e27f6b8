"""Ways to run the emulator: the pytest fixtures, the background server, the standalone process, kubectl."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from k8s_test_helpers import deployment_manifest

from lyftlearn_provider.testing.k8s import EmulatorServer, PodBehavior, kubeconfig
from lyftlearn_provider.testing.k8s.cluster import EmulatedCluster


def test_fixture_points_clients_and_the_airflow_connection_at_the_emulator(k8s: EmulatedCluster) -> None:
    assert os.environ["KUBECONFIG"] == str(k8s.kubeconfig)
    written = json.loads(k8s.kubeconfig.read_text())
    assert written["clusters"][0]["cluster"]["server"] == k8s.url
    assert written["contexts"][0]["context"]["namespace"] == "default"
    connection = json.loads(os.environ["AIRFLOW_CONN_KUBERNETES_DEFAULT"])
    assert connection == {"conn_type": "kubernetes", "extra": {"namespace": "default"}}

    k8s.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "via-hook"}})
    hook = KubernetesHook(conn_id="kubernetes_default")
    assert hook.get_namespace() == "default"
    assert [c.metadata.name for c in hook.core_v1_client.list_namespaced_config_map("default").items] == [
        "via-hook"
    ]
    assert ("GET", "/api/v1/namespaces/default/configmaps") in k8s.requests()


def test_fixture_starts_every_test_with_a_clean_cluster(k8s: EmulatedCluster) -> None:
    assert k8s.objects("configmaps") == []
    assert k8s.requests() == []
    assert {ns["metadata"]["name"] for ns in k8s.objects("namespaces")} == {
        "default",
        "kube-system",
        "kube-public",
    }


def test_background_server_serves_http_and_writes_kubeconfigs(tmp_path: Path) -> None:
    with EmulatorServer() as server:
        assert server.url.startswith("http://127.0.0.1:") and server.port > 0
        with urllib.request.urlopen(f"{server.url}/version", timeout=5) as response:
            assert json.load(response)["gitVersion"] == "v1.32.0"
        path = server.write_kubeconfig(tmp_path / "nested" / "kubeconfig", namespace="serving")
        assert json.loads(path.read_text()) == kubeconfig(server.url, "serving")
        server.call(server.emulator.add_pod_behavior, PodBehavior(exit_code=1), name_prefix="x")
        with pytest.raises(RuntimeError):
            server.start()
    with pytest.raises(RuntimeError):
        server.call(lambda: None)


def test_standalone_process_runs_until_sigterm(tmp_path: Path) -> None:
    config_path = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lyftlearn_provider.testing.k8s",
            "--port",
            "0",
            "--kubeconfig",
            str(config_path),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(4)]
        assert lines[0].startswith("Kubernetes emulator listening on http://127.0.0.1:")
        assert lines[2].strip() == f"export KUBECONFIG={config_path.resolve()}"
        server = json.loads(config_path.read_text())["clusters"][0]["cluster"]["server"]
        with urllib.request.urlopen(f"{server}/api/v1/namespaces", timeout=5) as response:
            assert "default" in [ns["metadata"]["name"] for ns in json.load(response)["items"]]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_rollout_undo(k8s: EmulatedCluster, tmp_path: Path) -> None:
    manifest = tmp_path / "deployment.json"
    manifest.write_text(json.dumps(deployment_manifest("web", "nginx:1.27", replicas=2)))

    def kubectl(*args: str) -> str:
        done = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=30, check=True)
        return done.stdout

    # kubectl's typed create speaks protobuf, which the emulator does not; `create -f` sends JSON.
    assert "created" in kubectl("create", "--validate=false", "-f", str(manifest))
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    kubectl("set", "image", "deployment/web", "server=nginx:1.28")
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    assert "rolled back" in kubectl("rollout", "undo", "deployment/web")
    assert "successfully rolled out" in kubectl("rollout", "status", "deployment/web", "--timeout=20s")
    history = kubectl("rollout", "history", "deployment/web").split()
    assert history[-4:] == ["2", "<none>", "3", "<none>"]
    image = kubectl("get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}")
    assert image == "nginx:1.27"
