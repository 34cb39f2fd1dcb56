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
    #: how the pod names itself (its hostname: the tenant's pod name in a virtual cluster);
    #: what messages a pod's user reads show, so they never name a host pod
    display: str = field(default="", compare=False)

    @property
    def is_pod(self) -> bool:
        return self.namespace is not None and not self.host_network

    def __str__(self) -> str:
        if not self.namespace:
            return self.ip
        return f"pod {self.display} ({self.ip})" if self.display else f"pod {self.namespace}/{self.name} ({self.ip})"


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
                    host_network=bool(spec.get("hostNetwork")),
                    display=spec.get("hostname") or str(meta.get("name") or "")[:63].rstrip("-."))


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


def peer_matches(peer: Obj, policy_ns: str, other: Endpoint) -> bool:
    """One ``from``/``to`` entry against the other side of the connection."""
    return _Peer(peer).matches(policy_ns, other)


class _Block:
    """An ``ipBlock`` with its networks parsed once; an invalid one matches nothing."""

    __slots__ = ("cidr", "excepts")

    def __init__(self, block: Obj) -> None:
        try:
            self.cidr: ipaddress.IPv4Network | ipaddress.IPv6Network | None = \
                ipaddress.ip_network(block.get("cidr", ""), strict=False)
            self.excepts = [ipaddress.ip_network(e, strict=False) for e in block.get("except") or ()]
        except ValueError:
            self.cidr, self.excepts = None, []

    def contains(self, ip: str) -> bool:
        if self.cidr is None or not ip:
            return False
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return addr.version == self.cidr.version and addr in self.cidr and \
            not any(addr in e for e in self.excepts if e.version == addr.version)


class _Peer:
    """A ``from``/``to`` entry with its selectors parsed once."""

    __slots__ = ("block", "ns_sel", "pod_sel")

    def __init__(self, peer: Obj) -> None:
        self.block = _Block(peer.get("ipBlock") or {}) if "ipBlock" in peer else None
        ns_sel, pod_sel = peer.get("namespaceSelector"), peer.get("podSelector")
        self.ns_sel = None if ns_sel is None else _selector(ns_sel)
        self.pod_sel = None if pod_sel is None else _selector(pod_sel)

    def matches(self, policy_ns: str, other: Endpoint) -> bool:
        if self.block is not None:
            return self.block.contains(other.ip)
        if not other.is_pod:
            return False
        if self.ns_sel is None:
            if other.namespace != policy_ns:
                return False
        elif not self.ns_sel.matches(other.namespace_labels):
            return False
        return self.pod_sel is None or self.pod_sel.matches(other.labels)


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


class _Rule:
    __slots__ = ("peers", "ports")

    def __init__(self, rule: Obj, peers_key: str) -> None:
        self.peers = [_Peer(p) for p in rule.get(peers_key) or []]
        self.ports = list(rule.get("ports") or [])

    def allows(self, policy_ns: str, other: Endpoint, port: int, protocol: str,
               dst: Endpoint) -> bool:
        if self.peers and not any(p.matches(policy_ns, other) for p in self.peers):
            return False
        return not self.ports or any(port_matches(p, port, protocol, dst) for p in self.ports)


class _Policy:
    __slots__ = ("egress", "ingress", "name", "namespace", "selector", "types")

    def __init__(self, pol: Obj) -> None:
        meta, spec = pol.get("metadata") or {}, pol.get("spec") or {}
        self.namespace = meta.get("namespace") or ""
        self.name = f"{self.namespace}/{meta.get('name')}"
        self.types = policy_types(spec)
        self.selector = _selector(spec.get("podSelector"))
        self.ingress = [_Rule(r, "from") for r in spec.get("ingress") or []]
        self.egress = [_Rule(r, "to") for r in spec.get("egress") or []]


class PolicySet:
    """Policies parsed once and grouped by namespace: what a caller keeps between checks
    (the embedded host rebuilds it when a policy changes)."""

    def __init__(self, policies: Iterable[Obj]) -> None:
        self.by_namespace: dict[str, list[_Policy]] = {}
        for pol in policies:
            p = _Policy(pol)
            self.by_namespace.setdefault(p.namespace, []).append(p)

    def selecting(self, subject: Endpoint, direction: str) -> list[_Policy]:
        if not subject.is_pod:
            return []
        return [p for p in self.by_namespace.get(subject.namespace or "", ())
                if direction in p.types and p.selector.matches(subject.labels)]

    def _direction(self, direction: str, src: Endpoint, dst: Endpoint, port: int,
                   protocol: str) -> Verdict:
        """One direction's verdict for ``src`` → ``dst``: allowed when no policy isolates the
        subject (the source for Egress, the destination for Ingress) that way, or when a rule of
        one that does admits the peer on the port (NetworkPolicies are additive)."""
        egress = direction == "Egress"
        subject, peer = (src, dst) if egress else (dst, src)
        word = direction.lower()
        isolating = self.selecting(subject, direction)
        if not isolating:
            return Verdict(True, f"no policy isolates {subject} for {word}")
        for pol in isolating:
            rules = pol.egress if egress else pol.ingress
            if any(r.allows(pol.namespace, peer, port, protocol, dst) for r in rules):
                return Verdict(True, f"{word} allowed by {pol.name}", (pol.name,))
        names = tuple(p.name for p in isolating)
        what = (f"egress from {src} to {dst} port {port}/{protocol}" if egress
                else f"ingress to {dst} port {port}/{protocol} from {src}")
        return Verdict(False, f"{what} is not allowed by the NetworkPolicies selecting it "
                              f"({', '.join(names)})", names)

    def egress(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> Verdict:
        return self._direction("Egress", src, dst, port, protocol)

    def ingress(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> Verdict:
        return self._direction("Ingress", src, dst, port, protocol)

    def check(self, src: Endpoint, dst: Endpoint, port: int, protocol: str = "TCP") -> Verdict:
        """Both directions: the source's egress, then the destination's ingress."""
        out = self.egress(src, dst, port, protocol)
        if not out:
            return out
        inn = self.ingress(src, dst, port, protocol)
        if not inn:
            return inn
        return Verdict(True, f"{out.reason}; {inn.reason}", out.policies + inn.policies)


def check_egress(policies: Iterable[Obj], src: Endpoint, dst: Endpoint, port: int,
                 protocol: str = "TCP") -> Verdict:
    return PolicySet(policies).egress(src, dst, port, protocol)


def check_ingress(policies: Iterable[Obj], src: Endpoint, dst: Endpoint, port: int,
                  protocol: str = "TCP") -> Verdict:
    return PolicySet(policies).ingress(src, dst, port, protocol)


def check(policies: Iterable[Obj] | PolicySet, src: Endpoint, dst: Endpoint, port: int,
          protocol: str = "TCP") -> Verdict:
    """Both directions: the source's egress, then the destination's ingress."""
    pset = policies if isinstance(policies, PolicySet) else PolicySet(policies)
    return pset.check(src, dst, port, protocol)
