"""``mapServices``: host services shown inside the virtual cluster, virtual services published
on the host under a chosen name.

- fromHost ``{from: HOSTNS/NAME, to: VNS/NAME}``: a selector-less virtual Service with the host
  Service's ClusterIP and ports, so virtual pods reach it by name, and its Endpoints and one
  EndpointSlice copied from the host Service's Endpoints (addresses of host pods, so without
  targetRefs; owned by the virtual Service, so they go with it).
- fromVirtual ``{from: VNS/NAME, to: NAME}``: a host Service ``NAME`` in the host namespace
  selecting the same synced pods, so host pods reach it as ``NAME.HOSTNS``.
"""

from __future__ import annotations

import copy
import ipaddress
from typing import Any

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.client.resources import ENDPOINTS, ENDPOINTSLICES, SERVICES
from vkube.controllers.informer import Informer
from vkube.syncer.base import KindSyncer, SyncContext, delete_ignore_missing, deleting
from vkube.syncer.refusals import is_refusal
from vkube.syncer.values import ServiceMapping

ANN_FROM_HOST = "vkube.io/mapped-from-host"
ANN_FROM_VIRTUAL = "vkube.io/mapped-from-virtual"


def split_ref(ref: str, default_ns: str) -> tuple[str, str]:
    ns, _, name = ref.rpartition("/")
    return ns or default_ns, name


def _ports(spec: Obj) -> list[Obj]:
    return [{k: v for k, v in p.items() if k != "nodePort"} for p in spec.get("ports") or []]


GC_KEY = "gc"
SLICE_SUFFIX = "-mapped"
SLICE_MANAGER = "vkube.io-servicemap"


def _subsets(hep: Obj | None) -> list[Obj]:
    """The host Endpoints' subsets without targetRefs (host pods are no virtual objects)."""
    out = copy.deepcopy((hep or {}).get("subsets") or [])
    for sub in out:
        for key in ("addresses", "notReadyAddresses"):
            for a in sub.get(key) or []:
                a.pop("targetRef", None)
    return out


def _slice(subsets: list[Obj]) -> Obj:
    """One EndpointSlice's fields from Endpoints subsets, as the mirroring controller makes
    them (the address family of the first address; ready from the subset list)."""
    endpoints: list[Obj] = []
    ports: list[Obj] = []
    family = "IPv4"
    for sub in subsets:
        for p in sub.get("ports") or []:
            port = {k: p[k] for k in ("name", "port", "protocol", "appProtocol") if k in p}
            if port not in ports:
                ports.append(port)
        for key, ready in (("addresses", True), ("notReadyAddresses", False)):
            for a in sub.get(key) or []:
                ep: Obj = {"addresses": [a["ip"]], "conditions": {"ready": ready}}
                if a.get("nodeName"):
                    ep["nodeName"] = a["nodeName"]
                if a.get("hostname"):
                    ep["hostname"] = a["hostname"]
                endpoints.append(ep)
    if endpoints and ipaddress.ip_address(endpoints[0]["addresses"][0]).version == 6:
        family = "IPv6"
    return {"addressType": family, "endpoints": endpoints, "ports": ports}


async def _delete_uid(client: Any, obj: Obj) -> None:
    """Delete exactly ``obj`` (never a newer object of the same name)."""
    meta = obj["metadata"]
    try:
        await client.delete(SERVICES, meta["name"], namespace=meta["namespace"],
                            preconditions={"uid": meta["uid"]})
    except (errors.NotFound, errors.Conflict):
        pass


