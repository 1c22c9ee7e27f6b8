"""A Kubernetes API emulator for testing DAGs offline: no cluster, no Docker, real HTTP.

It serves the Kubernetes REST API on 127.0.0.1 so that everything you would point at a cluster --
the KubernetesPodOperator (sync and deferrable, with ``do_xcom_push``), the cncf-kubernetes hooks,
the ``kubernetes`` and ``kubernetes_asyncio`` clients, ``kubectl --validate=false`` -- talks to it
through an ordinary kubeconfig. A fake kubelet runs pods, and Deployment and ReplicaSet controllers
roll Deployments out with real revision history, so a DAG that validates a model in a pod and then
deploys it can be tested end to end on a laptop.

In pytest (opt in with ``pytest_plugins = ["lyftlearn_provider.testing.pytest_plugin"]``)::

    from lyftlearn_provider.testing.k8s import PodBehavior, RolloutBehavior


    def test_retrain_and_deploy(lyftlearn_k8s, lyftlearn_airflow_db):
        k8s = lyftlearn_k8s
        # Pods of task "validate" print two lines and hand back an XCom through the sidecar.
        k8s.on_pod(PodBehavior(logs=["loading", "ok"], xcom={"auc": 0.93}), labels={"task_id": "validate"})
        # The serving Deployment the DAG rolls out to, created as a cluster admin would.
        k8s.create({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "ranker"}, ...})
        run = dag.test()
        assert run.state == "success"
        ranker = k8s.get("deploy", "ranker")
        assert ranker["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"

``lyftlearn_k8s`` (one clean cluster per test) sets ``KUBECONFIG`` and
``AIRFLOW_CONN_KUBERNETES_DEFAULT``, so
operators using the ``kubernetes_default`` connection need no change. Its handle
(``EmulatedCluster``) registers behaviours and reads the cluster back:

- ``on_pod(PodBehavior(...), name_prefix=..., labels=...)``: how matching pods run -- timings, logs,
  exit code, XCom, or a failure (``"ErrImagePull"``, ``"Unschedulable"``, ``"Unready"``,
  ``"CrashLoopBackOff"``); unmatched pods run for a moment and exit 0.
- ``on_rollout("ranker", RolloutBehavior(failure="ErrImagePull"))``: the Deployment's next
  ReplicaSets never become available, so the rollout stalls (the old pods keep serving) and
  reports ``ProgressDeadlineExceeded`` after ``spec.progressDeadlineSeconds``.
- ``fail_images_containing("broken")``: any pod whose image contains the marker fails to pull it.
- ``inject_fault("throttle", count=3, method="GET", path="/deployments/ranker")``: the next matching
  requests get ``429`` (with ``Retry-After``), ``500``, ``503``, ``504``, ``403``, a connection reset,
  or a delay, as an overloaded or restarting API server gives them; ``faults()`` lists what is left.
- ``objects("pods")``, ``get("deploy", name)``, ``events(pod_name)``, ``pod_logs(pod_name)``,
  ``requests()``, ``wait_for(condition)``.

As on a real cluster, a pod is admitted only if its service account exists (every namespace has
``default``; create others with ``k8s.create``), and a service account annotated with
``eks.amazonaws.com/role-arn`` gives its pods the IAM-role environment EKS injects. Writes that
carry a stale ``metadata.resourceVersion`` get ``409 Conflict``. The ``kubernetes_default``
connection names no kubeconfig on purpose: combined with ``KUBECONFIG``, a ``kube_config_path``
extra makes the deferrable KubernetesPodOperator's trigger refuse its configuration.

Outside pytest, ``EmulatorServer`` runs the emulator in a background thread (``with EmulatorServer()
as server: server.write_kubeconfig(path)``), and ``python -m lyftlearn_provider.testing.k8s --port 0
--kubeconfig PATH`` runs it as a process until SIGTERM.

What it does not do: TLS, authentication, RBAC, server-side apply, protobuf, server-side tables,
OpenAPI documents, Jobs/StatefulSets/CRDs, ``minReadySeconds``, real containers (commands never
run; ``exec`` answers only the XCom sidecar and handlers you register). ``kubectl`` works with
``--validate=false`` for the commands that speak JSON (``create/apply -f``, ``get``, ``describe``,
``patch``, ``set image``, ``rollout status/history/undo``), not for typed ones such as
``kubectl create deployment``, which send protobuf.
"""

from __future__ import annotations

from lyftlearn_provider.testing.k8s.apiserver import KubernetesEmulator
from lyftlearn_provider.testing.k8s.behaviors import PodBehavior, PodFailure, RolloutBehavior
from lyftlearn_provider.testing.k8s.cluster import EmulatedCluster
from lyftlearn_provider.testing.k8s.errors import ApiError
from lyftlearn_provider.testing.k8s.kubelet import ExecRequest, ExecResult
from lyftlearn_provider.testing.k8s.server import (
    EmulatorServer,
    airflow_connection,
    kubeconfig,
    write_kubeconfig,
)

__all__ = [
    "ApiError",
    "EmulatedCluster",
    "EmulatorServer",
    "ExecRequest",
    "ExecResult",
    "KubernetesEmulator",
    "PodBehavior",
    "PodFailure",
    "RolloutBehavior",
    "airflow_connection",
    "kubeconfig",
    "write_kubeconfig",
]
