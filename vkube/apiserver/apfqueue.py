"""One priority level's seats and queues, as APF's queueset keeps them
(``k8s.io/apiserver/pkg/util/flowcontrol/fairqueuing/queueset``).

A Limited level runs at most ``current_cl`` requests (one seat each) at once. With
``limitResponse: Reject`` a request that finds no free seat is refused at once
("concurrency-limit"); with ``Queue`` it is put in the shortest of the ``handSize`` queues its
flow (schema + distinguisher) is dealt by shuffle sharding, refused when that queue already
holds ``queueLengthLimit`` requests and no seat is free ("queue-full"), and refused when it
waited past its wait limit ("time-out"). Freed seats go to the queues round-robin: each flow's
queue gets its turn, so one busy flow only ever waits behind itself. (Upstream orders queues by
virtual finish time; with one seat per request that is the same turn-taking.) An Exempt level
never waits.

Everything here runs on the event loop: no locks, and no task of its own."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Level", "Rejected", "deal"]

#: the longest Retry-After the dropped-requests tracker answers (``maxRetryAfter``)
MAX_RETRY_AFTER = 32


class Rejected(Exception):
    """Refused by a priority level: answer 429. ``reason`` is upstream's metric label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def deal(hash_value: int, deck: int, hand: int) -> list[int]:
    """The queues a flow may use (``shufflesharding.Dealer.Deal``): ``hand`` distinct cards out
    of ``deck``, drawn from successive remainders of the hash."""
    remainders = []
    for i in range(hand):
        hash_value, r = divmod(hash_value, deck - i)
        remainders.append(r)
    cards = []
    for i, card in enumerate(remainders):
        for j in range(i, 0, -1):
            if card >= remainders[j - 1]:
                card += 1
        cards.append(card)
    return cards


class DroppedRequests:
    """Retry-After for one level as ``dropped_requests_tracker.go`` computes it: 1 s, doubled
    (up to 32) while drops in the last Retry-After seconds reach 3 per second, lowered by one
    second at a time once they fall below one per second."""

    def __init__(self) -> None:
        self.retry_after = 1
        self._updated = 0
        self._current = (0, 0)  # (unix second, drops in it)
        self._history: deque[tuple[int, int]] = deque()

    def record(self, now: float) -> None:
        sec = int(now)
        at, count = self._current
        if at == sec:
            self._current = (sec, count + 1)
            return
        self._history.append(self._current)
        horizon = min(2 * self.retry_after, MAX_RETRY_AFTER)
        while self._history and sec - self._history[0][0] > horizon:
            self._history.popleft()
        self._current = (sec, 1)
        dropped = sum(n for t, n in self._history if sec - t <= self.retry_after and t < sec)
        if sec - self._updated >= self.retry_after and dropped >= 3 * self.retry_after:
            self.retry_after = min(self.retry_after * 2, MAX_RETRY_AFTER)
            self._updated = sec
        elif dropped < self.retry_after and self.retry_after > 1:
            self.retry_after -= 1


class Demand:
    """Seats executing plus waiting, integrated over time (``fairqueuing.Integrator``): what
    the borrowing adjustment reads every period (average, deviation, high watermark)."""

    def __init__(self, now: float) -> None:
        self.value = 0
        self.reset(now)

    def reset(self, now: float) -> tuple[float, float, float, float]:
        """(duration, average, std deviation, max) since the last reset; starts anew."""
        out = (0.0, 0.0, 0.0, 0.0)
        if hasattr(self, "_start"):
            self._advance(now)
            d = now - self._start
            if d > 0:
                avg = self._sum / d
                var = max(0.0, self._sum2 / d - avg * avg)
                out = (d, avg, math.sqrt(var), float(self._max))
        self._start = self._last = now
        self._sum = self._sum2 = 0.0
        self._max = self.value
        return out

    def _advance(self, now: float) -> None:
        dt = now - self._last
        if dt > 0:
            self._sum += self.value * dt
            self._sum2 += self.value * self.value * dt
        self._last = now

    def add(self, delta: int, now: float) -> None:
        self._advance(now)
        self.value += delta
        if self.value > self._max:
            self._max = self.value


@dataclass(eq=False)
class _Waiter:
    fut: asyncio.Future[None]
    queue: int
    hash_value: int
    #: what the owner tells about the request (for /debug/api_priority_and_fairness)
    meta: Any = None


