"""The records of a cluster's DNS, computed from its Services, EndpointSlices and Pods.

Follows the Kubernetes DNS-Based Service Discovery specification (kubernetes/dns,
``docs/specification.md``, schema 1.1.0) as CoreDNS's ``kubernetes`` plugin answers it with
``pods verified``:

- ``SVC.NS.svc.ZONE``: A/AAAA → the ClusterIP(s) of a ClusterIP Service; for a headless Service
  (``clusterIP: None``) one record per *ready* endpoint address (every address when
  ``publishNotReadyAddresses``); CNAME → ``spec.externalName`` for an ExternalName Service.
- ``HOSTNAME.SVC.NS.svc.ZONE``: A/AAAA of a headless Service's endpoint that has a hostname
  (StatefulSet pods behind their governing Service).
- ``_PORT._PROTO.SVC.NS.svc.ZONE``: SRV per named port (target the Service name, or each
  endpoint's ``HOSTNAME.SVC...`` for headless Services).
- ``A-B-C-D.NS.pod.ZONE``: A of a pod with that IP in that namespace.
- ``dns-version.ZONE``: TXT ``1.1.0``; PTR for ClusterIPs and endpoint addresses.

A name inside the zone that is an existing prefix of other names (``NS.svc.ZONE``,
``svc.ZONE``) has no records but exists: NOERROR with no answer (NODATA), as CoreDNS gives;
a name of the right family with no data for the asked type (AAAA of an IPv4-only Service) is
NODATA too; anything else inside the zone is NXDOMAIN.

Pure: plain dicts in, tuples out, no I/O, so the table tests need no server."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

from vkube.api.meta import Obj

#: what CoreDNS's kubernetes plugin answers with by default (seconds)
DEFAULT_TTL = 5
SCHEMA_VERSION = "1.1.0"

A, AAAA, CNAME, SRV, PTR, TXT, ANY = "A", "AAAA", "CNAME", "SRV", "PTR", "TXT", "ANY"
NOERROR, NXDOMAIN = "NOERROR", "NXDOMAIN"


@dataclass(frozen=True, slots=True)
class Record:
    """One answer: ``name`` is absolute (trailing dot); ``value`` is an address, a target name
    (CNAME/PTR, absolute), text (TXT), or for SRV ``(priority, weight, port, target)``."""

    name: str
    rtype: str
    value: object
    ttl: int = DEFAULT_TTL


@dataclass(frozen=True, slots=True)
class Answer:
    rcode: str
    records: tuple[Record, ...] = ()
    #: True when the name lies inside the cluster zone (never forwarded upstream)
    authoritative: bool = True


@dataclass
class _Names:
    """Every owner name of the zone: its records, keyed by lower-case absolute name."""

    records: dict[str, list[Record]] = field(default_factory=dict)

    def add(self, rec: Record) -> None:
        self.records.setdefault(rec.name.lower(), []).append(rec)


def _fqdn(*labels: str) -> str:
    return ".".join(label.strip(".") for label in labels if label) + "."


def _family(ip: str) -> str | None:
    try:
        return AAAA if ipaddress.ip_address(ip).version == 6 else A
    except ValueError:
        return None


def _reverse(ip: str) -> str:
    return ipaddress.ip_address(ip).reverse_pointer + "."


def _addr_records(name: str, ips: list[str], ttl: int) -> list[Record]:
    out = []
    for ip in ips:
        fam = _family(ip)
        if fam is not None:
            out.append(Record(name, fam, ip, ttl))
    return out


def _cluster_ips(svc: Obj) -> list[str]:
    spec = svc.get("spec") or {}
    ips = list(spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else []))
    return [ip for ip in ips if ip and ip != "None"]


def _is_headless(svc: Obj) -> bool:
    return (svc.get("spec") or {}).get("clusterIP") == "None"


def _slice_service(es: Obj) -> str | None:
    return ((es.get("metadata") or {}).get("labels") or {}).get("kubernetes.io/service-name")


def _endpoint_ready(ep: Obj) -> bool:
    ready = (ep.get("conditions") or {}).get("ready")
    return ready is None or bool(ready)  # nil means ready, as the EndpointSlice API says


def _endpoint_hostname(ep: Obj, ip: str) -> str:
    """The endpoint's own hostname, else the address with dashes, as CoreDNS names them."""
    if ep.get("hostname"):
        return str(ep["hostname"])
    return ip.replace(".", "-").replace(":", "-")


