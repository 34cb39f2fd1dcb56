"""Every store backend side by side, against its raw engine; one JSON line per measurement.

    .venv/bin/python bench/bench_store_backends.py [--n 1000] [--backends sqlite,postgres,etcd]

PostgreSQL and etcd are the ones ``VKUBE_TEST_POSTGRES`` / ``VKUBE_TEST_ETCD`` name, else
throwaway servers started from the installed binaries (``tests/store/servers.py``).

Per backend: sequential create and get, concurrent create (64 in flight), list of 1000 keys,
and watch delivery latency (create call -> event at a watcher) p50/p99. The raw engine does the
same single-key work without vkube (SQLite: an INSERT/SELECT per call in WAL with
synchronous=FULL on a (key, value) table; PostgreSQL: an INSERT/SELECT per call through asyncpg;
etcd: a Put/Range per call on the same gRPC channel), and ``ratio`` is vkube's rate over the
raw rate. For PostgreSQL also: watch delivery across two stores (two API server replicas) on
one database, through LISTEN/NOTIFY.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vkube.store import open_store  # noqa: E402
from vkube.store.base import Store  # noqa: E402

VALUE = b'{"kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":"' + b"v" * 400 + b'"}}'


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


async def rate(n: int, op: Callable[[int], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for i in range(n):
        await op(i)
    return n / (time.perf_counter() - start)


def percentiles(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {"p50_us": round(statistics.median(values) * 1e6),
            "p99_us": round(values[max(0, int(len(values) * 0.99) - 1)] * 1e6)}


async def watch_latency(writer: Store, watcher: Store, n: int) -> dict[str, float]:
    prefix = f"/bench/w{uuid.uuid4().hex[:6]}/"
    it = watcher.watch(prefix, after_revision=await writer.current_revision())
    sent: dict[str, float] = {}
    latencies: list[float] = []

    async def consume() -> None:
        async for event in it:
            latencies.append(time.perf_counter() - sent.pop(event.kv.key))
            if len(latencies) == n:
                return

    consumer = asyncio.create_task(consume())
    sent[prefix + "warm"] = time.perf_counter()
    await writer.create(prefix + "warm", b"v")  # the watch is established once this arrives
    while not latencies:
        await asyncio.sleep(0.001)
    latencies.clear()
    for i in range(n - 1):
        key = f"{prefix}{i:06d}"
        sent[key] = time.perf_counter()
        await writer.create(key, b"v")
        await asyncio.sleep(0.002)
    sent[prefix + "last"] = time.perf_counter()
    await writer.create(prefix + "last", b"v")
    await asyncio.wait_for(consumer, 120)
    await it.aclose()
    return percentiles(latencies)


async def vkube_figures(store: Store, n: int) -> dict[str, object]:
    tag = uuid.uuid4().hex[:6]
    out: dict[str, object] = {}
    out["create_per_s"] = round(await rate(n, lambda i: store.create(f"/bench/{tag}/a/{i:06d}",
                                                                    VALUE)))
    out["get_per_s"] = round(await rate(n, lambda i: store.get(f"/bench/{tag}/a/{i:06d}")))
    start = time.perf_counter()
    for base in range(0, n, 64):
        await asyncio.gather(*(store.create(f"/bench/{tag}/c/{base + j:06d}", VALUE)
                               for j in range(64)))
    out["create_concurrent64_per_s"] = round(n / (time.perf_counter() - start))
    for base in range(0, 1000, 64):
        await asyncio.gather(*(store.create(f"/bench/{tag}/l/{base + j:06d}", VALUE)
                               for j in range(min(64, 1000 - base))))
    rounds = 20
    start = time.perf_counter()
    for _ in range(rounds):
        assert (await store.range(f"/bench/{tag}/l/")).count == 1000
    out["list_keys_per_s"] = round(rounds * 1000 / (time.perf_counter() - start))
    out["watch"] = await watch_latency(store, store, min(n, 500))
    return out


# -- raw engines -----------------------------------------------------------------------------

async def raw_sqlite(directory: str, n: int) -> dict[str, float]:
    conn = sqlite3.connect(os.path.join(directory, "raw.db"), isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE raw (key TEXT PRIMARY KEY, value BLOB)")
    start = time.perf_counter()
    for i in range(n):
        conn.execute("INSERT INTO raw VALUES (?, ?)", (f"/raw/{i:06d}", VALUE))
    create = n / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(n):
        conn.execute("SELECT value FROM raw WHERE key = ?", (f"/raw/{i:06d}",)).fetchone()
    get = n / (time.perf_counter() - start)
    conn.close()
    return {"create_per_s": create, "get_per_s": get}


async def raw_postgres(url: str, n: int) -> dict[str, float]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute("CREATE TABLE raw (key TEXT PRIMARY KEY, value BYTEA)")
        create = await rate(n, lambda i: conn.execute("INSERT INTO raw VALUES ($1, $2)",
                                                      f"/raw/{i:06d}", VALUE))
        get = await rate(n, lambda i: conn.fetchval("SELECT value FROM raw WHERE key = $1",
                                                    f"/raw/{i:06d}"))
    finally:
        await conn.close()
    return {"create_per_s": create, "get_per_s": get}


async def raw_etcd(url: str, n: int) -> dict[str, float]:
    import grpc
    from aetcd import rpc

    target = url.split("://", 1)[1].split("/", 1)[0]
    async with grpc.aio.insecure_channel(target) as channel:
        kv = rpc.KVStub(channel)
        tag = uuid.uuid4().hex[:6].encode()
        create = await rate(n, lambda i: kv.Put(rpc.PutRequest(key=b"/raw/" + tag + b"%06d" % i,
                                                               value=VALUE)))
        get = await rate(n, lambda i: kv.Range(rpc.RangeRequest(key=b"/raw/" + tag + b"%06d" % i)))
    return {"create_per_s": create, "get_per_s": get}


# -- driver ----------------------------------------------------------------------------------

async def fresh_postgres(server: str) -> str:
    import asyncpg

    name = f"vkube_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return server.rsplit("/", 1)[0] + "/" + name


async def run(backends: list[str], n: int, servers: dict[str, str], tmp: str) -> None:
    for backend in backends:
        if backend == "sqlite":
            url, raw = f"sqlite://{tmp}/vkube.db", await raw_sqlite(tmp, n)
        elif backend == "postgres":
            url = await fresh_postgres(servers["postgres"])
            raw = await raw_postgres(await fresh_postgres(servers["postgres"]), n)
        else:
            url = f"{servers['etcd']}/bench-{uuid.uuid4().hex[:6]}"
            raw = await raw_etcd(servers["etcd"], n)
        store = open_store(url)
        await store.start()
        try:
            figures = await vkube_figures(store, n)
        finally:
            await store.close()
        emit(bench="store_backend", backend=backend, n=n, **figures,
             raw_create_per_s=round(raw["create_per_s"]), raw_get_per_s=round(raw["get_per_s"]),
             create_ratio=round(figures["create_per_s"] / raw["create_per_s"], 2),  # type: ignore[operator]
             get_ratio=round(figures["get_per_s"] / raw["get_per_s"], 2))  # type: ignore[operator]
        if backend == "postgres":
            a, b = open_store(url), open_store(url)
            await a.start()
            await b.start()
            try:
                emit(bench="postgres_watch_across_replicas", events=min(n, 500),
                     **await watch_latency(a, b, min(n, 500)))
            finally:
                await a.close()
                await b.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--backends", default="sqlite,postgres,etcd")
    args = parser.parse_args()
    backends = args.backends.split(",")
    from tests.store import servers as test_servers

    with contextlib.ExitStack() as stack, tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        urls: dict[str, str] = {}
        if "postgres" in backends:
            urls["postgres"] = os.environ.get("VKUBE_TEST_POSTGRES") or stack.enter_context(
                test_servers.postgres(None))
        if "etcd" in backends:
            urls["etcd"] = os.environ.get("VKUBE_TEST_ETCD") or stack.enter_context(
                test_servers.etcd(tmp))
        asyncio.run(run(backends, args.n, urls, tmp))


if __name__ == "__main__":
    main()
