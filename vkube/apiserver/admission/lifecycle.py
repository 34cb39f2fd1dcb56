"""NamespaceLifecycle and service address allocation (the latter is the service registry's
work upstream; here a plugin that runs after the chain)."""

from __future__ import annotations

import asyncio

from vkube.api import errors
from vkube.api.ipalloc import (DEFAULT_SERVICE_CIDR, NodePortAllocator, ServiceIPFamilies, ips_in_use,
                               node_ports_in_use)
from vkube.apiserver.context import AdmissionRequest, Context

_IMMORTAL = ("default", "kube-system", "kube-public", "kube-node-lease")


class NamespaceLifecycle:
    """Namespaced objects need an existing, non-terminating namespace; the system namespaces
    cannot be deleted. Upstream's Lifecycle is a mutating plugin: it runs first, so no later
    plugin looks anything up in a namespace that does not exist."""

    async def mutate(self, ctx: Context, req: AdmissionRequest) -> None:
        spec = req.spec
        if spec.group == "" and spec.kind == "Namespace":
            if req.operation == "DELETE" and req.name in _IMMORTAL:
                raise errors.forbidden("namespaces", req.name, "this namespace may not be deleted")
            return
        if not spec.namespaced or req.operation != "CREATE" or not req.namespace:
            return
        if spec.group == "" and spec.kind == "Event":
            pass  # events may describe a terminating namespace's objects
        namespaces = ctx.cache_for("", "Namespace")
        if namespaces is None:
            return
        ns = await namespaces.get(req.request, None, req.namespace)
        if ns is None:
            raise errors.not_found("namespaces", req.namespace)
        if ns["metadata"].get("deletionTimestamp") and not (spec.group == "" and spec.kind == "Event"):
            raise errors.forbidden(
                spec.plural, req.name or str((req.obj or {}).get("metadata", {}).get("generateName") or ""),
                f"unable to create new content in namespace {req.namespace} because it is being "
                "terminated", group=spec.group)


class ServiceAllocation:
    """ClusterIPs and NodePorts assigned (or checked, when requested) on create, as
    kube-apiserver's service registry does. Allocation is serialised per control plane; the
    store is the source of truth, so restarts never reuse an address."""

    def __init__(self, cidr: str = DEFAULT_SERVICE_CIDR) -> None:
        self.ips = ServiceIPFamilies(cidr)
        self.ports = NodePortAllocator()
        self.lock = asyncio.Lock()

    async def admit(self, ctx: Context, req: AdmissionRequest) -> None:
        if not (req.spec.group == "" and req.spec.kind == "Service") or req.obj is None:
            return
        if req.operation not in ("CREATE", "UPDATE") or not ctx.allocate_service_ips:
            return
        spec = req.obj.setdefault("spec", {})
        old_spec = (req.old or {}).get("spec") or {}
        stype = spec.get("type", "ClusterIP")
        ip = spec.get("clusterIP")
        new_ip = stype != "ExternalName" and ip != "None" and (not ip or ip != old_spec.get("clusterIP"))
        old_ports = {p.get("nodePort") for p in old_spec.get("ports") or []}
        new_ports = stype in ("NodePort", "LoadBalancer") and any(
            not p.get("nodePort") or p.get("nodePort") not in old_ports for p in spec.get("ports") or [])
        if not new_ip and not new_ports:
            return
        async with self.lock:
            existing = [s for s in (await ctx.storage(req.spec).list(req.request, None)).items
                        if (s["metadata"].get("namespace"), s["metadata"]["name"]) != (req.namespace, req.name)]
            if new_ip:
                if ip and (spec.get("clusterIPs") or [ip])[0] != ip:
                    spec["clusterIPs"] = [ip]  # a changed clusterIP names the primary address
                try:  # one or two families (ipFamilyPolicy, ipFamilies)
                    self.ips.allocate(spec, ips_in_use(existing))
                except errors.Invalid as exc:  # named as kube-apiserver names it
                    raise errors.invalid("Service", req.name, exc.causes) from None
            if new_ports:
                used = node_ports_in_use(existing)
                for i, p in enumerate(spec.get("ports") or []):
                    if p.get("nodePort") in old_ports and p.get("nodePort"):
                        used.add(p["nodePort"])
                        continue
                    try:
                        p["nodePort"] = self.ports.allocate(used, p.get("nodePort") or None)
                    except errors.Invalid as exc:
                        raise errors.invalid("Service", req.name, [
                            dict(c, field=f"spec.ports[{i}].nodePort") for c in exc.causes]) from None
                    used.add(p["nodePort"])
