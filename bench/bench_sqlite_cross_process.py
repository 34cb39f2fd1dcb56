"""Watch delivery across processes on one SQLite file: a child process writes, this process
watches; one JSON line with the delivery latency (child's acknowledged write -> event here).

    .venv/bin/python bench/bench_sqlite_cross_process.py [--n 300]

SQLite has no change notification: a store with watchers stats the WAL every 20 ms and reads
the new revisions when it changed (``vkube/store/sqlite.py``), so the latency is bounded by
that interval plus one read. Clocks: both processes use ``time.time()`` on one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vkube.store import SqliteStore

CHILD = """
import asyncio, sys, time
from vkube.store import SqliteStore

async def main(path, n):
    store = SqliteStore(path)
    await store.start()
    try:
        for i in range(n):
            await store.create(f"/x/{i:06d}", b"v")
            print(f"{i} {time.time()}", flush=True)
            await asyncio.sleep(0.01)
    finally:
        await store.close()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


async def measure(path: str, n: int) -> dict[str, object]:
    store = SqliteStore(path)
    await store.start()
    try:
        it = store.watch("/x/", after_revision=await store.current_revision())
        child = await asyncio.create_subprocess_exec(
            sys.executable, "-c", CHILD, path, str(n), stdout=asyncio.subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
        seen: dict[int, float] = {}
        while len(seen) < n:
            ev = await asyncio.wait_for(anext(it), 60)
            seen[int(ev.kv.key.rsplit("/", 1)[1])] = time.time()
        out, _ = await child.communicate()
        acked = {int(i): float(t) for i, t in (line.split() for line in out.decode().splitlines())}
        lat = sorted(max(0.0, seen[i] - acked[i]) for i in range(n))
        await it.aclose()
        return {"bench": "sqlite_cross_process_watch", "n": n,
                "p50_ms": round(statistics.median(lat) * 1e3, 1),
                "p99_ms": round(lat[max(0, int(n * 0.99) - 1)] * 1e3, 1),
                "max_ms": round(lat[-1] * 1e3, 1)}
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(json.dumps(asyncio.run(measure(os.path.join(tmp, "x.db"), args.n))))


if __name__ == "__main__":
    main()
