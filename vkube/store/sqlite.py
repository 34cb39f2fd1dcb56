"""The default store: SQLite through stdlib ``sqlite3``, kine-style history table.

Writes run on one dedicated writer thread, so revisions are assigned inside one transaction at a
time: no gaps, never out of order. Writes queued while a transaction runs are committed together
in the next one (group commit), each still getting its own revision. With WAL and
``synchronous=FULL`` an acknowledged write survives a crash of the process or the machine.

Reads run on a small pool of reader threads with their own connections, so they never wait
behind a write; a read at a given revision runs in one read transaction (a WAL snapshot).

Watches are served in-process (see ``_watch``): writers of other processes sharing the file
are not seen by this process's watches.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from vkube.store import _sql
from vkube.store._watch import Broadcaster, watch_stream
from vkube.store.base import (
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    RangeResult,
    RevisionMismatch,
    Store,
    StoreError,
)

log = logging.getLogger(__name__)

_COMPACT_CHUNK = 10_000  # revisions per compaction transaction, so writes interleave


class StoreClosed(StoreError):
    """An operation on a store that is not started or already closed."""


class BackendError(StoreError):
    """The database failed (I/O, corruption, a key it cannot encode); ``__cause__`` says how."""


@dataclass(slots=True)
class _Write:
    """One queued write; ``result`` and ``event`` are filled in by the writer thread."""

    op: Literal["create", "update", "delete"]
    key: str
    value: bytes
    expected: int
    future: asyncio.Future[KeyValue]
    result: KeyValue | BaseException | None = None
    event: Event | None = field(default=None)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


def _backend_error(exc: BaseException) -> BackendError:
    error = BackendError(f"sqlite: {type(exc).__name__}: {exc}")
    error.__cause__ = exc
    return error


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (None: no bound).

    SQLite compares TEXT bytewise (UTF-8), which orders like Python's code-point comparison."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF and not 0xD7FF <= last < 0xDFFF:
            return prefix[:-1] + chr(last + 1)
        if 0xD7FF <= last < 0xDFFF:
            return prefix[:-1] + chr(0xE000)  # skip the surrogate range
        prefix = prefix[:-1]
    return None


class SqliteStore(Store):
    """``Store`` on one SQLite file. ``path=":memory:"`` gives an ephemeral store in a temporary
    directory (removed on close, no fsync).

    ``readers``: reader threads; ``watch_buffer``: live events buffered per watcher before it
    falls back to reading history; ``max_batch``: writes per group commit (1 disables it);
    ``durable=False`` skips fsync (tests, throwaway clusters)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        readers: int = 2,
        watch_buffer: int = 1000,
        max_batch: int = 256,
        durable: bool = True,
    ) -> None:
        self._ephemeral_dir: str | None = None
        self._path = os.fspath(path)
        self._durable = durable and self._path != ":memory:"
        self._readers_count = readers
        self._max_batch = max_batch
        self._dialect = _sql.SQLITE
        self._broadcaster = Broadcaster(maxsize=watch_buffer)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._wconn: sqlite3.Connection | None = None
        self._rconns: list[sqlite3.Connection] = []
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pending: list[_Write] = []
        self._draining = False
        self._revision = 0
        self._compacted = 0
        self._closed = False
        self._compactor: asyncio.Task[None] | None = None

    @property
    def path(self) -> str:
        return self._path

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._loop is not None:
            return
        if self._closed:
            raise StoreClosed("store is closed")
        if self._path == ":memory:":
            self._ephemeral_dir = tempfile.mkdtemp(prefix="vkube-store-")
            self._path = os.path.join(self._ephemeral_dir, "store.db")
        self._loop = asyncio.get_running_loop()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="vkube-store-writer")
        self._readers = ThreadPoolExecutor(
            self._readers_count, thread_name_prefix="vkube-store-reader"
        )
        try:
            self._revision, self._compacted = await self._loop.run_in_executor(
                self._writer, self._open_writer
            )
        except BaseException as exc:
            self._closed = True
            await self._shutdown()
            if isinstance(exc, sqlite3.Error):
                raise BackendError(f"cannot open {self._path}: {exc}") from exc
            raise

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._compactor is not None:
            self._compactor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._compactor
        self._broadcaster.close()
        await self._shutdown()

    async def _shutdown(self) -> None:
        for pool in (self._writer, self._readers):
            if pool is not None:
                await asyncio.to_thread(pool.shutdown, True)  # queued writes still finish
        for conn in [self._wconn, *self._rconns]:
            if conn is not None:
                conn.close()
        self._wconn, self._rconns = None, []
        if self._ephemeral_dir is not None:
            shutil.rmtree(self._ephemeral_dir, ignore_errors=True)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        return conn

    def _open_writer(self) -> tuple[int, int]:
        conn = self._wconn = self._connect()
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {'FULL' if self._durable else 'OFF'}")
        for statement in self._dialect.schema:
            conn.execute(statement)
        current, compacted = conn.execute(self._dialect.revisions).fetchone()
        return current, compacted

    def _reader_conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            with self._lock:
                self._rconns.append(conn)
        return conn

    # -- revisions ---------------------------------------------------------------------------

    async def current_revision(self) -> int:
        return self._revision

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    def _check_revision(self, conn: sqlite3.Connection, revision: int) -> int:
        """Inside a read transaction: the revision to read at, or Compacted/FutureRevision."""
        current, compacted = conn.execute(self._dialect.revisions).fetchone()
        if revision == 0:
            return current
        if revision > current:
            raise FutureRevision(f"revision {revision} is newer than the current {current}")
        if revision < compacted:
            raise Compacted(revision, compacted)
        return revision

    # -- reads -------------------------------------------------------------------------------

    async def _read(self, fn: Any, *args: Any) -> Any:
        if self._loop is None or self._closed or self._readers is None:
            raise StoreClosed("store is not running")
        try:
            return await self._loop.run_in_executor(self._readers, fn, *args)
        except (sqlite3.Error, UnicodeError) as exc:
            raise _backend_error(exc) from exc

    async def get(self, key: str, *, revision: int = 0) -> KeyValue | None:
        return await self._read(self._get_sync, key, revision)

    def _get_sync(self, key: str, revision: int) -> KeyValue | None:
        conn = self._reader_conn()
        if revision == 0:
            row = conn.execute(self._dialect.latest, (key,)).fetchone()
        else:
            conn.execute("BEGIN")
            try:
                self._check_revision(conn, revision)
                row = conn.execute(self._dialect.at_revision, (key, revision)).fetchone()
            finally:
                conn.execute("COMMIT")
        if row is None or row[4]:
            return None
        return _sql.kv_from_row(row)

    async def range(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> RangeResult:
        return await self._read(self._range_sync, prefix, start_after, limit, revision)

    def _range_sync(self, prefix: str, start_after: str, limit: int, revision: int) -> RangeResult:
        conn = self._reader_conn()
        upper = prefix_end(prefix)
        d = self._dialect
        conn.execute("BEGIN")
        try:
            at = self._check_revision(conn, revision)
            params = {"lower": prefix, "start_after": start_after, "upper": upper,
                      "revision": at, "limit": limit + 1 if limit > 0 else -1}
            rows = conn.execute(d.range_bounded if upper else d.range_unbounded, params)
            kvs = [_sql.kv_from_row(row) for row in rows]
            more = 0 < limit < len(kvs)
            if more:
                del kvs[limit:]
                count_sql = d.count_bounded if upper else d.count_unbounded
                count = conn.execute(count_sql, params).fetchone()[0]
            else:
                count = len(kvs)
        finally:
            conn.execute("COMMIT")
        return RangeResult(kvs=kvs, revision=at, more=more, count=count)

    # -- watch -------------------------------------------------------------------------------

    def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[Event]:
        return watch_stream(
            self._broadcaster, self._read_history, prefix, after_revision=after_revision
        )

    async def _read_history(self, prefix: str, after: int, limit: int) -> list[Event]:
        if self._closed:
            return []  # the subscription is closed too, so the watch ends
        if after < self._compacted:
            raise Compacted(after, self._compacted)
        return await self._read(self._history_sync, prefix, after, limit)

    def _history_sync(self, prefix: str, after: int, limit: int) -> list[Event]:
        conn = self._reader_conn()
        upper = prefix_end(prefix)
        conn.execute("BEGIN")
        try:
            _, compacted = conn.execute(self._dialect.revisions).fetchone()
            if after < compacted:
                raise Compacted(after, compacted)
            params = {"after": after, "lower": prefix, "upper": upper, "limit": limit}
            sql = self._dialect.history_bounded if upper else self._dialect.history_unbounded
            return [_sql.event_from_row(row) for row in conn.execute(sql, params)]
        finally:
            conn.execute("COMMIT")

    # -- writes ------------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._write("create", key, value, 0)

    async def update(self, key: str, value: bytes, *, expected_mod_revision: int) -> KeyValue:
        return await self._write("update", key, value, expected_mod_revision)

    async def delete(self, key: str, *, expected_mod_revision: int = 0) -> KeyValue:
        return await self._write("delete", key, b"", expected_mod_revision)

    async def _write(self, op: Any, key: str, value: bytes, expected: int) -> KeyValue:
        if self._loop is None or self._closed or self._writer is None:
            raise StoreClosed("store is not running")
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"value must be bytes, not {type(value).__name__}")
        write = _Write(op, key, bytes(value), expected, self._loop.create_future())
        with self._lock:
            self._pending.append(write)
            start = not self._draining
            self._draining = True
        if start:
            self._writer.submit(self._drain)
        # Once queued, the write happens even if the caller is cancelled (as with etcd).
        return await write.future

    def _drain(self) -> None:
        """Writer thread: commit queued writes in batches until none are left."""
        while True:
            with self._lock:
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                if not batch:
                    self._draining = False
                    return
            try:
                self._commit(batch)
            except Exception as exc:  # the transaction failed as a whole
                if len(batch) > 1:
                    for write in batch:  # find the culprit: retry one write per transaction
                        self._commit_or_fail([write])
                else:
                    self._fail(batch, exc)
            self._deliver(batch)

    def _commit_or_fail(self, batch: list[_Write]) -> None:
        try:
            self._commit(batch)
        except Exception as exc:
            self._fail(batch, exc)

    @staticmethod
    def _fail(batch: list[_Write], exc: Exception) -> None:
        error = exc if isinstance(exc, StoreError) else _backend_error(exc)
        for write in batch:
            write.result, write.event = error, None

    def _commit(self, batch: list[_Write]) -> None:
        conn = self._wconn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            revision = conn.execute(self._dialect.revisions).fetchone()[0]
            for write in batch:
                write.result, write.event = None, None
                try:
                    write.event = self._apply(conn, write, revision + 1)
                    write.result = write.event.kv
                    revision += 1
                except StoreError as exc:
                    write.result = exc
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def _apply(self, conn: sqlite3.Connection, write: _Write, revision: int) -> Event:
        """Writer thread, inside the transaction: check the guard, insert the row."""
        row = conn.execute(self._dialect.latest, (write.key,)).fetchone()
        current = None if row is None or row[4] else _sql.kv_from_row(row)
        key = write.key
        if write.op == "create":
            if current is not None:
                raise KeyExists(key)
            conn.execute(self._dialect.insert, (revision, key, 1, 0, revision, 0, write.value))
            return Event("ADDED", KeyValue(key, write.value, revision, revision))
        if current is None:
            raise KeyNotFound(key)
        if write.expected and write.expected != current.mod_revision:
            raise RevisionMismatch(key, current)
        created = current.create_revision
        if write.op == "update":
            kv = KeyValue(key, write.value, created, revision)
            conn.execute(self._dialect.insert,
                         (revision, key, 0, 0, created, current.mod_revision, write.value))
            return Event("MODIFIED", kv, current)
        kv = KeyValue(key, current.value, created, revision)
        conn.execute(self._dialect.insert,
                     (revision, key, 0, 1, created, current.mod_revision, current.value))
        return Event("DELETED", kv, current)

    def _deliver(self, batch: list[_Write]) -> None:
        loop = self._loop
        assert loop is not None
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is waiting
            loop.call_soon_threadsafe(self._finish, batch)

    def _finish(self, batch: list[_Write]) -> None:
        """Event loop: publish the batch's events in order, then answer the writers."""
        events = [write.event for write in batch if write.event is not None]
        if events:
            self._revision = max(self._revision, events[-1].revision)
            self._broadcaster.publish(events)
        for write in batch:
            if write.future.done():
                continue
            if isinstance(write.result, BaseException):
                write.future.set_exception(write.result)
            else:
                write.future.set_result(write.result)  # type: ignore[arg-type]

    # -- compaction --------------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        if self._loop is None or self._closed or self._writer is None:
            raise StoreClosed("store is not running")
        if revision > self._revision:
            raise FutureRevision(f"cannot compact at {revision}: current is {self._revision}")
        if revision <= self._compacted:
            return
        # Mark first: from now on reads below ``revision`` fail instead of seeing rows vanish.
        lo = await self._loop.run_in_executor(self._writer, self._mark_compacted, revision)
        self._compacted = max(self._compacted, revision)
        while lo < revision:
            hi = min(lo + _COMPACT_CHUNK, revision)
            await self._loop.run_in_executor(self._writer, self._compact_chunk, lo, hi, revision)
            lo = hi

    def _mark_compacted(self, revision: int) -> int:
        conn = self._wconn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(self._dialect.set_compacted, {"revision": revision})
            lo = conn.execute(self._dialect.min_revision).fetchone()[0]
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        return lo

    def _compact_chunk(self, lo: int, hi: int, revision: int) -> None:
        conn = self._wconn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(self._dialect.compact_chunk, {"lo": lo, "hi": hi, "revision": revision})
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise

    def start_auto_compaction(self, interval: float = 300.0, *, keep_revisions: int = 0) -> None:
        """Compact every ``interval`` seconds in the background until ``close()``.

        ``keep_revisions > 0`` keeps that many recent revisions; 0 compacts to the revision seen
        at the previous tick, like kube-apiserver, so at least one interval of history stays."""
        if self._loop is None or self._closed:
            raise StoreClosed("store is not running")
        if self._compactor is not None and not self._compactor.done():
            return
        self._compactor = self._loop.create_task(
            self._auto_compact(interval, keep_revisions), name="vkube-store-compactor"
        )

    async def _auto_compact(self, interval: float, keep_revisions: int) -> None:
        previous = self._revision
        while True:
            await asyncio.sleep(interval)
            target = self._revision - keep_revisions if keep_revisions > 0 else previous
            previous = self._revision
            if target > self._compacted:
                try:
                    await self.compact(target)
                except (StoreError, sqlite3.Error):
                    log.exception("auto-compaction to revision %d failed", target)
