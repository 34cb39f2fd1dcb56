"""Garbage collector: ownerReferences drive deletion.

- background: a dependent whose owners are all gone is deleted;
- foreground: an owner with the ``foregroundDeletion`` finalizer has its dependents deleted
  and loses the finalizer once no dependent with ``blockOwnerDeletion`` remains;
- orphan: an owner with the ``orphan`` finalizer has its ownerReference stripped from its
  dependents, then loses the finalizer;
- dangling references (owner gone, other owners alive) are removed.

Like Kubernetes' GC it watches every resource found via discovery; unlike it, it keeps no
graph beyond two maps (uid → object key, owner uid → dependents), rebuilt from informers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from vkube.api import errors
from vkube.api.meta import split_key
from vkube.client.client import APIResource, Resource
from vkube.client.resources import CRDS
from vkube.controllers.informer import Informer, obj_key
from vkube.controllers.runtime import Controller, Obj

log = logging.getLogger(__name__)

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
Ref = tuple[Resource, str]  # (resource, obj key)
_SKIP = {("", "events"), ("events.k8s.io", "events"), ("coordination.k8s.io", "leases")}


class GarbageCollector(Controller):
    name = "garbage-collector"
    workers = 4
    rediscover_seconds = 30.0
    #: every group version asked at least this often; in between, a pass asks only ``/apis``
    #: and goes further only if it names a group version the last full pass found nothing
    #: in (a new or still unavailable aggregated API) — one request per cluster every 30 s,
    #: not twenty (CRDs need neither: their changes start a full pass at once)
    full_rediscover_seconds = 600.0
    requeue_seconds = 0.5  # while a foreground owner waits for blocking dependents

    def setup(self) -> None:
        self.informers: dict[Resource, Informer] = {}
        self.by_kind: dict[tuple[str, str], Resource] = {}  # (apiVersion, kind) -> resource
        self.uids: dict[str, Ref] = {}
        self.dependents: dict[str, set[Ref]] = {}  # owner uid -> dependents
        self.refs: dict[Resource, dict[str, Resource]] = {}
        self._crds_changed = asyncio.Event()
        self.mgr.informer(CRDS).add_handler(lambda t, o, old: self._crds_changed.set())
        self._found_versions: set[tuple[str, str]] = set()  # group versions with resources
        self._last_full = 0.0

    # -- keys: "group|version|plural|key" so one queue holds every resource -----------------

    @staticmethod
    def _key(res: Resource, key: str) -> str:
        return f"{res.group}|{res.version}|{res.plural}|{key}"

    def _parse(self, k: str) -> tuple[Informer | None, str]:
        group, version, plural, key = k.split("|", 3)
        for res, inf in self.informers.items():
            if (res.group, res.version, res.plural) == (group, version, plural):
                return inf, key
        return None, key

    # -- discovery and informers --------------------------------------------------------------

    async def _discover(self) -> None:
        """Watch what discovery lists, and stop watching what it no longer lists (a deleted
        CRD's resource: its informer would retry a 404 forever), as Kubernetes' GC does."""
        found: list[APIResource] = await self.client.discover()
        self._last_full = asyncio.get_running_loop().time()
        self._found_versions = {(a.resource.group, a.resource.version) for a in found}
        served = {api.resource for api in found}
        for res in [r for r in self.informers if r not in served]:
            del self.informers[res]
            self.mgr.drop_informer(res)
            log.info("garbage collector: %s left discovery, no longer watched", res.plural)
        for api in found:
            res = api.resource
            self.by_kind[(res.api_version, res.kind)] = res
            if res in self.informers or (res.group, res.plural) in _SKIP:
                continue
            if not {"list", "watch", "delete", "patch"} <= set(api.verbs):
                continue
            inf = self.mgr.informer(res)
            self.informers[res] = inf
            inf.add_handler(lambda t, o, old, r=res: self._on_event(r, t, o, old))

    async def run(self) -> None:
        await self._discover()
        await asyncio.gather(*(i.wait_synced() for i in self.informers.values()))
        async with asyncio.TaskGroup() as tg:
            tg.create_task(super().run())
            tg.create_task(self._rediscover_loop())

    async def _rediscover_loop(self) -> None:
        """Discovery soon after any CRD changes (created, established, deleted), so a deleted
        CRD's informer stops at once and a new one starts; otherwise every ``rediscover_seconds``
        a look at ``/apis`` decides whether a full pass is due (``full_rediscover_seconds``)."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._crds_changed.wait(), self.rediscover_seconds)
            crds_changed = self._crds_changed.is_set()
            self._crds_changed.clear()
            try:
                if crds_changed or await self._discovery_moved():
                    await self._discover()
            except errors.StatusError as e:
                log.warning("garbage collector: discovery: %s %s", type(e).__name__, e)
            except Exception:
                log.exception("garbage collector: discovery failed")

    async def _discovery_moved(self) -> bool:
        """Might discovery differ from the last full pass? (see ``full_rediscover_seconds``)"""
        if asyncio.get_running_loop().time() - self._last_full >= self.full_rediscover_seconds:
            return True
        groups = await self.client.request("GET", "/apis")
        listed = {("", "v1")}
        for g in groups.get("groups") or []:
            listed.add((g["name"], (g.get("preferredVersion") or {}).get("version") or g["versions"][0]["version"]))
        # a group version new (or unavailable last time), or one gone (an APIService deleted)
        return bool(listed - self._found_versions or self._found_versions - listed)

    def _on_event(self, res: Resource, typ: str, obj: Obj, old: Obj | None) -> None:
        meta = obj.get("metadata") or {}
        uid = meta.get("uid", "")
        key = obj_key(obj)
        ref = (res, key)
        for o in ((old or {}).get("metadata") or {}).get("ownerReferences") or []:
            self.dependents.get(o.get("uid", ""), set()).discard(ref)
        if typ == "DELETED":
            self.uids.pop(uid, None)
            for dep in list(self.dependents.get(uid, ())):  # orphaned dependents: look again
                self.queue.add(self._key(*dep))
        else:
            self.uids[uid] = ref
            for o in meta.get("ownerReferences") or []:
                self.dependents.setdefault(o.get("uid", ""), set()).add(ref)
            if meta.get("ownerReferences") or (meta.get("deletionTimestamp") and {
                    FOREGROUND, ORPHAN} & set(meta.get("finalizers") or [])):
                self.queue.add(self._key(res, key))
        for o in meta.get("ownerReferences") or []:  # a waiting owner may now be unblocked
            owner = self.uids.get(o.get("uid", ""))
            if owner is not None:
                self.queue.add(self._key(*owner))

    # -- reconcile ----------------------------------------------------------------------------

    async def reconcile(self, k: str) -> float | None:
        inf, key = self._parse(k)
        if inf is None:
            return None
        ns, name = split_key(key)
        obj = inf.get(name, ns)
        if obj is None:
            return None
        meta = obj["metadata"]
        fins = meta.get("finalizers") or []
        if meta.get("deletionTimestamp") and ORPHAN in fins:
            return await self._orphan(inf.res, obj)
        if meta.get("deletionTimestamp") and FOREGROUND in fins:
            return await self._foreground(inf.res, obj)
        if meta.get("ownerReferences"):
            await self._dependent(inf.res, obj)
        return None

    async def _owner_state(self, ref: Obj, namespace: str | None) -> str:
        """'absent', 'waiting' (foreground deletion in progress) or 'solid'."""
        uid = ref.get("uid", "")
        res = self.by_kind.get((ref.get("apiVersion", ""), ref.get("kind", "")))
        if res is None:
            return "solid"  # unknown kind: never delete on a guess (Kubernetes logs and waits)
        cached = self.uids.get(uid)
        owner = None
        if cached is not None and cached[0] in self.informers:
            ns, _, name = cached[1].rpartition("/")
            owner = self.informers[cached[0]].get(name, ns or None)
        if owner is None:  # the cache may lag: ask the server before believing it is gone
            try:
                owner = await self.client.get(res, ref["name"],
                                              namespace=namespace if res.namespaced else None)
            except errors.NotFound:
                return "absent"
            if owner["metadata"].get("uid") != uid:
                return "absent"
        m = owner["metadata"]
        if m.get("deletionTimestamp") and FOREGROUND in (m.get("finalizers") or []):
            return "waiting"
        return "solid"

    async def _dependent(self, res: Resource, obj: Obj) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace")
        refs = meta["ownerReferences"]
        states = [await self._owner_state(r, ns) for r in refs]
        if "solid" in states:
            keep = [r for r, s in zip(refs, states) if s == "solid"]
            if len(keep) != len(refs):
                await self._set_owner_refs(res, obj, keep)
            return
        if meta.get("deletionTimestamp"):
            return
        policy = "Foreground" if "waiting" in states else "Background"
        try:
            await self.client.delete(res, meta["name"], namespace=ns, propagation_policy=policy,
                                     preconditions={"uid": meta.get("uid")})
        except (errors.NotFound, errors.Conflict):
            pass

    async def _set_owner_refs(self, res: Resource, obj: Obj, refs: list[Obj]) -> None:
        m = obj["metadata"]
        try:
            await self.client.patch(res, m["name"], {"metadata": {
                "ownerReferences": refs or None, "resourceVersion": m["resourceVersion"],
                "uid": m.get("uid")}}, namespace=m.get("namespace"))
        except errors.NotFound:
            pass

    def _dependents_of(self, uid: str) -> list[tuple[Resource, Obj]]:
        out = []
        for res, key in list(self.dependents.get(uid, ())):
            inf = self.informers.get(res)
            ns, _, name = key.rpartition("/")
            obj = inf.get(name, ns or None) if inf else None
            if obj is not None and any(r.get("uid") == uid
                                       for r in obj["metadata"].get("ownerReferences") or []):
                out.append((res, obj))
        return out

    async def _orphan(self, res: Resource, owner: Obj) -> float | None:
        uid = owner["metadata"].get("uid", "")
        for dres, dep in self._dependents_of(uid):
            keep = [r for r in dep["metadata"]["ownerReferences"] if r.get("uid") != uid]
            await self._set_owner_refs(dres, dep, keep)
        if self._dependents_of(uid):
            return self.requeue_seconds  # wait for the cache to show the stripped references
        await self._remove_finalizer(res, owner, ORPHAN)
        return None

    async def _foreground(self, res: Resource, owner: Obj) -> float | None:
        uid = owner["metadata"].get("uid", "")
        blocking = False
        for dres, dep in self._dependents_of(uid):
            ref = next(r for r in dep["metadata"]["ownerReferences"] if r.get("uid") == uid)
            blocking = blocking or bool(ref.get("blockOwnerDeletion"))
            self.queue.add(self._key(dres, obj_key(dep)))  # the dependent path deletes it
        if blocking:
            return self.requeue_seconds
        await self._remove_finalizer(res, owner, FOREGROUND)
        return None

    async def _remove_finalizer(self, res: Resource, obj: Obj, fin: str) -> None:
        m = obj["metadata"]
        fins = [f for f in m.get("finalizers") or [] if f != fin]
        try:
            await self.client.patch(res, m["name"], {"metadata": {
                "finalizers": fins or None, "resourceVersion": m["resourceVersion"]}},
                namespace=m.get("namespace"))
        except errors.NotFound:
            pass


__all__: list[Any] = ["GarbageCollector"]
