"""The one worker loop (client-go's processNextWorkItem): any failure is retried with growing
per-key back-off and never ends the loop; success forgets the back-off; cancellation ends it.
Driven through the real components that use it — a Controller, the Scheduler, the
TaintEvictor — and through ``run_workers`` itself."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import pytest

from vkube.api import errors
from vkube.controllers.workqueue import WorkQueue, run_periodic, run_workers

DEADLINE = 60.0


async def _until(cond: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + DEADLINE
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class Flaky:
    """Fails ``fails`` times with ``exc`` per round, then succeeds; records the queue's
    requeue count seen at each call."""

    def __init__(self, queue: WorkQueue, exc: BaseException, fails: int) -> None:
        self.queue, self.exc, self.fails = queue, exc, fails
        self.calls: list[int] = []
        self.successes = 0

    async def __call__(self, key: str) -> None:
        self.calls.append(self.queue.num_requeues(key))
        if self.fails > 0:
            self.fails -= 1
            raise self.exc
        self.successes += 1


@pytest.mark.parametrize("exc", [KeyError("spec"), ZeroDivisionError(), errors.Conflict("stale"),
                                 errors.InternalError("boom")],
                         ids=["KeyError", "ZeroDivisionError", "Conflict", "InternalError"])
async def test_any_exception_is_retried_with_growing_backoff_then_forgotten(
        exc: BaseException) -> None:
    q = WorkQueue(base_delay=0.001, max_delay=0.05)
    flaky = Flaky(q, exc, fails=4)
    task = asyncio.create_task(run_workers(q, flaky, name="test"))
    q.add("ns/a")
    await _until(lambda: flaky.successes == 1, "the fifth attempt")
    # each failure raised the back-off exponent; the loop survived every one of them
    assert flaky.calls == [0, 1, 2, 3, 4]
    assert q.num_requeues("ns/a") == 0  # forgotten after the success
    # a later failure starts from the base delay again, and the loop is still alive
    flaky.fails = 1
    q.add("ns/a")
    await _until(lambda: flaky.successes == 2, "the next round")
    assert flaky.calls[5:] == [0, 1]
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_backoff_delays_grow_exponentially() -> None:
    q = WorkQueue(base_delay=0.01, max_delay=1.0)
    seen: list[float] = []
    loop = asyncio.get_running_loop()

    async def failing(key: str) -> None:
        seen.append(loop.time())
        raise KeyError(key)

    task = asyncio.create_task(run_workers(q, failing, name="test"))
    q.add("k")
    await _until(lambda: len(seen) >= 5, "five attempts")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    gaps = [b - a for a, b in zip(seen, seen[1:])]
    # 10, 20, 40, 80 ms at least (timers never fire early; a busy CPU only adds)
    for n, gap in enumerate(gaps):
        assert gap >= 0.01 * 2 ** n * 0.9, gaps


async def test_expected_api_errors_log_no_traceback_others_do(
        caplog: pytest.LogCaptureFixture) -> None:
    q = WorkQueue(base_delay=0.001)
    errs = {"a": errors.NotFound("gone"), "b": KeyError("spec")}
    done: set[str] = set()

    async def rec(key: str) -> None:
        e = errs.pop(key, None)
        if e is not None:
            raise e
        done.add(key)

    caplog.set_level(logging.DEBUG, logger="vkube.controllers.workqueue")
    task = asyncio.create_task(run_workers(q, rec, name="ctl", workers=2))
    q.add("a")
    q.add("b")
    await _until(lambda: done == {"a", "b"}, "both keys handled")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rec_a = [r for r in caplog.records if r.args and r.args[1] == "a"]
    rec_b = [r for r in caplog.records if r.args and r.args[1] == "b"]
    assert rec_a and all(r.exc_info is None and r.levelno == logging.DEBUG for r in rec_a)
    assert rec_b and rec_b[0].exc_info is not None and rec_b[0].levelno == logging.ERROR


async def test_requeue_after_is_honoured_and_cancellation_propagates() -> None:
    q = WorkQueue()
    calls: list[str] = []
    started = asyncio.Event()
    block = asyncio.Event()

    async def rec(key: str) -> float | None:
        calls.append(key)
        if len(calls) == 2:
            started.set()
            await block.wait()  # cancelled here
        return 0.01 if len(calls) == 1 else None

    task = asyncio.create_task(run_workers(q, rec, name="test"))
    q.add("k")
    await asyncio.wait_for(started.wait(), DEADLINE)
    assert calls == ["k", "k"]  # the requeue asked for by the first call
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert q.num_requeues("k") == 0  # cancellation is not a failure


async def test_periodic_loop_survives_failing_rounds() -> None:
    rounds: list[int] = []

    async def step() -> None:
        rounds.append(len(rounds))
        if len(rounds) % 2:
            raise RuntimeError("bad round")

    task = asyncio.create_task(run_periodic(step, 0.001, name="test"))
    await _until(lambda: len(rounds) >= 6, "six rounds")
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_workers_start_with_a_backlog_and_end_when_idle() -> None:
    """``run_workers(workers=3)`` holds no task beyond its caller's while the queue is empty;
    a backlog gets up to three keys handled at once (never one key twice at once); once
    drained the extra workers end again; cancelling ends every one of them."""
    queue = WorkQueue()
    release = asyncio.Event()
    running: set[str] = set()
    peak = 0
    handled: list[str] = []

    async def reconcile(key: str) -> None:
        nonlocal peak
        assert key not in running
        running.add(key)
        peak = max(peak, len(running))
        await release.wait()
        running.discard(key)
        handled.append(key)

    before = len(asyncio.all_tasks())
    runner = asyncio.create_task(run_workers(queue, reconcile, name="t", workers=3))
    await asyncio.sleep(0.05)
    assert len(asyncio.all_tasks()) == before + 1  # the runner alone
    for i in range(6):
        queue.add(f"k{i}")
    await _until(lambda: len(running) == 3, "three keys at once")
    queue.add("k0")  # queued again while held: handled again later, not at once
    assert len(asyncio.all_tasks()) == before + 3
    release.set()
    await _until(lambda: len(handled) == 7, "every key handled")
    assert peak == 3 and sorted(set(handled)) == [f"k{i}" for i in range(6)]
    await _until(lambda: len(asyncio.all_tasks()) == before + 1, "the extra workers to end")
    release.clear()
    queue.add("a")
    queue.add("b")
    await _until(lambda: len(running) == 2, "two keys at once")
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    await asyncio.sleep(0)
    assert len(asyncio.all_tasks()) == before


async def test_a_controller_meeting_a_transient_error_starts_again() -> None:
    """A controller whose ``run`` meets a 429 (shared-mode fairness refusing its discovery on a
    busy process) starts again after a pause; the manager and the other controllers keep
    running. Any other error still ends the manager."""
    from vkube.client.client import Client
    from vkube.controllers.runtime import Controller, ControllerManager

    runs: list[str] = []

    class Refused(Controller):
        name = "refused-once"

        async def run(self) -> None:
            runs.append(self.name)
            if len(runs) == 1:
                raise errors.TooManyRequests("Too many requests, please try again later.")
            await asyncio.Event().wait()

    class Broken(Controller):
        name = "broken"

        async def run(self) -> None:
            raise RuntimeError("a bug")

    client = Client("https://127.0.0.1:9")  # never called: these controllers have no informers
    mgr = ControllerManager(client, identity="t", leader_election=False)
    mgr.add(Refused)
    task = asyncio.create_task(mgr.run())
    try:
        await _until(lambda: len(runs) == 2, "the refused controller to start again")
        assert not task.done() and mgr.started.is_set()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    mgr = ControllerManager(client, identity="t", leader_election=False)
    mgr.add(Broken)
    with pytest.raises(BaseExceptionGroup):
        await asyncio.wait_for(mgr.run(), DEADLINE)
    await client.close()


async def test_keys_added_while_the_workers_stop_start_no_worker() -> None:
    """A key added while ``run_workers`` is being cancelled (a reconcile's cleanup queues
    another) finds the task group shutting down: no worker starts and no coroutine is left
    unawaited (pytest reports one as an unraisable warning)."""
    import gc
    import warnings

    q = WorkQueue()
    started = asyncio.Event()
    running: set[str] = set()

    async def slow(key: str) -> None:
        running.add(key)
        if len(running) == 4:  # the caller's worker and three of 23 helpers (the syncer runs 24)
            started.set()
        try:
            await asyncio.sleep(60)
        finally:
            for i in range(5):  # as a syncer's finishing create re-queues waiting pods
                q.add(f"{key}-again-{i}")

    task = asyncio.create_task(run_workers(q, slow, name="test", workers=24))
    await asyncio.sleep(0)
    for key in "abcd":
        q.add(key)
    await asyncio.wait_for(started.wait(), 10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)], caught
