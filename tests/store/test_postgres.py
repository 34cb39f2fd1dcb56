"""The postgres backend: the shared conformance suite on a real PostgreSQL, each test in a
database of its own, plus what only postgres has (LISTEN/NOTIFY across stores)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from vkube.store import open_store
from vkube.store.base import Store
from vkube.store.postgres import PostgresStore, redact

from .conformance import StoreConformance, collect
from .conftest import fresh_postgres_database


@pytest.fixture
async def store_url(postgres_server: str) -> AsyncIterator[str]:
    async for url in fresh_postgres_database(postgres_server):
        yield url


class TestPostgresConformance(StoreConformance):
    async def break_connections(self, store: Store) -> None:
        """Terminate every server connection of the store's database (LISTEN included)."""
        assert isinstance(store, PostgresStore)
        conn = await asyncpg.connect(store.url)
        try:
            await conn.execute("""SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                                  WHERE datname = current_database() AND pid <> pg_backend_pid()""")
        finally:
            await conn.close()


async def test_two_stores_on_one_database_see_each_others_writes(store_url: str) -> None:
    """Two API server replicas: a watch on either sees every write, in order, at once."""
    a, b = open_store(store_url), open_store(store_url)
    await a.start()
    await b.start()
    try:
        start = await a.current_revision()
        wa, wb = a.watch("/t/", after_revision=start), b.watch("/t/", after_revision=start)
        writes = []
        for i in range(50):
            writes.append(await (a if i % 2 else b).create(f"/t/{i}", b"v"))
        expected = [kv.mod_revision for kv in writes]
        assert expected == list(range(start + 1, start + 51))  # no gaps across writers
        for it in (wa, wb):
            events = await asyncio.wait_for(collect(it, 50), 30)
            assert [e.revision for e in events] == expected
            await it.aclose()
        assert await a.current_revision() == await b.current_revision() == start + 50
    finally:
        await a.close()
        await b.close()


def test_url_password_is_redacted() -> None:
    assert redact("postgres://u:secret@h:5432/db") == "postgres://u:***@h:5432/db"
    assert redact("postgres://u@h/db") == "postgres://u@h/db"


async def test_compaction_while_writing_shares_the_writer_connection_safely(store_url: str) -> None:
    """Compaction runs in its own task while the drain task commits: both use the one writer
    connection, so they take turns; every write is acknowledged and readable afterwards, and a
    writer connection left inside a transaction by a cut-off operation is replaced, not reused."""
    store = open_store(store_url)
    await store.start()
    try:
        first = [await store.create(f"/c/{i}", b"0") for i in range(200)]

        async def writes() -> list[int]:
            revs = []
            mods = {f"/c/{i}": kv.mod_revision for i, kv in enumerate(first)}
            for round_ in range(1, 6):
                got = await asyncio.gather(*(store.update(
                    key, str(round_).encode(), expected_mod_revision=mod)
                    for key, mod in mods.items()))
                mods = {kv.key: kv.mod_revision for kv in got}
                revs += list(mods.values())
            return revs

        async def compactions() -> None:
            for _ in range(20):
                await store.compact(await store.current_revision())
                await asyncio.sleep(0)

        revs, _ = await asyncio.gather(writes(), compactions())
        assert len(set(revs)) == 1000
        items = (await store.range("/c/")).kvs
        assert sorted(kv.value for kv in items) == [b"5"] * 200

        # an operation cut off mid-transaction leaves the connection inside it
        driver = store.driver  # type: ignore[attr-defined]
        async with driver._writing() as conn:
            await conn.execute("BEGIN")
        assert (await store.create("/c/after", b"x")).key == "/c/after"
        assert (await store.get("/c/after")).value == b"x"
    finally:
        await store.close()
