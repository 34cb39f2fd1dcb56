"""What every per-kind syncer shares: the context (both clients, translator, shared informers)
and the loop (informer events → keys on a work queue → ``reconcile(key)`` with backoff).

Keys are *virtual* keys (``ns/name``, or ``name`` for cluster-scoped kinds), whichever side
changed, so one reconcile compares both sides and repairs whatever differs (level-based).
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from collections.abc import Awaitable, Callable
from typing import Any

from vkube.api import errors
from vkube.api.meta import Obj, object_key, ref_key, split_key
from vkube.client.client import Client, Resource
from vkube.controllers.events import EventRecorder
from vkube.controllers.informer import Informer
from vkube.controllers.workqueue import WorkQueue, run_workers
from vkube.syncer.refusals import HostRefusals, is_refusal
from vkube.syncer.translate import DNS_SUBDOMAIN_MAX, LABEL_MANAGED_BY, Translator
from vkube.syncer.values import Values

log = logging.getLogger(__name__)


class Informers:
    """One shared informer per (side, resource): kind syncers that need the same objects
    (pods for pods, configmaps, nodes, events) read one cache."""

    def __init__(self, virtual: Client, host: Client, host_namespace: str, vc: str,
                 virtual_source: Callable[[Resource], Informer] | None = None) -> None:
        """``virtual_source``: where virtual-side informers come from when another component
        of the same cluster already keeps them (the controller manager's: one cache per
        resource per cluster); that component runs them, the syncer only waits for them."""
        self._virtual, self._host = virtual, host
        self._host_namespace, self._vc = host_namespace, vc
        self._all: dict[tuple[str, Resource, bool], Informer] = {}
        self._virtual_source = virtual_source
        self._borrowed: set[int] = set()

    def virtual(self, res: Resource) -> Informer:
        key = ("virtual", res, True)
        if key not in self._all:
            if self._virtual_source is not None:
                self._all[key] = self._virtual_source(res)
                self._borrowed.add(id(self._all[key]))
            else:
                self._all[key] = Informer(self._virtual, res)
        return self._all[key]

    def host(self, res: Resource, *, owned: bool = True) -> Informer:
        """Host objects of ``res`` in the host namespace (cluster-wide for cluster-scoped
        kinds); ``owned`` limits them to ours by the managed-by label."""
        key = ("host", res, owned)
        if key not in self._all:
            self._all[key] = Informer(
                self._host, res, namespace=self._host_namespace if res.namespaced else None,
                label_selector=f"{LABEL_MANAGED_BY}={self._vc}" if owned else None)
        return self._all[key]

    def host_in(self, res: Resource, namespace: str) -> Informer:
        """All host objects of ``res`` in another host namespace (mapped host services)."""
        key = ("host:" + namespace, res, False)
        if key not in self._all:
            self._all[key] = Informer(self._host, res, namespace=namespace)
        return self._all[key]

    def existing_host(self, res: Resource, *, owned: bool = True) -> Informer | None:
        """The host informer for ``res`` if some syncer asked for it (no new watch)."""
        return self._all.get(("host", res, owned))

    def all(self) -> list[Informer]:
        """Every informer the syncers read (wait for these to sync)."""
        return list(self._all.values())

    def owned(self) -> list[Informer]:
        """The informers the syncer itself runs (not the borrowed ones)."""
        return [i for i in self._all.values() if id(i) not in self._borrowed]


@dataclass
class SyncContext:
    name: str
    virtual: Client
    host: Client
    host_namespace: str
    values: Values
    tr: Translator
    informers: Informers
    recorder: EventRecorder
    kubelet_port: int = 0
    kube_service_host: str = ""
    kube_service_port: int = 443
    #: synced pods reach the API through the ClusterIP of the virtual ``default/kubernetes``
    #: (when ``kube_service_host`` is empty); their creation waits until it is known
    in_cluster_api: bool = False
    #: synced ClusterFirst pods use the ClusterIP of ``kube-system/kube-dns`` as nameserver;
    #: their creation waits until it is known
    cluster_dns: bool = False
    #: the subsets the control plane itself writes into the Endpoints of ``default/kubernetes``
    #: and ``kube-system/kube-dns`` (by namespace and name; None: not known yet): their host
    #: copies name exactly those, never a tenant's edit (vkube.syncer.endpoints)
    control_plane_endpoints: Callable[[str, str], list[Obj] | None] | None = None
    #: how outside names are resolved (ExternalName checks); None: this machine's resolver
    lookup: Callable[[str], Awaitable[list[Any]]] | None = None
    syncers: dict[str, "KindSyncer"] = field(default_factory=dict)


def deleting(obj: Obj | None) -> bool:
    return bool(obj and (obj.get("metadata") or {}).get("deletionTimestamp"))


class KindSyncer:
    """Base: subclasses set ``kind``, register handlers in ``setup`` and define ``reconcile``."""

    kind = ""
    workers = 2

    def __init__(self, ctx: SyncContext) -> None:
        self.ctx = ctx
        self.tr = ctx.tr
        self.queue = WorkQueue(base_delay=0.05, max_delay=30.0)
        self.processed = 0  # reconciles done; benchmarks and tests read it
        #: what the host refused of each virtual object, said there as events
        self.refusals = HostRefusals(ctx.recorder)

    def setup(self) -> None:
        """Create informers and handlers (before the informers run)."""

    def initial_keys(self) -> list[str]:
        """Every key to look at once both caches are synced (drift repair, orphans)."""
        return []

    async def prepare(self) -> None:
        """Once both caches are synced and before the syncer says it is ready: make what the
        virtual side shows true of the host as found (a hook; most kinds need nothing)."""

    async def reconcile(self, key: str) -> None:
        raise NotImplementedError

    def _forget_refusal(self, typ: str, vobj: Obj, old: Obj | None) -> None:
        if typ == "DELETED":
            self.refusals.forget(vobj)

    def enqueue(self, key: str | None) -> None:
        if key is not None:
            self.queue.add(key)

    def foreign(self, vobj: Obj, hname: str, hobj: Obj | None = None) -> None:
        """The host name of ``vobj`` is taken by an object made for something else: a Warning
        event on the virtual object (it is not synced), never a silent skip."""
        self.ctx.recorder.event(vobj, "Warning", "SyncError", foreign_message(
            self.ctx.name, hname, hobj))

    def host_key(self, hobj: Obj) -> str | None:
        ref = self.tr.virtual_ref(hobj)
        return ref_key(*ref) if ref else None

    async def run(self) -> None:
        for k in self.initial_keys():
            self.queue.add(k)
        await run_workers(self.queue, self._reconcile_counted,
                          name=f"syncer {self.ctx.name}/{self.kind}", workers=self.workers,
                          logger=log)

    async def _reconcile_counted(self, key: str) -> None:
        try:
            await self.reconcile(key)
        finally:
            self.processed += 1


class ClusterScopedDownSyncer(KindSyncer):
    """Virtual → host copies of a cluster-scoped kind under ``NAME-x-VC``. Subclasses define
    ``desired``, ``immutable_changed`` (then the host copy is replaced) and ``update_host``."""

    res: Resource

    def setup(self) -> None:
        self.vinf = self.ctx.informers.virtual(self.res)
        self.hinf = self.ctx.informers.host(self.res)
        self.vinf.add_handler(lambda t, o, old: self.enqueue(o["metadata"]["name"]))
        self.vinf.add_handler(self._forget_refusal)
        self.hinf.add_handler(lambda t, o, old: self.enqueue(self.host_key(o)))
        # copies made under a name an earlier version of the encoding gave (upgrades)
        self.hinf.add_index("vkube-virtual", lambda o: [k] if (k := self.host_key(o)) else [])

    def initial_keys(self) -> list[str]:
        keys = {o["metadata"]["name"] for o in self.vinf.list()}
        keys |= {k for o in self.hinf.list() if (k := self.host_key(o))}
        return sorted(keys)

    def skip(self, key: str) -> bool:
        return False

    def host_name_of(self, key: str) -> str:
        return self.tr.host_cluster_name(key)

    def virtual_object(self, key: str) -> Obj | None:
        return self.vinf.get(key)

    async def drop_renamed(self, key: str, hname: str) -> None:
        """Our copies of ``key`` under another host name than today's (an earlier version's
        encoding of the name) go: the object lives on under ``hname``."""
        for old in self.hinf.by_index("vkube-virtual", key):
            if old["metadata"]["name"] != hname and self.tr.owns(old, None, key):
                await delete_ignore_missing(self.ctx.host, self.res, old["metadata"]["name"], None)

    def desired(self, vobj: Obj) -> Obj:
        raise NotImplementedError

    def immutable_changed(self, want: Obj, hobj: Obj) -> bool:
        return False

    async def update_host(self, want: Obj, hobj: Obj) -> None:
        """Bring an owned host copy up to ``want`` (mutable fields only)."""

    async def reconcile(self, key: str) -> None:
        if self.skip(key):
            return
        hname = self.host_name_of(key)
        vobj, hobj = self.virtual_object(key), self.hinf.get(hname)
        await self.drop_renamed(key, hname)
        if vobj is None or deleting(vobj):
            if hobj is not None and self.tr.owns(hobj, None, key):
                await delete_ignore_missing(self.ctx.host, self.res, hname, None)
            return
        want = self.desired(vobj)
        if hobj is None:
            try:
                await self.ctx.host.create(self.res, want)
            except errors.AlreadyExists:
                # not in our cache: another cluster's, the host's own (or ours, just made)
                hobj = await self.ctx.host.get(self.res, hname)
                if not self.tr.owns(hobj, None, key):
                    self.foreign(vobj, hname, hobj)
                return
            except errors.StatusError as e:
                if is_refusal(e, creating=True):
                    self.refusals.refused(vobj, e)
                raise
            self.refusals.accepted(vobj)
            return
        if not self.tr.owns(hobj, None, key):
            self.foreign(vobj, hname, hobj)  # same name, not ours: never touched
            return
        if self.immutable_changed(want, hobj):
            await delete_ignore_missing(self.ctx.host, self.res, hname, None)
            self.queue.add_after(key, 0.5)
            return
        try:
            await self.update_host(want, hobj)
        except errors.StatusError as e:
            if is_refusal(e, creating=False):
                self.refusals.refused(vobj, e)
            raise
        self.refusals.accepted(vobj)


class DownSyncer(KindSyncer):
    """Virtual → host copies of a namespaced kind, plus status written back up.

    Subclasses define ``desired`` (the host object's body) and may override ``wanted``,
    ``differs``/``merge`` and ``sync_up``."""

    vres: Resource
    hres: Resource
    limit = DNS_SUBDOMAIN_MAX
    fields: tuple[str, ...] = ("spec",)  # top-level keys copied down and compared
    #: on Invalid (an immutable field changed) delete and recreate the host object: only for
    #: kinds whose host copy holds nothing of its own (never PVCs: that would lose data)
    replace_on_invalid = False

    def setup(self) -> None:
        self.vinf = self.ctx.informers.virtual(self.vres)
        self.hinf = self.ctx.informers.host(self.hres)
        self.vinf.add_handler(lambda t, o, old: self.enqueue(object_key(o)))
        self.vinf.add_handler(self._forget_refusal)
        self.hinf.add_handler(lambda t, o, old: self.enqueue(self.host_key(o)))

    def initial_keys(self) -> list[str]:
        keys = {object_key(o) for o in self.vinf.list()}
        keys |= {k for o in self.hinf.list() if (k := self.host_key(o))}
        return sorted(keys)

    def host_name(self, name: str, namespace: str) -> str:
        return self.tr.host_name(name, namespace, limit=self.limit)

    def wanted(self, vobj: Obj) -> bool:
        return True

    def desired(self, vobj: Obj) -> Obj:
        out = {"apiVersion": self.hres.api_version, "kind": self.hres.kind,
               "metadata": self.tr.host_metadata(vobj, limit=self.limit)}
        for f in self.fields:
            if f in vobj:
                out[f] = copy.deepcopy(vobj[f])
        return out

    def merge(self, desired: Obj, hobj: Obj) -> Obj | None:
        """The host object updated to ``desired``, or None when nothing we manage differs.

        Fields the host added (defaults, allocations such as a PVC's volumeName) are not
        differences: only what ``desired`` says is compared and written."""
        hmeta = hobj.get("metadata") or {}
        dmeta = desired["metadata"]
        same = (hmeta.get("labels") or {}) == dmeta["labels"] and \
            (hmeta.get("annotations") or {}) == dmeta["annotations"] and \
            all(is_subset(desired.get(f), hobj.get(f)) for f in self.fields)
        if same:
            return None
        new = copy.deepcopy(hobj)
        new["metadata"]["labels"] = dmeta["labels"]
        new["metadata"]["annotations"] = dmeta["annotations"]
        for f in self.fields:
            if f in desired:
                new[f] = overlay(new.get(f), desired[f])
        return new

    async def create_host(self, desired: Obj) -> Obj:
        """Create the host object (a hook: services retry without the address they asked)."""
        return await self.ctx.host.create(self.hres, desired, namespace=self.ctx.host_namespace)

    async def update_host(self, upd: Obj) -> Obj:
        """Update the host object (a hook: services give up ports the host refuses)."""
        return await self.ctx.host.update(self.hres, upd)

    async def sync_up(self, vobj: Obj, hobj: Obj) -> None:
        """Write host facts (status, allocated fields) back to the virtual object."""

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        assert ns is not None
        vobj = self.vinf.get(name, ns)
        hname = self.host_name(name, ns)
        hns = self.ctx.host_namespace
        hobj = self.hinf.get(hname, hns)
        if vobj is None or deleting(vobj) or not self.wanted(vobj):
            if hobj is not None and self.tr.owns(hobj, ns, name) and not deleting(hobj):
                await delete_ignore_missing(self.ctx.host, self.hres, hname, hns)
            return
        desired = self.desired(vobj)
        if hobj is not None and not self.tr.owns(hobj, ns, name):
            self.foreign(vobj, hname, hobj)  # made for another virtual object: never reused
            return
        if hobj is None:
            try:
                hobj = await self.create_host(desired)
            except errors.AlreadyExists:
                hobj = await self.ctx.host.get(self.hres, hname, namespace=hns)
                if not self.tr.owns(hobj, ns, name):
                    self.foreign(vobj, hname, hobj)
                    return
            except errors.StatusError as e:
                if is_refusal(e, creating=True):
                    self.refusals.refused(vobj, e)
                raise
        else:
            upd = self.merge(desired, hobj)
            if upd is not None:
                try:
                    hobj = await self.update_host(upd)
                except errors.Invalid as e:
                    if self.replace_on_invalid:  # an immutable field: made again, not refused
                        await delete_ignore_missing(self.ctx.host, self.hres, hname, hns)
                    else:
                        self.refusals.refused(vobj, e)
                    raise
                except errors.StatusError as e:
                    if is_refusal(e, creating=False):
                        self.refusals.refused(vobj, e)
                    raise
        self.refusals.accepted(vobj)
        await self.sync_up(vobj, hobj)


def foreign_message(cluster: str, hname: str, hobj: Obj | None) -> str:
    """Why a virtual object is not synced: its host name belongs to another object (whose)."""
    owner = ((hobj or {}).get("metadata") or {}).get("labels", {}).get(LABEL_MANAGED_BY)
    whose = (f"made by virtual cluster {owner!r}" if owner and owner != cluster else
             "made for another object of this virtual cluster" if owner else
             "not made by vkube")
    return (f"host object {hname} exists and is not this object's copy ({whose}); not synced "
            "and not touching it — rename the object")


def is_subset(want: Any, have: Any) -> bool:
    """Does ``have`` say everything ``want`` says? Dicts: per key of ``want``; lists: same
    length, element-wise; anything else: equal. ``None`` wants nothing."""
    if want is None:
        return True
    if isinstance(want, dict):
        return isinstance(have, dict) and all(is_subset(v, have.get(k)) for k, v in want.items())
    if isinstance(want, list):
        return isinstance(have, list) and len(want) == len(have) and \
            all(is_subset(w, h) for w, h in zip(want, have))
    return bool(want == have)


def overlay(have: Any, want: Any) -> Any:
    """``want`` written over ``have``, keeping what only ``have`` has (host defaults)."""
    if isinstance(want, dict) and isinstance(have, dict):
        out = dict(have)
        for k, v in want.items():
            out[k] = overlay(have.get(k), v)
        return out
    if isinstance(want, list) and isinstance(have, list) and len(want) == len(have):
        return [overlay(h, w) for h, w in zip(have, want)]
    return copy.deepcopy(want)


async def delete_ignore_missing(client: Client, res: Resource, name: str,
                                namespace: str | None, **kw: Any) -> None:
    try:
        await client.delete(res, name, namespace=namespace, **kw)
    except errors.NotFound:
        pass


def copy_drifted(have: Obj, want: Obj) -> Obj | None:
    """``have`` with ``want``'s spec, labels and annotations, or None when none of them differ:
    how a read-only copy of a host object is put back after someone edited it."""
    meta = have["metadata"]
    wmeta = want["metadata"]
    if have.get("spec") == want["spec"] and (meta.get("annotations") or {}) == wmeta["annotations"] \
            and (meta.get("labels") or {}) == wmeta["labels"]:
        return None
    new = copy.deepcopy(have)
    new["spec"] = want["spec"]
    new["metadata"]["annotations"] = wmeta["annotations"]
    new["metadata"]["labels"] = wmeta["labels"]
    return new


async def update_status(client: Client, res: Resource, obj: Obj, status: Obj) -> Obj:
    """Write ``status`` through the status subresource (optimistic: Conflict retries the key)."""
    return await client.update(res, {**obj, "status": status}, subresource="status")

