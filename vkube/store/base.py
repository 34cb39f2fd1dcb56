"""The store contract: a revisioned key-value store with etcd's semantics.

One global, monotonically increasing revision. Every write (create, update, delete) gets the
next revision. Updates and deletes are guarded by the expected ``mod_revision``. Watches replay
every event after a revision, in order, with nothing lost and nothing duplicated. Old revisions
may be compacted; reading or watching below the compacted revision raises ``Compacted``.

Backends (sqlite, postgres, etcd) implement ``Store`` and all run ``tests/store/conformance.py``.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Literal


class StoreError(Exception):
    """Base of the store's own errors; the API server maps them to ``Status`` in one place."""


class StoreClosed(StoreError):
    """An operation on a store that is not started or already closed."""


class BackendError(StoreError):
    """The database failed (I/O, lost connection, a key it cannot encode); ``__cause__`` says
    how. ``transient``: whether the same request may pass once the database is back (a lost
    connection, a timeout) rather than being refused whatever happens (a malformed request)."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


class KeyExists(StoreError):
    """create() of a key that is present."""


class KeyNotFound(StoreError):
    """update()/delete() of a key that is absent."""


class RevisionMismatch(StoreError):
    """update()/delete() whose expected mod_revision is not the key's current one."""

    def __init__(self, key: str, current: "KeyValue") -> None:
        super().__init__(f"{key}: expected revision is stale (current {current.mod_revision})")
        self.current = current


class Compacted(StoreError):
    """A read or watch at a revision older than the compacted revision."""

    def __init__(self, requested: int, compacted: int) -> None:
        super().__init__(f"revision {requested} has been compacted (oldest kept {compacted})")
        self.requested = requested
        self.compacted = compacted


class FutureRevision(StoreError):
    """A read at a revision newer than the store's current revision."""


class PartialCommit(StoreError):
    """``commit_all`` on a backend that cannot apply the whole set in one transaction
    (etcd: at most 128 operations per ``Txn``) failed after ``applied`` of ``total``
    operations had been committed; ``__cause__`` says why it stopped."""

    def __init__(self, message: str, applied: int, total: int) -> None:
        super().__init__(message)
        self.applied = applied
        self.total = total


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    create_revision: int
    mod_revision: int


@dataclass(frozen=True, slots=True)
class Op:
    """One guarded write of a ``commit_all`` set: ``create`` (the key must be absent),
    ``update``/``delete`` (the key must be at ``expected``; 0: any revision)."""

    op: Literal["create", "update", "delete"]
    key: str
    value: bytes = b""
    expected: int = 0


@dataclass(frozen=True, slots=True)
class Event:
    """One change. For ``DELETED``, ``kv.value`` is the last value and ``kv.mod_revision`` the
    revision of the delete itself. ``prev`` is the key's previous state (None on create)."""

    type: Literal["ADDED", "MODIFIED", "DELETED"]
    kv: KeyValue
    prev: KeyValue | None = None

    @property
    def revision(self) -> int:
        return self.kv.mod_revision


@dataclass(frozen=True, slots=True)
class RangeResult:
    kvs: list[KeyValue]
    revision: int  # the store revision the range was read at
    more: bool  # True if ``limit`` cut the result
    count: int  # number of keys matching the prefix (after start_after) at that revision


