"""Batching of pod-driven syncs for controllers that read many pods per key (Endpoints,
EndpointSlices, PodDisruptionBudgets).

A rollout of N pods brings ~5N pod updates; a sync per update that reads every selected pod
costs O(N²). As upstream's ``--endpoint-updates-batch-period``, a key synced less than
``period`` seconds ago waits for the rest of the period (one timer; the queue coalesces the
keys meanwhile), while a key quiet for a period syncs at once — so a lone readiness flip is
seen promptly and a churning one at most once per period.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any


def add_soon(queue: Any, key: str, delay: float) -> None:
    """Queue ``key`` after ``delay`` seconds (at once when ``delay`` <= 0, or when no event
    loop runs: a handler called from plain code cannot start a timer)."""
    if delay <= 0:
        queue.add(key)
        return
    try:
        queue.add_after(key, delay)
    except RuntimeError:
        queue.add(key)


class SyncThrottle:
    """Per-key leading-edge throttle in front of a work queue (state hangs off the
    controller: many clusters share a process)."""

    def __init__(self, queue: Any, clock: Callable[[], dt.datetime]) -> None:
        self.queue = queue
        self.clock = clock
        self._last: dict[str, dt.datetime] = {}

    def synced(self, key: str) -> None:
        """Call at the start of a sync of ``key``: changes seen after this wait a period."""
        self._last[key] = self.clock()

    def forget(self, key: str) -> None:
        self._last.pop(key, None)

    def add(self, key: str, period: float) -> None:
        """Queue ``key`` now if it has not synced within ``period`` seconds, else when the
        period since its last sync ends."""
        last = self._last.get(key)
        wait = 0.0 if last is None or period <= 0 else min(
            period, period - (self.clock() - last).total_seconds())
        add_soon(self.queue, key, wait)
