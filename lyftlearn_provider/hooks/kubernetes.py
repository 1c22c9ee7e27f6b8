"""Deployments and their rollouts through the cncf-kubernetes provider's hook: read, write, roll back.

:class:`DeploymentHook` is the cncf provider's ``KubernetesHook`` (same connection, same client
configuration) with the Deployment operations a serving rollout needs. It speaks the API's JSON: every
object comes back as the dict the API server sent (``_preload_content=False``), not as the client's
model objects -- a model drops fields the client version does not know, and a PUT built from one would
erase them -- so the pure rules of :mod:`lyftlearn_provider.rollouts` apply to it as they are.

Writes are compare-and-swap on ``metadata.resourceVersion``: a write based on a stale read fails with
:class:`DeploymentConflict` and changes nothing, which is how two deploys to one Deployment are
serialized. The controller's status updates move ``resourceVersion`` too, so a conflict during a
rollout does not always mean another deploy: read again, check again, and retry.

Throttling (429, honouring ``Retry-After``), 5xx answers and lost connections are retried a few times
(``[workers] api_retries``), writes included: a resent write that had already landed meets 409, so
nothing is ever applied twice -- at worst a write of ours reports a conflict with itself, which the
next read shows.

Imported at execute time only (it imports the cncf provider and the Kubernetes client).
"""

from __future__ import annotations

import copy
import json
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import tenacity
from aiohttp import ClientPayloadError
from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from airflow.providers.cncf.kubernetes.kubernetes_helper_functions import (
    API_RETRIES,
    TRANSIENT_CONNECTION_ERRORS,
    WaitRetryAfterOrExponential,
)
from kubernetes.client.exceptions import ApiException
from kubernetes_asyncio.client.exceptions import ApiException as AsyncApiException

