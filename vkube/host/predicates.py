"""Scheduler building blocks as pure functions over plain dicts: selectors, tolerations,
per-pod/per-node digests. Kept free of I/O so every rule is unit-testable on its own."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vkube.api.quantity import parse_quantity
from vkube.api.meta import Obj

# Defaults the real scheduler uses for pods that request nothing, so that "best effort" pods
# still spread (pkg/scheduler/util.DefaultMilliCPURequest / DefaultMemoryRequest).
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024

HOSTNAME_KEY = "kubernetes.io/hostname"
ZONE_KEY = "topology.kubernetes.io/zone"


def resource_value(name: str, value: Any) -> int:
    """The integer the scheduler compares: millicores for cpu (rounded up), whole units for
    everything else. Raises ValueError (QuantityError) for a malformed quantity."""
    q = parse_quantity(value)
    return q.milli_value() if name == "cpu" else q.int_value()


# --- selectors ------------------------------------------------------------------------------

def match_label_selector(selector: Obj | None, labels: dict[str, str]) -> bool:
    """metav1.LabelSelector semantics: None matches nothing, ``{}`` matches everything."""
    if selector is None:
        return False
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or ():
        if not _match_expr(expr, labels.get(expr.get("key", "")), expr.get("key", "") in labels):
            return False
    return True


def _match_expr(expr: Obj, value: str | None, present: bool) -> bool:
    op = expr.get("operator")
    values = expr.get("values") or []
    if op == "In":
        return present and value in values
    if op == "NotIn":
        return not present or value not in values
    if op == "Exists":
        return present
    if op == "DoesNotExist":
        return not present
    if op in ("Gt", "Lt"):
        if not present or len(values) != 1:
            return False
        try:
            have, want = int(value or ""), int(values[0])
        except ValueError:
            return False
        return have > want if op == "Gt" else have < want
    return False


def match_node_selector_term(term: Obj, node: Obj) -> bool:
    """One NodeSelectorTerm: all matchExpressions (labels) and matchFields (metadata.name)."""
    exprs = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not exprs and not fields:
        return False  # an empty term matches no objects
    labels = node.get("metadata", {}).get("labels") or {}
    for expr in exprs:
        key = expr.get("key", "")
        if not _match_expr(expr, labels.get(key), key in labels):
            return False
    name = node.get("metadata", {}).get("name", "")
    for expr in fields:
        if expr.get("key") != "metadata.name":
            return False
        if not _match_expr(expr, name, True):
            return False
    return True


def match_node_selector(selector: Obj | None, node: Obj) -> bool:
    """A NodeSelector: the terms are ORed."""
    if selector is None:
        return True
    return any(match_node_selector_term(t, node) for t in selector.get("nodeSelectorTerms") or ())


def tolerates(toleration: Obj, taint: Obj) -> bool:
    """core/v1 Toleration.ToleratesTaint."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    op = toleration.get("operator") or "Equal"
    if op == "Exists":
        return True
    if not key:
        return False
    return (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taint(taints: list[Obj], tolerations: list[Obj], effects: tuple[str, ...]) -> Obj | None:
    """The first taint with one of ``effects`` that no toleration tolerates, else None."""
    for taint in taints:
        if taint.get("effect") not in effects:
            continue
        if not any(tolerates(t, taint) for t in tolerations):
            return taint
    return None


# --- digests ---------------------------------------------------------------------------------

def pod_requests(spec: Obj) -> dict[str, int]:
    """Effective requests: max(sum of containers, largest init container) plus overhead.
    A limit without a request counts as the request, as API defaulting would make it."""
    total: dict[str, int] = {}
    for c in spec.get("containers") or ():
        for k, v in _container_requests(c).items():
            total[k] = total.get(k, 0) + v
    for c in spec.get("initContainers") or ():
        for k, v in _container_requests(c).items():
            if v > total.get(k, 0):
                total[k] = v
    for k, v in (spec.get("overhead") or {}).items():
        total[k] = total.get(k, 0) + resource_value(k, v)
    return total


def _container_requests(c: Obj) -> dict[str, int]:
    res = c.get("resources") or {}
    merged = dict(res.get("limits") or {})
    merged.update(res.get("requests") or {})
    out = {}
    for k, v in merged.items():
        try:
            out[k] = resource_value(k, v)
        except ValueError:
            continue
    return out


@dataclass(slots=True)
class AffinityTerm:
    """A required or weighted PodAffinityTerm with its namespaces resolved."""

    selector: Obj | None
    namespaces: frozenset[str] | None  # None = all namespaces
    topology_key: str
    weight: int = 0

    def matches(self, pod: "PodInfo") -> bool:
        if self.namespaces is not None and pod.namespace not in self.namespaces:
            return False
        return match_label_selector(self.selector, pod.labels)


@dataclass(slots=True)
class PodInfo:
    """What scheduling needs of one pod, computed once per pod version."""

    key: str  # "namespace/name"
    namespace: str
    name: str
    uid: str
    labels: dict[str, str]
    requests: dict[str, int]
    nonzero_cpu: int
    nonzero_memory: int
    node_name: str
    tolerations: list[Obj]
    node_selector: dict[str, str]
    required_node_affinity: Obj | None
    preferred_node_affinity: list[Obj]
    affinity: list[AffinityTerm]
    anti_affinity: list[AffinityTerm]
    preferred_affinity: list[AffinityTerm]
    preferred_anti_affinity: list[AffinityTerm]
    spread: list[Obj]
    owner_uid: str
    terminating: bool
    pod: Obj = field(repr=False)


def _terms(pod_ns: str, labels: dict[str, str], raw: list[Obj], weighted: bool) -> list[AffinityTerm]:
    out = []
    for item in raw or ():
        term = item.get("podAffinityTerm", {}) if weighted else item
        ns_sel = term.get("namespaceSelector")
        names = term.get("namespaces") or []
        namespaces: frozenset[str] | None
        if ns_sel == {}:
            namespaces = None
        else:
            namespaces = frozenset(names) if names else (frozenset() if ns_sel else frozenset([pod_ns]))
            if ns_sel:
                # Without a namespace cache only the well-known name label can be evaluated.
                want = (ns_sel.get("matchLabels") or {}).get("kubernetes.io/metadata.name")
                namespaces = namespaces | {want} if want else None
        selector = term.get("labelSelector")
        if selector is not None and term.get("matchLabelKeys"):
            selector = dict(selector)
            ml = dict(selector.get("matchLabels") or {})
            ml.update({k: labels[k] for k in term["matchLabelKeys"] if k in labels})
            selector["matchLabels"] = ml
        out.append(AffinityTerm(selector, namespaces, term.get("topologyKey", ""),
                                int(item.get("weight", 0)) if weighted else 0))
    return out


def pod_info(pod: Obj) -> PodInfo:
    meta = pod.get("metadata", {})
    spec = pod.get("spec", {})
    ns, name = meta.get("namespace", ""), meta.get("name", "")
    labels = meta.get("labels") or {}
    aff = spec.get("affinity") or {}
    node_aff = aff.get("nodeAffinity") or {}
    pa, paa = aff.get("podAffinity") or {}, aff.get("podAntiAffinity") or {}
    req = pod_requests(spec)
    owner = next((o.get("uid", "") for o in meta.get("ownerReferences") or () if o.get("controller")), "")
    spread = []
    for c in spec.get("topologySpreadConstraints") or ():
        c = dict(c)
        if c.get("matchLabelKeys") and c.get("labelSelector") is not None:
            sel = dict(c["labelSelector"])
            ml = dict(sel.get("matchLabels") or {})
            ml.update({k: labels[k] for k in c["matchLabelKeys"] if k in labels})
            sel["matchLabels"] = ml
            c["labelSelector"] = sel
        spread.append(c)
    return PodInfo(
        key=f"{ns}/{name}", namespace=ns, name=name, uid=meta.get("uid", ""), labels=labels,
        requests=req,
        nonzero_cpu=req.get("cpu") or DEFAULT_MILLI_CPU,
        nonzero_memory=req.get("memory") or DEFAULT_MEMORY,
        node_name=spec.get("nodeName") or "",
        tolerations=spec.get("tolerations") or [],
        node_selector=spec.get("nodeSelector") or {},
        required_node_affinity=node_aff.get("requiredDuringSchedulingIgnoredDuringExecution"),
        preferred_node_affinity=node_aff.get("preferredDuringSchedulingIgnoredDuringExecution") or [],
        affinity=_terms(ns, labels, pa.get("requiredDuringSchedulingIgnoredDuringExecution"), False),
        anti_affinity=_terms(ns, labels, paa.get("requiredDuringSchedulingIgnoredDuringExecution"), False),
        preferred_affinity=_terms(ns, labels, pa.get("preferredDuringSchedulingIgnoredDuringExecution"), True),
        preferred_anti_affinity=_terms(ns, labels, paa.get("preferredDuringSchedulingIgnoredDuringExecution"), True),
        spread=spread, owner_uid=owner, terminating=bool(meta.get("deletionTimestamp")), pod=pod,
    )


def node_ready(node: Obj) -> bool:
    for c in node.get("status", {}).get("conditions") or ():
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


@dataclass(slots=True)
class NodeInfo:
    """One node plus the pods the scheduler believes run there (bound or assumed)."""

    name: str
    node: Obj
    labels: dict[str, str]
    allocatable: dict[str, int]
    taints: list[Obj]
    unschedulable: bool
    ready: bool
    requested: dict[str, int] = field(default_factory=dict)
    nonzero_cpu: int = 0
    nonzero_memory: int = 0
    pods: dict[str, PodInfo] = field(default_factory=dict)
    anti_pods: dict[str, PodInfo] = field(default_factory=dict)  # pods with required anti-affinity
    owners: dict[str, int] = field(default_factory=dict)  # controller uid -> pod count

    @classmethod
    def from_node(cls, node: Obj, old: "NodeInfo | None" = None) -> "NodeInfo":
        alloc = {}
        for k, v in (node.get("status", {}).get("allocatable") or {}).items():
            try:
                alloc[k] = resource_value(k, v)
            except ValueError:
                continue
        info = cls(
            name=node["metadata"]["name"], node=node,
            labels=node["metadata"].get("labels") or {}, allocatable=alloc,
            taints=node.get("spec", {}).get("taints") or [],
            unschedulable=bool(node.get("spec", {}).get("unschedulable")), ready=node_ready(node),
        )
        if old is not None:
            info.requested, info.pods = old.requested, old.pods
            info.anti_pods, info.owners = old.anti_pods, old.owners
            info.nonzero_cpu, info.nonzero_memory = old.nonzero_cpu, old.nonzero_memory
        return info

    def add_pod(self, p: PodInfo) -> None:
        if p.key in self.pods:
            self.remove_pod(self.pods[p.key])
        self.pods[p.key] = p
        if p.anti_affinity:
            self.anti_pods[p.key] = p
        self._account(p, 1)

    def remove_pod(self, p: PodInfo) -> None:
        if self.pods.pop(p.key, None) is not None:
            self.anti_pods.pop(p.key, None)
            self._account(p, -1)

    def _account(self, p: PodInfo, sign: int) -> None:
        for k, v in p.requests.items():
            self.requested[k] = self.requested.get(k, 0) + sign * v
        self.requested["pods"] = self.requested.get("pods", 0) + sign
        self.nonzero_cpu += sign * p.nonzero_cpu
        self.nonzero_memory += sign * p.nonzero_memory
        if p.owner_uid:
            n = self.owners.get(p.owner_uid, 0) + sign
            if n > 0:
                self.owners[p.owner_uid] = n
            else:
                self.owners.pop(p.owner_uid, None)
