"""Service ClusterIP and NodePort allocation, as pure functions of what is already in use.

Kubernetes allocates both synchronously in the API server when a Service is created, so these
allocators keep no state of their own: the caller passes the set in use (read from existing
Services, which is why allocation survives restarts) and gets a free value or an error.
"""

from __future__ import annotations

import ipaddress
import random

from vkube.api import errors
from vkube.api.errors import field_error

DEFAULT_SERVICE_CIDR = "10.96.0.0/12"
DEFAULT_NODE_PORT_RANGE = "30000-32767"


class ServiceIPAllocator:
    """ClusterIPs from ``cidr``; the first host address is the ``kubernetes`` Service's and is
    never handed out dynamically (only when requested explicitly)."""

    def __init__(self, cidr: str = DEFAULT_SERVICE_CIDR, *, seed: int | None = None) -> None:
        self.network = ipaddress.ip_network(cidr, strict=False)
        self._rand = random.Random(seed)
        first = int(self.network.network_address)
        last = int(self.network.broadcast_address)
        if self.network.version == 4 and self.network.prefixlen < 31:
            self._lo, self._hi = first + 1, last - 1  # no network / broadcast address
        else:
            self._lo, self._hi = first + 1, last
        if self._hi < self._lo:
            raise ValueError(f"service CIDR {cidr} has no usable addresses")

    @property
    def kubernetes_ip(self) -> str:
        """The address of the ``default/kubernetes`` Service (first usable address)."""
        return str(ipaddress.ip_address(self._lo))

    def contains(self, ip: str) -> bool:
        try:
            return ipaddress.ip_address(ip) in self.network
        except ValueError:
            return False

    def allocate(self, existing: set[str], requested: str | None = None) -> str:
        """A free address (``requested`` if given and free). Raises ``Invalid`` for a bad or
        taken request and ``InternalError`` when the range is full."""
        if requested:
            try:
                ip = ipaddress.ip_address(requested)
            except ValueError:
                raise self._invalid(requested, "must be a valid IP address") from None
            if ip not in self.network or not self._lo <= int(ip) <= self._hi:
                raise self._invalid(requested, "provided IP is not in the valid range. "
                                    f"The range of valid IPs is {self.network}")
            if str(ip) in existing:
                raise self._invalid(requested, "provided IP is already allocated")
            return str(ip)
        # the first address is the kubernetes Service's: dynamic allocation starts after it
        lo, hi = self._lo + 1, self._hi
        size = hi - lo + 1
        used = {int(ipaddress.ip_address(a)) for a in existing if self.contains(a)}
        if size <= 0 or sum(1 for u in used if lo <= u <= hi) >= size:
            raise errors.InternalError(f"failed to allocate a serviceIP: range {self.network} "
                                       "is full")
        start = self._rand.randrange(size)
        for i in range(size):  # linear probe from a random start: O(1) while sparse
            cand = lo + (start + i) % size
            if cand not in used:
                return str(ipaddress.ip_address(cand))
        raise errors.InternalError(f"range {self.network} is full")  # pragma: no cover

    @staticmethod
    def _invalid(value: str, msg: str) -> errors.Invalid:
        cause = field_error("spec.clusterIPs", f'Invalid value: "{value}": {msg}')
        return errors.Invalid(f"Service is invalid: {errors.cause_text(cause)}", causes=[cause])


class NodePortAllocator:
    """NodePorts from ``port_range`` (``"30000-32767"``)."""

    def __init__(self, port_range: str = DEFAULT_NODE_PORT_RANGE, *,
                 seed: int | None = None) -> None:
        lo, _, hi = port_range.partition("-")
        self.lo, self.hi = int(lo), int(hi or lo)
        self._rand = random.Random(seed)

    def allocate(self, existing: set[int], requested: int | None = None) -> int:
        if requested:
            if not self.lo <= requested <= self.hi:
                raise self._invalid(requested, "provided port is not in the valid range. "
                                    f"The range of valid ports is {self.lo}-{self.hi}")
            if requested in existing:
                raise self._invalid(requested, "provided port is already allocated")
            return requested
        size = self.hi - self.lo + 1
        start = self._rand.randrange(size)
        for i in range(size):
            cand = self.lo + (start + i) % size
            if cand not in existing:
                return cand
        raise errors.InternalError(f"failed to allocate a nodePort: range {self.lo}-{self.hi} "
                                   "is full")

    @staticmethod
    def _invalid(value: int, msg: str) -> errors.Invalid:
        cause = field_error("spec.ports[].nodePort", f"Invalid value: {value}: {msg}")
        return errors.Invalid(f"Service is invalid: {errors.cause_text(cause)}", causes=[cause])


def ips_in_use(services: list[dict]) -> set[str]:
    """ClusterIPs taken by existing Services (``None``/headless excluded)."""
    out: set[str] = set()
    for svc in services:
        spec = svc.get("spec") or {}
        for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]:
            if ip and ip != "None":
                out.add(ip)
    return out


def node_ports_in_use(services: list[dict]) -> set[int]:
    out: set[int] = set()
    for svc in services:
        spec = svc.get("spec") or {}
        for p in spec.get("ports") or []:
            if p.get("nodePort"):
                out.add(int(p["nodePort"]))
        if spec.get("healthCheckNodePort"):
            out.add(int(spec["healthCheckNodePort"]))
    return out


