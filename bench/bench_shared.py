"""Shared mode: what a virtual cluster costs in the shared server. Prints JSON lines.

This process is the shared server (``SharedServer``: one store, one port, clusters at
``/clusters/NAME``); the embedded host runs in its own process (``vkube host start``) so the
figures are the shared process's alone. Every cluster is a full virtual cluster (control plane,
controllers, syncer to its host namespace) unless ``--api-only``.

- ``shared.create``: per added cluster, ``serving_ms`` (its API answers: what ``vkube create
  --shared`` waits for) and ``ready_ms`` (controllers and syncer running), as p50/p95/max;
- ``shared.point``: RSS (MiB), tasks and threads of this process and the CPU it burns while the
  clusters idle, at each count; ``shared.slope``: per cluster, least squares over the points;
- ``shared.latency``: GET of one cluster's namespace, sequential, p50/p99 ms, with every
  other cluster idle; with ``--flood`` also while another tenant creates ConfigMaps in a
  tight loop (its p99 against the idle p99);
- ``shared.wake``: a sleeping cluster's first request, answered once its API serves.

``--pods``: each full cluster runs one pod, synced to the host and Running before each
sample. ``--no-host-pool``: every syncer its own host connections (the cost before
``vkube.client.pool``).

    .venv/bin/python bench/bench_shared.py [--counts 10,100] [--settle 5] [--api-only] [--flood]
                                           [--https-components]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

from vkube.cluster.config import ClusterConfig, HostConnection
from vkube.cluster.fairness import FairnessConfig
from vkube.cluster.shared import SharedServer, sni_name

from _process import emit, idle_cpu, pct, sample, slope


def tls_of(server: SharedServer, name: str) -> tuple[aiohttp.ClientSession, dict[str, str]]:
    """A session as the cluster's kubeconfig connects: its CA, admin certificate, SNI."""
    vc = server.members[name].vc
    assert vc is not None
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(
        ssl=vc.control_plane.client_ssl()))
    return session, {"server_hostname": sni_name(name)}


async def latency(session: aiohttp.ClientSession, url: str, n: int,
                  tls: dict[str, str]) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        async with session.get(url, **tls) as r:
            await r.read()
            assert r.status == 200, r.status
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def flood(session: aiohttp.ClientSession, url: str, stop: asyncio.Event,
                tls: dict[str, str]) -> int:
    """A tenant creating objects in a tight loop (8 at a time)."""
    n = 0

    async def one(worker: int) -> None:
        nonlocal n
        i = 0
        while not stop.is_set():
            body = {"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": f"f{worker}-{i}"}, "data": {"k": "v"}}
            async with session.post(url, json=body, **tls) as r:
                await r.read()
            i += 1
            n += 1
    await asyncio.gather(*(one(w) for w in range(8)))
    return n


class LoopLag:
    """How late a 10 ms sleep wakes on this loop: the time every ready callback ahead of a
    request's next step costs it (what a busy loop adds to each await of a request)."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(0.01)
            self.lags.append((time.perf_counter() - t0 - 0.01) * 1000)

    def __enter__(self) -> "LoopLag":
        self._task = asyncio.create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def figures(self) -> dict[str, float]:
        return {"loop_lag_p50_ms": pct(self.lags, .5, 2), "loop_lag_p99_ms": pct(self.lags, .99, 2)}


async def flood_process(kubeconfig: Path, measure: "asyncio.Future[list[float]] | Any") -> tuple[list[float], int]:
    """The flood from a process of its own (``_flood.py``) while ``measure`` runs."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(Path(__file__).with_name("_flood.py")), str(kubeconfig),
        stdout=subprocess.PIPE)
    assert proc.stdout is not None
    assert (await proc.stdout.readline()).strip() == b"ready"
    await asyncio.sleep(1)
    try:
        busy = await measure
    finally:
        proc.terminate()
        out = (await proc.stdout.read()).split()
        await proc.wait()
    return busy, int(out[0]) if out else 0


POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
       "spec": {"containers": [{"name": "c", "image": "nginx"}]}}


async def run_pod(server: SharedServer, name: str) -> None:
    session, tls = tls_of(server, name)
    async with session:
        async with session.post(f"{server.url_of(name)}/api/v1/namespaces/default/pods",
                                json=POD, **tls) as r:
            assert r.status == 201, (r.status, await r.text())


async def pods_running(server: SharedServer, names: list[str], timeout: float = 900) -> None:
    """Until every cluster's pod reports Running (its host pod runs and the syncer copied the
    status back)."""
    deadline = time.monotonic() + timeout
    waiting = list(names)
    while waiting and time.monotonic() < deadline:
        for name in list(waiting):
            session, tls = tls_of(server, name)
            async with session:
                async with session.get(f"{server.url_of(name)}/api/v1/namespaces/default/pods/p",
                                       **tls) as r:
                    if r.status == 200 and (await r.json())["status"].get("phase") == "Running":
                        waiting.remove(name)
        await asyncio.sleep(1)
    assert not waiting, f"pods not Running: {waiting[:5]} and {max(0, len(waiting) - 5)} more"


