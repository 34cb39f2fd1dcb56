"""The log-structured layer, split as kine splits it: etcd's semantics over a small ``Driver``.

A driver only stores and reads rows of one history table (one row per revision; see ``_sql``).
This layer holds what makes that an etcd: the write queue with group commit (every queued write
of a batch gets its own revision inside one transaction, each guarded on its key's mod revision
by ``plan_batch``), the ordered publication of committed events to in-process watchers (gaps left
by other processes' writes are filled from the table, so a watch sees every revision exactly
once), and compaction in bounded, time-boxed batches so writers never wait long behind it.

Drivers: ``sqlite`` (``SqliteDriver``) and ``postgres`` (``PostgresDriver``, which also reports
other processes' commits through LISTEN/NOTIFY). etcd needs no log layer: ``EtcdStore`` uses
etcd's own revisions and watch.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

from vkube.store._watch import Broadcaster, watch_stream
from vkube.store.base import (
    BackendError,
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    KeyValue,
    Op,
    RangeResult,
    RevisionMismatch,
    Store,
    StoreClosed,
    StoreError,
)

log = logging.getLogger(__name__)

#: One history row: (revision, key, created, deleted, create_revision, prev_revision, value).
Row = tuple[int, str, int, int, int, int, bytes]
#: The key whose tombstone marks a restored snapshot's revision (no resource's prefix).
RESTORE_MARK = "/vkube-restored"


@dataclass(slots=True)
class Write:
    """One queued write; the driver's ``commit`` fills in ``result`` and ``event``."""

    op: Literal["create", "update", "delete"]
    key: str
    value: bytes
    expected: int
    future: asyncio.Future[KeyValue] | None = None
    result: KeyValue | BaseException | None = None
    event: Event | None = field(default=None)
    #: part of a ``commit_all`` set: a failed guard fails the whole transaction
    atomic: bool = False


def plan_batch(batch: list[Write], latest: dict[str, KeyValue | None], revision: int) -> list[Row]:
    """Inside the driver's write transaction: check each write's guard against the key's state
    (``latest``: the committed state of every key in the batch, updated here as the batch goes),
    give each write that passes the next revision after ``revision``, and return the rows to
    insert. A write that fails its guard gets its ``StoreError`` and takes no revision."""
    rows: list[Row] = []
    for write in batch:
        write.result, write.event = None, None
        key, current = write.key, latest.get(write.key)
        try:
            if write.op == "create":
                if current is not None:
                    raise KeyExists(key)
            elif current is None:
                raise KeyNotFound(key)
            elif write.expected and write.expected != current.mod_revision:
                raise RevisionMismatch(key, current)
        except StoreError as exc:
            if write.atomic:
                raise  # the driver rolls the whole transaction back
            write.result = exc
            continue
        revision += 1
        if current is None:
            kv = KeyValue(key, write.value, revision, revision)
            rows.append((revision, key, 1, 0, revision, 0, write.value))
            write.event, latest[key] = Event("ADDED", kv), kv
        elif write.op == "update":
            kv = KeyValue(key, write.value, current.create_revision, revision)
            rows.append((revision, key, 0, 0, kv.create_revision, current.mod_revision, kv.value))
            write.event, latest[key] = Event("MODIFIED", kv, current), kv
        else:
            kv = KeyValue(key, current.value, current.create_revision, revision)
            rows.append((revision, key, 0, 1, kv.create_revision, current.mod_revision, kv.value))
            write.event, latest[key] = Event("DELETED", kv, current), None
        write.result = kv
    return rows