def _ann(obj: Obj | None, key: str) -> str | None:
    return (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(key)


class ServiceMapSyncer(KindSyncer):
    """Keys: ``host/I`` and ``virtual/I``, the index of a mapping in values."""

    kind = "servicemap"
    workers = 1

    def __init__(self, ctx: SyncContext) -> None:
        super().__init__(ctx)
        self.from_host = ctx.values.map_services.from_host
        self.from_virtual = ctx.values.map_services.from_virtual
        self._source: dict[str, Informer] = {}
        self._source_eps: dict[str, Informer] = {}

    def setup(self) -> None:
        inf = self.ctx.informers
        self.vsvc = inf.virtual(SERVICES)
        self.hsvc = inf.host(SERVICES)
        self.vsvc.add_handler(lambda t, o, old: self._all())
        self.hsvc.add_handler(lambda t, o, old: self._all())
        for m in self.from_host:
            ns, _ = split_ref(m.from_, "default")
            if ns not in self._source:
                src = inf.host_in(SERVICES, ns)
                src.add_handler(lambda t, o, old: self._all())
                self._source[ns] = src
                eps = inf.host_in(ENDPOINTS, ns)
                eps.add_handler(lambda t, o, old: self._all())
                self._source_eps[ns] = eps
        if self.from_host:
            self.vep = inf.virtual(ENDPOINTS)
            self.vslices = inf.virtual(ENDPOINTSLICES)

    def _all(self) -> None:
        for k in self.initial_keys():
            self.enqueue(k)

    def initial_keys(self) -> list[str]:
        return [f"host/{i}" for i in range(len(self.from_host))] + \
            [f"virtual/{i}" for i in range(len(self.from_virtual))] + [GC_KEY]

    async def reconcile(self, key: str) -> None:
        if key == GC_KEY:
            await self._collect()
            return
        side, _, idx = key.partition("/")
        if side == "host":
            await self._from_host(self.from_host[int(idx)])
        else:
            await self._from_virtual(self.from_virtual[int(idx)])

    async def _collect(self) -> None:
        """Mapped Services whose mapping is no longer in the values (removed or changed by
        ``vkube create --upgrade``) are deleted, on both sides."""
        for vsvc in self.vsvc.list():
            meta = vsvc["metadata"]
            src = _ann(vsvc, ANN_FROM_HOST)
            if src is not None and not any(
                    m.from_ == src and split_ref(m.to, "default") == (meta["namespace"],
                                                                      meta["name"])
                    for m in self.from_host):
                await _delete_uid(self.ctx.virtual, vsvc)
        for hsvc in self.hsvc.list():
            src = _ann(hsvc, ANN_FROM_VIRTUAL)
            if src is not None and self.tr.is_owned(hsvc) and not any(
                    m.from_ == src and m.to == hsvc["metadata"]["name"]
                    for m in self.from_virtual):
                await _delete_uid(self.ctx.host, hsvc)

    async def _from_host(self, m: ServiceMapping) -> None:
        hns, hname = split_ref(m.from_, "default")
        vns, vname = split_ref(m.to, "default")
        hsvc = self._source[hns].get(hname, hns)
        vsvc = self.vsvc.get(vname, vns)
        if vsvc is not None and _ann(vsvc, ANN_FROM_HOST) != m.from_:
            return  # the tenant's own service: leave it
        if hsvc is None or not (hsvc.get("spec") or {}).get("clusterIP"):
            if vsvc is not None:
                await delete_ignore_missing(self.ctx.virtual, SERVICES, vname, vns)
            return
        hspec = hsvc["spec"]
        spec = {"type": "ClusterIP", "ports": _ports(hspec), "clusterIP": hspec["clusterIP"],
                "clusterIPs": hspec.get("clusterIPs") or [hspec["clusterIP"]]}
        if vsvc is None:
            try:
                await self.ctx.virtual.create(SERVICES, {
                    "apiVersion": "v1", "kind": "Service",
                    "metadata": {"name": vname, "namespace": vns,
                                 "annotations": {ANN_FROM_HOST: m.from_}},
                    "spec": spec}, namespace=vns)
            except errors.AlreadyExists:
                pass
            return
        vspec = vsvc.get("spec") or {}
        if vspec.get("clusterIP") != spec["clusterIP"] and vspec.get("clusterIP"):
            # ClusterIP is immutable: the host service was recreated, so recreate ours
            await delete_ignore_missing(self.ctx.virtual, SERVICES, vname, vns)
            return
        if _ports(vspec) != spec["ports"] or not vspec.get("clusterIP"):
            new = copy.deepcopy(vsvc)
            new["spec"].update(spec)
            await self.ctx.virtual.update(SERVICES, new)
            return
        hep = self._source_eps[hns].get(hname, hns)
        await self._endpoints(vsvc, m, _subsets(hep))

    async def _endpoints(self, vsvc: Obj, m: ServiceMapping, subsets: list[Obj]) -> None:
        """The mapped Service's Endpoints and EndpointSlice, as the host's say."""
        meta = vsvc["metadata"]
        vns, vname = meta["namespace"], meta["name"]
        owner = [{"apiVersion": "v1", "kind": "Service", "name": vname, "uid": meta["uid"],
                  "controller": True, "blockOwnerDeletion": True}]
        ann = {ANN_FROM_HOST: m.from_}
        want_ep = {"apiVersion": "v1", "kind": "Endpoints",
                   "metadata": {"name": vname, "namespace": vns, "annotations": ann,
                                "ownerReferences": owner}, "subsets": subsets}
        await self._put(ENDPOINTS, self.vep.get(vname, vns), want_ep, "subsets")
        sname = f"{vname[:63 - len(SLICE_SUFFIX)]}{SLICE_SUFFIX}"
        want_slice = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                      "metadata": {"name": sname, "namespace": vns, "annotations": ann,
                                   "ownerReferences": owner,
                                   "labels": {"kubernetes.io/service-name": vname,
                                              "endpointslice.kubernetes.io/managed-by": SLICE_MANAGER}},
                      **_slice(subsets)}
        await self._put(ENDPOINTSLICES, self.vslices.get(sname, vns), want_slice,
                        "addressType", "endpoints", "ports")

    async def _put(self, res: Any, cur: Obj | None, want: Obj, *fields: str) -> None:
        meta = want["metadata"]
        if cur is None:
            try:
                await self.ctx.virtual.create(res, want, namespace=meta["namespace"])
            except errors.AlreadyExists:
                pass
            return
        if _ann(cur, ANN_FROM_HOST) is None:
            return  # the tenant's own object of that name
        if any(cur.get(f) != want.get(f) for f in fields):
            if cur.get("addressType", want.get("addressType")) != want.get("addressType"):
                await delete_ignore_missing(self.ctx.virtual, res, meta["name"], meta["namespace"])
                return  # addressType is immutable: made again on the next pass
            new = copy.deepcopy(cur)
            for f in fields:
                new[f] = want[f]
            await self.ctx.virtual.update(res, new)

    async def _from_virtual(self, m: ServiceMapping) -> None:
        vns, vname = split_ref(m.from_, "default")
        hname = m.to.rpartition("/")[2]
        hns = self.ctx.host_namespace
        vsvc = self.vsvc.get(vname, vns)
        hsvc = self.hsvc.get(hname, hns)
        if hsvc is not None and _ann(hsvc, ANN_FROM_VIRTUAL) != m.from_:
            return
        if vsvc is None or deleting(vsvc):
            if hsvc is not None:
                await delete_ignore_missing(self.ctx.host, SERVICES, hname, hns)
            return
        vspec = vsvc.get("spec") or {}
        spec: Obj = {"type": "ClusterIP", "ports": _ports(vspec)}
        selector = self.tr.translate_selector_map(vspec.get("selector"), vns)
        if selector:
            spec["selector"] = selector
        meta = {"name": hname, "namespace": hns, "labels": self.tr.owner_labels(vns),
                "annotations": {ANN_FROM_VIRTUAL: m.from_}}
        try:
            if hsvc is None:
                try:
                    await self.ctx.host.create(SERVICES, {"apiVersion": "v1", "kind": "Service",
                                                          "metadata": meta, "spec": spec},
                                               namespace=hns)
                except errors.AlreadyExists:
                    pass
                self.refusals.accepted(vsvc)
                return
            hspec = hsvc.get("spec") or {}
            if _ports(hspec) != spec["ports"] or hspec.get("selector") != spec.get("selector"):
                new = copy.deepcopy(hsvc)
                new["spec"]["ports"] = spec["ports"]
                if selector:
                    new["spec"]["selector"] = selector
                else:
                    new["spec"].pop("selector", None)
                await self.ctx.host.update(SERVICES, new)
        except errors.StatusError as e:
            # the mapped host Service the host will not take: said on the virtual one
            if is_refusal(e, creating=hsvc is None):
                self.refusals.refused(vsvc, e)
            raise
        self.refusals.accepted(vsvc)
