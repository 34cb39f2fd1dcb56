"""Custom resources synced to the host (``sync.toHost.customResources``), for operators that
run on the host and serve every tenant (a host cert-manager, an external-secrets controller).

One syncer per ``KIND.GROUP``. The kind is found by discovery on both sides — the tenant may
install its CRD after the virtual cluster starts — and until the host serves it too, a Warning
event on the virtual CRD says so. Then namespaced objects go down as ``NAME-x-NS-x-VC`` in the
host namespace (cluster-scoped ones as ``NAME-x-VC``) with everything but metadata and status
copied — fields the kind's ``patches`` name as references translated (``crrefs``) — and the
host's ``status`` comes back up (through ``/status`` when the virtual kind has that subresource).
"""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

from vkube.api import errors
from vkube.api.meta import ref_key
from vkube.client.client import Client, Resource
from vkube.client.resources import CRDS
from vkube.controllers.informer import Informer
from vkube.syncer.base import DownSyncer, SyncContext, delete_ignore_missing, deleting
from vkube.syncer.crrefs import ReferencePatcher
from vkube.syncer.refusals import is_refusal
from vkube.syncer.translate import LABEL_MANAGED_BY

log = logging.getLogger(__name__)

Obj = dict[str, Any]
_NOT_COPIED = ("apiVersion", "kind", "metadata", "status")
RESOLVE_SECONDS = 2.0


async def find_kind(client: Client, kind: str, group: str) -> tuple[Resource, bool] | None:
    """The served resource of ``kind`` in ``group`` (preferred version) and whether it has a
    status subresource, or None when the server does not serve it."""
    try:
        doc = await client.request("GET", f"/apis/{group}")
    except errors.NotFound:
        return None
    versions = [(doc.get("preferredVersion") or {}).get("version")] + [v["version"] for v in doc.get("versions") or ()]
    for version in filter(None, versions):
        try:
            rl = await client.request("GET", f"/apis/{group}/{version}")
        except errors.NotFound:
            continue
        names = {r["name"] for r in rl.get("resources") or ()}
        for r in rl.get("resources") or ():
            if r.get("kind") == kind and "/" not in r["name"]:
                res = Resource(group, version, r["name"], bool(r.get("namespaced")), kind)
                return res, f"{r['name']}/status" in names
    return None