class Driver(abc.ABC):
    """Rows in, rows out. Every method may raise ``StoreError`` (``Compacted``,
    ``FutureRevision``) or a driver exception (wrapped in ``BackendError`` by the layer)."""

    name = "driver"
    #: The driver's own exceptions, reported as ``BackendError``.
    errors: tuple[type[Exception], ...] = (OSError,)

    @abc.abstractmethod
    async def open(self) -> tuple[int, int]:
        """Connect, create the schema; return (current revision, compacted revision)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def commit(self, batch: list[Write]) -> None:
        """One transaction: read the batch's keys' latest states, ``plan_batch``, insert the
        rows. Raising means nothing of the batch was committed."""

    @abc.abstractmethod
    async def get(self, key: str, revision: int) -> KeyValue | None: ...

    @abc.abstractmethod
    async def range(self, prefix: str, start_after: str, limit: int,
                    revision: int) -> RangeResult: ...

    @abc.abstractmethod
    async def history(self, prefix: str, after: int, limit: int) -> list[Event]:
        """Events with revision > ``after`` on keys with ``prefix``; ``Compacted`` below it."""

    @abc.abstractmethod
    async def revisions(self) -> tuple[int, int]:
        """(current revision, compacted revision) as committed now."""

    @abc.abstractmethod
    async def mark_compacted(self, revision: int) -> int:
        """Record the compacted revision; return the oldest revision still stored."""

    async def compact_chunk(self, lo: int, hi: int, revision: int) -> tuple[int, float]:
        """Delete rows in [lo, hi) superseded at ``revision`` (and tombstones) in one
        transaction; return the count and the seconds the transaction held the write lock.
        Drivers with ``planned_compaction`` need not implement it."""
        raise NotImplementedError

    #: Whether the driver compacts by plan (``compaction_cursor``, ``compaction_plan``,
    #: ``compaction_delete``, ``vacuum_step``) rather than by ``compact_chunk``: history is
    #: read off the write path and deleted a few rows at a time, only between writes.
    planned_compaction = False

    async def compaction_cursor(self) -> int:
        """The revision up to which every row's superseded predecessor has been deleted."""
        raise NotImplementedError

    async def compaction_plan(self, lo: int, hi: int, revision: int) -> list[int]:
        """Without the write lock: the revisions that the rows in [lo, hi] make deletable at
        ``revision``, in the order that touches the fewest pages."""
        raise NotImplementedError

    async def compaction_delete(self, revisions: list[int], *, cursor: int | None,
                                forced: bool,
                                yield_to: Callable[[], bool]) -> tuple[int, float]:
        """One short write transaction deleting a prefix of ``revisions`` (as many rows as
        the driver finds fit a few milliseconds; a handful when ``forced``), or nothing
        when ``yield_to()`` says a write waits by the time it would start (unless
        ``forced``). When it deleted them all, it also records ``cursor`` (if given) as the
        compaction cursor. Returns (rows done, seconds the transaction took)."""
        raise NotImplementedError

    async def vacuum_step(self) -> bool:
        """Give a few free pages back to the file system in one short transaction; True
        while more remain."""
        return False

    async def maintain(self) -> None:
        """Housekeeping after a compaction pass (checkpoints, reclaiming space)."""

    @abc.abstractmethod
    async def load(self, rows: list[Row], revision: int) -> bool:
        """Into an empty table only, in one transaction: insert ``rows`` as they are (their
        own revisions) and mark everything up to ``revision`` compacted; False (nothing
        done) when the table holds anything."""

    async def throttle(self) -> None:
        """Called between two compaction transactions: background work may wait here (for
        the database to catch up on its own upkeep); writers never do."""

    #: Drivers that commit on one thread of their own (sqlite) set this and offer
    #: ``on_writer_thread`` and ``commit_sync``: the log layer then queues commit jobs that
    #: take their batch when that thread gets to them (``LogStore._pump``).
    pipelined = False

    def on_writer_thread(self, job: Callable[[], list[Write]]) -> asyncio.Future[list[Write]]:
        """Run ``job`` on the writer thread after every job queued before it (pipelined)."""
        raise NotImplementedError

    def commit_sync(self, batch: list[Write]) -> None:
        """``commit`` on the writer thread (pipelined drivers)."""
        raise NotImplementedError

    def isolate_on_failure(self, exc: BaseException) -> bool:
        """After a failed batch, retry its writes one by one to find the culprit? Not when the
        connection broke: the commit may have happened, and a retry would apply it twice."""
        return True

    def on_remote_commit(self, callback: Callable[[int], None],
                         watched: Callable[[], bool] = lambda: True) -> None:
        """Drivers shared by several processes call ``callback(revision)`` (on the event loop)
        when another process committed up to ``revision``. ``watched()``: whether anyone
        watches now (a driver that must poll for others' commits polls only then)."""


