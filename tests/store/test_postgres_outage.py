"""PostgreSQL going away under a running store, on a server of the test's own that it stops
and starts (same port, same data): a write waits for the server to come back (the connect is
retried, nothing was sent yet), and then succeeds; one that waits longer than the bound fails
as a clean ``BackendError``; the watch (LISTEN re-opened) goes on with nothing lost."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

import vkube.store.postgres as pg
from vkube.store import open_store
from vkube.store.base import BackendError

from .servers import PostgresServer


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    try:
        s = PostgresServer()
    except FileNotFoundError as exc:
        pytest.skip(f"PostgreSQL outage tests need the server binaries: {exc}")
    s.start()
    try:
        yield s
    finally:
        s.remove()


async def collect(it, n: int, timeout: float = 60) -> list:
    return [await asyncio.wait_for(anext(it), timeout) for _ in range(n)]


async def test_store_rides_out_a_postgres_restart(server: PostgresServer) -> None:
    store = open_store(server.url)
    await store.start()
    try:
        it = store.watch("/r/", after_revision=await store.current_revision())
        before = [await store.create(f"/r/a{i}", b"v") for i in range(3)]
        assert [e.revision for e in await collect(it, 3)] == [kv.mod_revision for kv in before]
        await asyncio.to_thread(server.stop)
        during = asyncio.create_task(store.create("/r/during", b"v"))
        await asyncio.sleep(2)
        assert not during.done()  # waiting for the server, not failed
        await asyncio.to_thread(server.start)
        written = [await asyncio.wait_for(during, 60)]
        written += [await store.create(f"/r/c{i}", b"v") for i in range(3)]
        events = await collect(it, len(written))
        assert [e.kv.key for e in events] == ["/r/during", "/r/c0", "/r/c1", "/r/c2"]
        assert [e.revision for e in events] == [kv.mod_revision for kv in written]
        await it.aclose()
    finally:
        await store.close()


async def test_a_longer_outage_is_a_clean_error(server: PostgresServer,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pg, "RECONNECT_SECONDS", 2.0)
    store = open_store(server.url)
    await store.start()
    try:
        await store.create("/k/a", b"v")
        await asyncio.to_thread(server.stop)
        with pytest.raises(BackendError, match="postgres"):
            await store.create("/k/b", b"v")
        with pytest.raises(BackendError):
            await store.get("/k/a")  # reads fail at once while the server is down
        await asyncio.to_thread(server.start)
        await store.create("/k/b", b"v")
        assert (await store.get("/k/a")) is not None
    finally:
        await store.close()
