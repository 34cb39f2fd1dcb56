"""Density: what an idle virtual cluster costs in one process. Prints JSON lines.

One embedded host (``EmbeddedHostCluster``) and N idle virtual clusters (``VirtualCluster``:
control plane + controllers + syncer to the host), all in this process on one event loop.
For each N (default 1, 10, 50; clusters are added, never restarted):

- ``density.point``: RSS (MiB), asyncio tasks and threads of the whole process, after every
  cluster is ready and the process has idled ``--settle`` seconds, and the CPU it burns
  idling (percent of one core, over the next ``--settle`` seconds);
- ``density.slope``: per added cluster, by least squares over the points (the host's own
  share is the intercept, shown as ``base``);
- ``density.start_one_more``: with the largest N running, the time to start one more:
  ``serving_ms`` (its API answers: what ``vkube create`` waits for) and ``ready_ms``
  (controllers and syncer running with synced caches).

    .venv/bin/python bench/bench_density.py [--counts 1,10,50] [--settle 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
from pathlib import Path

from vkube.cluster import (ClusterConfig, EmbeddedHostCluster, HostConfig, HostConnection,
                           VirtualCluster)

from _process import emit, idle_cpu, sample, slope


async def main(counts: list[int], settle: float, root: Path) -> None:
    host = EmbeddedHostCluster(HostConfig(data_dir=root / "host", nodes=2))
    await host.start()
    clusters: list[VirtualCluster] = []

    def new(i: int) -> VirtualCluster:
        return VirtualCluster(ClusterConfig(
            name=f"d{i:03d}", data_dir=root / f"d{i:03d}", leader_election=False,
            host=HostConnection(str(host.kubeconfig))))
    try:
        await asyncio.sleep(settle)
        base = {**sample(), "idle_cpu_pct": await idle_cpu(settle)}
        emit(bench="density.point", clusters=0, **base)
        points: dict[str, list[tuple[int, float]]] = {k: [(0, v)] for k, v in base.items()}
        for n in counts:
            t0 = time.perf_counter()
            batch = [new(i) for i in range(len(clusters), n)]
            for vc in batch:  # one at a time: the start-up of each, not a stampede
                await vc.start()
                clusters.append(vc)
            await asyncio.gather(*(vc.wait_ready(timeout=900) for vc in batch))
            started_s = time.perf_counter() - t0
            await asyncio.sleep(settle)
            s = {**sample(), "idle_cpu_pct": await idle_cpu(settle)}
            emit(bench="density.point", clusters=n, added_in_s=round(started_s, 2), **s)
            for k, v in s.items():
                points[k].append((n, v))
        for k, pts in points.items():
            k_slope, intercept = slope(pts)
            emit(bench="density.slope", metric=k, per_cluster=round(k_slope, 3),
                 base=round(intercept, 1), points=pts)
        one = new(len(clusters))
        t0 = time.perf_counter()
        await one.start()
        serving = time.perf_counter() - t0
        await one.wait_ready(timeout=900)
        ready = time.perf_counter() - t0
        clusters.append(one)
        emit(bench="density.start_one_more", running=len(clusters) - 1,
             serving_ms=round(serving * 1000, 1), ready_ms=round(ready * 1000, 1))
        t0 = time.perf_counter()
        await asyncio.gather(*(vc.stop() for vc in clusters))
        emit(bench="density.stop_all", clusters=len(clusters),
             seconds=round(time.perf_counter() - t0, 2),
             errors=sum(vc.error is not None for vc in clusters))
    finally:
        await asyncio.gather(*(vc.stop() for vc in clusters))
        await host.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--counts", default="1,10,50", help="cluster counts to measure at, ascending")
    p.add_argument("--settle", type=float, default=5.0, help="idle seconds before each sample")
    a = p.parse_args()
    logging.basicConfig(level=os.environ.get("VKUBE_LOG_LEVEL", "WARNING"))
    try:
        import uvloop

        uvloop.install()  # as `vkube serve` runs
    except ImportError:  # pragma: no cover
        pass
    with tempfile.TemporaryDirectory(prefix="vkube-density-") as d:
        asyncio.run(main(sorted(int(x) for x in a.counts.split(",")), a.settle, Path(d)))
