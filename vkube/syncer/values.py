"""The values file (``vkube create NAME -f values.yaml``): parsed into frozen dataclasses.

The dataclasses *are* the schema: a field's YAML key is its ``key`` metadata (camelCase) or its
name; its default is the documented default. Unknown keys and wrong types are errors naming the
key path (``sync.nodes.syncAll: unknown key``), never silently ignored.

Defaults: pods, configmaps, secrets (only those used by synced pods, unless ``all``), services,
endpoints, persistentvolumeclaims, ingresses, networkpolicies and events sync; persistentvolumes,
storageclasses, serviceaccounts and priorityclasses do not; nodes are fake (one per host node
running synced pods); host access (what Pod Security baseline forbids, volumes the node
mounts) is rejected.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml
from vkube.api import yamlio

from vkube.api.portforward import parse_target
from vkube.api.quantity import QuantityError, parse_quantity
from vkube.api.validation import dns1123_label, dns1123_subdomain, label_value, qualified_name


class ValuesError(ValueError):
    """A values file that does not fit the schema; the message names the key path."""


def _k(key: str, default: Any = dataclasses.MISSING, doc: str = "",
       check: Callable[[Any], str | None] | str | None = None, **kw: Any) -> Any:
    """A field with its YAML ``key``, its one-line ``doc`` (what ``vkube values`` prints) and,
    for a string, its ``check``: what a given value must look like (a function returning the
    problem, or None) — or, as a string, the name of the cross-key check that looks at it.
    Every string key has one (``tests/syncer/test_values_checked.py``): a value that passes
    here must work once the cluster starts."""
    meta = {"key": key, "doc": doc, "check": check}
    if isinstance(default, (list, dict)) or (dataclasses.is_dataclass(default)):
        val = default
        return field(default_factory=lambda: val, metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


def _on(doc: str) -> Any:
    return _k("enabled", True, doc)


def _off(doc: str) -> Any:
    return _k("enabled", False, doc)


# What one string value must look like: each returns the problem (None: fine). The key path
# is put in front by ``_build``.

def _each(check: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    """A list's check: every item's, naming the item."""
    def run(items: tuple[Any, ...]) -> str | None:
        for i, item in enumerate(items):
            if (problem := check(item)) is not None:
                return f"[{i}]: {problem}"
        return None
    run.__name__ = f"each_{getattr(check, '__name__', 'item')}"
    return run


def _subdomain(text: str) -> str | None:
    """An object name (RuntimeClass, StorageClass, IngressClass)."""
    if text and dns1123_subdomain(text):
        return (f"{text!r} is not a valid name: a lowercase DNS subdomain "
                "(a-z, 0-9, '-', '.', e.g. gvisor)")
    return None


def _name(text: str) -> str | None:
    """An item of a list of names: never empty."""
    return _subdomain(text) if text else f"{text!r} is not a valid name (empty)"


def _dns_label(text: str) -> str | None:
    """A namespace name."""
    if dns1123_label(text):
        return f"{text!r} is not a namespace name: a lowercase DNS label (a-z, 0-9, '-')"
    return None


def _nonempty(text: str) -> str | None:
    return None if text.strip() and text == text.strip() else f"{text!r} is not a name"


def _selector(text: str) -> str | None:
    """``k1=v1,k2=v2``: label keys and values as Kubernetes accepts them in a nodeSelector."""
    for term in filter(None, text.split(",")):
        k, eq, v = term.partition("=")
        k, v = k.strip(), v.strip()
        if not eq or not k:
            return (f"{term!r} is not key=value (accepted: comma-separated label terms, "
                    "e.g. \"disktype=ssd,zone=a\")")
        if qualified_name(k):
            return f"{term!r}: {k!r} is not a label key ({qualified_name(k)[0]})"
        if label_value(v):
            return f"{term!r}: {v!r} is not a label value ({label_value(v)[0]})"
    return None


def _label_key(text: str) -> str | None:
    if text and qualified_name(text):
        return f"{text!r} is not a label key ({qualified_name(text)[0]})"
    return None


def _label_value(text: str) -> str | None:
    if label_value(text):
        return f"{text!r} is not a label value ({label_value(text)[0]})"
    return None


def _quantity(text: str) -> str | None:
    """A positive quantity; ``_build`` takes a YAML number as one too (``cpu: 4``)."""
    if not text:
        return None
    try:
        q = parse_quantity(text)
    except QuantityError:
        q = None
    if q is None or q.value <= 0:
        return f"{text!r} is not a positive quantity (e.g. cpu 4 or 500m, memory 8Gi)"
    return None


_REGISTRY_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]+)?"
                          r"(/[a-z0-9]+([._-]+[a-z0-9]+)*)*/?\Z")


def _registry(text: str) -> str | None:
    """A registry, with a repository path or not, as an image reference starts."""
    if not _REGISTRY_RE.match(text):
        return (f"{text!r} is not a registry (HOST[:PORT][/PATH], e.g. docker.io or "
                "ghcr.io/acme; no scheme)")
    return None


def _level(text: str) -> str | None:
    from vkube.api.podsecurity.policy import parse_level  # (the package is heavy: only here)

    if text and parse_level(text)[1]:
        return f"{text!r}: {parse_level(text)[1]}"
    return None


def _version(text: str) -> str | None:
    from vkube.api.podsecurity.policy import parse_version

    if text and parse_version(text)[1]:
        return f"{text!r}: {parse_version(text)[1]}"
    return None


_API_VERSION_RE = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?v[0-9]+((alpha|beta)[0-9]+)?\Z")
_KIND_RE = re.compile(r"^[A-Za-z][A-Za-z0-9]*\Z")


def _api_version(text: str) -> str | None:
    return None if _API_VERSION_RE.match(text) else \
        f"{text!r} is not an apiVersion (v1, or GROUP/VERSION e.g. cert-manager.io/v1)"


def _kind(text: str) -> str | None:
    return None if not text or _KIND_RE.match(text) else \
        f"{text!r} is not a kind (e.g. Secret, Issuer)"


def _field_path(text: str) -> str | None:
    return None if not text or _PATH_RE.match(text) else \
        f"{text!r} is not a field path (dotted names, e.g. spec.issuerRef.name)"


STORE_FORMS = ("sqlite (the default: a file in the data dir), sqlite:///PATH, "
               "postgres://USER@HOST:PORT/DB or etcd://HOST:PORT[,HOST:PORT...][/PREFIX]")


def _store(text: str) -> str | None:
    """What ``vkube.store.open_store`` opens, checked without opening it (nothing starts
    for a URL it would refuse)."""
    if not text or text == "sqlite" or "://" not in text:
        return None if text.strip() == text else f"{text!r} is not a store URL"
    bad = f"{text!r} is not a store URL: use {STORE_FORMS}"
    try:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in ("etcd", "etcd3"):  # (several endpoints: checked one by one below)
            parts.port  # noqa: B018 - raises on a port out of range
    except ValueError:
        return bad
    if scheme in ("sqlite", "sqlite3"):
        return None if text.split("://", 1)[1].split("?", 1)[0] else bad
    if scheme in ("postgres", "postgresql"):
        return None if parts.hostname and parts.path not in ("", "/") else bad
    if scheme in ("etcd", "etcd3"):
        if "@" in parts.netloc:
            return f"{text!r}: etcd user/password authentication is not supported (use TLS)"
        for item in parts.netloc.split(","):
            host, sep, port = item.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                return f"{text!r}: etcd endpoint {item!r} is not HOST:PORT"
        return None
    return f"{text!r}: unknown store scheme {scheme!r} (use {STORE_FORMS})"


@dataclass(frozen=True)
class Toggle:
    enabled: bool = _on("")


@dataclass(frozen=True)
class Off:
    enabled: bool = _off("")


#: a PersistentVolume's volume sources: each is mounted by the host's node from its network,
#: its files or its cloud account (no PV source is like a pod's inline emptyDir or configMap)
PV_SOURCES = frozenset({
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "csi", "fc",
    "flexVolume", "flocker", "gcePersistentDisk", "glusterfs", "hostPath", "iscsi", "local",
    "nfs", "photonPersistentDisk", "portworxVolume", "quobyte", "rbd", "scaleIO", "storageos",
    "vsphereVolume"})
#: sources only ``sync.pods.hostAccess: allow`` lets through (the node's own files)
PV_NODE_FILE_SOURCES = ("hostPath", "local")


def _pv_source(text: str) -> str | None:
    if text in PV_NODE_FILE_SOURCES:
        return f"{text!r} is the node's own files: only sync.pods.hostAccess: allow passes it"
    return None if text in PV_SOURCES else \
        f"{text!r} is not a PersistentVolume source (one of {', '.join(sorted(PV_SOURCES))})"


@dataclass(frozen=True)
class PersistentVolumesSync:
    enabled: bool = _off("")
    allowed_sources: tuple[str, ...] = _k(
        "allowedSources", (), "volume sources a tenant's PersistentVolumes may use under "
        "hostAccess reject or strip, e.g. [nfs]: the host's node mounts them for the tenant "
        "from any server or cloud volume named (hostPath/local: only hostAccess allow); "
        "empty: none — every tenant PV is refused", check=_each(_pv_source))


def _annotation_key(text: str) -> str | None:
    """An annotation key, or a prefix ending in '/' (every key under it)."""
    from vkube.api.validation import qualified_name

    if text.endswith("/"):
        text = text + "x"
    problems = qualified_name(text)
    return f"{text!r} is not an annotation key or a prefix ending in '/': {problems[0]}" if problems else None


def _annotation_or_field(text: str) -> str | None:
    return None if text == LOAD_BALANCER_IP else _annotation_key(text)


#: the one field ``sync.services.allowedAnnotations`` may name
LOAD_BALANCER_IP = "spec.loadBalancerIP"


@dataclass(frozen=True)
class ServicesSync:
    enabled: bool = _on("services, virtual → host (clusterIP, nodePorts and load balancer "
                        "status back up)")
    allowed_annotations: tuple[str, ...] = _k(
        "allowedAnnotations", (), "annotation keys (or prefixes ending in '/') that claim "
        "something every tenant shares — external-dns names, MetalLB/Cilium/kube-vip "
        "addresses, cloud resource IDs (vkube.api.serviceannotations) — this cluster's "
        "Services may still carry to the host; also lets spec.loadBalancerIP through under "
        "isolation when it lists 'spec.loadBalancerIP'", check=_each(_annotation_or_field))


@dataclass(frozen=True)
class PodsSync:
    enabled: bool = _on("run the virtual cluster's pods on the host")
    host_access: Literal["reject", "strip", "allow"] = _k(
        "hostAccess", "reject", "pods asking for host access (what Pod Security baseline forbids, "
        "volumes the node mounts, a host RuntimeClass): reject them, strip the access, or "
        "allow it (isolation: only reject)")
    port_forward_targets: tuple[str, ...] = _k(
        "portForwardTargets", (), "addresses of this machine (HOST:PORT) that a pod's "
        "vkube.io/port-forward-PORT annotation may name on the embedded host (a local server "
        "backing the pod: webhooks, kubectl port-forward); any other target is refused under "
        "hostAccess reject and removed under strip (not with isolation, nor in shared mode)",
        check="_check_forward_targets")


#: the highest value of a user-defined PriorityClass (above: the host's system classes)
MAX_USER_PRIORITY = 1_000_000_000


@dataclass(frozen=True)
class PriorityClassesSync:
    enabled: bool = _off("")
    max_value: int = _k("maxValue", 0, "the highest value a host copy gets (higher ones are "
                        "capped, with a Warning event): how far this tenant's pods may outrank "
                        "default-priority pods of the host and other tenants; at most 1000000000")
    allow_preemption: bool = _k("allowPreemption", False, "host copies keep the tenant's "
                                "preemptionPolicy (false: Never, so this tenant's pods never "
                                "evict others' to be scheduled)")


@dataclass(frozen=True)
class ObjectsSync:
    enabled: bool = _on("")
    all: bool = _k("all", False, "sync every object, not only those used by synced pods")


@dataclass(frozen=True)
class NodesSync:
    enabled: bool = _k("enabled", False, "show the real host nodes (labels, capacity) instead "
                       "of fake ones")
    sync_all_nodes: bool = _k("syncAllNodes", False, "show every (selected) host node, not only "
                              "those running this cluster's pods")
    node_selector: str = _k("nodeSelector", "", "\"k1=v1,k2=v2\": only these host nodes are "
                            "shown, and pods run only on them", check=_selector)
    enable_scheduler: bool = _k("enableScheduler", False, "run a scheduler in the virtual "
                                "cluster over its synced nodes")
    clear_image_status: bool = _k("clearImageStatus", True, "hide the host nodes' image lists")

    def selector(self) -> dict[str, str]:
        """``"k1=v1,k2=v2"`` → ``{k1: v1, k2: v2}``."""
        out: dict[str, str] = {}
        for term in filter(None, (t.strip() for t in self.node_selector.split(","))):
            k, _, v = term.partition("=")
            out[k.strip()] = v.strip()
        return out


@dataclass(frozen=True)
class Reference:
    """The object a patched field names (as vcluster's ``patches[].reference``)."""

    api_version: str = _k("apiVersion", "v1", "the referenced object's apiVersion",
                          check=_api_version)
    kind: str = _k("kind", "", "its kind (Secret, ConfigMap, Issuer, …)", check=_kind)
    name_path: str = _k("namePath", "", "when path is an object: its field holding the name",
                        check=_field_path)
    namespace_path: str = _k("namespacePath", "", "when path is an object: its field holding the "
                             "namespace (rewritten to the host namespace)", check=_field_path)


@dataclass(frozen=True)
class Patch:
    path: str = _k("path", "", "the field holding a reference: dotted, [*] for every item of a "
                   "list (spec.secretName, spec.issuerRef, spec.secrets[*].name)",
                   check="_check_custom_resources")
    reference: Reference = _k("reference", Reference(), "what the field refers to; its name is "
                              "translated to the referenced object's host name")


@dataclass(frozen=True)
class ToHostCustomResource:
    enabled: bool = _on("")
    patches: tuple[Patch, ...] = _k("patches", (), "fields holding references to other objects, "
                                    "translated on the way to the host")


@dataclass(frozen=True)
class FromHostMappings:
    by_name: dict[str, str] = _k("byName", {}, "namespaced kinds: \"HOSTNS/*\": \"VIRTUALNS/*\" (every "
                                 "object) or \"HOSTNS/NAME\": \"VIRTUALNS/NAME\" (one)",
                                 check="_check_custom_resources")


@dataclass(frozen=True)
class FromHostCustomResource:
    enabled: bool = _on("")
    mappings: FromHostMappings = _k("mappings", FromHostMappings(), "where host objects of a "
                                    "namespaced kind appear in the virtual cluster")


@dataclass(frozen=True)
class ToHost:
    """``sync.toHost.customResources: {"KIND.GROUP": {enabled: true, patches: [...]}}``: custom
    resources copied down to the host (the CRD must be installed there too) with the references
    named in ``patches`` translated, status copied back up."""

    custom_resources: dict[str, ToHostCustomResource] = _k(
        "customResources", {}, "KIND.GROUP: {enabled: true, patches: [{path, reference}]} per kind")


@dataclass(frozen=True)
class FromHost:
    """``sync.fromHost.customResources: {"KIND.GROUP": {enabled: true}}``: host custom
    resources (and their CRD) shown read-only inside the virtual cluster; namespaced kinds
    where ``mappings.byName`` puts them."""

    custom_resources: dict[str, FromHostCustomResource] = _k(
        "customResources", {}, "KIND.GROUP: {enabled: true, mappings: {byName: {...}}} per kind")


@dataclass(frozen=True)
class Sync:
    pods: PodsSync = _k("pods", PodsSync(), "pods, virtual → host")
    configmaps: ObjectsSync = _k("configmaps", ObjectsSync(), "configmaps, virtual → host")
    secrets: ObjectsSync = _k("secrets", ObjectsSync(), "secrets, virtual → host")
    services: ServicesSync = _k("services", ServicesSync(), "services, virtual → host "
                                "(clusterIP, nodePorts and load balancer status back up)")
    endpoints: Toggle = _k("endpoints", Toggle(), "endpoints of selector-less services")
    persistentvolumeclaims: Toggle = _k("persistentvolumeclaims", Toggle(),
                                        "persistentvolumeclaims, virtual → host (status back up)")
    persistentvolumes: PersistentVolumesSync = _k(
        "persistentvolumes", PersistentVolumesSync(), "persistentvolumes both ways: the "
                                "tenant's go down, the host's bound to synced claims come up "
                                "(off: claims still bind, no PVs are shown)")
    storageclasses: Off = _k("storageclasses", Off(), "storageclasses, virtual → host")
    ingresses: Toggle = _k("ingresses", Toggle(), "ingresses, virtual → host")
    ingressclasses: Off = _k("ingressclasses", Off(), "the host's ingressclasses, host → virtual "
                             "(read-only copies; --in-cluster: a ClusterRole to read them)")
    networkpolicies: Toggle = _k("networkpolicies", Toggle(), "networkpolicies, virtual → host")
    serviceaccounts: Off = _k("serviceaccounts", Off(), "serviceaccounts, virtual → host")
    priorityclasses: PriorityClassesSync = _k("priorityclasses", PriorityClassesSync(),
                                              "priorityclasses, virtual → host")
    events: Toggle = _k("events", Toggle(), "events of synced objects, host → virtual")
    resourceclaims: Off = _k("resourceclaims", Off(), "dynamic resource allocation: "
                             "resourceclaims (those made from templates too) virtual → host, "
                             "allocation back up; the host's deviceclasses and resourceslices "
                             "shown read-only (not with sync.nodes.enableScheduler)")
    nodes: NodesSync = _k("nodes", NodesSync(), "nodes, host → virtual")
    to_host: ToHost = _k("toHost", ToHost(), "custom resources (KIND.GROUP), virtual → host, status back up")
    from_host: FromHost = _k("fromHost", FromHost(), "cluster-scoped host custom resources (KIND.GROUP), shown read-only")


@dataclass(frozen=True)
class ServiceMapping:
    from_: str = _k("from", doc="the source Service as NAMESPACE/NAME", check="_check_mappings")
    to: str = _k("to", doc="the Service to make", check="_check_mappings")


@dataclass(frozen=True)
class MapServices:
    from_host: tuple[ServiceMapping, ...] = _k(
        "fromHost", (), "host Services shown in the virtual cluster: "
        "[{from: HOSTNS/NAME, to: VIRTUALNS/NAME}]")
    from_virtual: tuple[ServiceMapping, ...] = _k(
        "fromVirtual", (), "virtual Services published in the host namespace: "
        "[{from: VIRTUALNS/NAME, to: NAME}]")


@dataclass(frozen=True)
class Quota:
    enabled: bool = _on("")
    cpu: str = _k("cpu", "", "CPU figure (vkube create --cpu): limits.cpu; requests.cpu is half "
                  "(default: limits 20, requests 10)", check=_quantity)
    memory: str = _k("memory", "", "memory figure (vkube create --memory): limits.memory; "
                     "requests.memory is half (default: limits 40Gi, requests 20Gi)",
                     check=_quantity)


@dataclass(frozen=True)
class Toleration:
    key: str = _k("key", "", "taint key ('' with operator Exists: every taint)",
                  check=_label_key)
    operator: Literal["Equal", "Exists"] = _k("operator", "Equal", "")
    value: str = _k("value", "", "", check=_label_value)
    effect: Literal["", "NoSchedule", "PreferNoSchedule", "NoExecute"] = _k(
        "effect", "", "'' matches every effect")


@dataclass(frozen=True)
class Isolation:
    enabled: bool = _k("enabled", False, "guard rails in the host namespace (what --isolate "
                       "turns on); host access is then always rejected")
    pod_security_standard: Literal["privileged", "baseline", "restricted"] = _k(
        "podSecurityStandard", "baseline", "Pod Security level the syncer enforces on pods "
        "(a violating pod is not synced) and labels the host namespace with: baseline or "
        "restricted (privileged is refused with isolation.enabled, which always rejects host "
        "access)")
    resource_quota: Quota = _k("resourceQuota", Quota(), "a ResourceQuota on the host namespace")
    limit_range: Toggle = _k("limitRange", Toggle(), "a LimitRange on the host namespace")
    network_policy: Toggle = _k("networkPolicy", Toggle(), "NetworkPolicies: the control plane "
                                "reaches the host API and DNS; workloads reach the control "
                                "plane, DNS, each other and public addresses")
    runtime_class_name: str = _k("runtimeClassName", "", "forced on every synced pod (e.g. a "
                                 "sandboxed runtime: gvisor, kata); the tenant's is overridden",
                                 check=_subdomain)
    node_selector: str = _k("nodeSelector", "", "\"k1=v1,k2=v2\": the tenant's pods run only "
                            "on these host nodes, and only they are visible to it",
                            check=_selector)
    tolerations: tuple[Toleration, ...] = _k("tolerations", (), "added to every synced pod "
                                             "(to run on dedicated, tainted nodes)")
    allowed_registries: tuple[str, ...] = _k(
        "allowedRegistries", (), "image registries pods may use, e.g. [docker.io, ghcr.io/acme] "
        "(empty: any); other images are refused", check=_each(_registry))
    allowed_storage_classes: tuple[str, ...] = _k(
        "allowedStorageClasses", (), "storage classes claims may use (empty: any)",
        check=_each(_name))
    allowed_ingress_classes: tuple[str, ...] = _k(
        "allowedIngressClasses", (), "ingress classes ingresses may use (empty: any)",
        check=_each(_name))


@dataclass(frozen=True)
class PodSecurityDefaults:
    enforce: str = _k("enforce", "", "level for namespaces without the enforce label (default "
                      "privileged; privileged, baseline or restricted)", check=_level)
    enforce_version: str = _k("enforce-version", "", "its version (default latest; or v1.N)",
                              check=_version)
    audit: str = _k("audit", "", "audit level for namespaces without the label", check=_level)
    audit_version: str = _k("audit-version", "", "its version", check=_version)
    warn: str = _k("warn", "", "warn level for namespaces without the label", check=_level)
    warn_version: str = _k("warn-version", "", "its version", check=_version)


@dataclass(frozen=True)
class PodSecurityExemptions:
    usernames: tuple[str, ...] = _k("usernames", (), "requests of these users are not checked",
                                    check=_each(_nonempty))
    namespaces: tuple[str, ...] = _k("namespaces", (), "pods in these namespaces are not checked",
                                     check=_each(_dns_label))
    runtime_classes: tuple[str, ...] = _k("runtimeClasses", (), "pods of these runtime classes "
                                          "are not checked", check=_each(_name))


@dataclass(frozen=True)
class PodSecurityConfig:
    defaults: PodSecurityDefaults = _k("defaults", PodSecurityDefaults(), "cluster-wide defaults")
    exemptions: PodSecurityExemptions = _k("exemptions", PodSecurityExemptions(), "exempt requests")

    def document(self) -> dict[str, Any] | None:
        """The PodSecurityConfiguration these values stand for (None: nothing set)."""
        d = {k: v for k, v in (("enforce", self.defaults.enforce), ("enforce-version", self.defaults.enforce_version),
                               ("audit", self.defaults.audit), ("audit-version", self.defaults.audit_version),
                               ("warn", self.defaults.warn), ("warn-version", self.defaults.warn_version)) if v}
        ex = {k: list(v) for k, v in (("usernames", self.exemptions.usernames),
                                      ("namespaces", self.exemptions.namespaces),
                                      ("runtimeClasses", self.exemptions.runtime_classes)) if v}
        if not d and not ex:
            return None
        return {"apiVersion": "pod-security.admission.config.k8s.io/v1", "kind": "PodSecurityConfiguration",
                "defaults": d, "exemptions": ex}


@dataclass(frozen=True)
class Watches:
    max_per_cluster: int = _k("maxPerCluster", 300, "shared mode: watches this cluster's clients "
                              "may have open at once, and, separately, held while it sleeps; "
                              "more are refused with 429 and Retry-After (as kube-apiserver's "
                              "max-in-flight)")
    max_per_credential: int = _k("maxPerCredential", 150, "shared mode: of those, how many one "
                                 "user may have (by username and uid: every token and client "
                                 "certificate of the user together; anonymous requests count as "
                                 "one user)")


@dataclass(frozen=True)
class Streams:
    max_per_cluster: int = _k("maxPerCluster", 100, "shared mode: exec, attach, port-forward and "
                              "followed-log streams this cluster's clients may have open at once; "
                              "more are refused with 429 and Retry-After")
    max_per_user: int = _k("maxPerUser", 50, "shared mode: of those, how many one user (username "
                           "and uid) may have")


@dataclass(frozen=True)
class Connections:
    max_per_cluster: int = _k("maxPerCluster", 512, "shared mode: TCP connections to the shared "
                              "listener whose TLS server name is this cluster (and to its "
                              "in-cluster port); more are closed after the handshake")


@dataclass(frozen=True)
class ControlPlane:
    store: str = _k("store", "", "where the API server keeps its objects: sqlite (default, in "
                    "the data dir), postgres://USER@HOST:PORT/DB or "
                    "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]", check=_store)
    pod_security: PodSecurityConfig = _k(
        "podSecurity", PodSecurityConfig(), "the API server's PodSecurity admission configuration "
        "(kube-apiserver's PodSecurityConfiguration: defaults and exemptions)")
    mode: Literal["dedicated", "shared"] = _k(
        "mode", "dedicated", "dedicated: a process of its own; shared: one of many clusters in "
        "the shared server process, at https://HOST:PORT/clusters/NAME (what --shared turns on)")
    watches: Watches = _k("watches", Watches(), "caps on the watches of this cluster's clients "
                          "(shared mode: one process serves every cluster)")
    streams: Streams = _k("streams", Streams(), "caps on the exec/attach/port-forward/log -f "
                          "streams of this cluster's clients (shared mode)")
    connections: Connections = _k("connections", Connections(), "cap on this cluster's "
                                  "connections to the shared listener (shared mode)")


@dataclass(frozen=True)
class Sleep:
    after_inactivity: str = _k(
        "afterInactivity", "", "shared mode: after this long with no API request and no "
        "changing workload (e.g. 30m, 1h30m), host workloads go to zero and the cluster's "
        "memory is freed; the first request wakes it (empty: never)", check="parse_values")


@dataclass(frozen=True)
class Values:
    sync: Sync = _k("sync", Sync(), "what is synced between the virtual cluster and the host")
    map_services: MapServices = _k("mapServices", MapServices(),
                                   "Services mapped between host and virtual cluster")
    isolation: Isolation = _k("isolation", Isolation(), "isolation of the host namespace")
    expose: bool = _k("expose", False, "make the API server reachable from outside the host "
                      "namespace: a host Service of type LoadBalancer (NodePort without a load "
                      "balancer); the kubeconfig uses its address (what --expose turns on)")
    enable_ha: bool = _k("enableHA", False, "several API server replicas on one shared store "
                         "(controlPlane.store postgres:// or etcd://); controllers and syncer run "
                         "on the replica holding the leader Lease")
    replicas: int = _k("replicas", 1, "API server replicas (more than 1 needs enableHA)")
    control_plane: ControlPlane = _k("controlPlane", ControlPlane(),
                                     "the virtual cluster's control plane")
    sleep: Sleep = _k("sleep", Sleep(), "sleep when idle (shared mode)")

    @property
    def sleep_after(self) -> float | None:
        """``sleep.afterInactivity`` in seconds (None: never)."""
        return parse_duration(self.sleep.after_inactivity) if self.sleep.after_inactivity else None

    @property
    def host_access(self) -> str:
        """Isolation always rejects host access, whatever ``sync.pods.hostAccess`` says."""
        return "reject" if self.isolation.enabled else self.sync.pods.host_access

    def node_selector(self) -> dict[str, str]:
        """Where synced pods may run and which host nodes are shown: ``sync.nodes.nodeSelector``
        and ``isolation.nodeSelector`` together (isolation wins on a shared key)."""
        out = _selector(self.sync.nodes.node_selector)
        out.update(_selector(self.isolation.node_selector))
        return out


def _selector(text: str) -> dict[str, str]:
    """``"k1=v1,k2=v2"`` → ``{k1: v1, k2: v2}``."""
    out: dict[str, str] = {}
    for term in filter(None, (t.strip() for t in text.split(","))):
        k, _, v = term.partition("=")
        out[k.strip()] = v.strip()
    return out


def _key_of(f: dataclasses.Field[Any]) -> str:
    return f.metadata.get("key", f.name)


def _convert(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, path)
    if origin is Literal:
        if value not in typing.get_args(tp):
            raise ValuesError(f"{path}: must be one of {', '.join(map(str, typing.get_args(tp)))}"
                              f", not {value!r}")
        return value
    if origin is dict:
        inner = typing.get_args(tp)[1]
        if not isinstance(value, dict):
            raise ValuesError(f"{path}: must be a mapping")
        return {str(k): _convert(inner, v, f"{path}.{k}") for k, v in value.items()}
    if origin is tuple:
        inner = typing.get_args(tp)[0]
        if not isinstance(value, list):
            raise ValuesError(f"{path}: must be a list")
        return tuple(_convert(inner, v, f"{path}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ValuesError(f"{path}: must be true or false, not {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValuesError(f"{path}: must be an integer, not {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValuesError(f"{path}: must be a string, not {value!r}")
        return value
    raise ValuesError(f"{path}: unsupported type")  # pragma: no cover


def _build(cls: Any, data: Any, path: str) -> Any:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValuesError(f"{path or 'values'}: must be a mapping, not {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {_key_of(f): f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            where = f"{path}.{key}" if path else str(key)
            raise ValuesError(f"{where}: unknown key (known: {', '.join(sorted(fields))})")
    kwargs = {}
    for key, f in fields.items():
        where = f"{path}.{key}" if path else key
        if key in data:
            value = data[key]
            check = f.metadata.get("check")
            if check is _quantity and isinstance(value, (int, float)) and \
                    not isinstance(value, bool):
                value = str(value)  # Kubernetes takes a number as a quantity (cpu: 4)
            elif check is _quantity and not isinstance(value, str):
                raise ValuesError(f"{where}: must be a quantity (e.g. 4, 500m, 8Gi), "
                                  f"not {value!r}")
            kwargs[f.name] = _convert(hints[f.name], value, where)
            if callable(check) and (problem := check(kwargs[f.name])) is not None:
                raise ValuesError(f"{where}{'' if problem.startswith('[') else ': '}{problem}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ValuesError(f"{where}: required")
    return cls(**kwargs)


_NAME = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_NS_NAME_RE = re.compile(rf"^{_NAME}/{_NAME}\Z")
_NAME_RE = re.compile(rf"^{_NAME}\Z")
_KIND_GROUP_RE = re.compile(rf"^[A-Za-z][A-Za-z0-9]*\.{_NAME}(\.{_NAME})+\Z")

#: keys that are accepted only where they can hold: key → why and what to do instead (a value
#: that is accepted must do what it says)
UNSUPPORTED = {
    "enableHA": "needs a shared store: set controlPlane.store to postgres://USER@HOST:PORT/DB "
                "or etcd://HOST:PORT — replicas on SQLite would each keep their own copy of "
                "the cluster (split brain)",
    "replicas": "more than one API server replica needs enableHA: true (and a shared "
                "controlPlane.store)",
}


def shared_store(url: str | None) -> bool:
    """Can several API server processes serve this store at once (PostgreSQL, etcd)? SQLite
    cannot: each replica would keep its own copy of the cluster — split brain."""
    scheme = (url or "sqlite").split(":", 1)[0].lower()
    return "://" in (url or "") and scheme in ("postgres", "postgresql", "etcd", "etcd3")


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(h|m|s)")


def parse_duration(text: str) -> float:
    """Go's ``time.ParseDuration`` for hours, minutes and seconds (``30m``, ``1h30m``,
    ``45s``), in seconds; ``ValueError`` otherwise."""
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * {"h": 3600, "m": 60, "s": 1}[m.group(2)]
        pos = m.end()
    if not text or pos != len(text):
        raise ValueError(f"{text!r} is not a duration (e.g. 30m, 1h30m, 45s)")
    return total


def _check_ha(values: Values) -> None:
    if values.replicas < 1:
        raise ValuesError(f"replicas: must be at least 1, not {values.replicas}")
    if values.replicas > 1 and not values.enable_ha:
        raise ValuesError(f"replicas: {UNSUPPORTED['replicas']}")
    if values.enable_ha and not shared_store(values.control_plane.store):
        raise ValuesError(f"enableHA: {UNSUPPORTED['enableHA']}")
    if values.enable_ha and values.replicas == 1:
        raise ValuesError("enableHA: true with replicas: 1 runs a single API server (no "
                          "replica takes over when it stops) — set replicas: 2 or more (3 "
                          "outlives one lost replica), or remove enableHA")


_PATH_RE = re.compile(r"^[A-Za-z_][\w-]*(\[\*\])?(\.[A-Za-z_][\w-]*(\[\*\])?)*\Z")
_FROM_HOST_KEY_RE = re.compile(rf"^{_NAME}/(\*|{_NAME})\Z")


def _check_custom_resources(values: Values) -> None:
    """Patches name a field and a kind; mappings name both sides, ``*`` only to ``*``."""
    for kind_group, cr in values.sync.to_host.custom_resources.items():
        for i, patch in enumerate(cr.patches):
            where = f"sync.toHost.customResources.{kind_group}.patches[{i}]"
            if not _PATH_RE.match(patch.path):
                raise ValuesError(f"{where}.path: {patch.path!r} is not a field path (accepted: dotted "
                                  "names, [*] for every list item, e.g. spec.secrets[*].name)")
            if not patch.reference.kind:
                raise ValuesError(f"{where}.reference.kind: required (the kind of the referenced object)")
            if patch.reference.namespace_path and not patch.reference.name_path:
                raise ValuesError(f"{where}.reference.namePath: required with namespacePath")
    for kind_group, cr in values.sync.from_host.custom_resources.items():
        for key, target in cr.mappings.by_name.items():
            where = f"sync.fromHost.customResources.{kind_group}.mappings.byName.{key}"
            if not _FROM_HOST_KEY_RE.match(key) or not _FROM_HOST_KEY_RE.match(target):
                raise ValuesError(f"{where}: map HOSTNAMESPACE/* to VIRTUALNAMESPACE/* or "
                                  "HOSTNAMESPACE/NAME to VIRTUALNAMESPACE/NAME")
            if key.endswith("/*") != target.endswith("/*"):
                raise ValuesError(f"{where}: {key!r} → {target!r}: * maps only to *")


def _check_mappings(values: Values) -> None:
    """Both sides named exactly: a mapping that silently picked a default namespace would map
    nothing the user meant."""
    rules = (("fromHost", values.map_services.from_host,
              (_NS_NAME_RE, "HOSTNAMESPACE/NAME"), (_NS_NAME_RE, "VIRTUALNAMESPACE/NAME")),
             ("fromVirtual", values.map_services.from_virtual,
              (_NS_NAME_RE, "VIRTUALNAMESPACE/NAME"),
              (_NAME_RE, "NAME (a Service in the virtual cluster's host namespace)")))
    for side, items, from_rule, to_rule in rules:
        seen: dict[str, int] = {}
        for i, m in enumerate(items):
            for attr, key, (rx, form) in (("from_", "from", from_rule), ("to", "to", to_rule)):
                value = getattr(m, attr)
                if not rx.match(value):
                    raise ValuesError(f"mapServices.{side}[{i}].{key}: must be {form} "
                                      f"(lowercase DNS names), not {value!r}")
            if m.to in seen:
                raise ValuesError(f"mapServices.{side}[{i}].to: {m.to!r} is already the target "
                                  f"of mapServices.{side}[{seen[m.to]}]; each target once")
            seen[m.to] = i


def _check_isolation(iso: Isolation) -> None:
    for i, t in enumerate(iso.tolerations):
        if t.operator == "Exists" and t.value:
            raise ValuesError(f"isolation.tolerations[{i}].value: must be empty when "
                              "operator is Exists")
        if t.operator == "Equal" and not t.key:
            raise ValuesError(f"isolation.tolerations[{i}].key: required when operator is "
                              "Equal")


def _check_forward_targets(values: Values) -> None:
    targets = values.sync.pods.port_forward_targets
    for i, text in enumerate(targets):
        target = parse_target(text)
        if target is None or not 0 < target[1] < 65536 or not _forward_host(target[0]):
            raise ValuesError(f"sync.pods.portForwardTargets[{i}]: {text!r} is not HOST:PORT "
                              "(an IP address or localhost, and a port 1-65535; e.g. "
                              "127.0.0.1:8443)")
    if targets and values.isolation.enabled:
        raise ValuesError("sync.pods.portForwardTargets cannot hold with isolation.enabled "
                          "(an isolated tenant's pods never reach an address of this machine) — "
                          "remove sync.pods.portForwardTargets, or set isolation.enabled: false")
    if targets and values.control_plane.mode == "shared":
        raise ValuesError("sync.pods.portForwardTargets cannot hold with controlPlane.mode: "
                          "shared (the shared server's tenants never reach an address of this "
                          "machine) — remove sync.pods.portForwardTargets, or drop --shared")


def _forward_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def port_forward_targets(values: Values) -> frozenset[tuple[str, int]]:
    """The published targets, as the kubelet dials them."""
    return frozenset(t for text in values.sync.pods.port_forward_targets
                     if (t := parse_target(text)) is not None)


def _check_shared_caps(cp: ControlPlane) -> None:
    """``controlPlane.watches``/``streams``/``connections``: in range, and shared mode only."""
    for section, what, default, keys in (
            ("watches", "watches", Watches(), ("maxPerCluster", "maxPerCredential")),
            ("streams", "streams", Streams(), ("maxPerCluster", "maxPerUser")),
            ("connections", "connections", Connections(), ("maxPerCluster",))):
        caps = getattr(cp, section)
        for key, f in zip(keys, dataclasses.fields(caps)):
            n = getattr(caps, f.name)
            if not 1 <= n <= 1_000_000:
                raise ValuesError(f"controlPlane.{section}.{key}: {n}: must be between 1 and 1000000")
        if caps != default and cp.mode != "shared":
            raise ValuesError(f"controlPlane.{section}: caps {what} in shared mode only (one "
                              "process for every cluster); set controlPlane.mode: shared (or "
                              f"`vkube create --shared`), or drop controlPlane.{section}")


def parse_values(data: Any) -> Values:
    """Validate a loaded YAML document into ``Values``."""
    values: Values = _build(Values, data, "")
    _check_mappings(values)
    _check_isolation(values.isolation)
    if values.isolation.enabled and values.isolation.pod_security_standard == "privileged":
        raise ValuesError("isolation.podSecurityStandard: 'privileged' cannot hold with "
                          "isolation.enabled (isolation always rejects host access, which "
                          "privileged would allow) — use baseline or restricted, or set "
                          "isolation.enabled: false")
    if values.isolation.enabled and values.sync.pods.host_access != "reject":
        raise ValuesError(f"sync.pods.hostAccess: {values.sync.pods.host_access!r} cannot hold "
                          "with isolation.enabled (isolation always rejects host access) — "
                          "remove sync.pods.hostAccess, or set isolation.enabled: false")
    _check_ha(values)
    _check_forward_targets(values)
    if not -2**31 <= values.sync.priorityclasses.max_value <= MAX_USER_PRIORITY:
        raise ValuesError(f"sync.priorityclasses.maxValue: {values.sync.priorityclasses.max_value}"
                          f" is out of range (accepted: -2147483648 to {MAX_USER_PRIORITY}; "
                          "higher values are the host's system classes)")
    if values.sync.resourceclaims.enabled and values.sync.nodes.enable_scheduler:
        raise ValuesError("sync.resourceclaims.enabled: the host's scheduler allocates devices, "
                          "so it cannot hold with sync.nodes.enableScheduler (a virtual "
                          "scheduler) — set one of them to false")
    if values.control_plane.mode == "shared" and (values.enable_ha or values.replicas > 1):
        raise ValuesError("controlPlane.mode: shared serves each cluster once, in the shared "
                          "server process; enableHA and replicas need dedicated mode — drop "
                          "--shared (or controlPlane.mode), or enableHA/replicas")
    _check_shared_caps(values.control_plane)
    if values.sleep.after_inactivity:
        try:
            after = parse_duration(values.sleep.after_inactivity)
        except ValueError as e:
            raise ValuesError(f"sleep.afterInactivity: {e}") from None
        if after <= 0:
            raise ValuesError("sleep.afterInactivity: must be longer than 0s (empty: never)")
        if values.control_plane.mode != "shared":
            raise ValuesError("sleep.afterInactivity: sleep needs controlPlane.mode: shared "
                              "(or `vkube create --shared`); a dedicated cluster can be paused "
                              "with `vkube pause`")
    for side, kinds in (("toHost", values.sync.to_host.custom_resources),
                        ("fromHost", values.sync.from_host.custom_resources)):
        for key in kinds:
            if not _KIND_GROUP_RE.match(key):
                raise ValuesError(f"sync.{side}.customResources.{key}: must be KIND.GROUP "
                                  f"(for example Certificate.cert-manager.io)")
    _check_custom_resources(values)
    both = set(values.sync.to_host.custom_resources) & set(values.sync.from_host.custom_resources)
    if both:
        raise ValuesError(f"sync.fromHost.customResources.{sorted(both)[0]}: also in "
                          "sync.toHost.customResources; a kind syncs one way only")
    return values


def load_values(text: str) -> Values:
    """Parse values YAML text (empty text gives the defaults)."""
    try:
        data = yamlio.load(text)
    except yaml.YAMLError as e:
        raise ValuesError(f"values: not valid YAML: {e}") from e
    return parse_values(data)


def dump_values(values: Values) -> dict[str, Any]:
    """The full values document (defaults filled in), camelCase keys: for display/storage."""
    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {_key_of(f): conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple):
            return [conv(x) for x in v]
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        return v
    return conv(values)


def schema_yaml() -> str:
    """The whole schema as commented YAML: every key at its default with its one-line doc
    (``vkube values``); it parses back to the defaults."""
    lines = ["# vkube values: every key, at its default. Use with `vkube create NAME -f FILE`;",
             "# `vkube create NAME --upgrade -f FILE` changes a running virtual cluster."]

    def scalar(v: Any) -> str:
        text = yamlio.dump(v, default_flow_style=True, width=1 << 16).strip()
        return text[:-4].rstrip() if text.endswith("\n...") else text

    def walk(cls: Any, indent: str) -> None:
        hints = typing.get_type_hints(cls)
        default = cls() if all(f.default is not dataclasses.MISSING or
                               f.default_factory is not dataclasses.MISSING
                               for f in dataclasses.fields(cls)) else None
        for f in dataclasses.fields(cls):
            doc = f.metadata.get("doc", "")
            tp = hints[f.name]
            if typing.get_origin(tp) is Literal:
                doc += f" (one of: {', '.join(map(str, typing.get_args(tp)))})"
            if doc:
                lines.append(f"{indent}# {doc}")
            if dataclasses.is_dataclass(tp):
                lines.append(f"{indent}{_key_of(f)}:")
                walk(tp, indent + "  ")
                continue
            value = getattr(default, f.name) if default is not None else None
            if typing.get_origin(tp) is tuple:
                lines.append(f"{indent}{_key_of(f)}: []")
                continue
            lines.append(f"{indent}{_key_of(f)}: {scalar(value)}")

    walk(Values, "")
    return "\n".join(lines) + "\n"
