"""The arguments of a task that runs a pod, checked and kept once for every operator that runs one.

``TrainModelOperator`` and ``RunBatchJobOperator`` with ``backend="kubernetes"`` (through
``PlatformJobOperator``) and ``ValidateModelOperator`` all take the cluster connection, the pod's
namespace and service account, how long it may take to start and the image that loads its inputs.
:class:`RunsPods` checks them with the same rules and messages and hands them to the pod backend.
Light: DAG files import it when parsed; the Kubernetes name rules are imported when a check runs.
"""

from __future__ import annotations

from typing import Any, ClassVar

from lyftlearn_provider.validation import require_int

DEFAULT_KUBERNETES_CONN_ID = "kubernetes_default"
DEFAULT_NAMESPACE = "default"
DEFAULT_SERVICE_ACCOUNT_NAME = "lyftlearn-training"
DEFAULT_STARTUP_TIMEOUT_SECONDS = 600


class RunsPods:
    """An operator that runs its job as a pod: the pod's arguments, their checks, the backend's arguments.

    An operator calls :meth:`take_pod_arguments` in ``__init__`` (with its defaults filled in) and
    passes :meth:`pod_arguments` to its pod backend. :meth:`check_pod_names` checks the namespace and
    service account against Kubernetes' name rules; the examples its errors suggest are the operator's.
    """

    #: The namespace an error about ``namespace`` suggests.
    namespace_example: ClassVar[str] = "ml-training"
    #: The service account an error about ``service_account_name`` suggests.
    service_account_example: ClassVar[str] = "fraud-training"

    kubernetes_conn_id: str
    namespace: str
    service_account_name: str
    startup_timeout_seconds: int
    input_loader_image: str | None

    def take_pod_arguments(
        self,
        *,
        kubernetes_conn_id: str,
        namespace: str,
        service_account_name: str,
        startup_timeout_seconds: int,
        input_loader_image: str | None,
        check_names: bool,
    ) -> None:
        """Check the pod's arguments (the names too when ``check_names``) and keep them."""
        self.kubernetes_conn_id = kubernetes_conn_id
        self.namespace = namespace
        self.service_account_name = service_account_name
        if check_names:
            self.check_pod_names()
        require_int(
            startup_timeout_seconds,
            "startup_timeout_seconds",
            1,
            None,
            "Use the seconds a pod may take to start, e.g. 600.",
        )
        self.startup_timeout_seconds = startup_timeout_seconds
        self.input_loader_image = input_loader_image

    def check_pod_names(self) -> None:
        """Raise unless the namespace is a DNS label and the service account a DNS subdomain."""
        # Imported here: a DAG of SageMaker tasks does not pay for the Kubernetes name rules when parsed.
        from lyftlearn_provider.rendering.kubernetes import check_dns_label, check_dns_subdomain

        check_dns_label(self.namespace, "namespace", self.namespace_example)
        check_dns_subdomain(self.service_account_name, "service_account_name", self.service_account_example)

    def pod_arguments(self) -> dict[str, Any]:
        """Return the pod backend's arguments (``PodBackend``'s keywords)."""
        return {
            "kubernetes_conn_id": self.kubernetes_conn_id,
            "namespace": self.namespace,
            "service_account_name": self.service_account_name,
            "startup_timeout_seconds": self.startup_timeout_seconds,
            "input_loader_image": self.input_loader_image,
        }
