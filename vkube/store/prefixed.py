"""One store shared by many virtual clusters: each cluster sees the shared store through a
``PrefixedStore`` whose keys all live under its own prefix (``/clusters/NAME``), the way kcp
keeps logical clusters apart in one etcd.

A cluster can neither read, write nor watch a key outside its prefix: every key it passes is
joined to the prefix, and the prefix ends in ``/`` so ``/clusters/a`` never matches
``/clusters/ab``. Revisions stay the shared store's (one global revision, as etcd's), so a
cluster's resourceVersions are increasing but not dense.

Why revisions are not per cluster (assessed for issue 18): a tenant sees the global revision
in a list's resourceVersion and in the gaps between its own objects' resourceVersions, so it
can estimate how busy the other tenants are (not what they do: no key, value or count of
kinds). A dense per-cluster revision space needs, for every write, a per-cluster number
assigned in the same transaction as the write and stored with it, a per-cluster write order
equal to the commit order (so a tenant's writes serialise), and a persistent map from the
cluster's numbers to store revisions for ``get``/``range`` at a revision and for a watch's
start (and for compaction, which is global). The ``Store`` interface has no multi-key
transaction and etcd's revisions are its own, so this would change all three backends and
the write path; it was not done. A partial measure — answering a list with the cluster's own
last write revision instead of the store's — hides the list figure but not the gaps, and a
quiet cluster's revision falls behind global compaction, so its watches would need a safe
clamp to the compacted revision to avoid 410 loops; not done either.

The shared store belongs to whoever opened it: ``start``/``close`` here do nothing to it, and
compaction is the owner's (``compact`` is refused, so one tenant cannot drop another's
history)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from vkube.store.base import Event, KeyValue, Op, RangeResult, Store, StoreClosed


class PrefixedStore(Store):
    """``store`` seen from under ``prefix`` (e.g. ``/clusters/team-a``)."""

    def __init__(self, store: Store, prefix: str,
                 on_write: Callable[[str], None] | None = None) -> None:
        if not prefix.startswith("/") or prefix.endswith("/"):
            raise ValueError(f"store prefix {prefix!r} must start with '/' and not end with it")
        self.inner = store
        self.prefix = prefix
        self._n = len(prefix)
        #: told the key of every committed write through this view (the owner's activity
        #: tracking: sleep waits for "no changing workload")
        self.on_write = on_write
        self.closed = False

    def _k(self, key: str) -> str:
        if not key.startswith("/"):
            raise ValueError(f"store key {key!r} must start with '/'")
        return self.prefix + key

    def _kv(self, kv: KeyValue) -> KeyValue:
        return KeyValue(kv.key[self._n:], kv.value, kv.create_revision, kv.mod_revision)

    def _wrote(self, key: str) -> None:
        if self.on_write is not None:
            self.on_write(key)

    async def start(self) -> None:
        """The owner started the shared store."""

    async def close(self) -> None:
        """This view is done: its writes are refused from now on (a cluster that stopped
        cannot write behind its owner's back). The shared store stays open: its owner closes
        it."""
        self.closed = True

    def _writable(self) -> None:
        if self.closed:
            raise StoreClosed(f"the store of {self.prefix} is closed")

    async def current_revision(self) -> int:
        return await self.inner.current_revision()

    @property
    def compacted_revision(self) -> int:
        return self.inner.compacted_revision

    async def get(self, key: str, *, revision: int = 0) -> KeyValue | None:
        kv = await self.inner.get(self._k(key), revision=revision)
        return None if kv is None else self._kv(kv)

    async def create(self, key: str, value: bytes) -> KeyValue:
        self._writable()
        kv = self._kv(await self.inner.create(self._k(key), value))
        self._wrote(key)
        return kv

    async def update(self, key: str, value: bytes, *, expected_mod_revision: int) -> KeyValue:
        self._writable()
        kv = self._kv(await self.inner.update(self._k(key), value,
                                              expected_mod_revision=expected_mod_revision))
        self._wrote(key)
        return kv

    async def delete(self, key: str, *, expected_mod_revision: int = 0) -> KeyValue:
        self._writable()
        kv = self._kv(await self.inner.delete(self._k(key),
                                              expected_mod_revision=expected_mod_revision))
        self._wrote(key)
        return kv

    async def commit_all(self, ops: list[Op]) -> None:
        self._writable()
        await self.inner.commit_all([Op(op.op, self._k(op.key), op.value, op.expected)
                                     for op in ops])
        for op in ops:
            self._wrote(op.key)

    async def range(self, prefix: str, *, start_after: str = "", limit: int = 0,
                    revision: int = 0) -> RangeResult:
        # "" ranges over the whole cluster (snapshots): still only under our prefix
        inner_prefix = self.prefix + (prefix if prefix else "/")
        after = self.prefix + start_after if start_after else ""
        res = await self.inner.range(inner_prefix, start_after=after, limit=limit,
                                     revision=revision)
        return RangeResult([self._kv(kv) for kv in res.kvs], res.revision, res.more, res.count)

    async def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[Event]:  # type: ignore[override]
        inner_prefix = self.prefix + (prefix if prefix else "/")
        stream = self.inner.watch(inner_prefix, after_revision=after_revision)
        try:
            async for ev in stream:
                yield Event(ev.type, self._kv(ev.kv), None if ev.prev is None else self._kv(ev.prev))
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()

    def _event(self, ev: Event) -> Event:
        return Event(ev.type, self._kv(ev.kv), None if ev.prev is None else self._kv(ev.prev))

    def listen(self, prefix: str, push: Callable[[Event], None],
               on_close: Callable[[], None]) -> Callable[[], None] | None:
        inner_prefix = self.prefix + (prefix if prefix else "/")
        return self.inner.listen(inner_prefix, lambda ev: push(self._event(ev)), on_close)

    def published_revision(self) -> int | None:
        return self.inner.published_revision()  # one revision sequence for every prefix

    async def history(self, prefix: str, after: int, limit: int) -> list[Event]:
        inner_prefix = self.prefix + (prefix if prefix else "/")
        return [self._event(ev) for ev in await self.inner.history(inner_prefix, after, limit)]

    async def compact(self, revision: int) -> None:
        """Compaction of a shared store is its owner's: a no-op from one cluster's view."""

    def start_auto_compaction(self, interval: float = 300.0, *, keep_revisions: int = 0) -> None:
        """The owner compacts the shared store."""


__all__ = ["PrefixedStore"]