from lyftlearn_provider.exceptions import LyftLearnError
from lyftlearn_provider.rollouts import (
    current_replica_set,
    event_lines,
    label_selector,
    owned_replica_sets,
    revision_of,
    rolled_back,
    same_template,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Answers worth another try: throttling and the API server (or its load balancer) failing. Not 409:
#: a conflict is the compare-and-swap doing its job.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
#: How many times ``roll_back`` re-reads and tries again when its write meets a conflict.
ROLLBACK_ATTEMPTS = 5
#: Items per page when listing, and the most pages one listing reads (a bound, never reached in practice).
PAGE_SIZE = 500
MAX_PAGES = 100


class DeploymentConflict(LyftLearnError):
    """A compare-and-swap write met a newer version of the Deployment (409); nothing was changed.

    Read the Deployment again, check that the change still applies, and retry.
    """

    def __init__(self, namespace: str, name: str, detail: str = "") -> None:
        self.namespace = namespace
        self.name = name
        self.detail = detail
        why = f": {detail}" if detail else ""
        super().__init__(
            f"Deployment {namespace}/{name} changed since it was read{why}; nothing was written. "
            "Read it again, check that the change still applies, and retry."
        )


class DeploymentNotFound(LyftLearnError):
    """The Deployment an operation needs does not exist."""

    def __init__(self, namespace: str, name: str) -> None:
        self.namespace = namespace
        self.name = name
        super().__init__(
            f"Deployment {namespace}/{name} does not exist; create it (the serving manifest) or fix the "
            "namespace and name."
        )


def is_transient(error: BaseException) -> bool:
    """Return whether a Kubernetes client's error is worth retrying: throttling, 5xx, a lost connection.

    Covers ``kubernetes`` (urllib3) and ``kubernetes_asyncio`` (aiohttp), a request that timed out, and
    an answer cut off mid-body.
    """
    if isinstance(error, (ApiException, AsyncApiException)):
        return error.status in TRANSIENT_STATUSES
    return isinstance(
        error, (*TRANSIENT_CONNECTION_ERRORS, ClientPayloadError, TimeoutError, ConnectionError)
    )


def retry_after(error: BaseException) -> float | None:
    """Return the seconds a throttling answer (429) asks to wait with ``Retry-After``, if it says."""
    if not isinstance(error, (ApiException, AsyncApiException)) or error.status != 429:
        return None
    try:
        return float(str((error.headers or {}).get("Retry-After")))
    except (TypeError, ValueError):
        return None


_retry_transient = tenacity.retry(
    stop=tenacity.stop_after_attempt(API_RETRIES),
    wait=WaitRetryAfterOrExponential(),
    retry=tenacity.retry_if_exception(is_transient),
    reraise=True,
    before_sleep=tenacity.before_sleep_log(log, logging.WARNING),
)


class DeploymentHook(KubernetesHook):
    """The cncf provider's ``KubernetesHook``, with what a serving rollout does to a Deployment.

    Takes the same arguments as ``KubernetesHook`` (``conn_id`` names the Airflow connection).
    """

    def _call(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Make one API call and return the JSON it answered."""
        response = _retry_transient(call)(*args, _preload_content=False, **kwargs)
        return json.loads(response.data)

    # ------------------------------------------------------------------------------------ reads
    def read_deployment(self, namespace: str, name: str) -> dict[str, Any] | None:
        """Return the Deployment as the API returns it, or None when it does not exist.

        :param namespace: its namespace.
        :param name: its name.
        """
        try:
            deployment: dict[str, Any] = self._call(
                self.apps_v1_client.read_namespaced_deployment, name, namespace
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return deployment

    def _list(self, call: Callable[..., Any], namespace: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        token: str | None = None
        for _ in range(MAX_PAGES):
            page = self._call(call, namespace, limit=PAGE_SIZE, _continue=token, **kwargs)
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def replica_sets(self, namespace: str, deployment: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Return the ReplicaSets the Deployment controls, oldest revision first.

        Found by the Deployment's selector, kept only when its ``uid`` is their controller's.

        :param namespace: the Deployment's namespace.
        :param deployment: the Deployment as read.
        """
        selector = label_selector((deployment.get("spec") or {}).get("selector"))
        listed = list(
            self._list(self.apps_v1_client.list_namespaced_replica_set, namespace, label_selector=selector)
        )
        owned = owned_replica_sets(deployment, listed)
        return sorted((dict(rs) for rs in owned), key=lambda rs: revision_of(rs) or 0)

    def failing_pod_events(self, namespace: str, deployment: Mapping[str, Any], limit: int = 5) -> list[str]:
        """Return the warnings about the pods of the Deployment's newest ReplicaSet, newest first.

        Each line reads ``pod fraud-7d9-x: Failed: Error: ErrImagePull`` (``(x4)`` when it repeated). The
        same warning about several pods is one line naming the latest (``and 2 more pods``), so a few lines
        show the different problems. Warnings about the ReplicaSet itself (``FailedCreate``: quota, a
        missing service account) are included: they are why there are no pods.

        :param namespace: the Deployment's namespace.
        :param deployment: the Deployment as read.
        :param limit: the most lines to return.
        """
        sets = self.replica_sets(namespace, deployment)
        newest = current_replica_set(deployment, sets) or (sets[-1] if sets else None)
        if newest is None:
            return []
        newest_uid = (newest.get("metadata") or {}).get("uid")
        pods = [
            pod
            for pod in self._list(
                self.core_v1_client.list_namespaced_pod,
                namespace,
                label_selector=label_selector((newest.get("spec") or {}).get("selector")),
            )
            if any(
                ref.get("uid") == newest_uid and ref.get("controller")
                for ref in (pod.get("metadata") or {}).get("ownerReferences") or []
            )
        ]
        involved = {newest_uid} | {(pod.get("metadata") or {}).get("uid") for pod in pods}
        warnings = [
            event
            for event in self._list(
                self.core_v1_client.list_namespaced_event, namespace, field_selector="type=Warning"
            )
            if (event.get("involvedObject") or {}).get("uid") in involved
        ]
        return event_lines(warnings, limit)

    # ----------------------------------------------------------------------------------- writes
    def replace_deployment(self, deployment: Mapping[str, Any]) -> dict[str, Any]:
        """Write the whole Deployment (PUT), only if nobody changed it since it was read.

        :param deployment: the Deployment as read and changed; its ``metadata.resourceVersion`` is the
            version the write expects to replace.
        :raises DeploymentConflict: the Deployment changed since (409); nothing was written.
        """
        metadata = deployment.get("metadata") or {}
        namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
        if not metadata.get("resourceVersion"):
            # Without it a PUT overwrites whatever is there: never what a serialized deploy wants.
            raise ValueError(
                f"Deployment {namespace}/{name}: the body has no metadata.resourceVersion to check"
            )
        try:
            replaced: dict[str, Any] = self._call(
                self.apps_v1_client.replace_namespaced_deployment, name, namespace, dict(deployment)
            )
        except ApiException as error:
            if error.status == 409:
                raise DeploymentConflict(
                    namespace, name, f"it is no longer at resourceVersion {metadata.get('resourceVersion')}"
                ) from error
            if error.status == 404:
                raise DeploymentNotFound(namespace, name) from error
            raise
        return replaced

    def patch_deployment(
        self, namespace: str, name: str, patch: Mapping[str, Any], resource_version: str
    ) -> dict[str, Any]:
        """Apply a strategic-merge patch to the Deployment, only if it is still at ``resource_version``.

        :param namespace: its namespace.
        :param name: its name.
        :param patch: the strategic-merge patch (containers merge by name, so a patch may name just one).
        :param resource_version: the ``metadata.resourceVersion`` of the Deployment the patch was made for.
        :raises DeploymentConflict: the Deployment changed since (409); nothing was written.
        """
        body = copy.deepcopy(dict(patch))
        body.setdefault("metadata", {})["resourceVersion"] = resource_version
        try:
            patched: dict[str, Any] = self._call(
                self.apps_v1_client.patch_namespaced_deployment,
                name,
                namespace,
                body,
                _content_type=STRATEGIC_MERGE_PATCH,
            )
        except ApiException as error:
            if error.status == 409:
                raise DeploymentConflict(
                    namespace, name, f"it is no longer at resourceVersion {resource_version}"
                ) from error
            if error.status == 404:
                raise DeploymentNotFound(namespace, name) from error
            raise
        return patched

    def roll_back(
        self, namespace: str, name: str, *, expected_generation: int | None = None
    ) -> dict[str, Any] | None:
        """Roll the Deployment back to its previous revision, as ``kubectl rollout undo`` does.

        Writes the previous revision's pod template (and the annotations recorded with it) back into the
        Deployment with a compare-and-swap; on a conflict it reads the Deployment again and retries, a
        bounded number of times, as long as its spec is unchanged (status updates move its
        resourceVersion while it rolls out). Returns the Deployment as written, or None when there is no
        earlier revision.

        :param namespace: its namespace.
        :param name: its name.
        :param expected_generation: roll back only while ``metadata.generation`` is this one -- the
            generation the change being undone produced. If someone changed the spec since (another
            deploy, or an earlier rollback of ours), undoing would undo *their* change: it raises
            :class:`DeploymentConflict` instead. Without it, the generation of the first read is kept.
        :raises DeploymentNotFound: the Deployment does not exist.
        :raises DeploymentConflict: the spec changed under it, or the conflicts did not stop.
        """
        expected = expected_generation
        target: Mapping[str, Any] | None = None
        attempt = 0
        while True:
            attempt += 1
            deployment = self.read_deployment(namespace, name)
            if deployment is None:
                raise DeploymentNotFound(namespace, name)
            generation = int((deployment.get("metadata") or {}).get("generation") or 0)
            if target is not None and same_template((deployment.get("spec") or {}).get("template"), target):
                # Our write landed though its answer was lost (it was resent and met itself).
                return deployment
            if expected is None:
                expected = generation
            elif generation != expected:
                raise DeploymentConflict(
                    namespace,
                    name,
                    f"its spec changed (generation {generation}, expected {expected}), so undoing would "
                    "undo that change",
                )
            body = rolled_back(deployment, self.replica_sets(namespace, deployment))
            if body is None:
                return None
            target = body["spec"]["template"]
            try:
                return self.replace_deployment(body)
            except DeploymentConflict:
                if attempt >= ROLLBACK_ATTEMPTS:
                    raise
                self.log.info(
                    "Deployment %s/%s changed while rolling it back (attempt %d); reading it again.",
                    namespace,
                    name,
                    attempt,
                )
                # Spread out, so two writers that conflict once do not meet again at once.
                time.sleep(random.uniform(0.05, 0.2) * attempt)
