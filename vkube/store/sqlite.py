"""The default store: the log layer (``log``) over SQLite through stdlib ``sqlite3``.

Writes run on one dedicated writer thread, so revisions are assigned inside one transaction at a
time: no gaps, never out of order. The log layer queues commit jobs that take the queued writes
as one batch when the thread gets to them (group commit, pipelined: the batch behind a running
commit starts when it ends, without waiting for the event loop). With WAL and ``synchronous=FULL`` an acknowledged write survives a crash of the process
or the machine.

Reads run on a small pool of reader threads with their own connections, so they never wait
behind a write; a read at a given revision runs in one read transaction (a WAL snapshot).

The database maintains itself, and writers come first (see ``LogStore._compact_planned``):
- compaction reads what to delete on its own thread and connection, without the write lock:
  every row names the row it supersedes (``prev_revision``), so only the rows written since
  the last pass are read (the cursor in ``meta``), in windows sorted by key, so that one delete
  transaction touches a few keys' index pages instead of one page per row;
- it deletes them in transactions of ~``_DELETE_BUDGET`` (one statement each, so the writer
  thread never waits for the GIL inside one), started only when no write is queued; they
  commit without fsync and compaction syncs their WAL frames itself, beside the writer;
- incremental vacuum gives pages back in steps of the same size, between writes too;
- checkpoints run beside the writer; since SQLite restarts the WAL only in a write that starts
  fully checkpointed, the last few frames are checkpointed between two writes once the WAL
  passed ``_WAL_HARD_LIMIT`` (``_bound_wal``), which keeps it bounded under steady writes.
Each commit records how long it waited behind such upkeep (``commit_stalls``).

Watches are served in-process. Another process writing the same file (``vkube snapshot
restore`` is refused while serve runs, but a second tool or store may write) is seen too: SQLite
has no change notification, so while this process has watchers it stats the WAL every
``_REMOTE_POLL`` seconds (a syscall on the event loop, no query); when the WAL changed it reads
the current revision on a reader thread, and the log layer fills the gap from the table.
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
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import vkube.store._sql as _sql
from vkube.store.base import (
    BackendError,
    Compacted,
    Event,
    FutureRevision,
    KeyValue,
    RangeResult,
    StoreClosed,
)
from vkube.store.log import Driver, LogStore, Row, Write, plan_batch

log = logging.getLogger(__name__)

__all__ = ["BackendError", "SqliteDriver", "SqliteStore", "StoreClosed", "prefix_end"]

T = TypeVar("T")

#: Pages freed by the first incremental-vacuum step; later steps adapt to ``_VACUUM_BUDGET``.
_VACUUM_STEP = 64
_VACUUM_BUDGET = 0.002
#: Compaction deletes as many rows per transaction as take this long (at first _DELETE_ROWS);
#: when writes leave no pause, it slips _FORCED_ROWS in between two of them.
_DELETE_BUDGET = 0.0015
_DELETE_ROWS = 128
_FORCED_ROWS = 16
#: Compaction syncs its WAL frames itself every this many deleted rows.
_SYNC_ROWS = 1000
#: Memory for sorting one compaction plan (KiB; SQLite allocates it only when used).
_PLAN_CACHE_KIB = 16 * 1024
#: A passive checkpoint runs when the WAL grows past this many bytes (checked this often).
_CHECKPOINT_BYTES = 8 * 1024 * 1024
_CHECKPOINT_INTERVAL = 0.5
#: Past this, the checkpoint beside the writer is finished between two writes once it has
#: only ``_FINISH_FRAMES`` left (a short job; the next write then restarts the WAL); past
#: ``_WAL_LAST_RESORT``, whatever is left.
_WAL_HARD_LIMIT = 32 * 1024 * 1024
_FINISH_FRAMES = 512
_WAL_LAST_RESORT = 128 * 1024 * 1024
#: The longest compaction waits for checkpoints to catch up before its next transaction.
_THROTTLE_SECONDS = 2.0
#: The WAL is truncated back to this size whenever a checkpoint resets it.
_JOURNAL_SIZE_LIMIT = 16 * 1024 * 1024
#: How often the WAL is stat'ed for other processes' commits, while there are watchers.
_REMOTE_POLL = 0.02


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


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


#: Writer-thread jobs that are upkeep, not writes (their time is a write's stall).
_BACKGROUND = frozenset({"compaction_delete", "vacuum_step", "writer_checkpoint"})


class SqliteDriver(Driver):
    """Rows of the history table in one SQLite file (see ``_sql.SQLITE``)."""

    name = "sqlite"
    planned_compaction = True
    pipelined = True
    errors = (sqlite3.Error, UnicodeError, OSError)

    def __init__(self, path: str, *, readers: int = 2, durable: bool = True) -> None:
        self.path = path
        self._durable = durable
        self._readers_count = readers
        self._dialect = _sql.SQLITE
        self._writer: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._checkpointer: ThreadPoolExecutor | None = None
        self._cconn: sqlite3.Connection | None = None
        #: compaction's own thread and connection: plans are read, and the WAL synced after
        #: each compaction transaction, without holding up writes or checkpoints
        self._compactor: ThreadPoolExecutor | None = None
        self._pconn: sqlite3.Connection | None = None
        self._vacuum_pages = _VACUUM_STEP
        self._delete_rows = _DELETE_ROWS
        self._unsynced_rows = 0
        self._checkpoints: asyncio.Task[None] | None = None
        self._remote: asyncio.Task[None] | None = None
        self._wconn: sqlite3.Connection | None = None
        self._rconns: list[sqlite3.Connection] = []
        #: the event loop's own connection for latest-value point reads (``get``)
        self._iconn: sqlite3.Connection | None = None
        self._local = threading.local()
        self._lock = threading.Lock()
        #: The longest time each kind of writer-thread job (commit, compaction_delete,
        #: vacuum_step, writer_checkpoint...) kept writes waiting, in seconds.
        self.writer_max_seconds: dict[str, float] = {}
        #: Per commit: seconds it waited on the writer thread behind background jobs
        #: (compaction, vacuum, checkpoints), i.e. the stall upkeep caused; and seconds the
        #: commit itself ran (fsync included). The latest ones, for benchmarks and tests.
        self.commit_stalls: deque[float] = deque(maxlen=200_000)
        self.commit_seconds: deque[float] = deque(maxlen=200_000)
        self._bg_done = 0.0
        self._bg_since: float | None = None
        #: the WAL as this process's last commit left it, when no other process had committed
        #: since our commit before (the revision the writer ended on is ``_own_revision``):
        #: the remote-commit poll then knows the change is ours and reads nothing
        self._own_wal: tuple[int, int, int] | None = None
        self._own_revision = -1
        self._in_commit = False
        #: writer thread: when the running commit job was queued (see ``_commit_job``)
        self._queued: tuple[float, float, float | None] = (0.0, 0.0, None)

    def __str__(self) -> str:
        return self.path

    async def open(self) -> tuple[int, int]:
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="vkube-store-writer")
        self._readers = ThreadPoolExecutor(self._readers_count,
                                           thread_name_prefix="vkube-store-reader")
        self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="vkube-store-checkpoint")
        self._compactor = ThreadPoolExecutor(1, thread_name_prefix="vkube-store-compactor")
        revisions = await self._on_writer(self._open_writer)
        # timeout 0: a busy file raises at once instead of blocking the event loop
        self._iconn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        self._iconn.execute("PRAGMA query_only = ON")
        self._checkpoints = asyncio.get_running_loop().create_task(self._checkpoint_loop())
        return revisions

    async def close(self) -> None:
        for task in (self._checkpoints, self._remote):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        for pool in (self._writer, self._readers, self._checkpointer, self._compactor):
            if pool is not None:
                await asyncio.to_thread(pool.shutdown, True)
        self._writer = self._readers = self._checkpointer = self._compactor = None
        for conn in [self._wconn, self._cconn, self._pconn, self._iconn, *self._rconns]:
            if conn is not None:
                conn.close()
        self._wconn, self._cconn, self._pconn, self._iconn = None, None, None, None
        self._rconns = []

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout = 10000")
        return conn

    def _open_writer(self) -> tuple[int, int]:
        conn = self._wconn = self._connect()
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # takes effect on a new file only
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT}")
        # Checkpoints run on their own connection and thread (``_checkpoint_loop``), never
        # inside a writer's commit, where SQLite's automatic checkpoint would stall it.
        conn.execute("PRAGMA wal_autocheckpoint = 0")
        conn.execute(f"PRAGMA synchronous = {'FULL' if self._durable else 'OFF'}")
        for statement in self._dialect.schema:
            conn.execute(statement)
        current, compacted = conn.execute(self._dialect.revisions).fetchone()
        self._own_revision = current
        return current, compacted

    def on_remote_commit(self, callback: Callable[[int], None],
                         watched: Callable[[], bool] = lambda: True) -> None:
        self._remote = asyncio.get_running_loop().create_task(
            self._watch_others(callback, watched), name=f"vkube-store-sqlite-remote {self.path}")

    async def _watch_others(self, callback: Callable[[int], None],
                            watched: Callable[[], bool]) -> None:
        """Report commits of other processes: stat the WAL while anyone watches; when it
        changed (any commit appends to it, ours too), read the current revision."""
        seen: tuple[int, int, int] | None = None
        deferred = False
        while True:
            await asyncio.sleep(_REMOTE_POLL)
            if not watched():
                seen = None  # when watching starts again, look once
                continue
            now = self._wal_signature()
            if now == seen:
                continue
            if self._in_commit and not deferred:
                deferred = True  # likely ours, not yet recorded: look again next time (once)
                continue
            deferred = False
            seen = now
            if now == self._own_wal:
                continue  # our own last commit, with no other process's before it
            try:
                current, _ = await self.revisions()
            except (sqlite3.Error, OSError) as exc:
                log.warning("sqlite %s: cannot read the current revision: %s", self.path, exc)
                continue
            except StoreClosed:
                return
            callback(current)

    def _wal_signature(self) -> tuple[int, int, int]:
        """What changes in the WAL file whenever anyone commits."""
        try:
            st = os.stat(self.path + "-wal")
            return (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            return (0, 0, 0)

    def _reader_conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
            conn.execute("PRAGMA query_only = ON")
            with self._lock:
                self._rconns.append(conn)
        return conn

    async def _on_writer(self, fn: Any, *args: Any) -> Any:
        if self._writer is None:
            raise StoreClosed("store is not running")
        return await asyncio.get_running_loop().run_in_executor(self._writer, self._timed,
                                                                fn, *args)

    def _timed(self, fn: Any, *args: Any) -> Any:
        """Writer thread: run ``fn`` and keep the longest time each kind of job held it."""
        name = fn.__name__.strip("_").removesuffix("_sync")
        background = name in _BACKGROUND
        began = time.perf_counter()
        if background:
            self._bg_since = began
        try:
            return fn(*args)
        finally:
            took = time.perf_counter() - began
            if background:  # in this order: a commit enqueued meanwhile over-counts, never under
                self._bg_since = None
                self._bg_done += took
            if took > self.writer_max_seconds.get(name, 0.0):
                self.writer_max_seconds[name] = took

    def _commit_job(self, enqueued: float, bg_done: float, bg_since: float | None,
                    batch: list[Write]) -> None:
        """Writer thread: commit, and account how long the batch waited behind background
        jobs: those that ran between its enqueueing and now, less what the one running when
        it was enqueued had already done by then."""
        began = time.perf_counter()
        stall = self._bg_done - bg_done
        if bg_since is not None:
            stall -= enqueued - bg_since
        self.commit_stalls.append(max(0.0, stall))
        try:
            self._commit_sync(batch)
        finally:
            self.commit_seconds.append(time.perf_counter() - began)

    def on_writer_thread(self, job: Callable[[], list[Write]]) -> asyncio.Future[list[Write]]:
        if self._writer is None:
            raise StoreClosed("store is not running")
        return asyncio.get_running_loop().run_in_executor(
            self._writer, self._timed, self._commit_job_sync, time.perf_counter(), self._bg_done,
            self._bg_since, job)

    def _commit_job_sync(self, enqueued: float, bg_done: float, bg_since: float | None,
                         job: Callable[[], list[Write]]) -> list[Write]:
        """Writer thread: a log-layer commit job (timed as ``commit_job``, like ``commit``)."""
        self._queued = (enqueued, bg_done, bg_since)
        return job()

    def commit_sync(self, batch: list[Write]) -> None:
        queued, self._queued = self._queued, (time.perf_counter(), self._bg_done, None)
        self._commit_job(*queued, batch)

    async def _on_reader(self, fn: Any, *args: Any) -> Any:
        if self._readers is None:
            raise StoreClosed("store is not running")
        return await asyncio.get_running_loop().run_in_executor(self._readers, fn, *args)

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

    async def get(self, key: str, revision: int) -> KeyValue | None:
        """A key's latest value is read right on the event loop: one indexed lookup in a WAL
        snapshot takes microseconds, while a hand-off to a reader thread and back costs two
        thread wake-ups (milliseconds on a loaded machine) per GET, PUT and PATCH. When the
        file is busy (a checkpoint resetting the WAL) the read goes to the reader threads,
        which wait for it; so do reads at a revision."""
        conn = self._iconn
        if revision == 0 and conn is not None and self._readers is not None:
            try:
                cur = conn.execute(self._dialect.latest, (key,))
                try:
                    row = cur.fetchone()
                finally:
                    cur.close()  # ends the read transaction now
            except sqlite3.OperationalError:
                pass
            else:
                return None if row is None or row[4] else _sql.kv_from_row(row)
        return await self._on_reader(self._get_sync, key, revision)

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

    async def range(self, prefix: str, start_after: str, limit: int,
                    revision: int) -> RangeResult:
        return await self._on_reader(self._range_sync, prefix, start_after, limit, revision)

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

    async def history(self, prefix: str, after: int, limit: int) -> list[Event]:
        return await self._on_reader(self._history_sync, prefix, after, limit)

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

    async def revisions(self) -> tuple[int, int]:
        return await self._on_reader(self._revisions_sync)

    def _revisions_sync(self) -> tuple[int, int]:
        current, compacted = self._reader_conn().execute(self._dialect.revisions).fetchone()
        return current, compacted

    # -- writes ------------------------------------------------------------------------------

    async def commit(self, batch: list[Write]) -> None:
        await self._on_writer(self._commit_job, time.perf_counter(), self._bg_done,
                              self._bg_since, batch)

    def _commit_sync(self, batch: list[Write]) -> None:
        conn = self._wconn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        self._in_commit = True  # from here on the WAL may change under the remote-commit poll
        try:
            revision = conn.execute(self._dialect.revisions).fetchone()[0]
            latest: dict[str, KeyValue | None] = {}
            for write in batch:
                if write.key not in latest:
                    row = conn.execute(self._dialect.latest, (write.key,)).fetchone()
                    latest[write.key] = None if row is None or row[4] else _sql.kv_from_row(row)
            rows = plan_batch(batch, latest, revision)
            conn.executemany(self._dialect.insert, rows)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            self._own_wal, self._in_commit = None, False
            raise
        # the WAL is ours alone when this batch began where our previous one ended
        self._own_wal = self._wal_signature() if revision == self._own_revision else None
        self._own_revision = revision + len(rows)
        self._in_commit = False

    async def load(self, rows: list[Row], revision: int) -> bool:
        return await self._on_writer(self._load_sync, rows, revision)

    def _load_sync(self, rows: list[Row], revision: int) -> bool:
        conn = self._wconn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            current, compacted = conn.execute(self._dialect.revisions).fetchone()
            if current or compacted:
                conn.execute("ROLLBACK")
                return False
            conn.executemany(self._dialect.insert, rows)
            conn.execute(self._dialect.set_compacted, {"revision": revision})
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        return True

    # -- compaction and upkeep ---------------------------------------------------------------

    async def mark_compacted(self, revision: int) -> int:
        return await self._on_writer(self._mark_compacted_sync, revision)

    def _mark_compacted_sync(self, revision: int) -> int:
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

    async def compaction_cursor(self) -> int:
        return await self._on_reader(
            lambda: self._reader_conn().execute(self._dialect.compact_cursor).fetchone()[0])

    async def compaction_plan(self, lo: int, hi: int, revision: int) -> list[int]:
        if self._compactor is None:
            raise StoreClosed("store is not running")
        return await asyncio.get_running_loop().run_in_executor(
            self._compactor, self._plan_sync, lo, hi, revision)

    def _plan_sync(self, lo: int, hi: int, revision: int) -> list[int]:
        """Compactor thread, one read transaction: every row in [lo, hi] names the older row
        it supersedes (``prev_revision``), and a tombstone older than ``revision`` goes too.
        Sorted by key, so one delete transaction touches a few keys' index pages (and the
        table pages of one window) instead of one index page per row."""
        if self._pconn is None:
            self._pconn = self._connect()
            self._pconn.execute("PRAGMA query_only = ON")
            self._pconn.execute(f"PRAGMA cache_size = -{_PLAN_CACHE_KIB}")
        conn = self._pconn
        plan: list[int] = []
        conn.execute("BEGIN")
        try:
            cur = conn.execute(self._dialect.compact_plan,
                               {"lo": lo, "hi": hi, "revision": revision})
            while rows := cur.fetchmany(4096):
                for prev, rev, deleted in rows:
                    if prev:
                        plan.append(prev)
                    if deleted and rev < revision:
                        plan.append(rev)
        finally:
            conn.execute("COMMIT")
        return plan

    async def compaction_delete(self, revisions: list[int], *, cursor: int | None,
                                forced: bool,
                                yield_to: Callable[[], bool]) -> tuple[int, float]:
        done, took = await self._on_writer(self._compaction_delete_sync, revisions, cursor,
                                           forced, yield_to)
        self._unsynced_rows += done
        if self._unsynced_rows >= _SYNC_ROWS:
            # The transactions committed without fsync (nothing in them needs to survive a
            # crash: a lost deletion is redone). Sync their WAL frames now, beside the writer,
            # so that the next write's own fsync is not the one that pays for them all.
            self._unsynced_rows = 0
            assert self._compactor is not None
            await asyncio.get_running_loop().run_in_executor(self._compactor, self._sync_wal)
        return done, took

    def _compaction_delete_sync(self, revisions: list[int], cursor: int | None, forced: bool,
                                yield_to: Callable[[], bool]) -> tuple[int, float]:
        """Writer thread: one statement deletes the whole batch, so the transaction never
        waits for the GIL in between rows. Its size adapts to ``_DELETE_BUDGET``."""
        if not forced and yield_to():
            return 0, 0.0  # a write was queued behind this job: it goes first
        conn = self._wconn
        assert conn is not None
        batch = revisions[:_FORCED_ROWS if forced else self._delete_rows]
        began = time.perf_counter()
        conn.execute("PRAGMA synchronous = NORMAL")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if batch:
                    conn.execute(self._dialect.compact_delete,
                                 {"revisions": f"[{','.join(map(str, batch))}]"})
                if cursor is not None and len(batch) == len(revisions):
                    conn.execute(self._dialect.set_compact_cursor, {"revision": cursor})
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
        finally:
            conn.execute(f"PRAGMA synchronous = {'FULL' if self._durable else 'OFF'}")
        took = time.perf_counter() - began
        if not forced and len(batch) == self._delete_rows:
            if took < _DELETE_BUDGET / 2:
                self._delete_rows = min(self._delete_rows * 5 // 4 + 1, 5000)
            elif took > _DELETE_BUDGET:
                self._delete_rows = max(self._delete_rows // 2, _FORCED_ROWS)
        return len(batch), took

    def _sync_wal(self) -> None:
        if not self._durable:
            return
        try:
            fd = os.open(self.path + "-wal", os.O_RDONLY)
        except OSError:
            return
        try:
            os.fdatasync(fd)
        finally:
            os.close(fd)

    async def vacuum_step(self) -> bool:
        more: bool = await self._on_writer(self._vacuum_step_sync)
        assert self._compactor is not None
        await asyncio.get_running_loop().run_in_executor(self._compactor, self._sync_wal)
        return more

    async def maintain(self) -> None:
        await self._side_checkpoint()

    async def throttle(self) -> None:
        """Between two compaction or vacuum transactions: while the WAL is large, checkpoint
        beside the writer until it has caught up (bounded in time). The next write then
        restarts the WAL from its beginning, truncated to ``journal_size_limit``. Background
        work waits here; writers never do."""
        if self._wal_bytes() <= _CHECKPOINT_BYTES:
            return
        deadline = time.monotonic() + _THROTTLE_SECONDS
        while time.monotonic() < deadline:
            log_frames, done = await self._bound_wal()
            if done >= log_frames:  # all of it: the next write starts the WAL over
                return
            await asyncio.sleep(0.005)

    def _wal_bytes(self) -> int:
        try:
            return os.path.getsize(self.path + "-wal")
        except OSError:
            return 0

    async def _checkpoint_loop(self) -> None:
        """Keep the WAL bounded under steady writes: a passive checkpoint beside the writer
        whenever the WAL grew past ``_CHECKPOINT_BYTES`` (see ``_bound_wal``). Only if it
        still reaches ``_WAL_LAST_RESORT`` (writes so dense that no checkpoint beside them
        gets close) does a whole checkpoint run between two writes."""
        while True:
            await asyncio.sleep(_CHECKPOINT_INTERVAL)
            try:
                size = self._wal_bytes()
                if size > _CHECKPOINT_BYTES:
                    await self._bound_wal()
                if size > _WAL_LAST_RESORT:
                    await self._on_writer(self._writer_checkpoint_sync)
            except (OSError, sqlite3.Error) as exc:
                log.warning("sqlite %s: checkpoint failed: %s", self.path, exc)

    async def _bound_wal(self) -> tuple[int, int]:
        """A passive checkpoint beside the writer; (frames in the WAL, frames checkpointed).

        SQLite restarts the WAL from its beginning only in a write that starts when every
        frame has been checkpointed. Under steady writes, no write sees that moment: one is
        always under way (it began before the checkpoint ended) and appends, and the WAL
        grows on. So once it passed ``_WAL_HARD_LIMIT``, the last few frames (often none)
        are checkpointed on the writer thread, between two writes, and the next write
        restarts the WAL."""
        log_frames, done = await self._side_checkpoint()
        if log_frames - done <= _FINISH_FRAMES and self._wal_bytes() > _WAL_HARD_LIMIT:
            await self._on_writer(self._writer_checkpoint_sync)
            return log_frames, log_frames
        return log_frames, done

    async def _side_checkpoint(self) -> tuple[int, int]:
        """(frames in the WAL, frames checkpointed) after a passive checkpoint beside the writer."""
        if self._checkpointer is None:
            raise StoreClosed("store is not running")
        return await asyncio.get_running_loop().run_in_executor(self._checkpointer,
                                                                self._checkpoint_sync)

    async def _checkpoint(self) -> None:
        """Checkpoint beside the writer, then briefly between two writes (tests, shutdown)."""
        await self._side_checkpoint()
        await self._on_writer(self._writer_checkpoint_sync)

    def _writer_checkpoint_sync(self) -> None:
        assert self._wconn is not None
        self._wconn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def _checkpoint_sync(self) -> tuple[int, int]:
        if self._cconn is None:
            self._cconn = self._connect()
            self._cconn.execute(f"PRAGMA journal_size_limit = {_JOURNAL_SIZE_LIMIT}")
        _, log_frames, done = self._cconn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return log_frames, done

    def _vacuum_step_sync(self) -> bool:
        """Free a few pages (as many as fit ``_VACUUM_BUDGET``); True while free pages remain."""
        conn = self._wconn
        assert conn is not None
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:
            return False  # a file created before incremental vacuum: nothing to do cheaply
        began = time.perf_counter()
        conn.execute("PRAGMA synchronous = NORMAL")  # as for compaction: nothing to lose
        try:
            # executescript steps the pragma to its end: execute() steps it once, which
            # frees one page whatever the argument
            conn.executescript(f"PRAGMA incremental_vacuum({self._vacuum_pages});")
        finally:
            conn.execute(f"PRAGMA synchronous = {'FULL' if self._durable else 'OFF'}")
        took = time.perf_counter() - began
        if took < _VACUUM_BUDGET / 2:
            self._vacuum_pages = min(self._vacuum_pages * 2, 1024)
        elif took > _VACUUM_BUDGET:
            self._vacuum_pages = max(self._vacuum_pages // 2, 8)
        return conn.execute("PRAGMA freelist_count").fetchone()[0] > 0

    def file_sizes(self) -> dict[str, int]:
        """Bytes of the database file and its WAL (for benchmarks and upkeep tests)."""
        sizes = {}
        for name, path in (("db", self.path), ("wal", self.path + "-wal")):
            try:
                sizes[name] = os.path.getsize(path)
            except OSError:
                sizes[name] = 0
        return sizes


class SqliteStore(LogStore):
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
        self._path = os.fspath(path)
        self._ephemeral_dir: str | None = None
        super().__init__(
            SqliteDriver(self._path, readers=readers, durable=durable and self._path != ":memory:"),
            watch_buffer=watch_buffer, max_batch=max_batch)

    @property
    def path(self) -> str:
        return self._path

    async def start(self) -> None:
        if self._path == ":memory:" and self._ephemeral_dir is None and not self._closed:
            self._ephemeral_dir = tempfile.mkdtemp(prefix="vkube-store-")
            self.driver.path = os.path.join(self._ephemeral_dir, "store.db")  # type: ignore[attr-defined]
            self._path = self.driver.path  # type: ignore[attr-defined]
        try:
            await super().start()
        except BaseException:
            self._remove_ephemeral()
            raise

    async def close(self) -> None:
        try:
            await super().close()
        finally:
            self._remove_ephemeral()

    def _remove_ephemeral(self) -> None:
        if self._ephemeral_dir is not None and self._closed:
            shutil.rmtree(self._ephemeral_dir, ignore_errors=True)
