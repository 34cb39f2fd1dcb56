"""In-process watch fan-out shared by every backend.

A backend publishes each committed batch of events, in revision order, to a ``Broadcaster``.
``watch_stream`` turns a subscription plus the backend's history reader into the stream the
``Store.watch`` contract promises: subscribe first, replay history after the revision, then live
events, dropping any live event at or below the last one yielded. Nothing is lost, nothing is
repeated, revisions strictly increase.

Slow watchers never block writers and never grow memory without bound: each subscription holds
at most ``maxsize`` events. On overflow the buffer is dropped and the watcher catches up from the
history table instead (the store still has every event unless it was compacted meanwhile, in
which case the watch ends with ``Compacted`` and the client relists).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from vkube.store.base import Event

#: Reads up to ``limit`` events on keys with ``prefix`` and revision > ``after``, in revision
#: order. Raises ``Compacted`` when ``after`` is below the compacted revision.
ReadHistory = Callable[[str, int, int], Awaitable[list[Event]]]


class _Overflow:
    """Marker returned by ``Subscription.get`` when the buffer overflowed."""


OVERFLOW = _Overflow()


class Subscription:
    """A bounded buffer of live events for one watcher. Used on the event loop thread only."""

    __slots__ = ("prefix", "_items", "_maxsize", "_waiter", "overflowed", "closed")

    def __init__(self, prefix: str, maxsize: int) -> None:
        self.prefix = prefix
        self._items: deque[Event] = deque()
        self._maxsize = maxsize
        self._waiter: asyncio.Future[None] | None = None
        self.overflowed = False
        self.closed = False

    def push(self, event: Event) -> None:
        if self.overflowed or self.closed:
            return
        if len(self._items) >= self._maxsize:
            self._items.clear()  # the watcher re-reads these from history
            self.overflowed = True
        else:
            self._items.append(event)
        self._wake()

    def close(self) -> None:
        self.closed = True
        self._items.clear()
        self._wake()

    def reset(self) -> None:
        """Start buffering afresh after an overflow (the caller then replays history)."""
        self._items.clear()
        self.overflowed = False

    @property
    def empty(self) -> bool:
        """Nothing handed over is waiting to be taken."""
        return not self._items and not self.overflowed

    async def get(self) -> Event | _Overflow | None:
        """The next live event, ``OVERFLOW``, or None once the subscription is closed."""
        while not self._items and not self.overflowed and not self.closed:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self.closed:
            return None
        if self.overflowed:
            return OVERFLOW
        return self._items.popleft()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


class Listener:
    """A subscription that hands each event to a function as it is published (on the event
    loop thread, in revision order) instead of buffering it: how one per-cluster fan-out
    (``vkube.store.fanout``) hears a shared store without a task of its own. ``push`` must not
    raise; ``on_close`` is called once when the broadcaster closes."""

    __slots__ = ("prefix", "_push", "_on_close", "closed")

    def __init__(self, prefix: str, push: Callable[[Event], None],
                 on_close: Callable[[], None]) -> None:
        self.prefix = prefix
        self._push = push
        self._on_close = on_close
        self.closed = False

    def push(self, event: Event) -> None:
        if not self.closed:
            self._push(event)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._on_close()


class Broadcaster:
    """Fans committed events out to subscriptions whose prefix matches the key."""

    def __init__(self, *, maxsize: int = 1000) -> None:
        self._maxsize = maxsize
        self._subs: set[Any] = set()
        #: subscriptions by prefix, for prefixes that end a path segment ("" or ".../"): an
        #: event is matched by looking up its key's few segment prefixes, not by testing every
        #: subscription (a shared-mode store carries thousands of clusters' watches)
        self._by_prefix: dict[str, set[Any]] = {}
        #: the rest (a prefix ending mid-segment), tested one by one
        self._odd: set[Any] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._subs)

    def subscribe(self, prefix: str) -> Subscription:
        sub = Subscription(prefix, self._maxsize)
        self._add(sub)
        return sub

    def listen(self, prefix: str, push: Callable[[Event], None],
               on_close: Callable[[], None]) -> Listener:
        """A ``Listener`` of ``prefix`` (``unsubscribe`` it when done)."""
        sub = Listener(prefix, push, on_close)
        self._add(sub)
        return sub

    def _add(self, sub: Any) -> None:
        if self._closed:
            sub.close()
            return
        self._subs.add(sub)
        if sub.prefix == "" or sub.prefix.endswith("/"):
            self._by_prefix.setdefault(sub.prefix, set()).add(sub)
        else:
            self._odd.add(sub)

    def unsubscribe(self, sub: Any) -> None:
        self._subs.discard(sub)
        self._odd.discard(sub)
        subs = self._by_prefix.get(sub.prefix)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._by_prefix[sub.prefix]
        sub.close()

    def publish(self, events: list[Event]) -> None:
        """Called on the event loop thread with one committed batch, in revision order (each
        subscription gets its events in that order)."""
        by_prefix = self._by_prefix
        for event in events:
            key = event.kv.key
            subs = by_prefix.get("")
            if subs:
                for sub in tuple(subs):
                    sub.push(event)
            i = key.find("/")
            while i >= 0:
                subs = by_prefix.get(key[:i + 1])
                if subs:
                    for sub in tuple(subs):
                        sub.push(event)
                i = key.find("/", i + 1)
            for sub in tuple(self._odd):
                if key.startswith(sub.prefix):
                    sub.push(event)

    def close(self) -> None:
        """End every watch: their iterators finish normally."""
        self._closed = True
        for sub in list(self._subs):
            sub.close()
        self._subs.clear()
        self._by_prefix.clear()
        self._odd.clear()


async def watch_stream(
    broadcaster: Broadcaster,
    read_history: ReadHistory,
    prefix: str,
    *,
    after_revision: int,
    page_size: int = 1000,
) -> AsyncIterator[Event]:
    """The ``Store.watch`` stream: history after ``after_revision``, then live events."""
    sub = broadcaster.subscribe(prefix)  # first, so no event falls between replay and live
    last = after_revision
    try:
        while True:
            # Catch up from history (at start, and again after a buffer overflow).
            while True:
                events = await read_history(prefix, last, page_size)
                for event in events:
                    yield event
                    last = event.revision
                if len(events) < page_size:
                    break
            # Live events until the subscription closes or overflows.
            while True:
                item = await sub.get()
                if item is None:
                    return
                if isinstance(item, _Overflow):
                    sub.reset()
                    break
                if item.revision <= last:
                    continue  # already replayed from history
                yield item
                last = item.revision
    finally:
        broadcaster.unsubscribe(sub)
