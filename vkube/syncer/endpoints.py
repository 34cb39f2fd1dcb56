"""Endpoints: down for selector-less Services (the tenant writes them), up for selector
Services (the host's endpoints controller writes them from the synced pods; pod IPs are the
same on both sides, so only ``targetRef`` needs translating).

A virtual Endpoints object made by the virtual cluster's own endpoints controller is left
alone: the syncer only creates or updates the ones it marks with ``vkube.io/from-host``.
"""

from __future__ import annotations

import copy
from typing import Any

from vkube.api import errors
from vkube.api.meta import Obj, object_key, split_key
from vkube.client.resources import ENDPOINTS, PODS, SERVICES
from vkube.syncer.base import KindSyncer, delete_ignore_missing
from vkube.syncer.isolation import CONTROL_PLANE_SERVICES, AddressGuard
from vkube.syncer.podrewrite import host_pod_name
from vkube.syncer.refusals import is_refusal
from vkube.syncer.translate import DNS_LABEL_MAX

ANN_FROM_HOST = "vkube.io/from-host"
ANN_MAPPED_FROM_HOST = "vkube.io/mapped-from-host"  # servicemap's


class EndpointsSyncer(KindSyncer):
    kind = "endpoints"

    def setup(self) -> None:
        inf = self.ctx.informers
        self.vsvc = inf.virtual(SERVICES)
        self.vep = inf.virtual(ENDPOINTS)
        self.hsvc = inf.host(SERVICES)
        self.hep = inf.host(ENDPOINTS, owned=False)  # the host controller may not label them
        self.hpods = inf.host(PODS)
        self.guard = AddressGuard(self.ctx)
        for i in (self.vsvc, self.vep):
            i.add_handler(lambda t, o, old: self.enqueue(object_key(o)))
        self.hep.add_handler(lambda t, o, old: self.enqueue(self._host_ep_key(o)))
        self.hsvc.add_handler(lambda t, o, old: self.enqueue(self.host_key(o)))

    def _host_ep_key(self, hep: Obj) -> str | None:
        if key := self.host_key(hep):
            return key
        hsvc = self.hsvc.get(hep["metadata"]["name"], self.ctx.host_namespace)
        return self.host_key(hsvc) if hsvc else None

    def initial_keys(self) -> list[str]:
        keys = {object_key(o) for o in self.vsvc.list()}
        keys |= {k for o in self.hep.list() if (k := self._host_ep_key(o))}
        return sorted(keys)

    def host_name(self, name: str, ns: str) -> str:
        return self.tr.host_name(name, ns, limit=DNS_LABEL_MAX)  # same as the Service's

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        assert ns is not None
        hns = self.ctx.host_namespace
        hname = self.host_name(name, ns)
        vsvc, vep = self.vsvc.get(name, ns), self.vep.get(name, ns)
        if vsvc is not None and _ann(vsvc, ANN_MAPPED_FROM_HOST):
            return  # a host service mapped in: its Endpoints come from the host (servicemap)
        hep = self.hep.get(hname, hns)
        if vsvc is None or (vsvc.get("spec") or {}).get("selector"):
            # nothing to push down: drop a host copy we made for a selector-less service
            if hep is not None and self.tr.owns(hep, ns, name) and _is_ours_down(hep, self.tr.vc):
                await delete_ignore_missing(self.ctx.host, ENDPOINTS, hname, hns)
            if vsvc is None:
                if vep is not None and _ann(vep, ANN_FROM_HOST):
                    await delete_ignore_missing(self.ctx.virtual, ENDPOINTS, name, ns)
                return
            await self._up(vsvc, vep, hep)
            return
        await self._down(vep, hep, hname, ns, name)

    async def _down(self, vep: Obj | None, hep: Obj | None, hname: str, vns: str,
                    vname: str) -> None:
        hns = self.ctx.host_namespace
        if hep is not None and not self.tr.owns(hep, vns, vname):
            return  # made for another virtual object: never reused nor deleted
        if vep is None:
            if hep is not None:
                await delete_ignore_missing(self.ctx.host, ENDPOINTS, hname, hns)
            return
        ns = vep["metadata"]["namespace"]
        meta = self.tr.host_metadata(vep, limit=DNS_LABEL_MAX)
        subsets = _map_targets(vep.get("subsets") or [],
                               lambda ref: {"kind": "Pod", "namespace": hns,
                                            "name": host_pod_name(self.tr, ref["name"], ns)})
        own = self.ctx.control_plane_endpoints
        if own is not None and (vns, vname) in CONTROL_PLANE_SERVICES:
            # the control plane's own: kube-apiserver keeps default/kubernetes, and kube-dns's
            # are where the DNS listens; a tenant's edit (any listener of this machine) never
            # goes down, and the control plane puts it right within its period
            want = own(vns, vname)
            if want is None:  # its DNS is not bound yet
                self.queue.add_after(f"{vns}/{vname}", 0.2)
                return
            if subsets != want and _edited(vep):
                self.ctx.recorder.event(vep, "Warning", "ControlPlaneEndpoints", (
                    f"the endpoints of {vns}/{vname} are the control plane's own "
                    f"({_describe(want)}); the host keeps those, and the control plane "
                    "restores them here"))
            subsets = copy.deepcopy(want)
        refused = self.guard.filter(vep, [a.get("ip", "") for sub in subsets
                                          for key in ("addresses", "notReadyAddresses")
                                          for a in sub.get(key) or []])
        for sub in subsets if refused else []:
            for key in ("addresses", "notReadyAddresses"):
                if key in sub:
                    sub[key] = [a for a in sub[key] if a.get("ip") not in refused]
        if hep is None:
            try:
                await self.ctx.host.create(ENDPOINTS, {"apiVersion": "v1", "kind": "Endpoints",
                                                       "metadata": meta, "subsets": subsets},
                                           namespace=hns)
            except errors.AlreadyExists:
                pass
            except errors.StatusError as e:
                if is_refusal(e, creating=True):
                    self.refusals.refused(vep, e)
                raise
            self.refusals.accepted(vep)
            return
        if not self.tr.is_owned(hep):
            return
        if hep.get("subsets") != subsets or (hep["metadata"].get("labels") or {}) != meta["labels"]:
            new = copy.deepcopy(hep)
            new["subsets"] = subsets
            new["metadata"]["labels"] = meta["labels"]
            new["metadata"]["annotations"] = meta["annotations"]
            try:
                await self.ctx.host.update(ENDPOINTS, new)
            except errors.StatusError as e:
                if is_refusal(e, creating=False):
                    self.refusals.refused(vep, e)
                raise
        self.refusals.accepted(vep)

    async def _up(self, vsvc: Obj, vep: Obj | None, hep: Obj | None) -> None:
        if hep is None or (vep is not None and not _ann(vep, ANN_FROM_HOST)):
            return  # nothing to copy, or the virtual endpoints controller's own: left alone
        ns, name = vsvc["metadata"]["namespace"], vsvc["metadata"]["name"]

        def up_ref(ref: Obj) -> Obj | None:
            hpod = self.hpods.get(ref.get("name", ""), self.ctx.host_namespace)
            vref = self.tr.virtual_ref(hpod) if hpod else None
            if not vref:
                return None
            out = {"kind": "Pod", "namespace": vref[0], "name": vref[1]}
            uid = _ann(hpod, "vkube.io/object-uid") if hpod else None
            if uid:
                out["uid"] = uid
            return out

        subsets = _map_targets(hep.get("subsets") or [], up_ref)
        if vep is None:
            try:
                await self.ctx.virtual.create(ENDPOINTS, {
                    "apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": ns,
                                 "labels": dict(vsvc["metadata"].get("labels") or {}),
                                 "annotations": {ANN_FROM_HOST: "true"}},
                    "subsets": subsets}, namespace=ns)
            except errors.AlreadyExists:
                pass
            return
        if _ann(vep, ANN_FROM_HOST) and (vep.get("subsets") or []) != subsets:
            new = copy.deepcopy(vep)
            new["subsets"] = subsets
            await self.ctx.virtual.update(ENDPOINTS, new)