class LogStore(Store):
    """``Store`` over a ``Driver``. ``watch_buffer``: live events buffered per watcher before it
    falls back to reading history; ``max_batch``: writes per group commit (1 disables it)."""

    #: Time budget of one compaction transaction; chunk sizes adapt to stay under it.
    compact_budget = 0.005
    #: Planned compaction: revisions read per plan (bounds its memory), and how long it
    #: waits for a pause in the writes before it slips a few rows in between them anyway.
    plan_window = 100_000
    write_patience = 0.25

    def __init__(self, driver: Driver, *, watch_buffer: int = 1000, max_batch: int = 256) -> None:
        self.driver = driver
        self._max_batch = max_batch
        self._broadcaster = Broadcaster(maxsize=watch_buffer)
        self._started = False
        self._closed = False
        self._pending: list[Write] = []
        self._drainer: asyncio.Task[None] | None = None
        #: pipelined drivers: ``_pending`` is shared with the writer thread under this lock;
        #: whether a pump job is queued that has not taken its batch yet; the pumps' results
        #: in commit order, answered by ``_finisher``
        self._pending_lock = threading.Lock()
        self._pump_queued = False
        self._pumps: deque[asyncio.Future[list[Write]]] = deque()
        self._finisher: asyncio.Task[None] | None = None
        self._revision = 0
        self._compacted = 0
        self._published = 0
        self._stash: dict[int, Event] = {}
        self._publisher: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._compact_lock = asyncio.Lock()
        self._chunk = 1000
        #: Longest single compaction transaction so far, and the latest ones (seconds).
        self.max_compaction_stall = 0.0
        self.compaction_txn_seconds: deque[float] = deque(maxlen=100_000)

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started and not self._closed:
            return
        if self._closed:
            raise StoreClosed("store is closed")
        try:
            self._revision, self._compacted = await self.driver.open()
        except StoreError:
            self._closed = True
            raise
        except self.driver.errors as exc:
            self._closed = True
            with contextlib.suppress(Exception):
                await self.driver.close()
            raise BackendError(f"{self.driver.name}: cannot open {self.driver}: {exc}") from exc
        self._published = self._revision
        self._started = True
        self.driver.on_remote_commit(self._remote_commit, lambda: len(self._broadcaster) > 0)
        self._publisher = asyncio.get_running_loop().create_task(
            self._publish_loop(), name=f"vkube-store-{self.driver.name}-publisher")

    async def close(self) -> None:
        if self._closed or not self._started:
            self._closed = True
            return
        self._closed = True
        for task in (getattr(self, "_auto_compactor", None), self._publisher):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._pending and self.driver.pipelined:  # queued in this turn: not submitted yet
            self._submit_pump()
        for task in (self._drainer, self._finisher):  # queued writes still finish
            if task is not None:
                with contextlib.suppress(Exception):
                    await task
        self._broadcaster.close()
        await self.driver.close()

    def _check_open(self) -> None:
        if not self._started or self._closed:
            raise StoreClosed("store is not running")

    # -- revisions ---------------------------------------------------------------------------

    async def current_revision(self) -> int:
        return self._revision

    @property
    def compacted_revision(self) -> int:
        return self._compacted

    # -- reads -------------------------------------------------------------------------------

    async def _call(self, coro: object) -> object:
        """Await a driver call; its database errors become ``BackendError``."""
        try:
            return await coro  # type: ignore[misc]
        except StoreError as exc:
            if isinstance(exc, Compacted):
                self._compacted = max(self._compacted, exc.compacted)
            raise
        except self.driver.errors as exc:
            raise BackendError(f"{self.driver.name}: {type(exc).__name__}: {exc}") from exc

    async def get(self, key: str, *, revision: int = 0) -> KeyValue | None:
        self._check_open()
        return await self._call(self.driver.get(key, revision))  # type: ignore[return-value]

    async def range(
        self, prefix: str, *, start_after: str = "", limit: int = 0, revision: int = 0
    ) -> RangeResult:
        self._check_open()
        return await self._call(  # type: ignore[return-value]
            self.driver.range(prefix, start_after, limit, revision))

    # -- watch -------------------------------------------------------------------------------

    def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[Event]:
        return watch_stream(self._broadcaster, self._read_history, prefix,
                            after_revision=after_revision)

    def listen(self, prefix: str, push: Callable[[Event], None],
               on_close: Callable[[], None]) -> Callable[[], None] | None:
        listener = self._broadcaster.listen(prefix, push, on_close)

        def stop() -> None:
            listener.closed = True  # stopped, not closed: ``on_close`` is not called
            self._broadcaster.unsubscribe(listener)
        return stop

    def published_revision(self) -> int | None:
        return self._published

    async def history(self, prefix: str, after: int, limit: int) -> list[Event]:
        return await self._read_history(prefix, after, limit)

    async def _read_history(self, prefix: str, after: int, limit: int) -> list[Event]:
        if self._closed or not self._started:
            return []  # the subscription is closed too, so the watch ends
        events = await self._call(self.driver.history(prefix, after, limit))
        # Never replay past what was published: live events above it come from the broadcaster.
        return [e for e in events if e.revision <= self._published]  # type: ignore[union-attr]

    # -- publication -------------------------------------------------------------------------

    def _committed(self, events: list[Event]) -> None:
        """Our own commit: publish at once when it follows the last published revision."""
        if not events:
            return
        self._revision = max(self._revision, events[-1].revision)
        if events[0].revision == self._published + 1 and not self._stash:
            self._published = events[-1].revision
            self._broadcaster.publish(events)
            return
        for event in events:
            if event.revision > self._published:
                self._stash[event.revision] = event
        self._wake.set()

    def _remote_commit(self, revision: int) -> None:
        self._revision = max(self._revision, revision)
        if revision > self._published:
            self._wake.set()

    async def _publish_loop(self) -> None:
        """Publish revisions in order; fill gaps (others' commits) from the table."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._published < self._revision:
                nxt = self._published + 1
                run: list[Event] = []
                while nxt in self._stash:
                    run.append(self._stash.pop(nxt))
                    nxt += 1
                if not run:
                    try:
                        run = await self._call(self.driver.history("", self._published, 1000))  # type: ignore[assignment]
                    except StoreError as exc:
                        log.warning("store %s: cannot read history to publish: %s",
                                    self.driver.name, exc)
                        run = []
                    if not run:
                        await asyncio.sleep(0.01)  # a commit not visible yet; try again
                        continue
                self._published = run[-1].revision
                for revision in [r for r in self._stash if r <= self._published]:
                    del self._stash[revision]
                self._broadcaster.publish(run)

    # -- writes ------------------------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> KeyValue:
        return await self._write("create", key, value, 0)

    async def update(self, key: str, value: bytes, *, expected_mod_revision: int) -> KeyValue:
        return await self._write("update", key, value, expected_mod_revision)

    async def delete(self, key: str, *, expected_mod_revision: int = 0) -> KeyValue:
        return await self._write("delete", key, b"", expected_mod_revision)

    async def _write(self, op: Literal["create", "update", "delete"], key: str, value: bytes,
                     expected: int) -> KeyValue:
        self._check_open()
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"value must be bytes, not {type(value).__name__}")
        future: asyncio.Future[KeyValue] = asyncio.get_running_loop().create_future()
        write = Write(op, key, bytes(value), expected, future)
        if self.driver.pipelined:
            self._queue(write)
            return await asyncio.shield(future)
        self._pending.append(write)
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.get_running_loop().create_task(self._drain())
        # Once queued, the write happens even if the caller is cancelled (as with etcd).
        return await asyncio.shield(future)

    async def commit_all(self, ops: list[Op]) -> None:
        """The set in one driver transaction (one SQLite / PostgreSQL transaction), taking
        the writer's turn: queued writes commit before it, writes queued meanwhile after."""
        self._check_open()
        for op in ops:
            if not isinstance(op.value, (bytes, bytearray, memoryview)):
                raise TypeError(f"value must be bytes, not {type(op.value).__name__}")
        batch = [Write(op.op, op.key, bytes(op.value), op.expected, atomic=True) for op in ops]
        if not batch:
            return
        while any(t is not None and not t.done() for t in (self._drainer, self._finisher)):
            await asyncio.wait({t for t in (self._drainer, self._finisher) if t is not None and not t.done()})
        task = asyncio.get_running_loop().create_task(self._commit_atomic(batch))
        self._drainer = task
        await asyncio.shield(task)  # once started, it completes even if the caller goes

    async def _commit_atomic(self, batch: list[Write]) -> None:
        try:
            await self.driver.commit(batch)
        except Exception as exc:
            self._fail(batch, exc)
            error = batch[0].result
            assert isinstance(error, BaseException)
            raise error from exc if error is not exc else None
        finally:
            if self._pending and not self.driver.pipelined:  # writes that queued behind the set
                self._drainer = asyncio.get_running_loop().create_task(self._drain())
        self._committed([w.event for w in batch if w.event is not None])

    async def _drain(self) -> None:
        """Commit queued writes in batches until none are left (one writer per store)."""
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            try:
                await self.driver.commit(batch)
            except Exception as exc:  # the transaction failed as a whole
                if len(batch) > 1 and self.driver.isolate_on_failure(exc):
                    for write in batch:  # find the culprit: one write per transaction
                        try:
                            await self.driver.commit([write])
                        except Exception as one:
                            self._fail([write], one)
                else:
                    self._fail(batch, exc)
            self._finish(batch)

    # -- pipelined group commit (drivers that commit on one thread of their own) -------------

    def _queue(self, write: Write) -> None:
        """Queue ``write``; unless a pump job is queued that has not taken its batch yet, queue
        one, from the next turn of the loop (so that every write of this turn joins it)."""
        with self._pending_lock:
            self._pending.append(write)
            if self._pump_queued:
                return
            self._pump_queued = True
        asyncio.get_running_loop().call_soon(self._submit_pump)

    def _submit_pump(self) -> None:
        try:
            self._pumps.append(self.driver.on_writer_thread(self._pump))
        except Exception as exc:  # the driver is closed: nothing will take these writes
            with self._pending_lock:
                self._pump_queued = False
                batch, self._pending = self._pending, []
            self._fail(batch, exc)
            self._finish(batch)
            return
        if self._finisher is None or self._finisher.done():
            self._finisher = asyncio.get_running_loop().create_task(self._finish_pumps())

    def _pump(self) -> list[Write]:
        """Writer thread: take what is queued now and commit it. A batch queued behind a
        running commit so starts the moment that one ends, with every write queued meanwhile,
        instead of after a round trip through a busy event loop. When the transaction fails,
        its writes are retried one by one here, before any later batch, as ``_drain`` does."""
        with self._pending_lock:
            self._pump_queued = False
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
        if not batch:
            return batch
        try:
            self.driver.commit_sync(batch)
        except Exception as exc:  # the transaction failed as a whole
            if len(batch) > 1 and self.driver.isolate_on_failure(exc):
                for write in batch:
                    try:
                        self.driver.commit_sync([write])
                    except Exception as one:
                        self._fail([write], one)
            else:
                self._fail(batch, exc)
        return batch

    async def _finish_pumps(self) -> None:
        """Answer the pumps' writers in commit order (events are published in order)."""
        while self._pumps:
            pump = self._pumps[0]
            try:
                await asyncio.wait({pump})
            finally:
                if pump.done():
                    self._pumps.popleft()
            try:
                batch = pump.result()
            except BaseException:  # pragma: no cover - _pump answers every write itself
                log.exception("store %s: a commit job failed", self.driver.name)
                continue
            self._finish(batch)
            with self._pending_lock:  # more than one batch was queued: take the rest too
                more = bool(self._pending) and not self._pump_queued
                if more:
                    self._pump_queued = True
            if more:
                self._submit_pump()

    def _fail(self, batch: list[Write], exc: Exception) -> None:
        if not isinstance(exc, StoreError):
            error = BackendError(f"{self.driver.name}: {type(exc).__name__}: {exc}")
            error.__cause__ = exc
            exc = error
        for write in batch:
            write.result, write.event = exc, None

    def _finish(self, batch: list[Write]) -> None:
        """Publish the batch's events in order, then answer the writers."""
        self._committed([w.event for w in batch if w.event is not None])
        for write in batch:
            future = write.future
            if future is None or future.done():
                continue
            if isinstance(write.result, BaseException):
                future.set_exception(write.result)
            else:
                future.set_result(write.result)  # type: ignore[arg-type]

    # -- restore -----------------------------------------------------------------------------

    async def load(self, items: list[KeyValue], revision: int) -> bool:
        """Restore ``items`` with their own create and mod revisions into this store if it has
        never been written (else False, nothing done), and make ``revision`` (the snapshot's)
        current and compacted: a client's resourceVersions stay valid, a watch from an older
        one gets ``Compacted`` (410, relist) since its history is not here. A tombstone of
        the reserved key ``RESTORE_MARK`` holds ``revision`` when no item was written at it."""
        self._check_open()
        mods = [kv.mod_revision for kv in items]
        if len(set(mods)) != len(mods) or any(not 0 < m <= revision for m in mods) \
                or any(not 0 < kv.create_revision <= kv.mod_revision for kv in items):
            return False  # not one key per revision (e.g. a multi-key transaction): no way
        rows: list[Row] = [(kv.mod_revision, kv.key, int(kv.create_revision == kv.mod_revision),
                            0, kv.create_revision, 0, kv.value) for kv in items]
        if revision > 0 and revision not in set(mods):
            rows.append((revision, RESTORE_MARK, 0, 1, revision, 0, b""))
        rows.sort()
        async with self._compact_lock:
            if self._revision or self._pending:
                return False
            if not await self._call(self.driver.load(rows, revision)):
                return False
            self._revision = self._published = max(self._revision, revision)
            self._compacted = max(self._compacted, revision)
        return True

    # -- compaction --------------------------------------------------------------------------

    async def compact(self, revision: int) -> None:
        self._check_open()
        async with self._compact_lock:
            current, compacted = await self._call(self.driver.revisions())  # type: ignore[misc]
            self._compacted = max(self._compacted, compacted)
            if revision > current:
                raise FutureRevision(f"cannot compact at {revision}: current is {current}")
            if revision <= self._compacted:
                return
            # Mark first: from now on reads below ``revision`` fail instead of seeing rows vanish.
            lo = await self._call(self.driver.mark_compacted(revision))
            self._compacted = max(self._compacted, revision)
            if self.driver.planned_compaction:
                await self._compact_planned(revision)
                await self._vacuum()
            else:
                await self._compact_rows(lo, revision)  # type: ignore[arg-type]
            await self._call(self.driver.maintain())

    async def _compact_rows(self, lo: int, revision: int) -> None:
        """Delete superseded rows in chunks sized to ``compact_budget`` per transaction."""
        while lo < revision and not self._closed:
            hi = min(lo + self._chunk, revision)
            _, took = await self._call(self.driver.compact_chunk(lo, hi, revision))  # type: ignore[misc]
            self.max_compaction_stall = max(self.max_compaction_stall, took)
            self.compaction_txn_seconds.append(took)
            if took < self.compact_budget / 2:
                self._chunk = min(self._chunk * 2, 100_000)
            elif took > self.compact_budget:
                self._chunk = max(self._chunk // 2, 50)
            lo = hi
            await asyncio.sleep(0)  # let queued writes in between chunks
            await self._call(self.driver.throttle())

    # -- planned compaction: writers first -----------------------------------------------------

    def _writes_waiting(self) -> bool:
        """A write is queued or committing (read from the writer thread too)."""
        if self._pending or self._pumps:
            return True
        drainer = self._drainer
        return drainer is not None and not drainer.done()

    async def _writes_idle(self) -> bool:
        """Wait for a moment when no write is queued or committing: True then; False when
        writes kept coming for ``write_patience`` seconds (compaction must progress too)."""
        deadline = asyncio.get_running_loop().time() + self.write_patience
        while (drainer := self._drainer) is not None and not drainer.done():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return False
            await asyncio.wait({drainer}, timeout=left)
        return True

    async def _compact_planned(self, revision: int) -> None:
        """Delete what ``revision`` supersedes, reading history in windows of ``plan_window``
        revisions from the compaction cursor on. Each window's plan is read without the write
        lock; its rows are deleted in transactions of a few milliseconds, each started only
        when no write is queued (a transaction that finds one queued by the time it would
        start gives way: ``took`` 0). The cursor advances with the last transaction of each
        window, so an interrupted pass resumes where it stopped."""
        lo = await self._call(self.driver.compaction_cursor())
        while lo <= revision and not self._closed:
            hi = min(lo + self.plan_window - 1, revision)
            plan: list[int] = await self._call(  # type: ignore[assignment]
                self.driver.compaction_plan(lo, hi, revision))
            done = 0
            while not self._closed:
                idle = await self._writes_idle()
                rest = plan[done:done + 10_000]
                last = done + len(rest) >= len(plan)
                n, took = await self._call(self.driver.compaction_delete(  # type: ignore[misc]
                    rest, cursor=hi if last else None, forced=not idle,
                    yield_to=self._writes_waiting))
                if took:
                    self.max_compaction_stall = max(self.max_compaction_stall, took)
                    self.compaction_txn_seconds.append(took)
                done += n
                if took and done >= len(plan):  # the window's last transaction ran
                    break
                await self._call(self.driver.throttle())
            lo = hi + 1
            await self._call(self.driver.throttle())

    async def _vacuum(self) -> None:
        """Give free pages back in short steps, each between two writes."""
        while not self._closed:
            await self._writes_idle()
            if not await self._call(self.driver.vacuum_step()):
                return
            await self._call(self.driver.throttle())
