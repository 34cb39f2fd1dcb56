"""IPAddress objects for Service ClusterIPs, as kube-apiserver's IP allocator keeps them
(``MultiCIDRServiceAllocator``, on by default since 1.33, and its repair loop): every allocated
ClusterIP has an ``networking.k8s.io/v1`` IPAddress named by the address, pointing at its
Service and labelled as the allocator's; an IPAddress of the allocator whose Service is gone
(or holds another address now) is removed."""

from __future__ import annotations

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.client.client import Resource
from vkube.client.resources import SERVICES
from vkube.controllers.runtime import Controller

__all__ = ["IPAddressController", "IPADDRESSES", "MANAGED_BY", "ALLOCATOR"]

IPADDRESSES = Resource("networking.k8s.io", "v1", "ipaddresses", False, "IPAddress")
MANAGED_BY = "ipaddress.kubernetes.io/managed-by"
ALLOCATOR = "ipallocator.k8s.io"


def _cluster_ips(svc: Obj) -> list[str]:
    spec = svc.get("spec") or {}
    ips = spec.get("clusterIPs") or ([spec["clusterIP"]] if spec.get("clusterIP") else [])
    return [ip for ip in ips if ip and ip != "None"]


class IPAddressController(Controller):
    name = "ipaddress-repair"
    workers = 1

    def setup(self) -> None:
        self.services = self.mgr.informer(SERVICES)
        self.addresses = self.mgr.informer(IPADDRESSES)
        self.services.add_handler(self._on_service)
        self.addresses.add_handler(lambda typ, obj, old: self.queue.add(obj["metadata"]["name"]))
        self.services.add_index("ip", _cluster_ips)

    def _on_service(self, typ: str, svc: Obj, old: Obj | None) -> None:
        for ip in set(_cluster_ips(svc)) | set(_cluster_ips(old or {})):
            self.queue.add(ip)

    async def reconcile(self, key: str) -> float | None:
        owners = [s for s in self.services.by_index("ip", key) if not s["metadata"].get("deletionTimestamp")]
        have = self.addresses.get(key)
        if not owners:
            if have is not None and (have["metadata"].get("labels") or {}).get(MANAGED_BY) == ALLOCATOR:
                try:
                    await self.client.delete(IPADDRESSES, key)
                except errors.NotFound:
                    pass
            return None
        svc = owners[0]
        ref = {"group": "", "resource": "services", "namespace": svc["metadata"]["namespace"],
               "name": svc["metadata"]["name"]}
        if have is not None:
            if (have.get("spec") or {}).get("parentRef") != ref \
                    and (have["metadata"].get("labels") or {}).get(MANAGED_BY) == ALLOCATOR:
                await self.client.delete(IPADDRESSES, key)  # parentRef is immutable: recreate
                return 0.1
            return None
        try:
            await self.client.create(IPADDRESSES, {
                "apiVersion": "networking.k8s.io/v1", "kind": "IPAddress",
                "metadata": {"name": key, "labels": {MANAGED_BY: ALLOCATOR}},
                "spec": {"parentRef": ref}})
        except errors.AlreadyExists:
            pass
        return None
