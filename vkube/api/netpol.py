"""NetworkPolicy semantics as a pure function: would a connection from one endpoint to another,
on one port and protocol, be allowed by the policies of a cluster?

Upstream's rules (networking/v1 API documentation and the e2e "netpol" suite):
- a pod is isolated for ingress (egress) when a policy of its namespace selects it and lists
  ``Ingress`` (``Egress``) in ``policyTypes`` (default: ``Ingress``, plus ``Egress`` when the
  policy has egress rules); an isolated pod accepts only what some rule of those policies
  allows; policies are additive (a union) and never deny;
- a connection needs both: egress allowed at the source and ingress allowed at the destination;
- peers: ``podSelector`` alone selects pods of the policy's namespace; ``namespaceSelector``
  (with an optional ``podSelector``) selects pods of matching namespaces; ``ipBlock`` matches
  an address in ``cidr`` and in none of ``except``; an absent or empty ``from``/``to`` matches
  every peer, an absent or empty ``ports`` every port;
- ports: a number, or a named container port of the *destination* pod, with ``protocol``
  (TCP by default) and ``endPort`` for a range;
- a host-network pod is not selected by pod selectors; traffic between a pod and the node it
  runs on (the kubelet's probes) is not subject to policies (left to the caller).

The answer carries the reason, naming the policies that isolated the side that refused."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from vkube.api.errors import BadRequest
from vkube.api.meta import Obj
from vkube.api.selectors import LabelSelector, label_selector_from_dict


@dataclass(frozen=True)
class Endpoint:
    """One side of a connection. ``namespace`` None: not a pod (an external address or the
    node), which only ``ipBlock`` peers can match and which no policy isolates."""

    ip: str
    namespace: str | None = None
    name: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    namespace_labels: Mapping[str, str] = field(default_factory=dict)
    #: named container ports: name -> [(port, protocol)]
    named_ports: Mapping[str, tuple[tuple[int, str], ...]] = field(default_factory=dict)
    host_network: bool = False

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None and not self.host_network

    def __str__(self) -> str:
        return f"pod {self.namespace}/{self.name} ({self.ip})" if self.namespace else self.ip


def pod_endpoint(pod: Obj, namespace_labels: Mapping[str, str] | None = None) -> Endpoint:
    """An Endpoint from a Pod object (its IP, labels and named container ports)."""
    meta, spec = pod.get("metadata") or {}, pod.get("spec") or {}
    named: dict[str, list[tuple[int, str]]] = {}
    for c in (spec.get("containers") or []) + (spec.get("initContainers") or []):
        for p in c.get("ports") or []:
            if p.get("name") and p.get("containerPort"):
                named.setdefault(p["name"], []).append((int(p["containerPort"]), p.get("protocol") or "TCP"))
    ns = meta.get("namespace") or "default"
    ns_labels = dict(namespace_labels or {})
    ns_labels.setdefault("kubernetes.io/metadata.name", ns)
    return Endpoint(ip=(pod.get("status") or {}).get("podIP") or "", namespace=ns,
                    name=meta.get("name", ""), labels=dict(meta.get("labels") or {}),
                    namespace_labels=ns_labels,
                    named_ports={k: tuple(v) for k, v in named.items()},
                    host_network=bool(spec.get("hostNetwork")))


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str
    #: the policies that isolated the side that refused (namespace/name)
    policies: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.allowed


def policy_types(spec: Obj) -> tuple[str, ...]:
    """``policyTypes`` as the API server defaults it."""
    types = spec.get("policyTypes")
    if types:
        return tuple(types)
    return ("Ingress", "Egress") if spec.get("egress") else ("Ingress",)


def _selector(sel: Obj | None) -> LabelSelector:
    try:
        return label_selector_from_dict(sel if sel is not None else {})
    except BadRequest:
        return LabelSelector(nothing=True)  # an invalid selector (refused by validation) selects nothing


def _in_block(ip: str, block: Obj) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
        if addr not in ipaddress.ip_network(block.get("cidr", ""), strict=False):
            return False
        return not any(addr in ipaddress.ip_network(e, strict=False) for e in block.get("except") or ())
    except ValueError:
        return False


def peer_matches(peer: Obj, policy_ns: str, other: Endpoint) -> bool:
    """One ``from``/``to`` entry against the other side of the connection."""
    if "ipBlock" in peer:
        return bool(other.ip) and _in_block(other.ip, peer["ipBlock"] or {})
    if not other.is_pod:
        return False
    ns_sel = peer.get("namespaceSelector")
    if ns_sel is None:
        if other.namespace != policy_ns:
            return False
    elif not _selector(ns_sel).matches(other.namespace_labels):
        return False
    pod_sel = peer.get("podSelector")
    return pod_sel is None or _selector(pod_sel).matches(other.labels)


def port_matches(rule_port: Obj, port: int, protocol: str, dst: Endpoint) -> bool:
    if (rule_port.get("protocol") or "TCP") != protocol:
        return False
    want = rule_port.get("port")
    if want is None:
        return True
    if isinstance(want, str) and not want.isdigit():
        return any(p == port and proto == protocol for p, proto in dst.named_ports.get(want, ()))
    low = int(want)
    high = int(rule_port.get("endPort") or low)
    return low <= port <= high


def _rule_allows(rule: Obj, peers_key: str, policy_ns: str, other: Endpoint, port: int,
                 protocol: str, dst: Endpoint) -> bool:
    peers = rule.get(peers_key) or []
    ports = rule.get("ports") or []
    if peers and not any(peer_matches(p, policy_ns, other) for p in peers):
        return False
    return not ports or any(port_matches(p, port, protocol, dst) for p in ports)


def _selecting(policies: Iterable[Obj], subject: Endpoint, direction: str) -> list[Obj]:
    if not subject.is_pod:
        return []
    out = []
    for pol in policies:
        meta, spec = pol.get("metadata") or {}, pol.get("spec") or {}
        if meta.get("namespace") != subject.namespace or direction not in policy_types(spec):
            continue
        if _selector(spec.get("podSelector")).matches(subject.labels):
            out.append(pol)
    return out


def _names(policies: list[Obj]) -> tuple[str, ...]:
    return tuple(f"{p['metadata'].get('namespace')}/{p['metadata'].get('name')}" for p in policies)


def check_egress(policies: Iterable[Obj], src: Endpoint, dst: Endpoint, port: int,
                 protocol: str = "TCP") -> Verdict:
    isolating = _selecting(policies, src, "Egress")
    if not isolating:
        return Verdict(True, f"no policy isolates {src} for egress")
    for pol in isolating:
        for rule in pol["spec"].get("egress") or []:
            if _rule_allows(rule, "to", src.namespace or "", dst, port, protocol, dst):
                return Verdict(True, f"egress allowed by {_names([pol])[0]}", _names([pol]))
    return Verdict(False, f"egress from {src} to {dst} port {port}/{protocol} is not allowed by "
                          f"the NetworkPolicies selecting it ({', '.join(_names(isolating))})",
                   _names(isolating))


def check_ingress(policies: Iterable[Obj], src: Endpoint, dst: Endpoint, port: int,
                  protocol: str = "TCP") -> Verdict:
    isolating = _selecting(policies, dst, "Ingress")
    if not isolating:
        return Verdict(True, f"no policy isolates {dst} for ingress")
    for pol in isolating:
        for rule in pol["spec"].get("ingress") or []:
            if _rule_allows(rule, "from", dst.namespace or "", src, port, protocol, dst):
                return Verdict(True, f"ingress allowed by {_names([pol])[0]}", _names([pol]))
    return Verdict(False, f"ingress to {dst} port {port}/{protocol} from {src} is not allowed by "
                          f"the NetworkPolicies selecting it ({', '.join(_names(isolating))})",
                   _names(isolating))


def check(policies: Iterable[Obj], src: Endpoint, dst: Endpoint, port: int,
          protocol: str = "TCP") -> Verdict:
    """Both directions: the source's egress, then the destination's ingress."""
    policies = list(policies)
    out = check_egress(policies, src, dst, port, protocol)
    if not out:
        return out
    inn = check_ingress(policies, src, dst, port, protocol)
    if not inn:
        return inn
    return Verdict(True, f"{out.reason}; {inn.reason}", out.policies + inn.policies)