async def main(args: argparse.Namespace, root: Path, host_kc: Path | None) -> None:
    server = SharedServer(root / "shared", fairness=FairnessConfig(
        seats=args.seats, per_cluster=args.per_cluster))
    await server.start()
    if args.no_host_pool:
        server.host_pool = None
    clusters: list[str] = []
    serving: list[float] = []
    ready: list[float] = []

    def config(i: int) -> ClusterConfig:
        return ClusterConfig(name=f"c{i:06d}", data_dir=root / f"c{i:06d}",
                             controllers=not args.api_only,
                             in_process_components=not args.https_components,
                             host=HostConnection(str(host_kc), kind="embedded") if host_kc else None)
    try:
        await asyncio.sleep(args.settle)
        base = {**sample(), "idle_cpu_pct": await idle_cpu(args.settle)}
        emit(bench="shared.point", clusters=0, **base)
        points: dict[str, list[tuple[int, float]]] = {k: [(0, v)] for k, v in base.items()}
        for n in args.counts:
            t_batch = time.perf_counter()
            while len(clusters) < n:
                cfg = config(len(clusters))
                t0 = time.perf_counter()
                member = await server.add(cfg)
                serving.append((time.perf_counter() - t0) * 1000)
                assert member.vc is not None
                await member.vc.wait_ready(timeout=900)
                ready.append((time.perf_counter() - t0) * 1000)
                clusters.append(cfg.name)
                if args.pods and not args.api_only:
                    await run_pod(server, cfg.name)
            if args.pods and not args.api_only:
                await pods_running(server, clusters)
            added = time.perf_counter() - t_batch
            await asyncio.sleep(args.settle)
            s = {**sample(), "idle_cpu_pct": await idle_cpu(args.settle)}
            pool = server.host_pool
            emit(bench="shared.point", clusters=n, added_in_s=round(added, 1), **s,
                 host_pool_connections=pool.connections() if pool is not None else None)
            for k, v in s.items():
                points[k].append((n, v))
        if args.sleep_all:
            # every cluster asleep: what an idle cluster costs once sleep.afterInactivity took it
            t0 = time.perf_counter()
            for name in clusters[1:]:
                await server.sleep(name)
            slept = time.perf_counter() - t0
            await asyncio.sleep(args.settle)
            s = {**sample(), "idle_cpu_pct": await idle_cpu(args.settle)}
            emit(bench="shared.asleep", clusters=len(clusters), asleep=len(clusters) - 1,
                 slept_in_s=round(slept, 1), **s,
                 rss_per_cluster_mib=round((s["rss_mib"] - base["rss_mib"]) / len(clusters), 3))
        if args.asleep:
            # clusters that come (back) asleep: a restart with idle clusters, what each costs
            t0 = time.perf_counter()
            before = sample()
            for i in range(args.asleep):
                await server.add(config(100000 + i), asleep=True)
            added = time.perf_counter() - t0
            await asyncio.sleep(args.settle)
            after = {**sample(), "idle_cpu_pct": await idle_cpu(args.settle)}
            emit(bench="shared.asleep_added", asleep=args.asleep, added_in_s=round(added, 2),
                 **after, rss_per_cluster_mib=round(
                     (after["rss_mib"] - before["rss_mib"]) / args.asleep, 4))
        emit(bench="shared.create", clusters=len(clusters),
             serving_ms={"p50": pct(serving, .5), "p95": pct(serving, .95), "max": pct(serving, 1)},
             ready_ms={"p50": pct(ready, .5), "p95": pct(ready, .95), "max": pct(ready, 1)})
        for k, pts in points.items():
            k_slope, intercept = slope(pts)
            emit(bench="shared.slope", metric=k, per_cluster=round(k_slope, 3),
                 base=round(intercept, 1), points=pts)
        session, tls = tls_of(server, clusters[0])
        async with session:
            # ``--read-path /version``: a reply from memory (no store read on a thread)
            target = f"{server.url_of(clusters[0])}{args.read_path}"
            await latency(session, target, 20, tls)
            with LoopLag() as lag:
                idle = await latency(session, target, args.requests, tls)
            emit(bench="shared.latency", clusters=len(clusters), others="idle",
                 p50_ms=pct(idle, .5), p99_ms=pct(idle, .99), **lag.figures())
            if args.flood_process and len(clusters) >= 2:
                with LoopLag() as lag:
                    busy, created = await flood_process(
                        root / clusters[1] / "kubeconfig", latency(session, target, args.requests, tls))
                emit(bench="shared.latency", clusters=len(clusters),
                     others="one flooding from its own process",
                     p50_ms=pct(busy, .5), p99_ms=pct(busy, .99),
                     p50_vs_idle=round(pct(busy, .5) / max(pct(idle, .5), 0.001), 2),
                     p99_vs_idle=round(pct(busy, .99) / max(pct(idle, .99), 0.001), 2),
                     flood_creates=created, **lag.figures())
            if args.flood and len(clusters) >= 2:
                stop = asyncio.Event()
                hog_session, hog_tls = tls_of(server, clusters[1])
                async with hog_session:
                    hog = asyncio.create_task(flood(
                        hog_session,
                        f"{server.url_of(clusters[1])}/api/v1/namespaces/default/configmaps",
                        stop, hog_tls))
                    await asyncio.sleep(1)
                    with LoopLag() as lag:
                        busy = await latency(session, target, args.requests, tls)
                    stop.set()
                    created = await hog
                emit(bench="shared.latency", clusters=len(clusters), others="one flooding",
                     p50_ms=pct(busy, .5), p99_ms=pct(busy, .99), **lag.figures(),
                     p50_vs_idle=round(pct(busy, .5) / max(pct(idle, .5), 0.001), 2),
                     p99_vs_idle=round(pct(busy, .99) / max(pct(idle, .99), 0.001), 2),
                     flood_creates=created, flood_refused=server.fair.rejected.get(clusters[1], 0))
            wakes = []
            for _ in range(args.wakes):
                await server.sleep(clusters[0])
                t0 = time.perf_counter()
                async with session.get(target, **tls) as r:
                    await r.read()
                    assert r.status == 200
                wakes.append((time.perf_counter() - t0) * 1000)
            emit(bench="shared.wake", clusters=len(clusters), runs=len(wakes),
                 first_request_ms={"p50": pct(wakes, .5), "max": pct(wakes, 1)})
    finally:
        t0 = time.perf_counter()
        await server.stop()
        left = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        emit(bench="shared.stop_all", clusters=len(clusters),
             seconds=round(time.perf_counter() - t0, 1), tasks_left=len(left))
        if os.environ.get("BENCH_DEBUG"):
            for t in left[:15]:
                print(t.get_name(), t.get_stack(limit=3), file=sys.stderr)


