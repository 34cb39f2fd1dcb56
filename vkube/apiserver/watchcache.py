"""Informer-style caches of small kinds that admission reads on every write (namespaces,
quotas, limit ranges, service accounts, priority and storage classes).

kube-apiserver's admission plugins read these through shared-informer listers, never from
etcd per request; a lister miss falls back to a live read (NamespaceLifecycle, ServiceAccount).
Here one cache per kind is filled by a list and kept by a store watch. Without it every create
paid a store round trip per plugin (a thread hand-off each), which dominated the write path on
a loaded machine.

Freshness: the store publishes a commit to in-process watchers before it answers the writer,
and the cache applies each event in the watch task's very next step, so a write made through
this process is visible here before its writer resumes. Writes of other API servers on a shared
store arrive as their events do, as with an informer. Until the first list has been applied
(and again after a watch error) every read goes to the store.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from vkube.api.meta import Obj
from vkube.apiserver.request import RequestContext
from vkube.store.base import StoreClosed

if TYPE_CHECKING:
    from vkube.apiserver.storage import ResourceStorage

log = logging.getLogger(__name__)

_PAGE = 500
_RETRY_SECONDS = 1.0


class KindCache:
    """Every object of one kind, by key and by namespace. Objects handed out are shared:
    callers must not mutate them (clone first)."""

    def __init__(self, storage: "ResourceStorage") -> None:
        self.storage = storage
        self.synced = False
        self._by_key: dict[str, Obj] = {}
        self._by_ns: dict[str, dict[str, Obj]] = {}
        self._task: asyncio.Task[None] | None = None
        #: called after the cache changed (a list applied, an event applied): how a consumer
        #: that derives state from the kind (APF's matchers) rebuilds without polling
        self.listeners: list[Callable[[], None]] = []

    def start(self, tasks: set[asyncio.Task[None]]) -> None:
        """Begin the list-then-watch loop; ``tasks`` is where the control plane keeps what it
        cancels on stop."""
        if self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"vkube-watchcache-{self.storage.spec.plural}")
        tasks.add(self._task)
        self._task.add_done_callback(tasks.discard)

    # -- reads -------------------------------------------------------------------------------
    async def get(self, rc: RequestContext, namespace: str | None, name: str) -> Obj | None:
        """The object, or None. A miss is confirmed by a live read (it may have just been
        made by another API server), as upstream's lister-then-live lookup does."""
        if self.synced:
            hit = self._by_key.get(self.storage.spec.key(namespace, name))
            if hit is not None:
                return hit
        return await self.storage.get_or_none(rc, namespace, name)

    async def list(self, rc: RequestContext, namespace: str | None) -> list[Obj]:
        """Every object of ``namespace`` (None: all)."""
        if not self.synced:
            return (await self.storage.list(rc, namespace)).items
        if namespace is None or not self.storage.spec.namespaced:
            return list(self._by_key.values())
        return list(self._by_ns.get(namespace, {}).values())

    def snapshot(self) -> list[Obj] | None:
        """Every object now, or None until the first list has been applied."""
        return list(self._by_key.values()) if self.synced else None

    def _changed(self) -> None:
        for listener in self.listeners:
            try:
                listener()
            except Exception:  # a consumer's bug must not stop the cache
                log.exception("watch cache listener of %s failed", self.storage.spec.plural)

    # -- keeping it --------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            try:
                revision = await self._relist()
                self.synced = True
                self._changed()
                async for event in self.storage.ctx.watch_fanout().watch(self.storage.spec.key_prefix(),
                                                                after_revision=revision):
                    if event.type == "DELETED":
                        self._drop(event.kv.key)
                    else:
                        self._put(event.kv.key, self.storage._decode(event.kv))
                    self._changed()
                self.synced = False
                return  # the store closed: its watches end
            except StoreClosed:
                self.synced = False
                return
            except asyncio.CancelledError:
                self.synced = False
                raise
            except Exception as exc:  # compacted, a failed read, a broken value: start over
                self.synced = False
                log.warning("watch cache of %s restarts: %s", self.storage.spec.plural, exc)
                await asyncio.sleep(_RETRY_SECONDS)

    async def _relist(self) -> int:
        store, prefix = self.storage.ctx.store, self.storage.spec.key_prefix()
        by_key: dict[str, Obj] = {}
        last, revision = "", 0
        while True:
            res = await store.range(prefix, start_after=last, limit=_PAGE, revision=revision)
            revision = res.revision
            for kv in res.kvs:
                by_key[kv.key] = self.storage._decode(kv)
                last = kv.key
            if not res.more:
                break
        self._by_key, self._by_ns = {}, {}
        for key, obj in by_key.items():
            self._put(key, obj)
        return revision

    def _put(self, key: str, obj: Obj) -> None:
        self._drop(key)
        self._by_key[key] = obj
        ns = (obj.get("metadata") or {}).get("namespace")
        if ns:
            self._by_ns.setdefault(ns, {})[key] = obj

    def _drop(self, key: str) -> None:
        old = self._by_key.pop(key, None)
        if old is not None:
            ns = (old.get("metadata") or {}).get("namespace")
            if ns and ns in self._by_ns:
                self._by_ns[ns].pop(key, None)
                if not self._by_ns[ns]:
                    del self._by_ns[ns]
