"""``isolation.enabled`` (``vkube create --isolate``): guard rails in the host namespace.

- a ResourceQuota and a LimitRange (the defaults below; ``--cpu``/``--memory`` set the CPU and
  memory limits, requests are half of them, as in the defaults) — enforced by the host's
  admission;
- NetworkPolicies: the control plane reaches only the host API server and host DNS; workloads
  reach the control plane, DNS, each other and public addresses, never a private range;
- Pod Security Standard labels on the host namespace (the syncer itself also checks every pod
  before syncing it: :mod:`vkube.syncer.admission`).

Pure builders (``isolation_objects``) plus one level-based syncer that repairs drift.
"""

from __future__ import annotations

import copy
import ipaddress
import logging
from fractions import Fraction

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.api.quantity import Quantity, parse_quantity
from vkube.api.validation_ip import parse_ip, special_ip_problems
from vkube.client.client import Resource
from vkube.client.resources import (ENDPOINTS, LIMITRANGES, NAMESPACES, NETWORKPOLICIES,
                                    PODS, RESOURCEQUOTAS)
from vkube.syncer.base import KindSyncer, SyncContext
from vkube.syncer.refusals import retry_refused
from vkube.syncer.translate import LABEL_MANAGED_BY, LABEL_NAMESPACE
from vkube.syncer.values import Isolation

log = logging.getLogger(__name__)

#: the Pod Security level isolation labelled the host namespace with: proof the labels are
#: vkube's (the CLI removes them when isolation goes: vkube.cli.hostns.ANN_PSS, same key)
ANN_PSS = "vkube.io/isolation-pod-security"

QUOTA = {"count/configmaps": "100", "count/endpoints": "40",
         "count/persistentvolumeclaims": "20", "count/pods": "20", "count/secrets": "100",
         "count/services": "20", "limits.cpu": "20", "limits.ephemeral-storage": "160Gi",
         "limits.memory": "40Gi", "requests.cpu": "10", "requests.ephemeral-storage": "60Gi",
         "requests.memory": "20Gi", "requests.storage": "100Gi", "services.loadbalancers": "1",
         "services.nodeports": "0"}
LIMITS = {"type": "Container",
          "default": {"cpu": "1", "memory": "512Mi", "ephemeral-storage": "8Gi"},
          "defaultRequest": {"cpu": "100m", "memory": "128Mi", "ephemeral-storage": "3Gi"}}
#: never reached by an isolated tenant's workloads: private ranges, loopback, link-local (the
#: node itself; a cloud's metadata service at 169.254.169.254) and the metadata services
#: outside them (vkube.netio.addresses): Azure's WireServer, Oracle's legacy endpoint
#: (Alibaba's 100.100.100.200 is in 100.64.0.0/10)
PRIVATE = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "127.0.0.0/8",
           "169.254.0.0/16", "168.63.129.16/32", "192.0.0.192/32"]
DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
KUBE_SYSTEM = {"namespaceSelector": {"matchLabels": {
    "kubernetes.io/metadata.name": "kube-system"}}}


def control_plane_labels(vc: str) -> dict[str, str]:
    """The labels of the control plane's pods when it runs in the host (``render``)."""
    return {"app.kubernetes.io/name": "vkube", "app.kubernetes.io/instance": vc}


def quota_hard(iso: Isolation) -> dict[str, str]:
    """The quota's ``hard``: the defaults, with ``cpu``/``memory`` as limits and half of each
    as requests."""
    hard = dict(QUOTA)
    for res, text in (("cpu", iso.resource_quota.cpu), ("memory", iso.resource_quota.memory)):
        if text:
            q = parse_quantity(text)
            hard[f"limits.{res}"] = str(q)
            hard[f"requests.{res}"] = str(Quantity(q.value / Fraction(2), q.format))
    return hard


def isolation_name(vc: str, suffix: str = "") -> str:
    return f"vkube-isolation-{vc}"[:63 - len(suffix)].rstrip("-.") + suffix


