"""The sqlite backend: the shared conformance suite plus sqlite-specific behaviour."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from vkube.store import BackendError, SqliteStore, StoreClosed, UnsupportedStore, open_store
from vkube.store.base import Compacted
from vkube.store.sqlite import prefix_end

from .conformance import StoreConformance, collect


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite://{tmp_path}/store.db"


class TestSqliteConformance(StoreConformance):
    pass  # other processes' writes too: the WAL is watched (see vkube/store/sqlite.py)


@pytest.fixture
async def small_buffer(tmp_path: Path):
    store = SqliteStore(tmp_path / "small.db", watch_buffer=8)
    await store.start()
    yield store
    await store.close()


async def test_slow_watcher_catches_up_from_history(small_buffer: SqliteStore) -> None:
    """A watcher that stops reading overflows its buffer and re-reads history: no loss."""
    store = small_buffer
    it = store.watch("/s/", after_revision=0)
    await store.create("/s/0", b"0")
    assert (await anext(it)).revision == 1  # now subscribed and live
    writes = [await store.create(f"/s/{i}", b"v") for i in range(1, 100)]
    events = await collect(it, 99)
    assert [e.revision for e in events] == [kv.mod_revision for kv in writes]
    more = await store.create("/s/last", b"v")
    assert (await anext(it)).revision == more.mod_revision
    await it.aclose()


async def test_slow_watcher_past_compaction_gets_compacted(small_buffer: SqliteStore) -> None:
    store = small_buffer
    it = store.watch("/s/", after_revision=0)
    await store.create("/s/0", b"0")
    await anext(it)
    for i in range(50):
        await store.update("/s/0", b"%d" % i, expected_mod_revision=0)
    await store.compact(40)
    with pytest.raises(Compacted):
        await anext(it)


async def test_unread_watch_does_not_block_writers(small_buffer: SqliteStore) -> None:
    store = small_buffer
    watches = [store.watch("/b/", after_revision=0) for _ in range(5)]
    for it in watches:
        pending = asyncio.ensure_future(anext(it))
        await store.create(f"/b/{id(it)}", b"v")
        await pending
    for i in range(200):  # nobody reads: buffers overflow, writes still complete
        await store.create(f"/b/x{i}", b"v")
    assert await store.current_revision() == 205
    for it in watches:
        await it.aclose()


async def test_concurrent_writers_share_fsyncs_and_all_are_durable(tmp_path: Path) -> None:
    """Group commit: writes queued together commit in one transaction (one fsync), each gets
    its own revision, and every acknowledged one is there after a restart."""
    path = tmp_path / "group.db"
    store = SqliteStore(path)
    await store.start()
    try:
        commits = len(store.driver.commit_seconds)
        kvs = await asyncio.gather(*(store.create(f"/gc/{i:03d}", b"v%d" % i) for i in range(100)))
        assert len(store.driver.commit_seconds) - commits <= 5  # not one transaction per write
        assert sorted(kv.mod_revision for kv in kvs) == list(range(kvs[0].mod_revision, kvs[0].mod_revision + 100))
    finally:
        await store.close()
    again = SqliteStore(path)
    await again.start()
    try:
        got = await again.range("/gc/")
        assert [(kv.key, kv.value, kv.mod_revision) for kv in got.kvs] == \
            [(kv.key, kv.value, kv.mod_revision) for kv in sorted(kvs, key=lambda kv: kv.key)]
    finally:
        await again.close()


async def test_own_commits_are_not_read_back_but_another_writers_are(tmp_path: Path) -> None:
    """The remote-commit poll knows a WAL change of this process's own commit (no read on a
    reader thread per write); a commit of another writer on the file, before or after one of
    ours, still reaches this store's watchers."""
    path = tmp_path / "own.db"
    store, other = SqliteStore(path), SqliteStore(path)  # ``other`` writes as another process would
    await store.start()
    await other.start()
    try:
        it = store.watch("/o/", after_revision=await store.current_revision())
        reads = 0
        revisions = store.driver.revisions

        async def counted() -> tuple[int, int]:
            nonlocal reads
            reads += 1
            return await revisions()

        store.driver.revisions = counted  # type: ignore[method-assign]
        first = await store.create("/o/first", b"v")
        assert (await anext(it)).revision == first.mod_revision  # watching from here on
        await asyncio.sleep(0.1)
        reads = 0
        watched = asyncio.ensure_future(collect(it, 20))
        own = []
        for i in range(20):
            own.append(await store.create(f"/o/own{i}", b"v"))
            await asyncio.sleep(0.03)  # past the poll interval: each commit is looked at
        assert [e.revision for e in await asyncio.wait_for(watched, 60)] == [kv.mod_revision for kv in own]
        assert reads <= 3, reads  # a poll may land mid-commit; it was one read per commit
        theirs = await other.create("/o/theirs", b"t")  # another writer, then us at once
        ours = await store.create("/o/ours", b"o")
        events = await asyncio.wait_for(collect(it, 2), 60)
        assert [(e.kv.key, e.revision) for e in events] == [("/o/theirs", theirs.mod_revision),
                                                            ("/o/ours", ours.mod_revision)]
        later = await other.create("/o/later", b"l")  # another writer's commit after ours
        event = await asyncio.wait_for(anext(it), 60)
        assert (event.kv.key, event.revision) == ("/o/later", later.mod_revision)
        await it.aclose()
    finally:
        await other.close()
        await store.close()


