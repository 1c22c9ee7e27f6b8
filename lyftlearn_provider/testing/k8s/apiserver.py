"""The emulated cluster: API-server semantics over the object store, wired to the kubelet and controllers.

What the API server does here, as a real one would:

- create: ``generateName``, namespace checks, name validation, defaults (Deployments get
  ``replicas: 1``, a 25%/25% rolling update, ``revisionHistoryLimit: 10`` and
  ``progressDeadlineSeconds: 600``), validation (a Deployment's selector must match its template),
  ``uid``/``creationTimestamp``/``generation``; pods are admitted only if their service account
  exists, and pods whose service account carries ``eks.amazonaws.com/role-arn`` get the IAM-role
  environment and token volume the EKS pod-identity webhook injects;
- update (PUT) and patch: optimistic concurrency -- a body (or patched object) whose
  ``metadata.resourceVersion`` differs from the stored one is refused with ``409 Conflict``; status
  is written only through ``/status``; ``metadata.generation`` moves only when ``spec`` changes; a
  write that changes nothing is not a change (no new ``resourceVersion``, no watch event);
- delete: ``preconditions``, and garbage collection of dependents (ReplicaSets of a Deployment, pods
  of a ReplicaSet) unless ``propagationPolicy`` is ``Orphan``; deleting a namespace deletes its objects;
- list: label and field selectors, ``limit``/``continue`` pagination, ``metadata.resourceVersion``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from lyftlearn_provider.testing.k8s import errors
from lyftlearn_provider.testing.k8s.behaviors import (
    BehaviorBook,
    PodBehavior,
    PodFailure,
    PodMatcher,
    RolloutBehavior,
    pod_matcher,
)
from lyftlearn_provider.testing.k8s.deployments import DeploymentController
from lyftlearn_provider.testing.k8s.errors import ApiError
from lyftlearn_provider.testing.k8s.events import EventRecorder
from lyftlearn_provider.testing.k8s.faults import FaultInjector
from lyftlearn_provider.testing.k8s.kubelet import ExecHandler, FakeKubelet
from lyftlearn_provider.testing.k8s.meta import (
    Obj,
    new_uid,
    owner_uids,
    random_suffix,
    rfc3339,
)
from lyftlearn_provider.testing.k8s.patches import PatchError, json_patch, merge_patch, strategic_merge_patch
from lyftlearn_provider.testing.k8s.replicasets import ReplicaSetController
from lyftlearn_provider.testing.k8s.resources import (
    DEPLOYMENTS,
    NAMESPACES,
    PODS,
    REPLICA_SETS,
    RESOURCES,
    SERVICE_ACCOUNTS,
    SERVICES,
    ResourceType,
    resource_for_kind,
)
from lyftlearn_provider.testing.k8s.selectors import (
    SelectorError,
    parse_field_selector,
    parse_label_selector,
    selector_object_matches,
    unsupported_fields,
)
from lyftlearn_provider.testing.k8s.store import DEFAULT_HISTORY, ObjectStore
from lyftlearn_provider.testing.k8s.workqueue import WorkQueue

DEFAULT_VERSION = "v1.32.0"
INITIAL_NAMESPACES = ("default", "kube-system", "kube-public")
IRSA_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
IRSA_TOKEN_DIR = "/var/run/secrets/eks.amazonaws.com/serviceaccount"
JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_MERGE_PATCH = "application/strategic-merge-patch+json"
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def _encode_continue(namespace: str | None, name: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([namespace or "", name]).encode()).decode()


def _decode_continue(token: str) -> tuple[str, str]:
    try:
        namespace, name = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, binascii.Error) as error:
        raise errors.bad_request(f"continue key is not valid: {error}") from error
    return str(namespace), str(name)


def apply_patch(current: Obj, body: Any, content_type: str) -> Any:
    """Apply a PATCH body of the given media type to an object, raising the API server's errors."""
    try:
        if content_type == JSON_PATCH:
            return json_patch(current, body)
        if content_type == MERGE_PATCH:
            return merge_patch(current, body)
        if content_type == STRATEGIC_MERGE_PATCH:
            return strategic_merge_patch(current, body)
    except PatchError as error:
        raise ApiError(
            error.status, "Invalid" if error.status == 422 else "BadRequest", str(error)
        ) from error
    raise ApiError(
        415,
        "UnsupportedMediaType",
        f"the body of the request was in an unknown format - accepted media types include: "
        f"{JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_MERGE_PATCH} (server-side apply is not emulated)",
    )


