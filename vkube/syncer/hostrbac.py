"""The host RBAC the syncer of one virtual cluster needs, derived from its values.

One pure function, :func:`host_rbac`, used by ``vkube render`` (the ServiceAccount's Role and
ClusterRole in the rendered manifests) and by ``vkube create`` on the embedded host (the
objects it applies before it hands the syncer a confined host credential), so both grant the
same least privilege: everything the syncer does in its host namespace, read access to the few
objects it reads elsewhere, and cluster-scoped grants only for features the values turn on.

Why each grant (what the syncer does on the host, vkube/syncer and vkube/cluster):
- host namespace: the synced kinds (pods, services, endpoints, configmaps, secrets, PVCs,
  ingresses, networkpolicies, serviceaccounts), their token Secrets, events it reads, pods'
  log/exec/attach/portforward (the kubelet proxy), leases, endpointslices it reads, the
  isolation objects (ResourceQuota, LimitRange, NetworkPolicies), the exposed Service;
- ingresses list (cluster-wide, read-only) while ingresses sync: a ``host`` another Ingress
  of the host claims is refused (syncer/ingresses.py);
- nodes get/list/watch (cluster-wide, read-only): the node syncer mirrors the host nodes its
  pods run on in every mode, ``expose`` lists node addresses, a re-created bare pod keeps
  its node; metrics.k8s.io pods in the host namespace (the virtual metrics API), node
  metrics only with real nodes (``sync.nodes.enabled``);
- the host namespace object (get/patch, by name) with isolation: its Pod Security labels;
- ``default/endpoints/kubernetes`` (get, by name) with isolation.networkPolicy: the
  control-plane policy allows exactly the host API's addresses;
- services and endpoints of other host namespaces (get/list/watch) that
  ``mapServices.fromHost`` names;
- storageclasses/persistentvolumes/priorityclasses (written) and ingressclasses (read) when
  their sync is enabled; custom resources only for the kinds ``sync.toHost``/``fromHost`` name;
- with ``sync.resourceclaims``: resourceclaims in the host namespace (written; their status is
  only read: the host's scheduler writes it) and deviceclasses/resourceslices (read).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vkube.syncer.values import Values, parse_values

Obj = dict[str, Any]

_RW = ["create", "delete", "get", "list", "patch", "update", "watch"]
_RO = ["get", "list", "watch"]

_NAMESPACED_RULES: list[Obj] = [
    {"apiGroups": [""], "resources": ["pods", "services", "endpoints", "configmaps", "secrets",
                                      "persistentvolumeclaims", "serviceaccounts", "events",
                                      "resourcequotas", "limitranges"],
     "verbs": [*_RW, "deletecollection"]},
    {"apiGroups": [""], "resources": ["pods/status", "pods/ephemeralcontainers",
                                      "serviceaccounts/token"],
     "verbs": ["create", "get", "patch", "update"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
    # exec/attach/portforward: websocket upgrades are GETs, SPDY/POST are create.
    {"apiGroups": [""], "resources": ["pods/exec", "pods/attach", "pods/portforward"],
     "verbs": ["create", "get"]},
    {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "networkpolicies"],
     "verbs": [*_RW, "deletecollection"]},
    # tenants' slices of selector-less Services go down (syncer/endpointslices.py)
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": [*_RW, "deletecollection"]},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": _RO},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": _RW},
    # the virtual metrics.k8s.io answers from the host's PodMetrics of its pods
    {"apiGroups": ["metrics.k8s.io"], "resources": ["pods"], "verbs": ["get", "list"]},
]


@dataclass
class HostRBAC:
    """``namespaced``: the Role in the host namespace; ``cluster``: the ClusterRole (empty: none);
    ``elsewhere``: read-only Roles in other host namespaces, by namespace."""

    namespaced: list[Obj]
    cluster: list[Obj]
    elsewhere: dict[str, list[Obj]] = field(default_factory=dict)


def guess_plural(kind: str) -> str:
    """apimachinery's ``UnsafeGuessKindToResource``: what a CRD's plural almost always is."""
    low = kind.lower()
    if not low:
        return low
    if low.endswith("s"):
        return low + "es"
    if low.endswith("y") and len(low) > 1 and low[-2] not in "aeiou":
        return low[:-1] + "ies"
    return low + "s"


def host_rbac(values: Values | Mapping[str, Any] | None, host_namespace: str,
              resources: Mapping[str, tuple[str, bool]] | None = None) -> HostRBAC:
    """The rules for ``values``. ``resources`` maps ``KIND.GROUP`` to the host's (plural,
    namespaced) when the caller can ask the host (``create``); otherwise the plural is guessed
    and a ``toHost`` kind is taken as namespaced (``render``, offline)."""
    v = values if isinstance(values, Values) else parse_values(dict(values or {}))
    s = v.sync
    ns_rules = [dict(r) for r in _NAMESPACED_RULES]
    cl: list[Obj] = [{"apiGroups": [""], "resources": ["nodes"], "verbs": _RO}]
    elsewhere: dict[str, list[Obj]] = {}
    if s.nodes.enabled:  # real nodes: their NodeMetrics too (fake nodes sum our own pods)
        cl.append({"apiGroups": ["metrics.k8s.io"], "resources": ["nodes"],
                   "verbs": ["get", "list"]})
    if v.isolation.enabled:
        cl.append({"apiGroups": [""], "resources": ["namespaces"],
                   "resourceNames": [host_namespace], "verbs": ["get", "patch"]})
        if v.isolation.network_policy.enabled and host_namespace != "default":
            elsewhere.setdefault("default", []).append(
                {"apiGroups": [""], "resources": ["endpoints"], "resourceNames": ["kubernetes"],
                 "verbs": ["get"]})
    for m in v.map_services.from_host:
        src_ns = m.from_.split("/", 1)[0] if "/" in m.from_ else "default"
        if src_ns and src_ns != host_namespace:
            rules = elsewhere.setdefault(src_ns, [])
            rule = {"apiGroups": [""], "resources": ["services", "endpoints"], "verbs": _RO}
            if rule not in rules:
                rules.append(rule)
    if s.ingresses.enabled:  # a host name another Ingress on the host claims is refused
        cl.append({"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"],
                   "verbs": ["list"]})
    if s.storageclasses.enabled:
        cl.append({"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": _RW})
    if s.persistentvolumes.enabled:
        cl.append({"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": _RW})
    if s.priorityclasses.enabled:
        cl.append({"apiGroups": ["scheduling.k8s.io"], "resources": ["priorityclasses"],
                   "verbs": _RW})
    if s.ingressclasses.enabled:
        cl.append({"apiGroups": ["networking.k8s.io"], "resources": ["ingressclasses"],
                   "verbs": _RO})
    if s.resourceclaims.enabled:
        ns_rules.append({"apiGroups": ["resource.k8s.io"], "resources": ["resourceclaims"],
                         "verbs": ["create", "delete", "get", "list", "update", "watch"]})
        cl.append({"apiGroups": ["resource.k8s.io"], "resources": ["deviceclasses", "resourceslices"],
                   "verbs": _RO})
    known = dict(resources or {})
    for kind_group, cr in sorted(s.to_host.custom_resources.items()):
        if not cr.enabled:
            continue
        kind, group = kind_group.split(".", 1)
        plural, namespaced = known.get(kind_group) or (guess_plural(kind), True)
        rule = {"apiGroups": [group], "resources": [plural, f"{plural}/status"], "verbs": _RW}
        (ns_rules if namespaced else cl).append(rule)
    for kind_group, cr in sorted(s.from_host.custom_resources.items()):
        if not cr.enabled:
            continue
        kind, group = kind_group.split(".", 1)
        plural = (known.get(kind_group) or (guess_plural(kind), True))[0]
        cl.append({"apiGroups": [group], "resources": [plural], "verbs": _RO})
        cl.append({"apiGroups": ["apiextensions.k8s.io"],
                   "resources": ["customresourcedefinitions"],
                   "resourceNames": [f"{plural}.{group}"], "verbs": ["get"]})
    return HostRBAC(ns_rules, cl, elsewhere)


def manifests(name: str, namespace: str, rbac: HostRBAC, labels: Mapping[str, str]) -> list[Obj]:
    """ServiceAccount ``vkube-NAME``, its Role/RoleBinding in ``namespace``, read-only Roles in
    other namespaces, and a ClusterRole/Binding ``vkube-NAMESPACE.NAME`` when needed."""
    full = f"vkube-{name}"
    subject = [{"kind": "ServiceAccount", "apiGroup": "", "name": full, "namespace": namespace}]
    rbac_v1 = "rbac.authorization.k8s.io/v1"

    def meta(n: str, ns: str | None = namespace) -> Obj:
        m: Obj = {"name": n, "labels": dict(labels)}
        if ns is not None:
            m["namespace"] = ns
        return m

    def pair(kind: str, n: str, ns: str | None, rules: list[Obj]) -> list[Obj]:
        return [{"apiVersion": rbac_v1, "kind": kind, "metadata": meta(n, ns), "rules": rules},
                {"apiVersion": rbac_v1, "kind": f"{kind}Binding", "metadata": meta(n, ns),
                 "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": n},
                 "subjects": subject}]

    objs: list[Obj] = [{"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta(full)},
                       *pair("Role", full, namespace, rbac.namespaced)]
    cname = cluster_role_name(name, namespace)
    for other, rules in sorted(rbac.elsewhere.items()):
        objs += pair("Role", cname, other, rules)
    if rbac.cluster:
        objs += pair("ClusterRole", cname, None, rbac.cluster)
    return objs


def cluster_role_name(name: str, namespace: str) -> str:
    """The ClusterRole/Binding (and the Roles outside the host namespace) of one virtual
    cluster: ``vkube-NAMESPACE.NAME``. Host cluster-scoped names are shared by every cluster of
    the host, whoever created it; both parts are DNS labels, which hold no ``.``, so the name
    is injective (the former ``vkube-NAMESPACE-NAME`` was not: ``b`` in ``vkube-a-x`` and
    ``x-b`` in ``vkube-a`` both got ``vkube-vkube-a-x-b``) and never equals a former one."""
    return f"vkube-{namespace}.{name}"


def legacy_cluster_role_name(name: str, namespace: str) -> str:
    """The name earlier versions gave those objects, looked for only to remove them, and only
    when :func:`owns` proves them this cluster's: another cluster may hold the same name."""
    return f"vkube-{namespace}-{name}"