class Zone:
    """A snapshot of one cluster's records. Build with :meth:`build`; answer with
    :meth:`resolve`. Rebuilt on every change (a few thousand objects take milliseconds), so
    readers never see a half-applied update."""

    def __init__(self, domain: str = "cluster.local", *, ttl: int = DEFAULT_TTL) -> None:
        self.domain = domain.strip(".").lower()
        self.ttl = ttl
        self._names = _Names()
        self._ptr: dict[str, list[Record]] = {}
        self._exists: set[str] = set()

    @classmethod
    def build(cls, *, services: list[Obj], slices: list[Obj], pods: list[Obj],
              domain: str = "cluster.local", ttl: int = DEFAULT_TTL) -> "Zone":
        zone = cls(domain, ttl=ttl)
        by_service: dict[tuple[str, str], list[Obj]] = {}
        for es in slices:
            svc_name = _slice_service(es)
            ns = (es.get("metadata") or {}).get("namespace")
            if svc_name and ns:
                by_service.setdefault((ns, svc_name), []).append(es)
        for svc in services:
            meta = svc.get("metadata") or {}
            ns, name = meta.get("namespace"), meta.get("name")
            if ns and name:
                zone._add_service(svc, ns, name, by_service.get((ns, name), []))
        for pod in pods:
            zone._add_pod(pod)
        zone._add(Record(_fqdn("dns-version", zone.domain), TXT, SCHEMA_VERSION, ttl))
        return zone

    # -- building ----------------------------------------------------------------------------

    def _add(self, rec: Record) -> None:
        self._names.add(rec)
        # every ancestor inside the zone exists (NODATA rather than NXDOMAIN)
        labels = rec.name.lower().rstrip(".").split(".")
        for i in range(1, len(labels)):
            self._exists.add(".".join(labels[i:]) + ".")

    def _add_ptr(self, ip: str, target: str) -> None:
        try:
            name = _reverse(ip)
        except ValueError:
            return
        self._ptr.setdefault(name, []).append(Record(name, PTR, target, self.ttl))

    def _add_service(self, svc: Obj, ns: str, name: str, slices: list[Obj]) -> None:
        spec = svc.get("spec") or {}
        base = _fqdn(name, ns, "svc", self.domain)
        self._exists.add(base.lower())
        if spec.get("type") == "ExternalName":
            if spec.get("externalName"):
                self._add(Record(base, CNAME, _fqdn(spec["externalName"]), self.ttl))
            return
        publish_all = bool(spec.get("publishNotReadyAddresses"))
        if not _is_headless(svc):
            for rec in _addr_records(base, _cluster_ips(svc), self.ttl):
                self._add(rec)
                self._add_ptr(str(rec.value), base)
            for port in spec.get("ports") or []:
                if port.get("name"):
                    proto = str(port.get("protocol") or "TCP").lower()
                    self._add(Record(_fqdn(f"_{port['name']}", f"_{proto}", base), SRV,
                                     (0, 100, int(port.get("port") or 0), base), self.ttl))
            return
        for es in slices:
            ports = es.get("ports") or []
            for ep in es.get("endpoints") or []:
                if not (publish_all or _endpoint_ready(ep)):
                    continue
                for ip in ep.get("addresses") or []:
                    host = _endpoint_hostname(ep, ip)
                    host_name = _fqdn(host, base)
                    for rec in _addr_records(base, [ip], self.ttl):
                        self._add(rec)
                    for rec in _addr_records(host_name, [ip], self.ttl):
                        self._add(rec)
                    self._add_ptr(ip, host_name)
                    for port in ports:
                        if port.get("name"):
                            proto = str(port.get("protocol") or "TCP").lower()
                            self._add(Record(_fqdn(f"_{port['name']}", f"_{proto}", base), SRV,
                                             (0, 100, int(port.get("port") or 0), host_name),
                                             self.ttl))

    def _add_pod(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        status = pod.get("status") or {}
        ns = meta.get("namespace")
        ips = [p.get("ip") for p in status.get("podIPs") or [] if p.get("ip")]
        if not ips and status.get("podIP"):
            ips = [status["podIP"]]
        if not ns or status.get("phase") in ("Succeeded", "Failed"):
            return
        for ip in ips:
            dashed = ip.replace(".", "-").replace(":", "-")
            for rec in _addr_records(_fqdn(dashed, ns, "pod", self.domain), [ip], self.ttl):
                self._add(rec)

    # -- answering ---------------------------------------------------------------------------

    def in_zone(self, qname: str) -> bool:
        name = qname.lower().rstrip(".")
        return name == self.domain or name.endswith("." + self.domain)

    def resolve(self, qname: str, qtype: str) -> Answer | None:
        """Answer ``qname``/``qtype``; None when the name is outside the zone (and is not a
        reverse name this zone knows), i.e. a query to forward upstream."""
        name = qname.lower()
        if not name.endswith("."):
            name += "."
        if name.endswith(".in-addr.arpa.") or name.endswith(".ip6.arpa."):
            ptrs = self._ptr.get(name)
            if ptrs is None:
                return None
            return Answer(NOERROR, tuple(ptrs) if qtype in (PTR, ANY) else ())
        if not self.in_zone(name):
            return None
        records = self._names.records.get(name)
        if records is None:
            exists = name in self._exists or name == self.domain + "."
            return Answer(NOERROR if exists else NXDOMAIN)
        if qtype == ANY:
            return Answer(NOERROR, tuple(records))
        match = tuple(r for r in records if r.rtype == qtype)
        if not match:
            match = tuple(r for r in records if r.rtype == CNAME)  # CNAME answers any type
        return Answer(NOERROR, match)