def _map_targets(subsets: list[Obj], fn: Any) -> list[Obj]:
    out = copy.deepcopy(subsets)
    for sub in out:
        for addrs in ("addresses", "notReadyAddresses"):
            for a in sub.get(addrs) or []:
                if a.get("targetRef"):
                    ref = fn(a["targetRef"]) if a["targetRef"].get("kind") == "Pod" else None
                    if ref:
                        a["targetRef"] = ref
                    else:
                        a.pop("targetRef")
    return out


#: the field manager of the control plane's writes of these (vkube.cluster.incluster: the
#: user agent ``vkube-apiserver/NAME``, up to its "/")
CONTROL_PLANE_MANAGER = "vkube-apiserver"


def _edited(vep: Obj) -> bool:
    """Did someone else than the control plane write these subsets (a tenant's edit, not the
    previous run's DNS port the control plane is about to replace)?"""
    entries = (vep.get("metadata") or {}).get("managedFields") or []
    owners = [e.get("manager") for e in entries if "f:subsets" in (e.get("fieldsV1") or {})]
    return not owners or any(m != CONTROL_PLANE_MANAGER for m in owners)


def _describe(subsets: list[Obj]) -> str:
    return ", ".join(f"{a.get('ip')}:{p.get('port')}/{p.get('protocol') or 'TCP'}"
                     for sub in subsets for a in sub.get("addresses") or []
                     for p in sub.get("ports") or [])


def _is_ours_down(hep: Obj, vc: str) -> bool:
    """Made by us from a virtual Endpoints (the host controller's copies carry no back-ref)."""
    return bool(_ann(hep, "vkube.io/object-name"))


def _ann(obj: Obj | None, key: str) -> str | None:
    return (((obj or {}).get("metadata") or {}).get("annotations") or {}).get(key)
