"""Built-in admission: namespace lifecycle and service address allocation."""

from __future__ import annotations

import asyncio
import ipaddress

from vkube.api import errors
from vkube.apiserver.context import AdmissionRequest, Context

_IMMORTAL = ("default", "kube-system", "kube-public", "kube-node-lease")


class NamespaceLifecycle:
    """Namespaced objects need an existing, non-terminating namespace; the system namespaces
    cannot be deleted."""

    async def admit(self, ctx: Context, req: AdmissionRequest) -> None:
        spec = req.spec
        if spec.group == "" and spec.kind == "Namespace":
            if req.operation == "DELETE" and req.name in _IMMORTAL:
                raise errors.Forbidden(f'namespaces "{req.name}" is forbidden: this namespace may not be deleted')
            return
        if not spec.namespaced or req.operation != "CREATE" or not req.namespace:
            return
        if spec.group == "" and spec.kind == "Event":
            pass  # events may describe a terminating namespace's objects
        ns_storage = ctx.storage_for("", "Namespace")
        if ns_storage is None:
            return
        ns = await ns_storage.get_or_none(None, req.namespace)
        if ns is None:
            raise errors.NotFound(f'namespaces "{req.namespace}" not found',
                                  details={"name": req.namespace, "kind": "namespaces"})
        if ns["metadata"].get("deletionTimestamp") and not (spec.group == "" and spec.kind == "Event"):
            raise errors.Forbidden(
                f'{spec.group_resource} "{req.name}" is forbidden: unable to create new content in '
                f"namespace {req.namespace} because it is being terminated"
            )


class ServiceAllocation:
    """ClusterIPs and NodePorts assigned on create, as kube-apiserver's service registry does.
    Allocation is serialised per control plane; the store is the source of truth, so restarts
    never reuse an address."""

    def __init__(self, cidr: str = "10.96.0.0/12") -> None:
        self.network = ipaddress.ip_network(cidr)
        self.lock = asyncio.Lock()
        self._next_ip = 10
        self._next_port = 0

    async def admit(self, ctx: Context, req: AdmissionRequest) -> None:
        if not (req.spec.group == "" and req.spec.kind == "Service") or req.obj is None:
            return
        if req.operation == "UPDATE" and req.old is not None:
            old_spec = req.old.get("spec") or {}
            new_spec = req.obj.setdefault("spec", {})
            if old_spec.get("clusterIP") and not new_spec.get("clusterIP") and new_spec.get("type") != "ExternalName":
                new_spec["clusterIP"] = old_spec["clusterIP"]
                new_spec["clusterIPs"] = old_spec.get("clusterIPs", [old_spec["clusterIP"]])
            if new_spec.get("type") in ("NodePort", "LoadBalancer"):
                old_ports = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in old_spec.get("ports") or []}
                for p in new_spec.get("ports") or []:
                    if not p.get("nodePort") and old_ports.get((p.get("port"), p.get("protocol", "TCP"))):
                        p["nodePort"] = old_ports[(p.get("port"), p.get("protocol", "TCP"))]
        if req.operation not in ("CREATE", "UPDATE") or not ctx.allocate_service_ips:
            return
        spec = req.obj.setdefault("spec", {})
        stype = spec.get("type", "ClusterIP")
        need_ip = stype != "ExternalName" and not spec.get("clusterIP")
        need_ports = stype in ("NodePort", "LoadBalancer") and any(not p.get("nodePort") for p in spec.get("ports") or [])
        if not need_ip and not need_ports:
            return
        storage = ctx.storage(req.spec)
        async with self.lock:
            existing = (await storage.list(None)).items
            if need_ip:
                used = {s.get("spec", {}).get("clusterIP") for s in existing}
                spec["clusterIP"] = self._allocate_ip(used)
                spec["clusterIPs"] = [spec["clusterIP"]]
            if need_ports:
                used_ports = {p.get("nodePort") for s in existing for p in (s.get("spec") or {}).get("ports") or []}
                used_ports |= {p.get("nodePort") for p in spec.get("ports") or []}
                for p in spec.get("ports") or []:
                    if not p.get("nodePort"):
                        p["nodePort"] = self._allocate_port(used_ports)
                        used_ports.add(p["nodePort"])

    def _allocate_ip(self, used: set) -> str:
        size = self.network.num_addresses
        for i in range(size - 2):
            offset = 1 + (self._next_ip + i) % (size - 2)
            ip = str(self.network.network_address + offset)
            if ip not in used:
                self._next_ip = offset + 1
                return ip
        raise errors.InternalError("failed to allocate a serviceIP: range is full")

    def _allocate_port(self, used: set) -> int:
        for i in range(2768):
            port = 30000 + (self._next_port + i) % 2768
            if port not in used:
                self._next_port = port - 30000 + 1
                return port
        raise errors.InternalError("failed to allocate a nodePort: range is full")
