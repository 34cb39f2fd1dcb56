"""A work queue with client-go's semantics: keys, not events, so bursts collapse — and the
one worker loop that drains it for controllers, syncers, the scheduler, kubelets and the
taint evictor.

A key queued twice before a worker takes it is handled once; a key added while a worker holds
it is handled again after ``done()`` — never by two workers at once. Failures back off per key;
success forgets the key's failures.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from vkube.api import errors

log = logging.getLogger(__name__)


class WorkQueue:
    def __init__(self, *, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()  # queued (or to be re-queued) and not yet handed out
        self._processing: set[str] = set()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._timers: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._failures: dict[str, int] = {}
        #: called when a key is queued and no worker waits for one (``run_workers``)
        self.on_backlog: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key in self._processing:
            return  # done() re-queues it
        self._queue.append(key)
        self._wake()

    def _wake(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return
        if self.on_backlog is not None:  # no worker idle: the runner may start another
            self.on_backlog()

    def add_after(self, key: str, delay: float) -> None:
        """Add ``key`` once ``delay`` seconds have passed; an earlier pending time wins."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        pending = self._timers.get(key)
        if pending is not None:
            if pending[0] <= when:
                return
            pending[1].cancel()
        self._timers[key] = (when, loop.call_at(when, self._fire, key))

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: str) -> None:
        """Per-key exponential backoff: base_delay · 2^failures, capped at max_delay."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        self.add_after(key, min(self.base_delay * (2 ** n), self.max_delay))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str:
        while not self._queue:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._wake()  # pass the wake-up we consumed to another worker
                raise
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake()

    def shutdown(self) -> None:
        """Cancel pending delayed adds (workers are stopped by cancelling them)."""
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()


# -- the one worker loop -----------------------------------------------------------------------

Reconcile = Callable[[str], Awaitable["float | None"]]

#: API errors that are part of normal operation (a stale cache, a racing writer, an object
#: gone meanwhile): retried with back-off and logged without a traceback.
_EXPECTED = (errors.NotFound, errors.Conflict, errors.AlreadyExists)


async def process_next_item(queue: WorkQueue, reconcile: Reconcile, *, name: str,
                            logger: logging.Logger | None = None) -> None:
    """Take one key and handle it, as client-go's ``processNextWorkItem``: ``forget`` after a
    success (and ``add_after`` if the handler asks for a later look), a rate-limited requeue
    after any failure. Cancellation propagates; nothing else escapes."""
    lg = logger or log
    key = await queue.get()
    try:
        after = await reconcile(key)
    except _EXPECTED as e:
        lg.debug("%s: %s: %s (retrying)", name, key, e)
        queue.add_rate_limited(key)
    except errors.StatusError as e:
        lg.warning("%s: %s failed: %s %s (retry %d)", name, key, type(e).__name__, e,
                   queue.num_requeues(key) + 1)
        queue.add_rate_limited(key)
    except Exception:
        lg.exception("%s: %s failed (retry %d)", name, key, queue.num_requeues(key) + 1)
        queue.add_rate_limited(key)
    else:
        queue.forget(key)
        if after is not None:
            queue.add_after(key, after)
    finally:
        queue.done(key)


async def run_workers(queue: WorkQueue, reconcile: Reconcile, *, name: str, workers: int = 1,
                      logger: logging.Logger | None = None) -> None:
    """Handle keys with up to ``workers`` at once until cancelled; then drop pending delayed
    adds. The only place a work queue is drained.

    The calling task is the one worker that waits; the others are started only while keys
    wait with no worker free, and end once the queue is empty — an idle controller holds no
    task beyond its caller's (many clusters in one process: vkube.cluster.shared)."""
    helpers: set[asyncio.Task[None]] = set()

    async def helper() -> None:
        while len(queue):  # get() does not wait while keys are queued
            await process_next_item(queue, reconcile, name=name, logger=logger)

    try:
        async with asyncio.TaskGroup() as tg:
            def backlog() -> None:
                if len(helpers) < workers - 1:
                    work = helper()
                    try:
                        task = tg.create_task(work)
                    except RuntimeError:  # the group is shutting down: no more workers
                        work.close()  # never started: not a "never awaited" coroutine
                        return
                    helpers.add(task)
                    task.add_done_callback(helpers.discard)

            queue.on_backlog = backlog
            while True:
                await process_next_item(queue, reconcile, name=name, logger=logger)
    finally:
        queue.on_backlog = None
        queue.shutdown()


async def run_periodic(step: Callable[[], Awaitable[object]], interval: float, *, name: str,
                       logger: logging.Logger | None = None) -> None:
    """Call ``step`` every ``interval`` seconds until cancelled. A failing step is logged and
    the loop goes on (heartbeats, re-discovery, queue flushes must outlive one bad round)."""
    lg = logger or log
    while True:
        await asyncio.sleep(interval)
        try:
            await step()
        except errors.StatusError as e:
            lg.warning("%s: %s %s", name, type(e).__name__, e)
        except Exception:
            lg.exception("%s failed", name)
