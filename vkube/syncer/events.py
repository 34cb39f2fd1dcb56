"""Events, host → virtual: what the host says about a synced object (scheduling, image pulls,
probe failures…) shown on the virtual object, with host names replaced by virtual ones."""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import Any

from vkube.api import errors
from vkube.api.meta import Obj, ref_key, split_key
from vkube.client.resources import EVENTS, INGRESSES, PODS, PVCS, SERVICES
from vkube.syncer.base import KindSyncer
from vkube.syncer.eventtext import virtual_text
from vkube.syncer.translate import ANN_UID, short_hash

_KINDS = {"Pod": PODS, "Service": SERVICES, "PersistentVolumeClaim": PVCS, "Ingress": INGRESSES}
_COPIED = ("reason", "message", "type", "count", "firstTimestamp", "lastTimestamp", "eventTime",
           "source", "reportingComponent", "reportingInstance", "series", "action")
_REMEMBER = 4096


class EventSyncer(KindSyncer):
    """Keys are *host* event keys here: events only flow up."""

    kind = "events"
    #: a rollout's kubelets write ~4 host events per pod, more writes than the pods' own
    #: (create, binding, status), and each copy waits a round trip to the virtual API: with
    #: 8 workers against the pod syncer's 16 they trailed a 300-pod rollout by ~450 events
    #: (bench_rollout.py ``events_trail``), with 32 by none. Workers start only while keys
    #: wait (an idle syncer holds none); each key is one event, so nothing goes out of order
    workers = 32

    def setup(self) -> None:
        self.hevents = self.ctx.informers.host(EVENTS, owned=False)
        self.hevents.add_handler(lambda t, o, old: self.enqueue(
            None if t == "DELETED" else ref_key(o["metadata"].get("namespace"),
                                                o["metadata"]["name"])))
        self._done: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        #: involved objects (by uid) found on the host and not ours, or gone
        self._foreign: OrderedDict[str, None] = OrderedDict()

    def initial_keys(self) -> list[str]:
        return sorted(ref_key(o["metadata"].get("namespace"), o["metadata"]["name"])
                      for o in self.hevents.list())

    def _host_object(self, kind: str, name: str) -> Obj | None:
        res = _KINDS.get(kind)
        inf = self.ctx.informers.existing_host(res) if res else None
        return inf.get(name, self.ctx.host_namespace) if inf else None

    async def _host_object_now(self, inv: Obj) -> Obj | None:
        """The host object an event is about, from the cache or, when the cache does not show
        it yet, from the host. The event and its object come on two watches: a scheduler's
        first ``FailedScheduling`` (or an event listed at start-up) can arrive before its pod,
        and an event dropped then was only seen once the scheduler retried and updated it.
        Objects found not to be ours are remembered, so their events cost no more reads."""
        kind, name = inv.get("kind", ""), inv.get("name", "")
        hobj = self._host_object(kind, name)
        res = _KINDS.get(kind)
        if hobj is not None or res is None or self.ctx.informers.existing_host(res) is None:
            return hobj
        uid = str(inv.get("uid") or "")
        if uid and uid in self._foreign:
            return None
        try:
            hobj = await self.ctx.host.get(res, name, namespace=self.ctx.host_namespace)
        except (errors.NotFound, errors.Forbidden):
            hobj = None
        if hobj is None or not self.tr.is_owned(hobj):
            if not uid:
                return None
            self._foreign[uid] = None
            while len(self._foreign) > _REMEMBER:
                self._foreign.popitem(last=False)
            return None
        return hobj

    def translate(self, hev: Obj, hobj: Obj | None = None) -> Obj | None:
        """The virtual Event for a host Event, or None when it is not about a synced object
        (``hobj``: the host object it is about, if already looked up)."""
        inv = hev.get("involvedObject") or {}
        if inv.get("namespace") != self.ctx.host_namespace:
            return None
        if hobj is None:
            hobj = self._host_object(inv.get("kind", ""), inv.get("name", ""))
        ref = self.tr.virtual_ref(hobj) if hobj else None
        if not ref or not ref[0]:
            return None
        vns, vname = ref
        vuid = ((hobj or {}).get("metadata") or {}).get("annotations", {}).get(ANN_UID)
        known = {inv["name"]: vname}
        huid = ((hobj or {}).get("metadata") or {}).get("uid")
        if huid and vuid:
            known[huid] = vuid
        hname = hev["metadata"]["name"]
        prefix = inv["name"] + "."
        suffix = hname[len(prefix):] if hname.startswith(prefix) else short_hash(hname, 16)
        ev: Obj = {"apiVersion": "v1", "kind": "Event",
                   "metadata": {"name": f"{vname}.{suffix}", "namespace": vns},
                   "involvedObject": {k: v for k, v in {
                       "kind": inv.get("kind"), "apiVersion": inv.get("apiVersion"),
                       "namespace": vns, "name": vname,
                       "uid": vuid, "fieldPath": inv.get("fieldPath")}.items() if v}}
        for f in _COPIED:
            if f in hev:
                ev[f] = copy.deepcopy(hev[f])
        if isinstance(ev.get("message"), str):
            ev["message"] = virtual_text(ev["message"], self.tr, vns, known)
        related = self._related(hev.get("related"))
        if related:
            ev["related"] = related
        return ev

    def _related(self, rel: Obj | None) -> Obj | None:
        """The event's second object, virtual; left out when it is no synced object of ours
        (a host object's name must not show)."""
        if not isinstance(rel, dict) or rel.get("namespace") != self.ctx.host_namespace:
            return None
        hobj = self._host_object(rel.get("kind", ""), rel.get("name", ""))
        ref = self.tr.virtual_ref(hobj) if hobj else None
        if not ref or not ref[0]:
            return None
        uid = ((hobj or {}).get("metadata") or {}).get("annotations", {}).get(ANN_UID)
        return {k: v for k, v in {"kind": rel.get("kind"), "apiVersion": rel.get("apiVersion"),
                                  "namespace": ref[0], "name": ref[1], "uid": uid,
                                  "fieldPath": rel.get("fieldPath")}.items() if v}

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        hev = self.hevents.get(name, ns)
        if hev is None:
            return
        inv = hev.get("involvedObject") or {}
        if inv.get("namespace") != self.ctx.host_namespace:
            return
        ev = self.translate(hev, await self._host_object_now(inv))
        if ev is None:
            return
        mark = (hev["metadata"].get("resourceVersion"),)
        if self._done.get(key) == mark:
            return
        vns, vname = ev["metadata"]["namespace"], ev["metadata"]["name"]
        try:
            await self.ctx.virtual.create(EVENTS, ev, namespace=vns)
        except errors.AlreadyExists:
            cur = await self.ctx.virtual.get(EVENTS, vname, namespace=vns)
            if any(cur.get(f) != ev.get(f) for f in ("count", "lastTimestamp", "message",
                                                      "series")):
                new = {**cur, **{f: ev[f] for f in _COPIED if f in ev}}
                await self.ctx.virtual.update(EVENTS, new)
        except errors.NotFound:
            return  # the virtual namespace is gone
        self._done[key] = mark
        self._done.move_to_end(key)
        while len(self._done) > _REMEMBER:
            self._done.popitem(last=False)