@dataclass(eq=False)
class Level:
    """The live state of one PriorityLevelConfiguration (kept across configuration changes
    with the same name, so queued requests survive an edit)."""

    name: str
    uid: str = ""
    exempt: bool = False
    #: 0: Reject; else the number of queues
    queues: int = 0
    hand_size: int = 1
    queue_length_limit: int = 0
    nominal_cl: int = 0
    min_cl: int = 0
    max_cl: int = 0
    current_cl: int = 0
    executing: int = 0
    waiting: int = 0
    dispatched: int = 0
    rejected: int = 0
    timed_out: int = 0
    cancelled: int = 0
    #: seat demand smoothing as upstream (``seatDemandStats``)
    demand_smoothed: float = 0.0
    demand_high: int = 0
    demand: Demand | None = None
    drops: DroppedRequests = field(default_factory=DroppedRequests)
    #: the non-empty queues by index: a queue exists only while someone waits in it, so a
    #: level configured with millions of queues costs nothing until requests queue
    _queues: dict[int, deque[_Waiter]] = field(default_factory=dict)
    _turn: int = 0
    #: called when a request starts waiting (the owner keeps the borrowing adjustment going
    #: while anyone waits, even when no other request arrives)
    on_wait: Callable[[], None] | None = None

    # -- configuration ---------------------------------------------------------------------
    def set_queuing(self, queues: int, hand_size: int, queue_length_limit: int) -> None:
        """Adopt new queue settings; requests already waiting are dealt into the new queues."""
        if queues == self.queues and max(1, hand_size) == self.hand_size:
            self.queue_length_limit = queue_length_limit
            return
        waiting = [w for _, q in sorted(self._queues.items()) for w in q]
        self.queues, self.hand_size, self.queue_length_limit = queues, max(1, hand_size), queue_length_limit
        self._queues = {}
        self._turn = 0
        for w in waiting:
            if queues:
                w.queue = self._pick(w.hash_value)
                self._queues.setdefault(w.queue, deque()).append(w)
            elif not w.fut.done():  # now Reject: nobody may wait
                self.waiting -= 1
                self._refuse()
                w.fut.set_exception(Rejected("concurrency-limit"))

    # -- requests ----------------------------------------------------------------------------
    def _note(self, delta: int) -> None:
        if self.demand is not None:
            self.demand.add(delta, time.monotonic())

    def _take(self) -> None:
        self.executing += 1
        self.dispatched += 1

    def _pick(self, hash_value: int) -> int:
        if self.queues == 1:
            return 0
        best, best_len = 0, -1
        for q in deal(hash_value, self.queues, min(self.hand_size, self.queues)):
            n = len(self._queues.get(q, ()))
            if best_len < 0 or n < best_len:
                best, best_len = q, n
        return best

    async def acquire(self, flow_hash: Callable[[], int], wait_limit: Callable[[], float],
                      meta: Any = None) -> int:
        """Return once the request holds a seat (``release`` it after); raise ``Rejected``.
        The flow's hash and the wait limit are asked for only when the request must queue.
        Returns the queue it waited in, -1 if it did not wait."""
        self._note(1)
        if self.exempt or (self.waiting == 0 and self.executing < self.current_cl):
            self._take()
            return -1
        if not self.queues:
            self._refuse()
            raise Rejected("concurrency-limit")
        hash_value = flow_hash() if self.queues > 1 else 0
        qi = self._pick(hash_value)
        if self.executing >= self.current_cl and len(self._queues.get(qi, ())) >= self.queue_length_limit:
            self._refuse()
            raise Rejected("queue-full")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        w = _Waiter(fut, qi, hash_value, meta)
        self._queues.setdefault(qi, deque()).append(w)
        self.waiting += 1
        self._dispatch()
        if self.on_wait is not None and not fut.done():
            self.on_wait()
        try:
            await asyncio.wait_for(asyncio.shield(fut), wait_limit())
        except (TimeoutError, asyncio.CancelledError) as exc:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release()  # the seat came as the wait ended: hand it back
            elif not fut.done():
                fut.cancel()
                self._unqueue(w)
                self._note(-1)
                if isinstance(exc, TimeoutError):
                    self.timed_out += 1
                else:
                    self.cancelled += 1
            if isinstance(exc, TimeoutError):
                raise Rejected("time-out") from None
            raise
        return w.queue

    def _unqueue(self, w: _Waiter) -> None:
        q = self._queues.get(w.queue)
        if q is not None:
            try:
                q.remove(w)
            except ValueError:
                return
            if not q:
                del self._queues[w.queue]
            self.waiting -= 1

    def _refuse(self) -> None:
        self.rejected += 1
        self._note(-1)
        self.drops.record(time.monotonic())

    def release(self) -> None:
        self.executing -= 1
        self._note(-1)
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand free seats to the queues in turn, one request per queue per turn."""
        while self.waiting and self.executing < self.current_cl and self._queues:
            later = [i for i in self._queues if i >= self._turn]
            qi = min(later) if later else min(self._queues)
            self._turn = qi + 1
            q = self._queues[qi]
            w = q.popleft()
            if not q:
                del self._queues[qi]
            self.waiting -= 1
            if w.fut.done():
                continue
            self._take()
            w.fut.set_result(None)

    def set_current_cl(self, cl: int) -> None:
        self.current_cl = cl
        self._dispatch()

    def active_queues(self) -> int:
        return len(self._queues)

    def queue_lengths(self) -> dict[int, int]:
        """Waiting requests per non-empty queue (the empty ones are not kept)."""
        return {i: len(q) for i, q in sorted(self._queues.items())}

    def waiters(self) -> list[tuple[int, int, _Waiter]]:
        """(queue, position, waiter) of every waiting request, queue by queue."""
        return [(i, pos, w) for i, q in sorted(self._queues.items()) for pos, w in enumerate(q)]
