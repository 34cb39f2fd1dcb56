"""One store subscription per cluster, fanned out to every in-process watcher of it (issue 18).

Each of a cluster's watches (every open watch stream of its API server, its admission caches,
its authorizers' followers) used to hold a store watch of its own: a subscription in the
store's broadcaster and, above it, a chain of async generators consumed by a task per watch.
A ``Fanout`` listens to the cluster's whole key space once (``Store.listen``: handed each
event as the store publishes it, no task) and hands events on to:

- ``Cursor``s: one per watcher, a bounded buffer with a cancellation-safe ``next()``, so a
  watch handler waits on it directly (with its bookmark timeout) instead of through a pump
  task. A cursor keeps the store watch's contract: it listens first, then reads the history
  after its revision (``Store.history``: ``Compacted`` below the compacted revision, which
  the API answers 410), then live events, dropping what history already gave; a cursor whose
  buffer overflowed reads history again from its last revision;
- parked watchers (``park``): a one-shot call at the first event under a prefix after a
  revision — what an informer with nothing to watch leaves behind instead of a stream.

A backend that cannot ``listen`` (etcd: its watches are server streams) gets a cursor over
its own ``Store.watch``, read by a task as before; parking is not offered there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from vkube.store._watch import OVERFLOW, Broadcaster, Subscription
from vkube.store.base import Event, Store

log = logging.getLogger(__name__)

#: history events read per step
PAGE = 1000
#: live events a cursor buffers before it reads history instead
BUFFER = 1000


class Fanout:
    """The watchers of one store view (a cluster's). Used on the event loop thread only."""

    def __init__(self, store: Store, *, buffer: int = BUFFER) -> None:
        self.store = store
        self._bc = Broadcaster(maxsize=buffer)
        self._stop: Callable[[], None] | None = None
        #: False once the store said it cannot ``listen``: cursors read ``Store.watch``
        self.listens = True
        self.closed = False

    def _listening(self) -> bool:
        """Listen to the store (once, with the first watcher)."""
        if self._stop is None and self.listens and not self.closed:
            self._stop = self.store.listen("", self._bc_publish, self._store_closed)
            if self._stop is None:
                self.listens = False
        return self._stop is not None

    def _bc_publish(self, event: Event) -> None:
        try:
            self._bc.publish([event])
        except Exception:  # a watcher's bug must not reach the store's publisher
            log.exception("watch fan-out failed on revision %d", event.revision)

    def _store_closed(self) -> None:
        self._stop = None
        self._bc.close()

    def __len__(self) -> int:
        """Watchers and parked watchers now."""
        return len(self._bc)

    # -- watchers ------------------------------------------------------------------------------

    def cursor(self, prefix: str, after_revision: int) -> "Cursor | StreamCursor":
        """A watcher of keys under ``prefix`` after ``after_revision``; ``close()`` it."""
        if self._listening():
            return Cursor(self, prefix, after_revision)
        return StreamCursor(self.store, prefix, after_revision)

    async def watch(self, prefix: str, *, after_revision: int) -> AsyncIterator[Event]:
        """``Store.watch``'s stream, served from this fan-out."""
        cursor = self.cursor(prefix, after_revision)
        try:
            while (event := await cursor.next()) is not None:
                yield event
        finally:
            cursor.close()

    async def park(self, prefix: str, after_revision: int,
                   wake: Callable[[int], None]) -> Callable[[], None] | None:
        """Call ``wake(revision)`` once, at the first event under ``prefix`` with a revision
        above ``after_revision`` (at once if one is already in the store); ``revision - 1`` is
        then a safe revision to watch from. Returns the function that cancels it, or None when
        this store cannot listen (the caller keeps watching instead). Raises ``Compacted``."""
        if not self._listening():
            return None
        fired = False

        def fire(revision: int) -> None:
            nonlocal fired
            if not fired:
                fired = True
                self._bc.unsubscribe(listener)
                wake(revision)

        def push(event: Event) -> None:
            if event.revision > after_revision:
                fire(event.revision)

        listener = self._bc.listen(prefix, push, lambda: fire(0))
        try:  # listening first, then history: nothing published meanwhile is missed
            missed = await self.store.history(prefix, after_revision, 1)
        except BaseException:
            self._bc.unsubscribe(listener)
            raise
        if missed:
            fire(missed[0].revision)

        def cancel() -> None:
            nonlocal fired
            fired = True
            listener.closed = True
            self._bc.unsubscribe(listener)
        return cancel

    def close(self) -> None:
        """End every watcher (their ``next()`` gives None); parked watchers are woken with 0."""
        self.closed = True
        if self._stop is not None:
            self._stop()
            self._stop = None
        self._bc.close()


class Cursor:
    """One watcher's events: history after its revision, then live ones, each once, in
    revision order. ``next()`` may be cancelled at any await (a bookmark timeout) and called
    again: nothing is lost."""

    __slots__ = ("_fanout", "prefix", "last", "_sub", "_pending", "_catch_up")

    def __init__(self, fanout: Fanout, prefix: str, after_revision: int) -> None:
        self._fanout = fanout
        self.prefix = prefix
        self.last = after_revision
        self._sub: Subscription = fanout._bc.subscribe(prefix)  # first: nothing falls between
        self._pending: deque[Event] = deque()
        self._catch_up = True

    @property
    def live(self) -> bool:
        """Whether ``next()`` would only wait for a live event (no store read pending)."""
        return not self._pending and not self._catch_up

    async def next(self) -> Event | None:
        """The next event, or None once the watch ended (the store or the fan-out closed, or
        ``close()``). Raises ``Compacted`` when the history it needs is gone."""
        while True:
            if self._pending:
                event = self._pending.popleft()
                self.last = event.revision
                return event
            if self._catch_up:
                if self._sub.closed:
                    return None
                await self.fill()
                continue
            item = await self._sub.get()
            if item is None:
                return None
            if item is OVERFLOW:
                self._sub.reset()
                self._catch_up = True
                continue
            assert isinstance(item, Event)
            if item.revision <= self.last:
                continue  # already read from history
            self.last = item.revision
            return item

    def progress(self) -> int:
        """The revision this watcher has seen every change of its keys up to: past its last
        event when it has taken everything the store has published (its buffer empty, no
        history left to read) — the store's published revision then holds no event of its
        that it has not seen. What a bookmark carries, as kube-apiserver's watch cache sends
        its current revision: an idle watcher's version keeps up with the store, so it is not
        expired by compaction while it has nothing to receive."""
        if self.live and self._sub.empty:
            published = self._fanout.store.published_revision()
            if published is not None and published > self.last:
                return published
        return self.last

    async def fill(self) -> None:
        """Read the next page of history it needs, if any (the only store read ``next()``
        makes): a caller that bounds its wait for live events does this outside the bound."""
        if self._catch_up and not self._pending and not self._sub.closed:
            events = await self._fanout.store.history(self.prefix, self.last, PAGE)
            self._pending.extend(events)  # only now: a cancelled read leaves no trace
            self._catch_up = len(events) >= PAGE

    def close(self) -> None:
        self._pending.clear()
        self._fanout._bc.unsubscribe(self._sub)


class StreamCursor:
    """A cursor over a store watch of its own, read by a task (backends that cannot listen)."""

    def __init__(self, store: Store, prefix: str, after_revision: int) -> None:
        self.prefix = prefix
        self.last = after_revision
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=BUFFER)
        self._task = asyncio.get_running_loop().create_task(
            self._read(store.watch(prefix, after_revision=after_revision)),
            name=f"vkube-watch {prefix}")

    @property
    def live(self) -> bool:
        return True

    async def fill(self) -> None:
        """Nothing to read ahead: the task reads."""

    async def _read(self, stream: AsyncIterator[Event]) -> None:
        try:
            async for event in stream:
                await self._queue.put(event)
            await self._queue.put(None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # handed to the reader
            await self._queue.put(exc)
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def progress(self) -> int:
        """Its last event's revision: a stream of its own tells nothing past it."""
        return self.last

    async def next(self) -> Event | None:
        if self._task.done() and self._queue.empty():
            return None
        item = await self._queue.get()
        if isinstance(item, Exception):
            raise item
        if item is not None:
            self.last = item.revision
        return item

    def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)


__all__ = ["Cursor", "Fanout", "StreamCursor"]
