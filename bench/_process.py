"""What the density benchmarks sample of their own process — RSS, asyncio tasks, threads, idle
CPU — and the arithmetic they report it with, so every density figure is measured one way."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import threading
import time


def emit(**kw: object) -> None:
    """One JSON line per figure, flushed at once so a long run shows progress."""
    print(json.dumps(kw), flush=True)


def rss_mib(digits: int = 1) -> float:
    """This process's resident set (VmRSS) in MiB, rounded to ``digits``; 0.0 where /proc has
    no status."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, digits)
    return 0.0


def sample() -> dict[str, float]:
    """RSS after a full collection, with the live task and thread counts."""
    gc.collect()
    return {"rss_mib": rss_mib(), "tasks": len(asyncio.all_tasks()),
            "threads": threading.active_count(), "sockets": sockets()}


def sockets() -> int:
    """Open sockets of this process (listeners and connections: TLS to the host among them)."""
    n = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            n += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
    return n


async def idle_cpu(seconds: float) -> float:
    """Percent of one core the process burns while its clusters idle (bookmarks, heartbeats,
    resyncs): CPU time over wall time across ``seconds``."""
    c0, t0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    return round(100 * (time.process_time() - c0) / (time.perf_counter() - t0), 1)


def slope(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of (count, value) points; a flat line when every count
    is the same."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0, my
    k = sum((x - mx) * (y - my) for x, y in points) / sxx
    return k, my - k * mx


def pct(xs: list[float], q: float, digits: int = 1) -> float:
    """The ``q`` quantile (0..1) of ``xs`` by nearest rank, rounded to ``digits``."""
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q * len(xs)))], digits)
