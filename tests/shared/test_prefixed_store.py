"""The store under shared mode: ``PrefixedStore`` views of one SQLite store (reads, writes,
ranges, watches and snapshots stay inside the view; a closed view refuses writes) and the
watch fan-out's prefix index (every prefix shape still gets exactly its events, in order)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from vkube.store import SqliteStore, StoreClosed
from vkube.store import snapshot
from vkube.store._watch import Broadcaster
from vkube.store.base import Event, KeyValue
from vkube.store.prefixed import PrefixedStore


@pytest.fixture
async def store(tmp_path: Path):  # noqa: ANN201
    s = SqliteStore(str(tmp_path / "db"))
    await s.start()
    try:
        yield s
    finally:
        await s.close()


async def test_views_are_disjoint(store: SqliteStore, tmp_path: Path) -> None:
    a, ab = PrefixedStore(store, "/clusters/a"), PrefixedStore(store, "/clusters/ab")
    await a.create("/core/pods/ns/p", b"a")
    await ab.create("/core/pods/ns/p", b"ab")
    kv = await a.get("/core/pods/ns/p")
    assert kv is not None and kv.key == "/core/pods/ns/p" and kv.value == b"a"
    assert [k.value for k in (await a.range("/core/")).kvs] == [b"a"]
    assert [k.value for k in (await a.range("")).kvs] == [b"a"]  # a whole-view range
    page = await ab.range("/", limit=1)
    assert page.count == 1 and not page.more
    # start_after is a view key too
    await a.create("/core/pods/ns/q", b"a2")
    assert [k.key for k in (await a.range("/core/", start_after="/core/pods/ns/p")).kvs] == ["/core/pods/ns/q"]
    with pytest.raises(ValueError):
        await a.get("core/pods")  # keys start with "/"
    # snapshots of a view restore into another view of the same shape
    f = tmp_path / "snap"
    await snapshot.save(a, f)
    c = PrefixedStore(store, "/clusters/c")
    info = await snapshot.restore(c, f)
    assert info.created == 2
    assert {k.key for k in (await c.range("")).kvs} == {"/core/pods/ns/p", "/core/pods/ns/q"}
    assert (await ab.get("/core/pods/ns/q")) is None


async def test_a_view_watches_only_its_keys(store: SqliteStore) -> None:
    a, ab = PrefixedStore(store, "/clusters/a"), PrefixedStore(store, "/clusters/ab")
    rev = await store.current_revision()
    seen: list[str] = []

    async def watch() -> None:
        async for ev in a.watch("/core/", after_revision=rev):
            seen.append(f"{ev.type} {ev.kv.key} {ev.kv.value.decode()}")
            if len(seen) == 3:
                return

    task = asyncio.create_task(watch())
    await ab.create("/core/cm/x", b"other")
    await a.create("/core/cm/x", b"1")
    await ab.update("/core/cm/x", b"other2", expected_mod_revision=0)
    await a.update("/core/cm/x", b"2", expected_mod_revision=0)
    await a.delete("/core/cm/x")
    await asyncio.wait_for(task, 60)
    assert seen == ["ADDED /core/cm/x 1", "MODIFIED /core/cm/x 2", "DELETED /core/cm/x 2"]


async def test_a_closed_view_refuses_writes(store: SqliteStore) -> None:
    writes: list[str] = []
    a = PrefixedStore(store, "/clusters/a", on_write=writes.append)
    await a.create("/k", b"v")
    await a.close()
    for op in (a.create("/k2", b"v"), a.update("/k", b"w", expected_mod_revision=0), a.delete("/k")):
        with pytest.raises(StoreClosed):
            await op
    assert writes == ["/k"]
    assert (await a.get("/k")) is not None  # reads still work; the shared store is open
    await store.create("/other", b"x")


def _ev(key: str, rev: int) -> Event:
    return Event("ADDED", KeyValue(key, b"", rev, rev))


async def test_fan_out_index_matches_every_prefix_shape() -> None:
    b = Broadcaster()
    prefixes = ["", "/", "/clusters/", "/clusters/a/", "/clusters/a/core/pods/",
                "/clusters/a/core/pods/ns/", "/clusters/a/core/po",  # mid-segment
                "/clusters/a/core/pods/ns/p1",  # one exact key
                "/clusters/b/"]
    subs = {p: b.subscribe(p) for p in prefixes}
    twice = b.subscribe("/clusters/a/")  # two watchers on one prefix
    keys = ["/clusters/a/core/pods/ns/p1", "/clusters/a/core/pods/ns/p2", "/clusters/b/core/x",
            "/clusters/ab/core/pods/ns/p1", "/other"]
    b.publish([_ev(k, i + 1) for i, k in enumerate(keys)])
    for p, sub in subs.items():
        got = []
        while sub._items:
            got.append(sub._items.popleft().kv.key)
        assert got == [k for k in keys if k.startswith(p)], p
    assert len(twice._items) == 2
    for sub in subs.values():
        b.unsubscribe(sub)
    b.unsubscribe(twice)
    assert len(b) == 0 and not b._by_prefix and not b._odd
