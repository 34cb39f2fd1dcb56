"""SQLite self-maintenance benchmark: compact a database of N revisions (default 1,000,000)
while a writer keeps writing; prints one JSON line.

    .venv/bin/python bench/bench_store_compaction.py [--revisions 1000000] [--keys 10000]
        [--pattern roundrobin|random] [--quiet-seconds 15]

The history (``keys`` keys of 200-byte values; ``roundrobin`` updates them in turn, the worst
case for deleting in revision order, ``random`` picks one at random each time, with a
delete-and-recreate every 50th revision) is bulk-loaded straight into the table with
executemany, to build it in seconds. Then the store opens it and one writer creates keys one
after another, each acknowledged write timed, in three phases of the same run and settings:
``quiet`` (no compaction, ``--quiet-seconds``), ``compacting`` (the store compacts everything
up to the current revision, then gives space back) and ``after`` (as long as ``quiet``).

Reported:
- ``stall_ms``: the writer stall attributable to compaction, measured directly: for each commit,
  the time it waited on the writer thread behind compaction/vacuum/checkpoint transactions
  (``max`` is the compaction pause);
- ``commit_ms`` per phase: how long the commit itself ran (fsync included), p50/p99/max;
- ``write_ms`` per phase: the writer's end-to-end latency;
- sizes of the database and its WAL before and after, the largest WAL seen (sampled every
  20 ms), the compaction's duration and its transactions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sqlite3
import tempfile
import time
from pathlib import Path

from vkube.store import SqliteStore
from vkube.store._sql import SQLITE


def build(path: str, revisions: int, keys: int, pattern: str) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    for statement in SQLITE.schema:
        conn.execute(statement)
    value = b"x" * 200
    rng = random.Random(17)
    created: dict[int, int] = {}
    last: dict[int, int] = {}
    batch = []
    for rev in range(1, revisions + 1):
        k = (rev - 1) % keys if pattern == "roundrobin" else rng.randrange(keys)
        key = f"/registry/configmaps/bench/{k:06d}"
        if k not in created:
            created[k] = rev
            batch.append((rev, key, 1, 0, rev, 0, value))
        elif pattern == "random" and rev % 50 == 0:  # a delete; the key is created anew later
            batch.append((rev, key, 0, 1, created.pop(k), last[k], value))
        else:
            batch.append((rev, key, 0, 0, created[k], last[k], value))
        last[k] = rev
        if len(batch) == 50_000:
            conn.execute("BEGIN")
            conn.executemany(SQLITE.insert, batch)
            conn.execute("COMMIT")
            batch.clear()
    if batch:
        conn.execute("BEGIN")
        conn.executemany(SQLITE.insert, batch)
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def sizes(path: str) -> dict[str, int]:
    out = {}
    for name, p in (("db_bytes", path), ("wal_bytes", path + "-wal")):
        out[name] = os.path.getsize(p) if os.path.exists(p) else 0
    return out


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"n": 0}
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(len(values) * q))]  # noqa: E731
    return {"p50": round(pick(0.5) * 1e3, 2), "p99": round(pick(0.99) * 1e3, 2),
            "max": round(values[-1] * 1e3, 2), "n": len(values)}


async def measure(path: str, quiet: float) -> dict[str, object]:
    store = SqliteStore(path)
    await store.start()
    driver = store.driver
    try:
        before = sizes(path)
        phase = "quiet"
        writes: dict[str, list[float]] = {"quiet": [], "compacting": [], "after": []}
        marks: dict[str, int] = {}  # phase -> index into the driver's per-commit records
        stop = asyncio.Event()
        wal_max = 0

        async def writer() -> None:
            i = 0
            while not stop.is_set():
                began = time.perf_counter()
                await store.create(f"/registry/configmaps/live/{i:08d}", b"y" * 200)
                writes[phase].append(time.perf_counter() - began)
                i += 1
                await asyncio.sleep(0.001)

        async def wal_sampler() -> None:
            nonlocal wal_max
            while not stop.is_set():
                wal_max = max(wal_max, sizes(path)["wal_bytes"])
                await asyncio.sleep(0.02)

        def mark(name: str) -> None:
            marks[name] = len(driver.commit_stalls)  # type: ignore[attr-defined]

        tasks = [asyncio.create_task(writer()), asyncio.create_task(wal_sampler())]
        mark("quiet")
        await asyncio.sleep(quiet)
        phase = "compacting"
        mark("compacting")
        target = await store.current_revision()
        began = time.perf_counter()
        await store.compact(target)
        compaction_s = time.perf_counter() - began
        phase = "after"
        mark("after")
        await asyncio.sleep(quiet)
        mark("end")
        stop.set()
        await asyncio.gather(*tasks)
        after = sizes(path)
        remaining = (await store.range("/registry/configmaps/bench/")).count
        rows = sqlite3.connect(path).execute("SELECT count(*) FROM kv").fetchone()[0]

        def per_phase(records: object) -> dict[str, dict[str, float]]:
            values = list(records)  # type: ignore[call-overload]
            order = ["quiet", "compacting", "after", "end"]
            return {p: stats(values[marks[p]:marks[order[i + 1]]])
                    for i, p in enumerate(order[:-1])}

        return {
            "compaction_s": round(compaction_s, 1),
            "stall_ms": per_phase(driver.commit_stalls),  # type: ignore[attr-defined]
            "commit_ms": per_phase(driver.commit_seconds),  # type: ignore[attr-defined]
            "write_ms": {p: stats(v) for p, v in writes.items()},
            "compaction_txns": len(store.compaction_txn_seconds),
            "compaction_txn_ms": stats(list(store.compaction_txn_seconds)),
            "writer_job_max_ms": {k: round(v * 1e3, 1) for k, v in
                                  driver.writer_max_seconds.items()},  # type: ignore[attr-defined]
            "before": before, "after": after, "wal_max_bytes": wal_max,
            "rows_left": rows, "keys_kept": remaining,
        }
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--revisions", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--pattern", choices=("roundrobin", "random"), default="roundrobin")
    parser.add_argument("--quiet-seconds", type=float, default=15.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        path = os.path.join(tmp, "big.db")
        began = time.perf_counter()
        build(path, args.revisions, args.keys, args.pattern)
        built = time.perf_counter() - began
        result = asyncio.run(measure(path, args.quiet_seconds))
        print(json.dumps({"bench": "sqlite_compaction", "revisions": args.revisions,
                          "keys": args.keys, "pattern": args.pattern,
                          "build_s": round(built, 1), "load": os.getloadavg()[0], **result}),
              flush=True)


if __name__ == "__main__":
    main()