class KubernetesEmulator:
    """Emulate a Kubernetes cluster (see the module docstring); serve it with ``EmulatorServer``.

    Everything runs on one asyncio event loop: call ``attach`` with it before pods can run, and call
    methods only from that loop's thread (``EmulatorServer.call`` does that for other threads).
    """

    def __init__(
        self,
        *,
        version: str = DEFAULT_VERSION,
        history_size: int = DEFAULT_HISTORY,
        irsa_webhook: bool = True,
    ) -> None:
        self.version = version
        self.irsa_webhook = irsa_webhook
        self.store = ObjectStore(history_size)
        self.behaviors = BehaviorBook()
        self.events = EventRecorder(self.store)
        self.kubelet = FakeKubelet(self.store, self.events, self.behaviors)
        self.queue = WorkQueue()
        self.replicasets = ReplicaSetController(self.store, self.events, self, self.queue)
        self.deployments = DeploymentController(self.store, self.events, self.behaviors, self, self.queue)
        #: ``(method, path with query)`` of every request served, for tests that assert on traffic.
        self.requests: list[tuple[str, str]] = []
        #: Faults the HTTP layer answers matching requests with (see ``faults``).
        self.faults = FaultInjector()
        self._seed()

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the kubelet and the controllers on ``loop``."""
        self.kubelet.attach(loop)
        self.queue.attach(loop)

    def reset(self) -> None:
        """Return to a fresh cluster: only the initial namespaces; no behaviours, faults or requests."""
        self.faults.clear()
        self.queue.clear()
        self.kubelet.clear()
        self.behaviors.clear()
        self.deployments.clear()
        self.store.clear()
        self.events.clear()
        self.requests.clear()
        self._seed()

    def _seed(self) -> None:
        for name in INITIAL_NAMESPACES:
            self.create(NAMESPACES, None, {"metadata": {"name": name}})

    # ------------------------------------------------------------------ behaviours

    def add_pod_behavior(
        self,
        behavior: PodBehavior,
        *,
        name_prefix: str | None = None,
        labels: Mapping[str, str] | None = None,
        namespace: str | None = None,
        predicate: PodMatcher | None = None,
    ) -> None:
        """Give matching pods created from now on this behaviour (later registrations win)."""
        matcher = pod_matcher(
            name_prefix=name_prefix, labels=labels, namespace=namespace, predicate=predicate
        )
        self.behaviors.add_pod_rule(matcher, behavior)

    def set_rollout_behavior(
        self, deployment: str, behavior: RolloutBehavior, namespace: str | None = None
    ) -> None:
        """Make the ReplicaSets a Deployment gets from now on behave this way."""
        self.behaviors.set_rollout(deployment, behavior, namespace)

    def fail_images_containing(self, marker: str, failure: PodFailure = "ErrImagePull") -> None:
        """Make pods whose container image contains ``marker`` fail (default: the image cannot be pulled)."""
        self.behaviors.fail_images_containing(marker, failure)

    def add_exec_handler(self, handler: ExecHandler) -> None:
        """Let ``handler`` answer ``pods/exec`` requests before the built-in ones."""
        self.kubelet.add_exec_handler(handler)

    # ------------------------------------------------------------------ reads

    def get(self, resource: ResourceType, namespace: str | None, name: str) -> Obj:
        """Return an object or raise 404."""
        obj = self.store.get(resource, namespace, name)
        if obj is None:
            raise errors.not_found(resource.qualified, name, resource.group, resource.plural)
        return obj

    def list(
        self,
        resource: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
    ) -> Obj:
        """Return a ``<Kind>List`` of the objects that match, one page at a time if ``limit`` is set."""
        matches = self.matcher(resource, label_selector, field_selector)
        items = [obj for obj in self.store.list(resource, namespace) if matches(obj)]
        if continue_token:
            after = _decode_continue(continue_token)
            items = [
                o for o in items if (o["metadata"].get("namespace") or "", o["metadata"]["name"]) > after
            ]
        metadata: Obj = {"resourceVersion": str(self.store.resource_version)}
        if limit and len(items) > limit:
            last = items[limit - 1]["metadata"]
            metadata["continue"] = _encode_continue(last.get("namespace"), last["name"])
            metadata["remainingItemCount"] = len(items) - limit
            items = items[:limit]
        return {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": metadata,
            "items": items,
        }

    @staticmethod
    def matcher(
        resource: ResourceType, label_selector: str | None, field_selector: str | None
    ) -> Callable[[Obj], bool]:
        """Return a predicate for objects matching both selectors; raise 400 for a bad selector."""
        try:
            labels = parse_label_selector(label_selector)
            fields = parse_field_selector(field_selector)
        except SelectorError as error:
            raise errors.bad_request(str(error)) from error
        unsupported = unsupported_fields(fields, resource.field_selectors)
        if unsupported:
            raise errors.bad_request(
                f"field label not supported: {unsupported[0]} (for {resource.qualified}: "
                f"{', '.join(resource.field_selectors)})"
            )

        def matches(obj: Obj) -> bool:
            return labels.matches(obj["metadata"].get("labels")) and all(req.matches(obj) for req in fields)

        return matches

    # ------------------------------------------------------------------ writes

    def create(
        self, resource: ResourceType, namespace: str | None, body: Obj, *, dry_run: bool = False
    ) -> Obj:
        """Create an object (``409 AlreadyExists`` if the name is taken); return it as stored."""
        obj = copy.deepcopy(body)
        md = obj.setdefault("metadata", {})
        if resource.namespaced:
            if md.get("namespace") not in (None, "", namespace):
                raise errors.bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            if namespace is None:
                raise errors.bad_request(f"{resource.plural} are namespaced: a namespace is required")
            md["namespace"] = namespace
            if self.store.get(NAMESPACES, None, namespace) is None:
                raise errors.not_found("namespaces", namespace)
        else:
            md.pop("namespace", None)
        if not md.get("name"):
            if not md.get("generateName"):
                raise errors.invalid(
                    resource.qualified_kind,
                    "",
                    [
                        (
                            "metadata.name",
                            "FieldValueRequired",
                            "Required value: name or generateName is required",
                        )
                    ],
                    resource.group,
                )
            md["name"] = f"{md['generateName']}{random_suffix()}"
        self._validate_name(resource, md["name"])
        if self.store.get(resource, namespace, md["name"]) is not None:
            raise errors.already_exists(resource.qualified, md["name"], resource.group, resource.plural)
        for server_field in ("resourceVersion", "deletionTimestamp", "selfLink"):
            md.pop(server_field, None)
        md.update(uid=new_uid(), creationTimestamp=rfc3339())
        if resource.tracks_generation:
            md["generation"] = 1
        self._default(resource, obj)
        self._validate(resource, obj, None)
        if resource is PODS:
            self._admit_pod(obj)
            obj["status"] = {"phase": "Pending", "qosClass": self._qos_class(obj)}
        elif resource.has_status and resource is not NAMESPACES:
            obj["status"] = {}
        if dry_run:
            return {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
        created = self.store.put(resource, obj)
        if resource is NAMESPACES:
            self.create(SERVICE_ACCOUNTS, md["name"], {"metadata": {"name": "default"}})
        return created

    def create_manifest(self, manifest: Obj, namespace: str = "default") -> Obj:
        """Create an object from a manifest with ``apiVersion`` and ``kind`` (as ``kubectl create`` would)."""
        resource = resource_for_kind(str(manifest.get("apiVersion")), str(manifest.get("kind")))
        if resource is None:
            raise errors.bad_request(
                f"the emulator does not serve {manifest.get('apiVersion')} {manifest.get('kind')}"
            )
        target = (manifest.get("metadata") or {}).get("namespace") or namespace
        return self.create(resource, target if resource.namespaced else None, manifest)

    def replace(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        body: Obj,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Replace an object (PUT); refuse a stale ``metadata.resourceVersion`` with 409."""
        current = self.get(resource, namespace, name)
        given = (body.get("metadata") or {}).get("name")
        if given and given != name:
            raise errors.bad_request(
                f"the name of the object ({given}) does not match the name on the URL ({name})"
            )
        self._check_version(resource, current, body)
        return self._write(resource, current, copy.deepcopy(body), subresource, dry_run)

    def patch(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        content_type: str,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Patch an object (json, merge or strategic merge); a stale ``resourceVersion`` in it gets 409."""
        current = self.get(resource, namespace, name)
        patched = apply_patch(current, body, content_type)
        if not isinstance(patched, dict):
            raise errors.bad_request("the patch does not produce an object")
        self._check_version(resource, current, patched)
        return self._write(resource, current, patched, subresource, dry_run)

    def delete(
        self,
        resource: ResourceType,
        namespace: str | None,
        name: str,
        *,
        propagation: str = "Background",
        preconditions: Mapping[str, Any] | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """Delete an object and, unless ``propagation`` is ``Orphan``, its dependents; return it."""
        current = self.get(resource, namespace, name)
        preconditions = preconditions or {}
        for field in ("uid", "resourceVersion"):
            wanted = preconditions.get(field)
            if wanted and wanted != current["metadata"].get(field):
                label = "UID" if field == "uid" else "ResourceVersion"
                raise errors.conflict(
                    resource.qualified,
                    name,
                    resource.group,
                    resource.plural,
                    why=f"Precondition failed: {label} in precondition: {wanted}, "
                    f"{label} in object meta: {current['metadata'].get(field)}",
                )
        if dry_run:
            return current
        if resource is NAMESPACES:
            for namespaced in RESOURCES:
                if namespaced.namespaced:
                    for obj in self.store.list(namespaced, name):
                        self.store.remove(namespaced, name, obj["metadata"]["name"])
        removed = self.store.remove(resource, namespace, name)
        assert removed is not None
        removed["metadata"]["deletionTimestamp"] = rfc3339()
        if propagation != "Orphan":
            self._collect_dependents(removed)
        return removed

    def _collect_dependents(self, owner: Obj) -> None:
        uid = owner["metadata"]["uid"]
        namespace = owner["metadata"].get("namespace")
        for resource in (REPLICA_SETS, PODS):
            for obj in self.store.list(resource, namespace):
                if uid in owner_uids(obj):
                    self.delete(resource, namespace, obj["metadata"]["name"])

    def _check_version(self, resource: ResourceType, current: Obj, incoming: Obj) -> None:
        wanted = (incoming.get("metadata") or {}).get("resourceVersion")
        if wanted and str(wanted) != current["metadata"]["resourceVersion"]:
            md = current["metadata"]
            raise errors.conflict(resource.qualified, md["name"], resource.group, resource.plural)

    def _write(
        self, resource: ResourceType, current: Obj, new: Obj, subresource: str | None, dry_run: bool
    ) -> Obj:
        if subresource == "status":
            updated = copy.deepcopy(current)
            updated["status"] = new.get("status", current.get("status"))
        else:
            updated = new
            if resource.has_status:
                updated["status"] = copy.deepcopy(current.get("status"))
            md = updated.setdefault("metadata", {})
            for immutable in (
                "uid",
                "creationTimestamp",
                "name",
                "namespace",
                "generation",
                "deletionTimestamp",
            ):
                if immutable in current["metadata"]:
                    md[immutable] = current["metadata"][immutable]
                else:
                    md.pop(immutable, None)
            self._default(resource, updated)
            self._validate(resource, updated, current)
            if resource.tracks_generation and updated.get("spec") != current.get("spec"):
                md["generation"] = int(current["metadata"].get("generation", 1)) + 1
        updated["apiVersion"] = resource.api_version
        updated["kind"] = resource.kind
        updated["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        if dry_run or updated == current:
            return updated
        return self.store.put(resource, updated)

    # ------------------------------------------------------------------ defaults, validation, admission

    @staticmethod
    def _validate_name(resource: ResourceType, name: str) -> None:
        label_names = resource in (NAMESPACES, SERVICES)
        pattern, limit = (_DNS_LABEL, 63) if label_names else (_DNS_SUBDOMAIN, 253)
        if len(name) > limit or not pattern.match(name):
            rule = "RFC 1123 label" if label_names else "RFC 1123 subdomain"
            message = (
                f'Invalid value: "{name}": a lowercase {rule} must consist of lower case alphanumeric '
                f"characters, '-' or '.', and must start and end with an alphanumeric character "
                f"(at most {limit} characters)"
            )
            raise errors.invalid(
                resource.qualified_kind,
                name,
                [("metadata.name", "FieldValueInvalid", message)],
                resource.group,
            )

    @staticmethod
    def _default(resource: ResourceType, obj: Obj) -> None:
        if resource is DEPLOYMENTS:
            spec = obj.setdefault("spec", {})
            spec.setdefault("replicas", 1)
            spec.setdefault("revisionHistoryLimit", 10)
            spec.setdefault("progressDeadlineSeconds", 600)
            strategy = spec.setdefault("strategy", {})
            strategy.setdefault("type", "RollingUpdate")
            if strategy["type"] == "RollingUpdate":
                rolling = strategy.setdefault("rollingUpdate", {})
                rolling.setdefault("maxSurge", "25%")
                rolling.setdefault("maxUnavailable", "25%")
        elif resource is REPLICA_SETS:
            obj.setdefault("spec", {}).setdefault("replicas", 1)
        elif resource is PODS:
            spec = obj.setdefault("spec", {})
            spec.setdefault("restartPolicy", "Always")
            spec.setdefault("schedulerName", "default-scheduler")
            spec.setdefault("terminationGracePeriodSeconds", 30)
            spec.setdefault("dnsPolicy", "ClusterFirst")
        elif resource is SERVICES:
            spec = obj.setdefault("spec", {})
            spec.setdefault("type", "ClusterIP")
            spec.setdefault("sessionAffinity", "None")
            for port in spec.get("ports") or []:
                port.setdefault("protocol", "TCP")
                port.setdefault("targetPort", port.get("port"))
        elif resource is NAMESPACES:
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}

    @staticmethod
    def _validate(resource: ResourceType, obj: Obj, current: Obj | None) -> None:
        name = obj["metadata"].get("name", "")
        causes: list[tuple[str, str, str]] = []
        spec = obj.get("spec") or {}
        if resource is PODS:
            containers = spec.get("containers") or []
            if not containers:
                causes.append(("spec.containers", "FieldValueRequired", "Required value"))
            for i, container in enumerate(containers):
                for field in ("name", "image"):
                    if not container.get(field):
                        causes.append(
                            (f"spec.containers[{i}].{field}", "FieldValueRequired", "Required value")
                        )
        elif resource in (DEPLOYMENTS, REPLICA_SETS):
            selector = spec.get("selector")
            template_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
            if not selector or not (selector.get("matchLabels") or selector.get("matchExpressions")):
                causes.append(("spec.selector", "FieldValueRequired", "Required value"))
            elif not selector_object_matches(selector, template_labels):
                causes.append(
                    (
                        "spec.template.metadata.labels",
                        "FieldValueInvalid",
                        f"Invalid value: {template_labels!r}: `selector` does not match template `labels`",
                    )
                )
            if current is not None and selector != (current.get("spec") or {}).get("selector"):
                causes.append(("spec.selector", "FieldValueInvalid", "field is immutable"))
            if not ((spec.get("template") or {}).get("spec") or {}).get("containers"):
                causes.append(("spec.template.spec.containers", "FieldValueRequired", "Required value"))
            if int(spec.get("replicas", 1)) < 0:
                causes.append(("spec.replicas", "FieldValueInvalid", "must be greater than or equal to 0"))
            if resource is DEPLOYMENTS and int(spec.get("progressDeadlineSeconds", 600)) <= int(
                spec.get("minReadySeconds", 0)
            ):
                causes.append(
                    (
                        "spec.progressDeadlineSeconds",
                        "FieldValueInvalid",
                        "must be greater than minReadySeconds",
                    )
                )
        if causes:
            raise errors.invalid(resource.qualified_kind, name, causes, resource.group)

    def _admit_pod(self, pod: Obj) -> None:
        """Check the pod's service account exists; inject IAM-role settings as the EKS webhook does."""
        md, spec = pod["metadata"], pod["spec"]
        account_name = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccountName"] = spec["serviceAccount"] = account_name
        account = self.store.get(SERVICE_ACCOUNTS, md["namespace"], account_name)
        if account is None:
            raise ApiError(
                403,
                "Forbidden",
                f'pods "{md.get("name") or md.get("generateName", "")}" is forbidden: '
                f"error looking up service "
                f'account {md["namespace"]}/{account_name}: serviceaccount "{account_name}" not found',
            )
        role_arn = ((account.get("metadata") or {}).get("annotations") or {}).get(IRSA_ROLE_ANNOTATION)
        if not (self.irsa_webhook and role_arn):
            return
        injected = {
            "AWS_ROLE_ARN": role_arn,
            "AWS_WEB_IDENTITY_TOKEN_FILE": f"{IRSA_TOKEN_DIR}/token",
            "AWS_STS_REGIONAL_ENDPOINTS": "regional",
        }
        for container in [*spec.get("initContainers", []), *spec["containers"]]:
            env = container.setdefault("env", [])
            present = {e.get("name") for e in env}
            env.extend({"name": k, "value": v} for k, v in injected.items() if k not in present)
            mounts = container.setdefault("volumeMounts", [])
            if not any(m.get("mountPath") == IRSA_TOKEN_DIR for m in mounts):
                mounts.append({"name": "aws-iam-token", "mountPath": IRSA_TOKEN_DIR, "readOnly": True})
        volumes = spec.setdefault("volumes", [])
        if not any(v.get("name") == "aws-iam-token" for v in volumes):
            volumes.append(
                {
                    "name": "aws-iam-token",
                    "projected": {
                        "defaultMode": 420,
                        "sources": [
                            {
                                "serviceAccountToken": {
                                    "audience": "sts.amazonaws.com",
                                    "expirationSeconds": 86400,
                                    "path": "token",
                                }
                            }
                        ],
                    },
                }
            )

    @staticmethod
    def _qos_class(pod: Obj) -> str:
        containers = pod["spec"].get("containers") or []
        resources = [c.get("resources") or {} for c in containers]
        if not any(r.get("requests") or r.get("limits") for r in resources):
            return "BestEffort"
        guaranteed = all(
            (r.get("limits") or {}).get(k)
            and (r.get("requests") or r.get("limits") or {}).get(k) == r["limits"][k]
            for r in resources
            for k in ("cpu", "memory")
        )
        return "Guaranteed" if guaranteed else "Burstable"

    # ------------------------------------------------------------------ scale subresource

    def scale(self, resource: ResourceType, namespace: str, name: str) -> Obj:
        """Return the ``autoscaling/v1`` Scale of a Deployment or ReplicaSet."""
        obj = self.get(resource, namespace, name)
        md = obj["metadata"]
        selector = (obj.get("spec") or {}).get("selector") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                k: md[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            },
            "spec": {"replicas": obj["spec"].get("replicas", 1)},
            "status": {
                "replicas": (obj.get("status") or {}).get("replicas", 0),
                "selector": ",".join(
                    f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())
                ),
            },
        }

    def update_scale(self, resource: ResourceType, namespace: str, name: str, scale: Obj) -> Obj:
        """Set the replicas of a Deployment or ReplicaSet from a Scale (409 on a stale resourceVersion)."""
        current = self.get(resource, namespace, name)
        self._check_version(resource, current, scale)
        updated = copy.deepcopy(current)
        updated["spec"]["replicas"] = int((scale.get("spec") or {}).get("replicas", 0))
        self._write(resource, current, updated, None, False)
        return self.scale(resource, namespace, name)