async def test_memory_store_is_ephemeral() -> None:
    store = open_store(":memory:")
    await store.start()
    await store.create("/a", b"x")
    path = Path(store.path)
    assert path.exists()
    await store.close()
    assert not path.exists()


async def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "c.db")
    with pytest.raises(StoreClosed):
        await store.get("/a")
    await store.start()
    await store.start()  # idempotent
    await store.close()
    await store.close()
    with pytest.raises(StoreClosed):
        await store.create("/a", b"x")


async def test_auto_compaction(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "a.db")
    await store.start()
    try:
        for i in range(20):
            await store.create(f"/k/{i}", b"v")
        store.start_auto_compaction(0.001, keep_revisions=5)
        while store.compacted_revision < 15:
            await asyncio.sleep(0.001)
        assert store.compacted_revision == 15
        assert (await store.range("/k/")).count == 20
    finally:
        await store.close()


async def test_value_must_be_bytes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "t.db")
    await store.start()
    try:
        with pytest.raises(TypeError):
            await store.create("/a", "text")  # type: ignore[arg-type]
        assert await store.current_revision() == 0
    finally:
        await store.close()


async def test_a_failing_write_does_not_fail_its_batch(tmp_path: Path) -> None:
    """Group commit: one write the database rejects fails alone; the others commit."""
    store = SqliteStore(tmp_path / "b.db")
    await store.start()
    try:
        keys = [f"/g/{i}" for i in range(20)]
        keys[7] = "/g/\ud800"  # a lone surrogate cannot be encoded as UTF-8
        results = await asyncio.gather(*(store.create(k, b"v") for k in keys),
                                       return_exceptions=True)
        assert isinstance(results[7], BackendError)
        good = [r for i, r in enumerate(results) if i != 7]
        assert sorted(kv.mod_revision for kv in good) == list(range(1, 20))
        assert (await store.range("/g/")).count == 19
        with pytest.raises(BackendError):
            await store.get("/g/\ud800")
    finally:
        await store.close()


def test_open_store_urls(tmp_path: Path) -> None:
    assert open_store(f"sqlite://{tmp_path}/x.db").path == f"{tmp_path}/x.db"
    assert open_store(f"sqlite:///{tmp_path}/x.db").path == f"{tmp_path}/x.db"
    assert open_store("sqlite://rel/x.db").path == "rel/x.db"
    assert open_store(str(tmp_path / "y.db")).path == str(tmp_path / "y.db")
    assert open_store("sqlite://:memory:").path == ":memory:"
    for url in ("mysql://x", "postgres://localhost", "etcd://nohostport", "etcd://u:p@h:1",
                "sqlite://"):
        with pytest.raises(UnsupportedStore):
            open_store(url)
    with pytest.raises(UnsupportedStore, match="etcd:// stores only"):
        open_store(str(tmp_path / "z.db"), ca_file="/ca.pem")


def test_prefix_end() -> None:
    assert prefix_end("/a/") == "/a0"
    assert prefix_end("") is None
    assert prefix_end("a\U0010ffff") == "b"
    assert prefix_end("\ud7ff") == "\ue000"


async def test_failed_start_closes(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "missing-dir" / "x.db")
    with pytest.raises(BackendError, match="cannot open"):
        await store.start()
    with pytest.raises(StoreClosed):
        await store.create("/a", b"x")