def network_policies(vc: str, labels: dict[str, str], *, api_peers: list[Obj],
                     control_plane_peer: Obj | None = None) -> list[Obj]:
    """The workloads' policy and the control plane's (``api_peers``: ``to`` entries with
    ports for the host API server; ``control_plane_peer``: how workloads reach the control
    plane when it does not run as a pod of this namespace)."""
    cp = {"podSelector": {"matchLabels": control_plane_labels(vc)}}
    workload_to = [{"to": [cp]},
                   {"to": [KUBE_SYSTEM], "ports": copy.deepcopy(DNS_PORTS)},
                   {"to": [{"podSelector": {"matchLabels": {LABEL_MANAGED_BY: vc}}}]},
                   {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": list(PRIVATE)}}]}]
    if control_plane_peer is not None:
        workload_to.insert(1, control_plane_peer)
    workloads = {"apiVersion": NETWORKPOLICIES.api_version, "kind": "NetworkPolicy",
                 "metadata": {"name": isolation_name(vc), "labels": dict(labels)},
                 "spec": {"podSelector": {"matchLabels": {LABEL_MANAGED_BY: vc}},
                          "policyTypes": ["Egress"], "egress": workload_to}}
    control = {"apiVersion": NETWORKPOLICIES.api_version, "kind": "NetworkPolicy",
               "metadata": {"name": isolation_name(vc, "-control-plane"), "labels": dict(labels)},
               "spec": {"podSelector": {"matchLabels": control_plane_labels(vc)},
                        "policyTypes": ["Egress"],
                        "egress": [{"to": [KUBE_SYSTEM], "ports": copy.deepcopy(DNS_PORTS)},
                                   *api_peers]}}
    return [workloads, control]


def host_api_peers(endpoints: Obj | None) -> list[Obj]:
    """``default/kubernetes`` endpoints → egress rules to exactly those addresses and ports
    (policies see the endpoint, after the service address is translated)."""
    rules = []
    for subset in (endpoints or {}).get("subsets") or []:
        ports = [{"protocol": p.get("protocol", "TCP"), "port": p["port"]}
                 for p in subset.get("ports") or [] if p.get("port")]
        for addr in subset.get("addresses") or []:
            ip = addr.get("ip", "")
            if _is_ip(ip):
                rules.append({"to": [{"ipBlock": {"cidr": _host_cidr(ip)}}], "ports": ports})
    return rules


def isolation_objects(ctx: SyncContext, host_api: Obj | None = None,
                      dns_endpoints: Obj | None = None) -> list[tuple[Resource, Obj]]:
    iso = ctx.values.isolation
    labels = ctx.tr.owner_labels(None)
    name = isolation_name(ctx.name)
    out: list[tuple[Resource, Obj]] = []
    if iso.resource_quota.enabled:
        out.append((RESOURCEQUOTAS, {"apiVersion": "v1", "kind": "ResourceQuota",
                                     "metadata": {"name": name, "labels": labels},
                                     "spec": {"hard": quota_hard(iso)}}))
    if iso.limit_range.enabled:
        out.append((LIMITRANGES, {"apiVersion": "v1", "kind": "LimitRange",
                                  "metadata": {"name": name, "labels": labels},
                                  "spec": {"limits": [copy.deepcopy(LIMITS)]}}))
    if iso.network_policy.enabled:
        peer = None
        if _is_ip(ctx.kube_service_host):  # the control plane outside the host's pods
            # its API port, and the ports of its DNS (the virtual kube-system/kube-dns
            # Endpoints), since DNS is served by the control plane's process too
            ports = [{"protocol": "TCP", "port": ctx.kube_service_port}]
            for subset in (dns_endpoints or {}).get("subsets") or []:
                for p in subset.get("ports") or []:
                    want = {"protocol": p.get("protocol") or "TCP", "port": p.get("port")}
                    if p.get("port") and want not in ports:
                        ports.append(want)
            peer = {"to": [{"ipBlock": {"cidr": _host_cidr(ctx.kube_service_host)}}],
                    "ports": ports}
        for np in network_policies(ctx.name, labels, api_peers=host_api_peers(host_api),
                                   control_plane_peer=peer):
            out.append((NETWORKPOLICIES, np))
    return out


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _host_cidr(ip: str) -> str:
    return f"{ip}/{ipaddress.ip_address(ip).max_prefixlen}"


class IsolationSyncer(KindSyncer):
    """One key, ``isolation``: level-based like the rest (drift is repaired on every event
    of the objects it owns)."""

    kind = "isolation"
    workers = 1

    def setup(self) -> None:
        if not self.ctx.values.isolation.enabled:
            return  # one pass removes what earlier values made; nothing to watch
        for res in (RESOURCEQUOTAS, LIMITRANGES, NETWORKPOLICIES):
            self.ctx.informers.host(res).add_handler(lambda t, o, old: self.enqueue("isolation"))
        if self.ctx.values.isolation.network_policy.enabled and self.ctx.cluster_dns:
            self.ctx.informers.virtual(ENDPOINTS).add_handler(self._on_endpoints)

    def _on_endpoints(self, typ: str, obj: Obj, old: Obj | None) -> None:
        meta = obj.get("metadata") or {}
        if (meta.get("namespace"), meta.get("name")) == ("kube-system", "kube-dns"):
            self.enqueue("isolation")

    def initial_keys(self) -> list[str]:
        return ["isolation"]

    async def reconcile(self, key: str) -> None:
        if not self.ctx.values.isolation.enabled:
            await self._remove_unwanted(set(), cached=False)
            return
        hns = self.ctx.host_namespace
        host_api = None
        if self.ctx.values.isolation.network_policy.enabled:
            try:
                host_api = await self.ctx.host.get(ENDPOINTS, "kubernetes", namespace="default")
            except (errors.NotFound, errors.Forbidden):
                pass  # the control plane policy then allows DNS only
        dns_endpoints = None
        if self.ctx.values.isolation.network_policy.enabled and self.ctx.cluster_dns:
            # written by the control plane; its arrival re-runs this (_on_endpoints); the
            # ports are the control plane's own, not what a tenant's edit says
            dns_endpoints = self.ctx.informers.virtual(ENDPOINTS).get("kube-dns", "kube-system")
            own = self.ctx.control_plane_endpoints
            if dns_endpoints is not None and own is not None:
                subsets = own("kube-system", "kube-dns")
                if subsets is None:  # its DNS is not bound yet: look again in a moment
                    self.queue.add_after(key, 0.2)
                else:
                    dns_endpoints = {"subsets": subsets}
        wanted = isolation_objects(self.ctx, host_api, dns_endpoints)
        await self._remove_unwanted({(res.plural, o["metadata"]["name"]) for res, o in wanted},
                                    cached=True)
        for res, want in wanted:
            cur = self.ctx.informers.host(res).get(want["metadata"]["name"], hns)
            if cur is None:
                try:
                    await self.ctx.host.create(res, want, namespace=hns)
                except errors.AlreadyExists:
                    pass
            elif cur.get("spec") != want["spec"]:
                new = copy.deepcopy(cur)
                new["spec"] = want["spec"]
                await self.ctx.host.update(res, new)
        level = self.ctx.values.isolation.pod_security_standard
        try:
            await self.ctx.host.patch(NAMESPACES, hns, {"metadata": {
                "labels": {"pod-security.kubernetes.io/enforce": level,
                           "pod-security.kubernetes.io/warn": level},
                "annotations": {ANN_PSS: level}}})
        except errors.Forbidden:
            pass  # not allowed to label the host namespace: the other guard rails still hold


    async def _remove_unwanted(self, wanted: set[tuple[str, str]], *, cached: bool) -> None:
        """Delete the guard rails earlier values made and these no longer ask for (isolation,
        or one of its parts, turned off by ``--upgrade``): only objects of this cluster's
        names carrying its owner label and no tenant namespace label — what this syncer made.
        Objects refused while they stood are then tried again at once. ``cached``: read the
        host informers (isolation on: they run); else one list per kind (isolation off: no
        watch is kept for a one-time pass). The namespace's Pod Security labels are the
        CLI's to remove (``vkube.cli.hostns.pod_security_patch``): with isolation off this
        syncer may not label its namespace."""
        hns = self.ctx.host_namespace
        names = {isolation_name(self.ctx.name), isolation_name(self.ctx.name, "-control-plane")}
        removed = 0
        for res in (RESOURCEQUOTAS, LIMITRANGES, NETWORKPOLICIES):
            if cached:
                items = self.ctx.informers.host(res).list(hns)
            else:
                try:
                    items = (await self.ctx.host.list(
                        res, namespace=hns,
                        label_selector=f"{LABEL_MANAGED_BY}={self.ctx.name}")).get("items") or []
                except (errors.Forbidden, errors.NotFound):
                    continue
            for obj in items:
                meta = obj.get("metadata") or {}
                labels = meta.get("labels") or {}
                if (meta.get("name") not in names or (res.plural, meta.get("name")) in wanted
                        or labels.get(LABEL_MANAGED_BY) != self.ctx.name
                        or LABEL_NAMESPACE in labels):
                    continue
                try:
                    await self.ctx.host.delete(res, meta["name"], namespace=hns)
                    removed += 1
                    log.info("isolation: removed %s %s/%s (no longer in the values)",
                             res.plural, hns, meta["name"])
                except errors.NotFound:
                    pass
        if removed and self.ctx.syncers:
            retry_refused(self.ctx.syncers.values())


class AddressGuard:
    """Endpoint addresses a tenant writes (selector-less Services) never name the node itself
    (unspecified, loopback, link-local: the API server refuses them too) and, with
    ``isolation.enabled``, never the host's private network unless they are its own pods' IPs:
    otherwise a tenant's Service would route to another tenant's pods, host services or the
    cloud's metadata service by IP. Public addresses stay allowed, as the NetworkPolicy does."""

    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx
        self.enabled = ctx.values.isolation.enabled
        self.private = [ipaddress.ip_network(c) for c in PRIVATE]

    def refused(self, addresses: list[str]) -> list[str]:
        """The addresses that may not go down (empty: all fine): never an address the API
        server refuses as special (unspecified, loopback, link-local: objects stored before
        it did); with isolation, no private one but the tenant's own pods'."""
        own: set[str] | None = None
        out = []
        for ip in addresses:
            addr = parse_ip(ip)
            if addr is None:
                continue  # the host's validation refuses it
            if special_ip_problems(addr, ip):
                out.append(ip)
                continue
            if not self.enabled:
                continue
            if addr.version == 4 and not any(addr in n for n in self.private):
                continue
            if own is None:
                own = {p for pod in self.ctx.informers.host(PODS).list(self.ctx.host_namespace)
                       for p in _pod_ips(pod)}
            if ip not in own:
                out.append(ip)
        return out

    def filter(self, vobj: Obj, addresses: list[str]) -> set[str]:
        """The refused addresses, with a Warning event on ``vobj`` naming them. The control
        plane's own Services (``default/kubernetes``, ``kube-system/kube-dns``) may name the
        address the control plane serves on (``kube_service_host``: on the embedded host a
        loopback address), which the control plane writes itself."""
        service = _control_plane_service(vobj)
        if self.ctx.kube_service_host and service:
            addresses = [a for a in addresses if a != self.ctx.kube_service_host]
        bad = self.refused(addresses)
        if bad:
            self.ctx.recorder.event(vobj, "Warning", "AddressRefused", (
                f"endpoint addresses {', '.join(bad)} are not pods of this virtual cluster: "
                "an endpoint is never unspecified, loopback or link-local, and with isolation "
                "a private address must be one of its own pods' IPs; they are left out on the "
                "host"))
        return set(bad)


#: the Services vkube.cluster.incluster keeps, by (namespace, name)
CONTROL_PLANE_SERVICES = {("default", "kubernetes"), ("kube-system", "kube-dns")}


def _control_plane_service(vobj: Obj) -> tuple[str, str] | None:
    """Endpoints (by name) or an EndpointSlice (by its service-name label) of one of them."""
    meta = vobj.get("metadata") or {}
    name = meta.get("name")
    if vobj.get("kind") == "EndpointSlice" or "endpoints" in vobj:
        name = (meta.get("labels") or {}).get("kubernetes.io/service-name")
    key = (meta.get("namespace"), name)
    return key if key in CONTROL_PLANE_SERVICES else None  # type: ignore[return-value]



def _pod_ips(pod: Obj) -> list[str]:
    status = pod.get("status") or {}
    ips = [p.get("ip", "") for p in status.get("podIPs") or []]
    return [*ips, status.get("podIP", "")]


def public_only(peer: Obj) -> Obj | None:
    """A tenant's egress ``ipBlock`` peer under isolation: NetworkPolicies add up, so a policy
    of its own allowing 10.0.0.0/8 would undo the guard rail. The private ranges are cut out
    (as ``except`` entries); a block wholly inside one is dropped (None). Other peers pass."""
    block = peer.get("ipBlock")
    if block is None:
        return peer
    try:
        net = ipaddress.ip_network(block.get("cidr", ""), strict=False)
    except ValueError:
        return peer  # the host's validation refuses it
    if net.version != 4:
        return peer
    private = [ipaddress.ip_network(c) for c in PRIVATE]
    if any(net.subnet_of(p) for p in private):  # type: ignore[arg-type]
        return None
    excepts = list(block.get("except") or [])
    for p in private:
        if p.subnet_of(net) and str(p) not in excepts:  # type: ignore[arg-type]
            excepts.append(str(p))
    return {**peer, "ipBlock": {**block, "except": excepts}} if excepts else peer
