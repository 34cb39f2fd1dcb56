"""PostgreSQL driver for the log layer (``log``), through asyncpg.

The history table is the same as SQLite's (see ``_sql``). Several processes (API server
replicas) may share one database: each write transaction takes one transaction-scoped advisory
lock before reading the current revision, so revisions are assigned without gaps and committed
in order across processes. The transaction ends with ``pg_notify`` of its last revision;
every process LISTENs and its log layer reads the new rows and publishes them to its watchers,
so a write anywhere reaches every watch within milliseconds, without polling. When the LISTEN
connection is lost it is re-opened and the process catches up from the table.

Keys are ``TEXT COLLATE "C"`` so they sort bytewise, like SQLite's keys and etcd's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

import vkube.store._sql as _sql
from vkube.store.base import (
    Compacted,
    Event,
    FutureRevision,
    KeyValue,
    RangeResult,
    StoreClosed,
)
from vkube.store.log import Driver, LogStore, Row, Write, plan_batch
from vkube.store.sqlite import prefix_end

log = logging.getLogger(__name__)

#: How long a write waits for an unreachable server before it fails (see ``_writer_conn``).
RECONNECT_SECONDS = 30.0
_LOCK = 0x766B756265  # advisory lock id ("vkube"): one writer transaction at a time
_CHANNEL = "vkube_kv"

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS kv (
        revision BIGINT PRIMARY KEY,
        key TEXT COLLATE "C" NOT NULL,
        created SMALLINT NOT NULL,
        deleted SMALLINT NOT NULL,
        create_revision BIGINT NOT NULL,
        prev_revision BIGINT NOT NULL,
        value BYTEA NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS kv_key_revision ON kv (key, revision)",
    "CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BIGINT NOT NULL)",
    "INSERT INTO meta (name, value) VALUES ('compacted', 0) ON CONFLICT DO NOTHING",
)
_REVISIONS = """SELECT (SELECT coalesce(max(revision), 0) FROM kv),
                       (SELECT value FROM meta WHERE name = 'compacted')"""
_LATEST_ONE = """SELECT key, value, create_revision, revision, deleted FROM kv
                 WHERE key = $1 ORDER BY revision DESC LIMIT 1"""
_AT_REVISION = """SELECT key, value, create_revision, revision, deleted FROM kv
                  WHERE key = $1 AND revision <= $2 ORDER BY revision DESC LIMIT 1"""
_RANGE_WHERE = """c.key >= $1 AND c.key > $2 AND ($3::text IS NULL OR c.key < $3)
      AND c.revision <= $4
      AND c.revision = (SELECT max(n.revision) FROM kv AS n
                        WHERE n.key = c.key AND n.revision <= $4)
      AND c.deleted = 0"""
_RANGE = f"""SELECT c.key, c.value, c.create_revision, c.revision FROM kv AS c
             WHERE {_RANGE_WHERE} ORDER BY c.key LIMIT $5"""
_COUNT = f"SELECT count(*) FROM kv AS c WHERE {_RANGE_WHERE}"
_HISTORY = """SELECT c.revision, c.key, c.created, c.deleted, c.create_revision, c.value,
                     p.revision, p.create_revision, p.value
              FROM kv AS c LEFT JOIN kv AS p ON p.revision = c.prev_revision
              WHERE c.revision > $1 AND c.key >= $2 AND ($3::text IS NULL OR c.key < $3)
              ORDER BY c.revision LIMIT $4"""
_INSERT = """INSERT INTO kv (revision, key, created, deleted, create_revision, prev_revision,
             value) SELECT * FROM unnest($1::bigint[], $2::text[], $3::smallint[],
             $4::smallint[], $5::bigint[], $6::bigint[], $7::bytea[])"""
# The current revision and the latest rows of the batch's keys, in one query. It must run after
# (not in) the statement taking the lock: a statement sees the commits made before it started.
_CURRENT_AND_LATEST = """
    SELECT l.key, l.value, l.create_revision, l.revision, l.deleted, cur.revision
    FROM (SELECT coalesce(max(revision), 0) AS revision FROM kv) AS cur LEFT JOIN LATERAL (
        SELECT DISTINCT ON (key) key, value, create_revision, revision, deleted FROM kv
        WHERE key = ANY($1::text[]) ORDER BY key, revision DESC) AS l ON true"""
_INSERT_AND_NOTIFY = f"""
    WITH ins AS ({_INSERT} RETURNING revision)
    SELECT pg_notify($8, max(revision)::text) FROM ins"""
_SET_COMPACTED = "UPDATE meta SET value = $1 WHERE name = 'compacted' AND value < $1"
_MIN_REVISION = "SELECT coalesce(min(revision), 0) FROM kv"
_COMPACT_CHUNK = """DELETE FROM kv WHERE revision >= $1 AND revision < $2 AND revision < $3
                    AND (deleted = 1 OR EXISTS (
                        SELECT 1 FROM kv AS n WHERE n.key = kv.key
                          AND n.revision > kv.revision AND n.revision <= $3))"""


class _ReaderConnection(asyncpg.Connection):  # type: ignore[misc]
    """Pool connections only run self-contained reads (each transaction ends before release),
    so the pool's reset query — one more round trip per read — has nothing to reset."""

    def get_reset_query(self) -> str:
        return ""


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


