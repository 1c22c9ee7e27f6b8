"""What every job task that runs on the SageMaker platform (or as a pod) shares: arguments and backends.

:class:`PlatformJobOperator` sits between the generic lifecycle (:class:`~lyftlearn_provider.operators.
jobs.JobOperator`) and a job kind's operator (``TrainModelOperator``, ``RunBatchJobOperator``). It takes
the platform's arguments — ``backend``, tags, tracking and the events queue for SageMaker; connection,
namespace, service account, start-up timeout and input loader for Kubernetes — refuses those of the
other backend when the DAG is parsed, renders the spec as the chosen backend would so that every limit
is checked before anything is created, and builds the backend. A kind says only what it renders and
which backend classes run it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk.configuration import conf

from lyftlearn_provider.backends import KUBERNETES_ARGUMENTS, SAGEMAKER_ARGUMENTS
from lyftlearn_provider.exceptions import InvalidSpecError
from lyftlearn_provider.images import SociPolicy
from lyftlearn_provider.naming import DEFAULT_PREFIX
from lyftlearn_provider.operators import pods
from lyftlearn_provider.operators.jobs import JobOperator, refuse_masked_secrets
from lyftlearn_provider.status import FailedJobPolicy, TrackingSource, TrainingBackend
from lyftlearn_provider.tags import check_user_tags
from lyftlearn_provider.validation import is_templated

if TYPE_CHECKING:
    from airflow.sdk import Context

    from lyftlearn_provider.backends.base import JobBackend, JobSettings
    from lyftlearn_provider.runtime import RuntimeSpec

_SAGEMAKER = frozenset({TrainingBackend.SAGEMAKER.value})
_KUBERNETES = frozenset({TrainingBackend.KUBERNETES.value})
_QUEUE_URL = re.compile(r"^https?://(?P<host>[^/\s]+)/\d{12}/[A-Za-z0-9_-]{1,80}$")
#: ``sqs.<region>.amazonaws.com[.cn]`` and the legacy ``<region>.queue.amazonaws.com``.
_QUEUE_REGION = re.compile(
    r"^(?:sqs\.(?P<a>[a-z]{2}(?:-[a-z0-9]+)+)|(?P<b>[a-z]{2}(?:-[a-z0-9]+)+)\.queue)\.amazonaws\.com"
)


def check_queue_url(value: Any, region: str | None) -> None:
    """Raise unless ``value`` is an SQS queue URL in ``region`` (when the URL and the region name one)."""
    match = _QUEUE_URL.match(value) if isinstance(value, str) else None
    if match is None:
        raise InvalidSpecError(
            "events_queue_url",
            f"{value!r} is not an SQS queue URL",
            "Pass the queue_url SetupTrainingEventsOperator returns, e.g. "
            "https://sqs.us-east-1.amazonaws.com/123456789012/ll-training-events (templated: "
            "'{{ var.value.lyftlearn_events_queue_url }}').",
        )
    where = _QUEUE_REGION.match(match.group("host"))
    queue_region = (where.group("a") or where.group("b")) if where else None
    if region and queue_region and queue_region != region:
        raise InvalidSpecError(
            "events_queue_url",
            f"the queue is in region {queue_region}, but the task's jobs run in {region}: EventBridge "
            "delivers a region's events only to queues of that region",
            f"Set up the route in {region} (SetupTrainingEventsOperator with region_name={region!r}) and "
            "pass its queue_url, or set region_name to the queue's region.",
        )


class PlatformJobOperator(pods.RunsPods, JobOperator):
    """
    A job task on SageMaker (or, with ``backend="kubernetes"``, as a pod): the platform's arguments.

    Its keyword arguments are every job kind's (documented on ``TrainModelOperator``); a kind's operator
    adds its own and passes the rest through. Subclasses implement :meth:`render_sagemaker`,
    :meth:`sagemaker_backend` and :meth:`pod_backend`; everything else — choosing the backend, refusing
    the other backend's arguments, checking tags, tracking, the events queue and the pod's settings —
    is here, once. See ``TrainModelOperator`` for what each argument means.
    """

    backend_arguments: ClassVar[Mapping[str, frozenset[str]]] = {
        **{name: _SAGEMAKER for name in SAGEMAKER_ARGUMENTS},
        **{name: _KUBERNETES for name in KUBERNETES_ARGUMENTS},
    }
    #: The ``LYFTLEARN_RUNTIME`` of the kind's pods.
    pod_runtime: ClassVar[str] = "kubernetes"
    #: What ``tracking`` is called in its error message (``training jobs``).
    tracked_jobs: ClassVar[str] = "training jobs"

    def __init__(
        self,
        *,
        spec: RuntimeSpec,
        backend: TrainingBackend | str = TrainingBackend.SAGEMAKER,
        aws_conn_id: str | None = "aws_default",
        region_name: str | None = None,
        verify: bool | str | None = None,
        botocore_config: dict[str, Any] | None = None,
        job_name_prefix: str = DEFAULT_PREFIX,
        max_runtime_seconds: int | None = None,
        if_job_failed: FailedJobPolicy | str = FailedJobPolicy.NEW_ATTEMPT,
        poll_interval: float = conf.getfloat("lyftlearn", "poll_interval", fallback=30.0),
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        soci: SociPolicy | str = SociPolicy.PREFER,
        tags: Mapping[str, str] | None = None,
        tracking: TrackingSource | str | None = None,
        events_queue_url: str | None = None,
        kubernetes_conn_id: str | None = None,
        namespace: str | None = None,
        service_account_name: str | None = None,
        startup_timeout_seconds: int | None = None,
        input_loader_image: str | None = None,
        given: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        try:
            chosen = TrainingBackend(backend)
        except ValueError:
            raise InvalidSpecError(
                "backend",
                f"{backend!r} is not a backend",
                f"Use one of {[b.value for b in TrainingBackend]}.",
            ) from None
        super().__init__(
            spec=spec,
            backend=chosen.value,
            aws_conn_id=aws_conn_id,
            region_name=region_name,
            verify=verify,
            botocore_config=botocore_config,
            job_name_prefix=job_name_prefix,
            max_runtime_seconds=max_runtime_seconds,
            if_job_failed=if_job_failed,
            poll_interval=poll_interval,
            deferrable=deferrable,
            soci=soci,
            given={
                **(given or {}),
                "tags": tags,
                "tracking": tracking,
                "events_queue_url": events_queue_url,
                "kubernetes_conn_id": kubernetes_conn_id,
                "namespace": namespace,
                "service_account_name": service_account_name,
                "startup_timeout_seconds": startup_timeout_seconds,
                "input_loader_image": input_loader_image,
            },
            **kwargs,
        )
        self.backend = chosen
        # SageMaker
        self.tags = check_user_tags(tags or {})
        try:
            self.tracking = TrackingSource(tracking or TrackingSource.SHARED)
        except ValueError:
            raise InvalidSpecError(
                "tracking",
                f"{tracking!r} is not a way to track {self.tracked_jobs}",
                f"Use one of {[s.value for s in TrackingSource]}: 'shared' when a triggerer follows many "
                "jobs.",
            ) from None
        if self.tracking is TrackingSource.EVENTS and not events_queue_url:
            raise InvalidSpecError(
                "events_queue_url",
                "tracking='events' needs the SQS queue the EventBridge rule feeds",
                "Pass the queue URL SetupTrainingEventsOperator returns (queue_url).",
            )
        if events_queue_url is not None and not is_templated(events_queue_url):
            check_queue_url(events_queue_url, region_name)
        self.events_queue_url = events_queue_url
        # Kubernetes: None is the default (so that the SageMaker backend can refuse what was given); the
        # names are checked with the pod's rendering, which a templated spec leaves to the run.
        startup = startup_timeout_seconds
        self.take_pod_arguments(
            kubernetes_conn_id=kubernetes_conn_id or pods.DEFAULT_KUBERNETES_CONN_ID,
            namespace=namespace or pods.DEFAULT_NAMESPACE,
            service_account_name=service_account_name or pods.DEFAULT_SERVICE_ACCOUNT_NAME,
            startup_timeout_seconds=pods.DEFAULT_STARTUP_TIMEOUT_SECONDS if startup is None else startup,
            input_loader_image=input_loader_image,
            check_names=False,
        )

    def check_at_parse_time(self, templated: bool = False) -> None:
        """Render the spec now (when the DAG is parsed) unless a template leaves it to the run."""
        if (
            not templated
            and not self.spec.is_templated()
            and not any(is_templated(k) or is_templated(v) for k, v in self.tags.items())
        ):
            self._render_for_backend(self.spec)

    # ------------------------------------------------------------------ what a job kind provides
    def render_sagemaker(self, spec: RuntimeSpec) -> None:
        """Render ``spec`` as the kind's SageMaker request, raising what breaks a limit."""
        raise NotImplementedError

    def pod_rendering_arguments(self) -> dict[str, Any]:
        """Return the kind's extra ``render_pod`` arguments (a model, a batch job's data)."""
        return {}

    def sagemaker_backend(self, settings: JobSettings, **common: Any) -> JobBackend:
        """Return the kind's SageMaker backend, given the platform's ``common`` arguments."""
        raise NotImplementedError

    def pod_backend(self, settings: JobSettings, **common: Any) -> JobBackend:
        """Return the kind's pod backend, given the platform's ``common`` arguments."""
        raise NotImplementedError

    # ------------------------------------------------------------------ shared
    def _render_for_backend(self, spec: RuntimeSpec) -> None:
        """Render ``spec`` as the backend would, so every limit is checked before anything is created."""
        if self.backend is TrainingBackend.KUBERNETES:
            # Imported here: a DAG of SageMaker tasks does not pay for the pod rendering when parsed.
            from lyftlearn_provider.rendering.kubernetes import pod_name, render_pod

            self.check_pod_names()
            render_pod(
                spec,
                name=pod_name(DEFAULT_PREFIX),
                namespace=self.namespace,
                service_account=self.service_account_name,
                job_name=DEFAULT_PREFIX,
                active_deadline_seconds=self._max_runtime_seconds(),
                input_loader_image=self.input_loader_image,
                runtime=self.pod_runtime,
                **self.pod_rendering_arguments(),
            )
        else:
            self.render_sagemaker(spec)

    def make_backend(self) -> JobBackend:
        """Return the backend of ``backend=``, with the (rendered) arguments that apply to it."""
        settings = self.job_settings()
        if self.backend is TrainingBackend.KUBERNETES:
            return self.pod_backend(settings, **self.pod_arguments())
        return self.sagemaker_backend(
            settings, tags=self.tags, tracking=self.tracking, events_queue_url=self.events_queue_url
        )

    def prepare(self, context: Context) -> None:
        """Check the rendered arguments before anything is created: secrets, tags, the queue's region."""
        refuse_masked_secrets(self.spec, self.tags)
        check_user_tags(self.tags)
        self._render_for_backend(self.spec)
        if self.events_queue_url is not None:
            check_queue_url(self.events_queue_url, self.aws_region())