async def test_compaction_gives_space_back_and_keeps_the_wal_bounded(tmp_path: Path) -> None:
    """A history of 20,000 revisions on 100 keys compacts in short transactions; incremental
    vacuum returns the pages to the file system; the WAL is truncated back to its limit."""
    import sqlite3

    from vkube.store import sqlite as sqlite_backend

    store = SqliteStore(tmp_path / "m.db", durable=False)
    await store.start()
    try:
        value = b"v" * 1000
        for i in range(100):
            await store.create(f"/m/{i}", value)
        for _ in range(199):
            await asyncio.gather(*(store.update(f"/m/{i}", value, expected_mod_revision=0)
                                   for i in range(100)))
        driver = store.driver
        await driver._checkpoint()  # type: ignore[attr-defined]
        big = driver.file_sizes()  # type: ignore[attr-defined]
        steps = 0
        vacuum_step = driver.vacuum_step

        async def counted() -> bool:
            nonlocal steps
            steps += 1
            return await vacuum_step()

        driver.vacuum_step = counted  # type: ignore[method-assign]
        await store.compact(await store.current_revision())
        small = driver.file_sizes()  # type: ignore[attr-defined]
        # a step frees many pages (it used to free one, whatever it asked for)
        assert steps < (big["db"] - small["db"]) // 4096 // 8, steps
        assert small["db"] < big["db"] / 5, (big, small)
        assert small["wal"] <= sqlite_backend._JOURNAL_SIZE_LIMIT + 4 * 1024 * 1024
        assert len(store.compaction_txn_seconds) > 1  # in batches, not one transaction
        latest = await store.range("/m/")
        assert latest.count == 100 and all(kv.value == value for kv in latest.kvs)
        conn = sqlite3.connect(driver.path)  # type: ignore[attr-defined]
        try:
            assert conn.execute("SELECT count(*) FROM kv").fetchone()[0] == 100
            assert conn.execute("PRAGMA freelist_count").fetchone()[0] < 50
        finally:
            conn.close()
    finally:
        await store.close()


async def test_point_reads_on_the_loop_fall_back_to_readers_when_busy(tmp_path: Path) -> None:
    """Latest-value gets are read on the event loop's own connection; when SQLite says the
    file is busy they go to the reader threads (which wait), and reads at a revision always do."""
    import sqlite3

    store = SqliteStore(tmp_path / "s.db")
    await store.start()
    try:
        first = await store.create("/k", b"1")
        await store.update("/k", b"2", expected_mod_revision=first.mod_revision)
        got = await store.get("/k")
        assert got is not None and got.value == b"2"
        assert (await store.get("/k", revision=first.mod_revision)).value == b"1"  # type: ignore[union-attr]
        assert await store.get("/missing") is None

        class Busy:
            def execute(self, *a: object) -> None:
                raise sqlite3.OperationalError("database is locked")

            def close(self) -> None:
                pass

        store.driver._iconn = Busy()  # type: ignore[attr-defined]
        got = await store.get("/k")
        assert got is not None and got.value == b"2"
        await store.delete("/k")
        assert await store.get("/k") is None
    finally:
        await store.close()


def _expected_rows(rows: list[tuple[int, str, int]], at: int) -> list[int]:
    """The revisions a history (revision, key, deleted) keeps once compacted at ``at``: a key's
    rows superseded by a newer one <= ``at`` go, and so do tombstones older than ``at``."""
    newest: dict[str, list[int]] = {}
    for rev, key, _ in rows:
        newest.setdefault(key, []).append(rev)
    kept = []
    for rev, key, deleted in rows:
        superseded = any(rev < other <= at for other in newest[key])
        if not superseded and not (deleted and rev < at):
            kept.append(rev)
    return kept


