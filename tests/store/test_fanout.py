"""One store subscription fanned out to many watchers (``vkube.store.fanout``): each cursor keeps
a store watch's contract (history after its revision, then live events, each once, in order;
``Compacted`` below the compacted revision), through buffer overflows and cancelled waits; a
parked watcher is called once, at the first event under its prefix."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from vkube.store import SqliteStore
from vkube.store.base import Compacted
from vkube.store.fanout import Cursor, Fanout
from vkube.store.prefixed import PrefixedStore


@pytest.fixture
async def store(tmp_path: Path):  # noqa: ANN201
    s = SqliteStore(tmp_path / "fan.db")
    await s.start()
    try:
        yield s
    finally:
        await s.close()


async def _take(cursor: Cursor, n: int) -> list[tuple[str, str, int]]:
    out = []
    async with asyncio.timeout(60):
        while len(out) < n:
            ev = await cursor.next()
            assert ev is not None
            out.append((ev.type, ev.kv.key, ev.revision))
    return out


async def test_cursors_share_one_subscription_and_keep_their_own_stream(store) -> None:  # noqa: ANN001
    view = PrefixedStore(store, "/clusters/c")
    fan = Fanout(view, buffer=4)
    r0 = await view.current_revision()
    await view.create("/core/configmaps/a/x", b"1")
    await view.create("/core/configmaps/b/y", b"1")
    r1 = await view.current_revision()
    old = fan.cursor("/core/configmaps/", r0)   # from before: history first
    in_a = fan.cursor("/core/configmaps/a/", r1)  # from now, one namespace
    assert isinstance(old, Cursor) and isinstance(in_a, Cursor)
    # another cluster's writes reach neither
    await store.create("/clusters/d/core/configmaps/a/x", b"1")
    for i in range(10):  # more than a cursor buffers: the slow one re-reads history
        await view.update("/core/configmaps/a/x", str(i).encode(), expected_mod_revision=0)
    await view.delete("/core/configmaps/b/y")
    # one listener in the shared store for this cluster, whatever the number of cursors
    subs = [s for s in store._broadcaster._subs if s.prefix.startswith("/clusters/c/")]
    assert len(subs) == 1
    got_old = await _take(old, 13)
    assert [e[:2] for e in got_old] == (
        [("ADDED", "/core/configmaps/a/x"), ("ADDED", "/core/configmaps/b/y")]
        + [("MODIFIED", "/core/configmaps/a/x")] * 10 + [("DELETED", "/core/configmaps/b/y")])
    revisions = [e[2] for e in got_old]
    assert revisions == sorted(set(revisions))
    got_a = await _take(in_a, 10)
    assert {e[1] for e in got_a} == {"/core/configmaps/a/x"} and all(e[2] > r1 for e in got_a)
    old.close()
    in_a.close()
    assert len(fan) == 0


async def test_a_cancelled_wait_loses_nothing_and_compacted_history_is_refused(store) -> None:  # noqa: ANN001
    fan = Fanout(store)
    r0 = await store.current_revision()
    cursor = fan.cursor("/k/", r0)
    await cursor.fill()
    with pytest.raises(TimeoutError):  # a bookmark's timeout cuts the wait short
        async with asyncio.timeout(0.05):
            await cursor.next()
    await store.create("/k/1", b"v")
    assert (await _take(cursor, 1))[0][:2] == ("ADDED", "/k/1")
    cursor.close()
    await store.create("/k/2", b"v")
    await store.compact(await store.current_revision())
    stale = fan.cursor("/k/", r0)
    with pytest.raises(Compacted):
        await stale.next()
    stale.close()
    live = fan.cursor("/k/", await store.current_revision())
    await store.close()  # the store closing ends its watchers
    async with asyncio.timeout(60):
        assert await live.next() is None


async def test_a_parked_watcher_is_woken_once_by_its_prefix_only(store) -> None:  # noqa: ANN001
    fan = Fanout(store)
    woken: list[int] = []
    r0 = await store.current_revision()
    cancel = await fan.park("/core/jobs/", r0, woken.append)
    assert cancel is not None
    await store.create("/core/pods/x", b"v")  # another resource: still parked
    assert woken == []
    kv = await store.create("/core/jobs/ns/j", b"v")
    await store.create("/core/jobs/ns/k", b"v")
    assert woken == [kv.mod_revision]  # once, with the first event's revision
    assert len(fan) == 0
    # an event already in the store after the revision wakes it at once
    late: list[int] = []
    await fan.park("/core/jobs/", r0, late.append)
    assert late == [kv.mod_revision]
    # cancelled: never called
    never: list[int] = []
    cancel = await fan.park("/core/jobs/", await store.current_revision(), never.append)
    assert cancel is not None
    cancel()
    await store.create("/core/jobs/ns/l", b"v")
    assert never == [] and len(fan) == 0