def owns(obj: Obj, name: str, namespace: str) -> bool:
    """Is the host RBAC object ``obj`` (found under :func:`cluster_role_name` or
    :func:`legacy_cluster_role_name`) provably cluster ``name`` of host namespace
    ``namespace``'s? Its labels name the cluster (vkube labels every object with the
    cluster it made it for, and re-labels one it takes over); its name is the one derived
    from both, and given the cluster's name a former name determines the namespace too
    (``vkube-`` + NAMESPACE + ``-`` + NAME), so a colliding cluster — which has another
    name — never passes. A binding must also grant exactly this cluster's ServiceAccount."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get("vkube.io/vcluster") != name or labels.get("app.kubernetes.io/name") != "vkube":
        return False
    n = meta.get("name")
    if n not in (cluster_role_name(name, namespace), legacy_cluster_role_name(name, namespace)):
        return False
    if "roleRef" in obj or str(obj.get("kind", "")).endswith("Binding"):  # list items: no kind
        subjects = [(s.get("kind"), s.get("name"), s.get("namespace"))
                    for s in obj.get("subjects") or []]
        return (subjects == [("ServiceAccount", f"vkube-{name}", namespace)]
                and (obj.get("roleRef") or {}).get("name") == n)
    return True


def service_account_user(name: str, namespace: str) -> str:
    """The user name RBAC matches a ServiceAccount subject ``vkube-NAME`` by."""
    return f"system:serviceaccount:{namespace}:vkube-{name}"
