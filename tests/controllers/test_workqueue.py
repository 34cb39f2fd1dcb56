"""WorkQueue semantics: dedup, no concurrent handling of one key, delays, backoff."""

from __future__ import annotations

import asyncio

from vkube.controllers.workqueue import WorkQueue


async def test_dedup_and_order() -> None:
    q = WorkQueue()
    for k in ("a", "b", "a", "c", "b"):
        q.add(k)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]
    assert len(q) == 0


async def test_readd_while_processing_is_deferred_until_done() -> None:
    q = WorkQueue()
    q.add("a")
    assert await q.get() == "a"
    q.add("a")
    q.add("a")
    assert len(q) == 0  # not handed to a second worker while the first holds it
    q.done("a")
    assert len(q) == 1
    assert await q.get() == "a"
    q.done("a")
    assert len(q) == 0


async def test_get_waits_and_wakes_one_worker() -> None:
    q = WorkQueue()
    got: list[str] = []

    async def worker() -> None:
        got.append(await q.get())

    tasks = [asyncio.create_task(worker()) for _ in range(3)]
    await asyncio.sleep(0)
    q.add("x")
    await asyncio.sleep(0.01)
    assert got == ["x"]
    q.add("y")
    q.add("z")
    await asyncio.wait_for(asyncio.gather(*tasks), 2)
    assert sorted(got) == ["x", "y", "z"]


async def test_cancelled_getter_passes_wakeup_on() -> None:
    q = WorkQueue()
    t1 = asyncio.create_task(q.get())
    t2 = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.add("k")
    t1.cancel()
    assert await asyncio.wait_for(t2, 2) == "k"


async def test_add_after_keeps_earliest() -> None:
    q = WorkQueue()
    q.add_after("a", 60)
    q.add_after("a", 0.01)
    q.add_after("a", 30)  # later than pending: ignored
    assert len(q) == 0
    assert await asyncio.wait_for(q.get(), 2) == "a"
    q.shutdown()


async def test_rate_limited_backoff_grows_and_forget_resets() -> None:
    q = WorkQueue(base_delay=0.001, max_delay=0.004)
    delays = []
    for _ in range(5):
        q.add_rate_limited("k")
        delays.append(q._timers["k"][0])
        q._timers.pop("k")[1].cancel()
    assert q.num_requeues("k") == 5
    q.forget("k")
    assert q.num_requeues("k") == 0
    q.add_rate_limited("k")
    assert await asyncio.wait_for(q.get(), 2) == "k"
