"""The embedded host's pod network: where a connection a pod opens goes, and whether the host's
NetworkPolicies let it through (``vkube.api.netpol``).

A simulated pod has no network namespace and no packet path, so "enforced" means: every
connection the simulation makes *on behalf of a pod* is resolved as a cluster would resolve it
and is refused when the policies refuse it. Those connections are the ones a pod's exec'd
commands open (``nc``, ``wget``, ``curl``, ``nslookup``: ``vkube.host.netcmds``):

- a name is looked up through the pod's own ``resolv.conf`` (its ``dnsConfig``), by a real DNS
  query to the real address behind the nameserver's Service (a virtual cluster's DNS); the DNS
  query itself is a connection from the pod and needs the policies' egress (and ingress) too;
- a ClusterIP goes to a backend of its Service (Endpoints), as kube-proxy sends it, and the
  policies see that backend (after the address translation), as in Kubernetes;
- a pod address goes to that pod; anything else is an external address (only ``ipBlock``);
- when allowed, a pod port that carries ``vkube.io/port-forward-PORT: HOST:PORT`` is a real
  TCP connection to that address; a port one of the pod's containers declares is a simulated
  listener; any other port is refused, as by a pod where nothing listens; an Endpoints address
  that is no pod (the control plane, a mapped host service) is dialled for real when it is a
  loopback address (nothing leaves this machine; other addresses are unreachable);
- a loopback address a pod names itself (``127.0.0.1:PORT``, a ``dnsConfig`` nameserver) is
  the pod's own loopback, unless the control plane's Endpoints publish it (the syncer writes
  only the control plane's own there: vkube.syncer.endpoints).

Not subject to policies, as in Kubernetes: the kubelet's probes and ``kubectl port-forward``
(both come from the node), and host-network pods."""

from __future__ import annotations

import asyncio
import ipaddress
import random
from dataclasses import dataclass

from vkube.api import netpol
from vkube.api.meta import Obj
from vkube.controllers.informer import Informer
from vkube.host.portforward import forward_target
from vkube.host.simlistener import declares_port

#: where the embedded host's kubelets say cluster DNS is, for ClusterFirst host pods
CLUSTER_DNS = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class Route:
    """Where one connection lands: the endpoint the policies judge, its port, and the real
    address to dial (None: a simulated listener on a pod)."""

    dst: netpol.Endpoint
    port: int
    real: tuple[str, int] | None
    via: str = ""  # "service NS/NAME" when a ClusterIP was translated


@dataclass(frozen=True)
class Outcome:
    ok: bool
    #: "refused" (nothing listens), "blocked" (a NetworkPolicy), "unreachable", "nxdomain"
    error: str = ""
    message: str = ""
    route: Route | None = None


