"""Host custom resources shown inside the virtual cluster (``sync.fromHost.customResources``),
for shared cluster-scoped objects such as a host cert-manager's ClusterIssuers.

One syncer per ``KIND.GROUP``: it copies the host's CRD into the virtual cluster (labelled as
synced from the host, conversion ``None``) and mirrors every host object, status included.
The copies are read-only the way a level-based syncer makes them so: whatever a tenant changes,
creates or deletes of that kind is put back to what the host has. Only cluster-scoped kinds:
namespaced host objects would need a host→virtual namespace mapping, which vkube lacks.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from vkube.api import errors
from vkube.client.client import Resource
from vkube.client.resources import CRDS
from vkube.controllers.informer import Informer
from vkube.syncer.base import KindSyncer, SyncContext
from vkube.syncer.customresources import find_kind

log = logging.getLogger(__name__)

Obj = dict[str, Any]
LABEL_FROM_HOST = "vkube.io/synced-from-host"
_META = ("apiVersion", "kind", "metadata", "status")
RESOLVE_SECONDS = 2.0


def virtual_crd(host_crd: Obj) -> Obj:
    """The virtual cluster's copy of a host CRD."""
    spec = copy.deepcopy(host_crd["spec"])
    spec["conversion"] = {"strategy": "None"}
    meta = host_crd.get("metadata") or {}
    return {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": meta["name"], "labels": {LABEL_FROM_HOST: "true"}}, "spec": spec}


class HostCustomResourceSyncer(KindSyncer):
    """Host → virtual mirror of one cluster-scoped custom resource kind."""

    def __init__(self, ctx: SyncContext, kind_group: str) -> None:
        super().__init__(ctx)
        self.kind = "fromHost:" + kind_group
        self.kind_group = kind_group
        self.kind_name, self.group = kind_group.split(".", 1)
        self.problem = ""
        self.status_subresource = False

    async def _resolve(self) -> tuple[Resource, Resource]:
        while True:
            host = await find_kind(self.ctx.host, self.kind_name, self.group)
            if host is None:
                self.problem = f"{self.kind_group} is not served by the host cluster (sync.fromHost.customResources)"
            elif host[0].namespaced:
                self.problem = (f"{self.kind_group} is namespaced on the host: only cluster-scoped host custom "
                                "resources can be shown in the virtual cluster")
            else:
                self.problem = ""
                await self._copy_crd(host[0])
                virtual = await find_kind(self.ctx.virtual, self.kind_name, self.group)
                if virtual is not None and not self.problem:
                    self.status_subresource = virtual[1]
                    return virtual[0], host[0]
            if self.problem:
                log.warning("syncer %s: %s", self.ctx.name, self.problem)
            await asyncio.sleep(RESOLVE_SECONDS)

    async def _copy_crd(self, hres: Resource) -> None:
        name = f"{hres.plural}.{self.group}"
        want = virtual_crd(await self.ctx.host.get(CRDS, name))
        try:
            have = await self.ctx.virtual.get(CRDS, name)
        except errors.NotFound:
            await self.ctx.virtual.create(CRDS, want)
            return
        if (have["metadata"].get("labels") or {}).get(LABEL_FROM_HOST) != "true":
            self.problem = f"the virtual cluster has its own CRD {name}: host {self.kind_group} objects are not shown"
            self.ctx.recorder.event(have, "Warning", "SyncError", self.problem)
            return
        if have.get("spec") != want["spec"]:
            await self.ctx.virtual.update(CRDS, {**have, "spec": want["spec"]})

    async def run(self) -> None:
        self.vres, self.hres = await self._resolve()
        self.vinf = Informer(self.ctx.virtual, self.vres)
        self.hinf = Informer(self.ctx.host, self.hres)
        self.vinf.add_handler(lambda t, o, old: self.enqueue(o["metadata"]["name"]))
        self.hinf.add_handler(lambda t, o, old: self.enqueue(o["metadata"]["name"]))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.vinf.run(), name=f"informer {self.vres.plural}")
            tg.create_task(self.hinf.run(), name=f"informer host {self.hres.plural}")
            await self.vinf.wait_synced()
            await self.hinf.wait_synced()
            for obj in self.vinf.list() + self.hinf.list():
                self.enqueue(obj["metadata"]["name"])
            tg.create_task(super().run(), name=f"syncer {self.kind}")

    def desired(self, hobj: Obj) -> Obj:
        meta = hobj.get("metadata") or {}
        labels = {**(meta.get("labels") or {}), LABEL_FROM_HOST: "true"}
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                       if k != "kubectl.kubernetes.io/last-applied-configuration"}
        out: Obj = {"apiVersion": self.vres.api_version, "kind": self.vres.kind,
                    "metadata": {"name": meta["name"], "labels": labels}}
        if annotations:
            out["metadata"]["annotations"] = annotations
        for key, value in hobj.items():
            if key not in _META:
                out[key] = copy.deepcopy(value)
        return out

    async def reconcile(self, key: str) -> None:
        hobj, vobj = self.hinf.get(key), self.vinf.get(key)
        if hobj is None:
            if vobj is not None and not (vobj["metadata"].get("deletionTimestamp")):
                try:  # not on the host (any more): a read-only kind has no objects of its own
                    await self.ctx.virtual.delete(self.vres, key)
                except errors.NotFound:
                    pass
            return
        want = self.desired(hobj)
        if vobj is None:
            try:
                vobj = await self.ctx.virtual.create(self.vres, want)
            except errors.AlreadyExists:
                return  # the informer will bring it; reconcile again then
        else:
            vmeta = vobj["metadata"]
            same = (vmeta.get("labels") or {}) == want["metadata"]["labels"] and \
                (vmeta.get("annotations") or {}) == want["metadata"].get("annotations", {}) and \
                all(vobj.get(k) == want.get(k) for k in set(vobj) | set(want) if k not in _META)
            if not same:
                body = {k: v for k, v in want.items() if k != "metadata"}
                body["metadata"] = {**vmeta, "labels": want["metadata"]["labels"],
                                    "annotations": want["metadata"].get("annotations", {})}
                if "status" in vobj:
                    body["status"] = vobj["status"]
                vobj = await self.ctx.virtual.update(self.vres, body)
        status = hobj.get("status")
        if status is not None and status != vobj.get("status"):
            await self.ctx.virtual.update(self.vres, {**vobj, "status": copy.deepcopy(status)},
                                          subresource="status" if self.status_subresource else None)
