"""Giving a sleeping cluster's memory back to the operating system.

Stopping a cluster drops every reference to its caches, informers and controllers, so Python
frees the objects — but the process's RSS does not fall: glibc keeps freed heap pages for
later allocations. ``Reclaimer`` runs a full collection (cycles among the stopped cluster's
objects) and then ``malloc_trim(0)``, which returns free pages of every malloc arena to the
kernel. What remains is pymalloc's: an arena (1 MiB) is released only once every object in it
is gone, so long-lived objects allocated among a cluster's keep some arenas; a cluster that
wakes again reuses that space first. Where libc has no ``malloc_trim`` (musl, macOS) only the
collection runs."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)


def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        fn = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn  # type: ignore[no-any-return]


class Reclaimer:
    """``reclaimer.soon()`` after a cluster stops: one reclaim ``delay`` seconds after the last
    call (a batch of clusters going to sleep together costs one pass)."""

    def __init__(self, delay: float = 1.0) -> None:
        self.delay = delay
        self._trim = _malloc_trim()
        self._task: asyncio.Task[None] | None = None
        self._again = False
        #: passes run (for tests and the benchmark)
        self.passes = 0

    def soon(self) -> None:
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="shared: reclaim memory")

    async def _run(self) -> None:
        while True:
            self._again = False
            await asyncio.sleep(self.delay)
            if not self._again:
                break
        t0 = time.perf_counter()
        gc.collect()
        if self._trim is not None:  # a foreign call: the GIL is released while it walks the heap
            await asyncio.to_thread(self._trim, 0)
        self.passes += 1
        log.debug("freed memory returned in %.0f ms", (time.perf_counter() - t0) * 1000)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