def start_host(home: Path) -> Path:
    env = {**os.environ, "VKUBE_HOME": str(home), "KUBECONFIG": str(home / "kubeconfig")}
    subprocess.run([sys.executable, "-m", "vkube", "host", "start", "--nodes", "2"], env=env,
                   check=True, capture_output=True)
    return home / "host" / "kubeconfig"


def stop_host(home: Path) -> None:
    env = {**os.environ, "VKUBE_HOME": str(home), "KUBECONFIG": str(home / "kubeconfig")}
    subprocess.run([sys.executable, "-m", "vkube", "host", "stop"], env=env, capture_output=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--counts", default="10,100", help="cluster counts to measure at, ascending")
    p.add_argument("--settle", type=float, default=5.0, help="idle seconds before each sample")
    p.add_argument("--api-only", action="store_true",
                   help="control planes only: no controllers, no host, no syncer")
    p.add_argument("--https-components", action="store_true",
                   help="components reach their API over loopback HTTPS (the cost before in-process calls)")
    p.add_argument("--flood", action="store_true", help="also measure latency while another "
                                                         "tenant creates objects in a tight loop")
    p.add_argument("--requests", type=int, default=300, help="requests per latency figure")
    p.add_argument("--wakes", type=int, default=5)
    p.add_argument("--seats", type=int, default=FairnessConfig.seats,
                   help="requests executing at once in the process")
    p.add_argument("--per-cluster", type=int, default=FairnessConfig.per_cluster,
                   help="the most seats one cluster holds")
    p.add_argument("--asleep", type=int, default=0,
                   help="then add this many clusters asleep (as a restart brings idle ones back)")
    p.add_argument("--read-path", default="/api/v1/namespaces/default",
                   help="what the latency figures GET from the first cluster")
    p.add_argument("--switch-interval", type=float, default=0.0,
                   help="sys.setswitchinterval (seconds) for this process; 0: Python's 0.005")
    p.add_argument("--flood-process", action="store_true",
                   help="also flood from a process of its own (the flood's client work off this loop)")
    p.add_argument("--pods", action="store_true",
                   help="one pod per full cluster, Running on the host before each sample")
    p.add_argument("--no-host-pool", action="store_true",
                   help="each syncer its own host connections (no process-wide pool)")
    p.add_argument("--sleep-all", action="store_true",
                   help="then put every cluster but one to sleep and sample again")
    a = p.parse_args()
    a.counts = sorted(int(x) for x in a.counts.split(","))
    if a.switch_interval:
        sys.setswitchinterval(a.switch_interval)
    logging.basicConfig(level=os.environ.get("VKUBE_LOG_LEVEL", "WARNING"))
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    with tempfile.TemporaryDirectory(prefix="vkube-shared-") as d:
        home = Path(d) / "home"
        host = None if a.api_only else start_host(home)
        try:
            asyncio.run(main(a, Path(d), host))
        finally:
            if host is not None:
                stop_host(home)
