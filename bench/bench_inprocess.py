"""A component's calls to its own API server: in process (``vkube.cluster.inprocess``)
against loopback HTTPS with its client certificate, in one process and one run. Prints JSON
lines:

- ``inprocess.request``: sequential GET and ConfigMap create, p50/p99 ms and CPU ms per
  request, per transport;
- ``inprocess.watch``: from a create until N watchers of the namespace saw it, p50/p99 ms;
- ``inprocess.memory``: RSS and tasks added per open watch, per transport.

    .venv/bin/python bench/bench_inprocess.py [--requests 500] [--watchers 40] [--transport T]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import tempfile
import time
from pathlib import Path
from typing import Any

from vkube.apiserver.server import ControlPlane
from vkube.client import Client
from vkube.client.resources import CONFIGMAPS, NAMESPACES
from vkube.cluster.inprocess import in_process_client
from vkube.pki.cluster import CONTROLLER_MANAGER

from _process import emit, pct, rss_mib


def clients(cp: ControlPlane) -> dict[str, Any]:
    assert cp.server is not None
    return {
        "https": lambda: Client(cp.url, ssl=cp.client_ssl(*CONTROLLER_MANAGER), user_agent="vkube-bench/x"),
        "inprocess": lambda: in_process_client(cp.server, CONTROLLER_MANAGER, url=cp.url,
                                               user_agent="vkube-bench/x"),
    }


async def requests(make: Any, n: int, ns: str) -> dict[str, Any]:
    c = make()
    try:
        await c.get(NAMESPACES, ns)  # connect, warm caches
        out: dict[str, Any] = {}
        for verb in ("get", "create"):
            lat: list[float] = []
            cpu0 = time.process_time()
            for i in range(n):
                t0 = time.perf_counter()
                if verb == "get":
                    await c.get(NAMESPACES, ns)
                else:
                    await c.create(CONFIGMAPS, {"metadata": {"name": f"cm-{time.monotonic_ns()}-{i}",
                                                             "namespace": ns}, "data": {"k": "v"}})
                lat.append((time.perf_counter() - t0) * 1000)
            out[verb] = {"p50_ms": pct(lat, .5, 3), "p99_ms": pct(lat, .99, 3),
                         "cpu_ms": round((time.process_time() - cpu0) * 1000 / n, 3)}
        return out
    finally:
        await c.close()


async def watchers(make: Any, count: int, rounds: int, ns: str) -> dict[str, Any]:
    """``count`` watchers (one client each, as components have); memory per watch, and the
    delay from a create until all saw it."""
    gc.collect()
    rss0, tasks0 = rss_mib(4), len(asyncio.all_tasks())
    cs = [make() for _ in range(count)]
    writer = make()
    seen: dict[str, int] = {}
    done: dict[str, asyncio.Event] = {}
    rv = (await writer.list(CONFIGMAPS, namespace=ns, limit=1))["metadata"]["resourceVersion"]

    async def watch(c: Client) -> None:
        async for ev in c.watch(CONFIGMAPS, namespace=ns, resource_version=rv):
            name = ev.object["metadata"]["name"]
            if ev.type == "ADDED" and name in done:
                seen[name] += 1
                if seen[name] == count:
                    done[name].set()

    tasks = [asyncio.create_task(watch(c)) for c in cs]
    lat: list[float] = []
    try:
        memory: dict[str, float] = {}
        for i in range(-1, rounds):  # round -1: every watch is open once all saw its object
            if i == 0:
                gc.collect()
                memory = {"rss_mib_per_watch": round((rss_mib(4) - rss0) / count, 4),
                          "tasks_per_watch": round((len(asyncio.all_tasks()) - tasks0 - count) / count, 2)}
            name = f"w-{time.monotonic_ns()}-{i}"
            seen[name], done[name] = 0, asyncio.Event()
            t0 = time.perf_counter()
            await writer.create(CONFIGMAPS, {"metadata": {"name": name, "namespace": ns}})
            await asyncio.wait_for(done[name].wait(), 60)
            if i >= 0:
                lat.append((time.perf_counter() - t0) * 1000)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for c in (*cs, writer):
            await c.close()
    return {"memory": memory, "fanout": {"p50_ms": pct(lat, .5, 3), "p99_ms": pct(lat, .99, 3)}}


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="vkube-inproc-") as d:
        cp = ControlPlane(data_dir=Path(d))
        await cp.start()
        try:
            admin = Client(cp.url, ssl=cp.client_ssl())
            for ns in ("bench-https", "bench-inprocess"):
                await admin.create(NAMESPACES, {"metadata": {"name": ns}})
            await admin.close()
            makers = {k: v for k, v in clients(cp).items() if args.transport in ("both", k)}
            for name, make in makers.items():
                r = await requests(make, args.requests, f"bench-{name}")
                emit(bench="inprocess.request", transport=name, requests=args.requests, **r)
            for name, make in makers.items():
                w = await watchers(make, args.watchers, args.rounds, f"bench-{name}")
                emit(bench="inprocess.memory", transport=name, watches=args.watchers, **w["memory"])
                emit(bench="inprocess.watch", transport=name, watchers=args.watchers,
                     rounds=args.rounds, **w["fanout"])
        finally:
            await cp.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--watchers", type=int, default=40)
    p.add_argument("--rounds", type=int, default=100)
    p.add_argument("--transport", choices=("both", "https", "inprocess"), default="both",
                   help="one alone for a clean memory figure (RSS freed by one is reused by the other)")
    asyncio.run(main(p.parse_args()))