class PodNetwork:
    """Reads the host's objects through informers (the embedded host owns them)."""

    def __init__(self, pods: Informer, namespaces: Informer, policies: Informer,
                 services: Informer, endpoints: Informer, *, rng: random.Random | None = None,
                 timeout: float = 5.0) -> None:
        self.pods = pods
        self.namespaces = namespaces
        self.policies = policies
        self.services = services
        self.endpoints = endpoints
        self.rng = rng or random.Random()
        self.timeout = timeout
        pods.add_index("podIP", lambda p: [ip] if (ip := (p.get("status") or {}).get("podIP")) else [])
        services.add_index("clusterIP", _cluster_ips)
        self._policy_set: netpol.PolicySet | None = None  # parsed once per change
        policies.add_handler(self._policies_changed)

    def _policies_changed(self, typ: str, obj: Obj, old: Obj | None) -> None:
        self._policy_set = None

    @property
    def policy_set(self) -> netpol.PolicySet:
        if self._policy_set is None:
            self._policy_set = netpol.PolicySet(self.policies.list())
        return self._policy_set

    # -- endpoints ---------------------------------------------------------------------------

    def endpoint_of(self, pod: Obj) -> netpol.Endpoint:
        ns = (pod.get("metadata") or {}).get("namespace") or "default"
        ns_obj = self.namespaces.get(ns) or {}
        return netpol.pod_endpoint(pod, (ns_obj.get("metadata") or {}).get("labels") or {})

    def endpoint_at(self, ip: str) -> netpol.Endpoint:
        for pod in self.pods.by_index("podIP", ip):
            if not (pod.get("spec") or {}).get("hostNetwork") and not (pod.get("metadata") or {}).get("deletionTimestamp"):
                return self.endpoint_of(pod)
        return netpol.Endpoint(ip=ip)

    def _pod(self, ep: netpol.Endpoint) -> Obj | None:
        return self.pods.get(ep.name, ep.namespace) if ep.namespace else None

    # -- routing -----------------------------------------------------------------------------

    def routes(self, ip: str, port: int, protocol: str = "TCP") -> tuple[list[Route], str]:
        """Where ``ip:port`` goes: the backends of a Service (ClusterIP) or the address itself.
        The string explains an empty list."""
        services = self.services.by_index("clusterIP", ip)
        if not services:
            ep = self.endpoint_at(ip)
            return [self._route(ep, port, None)], ""
        svc = services[0]
        meta = svc["metadata"]
        where = f"service {meta['namespace']}/{meta['name']}"
        sport = next((p for p in (svc.get("spec") or {}).get("ports") or []
                      if int(p.get("port", 0)) == port and (p.get("protocol") or "TCP") == protocol), None)
        if sport is None:
            return [], f"{where} has no port {port}/{protocol}"
        eps = self.endpoints.get(meta["name"], meta["namespace"]) or {}
        out: list[Route] = []
        for subset in eps.get("subsets") or []:
            ports = subset.get("ports") or []
            target = next((p for p in ports if (p.get("name") or "") == (sport.get("name") or "")
                           and (p.get("protocol") or "TCP") == protocol), None)
            if target is None and len(ports) == 1:
                target = ports[0]
            if target is None:
                continue
            for addr in subset.get("addresses") or []:
                ep = self.endpoint_at(addr.get("ip", ""))
                out.append(self._route(ep, int(target["port"]), where))
        return out, ("" if out else f"{where} has no ready endpoints")

    def _published(self, ip: str, port: int, namespace: str) -> bool:
        """Whether some Service's Endpoints in ``namespace`` (the pod's own: a virtual cluster's
        control plane publishes its ports in its host namespace) name ``ip:port`` (the syncer
        guards which loopback addresses and ports those may name). Another namespace's
        published ports are another tenant's control plane: not reachable from here."""
        return any(a.get("ip") == ip and int(p.get("port") or 0) == port
                   for eps in self.endpoints.list(namespace) for sub in eps.get("subsets") or []
                   for a in sub.get("addresses") or [] for p in sub.get("ports") or [])

    def _route(self, ep: netpol.Endpoint, port: int, via: str | None) -> Route:
        if not ep.is_pod:
            return Route(ep, port, (ep.ip, port) if _loopback(ep.ip) else None, via or "")
        pod = self._pod(ep)
        real = forward_target(pod, port) if pod else None
        return Route(ep, port, real, via or "")

    def listening(self, route: Route, protocol: str) -> bool:
        """A simulated pod listens on the ports its containers declare."""
        return declares_port(self._pod(route.dst) or {}, route.port, protocol)

    def verdict(self, src: netpol.Endpoint, route: Route, protocol: str) -> netpol.Verdict:
        return self.policy_set.check(src, route.dst, route.port, protocol)

    async def connect(self, pod: Obj, ip: str, port: int, protocol: str = "TCP",
                      ) -> tuple[Outcome, asyncio.StreamReader | None, asyncio.StreamWriter | None]:
        """Open a connection from ``pod``; the reader/writer are set when it is a real one."""
        src = self.endpoint_of(pod)
        if (_loopback(ip) and not self.services.by_index("clusterIP", ip)
                and not self._published(ip, port, pod["metadata"].get("namespace") or "")):
            # a pod's loopback is its own (its network namespace), never the host machine's:
            # only Services (the control plane's, on this host: their ClusterIP, or the address
            # and port their Endpoints publish, as KUBERNETES_SERVICE_HOST/PORT name it) lead
            # to real loopback listeners
            ip = (pod.get("status") or {}).get("podIP") or ip
            if _loopback(ip):
                return Outcome(False, "refused", "nothing listens on the pod's loopback"), None, None
        routes, why = self.routes(ip, port, protocol)
        if not routes:
            return Outcome(False, "refused", why), None, None
        route = self.rng.choice(routes)  # kube-proxy picks a backend at random
        verdict = self.verdict(src, route, protocol)
        if not verdict:
            return Outcome(False, "blocked", verdict.reason, route), None, None
        if route.real is None and not route.dst.is_pod:
            return Outcome(False, "unreachable", f"{route.dst.ip}: network unreachable (the embedded "
                                                 "host routes no traffic off this machine)", route), None, None
        if route.real is None:
            if self.listening(route, protocol):
                return Outcome(True, "", f"connected to {route.dst} port {route.port}", route), None, None
            return Outcome(False, "refused", f"nothing listens on {route.dst} port {route.port}", route), None, None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(*route.real), self.timeout)
        except (OSError, TimeoutError) as e:
            return Outcome(False, "refused", f"{route.real[0]}:{route.real[1]}: {e}", route), None, None
        return Outcome(True, "", f"connected to {route.dst} port {route.port}", route), reader, writer

    # -- names -------------------------------------------------------------------------------

    def resolv_config(self, pod: Obj) -> tuple[list[str], list[str], int]:
        spec, ns = pod.get("spec") or {}, (pod.get("metadata") or {}).get("namespace") or "default"
        policy = spec.get("dnsPolicy") or "ClusterFirst"
        cfg = spec.get("dnsConfig") or {}
        if policy == "None":
            ndots = next((int(o["value"]) for o in cfg.get("options") or []
                          if o.get("name") == "ndots" and str(o.get("value", "")).isdigit()), 1)
            return list(cfg.get("nameservers") or []), list(cfg.get("searches") or []), ndots
        return [CLUSTER_DNS], [f"{ns}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN], 5

    async def resolve(self, pod: Obj, name: str) -> Outcome | list[str]:
        """A name as the pod resolves it: a list of addresses, or why not."""
        found = await self.resolve_named(pod, name)
        return found if isinstance(found, Outcome) else found[1]

    async def resolve_named(self, pod: Obj, name: str) -> Outcome | tuple[str, list[str]]:
        """As ``resolve``, with the canonical name that answered (what the search list made
        of ``name``, as nslookup prints it), or why not."""
        try:
            ipaddress.ip_address(name)
            return name, [name]
        except ValueError:
            pass
        if name == "localhost":
            return name, ["127.0.0.1"]
        servers, searches, ndots = self.resolv_config(pod)
        src = self.endpoint_of(pod)
        last = Outcome(False, "unreachable", "no servers could be reached")
        for server in servers:
            if _loopback(server) and not self.services.by_index("clusterIP", server) \
                    and not self._published(server, 53, pod["metadata"].get("namespace") or ""):
                continue  # the pod's own loopback (as in connect): nothing listens there
            routes, _ = self.routes(server, 53, "UDP")
            route = routes[0] if routes else None
            if route is not None and route.real is not None:
                verdict = self.verdict(src, route, "UDP")
                if not verdict:
                    last = Outcome(False, "blocked", f"DNS query to {server}: {verdict.reason}", route)
                    continue
                return await self._query(route.real, name, searches, ndots)
            if server == CLUSTER_DNS and not self.services.by_index("clusterIP", server):
                return self._host_names(name, searches, ndots)
        return last

    async def _query(self, real: tuple[str, int], name: str, searches: list[str],
                     ndots: int) -> Outcome | tuple[str, list[str]]:
        # dnspython only once a simulated container asks a DNS server (~0.1 s of the
        # embedded host's start otherwise)
        import dns.asyncresolver
        import dns.exception
        import dns.name
        import dns.resolver

        r = dns.asyncresolver.Resolver(configure=False)
        r.nameservers = [real[0]]
        r.port = real[1]
        r.search = [dns.name.from_text(s) for s in searches]
        r.ndots = ndots
        r.use_search_by_default = True
        r.lifetime = self.timeout
        out: list[str] = []
        canonical = name
        try:
            for rdtype in ("A", "AAAA"):
                try:
                    answer = await r.resolve(name, rdtype, search=True)
                    out.extend(rr.to_text() for rr in answer)
                    canonical = answer.canonical_name.to_text(omit_final_dot=True)
                except dns.resolver.NoAnswer:
                    continue
        except dns.resolver.NXDOMAIN:
            return Outcome(False, "nxdomain", f"can't find {name}: NXDOMAIN")
        except (dns.exception.DNSException, OSError) as e:
            return Outcome(False, "unreachable", f"{name}: {e}")
        return (canonical, out) if out else Outcome(False, "nxdomain",
                                                    f"can't find {name}: No answer")

    def _host_names(self, name: str, searches: list[str],
                    ndots: int) -> Outcome | tuple[str, list[str]]:
        """The embedded host has no cluster DNS of its own: its kubelets answer the names of
        the host's Services (``SVC.NS.svc.cluster.local``) the way the search list finds them."""
        fq = name.endswith(".")
        name = name.rstrip(".")
        candidates = [name] if fq else (
            [name, *(f"{name}.{s}" for s in searches)] if name.count(".") >= ndots
            else [*(f"{name}.{s}" for s in searches), name])
        suffix = f".svc.{CLUSTER_DOMAIN}"
        for cand in candidates:
            if not cand.endswith(suffix):
                continue
            parts = cand[: -len(suffix)].split(".")
            if len(parts) != 2:
                continue
            svc = self.services.get(parts[0], parts[1])
            if svc is None:
                continue
            ips = [ip for ip in (svc.get("spec") or {}).get("clusterIPs") or [] if ip != "None"]
            if ips:
                return cand, ips
            eps = self.endpoints.get(parts[0], parts[1]) or {}
            ready = [a["ip"] for s in eps.get("subsets") or [] for a in s.get("addresses") or []]
            return (cand, ready) if ready else \
                Outcome(False, "nxdomain", f"can't find {name}: No answer")
        return Outcome(False, "nxdomain", f"can't find {name}: NXDOMAIN")


def _loopback(ip: str) -> bool:
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _cluster_ips(svc: Obj) -> list[str]:
    spec = svc.get("spec") or {}
    ips = list(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
    return [ip for ip in ips if ip and ip != "None"]