class PostgresDriver(Driver):
    """Rows of the history table in one PostgreSQL database."""

    name = "postgres"
    errors = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, UnicodeError,
              asyncio.TimeoutError)

    def __init__(self, url: str, *, pool_size: int = 4) -> None:
        self.url = url
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._writer: asyncpg.Connection | None = None
        #: The writer connection serves one operation at a time: commits come from the store's
        #: drain task while compaction runs in its own, and an asyncpg connection shared by two
        #: tasks fails both (and can be left inside a transaction no later write gets out of).
        self._writer_lock = asyncio.Lock()
        self._listener: asyncpg.Connection | None = None
        self._on_remote: Callable[[int], None] | None = None
        self._keeper: asyncio.Task[None] | None = None
        self._closed = False

    def __str__(self) -> str:
        return redact(self.url)

    async def open(self) -> tuple[int, int]:
        # min_size=0: while the server is down the pool does not keep trying (and logging a
        # traceback) to restore a floor of connections; reads open one when they need it
        self._pool = await asyncpg.create_pool(self.url, min_size=0, max_size=self._pool_size,
                                               connection_class=_ReaderConnection)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)  # schema races
            for statement in _SCHEMA:
                await conn.execute(statement)
        await self._listen()
        self._keeper = asyncio.get_running_loop().create_task(self._keep_listening())
        return await self.revisions()

    async def close(self) -> None:
        self._closed = True
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        for conn in (self._listener, self._writer):
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 5)
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pool.close(), 5)

    def on_remote_commit(self, callback: Callable[[int], None],
                         watched: Callable[[], bool] = lambda: True) -> None:
        self._on_remote = callback  # NOTIFY pushes: nothing to poll, watchers or not

    # -- notifications -----------------------------------------------------------------------

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self.url)
        await conn.add_listener(_CHANNEL, self._notified)
        self._listener = conn

    def _notified(self, conn: Any, pid: int, channel: str, payload: str) -> None:
        writer = self._writer
        if writer is not None and not writer.is_closed() and pid == writer.get_server_pid():
            return  # our own commit, published as it was acknowledged
        if self._on_remote is not None:
            self._on_remote(int(payload))

    async def _keep_listening(self) -> None:
        """Re-open a lost LISTEN connection, then catch up on what was missed meanwhile."""
        failing = False
        while True:
            await asyncio.sleep(0.5)
            if self._listener is not None and not self._listener.is_closed():
                continue
            try:
                await self._listen()
                current, _ = await self.revisions()
            except self.errors as exc:
                if not failing:  # once per outage, not twice a second
                    log.warning("postgres %s: LISTEN connection lost, retrying: %s", self, exc)
                failing = True
                continue
            if failing:
                log.info("postgres %s: LISTEN connection back", self)
            failing = False
            if self._on_remote is not None:
                self._on_remote(current)

    # -- reads -------------------------------------------------------------------------------

    def _reader(self) -> Any:
        if self._pool is None or self._closed:
            raise StoreClosed("store is not running")
        return self._pool.acquire()

    @staticmethod
    async def _check(conn: Any, revision: int) -> int:
        current, compacted = await conn.fetchrow(_REVISIONS)
        if revision == 0:
            return current
        if revision > current:
            raise FutureRevision(f"revision {revision} is newer than the current {current}")
        if revision < compacted:
            raise Compacted(revision, compacted)
        return revision

    async def get(self, key: str, revision: int) -> KeyValue | None:
        async with self._reader() as conn:
            if revision == 0:
                row = await conn.fetchrow(_LATEST_ONE, key)
            else:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    await self._check(conn, revision)
                    row = await conn.fetchrow(_AT_REVISION, key, revision)
        if row is None or row[4]:
            return None
        return _sql.kv_from_row(tuple(row))

    async def range(self, prefix: str, start_after: str, limit: int,
                    revision: int) -> RangeResult:
        upper = prefix_end(prefix)
        async with self._reader() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                at = await self._check(conn, revision)
                rows = await conn.fetch(_RANGE, prefix, start_after, upper, at,
                                        limit + 1 if limit > 0 else None)
                kvs = [_sql.kv_from_row(tuple(row)) for row in rows]
                more = 0 < limit < len(kvs)
                if more:
                    del kvs[limit:]
                    count = await conn.fetchval(_COUNT, prefix, start_after, upper, at)
                else:
                    count = len(kvs)
        return RangeResult(kvs=kvs, revision=at, more=more, count=count)

    async def history(self, prefix: str, after: int, limit: int) -> list[Event]:
        upper = prefix_end(prefix)
        async with self._reader() as conn:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                _, compacted = await conn.fetchrow(_REVISIONS)
                if after < compacted:
                    raise Compacted(after, compacted)
                rows = await conn.fetch(_HISTORY, after, prefix, upper, limit)
        return [_sql.event_from_row(tuple(row)) for row in rows]

    async def revisions(self) -> tuple[int, int]:
        async with self._reader() as conn:
            current, compacted = await conn.fetchrow(_REVISIONS)
        return current, compacted

    # -- writes ------------------------------------------------------------------------------

    async def _writer_conn(self) -> asyncpg.Connection:
        """The writer's connection, re-opened when lost. While the server cannot be reached
        (restarting) the connect is retried for up to ``RECONNECT_SECONDS``: nothing was sent
        yet, so a short restart costs the write latency, not an error (as etcd's client)."""
        if self._closed:
            raise StoreClosed("store is not running")
        if self._writer is None or self._writer.is_closed():
            deadline = time.monotonic() + RECONNECT_SECONDS
            while True:
                try:
                    self._writer = await asyncpg.connect(self.url, timeout=10)
                    break
                except (OSError, asyncpg.CannotConnectNowError, asyncio.TimeoutError):
                    if self._closed or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.2)
        return self._writer

    @contextlib.asynccontextmanager
    async def _writing(self) -> AsyncIterator[asyncpg.Connection]:
        """The writer connection, held by this task alone. One that an interrupted operation
        left inside a transaction is dropped for a fresh one: rolling it back here could undo
        nothing ours, and asyncpg refuses new transactions on it for good."""
        async with self._writer_lock:
            conn = await self._writer_conn()
            if conn.is_in_transaction():
                conn.terminate()
                self._writer = None
                conn = await self._writer_conn()
            yield conn

    async def commit(self, batch: list[Write]) -> None:
        """Five round trips: BEGIN; the lock; the current revision with the keys' latest rows;
        insert and notify in one statement; COMMIT."""
        async with self._writing() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            keys = list({write.key for write in batch})
            rows = await conn.fetch(_CURRENT_AND_LATEST, keys)
            revision = rows[0][5]
            latest: dict[str, KeyValue | None] = dict.fromkeys(keys)
            for row in rows:
                if row[0] is not None and not row[4]:
                    latest[row[0]] = _sql.kv_from_row(tuple(row))
            planned = plan_batch(batch, latest, revision)
            if planned:
                await conn.execute(_INSERT_AND_NOTIFY, *(list(c) for c in zip(*planned)),
                                   _CHANNEL)

    def isolate_on_failure(self, exc: BaseException) -> bool:
        """Only a statement the server refused (a bad key) is retried write by write; a lost
        connection leaves the commit's fate unknown, so the batch fails as it is."""
        return isinstance(exc, asyncpg.PostgresError) and not isinstance(
            exc, (asyncpg.PostgresConnectionError, asyncpg.InterfaceError))

    async def load(self, rows: list[Row], revision: int) -> bool:
        async with self._writing() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            current, compacted = await conn.fetchrow(_REVISIONS)
            if current or compacted:
                return False
            for i in range(0, len(rows), 10_000):
                chunk = rows[i:i + 10_000]
                await conn.execute(_INSERT, *(list(c) for c in zip(*chunk)))
            await conn.execute(_SET_COMPACTED, revision)
        return True

    # -- compaction --------------------------------------------------------------------------

    async def mark_compacted(self, revision: int) -> int:
        async with self._writing() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK)
            await conn.execute(_SET_COMPACTED, revision)
            return await conn.fetchval(_MIN_REVISION)

    async def compact_chunk(self, lo: int, hi: int, revision: int) -> tuple[int, float]:
        async with self._writing() as conn:
            began = time.perf_counter()
            status = await conn.execute(_COMPACT_CHUNK, lo, hi, revision)
            return int(status.split()[-1]), time.perf_counter() - began


class PostgresStore(LogStore):
    """``Store`` on one PostgreSQL database (``postgres://USER[:PASSWORD]@HOST:PORT/DB``)."""

    def __init__(self, url: str, *, watch_buffer: int = 1000, max_batch: int = 256,
                 pool_size: int = 4) -> None:
        super().__init__(PostgresDriver(url, pool_size=pool_size), watch_buffer=watch_buffer,
                         max_batch=max_batch)
        self.url = url