class Store(abc.ABC):
    """Async interface. Keys are ``/``-separated strings; values are opaque bytes."""

    @abc.abstractmethod
    async def start(self) -> None:
        """Open connections, create schema. Idempotent."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close everything; pending watches end."""

    @abc.abstractmethod
    async def current_revision(self) -> int: ...

    @property
    @abc.abstractmethod
    def compacted_revision(self) -> int: ...

    @abc.abstractmethod
    async def get(self, key: str, *, revision: int = 0) -> KeyValue | None:
        """The key's value at ``revision`` (0: latest)."""

    @abc.abstractmethod
    async def create(self, key: str, value: bytes) -> KeyValue:
        """Raises ``KeyExists``."""

    @abc.abstractmethod
    async def update(self, key: str, value: bytes, *, expected_mod_revision: int) -> KeyValue:
        """Raises ``KeyNotFound`` or ``RevisionMismatch``; ``expected_mod_revision=0`` means
        unconditional."""

    @abc.abstractmethod
    async def delete(self, key: str, *, expected_mod_revision: int = 0) -> KeyValue:
        """Returns the deleted value with ``mod_revision`` = the delete's revision.
        Raises ``KeyNotFound`` or ``RevisionMismatch``."""

    @abc.abstractmethod
    async def range(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> RangeResult:
        """Keys starting with ``prefix`` and greater than ``start_after``, in key order, at
        ``revision`` (0: latest). Raises ``Compacted`` / ``FutureRevision``."""

    @abc.abstractmethod
    def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[Event]:
        """Every event on keys with ``prefix`` whose revision > ``after_revision``, in revision
        order, then live events, until the iterator is closed. Raises ``Compacted`` (on first
        iteration) when ``after_revision`` < compacted revision."""

    def listen(self, prefix: str, push: Callable[[Event], None],
               on_close: Callable[[], None]) -> Callable[[], None] | None:
        """Hand every event on keys with ``prefix`` to ``push`` as it is published, in revision
        order, on the event loop thread, with no task of its own; ``on_close`` once the store
        closes. Returns the function that stops it, or None when this backend cannot (its
        watches are streams of their own: use ``watch``). With ``history`` this is how one
        per-cluster fan-out (``vkube.store.fanout``) serves many watchers: listen first, then
        read history, then live events, as ``watch`` does."""
        return None

    def published_revision(self) -> int | None:
        """The revision up to which every committed event has been handed to ``listen``ers
        (None: not known — backends that cannot ``listen``). A watcher that has taken every
        event it was handed has seen all of its keys' changes up to here: what a watch
        bookmark may say (etcd's progress notification)."""
        return None

    async def history(self, prefix: str, after: int, limit: int) -> list[Event]:
        """Up to ``limit`` events on keys with ``prefix`` and revision > ``after``, in revision
        order, none past what ``listen`` has already been handed (later ones come live).
        Raises ``Compacted``. Only where ``listen`` is supported."""
        raise NotImplementedError(f"{type(self).__name__} keeps no readable history")

    async def commit_all(self, ops: list[Op]) -> None:
        """Apply every op, each guarded as ``create``/``update``/``delete`` guard it, in one
        transaction: all of them or, when any guard fails or the backend fails, none (the
        error is raised). SQLite and PostgreSQL give each op its own revision, as separate
        writes would; etcd gives each ``Txn`` one revision, as it does for any Txn. Backends
        that cannot do it in one transaction raise ``PartialCommit`` saying how far they got."""
        raise NotImplementedError(f"{type(self).__name__} cannot commit a set of writes")

    @abc.abstractmethod
    async def compact(self, revision: int) -> None:
        """Forget history strictly older than ``revision`` (latest values are always kept)."""

    def start_auto_compaction(self, interval: float = 300.0, *, keep_revisions: int = 0) -> None:
        """Compact every ``interval`` seconds in the background until ``close()``.

        ``keep_revisions > 0`` keeps that many recent revisions; 0 compacts to the revision seen
        at the previous tick, like kube-apiserver, so at least one interval of history stays.
        With several API servers on one store each may run this: compacting twice is harmless."""
        task = getattr(self, "_auto_compactor", None)
        if task is not None and not task.done():
            return
        self._auto_compactor = asyncio.get_running_loop().create_task(
            self._auto_compact(interval, keep_revisions), name="vkube-store-compactor")

    def stop_auto_compaction(self) -> None:
        task = getattr(self, "_auto_compactor", None)
        if task is not None:
            task.cancel()

    async def _auto_compact(self, interval: float, keep_revisions: int) -> None:
        previous = await self.current_revision()
        while True:
            await asyncio.sleep(interval)
            current = await self.current_revision()
            target = current - keep_revisions if keep_revisions > 0 else previous
            previous = current
            if target > self.compacted_revision:
                try:
                    await self.compact(target)
                except StoreError as exc:
                    logging.getLogger(__name__).warning(
                        "auto-compaction to revision %d failed: %s", target, exc)
