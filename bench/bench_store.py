"""Store benchmark: prints one JSON line per measurement.

    .venv/bin/python bench/bench_store.py [--n 2000] [--url sqlite:///tmp/x.db] [--uvloop]
                                          [--max-batch 1]

Measures sequential create / get / update, concurrent create (group commit), range of 1000
keys, and watch delivery latency (write acknowledged -> event received by a watcher).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from vkube.store import open_store
from vkube.store.base import Store


def emit(name: str, **fields: object) -> None:
    print(json.dumps({"bench": name, **fields}), flush=True)


async def timed(name: str, n: int, op: Callable[[int], Awaitable[object]]) -> None:
    start = time.perf_counter()
    for i in range(n):
        await op(i)
    elapsed = time.perf_counter() - start
    emit(name, ops=n, ops_per_s=round(n / elapsed), us_per_op=round(elapsed / n * 1e6, 1))


async def run(store: Store, n: int) -> None:
    value = b'{"kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":"' + b"v" * 400 + b'"}}'
    await timed("create", n, lambda i: store.create(f"/bench/a/{i:06d}", value))
    await timed("get", n, lambda i: store.get(f"/bench/a/{i:06d}"))
    await timed("update", n,
                lambda i: store.update(f"/bench/a/{i:06d}", value, expected_mod_revision=0))

    for concurrency in (16, 64):
        start = time.perf_counter()
        for base in range(0, n, concurrency):
            await asyncio.gather(*(store.create(f"/bench/c{concurrency}/{base + j:06d}", value)
                                   for j in range(concurrency)))
        elapsed = time.perf_counter() - start
        emit("create_concurrent", concurrency=concurrency, ops=n,
             ops_per_s=round(n / elapsed))

    for i in range(1000):
        await store.create(f"/bench/r/{i:06d}", value)
    rounds = 50
    start = time.perf_counter()
    for _ in range(rounds):
        result = await store.range("/bench/r/")
        assert result.count == 1000
    elapsed = time.perf_counter() - start
    emit("range_1000", ranges=rounds, ranges_per_s=round(rounds / elapsed, 1),
         keys_per_s=round(rounds * 1000 / elapsed))
    start = time.perf_counter()
    for _ in range(rounds):
        result = await store.range("/bench/r/", limit=100)
    elapsed = time.perf_counter() - start
    emit("range_page_100_of_1000", ranges=rounds, ranges_per_s=round(rounds / elapsed, 1))

    await watch_latency(store, min(n, 2000))


async def watch_latency(store: Store, n: int) -> None:
    revision = await store.current_revision()
    it = store.watch("/bench/w/", after_revision=revision)
    sent: dict[str, float] = {}
    latencies: list[float] = []

    async def consume() -> None:
        async for event in it:
            latencies.append(time.perf_counter() - sent.pop(event.kv.key))
            if len(latencies) == n:
                return

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0)
    for i in range(n):
        key = f"/bench/w/{i:06d}"
        sent[key] = time.perf_counter()  # from the write call to the event's arrival
        await store.create(key, b"v")
        await asyncio.sleep(0)
    await consumer
    latencies.sort()
    emit("watch_latency", events=n,
         p50_us=round(statistics.median(latencies) * 1e6),
         p99_us=round(latencies[int(n * 0.99) - 1] * 1e6))
    await it.aclose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--url", default="")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--max-batch", type=int, default=0,
                        help="sqlite group-commit batch size (1 disables group commit)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        options = {"max_batch": args.max_batch} if args.max_batch else {}
        store = open_store(args.url or f"sqlite://{tmp}/bench.db", **options)
        await store.start()
        try:
            await run(store, args.n)
        finally:
            await store.close()


if __name__ == "__main__":
    import sys

    if "--uvloop" in sys.argv:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())
