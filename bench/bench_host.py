"""Embedded host benchmark: prints JSON lines.

1. ``algorithm``: scheduling cycles alone (no API): N pods onto M nodes.
2. ``end_to_end``: a real control plane + EmbeddedHost; create N pods, time until every pod is
   bound and until every pod is Running (scheduler + kubelets through the API).
3. ``heartbeat``: the cost of one round of node heartbeats (leases; node status).
4. ``idle_rss``: the embedded host process (``vkube host start`` runs it) with N nodes, idle.

    .venv/bin/python bench/bench_host.py [--pods 5000] [--nodes 100] [--skip-e2e]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time

from vkube.host.algorithm import schedule
from vkube.host.nodes import build_node
from vkube.host.predicates import NodeInfo, pod_info


def emit(**kw: object) -> None:
    print(json.dumps(kw), flush=True)


def _pod(i: int, *, owner: str = "rs-1") -> dict:
    return {"metadata": {"name": f"p{i}", "namespace": "bench", "uid": f"u{i}", "labels": {"app": "bench"},
                         "ownerReferences": [{"kind": "ReplicaSet", "name": "rs", "uid": owner, "controller": True}]},
            "spec": {"containers": [{"name": "c", "image": "nginx",
                                     "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}}


def bench_algorithm(pods: int, nodes: int) -> None:
    infos = [NodeInfo.from_node(build_node(i, cpu="64", memory="256Gi", kubelet_port=1, pods=1000))
             for i in range(1, nodes + 1)]
    by_name = {n.name: n for n in infos}
    rng = random.Random(1)
    t0 = time.perf_counter()
    for i in range(pods):
        info = pod_info(_pod(i))
        node, _ = schedule(info, infos, rng=rng)
        assert node is not None
        by_name[node].add_pod(info)
    dt = time.perf_counter() - t0
    counts = sorted(len(n.pods) for n in infos)
    emit(bench="host.algorithm", pods=pods, nodes=nodes, seconds=round(dt, 3),
         pods_per_second=round(pods / dt, 1), us_per_cycle=round(dt / pods * 1e6, 1),
         min_pods_per_node=counts[0], max_pods_per_node=counts[-1])


async def bench_end_to_end(pods: int, nodes: int) -> None:
    from vkube.apiserver.server import ControlPlane
    from vkube.client import Client
    from vkube.client.resources import NAMESPACES, PODS
    from vkube.host.nodes import NodeTemplate
    from vkube.host.runner import EmbeddedHost

    with tempfile.TemporaryDirectory() as d:
        cp = ControlPlane(data_dir=d)
        await cp.start()
        host = EmbeddedHost(cp.url, pki=cp.pki, nodes=nodes, template=NodeTemplate(cpu="64", memory="256Gi", pods=1000))
        t0 = time.perf_counter()
        await host.start()
        emit(bench="host.start", nodes=nodes, seconds=round(time.perf_counter() - t0, 3))
        client = Client(cp.url, ssl=cp.client_ssl())
        try:
            await client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
            sem = asyncio.Semaphore(32)

            async def create(i: int) -> None:
                body = _pod(i)
                body["metadata"].pop("uid")
                body["metadata"].pop("ownerReferences")
                async with sem:
                    await client.create(PODS, body, namespace="bench")

            t0 = time.perf_counter()
            await asyncio.gather(*(create(i) for i in range(pods)))
            created = time.perf_counter() - t0
            emit(bench="host.create_pods", pods=pods, seconds=round(created, 3),
                 pods_per_second=round(pods / created, 1))
            bound_at = running_at = None
            while running_at is None:
                await asyncio.sleep(0.25)
                items = host.pod_informer.list("bench")
                bound = sum(1 for p in items if p.get("spec", {}).get("nodeName"))
                running = sum(1 for p in items if p.get("status", {}).get("phase") == "Running")
                if bound_at is None and bound >= pods:
                    bound_at = time.perf_counter() - t0
                if running >= pods:
                    running_at = time.perf_counter() - t0
                if time.perf_counter() - t0 > 1800:
                    raise TimeoutError(f"only {bound} bound / {running} running after 30 min")
            emit(bench="host.end_to_end", pods=pods, nodes=nodes, all_bound_seconds=round(bound_at or 0, 3),
                 all_running_seconds=round(running_at, 3),
                 bound_pods_per_second=round(pods / (bound_at or running_at), 1),
                 running_pods_per_second=round(pods / running_at, 1))
            t0 = time.perf_counter()
            for name in host.nodes.names:
                await host.nodes._renew_lease({"metadata": {"name": name}})
            lease_round = time.perf_counter() - t0
            t0 = time.perf_counter()
            for name in host.nodes.names:
                await host.nodes._post_ready(name)
            status_round = time.perf_counter() - t0
            emit(bench="host.heartbeat", nodes=nodes, lease_round_seconds=round(lease_round, 3),
                 status_round_seconds=round(status_round, 3),
                 api_writes_per_minute=round(nodes * (60 / host.nodes.lease_interval + 60 / host.nodes.status_interval), 1),
                 busy_fraction=round(lease_round / host.nodes.lease_interval + status_round / host.nodes.status_interval, 4))
        finally:
            await client.close()
            await host.stop()
            await cp.stop()


def bench_idle_rss(nodes: int, settle: float = 5.0) -> None:
    """Start the host process as ``vkube host start`` does, let it idle, read its RSS."""
    import subprocess
    import sys
    from pathlib import Path

    with tempfile.TemporaryDirectory() as home:
        proc = subprocess.Popen([sys.executable, "-m", "vkube.cli.hosting", "--home", home,
                                 "--nodes", str(nodes)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            pid_file = Path(home) / "host" / "host.pid"
            t0 = time.perf_counter()
            while not pid_file.exists():
                if proc.poll() is not None or time.perf_counter() - t0 > 60:
                    raise RuntimeError("the host process did not start")
                time.sleep(0.05)
            ready = time.perf_counter() - t0
            time.sleep(settle)
            rss_kb = next(int(line.split()[1]) for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines()
                          if line.startswith("VmRSS:"))
            emit(bench="host.idle_rss", nodes=nodes, ready_seconds=round(ready, 2),
                 idle_rss_mb=round(rss_kb / 1024, 1), settle_seconds=settle, pid=proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=5000)
    ap.add_argument("--nodes", type=int, default=100)
    ap.add_argument("--skip-e2e", action="store_true")
    args = ap.parse_args()
    bench_algorithm(args.pods, args.nodes)
    bench_idle_rss(args.nodes)
    if not args.skip_e2e:
        try:
            import uvloop
            uvloop.install()
        except ImportError:
            pass
        asyncio.run(bench_end_to_end(args.pods, args.nodes))


if __name__ == "__main__":
    main()
