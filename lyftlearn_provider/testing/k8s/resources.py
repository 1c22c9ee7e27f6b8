"""The resource types the emulator serves, and the discovery documents that describe them."""

from __future__ import annotations

from dataclasses import dataclass

from lyftlearn_provider.testing.k8s.meta import Obj

_COMMON_FIELDS = ("metadata.name", "metadata.namespace")


@dataclass(frozen=True)
class ResourceType:
    """Describe one REST resource (``pods``, ``deployments.apps``...) and how the API server treats it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    subresources: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    #: Fields a field selector may use on this resource, besides ``metadata.name``/``namespace``.
    selectable_fields: tuple[str, ...] = ()
    #: ``metadata.generation`` counts spec changes (and the controller reports ``observedGeneration``).
    tracks_generation: bool = False

    @property
    def api_version(self) -> str:
        """Return ``group/version`` (just ``version`` for the core group)."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """Return the plural qualified by its group (``deployments.apps``), as error messages name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def qualified_kind(self) -> str:
        """Return the kind qualified by its group (``Deployment.apps``), as validation errors name it."""
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def has_status(self) -> bool:
        """Tell whether ``status`` is a subresource (so main-resource writes cannot change it)."""
        return "status" in self.subresources

    @property
    def field_selectors(self) -> tuple[str, ...]:
        """Return every field a field selector may use on this resource."""
        return _COMMON_FIELDS + self.selectable_fields

    def discovery(self) -> list[Obj]:
        """Return this resource's entries in an ``APIResourceList``."""
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        entries: list[Obj] = [
            {
                "name": self.plural,
                "singularName": self.kind.lower(),
                "namespaced": self.namespaced,
                "kind": self.kind,
                "verbs": verbs,
                "shortNames": list(self.short_names),
            }
        ]
        sub_verbs = {"log": ["get"], "exec": ["create", "get"]}
        for sub in self.subresources:
            entries.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": "Scale" if sub == "scale" else self.kind,
                    "verbs": sub_verbs.get(sub, ["get", "patch", "update"]),
                }
            )
        return entries


PODS = ResourceType(
    "",
    "v1",
    "pods",
    "Pod",
    subresources=("status", "log", "exec"),
    short_names=("po",),
    selectable_fields=(
        "spec.nodeName",
        "spec.restartPolicy",
        "spec.schedulerName",
        "spec.serviceAccountName",
        "spec.hostNetwork",
        "status.phase",
        "status.podIP",
        "status.nominatedNodeName",
    ),
)
SERVICES = ResourceType("", "v1", "services", "Service", subresources=("status",), short_names=("svc",))
EVENTS = ResourceType(
    "",
    "v1",
    "events",
    "Event",
    short_names=("ev",),
    selectable_fields=(
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ),
)
CONFIG_MAPS = ResourceType("", "v1", "configmaps", "ConfigMap", short_names=("cm",))
SECRETS = ResourceType("", "v1", "secrets", "Secret", selectable_fields=("type",))
SERVICE_ACCOUNTS = ResourceType("", "v1", "serviceaccounts", "ServiceAccount", short_names=("sa",))
NAMESPACES = ResourceType(
    "",
    "v1",
    "namespaces",
    "Namespace",
    namespaced=False,
    subresources=("status",),
    short_names=("ns",),
    selectable_fields=("status.phase",),
)
DEPLOYMENTS = ResourceType(
    "apps",
    "v1",
    "deployments",
    "Deployment",
    subresources=("status", "scale"),
    short_names=("deploy",),
    tracks_generation=True,
)
REPLICA_SETS = ResourceType(
    "apps",
    "v1",
    "replicasets",
    "ReplicaSet",
    subresources=("status", "scale"),
    short_names=("rs",),
    selectable_fields=("status.replicas",),
    tracks_generation=True,
)

RESOURCES: tuple[ResourceType, ...] = (
    PODS,
    SERVICES,
    EVENTS,
    CONFIG_MAPS,
    SECRETS,
    SERVICE_ACCOUNTS,
    NAMESPACES,
    DEPLOYMENTS,
    REPLICA_SETS,
)

_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {(r.api_version, r.kind): r for r in RESOURCES}
_GROUP_VERSIONS = sorted({(r.group, r.version) for r in RESOURCES if r.group})


def resource_for(group: str, version: str, plural: str) -> ResourceType | None:
    """Return the resource served at ``/api(s)/{group}/{version}/{plural}``, if any."""
    return _BY_PATH.get((group, version, plural))


def resource_for_kind(api_version: str, kind: str) -> ResourceType | None:
    """Return the resource of a manifest's ``apiVersion`` and ``kind``, if served."""
    return _BY_KIND.get((api_version, kind))


def resource_named(name: str) -> ResourceType | None:
    """Return the resource with this plural, kind or short name (``pods``, ``Pod``, ``po``), if any."""
    lowered = name.lower()
    for resource in RESOURCES:
        if lowered in (resource.plural, resource.kind.lower(), resource.qualified, *resource.short_names):
            return resource
    return None


def core_versions(server_address: str) -> Obj:
    """Return the ``/api`` document."""
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


def group_list() -> Obj:
    """Return the ``/apis`` document."""
    groups = []
    for group, version in _GROUP_VERSIONS:
        gv = {"groupVersion": f"{group}/{version}", "version": version}
        groups.append({"name": group, "versions": [gv], "preferredVersion": gv})
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def group_document(group: str) -> Obj | None:
    """Return the ``/apis/{group}`` document, if the group is served."""
    for entry in group_list()["groups"]:
        if entry["name"] == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **entry}
    return None


def resource_list(group: str, version: str) -> Obj | None:
    """Return the ``APIResourceList`` for a group/version, if served."""
    resources = [
        entry for r in RESOURCES if (r.group, r.version) == (group, version) for entry in r.discovery()
    ]
    if not resources:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