async def test_compaction_in_windows_keeps_exactly_the_live_history(tmp_path: Path) -> None:
    """Creates, updates, deletes and re-creates, compacted three times with writes between:
    each time the table keeps exactly what the revision needs, reads at or after it answer
    as before, and a pass that failed half-way leaves nothing behind once the next one ran
    (the cursor resumes it)."""
    import random
    import sqlite3

    rng = random.Random(5)
    store = SqliteStore(tmp_path / "w.db", durable=False)
    store.plan_window = 37  # many windows, so the cursor moves often
    await store.start()
    driver = store.driver
    live: dict[str, int] = {}

    async def churn(n: int) -> None:
        for _ in range(n):
            key = f"/w/{rng.randrange(25)}"
            if key not in live:
                live[key] = (await store.create(key, b"c")).mod_revision
            elif rng.random() < 0.2:
                await store.delete(key, expected_mod_revision=live.pop(key))
            else:
                live[key] = (await store.update(key, b"u", expected_mod_revision=live[key])
                             ).mod_revision

    def table() -> list[tuple[int, str, int]]:
        conn = sqlite3.connect(driver.path)  # type: ignore[attr-defined]
        try:
            return conn.execute("SELECT revision, key, deleted FROM kv ORDER BY revision").fetchall()
        finally:
            conn.close()

    try:
        await churn(400)
        history = table()
        for step in range(3):
            at = await store.current_revision() - 30
            before = await store.range("/w/", revision=at)
            if step == 1:  # this pass fails in its third delete transaction
                real, calls = driver.compaction_delete, 0

                async def failing(*args, **kw):  # type: ignore[no-untyped-def]
                    nonlocal calls
                    calls += 1
                    if calls == 3:
                        raise sqlite3.OperationalError("disk I/O error")
                    return await real(*args, **kw)

                driver.compaction_delete = failing  # type: ignore[method-assign]
                with pytest.raises(BackendError):
                    await store.compact(at)
                driver.compaction_delete = real  # type: ignore[method-assign]
            else:
                await store.compact(at)
                assert [r[0] for r in table()] == _expected_rows(history, at)
                assert await store.range("/w/", revision=at) == before
            await churn(200)
            history = table()
        # the failed pass's leftovers are gone after the last one
        assert [r[0] for r in table()] == _expected_rows(history, store.compacted_revision)
    finally:
        await store.close()


async def test_compaction_gives_way_to_a_waiting_write(tmp_path: Path) -> None:
    """A delete transaction that would start while a write waits does nothing and lets the
    write go first, unless compaction has waited too long for a pause (then a few rows)."""
    from vkube.store import sqlite as sqlite_backend

    store = SqliteStore(tmp_path / "y.db", durable=False)
    await store.start()
    try:
        for i in range(100):
            await store.create(f"/y/{i}", b"v")
        driver = store.driver
        revisions = list(range(1, 101))
        assert await driver.compaction_delete(revisions, cursor=None, forced=False,
                                              yield_to=lambda: True) == (0, 0.0)
        assert (await store.range("/y/")).count == 100
        done, _ = await driver.compaction_delete(revisions, cursor=None, forced=True,
                                                 yield_to=lambda: True)
        assert done == sqlite_backend._FORCED_ROWS
        assert (await store.range("/y/")).count == 100 - done
        # the store's own signal: a write queued or committing
        assert not store._writes_waiting()
        write = asyncio.ensure_future(store.create("/y/new", b"v"))
        await asyncio.sleep(0)
        assert store._writes_waiting()
        await write
        assert await store._writes_idle()
    finally:
        await store.close()


async def test_the_wal_stays_bounded_under_steady_writes(tmp_path: Path) -> None:
    """SQLite restarts the WAL only in a write that begins fully checkpointed; with writes
    always under way, checkpoints beside them never leave that moment and the WAL grew
    without end. Past the hard limit the last frames are checkpointed between two writes."""
    from vkube.store import sqlite as sqlite_backend

    store = SqliteStore(tmp_path / "b.db", durable=False)
    await store.start()
    driver = store.driver
    stop = asyncio.Event()
    largest = 0

    async def upkeep() -> None:  # what the checkpoint loop does, more often than its 0.5 s
        nonlocal largest
        while not stop.is_set():
            await driver._bound_wal()  # type: ignore[attr-defined]
            largest = max(largest, driver.file_sizes()["wal"])  # type: ignore[attr-defined]
            await asyncio.sleep(0.02)

    task = asyncio.create_task(upkeep())
    try:
        value, written, i = b"w" * 4096, 0, 0
        while written < 4 * sqlite_backend._WAL_HARD_LIMIT:
            await asyncio.gather(*(store.create(f"/b/{i + j}", value) for j in range(64)))
            i += 64
            written += 64 * len(value)
        stop.set()
        await task
        assert largest < 2 * sqlite_backend._WAL_HARD_LIMIT, largest
    finally:
        stop.set()
        await store.close()