class CustomResourceSyncer(DownSyncer):
    """Virtual → host copies of one custom resource kind, status back up."""

    workers = 2

    def __init__(self, ctx: SyncContext, kind_group: str) -> None:
        super().__init__(ctx)
        self.kind = kind_group
        self.kind_name, self.group = kind_group.split(".", 1)
        self.status_subresource = False
        self.problem = ""  # why nothing is synced yet (for tests and logs)
        config = ctx.values.sync.to_host.custom_resources.get(kind_group)
        self.patches = tuple(config.patches) if config is not None else ()
        self.refs = ReferencePatcher(self.tr, self.patches, {})

    def setup(self) -> None:
        """Nothing yet: informers are made once both sides serve the kind (see ``run``)."""

    async def _resolve(self) -> tuple[Resource, Resource]:
        while True:
            virtual = await find_kind(self.ctx.virtual, self.kind_name, self.group)
            host = await find_kind(self.ctx.host, self.kind_name, self.group)
            if virtual is not None and host is not None:
                if host[0].namespaced == virtual[0].namespaced:
                    self.problem = ""
                    self.status_subresource = virtual[1]
                    return virtual[0], host[0]
                scopes = ("namespaced", "cluster-scoped")
                self.problem = (f"{self.kind} is {scopes[not virtual[0].namespaced]} in the virtual cluster "
                                f"but {scopes[not host[0].namespaced]} on the host")
            elif virtual is not None:
                self.problem = (f"{self.kind} is not served by the host cluster: install its CRD on the host "
                                f"to sync these objects (sync.toHost.customResources)")
            else:
                self.problem = ""
            if self.problem:
                await self._report(virtual[0] if virtual else None)
            await asyncio.sleep(RESOLVE_SECONDS)

    async def _report(self, vres: Resource | None) -> None:
        if vres is None:
            return
        try:
            crd = await self.ctx.virtual.get(CRDS, f"{vres.plural}.{self.group}")
        except errors.StatusError:
            return
        self.ctx.recorder.event(crd, "Warning", "SyncError", self.problem)

    async def _reference_scopes(self) -> dict[str, bool]:
        """Whether each kind the patches refer to is namespaced (asked of the virtual cluster)."""
        out: dict[str, bool] = {}
        for patch in self.patches:
            ref = patch.reference
            path = f"/apis/{ref.api_version}" if "/" in ref.api_version else f"/api/{ref.api_version}"
            try:
                doc = await self.ctx.virtual.request("GET", path)
            except errors.StatusError:
                continue
            for r in doc.get("resources") or ():
                if r.get("kind") == ref.kind and "/" not in r.get("name", ""):
                    out[ref.kind] = bool(r.get("namespaced"))
        return out

    async def run(self) -> None:
        self.vres, self.hres = await self._resolve()
        if self.patches:
            self.refs = ReferencePatcher(self.tr, self.patches, await self._reference_scopes())
        self.vinf = Informer(self.ctx.virtual, self.vres)
        self.hinf = Informer(self.ctx.host, self.hres,
                             namespace=self.ctx.host_namespace if self.hres.namespaced else None,
                             label_selector=f"{LABEL_MANAGED_BY}={self.ctx.name}")
        self.vinf.add_handler(lambda t, o, old: self.enqueue(_key(o)))
        self.hinf.add_handler(lambda t, o, old: self.enqueue(self.host_key(o)))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.vinf.run(), name=f"informer {self.vres.plural}")
            tg.create_task(self.hinf.run(), name=f"informer host {self.hres.plural}")
            await self.vinf.wait_synced()
            await self.hinf.wait_synced()
            tg.create_task(super().run(), name=f"syncer {self.kind}")

    async def reconcile(self, key: str) -> None:
        if self.patches:
            ns, name = _split(key)
            vobj = self.vinf.get(name, ns)
            if vobj is None or deleting(vobj):
                self._report_uses(key, [])  # gone: what it referenced is no longer used by it
        if self.vres.namespaced:
            await super().reconcile(key)
        else:
            await self._reconcile_cluster_scoped(key)

    async def _reconcile_cluster_scoped(self, key: str) -> None:
        """Cluster-scoped kinds: ``NAME-x-VC`` on the host, otherwise as namespaced ones."""
        hname = self.tr.host_cluster_name(key, limit=self.limit)
        vobj, hobj = self.vinf.get(key), self.hinf.get(hname)
        if vobj is None or deleting(vobj):
            if hobj is not None and self.tr.owns(hobj, None, key) and not deleting(hobj):
                await delete_ignore_missing(self.ctx.host, self.hres, hname, None)
            return
        desired = self.desired(vobj)
        if hobj is not None and not self.tr.owns(hobj, None, key):
            self.foreign(vobj, hname)  # made for another virtual object: never reused
            return
        creating = hobj is None
        try:
            if hobj is None:
                try:
                    hobj = await self.ctx.host.create(self.hres, desired)
                except errors.AlreadyExists:
                    hobj = await self.ctx.host.get(self.hres, hname)
                    if not self.tr.owns(hobj, None, key):
                        self.foreign(vobj, hname)
                        return
            else:
                upd = self.merge(desired, hobj)
                if upd is not None:
                    hobj = await self.ctx.host.update(self.hres, upd)
        except errors.StatusError as e:
            if is_refusal(e, creating=creating):
                self.refusals.refused(vobj, e)
            raise
        self.refusals.accepted(vobj)
        await self.sync_up(vobj, hobj)

    def desired(self, vobj: Obj) -> Obj:
        out = {"apiVersion": self.hres.api_version, "kind": self.hres.kind,
               "metadata": self.tr.host_metadata(vobj, limit=self.limit)}
        for key, value in vobj.items():
            if key not in _NOT_COPIED:
                out[key] = copy.deepcopy(value)
        if self.patches:
            used = self.refs.apply(out, (vobj.get("metadata") or {}).get("namespace"))
            self._report_uses(_key(vobj), used)
        return out

    def _report_uses(self, key: str, used: list[tuple[str, str, str]]) -> None:
        """Secrets and ConfigMaps a synced object references are synced like those pods use."""
        for kind, syncer_kind in (("Secret", "secrets"), ("ConfigMap", "configmaps")):
            syncer = self.ctx.syncers.get(syncer_kind)
            if syncer is not None and hasattr(syncer, "use"):
                syncer.use(f"{self.kind}/{key}", {ref_key(ns, name) for k, ns, name in used if k == kind})

    def merge(self, desired: Obj, hobj: Obj) -> Obj | None:
        """Like the base, over every top-level field but metadata and status; a field the
        virtual object no longer has is removed from the host copy."""
        self.fields = tuple(sorted(k for k in desired if k not in _NOT_COPIED))
        new = super().merge(desired, hobj)
        gone = [k for k in hobj if k not in _NOT_COPIED and k not in desired]
        if gone:
            new = new if new is not None else copy.deepcopy(hobj)
            for k in gone:
                new.pop(k, None)
        return new

    async def sync_up(self, vobj: Obj, hobj: Obj) -> None:
        status = hobj.get("status")
        if status is None or status == vobj.get("status"):
            return
        body = {**vobj, "status": copy.deepcopy(status)}
        if self.status_subresource:
            await self.ctx.virtual.update(self.vres, body, subresource="status")
        else:
            await self.ctx.virtual.update(self.vres, body)


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta.get('namespace')}/{meta.get('name', '')}" if meta.get("namespace") else meta.get("name", "")


def _split(key: str) -> tuple[str | None, str]:
    ns, _, name = key.rpartition("/")
    return (ns or None), name