class ServiceIPFamilies:
    """ClusterIPs of one or two families, as kube-apiserver's ``--service-cluster-ip-range``
    ``CIDR[,CIDR]`` (the first is the primary family): ``ipFamilyPolicy``/``ipFamilies``
    decide which families a Service gets (pkg/registry/core/service: initIPFamilyFields)."""

    def __init__(self, cidrs: str = DEFAULT_SERVICE_CIDR, *, seed: int | None = None) -> None:
        parts = [c.strip() for c in cidrs.split(",") if c.strip()]
        self.allocators = {_family(ipaddress.ip_network(c, strict=False).version): ServiceIPAllocator(c, seed=seed)
                           for c in parts}
        if len(self.allocators) != len(parts) or not 1 <= len(parts) <= 2:
            raise ValueError(f"service CIDRs {cidrs!r}: one CIDR, or two of different families")
        self.families = [_family(ipaddress.ip_network(c, strict=False).version) for c in parts]

    @property
    def primary(self) -> ServiceIPAllocator:
        return self.allocators[self.families[0]]

    def families_for(self, spec: dict) -> list[str]:
        """The families a new Service gets, or Invalid naming the field."""
        policy = spec.get("ipFamilyPolicy") or "SingleStack"
        requested_ips = [ip for ip in spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
                         if ip and ip != "None"]
        fams = list(spec.get("ipFamilies") or [])
        if len(requested_ips) > 2 or len({_family_of(ip) for ip in requested_ips}) < len(requested_ips):
            raise _invalid_field("spec.clusterIPs", ",".join(requested_ips),
                                 "may specify no more than one IP for each IP family")
        if not fams and requested_ips:
            fams = [_family_of(ip) for ip in requested_ips]
        for i, f in enumerate(fams):
            if f in fams[:i]:
                cause = field_error(f"spec.ipFamilies[{i}]", f'Duplicate value: "{f}"',
                                    reason="FieldValueDuplicate")
                raise errors.Invalid(f"Service is invalid: {errors.cause_text(cause)}", causes=[cause])
        if len(fams) > 2:
            raise _invalid_field("spec.ipFamilies", ",".join(fams), "may specify no more than 2 families")
        for i, f in enumerate(fams):
            if f not in ("IPv4", "IPv6"):
                raise _invalid_field(f"spec.ipFamilies[{i}]", f, "supported values: \"IPv4\", \"IPv6\"",
                                     reason="FieldValueNotSupported")
            if f not in self.allocators and (policy != "PreferDualStack" or i == 0):
                raise _invalid_field(f"spec.ipFamilies[{i}]", f, "not configured on this cluster")
        if policy == "RequireDualStack" and len(self.families) < 2:
            raise _invalid_field("spec.ipFamilyPolicy", policy,
                                 "this cluster is not configured for dual-stack services")
        if policy == "SingleStack":
            return fams[:1] or self.families[:1]
        if policy not in ("PreferDualStack", "RequireDualStack"):
            raise _invalid_field("spec.ipFamilyPolicy", policy,
                                 'supported values: "PreferDualStack", "RequireDualStack", "SingleStack"',
                                 reason="FieldValueNotSupported")
        fams = [f for f in fams if f in self.allocators]
        return fams + [f for f in self.families if f not in fams]

    def allocate(self, spec: dict, existing: set[str]) -> None:
        """Fill ``clusterIP``, ``clusterIPs``, ``ipFamilies`` (and the policy) of a new
        Service; requested addresses are checked, the rest allocated."""
        fams = self.families_for(spec)
        requested = [ip for ip in spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
                     if ip and ip != "None"]
        if len(requested) > len(fams):
            raise _invalid_field(f"spec.clusterIPs[{len(fams)}]", requested[len(fams)],
                                 f"this service can only have {len(fams)} cluster IP(s) "
                                 f"({spec.get('ipFamilyPolicy') or 'SingleStack'})")
        ips = []
        for i, fam in enumerate(fams):
            want = requested[i] if i < len(requested) else None
            if want is not None and _family_of(want) != fam:
                raise _invalid_field(f"spec.clusterIPs[{i}]", want,
                                     f"expected an {fam} value as indicated by `ipFamilies[{i}]`")
            ips.append(self.allocators[fam].allocate(existing, want))
        spec["clusterIPs"] = ips
        spec["clusterIP"] = ips[0]
        spec["ipFamilies"] = fams
        spec.setdefault("ipFamilyPolicy", "SingleStack")


def _family(version: int) -> str:
    return "IPv6" if version == 6 else "IPv4"


def _family_of(ip: str) -> str:
    try:
        return _family(ipaddress.ip_address(ip).version)
    except ValueError:
        return "IPv4"  # the allocator names the bad value


def _invalid_field(path: str, value: str, msg: str, *, reason: str = "FieldValueInvalid") -> errors.Invalid:
    cause = field_error(path, f'Invalid value: "{value}": {msg}', reason=reason)
    return errors.Invalid(f"Service is invalid: {errors.cause_text(cause)}", causes=[cause])
