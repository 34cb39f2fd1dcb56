"""The store conformance suite: every backend must pass it.

A backend's test module subclasses ``StoreConformance`` and provides a ``store_url`` fixture
naming a fresh, empty store for each test (``open_store(store_url)`` must open it, from this
process and from a subprocess). See ``test_sqlite.py``.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from vkube.store import open_store
from vkube.store.base import (
    BackendError,
    Compacted,
    Event,
    FutureRevision,
    KeyExists,
    KeyNotFound,
    Op,
    RevisionMismatch,
    Store,
)

Opener = Callable[[], Awaitable[Store]]
REPO = Path(__file__).resolve().parents[2]


async def collect(it: AsyncIterator[Event], n: int) -> list[Event]:
    """The next ``n`` events of a watch."""
    return [await anext(it) for _ in range(n)]


async def assert_quiet(store: Store, it: AsyncIterator[Event], prefix: str) -> None:
    """No further event is pending: a sentinel written now must be the very next event."""
    sentinel = await store.create(f"{prefix}~sentinel", b"")
    event = await anext(it)
    assert (event.kv.key, event.revision) == (sentinel.key, sentinel.mod_revision), event


@pytest.mark.timeout(60)
class EmptyPrefixConformance:
    """The empty prefix is the whole store, for every operation that takes a prefix: an etcd
    without a key prefix (``etcd://HOST:PORT``) has no key to send for it, so this part also
    runs against a bare etcd (``test_etcd.py``)."""

    @pytest.fixture
    async def open_(self, store_url: str) -> AsyncIterator[Opener]:
        opened: list[Store] = []

        async def opener() -> Store:
            store = open_store(store_url)
            await store.start()
            opened.append(store)
            return store

        yield opener
        for store in opened:
            await store.close()

    @pytest.fixture
    async def store(self, open_: Opener) -> Store:
        return await open_()

    @pytest.fixture
    async def base(self, store: Store) -> int:
        """The revision before the test's first write: a store may share its revision counter
        (etcd keeps one for all prefixes), so tests count revisions from here."""
        return await store.current_revision()

    async def test_empty_prefix_spans_the_store(self, store: Store, base: int) -> None:
        keys = ["/e/1", "/f/1", "/f/2"]
        it = store.watch("", after_revision=base)
        for key in keys:
            await store.create(key, key.encode())
        everything = await store.range("")
        assert [kv.key for kv in everything.kvs] == keys
        assert (everything.count, everything.more, everything.revision) == (3, False, base + 3)
        first = await store.range("", limit=2)
        assert ([kv.key for kv in first.kvs], first.count, first.more) == (keys[:2], 3, True)
        rest = await store.range("", start_after=first.kvs[-1].key, limit=2)
        assert ([kv.key for kv in rest.kvs], rest.more) == (keys[2:], False)
        assert [kv.key for kv in (await store.range("", revision=base + 1)).kvs] == keys[:1]
        assert [(e.type, e.kv.key) for e in await collect(it, 3)] == [
            ("ADDED", key) for key in keys]
        await store.commit_all([Op("delete", kv.key, expected=kv.mod_revision)
                                for kv in everything.kvs])
        assert [(e.type, e.kv.key) for e in await collect(it, 3)] == [
            ("DELETED", key) for key in keys]
        assert (await store.range("")).kvs == []
        await it.aclose()


class StoreConformance(EmptyPrefixConformance):
    """Behaviour shared by all backends (etcd semantics)."""

    # -- create / get / update / delete ---------------------------------------------------

    async def test_create_and_get(self, store: Store, base: int) -> None:
        kv = await store.create("/a/x", b"one")
        assert (kv.key, kv.value) == ("/a/x", b"one")
        assert kv.create_revision == kv.mod_revision == base + 1
        assert await store.get("/a/x") == kv
        assert await store.get("/a/missing") is None
        assert await store.current_revision() == base + 1

    async def test_create_twice_raises_key_exists(self, store: Store, base: int) -> None:
        await store.create("/a/x", b"one")
        with pytest.raises(KeyExists):
            await store.create("/a/x", b"two")
        assert (await store.get("/a/x")).value == b"one"
        assert await store.current_revision() == base + 1  # a failed write takes no revision

    async def test_update_guarded_by_mod_revision(self, store: Store) -> None:
        first = await store.create("/a/x", b"v1")
        second = await store.update("/a/x", b"v2", expected_mod_revision=first.mod_revision)
        assert second.value == b"v2"
        assert second.create_revision == first.create_revision
        assert second.mod_revision == first.mod_revision + 1
        with pytest.raises(RevisionMismatch) as info:
            await store.update("/a/x", b"stale", expected_mod_revision=first.mod_revision)
        assert info.value.current == second
        third = await store.update("/a/x", b"v3", expected_mod_revision=0)  # unconditional
        assert third.mod_revision == second.mod_revision + 1
        assert await store.get("/a/x") == third

    async def test_update_missing_raises_key_not_found(self, store: Store) -> None:
        with pytest.raises(KeyNotFound):
            await store.update("/a/none", b"x", expected_mod_revision=0)
        kv = await store.create("/a/x", b"x")
        await store.delete("/a/x")
        with pytest.raises(KeyNotFound):
            await store.update("/a/x", b"y", expected_mod_revision=kv.mod_revision)

    async def test_delete_guarded_and_unguarded(self, store: Store) -> None:
        kv = await store.create("/a/x", b"v1")
        kv2 = await store.update("/a/x", b"v2", expected_mod_revision=0)
        with pytest.raises(RevisionMismatch):
            await store.delete("/a/x", expected_mod_revision=kv.mod_revision)
        deleted = await store.delete("/a/x", expected_mod_revision=kv2.mod_revision)
        assert deleted.value == b"v2"
        assert deleted.create_revision == kv.create_revision
        assert deleted.mod_revision == kv2.mod_revision + 1
        assert await store.get("/a/x") is None
        with pytest.raises(KeyNotFound):
            await store.delete("/a/x")
        await store.create("/a/y", b"y")
        assert (await store.delete("/a/y")).value == b"y"  # unguarded

    async def test_recreate_after_delete_is_a_new_key(self, store: Store, base: int) -> None:
        await store.create("/a/x", b"v1")
        await store.delete("/a/x")
        again = await store.create("/a/x", b"v2")
        assert again.create_revision == again.mod_revision == base + 3

    async def test_revisions_global_and_strictly_increasing(self, store: Store, base: int) -> None:
        revisions = []
        for i in range(10):
            revisions.append((await store.create(f"/k{i % 3}/{i}", b"v")).mod_revision)
        revisions.append((await store.update("/k0/0", b"w", expected_mod_revision=0)).mod_revision)
        revisions.append((await store.delete("/k1/1")).mod_revision)
        assert revisions == list(range(base + 1, base + 13))
        assert await store.current_revision() == base + 12

    async def test_binary_and_unicode(self, store: Store) -> None:
        blob = bytes(range(256)) * 10
        await store.create("/ns/ünï/☃", blob)
        assert (await store.get("/ns/ünï/☃")).value == blob
        assert [kv.key for kv in (await store.range("/ns/ünï/")).kvs] == ["/ns/ünï/☃"]

    # -- range ------------------------------------------------------------------------------

    async def test_range_prefix_isolation_and_order(self, store: Store, base: int) -> None:
        for key in ["/ab/1", "/a/2", "/a/1", "/a", "/b/1", "/a/10", "/a0"]:
            await store.create(key, key.encode())
        result = await store.range("/a/")
        assert [kv.key for kv in result.kvs] == ["/a/1", "/a/10", "/a/2"]
        assert (result.count, result.more, result.revision) == (3, False, base + 7)
        assert [kv.key for kv in (await store.range("/ab/")).kvs] == ["/ab/1"]
        everything = await store.range("")
        assert [kv.key for kv in everything.kvs] == sorted(
            ["/ab/1", "/a/2", "/a/1", "/a", "/b/1", "/a/10", "/a0"])
        assert (await store.range("/zz/")).kvs == []

    async def test_range_pagination(self, store: Store) -> None:
        keys = [f"/p/{i:03d}" for i in range(25)]
        for key in keys:
            await store.create(key, b"v")
        await store.create("/q/000", b"other")
        seen: list[str] = []
        start_after, pages = "", []
        while True:
            page = await store.range("/p/", start_after=start_after, limit=10)
            pages.append((len(page.kvs), page.count, page.more))
            seen += [kv.key for kv in page.kvs]
            if not page.more:
                break
            start_after = page.kvs[-1].key
        assert seen == keys
        assert pages == [(10, 25, True), (10, 15, True), (5, 5, False)]
        exact = await store.range("/p/", limit=25)
        assert (len(exact.kvs), exact.count, exact.more) == (25, 25, False)

    async def test_range_at_old_revision_is_a_snapshot(self, store: Store, base: int) -> None:
        a1 = await store.create("/s/a", b"a1")
        b1 = await store.create("/s/b", b"b1")
        await store.update("/s/a", b"a2", expected_mod_revision=0)
        await store.delete("/s/b")
        await store.create("/s/c", b"c1")
        at2 = await store.range("/s/", revision=base + 2)
        assert at2.kvs == [a1, b1] and at2.revision == base + 2 and at2.count == 2
        at4 = await store.range("/s/", revision=base + 4)
        assert [(kv.key, kv.value) for kv in at4.kvs] == [("/s/a", b"a2")]
        latest = await store.range("/s/")
        assert [(kv.key, kv.value) for kv in latest.kvs] == [("/s/a", b"a2"), ("/s/c", b"c1")]
        assert latest.revision == base + 5
        paged = await store.range("/s/", revision=base + 2, limit=1)
        assert (paged.kvs, paged.more, paged.count) == ([a1], True, 2)
        assert await store.get("/s/b", revision=base + 3) == b1
        assert await store.get("/s/b", revision=base + 4) is None
        assert await store.get("/s/a", revision=base + 1) == a1
        with pytest.raises(FutureRevision):
            await store.range("/s/", revision=base + 6)

    # -- watch ------------------------------------------------------------------------------

    async def _history(self, store: Store) -> int:
        """Five writes at base + 1..5; returns base."""
        base = await store.current_revision()
        await store.create("/w/a", b"a1")  # 1
        await store.create("/w/b", b"b1")  # 2
        await store.update("/w/a", b"a2", expected_mod_revision=base + 1)  # 3
        await store.delete("/w/b")  # 4
        await store.create("/w/b", b"b2")  # 5
        return base

    async def test_watch_replays_history_from_zero(self, store: Store) -> None:
        b = await self._history(store)
        it = store.watch("/w/", after_revision=b)
        events = await collect(it, 5)
        assert [(e.type, e.kv.key, e.kv.value, e.revision - b) for e in events] == [
            ("ADDED", "/w/a", b"a1", 1),
            ("ADDED", "/w/b", b"b1", 2),
            ("MODIFIED", "/w/a", b"a2", 3),
            ("DELETED", "/w/b", b"b1", 4),
            ("ADDED", "/w/b", b"b2", 5),
        ]
        assert events[0].prev is None and events[4].prev is None
        assert events[2].prev == events[0].kv
        assert events[3].prev == events[1].kv
        assert events[3].kv.create_revision == b + 2
        assert events[4].kv.create_revision == b + 5
        await assert_quiet(store, it, "/w/")
        await it.aclose()

    async def test_watch_from_middle_revision(self, store: Store) -> None:
        b = await self._history(store)
        it = store.watch("/w/", after_revision=b + 3)
        events = await collect(it, 2)
        assert [(e.type, e.revision - b) for e in events] == [("DELETED", 4), ("ADDED", 5)]
        await store.update("/w/a", b"a3", expected_mod_revision=0)
        live = await anext(it)
        assert (live.type, live.revision - b, live.prev.value) == ("MODIFIED", 6, b"a2")
        await it.aclose()

    async def test_watch_prefix_ignores_other_prefixes(self, store: Store, base: int) -> None:
        it = store.watch("/a/", after_revision=base)
        await store.create("/ab/1", b"x")
        await store.create("/b/1", b"x")
        await store.create("/a/1", b"x")
        event = await anext(it)
        assert (event.kv.key, event.revision) == ("/a/1", base + 3)
        await assert_quiet(store, it, "/a/")
        await it.aclose()

    async def test_watch_live_with_concurrent_writer(self, store: Store) -> None:
        base = await store.create("/other/x", b"x")
        it = store.watch("/live/", after_revision=base.mod_revision)
        expected: list[tuple[str, int]] = []

        async def writer() -> None:
            for i in range(500):
                key = f"/live/{i % 50}"
                if i < 50:
                    kv = await store.create(key, b"%d" % i)
                    expected.append(("ADDED", kv.mod_revision))
                elif i % 7 == 0:
                    kv = await store.delete(key)
                    await store.create(key, b"again")  # recreate so later updates succeed
                    expected.append(("DELETED", kv.mod_revision))
                    expected.append(("ADDED", kv.mod_revision + 1))
                else:
                    kv = await store.update(key, b"%d" % i, expected_mod_revision=0)
                    expected.append(("MODIFIED", kv.mod_revision))
                await store.create(f"/other/{i}", b"noise")
                if i % 25 == 0:
                    await asyncio.sleep(0)
            await store.create("/live/~end", b"")

        task = asyncio.create_task(writer())
        seen: list[tuple[str, int]] = []
        async for event in it:
            assert event.kv.key.startswith("/live/")
            if event.kv.key == "/live/~end":
                break
            seen.append((event.type, event.revision))
        await task
        assert seen == expected
        await assert_quiet(store, it, "/live/")
        await it.aclose()

    async def test_many_concurrent_watchers(self, store: Store, base: int) -> None:
        watchers = [store.watch("/m/", after_revision=base) for _ in range(20)]
        writes = [await store.create(f"/m/{i}", b"v") for i in range(30)]
        for it in watchers:
            events = await collect(it, 30)
            assert [e.revision for e in events] == [kv.mod_revision for kv in writes]
            await it.aclose()

    async def test_watch_ends_on_close(self, open_: Opener) -> None:
        store = await open_()
        it = store.watch("/", after_revision=await store.current_revision())
        pending = asyncio.ensure_future(anext(it))
        await asyncio.sleep(0.01)
        await store.close()
        with pytest.raises(StopAsyncIteration):
            await pending

    # -- compaction -------------------------------------------------------------------------

    async def test_compaction(self, store: Store) -> None:
        b = await self._history(store)  # revisions b+1..b+5
        await store.create("/w/c", b"c1")  # 6
        await store.delete("/w/c")  # 7
        before = await store.range("/w/", revision=b + 4)
        await store.compact(b + 4)
        assert store.compacted_revision == b + 4
        with pytest.raises(Compacted) as info:
            await store.range("/w/", revision=b + 3)
        assert (info.value.requested, info.value.compacted) == (b + 3, b + 4)
        with pytest.raises(Compacted):
            await store.get("/w/a", revision=b + 2)
        with pytest.raises(Compacted):
            await anext(store.watch("/w/", after_revision=b + 2))
        assert await store.range("/w/", revision=b + 4) == before  # the compaction point stays
        latest = await store.range("/w/")
        assert [(kv.key, kv.value) for kv in latest.kvs] == [("/w/a", b"a2"), ("/w/b", b"b2")]
        it = store.watch("/w/", after_revision=b + 4)
        events = await collect(it, 3)
        assert [(e.type, e.revision - b) for e in events] == [
            ("ADDED", 5), ("ADDED", 6), ("DELETED", 7)]
        assert events[2].prev.value == b"c1"
        await it.aclose()
        await store.compact(b + 7)  # compacting the current revision: latest state intact
        assert (await store.range("/w/")).kvs == latest.kvs
        assert await store.get("/w/c") is None
        await store.compact(b + 3)  # older than the compacted revision: nothing happens
        assert store.compacted_revision == b + 7
        with pytest.raises(FutureRevision):
            await store.compact(b + 100)
        updated = await store.update("/w/a", b"a3", expected_mod_revision=b + 3)
        assert updated.mod_revision == b + 8

    async def test_compaction_during_a_watch_that_fell_behind(self, store: Store) -> None:
        first = await store.create("/f/a", b"0")
        b = first.mod_revision - 1
        it = store.watch("/f/", after_revision=b)
        assert (await anext(it)).revision == b + 1
        for i in range(3):
            await store.update("/f/a", b"%d" % i, expected_mod_revision=0)
        events = await collect(it, 3)  # live events are buffered, so compaction cannot hurt
        assert [e.revision - b for e in events] == [2, 3, 4]
        await store.compact(b + 4)
        await store.update("/f/a", b"x", expected_mod_revision=0)
        assert (await anext(it)).revision == b + 5
        await it.aclose()

    async def test_continue_at_a_compacted_revision_is_refused(self, store: Store) -> None:
        """A paged list (a continue token carries the revision and the last key) fails with
        ``Compacted`` once that revision is compacted, never with a silently newer page."""
        for i in range(10):
            await store.create(f"/l/{i}", b"v")
        page = await store.range("/l/", limit=4)
        assert page.more and page.count == 10
        for i in range(10):
            await store.update(f"/l/{i}", b"w", expected_mod_revision=0)
        second = await store.range("/l/", start_after=page.kvs[-1].key, limit=4,
                                   revision=page.revision)
        assert [kv.value for kv in second.kvs] == [b"v"] * 4  # still the old snapshot
        assert (second.count, second.more) == (6, True)
        await store.compact(await store.current_revision())
        with pytest.raises(Compacted) as info:
            await store.range("/l/", start_after=second.kvs[-1].key, limit=4,
                              revision=page.revision)
        assert info.value.requested == page.revision

    # -- across processes -------------------------------------------------------------------

    #: Whether writes of another process reach this process's watches (every backend now).
    cross_process_watch = True

    async def test_watch_sees_writes_of_another_process(self, store: Store,
                                                        store_url: str) -> None:
        if not self.cross_process_watch:
            pytest.skip("this backend's watches see their own process's writes only")
        start = await store.current_revision()
        it = store.watch("/x/", after_revision=start)
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CHILD_WRITER, store_url, "200",
            stdout=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)})
        own = [await store.create(f"/x/own{i}", b"o") for i in range(20)]  # interleaved
        out, _ = await child.communicate()
        assert child.returncode == 0
        theirs = [int(line) for line in out.decode().split()]
        assert len(theirs) == 200
        events = await asyncio.wait_for(collect(it, 220), 60)
        revisions = [e.revision for e in events]
        assert revisions == sorted(theirs + [kv.mod_revision for kv in own])
        await assert_quiet(store, it, "/x/")
        await it.aclose()

    async def break_connections(self, store: Store) -> None:
        """Cut the backend's connections under a running store (backends that can say how)."""
        pytest.skip("no way to cut this backend's connections")

    async def test_watch_survives_a_lost_connection(self, store: Store, store_url: str) -> None:
        start = await store.current_revision()
        it = store.watch("/r/", after_revision=start)
        before = [await store.create(f"/r/a{i}", b"v") for i in range(5)]
        assert [e.revision for e in await collect(it, 5)] == [kv.mod_revision for kv in before]
        await self.break_connections(store)
        other = open_store(store_url)  # another process's store writes meanwhile
        await other.start()
        try:
            during = [await other.create(f"/r/b{i}", b"v") for i in range(5)]
        finally:
            await other.close()
        after = []
        for i in range(5):
            for attempt in range(20):  # the first write may meet the cut connection
                try:
                    after.append(await store.create(f"/r/c{i}", b"v"))
                    break
                except BackendError:
                    await asyncio.sleep(0.1)
        expected = [kv.mod_revision for kv in during + after]
        events = await asyncio.wait_for(collect(it, len(expected)), 60)
        assert [e.revision for e in events] == expected
        await it.aclose()

    # -- persistence ------------------------------------------------------------------------

    async def test_restart_keeps_data_and_revision(self, open_: Opener) -> None:
        store = await open_()
        b = await self._history(store)
        await store.compact(b + 2)
        snapshot = await store.range("/w/")
        await store.close()
        store = await open_()
        assert await store.current_revision() == b + 5
        assert store.compacted_revision == b + 2
        assert await store.range("/w/") == snapshot
        kv = await store.create("/w/c", b"c")
        assert kv.mod_revision == b + 6
        events = await collect(store.watch("/w/", after_revision=b + 2), 4)
        assert [e.revision - b for e in events] == [3, 4, 5, 6]

    async def test_acknowledged_writes_survive_sigkill(self, store_url: str) -> None:
        """A child acknowledges writes on stdout and is killed mid-stream; none is lost."""
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", _CRASH_WRITER, store_url,
            stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        assert child.stdout is not None
        acked: dict[str, int] = {}
        while len(acked) < 300:
            line = await child.stdout.readline()
            assert line, "the writer exited early"
            key, revision = line.decode().split()
            acked[key] = int(revision)
        child.send_signal(signal.SIGKILL)
        for line in (await child.stdout.read()).decode().splitlines():
            if line.strip():
                key, revision = line.split()
                acked[key] = int(revision)
        await child.wait()
        store = open_store(store_url)
        await store.start()
        try:
            for key, revision in acked.items():
                kv = await store.get(key)
                assert kv is not None, f"acknowledged {key} lost"
                assert (kv.value, kv.mod_revision) == (key.encode(), revision)
            assert await store.current_revision() >= max(acked.values())
        finally:
            await store.close()

    # -- concurrency ------------------------------------------------------------------------

    async def test_concurrent_creates_get_distinct_revisions(self, store: Store,
                                                             base: int) -> None:
        results = await asyncio.gather(*(store.create(f"/c/{i}", b"v") for i in range(300)))
        assert sorted(kv.mod_revision for kv in results) == list(range(base + 1, base + 301))
        assert (await store.range("/c/")).count == 300

    async def test_concurrent_updates_exactly_one_wins(self, store: Store) -> None:
        kv = await store.create("/u/x", b"0")
        results = await asyncio.gather(
            *(store.update("/u/x", b"%d" % i, expected_mod_revision=kv.mod_revision)
              for i in range(30)),
            return_exceptions=True,
        )
        winners = [r for r in results if not isinstance(r, BaseException)]
        assert len(winners) == 1
        assert all(isinstance(r, RevisionMismatch) for r in results if r not in winners)
        assert await store.get("/u/x") == winners[0]

    async def test_concurrent_creates_of_one_key_exactly_one_wins(self, store: Store) -> None:
        results = await asyncio.gather(
            *(store.create("/u/y", b"%d" % i) for i in range(30)), return_exceptions=True)
        assert sum(not isinstance(r, BaseException) for r in results) == 1
        assert sum(isinstance(r, KeyExists) for r in results) == 29


# Writes N keys under /x/ and prints each write's revision.
_CHILD_WRITER = r"""
import asyncio, sys
from vkube.store import open_store

async def main(url, n):
    store = open_store(url)
    await store.start()
    for i in range(n):
        kv = await store.create(f"/x/child{i}", b"c")
        print(kv.mod_revision, flush=True)
    await store.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""

# The child of the SIGKILL test: concurrent writers, each write acknowledged after it returns.
_CRASH_WRITER = r"""
import asyncio, sys
from vkube.store import open_store

async def main(url):
    store = open_store(url)
    await store.start()
    async def writer(w):
        i = 0
        while True:
            key = f"/crash/{w}/{i}"
            kv = await store.create(key, key.encode())
            sys.stdout.write(f"{key} {kv.mod_revision}\n")
            sys.stdout.flush()
            i += 1
    await asyncio.gather(*(writer(w) for w in range(8)))

asyncio.run(main(sys.argv[1]))
"""
