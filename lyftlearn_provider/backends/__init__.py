"""Backends: one platform's side of a job task's lifecycle (see ``backends.base``).

The argument sets live here, light, so an operator can refuse arguments of the other backend when a
DAG is parsed without importing any backend module.
"""

from __future__ import annotations

#: Operator arguments only the SageMaker backend reads.
SAGEMAKER_ARGUMENTS = frozenset(
    {"tags", "keep_alive_seconds", "tracking", "events_queue_url", "network_config"}
)
#: Operator arguments only the Kubernetes (pod) backend reads.
KUBERNETES_ARGUMENTS = frozenset(
    {
        "kubernetes_conn_id",
        "namespace",
        "service_account_name",
        "startup_timeout_seconds",
        "input_loader_image",
    }
)
