"""Host custom resources shown inside the virtual cluster (``sync.fromHost.customResources``),
for shared cluster-scoped objects such as a host cert-manager's ClusterIssuers.

One syncer per ``KIND.GROUP``: it copies the host's CRD into the virtual cluster (labelled as
synced from the host, conversion ``None``) and mirrors every host object, status included.
The copies are read-only the way a level-based syncer makes them so: whatever a tenant changes,
creates or deletes of that kind is put back to what the host has. Namespaced kinds appear where
``mappings.byName`` puts them (``HOSTNS/*`` → ``VIRTUALNS/*``, or one object by name); the
virtual namespace is created when missing, and only mapped namespaces are kept read-only.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from vkube.api import errors
from vkube.client.client import Resource
from vkube.client.resources import CRDS, NAMESPACES
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
        config = ctx.values.sync.from_host.custom_resources.get(kind_group)
        self.mapping = NamespaceMapping(config.mappings.by_name if config is not None else {})

    async def _resolve(self) -> tuple[Resource, Resource]:
        while True:
            host = await find_kind(self.ctx.host, self.kind_name, self.group)
            if host is None:
                self.problem = f"{self.kind_group} is not served by the host cluster (sync.fromHost.customResources)"
            elif host[0].namespaced and not self.mapping:
                self.problem = (f"{self.kind_group} is namespaced on the host: say where its objects appear with "
                                f"sync.fromHost.customResources.{self.kind_group}.mappings.byName "
                                "(\"HOSTNAMESPACE/*\": \"VIRTUALNAMESPACE/*\")")
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
        self.vinf.add_handler(lambda t, o, old: self._enqueue_virtual(o))
        self.hinf.add_handler(lambda t, o, old: self._enqueue_host(o))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.vinf.run(), name=f"informer {self.vres.plural}")
            tg.create_task(self.hinf.run(), name=f"informer host {self.hres.plural}")
            await self.vinf.wait_synced()
            await self.hinf.wait_synced()
            for obj in self.vinf.list():
                self._enqueue_virtual(obj)
            for obj in self.hinf.list():
                self._enqueue_host(obj)
            tg.create_task(super().run(), name=f"syncer {self.kind}")

    def _enqueue_virtual(self, obj: Obj) -> None:
        meta = obj["metadata"]
        if not self.hres.namespaced:
            self.enqueue(meta["name"])
        elif self.mapping.to_host(meta.get("namespace") or "", meta["name"]) is not None:
            self.enqueue(f"{meta.get('namespace')}/{meta['name']}")

    def _enqueue_host(self, obj: Obj) -> None:
        meta = obj["metadata"]
        if not self.hres.namespaced:
            self.enqueue(meta["name"])
            return
        where = self.mapping.to_virtual(meta.get("namespace") or "", meta["name"])
        if where is not None:
            self.enqueue(f"{where[0]}/{where[1]}")

    def desired(self, hobj: Obj, namespace: str | None = None, name: str | None = None) -> Obj:
        meta = hobj.get("metadata") or {}
        labels = {**(meta.get("labels") or {}), LABEL_FROM_HOST: "true"}
        annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                       if k != "kubectl.kubernetes.io/last-applied-configuration"}
        out: Obj = {"apiVersion": self.vres.api_version, "kind": self.vres.kind,
                    "metadata": {"name": name or meta["name"], "labels": labels}}
        if namespace:
            out["metadata"]["namespace"] = namespace
        if annotations:
            out["metadata"]["annotations"] = annotations
        for key, value in hobj.items():
            if key not in _META:
                out[key] = copy.deepcopy(value)
        return out

    async def reconcile(self, key: str) -> None:
        vns, _, vname = key.rpartition("/")
        namespace = vns or None
        host_at = self.mapping.to_host(vns, vname) if namespace else (None, vname)
        hobj = self.hinf.get(host_at[1], host_at[0]) if host_at is not None else None
        vobj = self.vinf.get(vname, namespace)
        if hobj is None:
            if vobj is not None and not (vobj["metadata"].get("deletionTimestamp")):
                try:  # not on the host (any more): a read-only kind has no objects of its own
                    await self.ctx.virtual.delete(self.vres, vname, namespace=namespace)
                except errors.NotFound:
                    pass
            return
        want = self.desired(hobj, namespace, vname)
        if vobj is None:
            try:
                vobj = await self._create(want, namespace)
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

    async def _create(self, want: Obj, namespace: str | None) -> Obj:
        """Create the virtual copy, and its namespace when the mapping names a new one."""
        try:
            return await self.ctx.virtual.create(self.vres, want, namespace=namespace)
        except errors.NotFound:
            if namespace is None:
                raise
        try:
            await self.ctx.virtual.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                                       "metadata": {"name": namespace}})
        except errors.AlreadyExists:
            pass
        return await self.ctx.virtual.create(self.vres, want, namespace=namespace)


class NamespaceMapping:
    """``mappings.byName``: host ``NS/*`` or ``NS/NAME`` → virtual ``NS/*`` or ``NS/NAME``."""

    def __init__(self, by_name: dict[str, str]) -> None:
        self.names: dict[tuple[str, str], tuple[str, str]] = {}
        self.namespaces: dict[str, str] = {}
        for host, virtual in by_name.items():
            hns, _, hname = host.partition("/")
            vns, _, vname = virtual.partition("/")
            if hname == "*":
                self.namespaces[hns] = vns
            else:
                self.names[(hns, hname)] = (vns, vname)
        self.reverse_names = {v: k for k, v in self.names.items()}
        self.reverse_namespaces = {v: k for k, v in self.namespaces.items()}

    def __bool__(self) -> bool:
        return bool(self.names or self.namespaces)

    def to_virtual(self, namespace: str, name: str) -> tuple[str, str] | None:
        if (namespace, name) in self.names:
            return self.names[(namespace, name)]
        if namespace in self.namespaces:
            return self.namespaces[namespace], name
        return None

    def to_host(self, namespace: str, name: str) -> tuple[str, str] | None:
        if (namespace, name) in self.reverse_names:
            return self.reverse_names[(namespace, name)]
        if namespace in self.reverse_namespaces:
            return self.reverse_namespaces[namespace], name
        return None
