"""Pipelined group commit on sqlite: commit jobs take their batch on the writer thread, so a
batch queued behind a running commit starts when that one ends, not after the event loop has
come round; every waiter is answered, in order, whatever fails."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from vkube.store import BackendError, SqliteStore, StoreClosed
from vkube.store.log import Write


def _committed(path: Path, key: str) -> bool:
    conn = sqlite3.connect(path, timeout=30)
    try:
        return conn.execute("SELECT 1 FROM kv WHERE key = ?", (key,)).fetchone() is not None
    finally:
        conn.close()


async def test_a_batch_queued_behind_a_commit_starts_without_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    store = SqliteStore(path)
    await store.start()
    try:
        driver = store.driver
        entered, release = threading.Event(), threading.Event()
        commit_sync = driver.commit_sync

        def held_first(batch: list[Write]) -> None:  # the first commit waits for the test
            if not entered.is_set():
                entered.set()
                assert release.wait(60)
            commit_sync(batch)

        driver.commit_sync = held_first  # type: ignore[method-assign]
        first = asyncio.ensure_future(store.create("/p/1", b"1"))
        deadline = time.monotonic() + 60
        while not entered.is_set():  # the writer thread runs the first batch
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        second = asyncio.ensure_future(store.create("/p/2", b"2"))
        await asyncio.sleep(0)  # /p/2 is queued, and its commit job on the writer thread
        await asyncio.sleep(0)
        assert not _committed(path, "/p/2")
        # From here on the event loop does not run until /p/2 is in the table: the writer
        # thread ends the first commit and goes straight on to the next batch.
        release.set()
        while not _committed(path, "/p/2"):
            assert time.monotonic() < deadline, "the second batch waited for the event loop"
            time.sleep(0.01)
        one, two = await first, await second
        assert (one.mod_revision, two.mod_revision) == (1, 2)
        assert [kv.key for kv in (await store.range("/p/")).kvs] == ["/p/1", "/p/2"]
    finally:
        await store.close()


async def test_when_every_commit_fails_every_waiter_gets_the_error_and_the_store_goes_on(
        tmp_path: Path) -> None:
    """A transaction that fails as a whole is retried write by write; when those fail too,
    each waiter gets a BackendError (none hangs, none is told it committed), and nothing of
    it is in the table. Writes after that commit normally, with the next revisions."""
    store = SqliteStore(tmp_path / "f.db")
    await store.start()
    try:
        await store.create("/f/before", b"v")
        driver = store.driver
        commit_sync = driver.commit_sync
        failing = True

        def broken(batch: list[Write]) -> None:
            if failing:
                raise sqlite3.OperationalError("disk I/O error")
            commit_sync(batch)

        driver.commit_sync = broken  # type: ignore[method-assign]
        results = await asyncio.gather(*(store.create(f"/f/{i}", b"v") for i in range(30)),
                                       return_exceptions=True)
        assert all(isinstance(r, BackendError) and "disk I/O error" in str(r) for r in results)
        assert [kv.key for kv in (await store.range("/f/")).kvs] == ["/f/before"]
        failing = False
        it = store.watch("/f/", after_revision=1)
        after = await asyncio.gather(*(store.create(f"/f/ok{i}", b"v") for i in range(10)))
        assert sorted(kv.mod_revision for kv in after) == list(range(2, 12))
        seen = [(await asyncio.wait_for(anext(it), 60)).revision for _ in range(10)]
        assert seen == list(range(2, 12))  # published in order, no gap for the failed ones
        await it.aclose()
    finally:
        await store.close()


async def test_writes_queued_after_close_is_called_are_refused(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "c.db")
    await store.start()
    pending = [asyncio.ensure_future(store.create(f"/c/{i}", b"v")) for i in range(20)]
    await asyncio.sleep(0)  # queued
    later = [asyncio.ensure_future(store.create(f"/c/later{i}", b"v")) for i in range(5)]
    await asyncio.sleep(0)  # queued in the turn close is called: its commit job is not submitted yet
    await store.close()  # queued writes still finish
    assert sorted(p.result().mod_revision for p in pending + later) == list(range(1, 26))
    with pytest.raises(StoreClosed):
        await store.create("/c/late", b"v")
