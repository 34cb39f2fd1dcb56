"""The Services a virtual cluster's pods find their control plane by: ``default/kubernetes``
(the API server) and ``kube-system/kube-dns`` (the cluster DNS), kept as kube-apiserver keeps
``default/kubernetes``.

Both are selector-less Services whose Endpoints name the address the control plane serves on.
The syncer does the rest as for any tenant Service: the host Service it creates fronts the
control plane (its endpoints are these), the host's ClusterIP comes back into the virtual
Service, and synced pods get that address (``KUBERNETES_SERVICE_HOST``, the nameserver of
their ``dnsConfig``). Like kube-apiserver's endpoint reconciler this re-asserts them, so a
deleted or edited object comes back: on a period, reading the API (10 s, as upstream) — or,
given the cluster's informer caches, whenever the cache shows a change to one of them, reading
the cache (an idle cluster then sends no request and wakes only every ``CACHED_SECONDS``)."""

from __future__ import annotations

import asyncio
import copy
import logging
from dataclasses import dataclass

from collections.abc import Callable

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.client import Client
from vkube.client.client import Resource
from vkube.client.resources import ENDPOINTS, SERVICES
from vkube.controllers.informer import Informer

log = logging.getLogger(__name__)

#: kube-apiserver's endpoint reconciler period (--endpoint-reconciler-type=lease: 10 s)
RECONCILE_SECONDS = 10.0
#: with informer caches a change is seen as it happens; this pass is only a safety net
CACHED_SECONDS = 300.0


@dataclass(frozen=True)
class Backend:
    """One Service and where its traffic goes (the control plane's own listener)."""

    namespace: str
    name: str
    labels: dict[str, str]
    #: (port name, service port, protocol)
    ports: tuple[tuple[str, int, str], ...]
    ip: str
    target_port: int


def api_backend(ip: str, port: int) -> Backend:
    return Backend("default", "kubernetes", {"component": "apiserver", "provider": "kubernetes"},
                   (("https", 443, "TCP"),), ip, port)


def dns_backend(ip: str, port: int) -> Backend:
    return Backend("kube-system", "kube-dns",
                   {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS",
                    "kubernetes.io/cluster-service": "true"},
                   (("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")), ip, port)


def desired_service(b: Backend) -> Obj:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": b.name, "namespace": b.namespace, "labels": dict(b.labels)},
            "spec": {"type": "ClusterIP", "sessionAffinity": "None",
                     "ports": [{"name": n, "port": p, "protocol": proto, "targetPort": b.target_port}
                               for n, p, proto in b.ports]}}


def desired_subsets(b: Backend) -> list[Obj]:
    return [{"addresses": [{"ip": b.ip}],
             "ports": [{"name": n, "port": b.target_port, "protocol": proto}
                       for n, _, proto in b.ports]}]


class InClusterServices:
    """``await InClusterServices(client, [backends]).run()`` until cancelled; ``synced`` is
    set after the first pass created or repaired every Service and Endpoints."""

    def __init__(self, client: Client, backends: list[Backend], *,
                 period: float | None = None,
                 informers: Callable[[Resource], Informer] | None = None) -> None:
        """``informers``: the cluster's shared informer caches (the controller manager's),
        read instead of the API and watched for changes to the backends' objects."""
        self.client = client
        self.backends = backends
        self._caches: dict[Resource, Informer] = {}
        self._changed = asyncio.Event()
        if informers is not None:
            for res in (SERVICES, ENDPOINTS):
                inf = self._caches[res] = informers(res)
                inf.add_handler(self._on_change)
        self.period = period if period is not None else CACHED_SECONDS if self._caches else RECONCILE_SECONDS
        self.synced = asyncio.Event()

    def _on_change(self, typ: str, obj: Obj, old: Obj | None) -> None:
        meta = obj.get("metadata") or {}
        if any((b.namespace, b.name) == (meta.get("namespace"), meta.get("name")) for b in self.backends):
            self._changed.set()

    async def run(self) -> None:
        while True:
            self._changed.clear()
            try:
                for b in self.backends:
                    await self.reconcile(b)
                self.synced.set()
            except (errors.StatusError, OSError) as e:  # the API restarting: try again next period
                log.warning("in-cluster services: %s", e)
            if not self.synced.is_set():
                await asyncio.sleep(0.2)
                continue
            try:  # a change to one of them (an informer event) or the period, whichever first
                await asyncio.wait_for(self._changed.wait(), self.period)
            except TimeoutError:
                pass

    async def _get(self, res: Resource, b: Backend) -> Obj | None:
        inf = self._caches.get(res)
        if inf is not None and inf.synced:
            return inf.get(b.name, b.namespace)
        try:
            return await self.client.get(res, b.name, namespace=b.namespace)
        except errors.NotFound:
            return None

    async def reconcile(self, b: Backend) -> None:
        want = desired_service(b)
        svc = await self._get(SERVICES, b)
        if svc is None:
            try:
                await self.client.create(SERVICES, want, namespace=b.namespace)
            except errors.AlreadyExists:
                pass
        elif _ports(svc) != _ports(want) or (svc.get("spec") or {}).get("selector"):
            new = copy.deepcopy(svc)
            new["spec"]["ports"] = want["spec"]["ports"]
            new["spec"].pop("selector", None)
            await self.client.update(SERVICES, new)
        subsets = desired_subsets(b)
        ep = await self._get(ENDPOINTS, b)
        if ep is None:
            try:
                await self.client.create(ENDPOINTS, {
                    "apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": b.name, "namespace": b.namespace, "labels": dict(b.labels)},
                    "subsets": subsets}, namespace=b.namespace)
            except errors.AlreadyExists:
                pass
        elif ep.get("subsets") != subsets:
            new = copy.deepcopy(ep)
            new["subsets"] = subsets
            await self.client.update(ENDPOINTS, new)


def _ports(svc: Obj) -> list[tuple[object, ...]]:
    return sorted((p.get("name"), p.get("port"), p.get("protocol") or "TCP", p.get("targetPort"))
                  for p in (svc.get("spec") or {}).get("ports") or [])
