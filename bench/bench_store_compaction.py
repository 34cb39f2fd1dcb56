"""SQLite self-maintenance benchmark: compact a database of N revisions (default 1,000,000)
while a writer keeps writing; prints one JSON line.

    .venv/bin/python bench/bench_store_compaction.py [--revisions 1000000] [--keys 10000]

The history (``keys`` keys, each updated ``revisions / keys`` times, 200-byte values) is
written straight into the table in big transactions, to build it in seconds; then the store
opens it, a writer creates one key after another (each acknowledged write timed), and the store
compacts everything up to the current revision. Reported: the longest compaction transaction
(``max_compaction_txn_ms``), the writer's worst and p99 latency during compaction against its
latency before, the database and WAL sizes before and after (space given back by incremental
vacuum), and the compaction's duration.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from vkube.store import SqliteStore
from vkube.store._sql import SQLITE


def build(path: str, revisions: int, keys: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = OFF")
    for statement in SQLITE.schema:
        conn.execute(statement)
    value = b"x" * 200
    created: dict[int, int] = {}
    last: dict[int, int] = {}
    rev = 0
    batch = []
    for rev in range(1, revisions + 1):
        k = (rev - 1) % keys
        key = f"/registry/configmaps/bench/{k:06d}"
        if k not in created:
            created[k] = rev
            batch.append((rev, key, 1, 0, rev, 0, value))
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


async def measure(path: str) -> dict[str, object]:
    store = SqliteStore(path)
    await store.start()
    try:
        before = sizes(path)
        latencies: list[float] = []
        phase = {"value": "warm"}
        by_phase: dict[str, list[float]] = {"warm": [], "compacting": [], "after": []}
        stop = asyncio.Event()

        async def writer() -> None:
            i = 0
            while not stop.is_set():
                began = time.perf_counter()
                await store.create(f"/registry/configmaps/live/{i:08d}", b"y" * 200)
                took = time.perf_counter() - began
                latencies.append(took)
                by_phase[phase["value"]].append(took)
                i += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(writer())
        await asyncio.sleep(2)
        phase["value"] = "compacting"
        target = await store.current_revision()
        began = time.perf_counter()
        await store.compact(target)
        compaction_s = time.perf_counter() - began
        phase["value"] = "after"
        await asyncio.sleep(1)
        stop.set()
        await task
        after = sizes(path)
        remaining = (await store.range("/registry/configmaps/bench/")).count

        def stats(values: list[float]) -> dict[str, float]:
            if not values:
                return {}
            values = sorted(values)
            return {"p50_ms": round(statistics.median(values) * 1e3, 2),
                    "p99_ms": round(values[max(0, int(len(values) * 0.99) - 1)] * 1e3, 2),
                    "max_ms": round(values[-1] * 1e3, 2), "writes": len(values)}

        return {
            "compaction_s": round(compaction_s, 1),
            "writer_thread_max_ms": {k: round(v * 1e3, 1) for k, v in
                                     store.driver.writer_max_seconds.items()},  # type: ignore[attr-defined]
            "compaction_txns": len(store.compaction_txn_seconds),
            "compaction_txn_ms": stats(list(store.compaction_txn_seconds)),
            "write_latency_before": stats(by_phase["warm"]),
            "write_latency_during_compaction": stats(by_phase["compacting"]),
            "write_latency_after": stats(by_phase["after"]),
            "before": before, "after": after, "keys_kept": remaining,
        }
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--revisions", type=int, default=1_000_000)
    parser.add_argument("--keys", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        path = os.path.join(tmp, "big.db")
        began = time.perf_counter()
        build(path, args.revisions, args.keys)
        built = time.perf_counter() - began
        result = asyncio.run(measure(path))
        print(json.dumps({"bench": "sqlite_compaction", "revisions": args.revisions,
                          "keys": args.keys, "build_s": round(built, 1), **result}), flush=True)


if __name__ == "__main__":
    main()
