"""Syncer benchmark: two real control planes (virtual + host) and a Syncer between them.
Prints JSON lines.

1. ``translate``: pod rewrites per second (pure, no I/O).
2. ``pods_down``: create N virtual pods; time until every host pod exists (throughput, and
   per-pod latency percentiles from virtual create to host pod seen).
3. ``status_up``: mark every host pod Running; time until every virtual pod shows it.
4. ``services``: N services down and their ClusterIPs back up.

    .venv/bin/python bench/bench_syncer.py [--pods 300] [--services 100]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from vkube.apiserver.server import ControlPlane
from vkube.client import Client
from vkube.client.resources import NAMESPACES, NODES, PODS, SERVICES
from vkube.syncer import Syncer, Translator, Values
from vkube.syncer.podrewrite import PodRewriteConfig, rewrite_pod

VC, HOST_NS = "bench", "vkube-bench"


def emit(**kw: object) -> None:
    print(json.dumps(kw), flush=True)


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(len(s) * p))] * 1000, 2) if s else 0.0


def _pod(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p{i}", "namespace": "bench", "uid": f"u{i}",
                         "labels": {"app": "bench", "app.kubernetes.io/name": "b"}},
            "spec": {"containers": [{"name": "c", "image": "nginx",
                                     "env": [{"name": "A", "value": "1"}],
                                     "volumeMounts": [{"name": "cfg", "mountPath": "/c"}]}],
                     "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}]}}


def bench_translate(n: int = 20000) -> None:
    cfg = PodRewriteConfig(translator=Translator(VC, HOST_NS), host_service_account="sa",
                           token_secret="tok", kube_service_host="10.0.0.1")
    pods = [_pod(i) for i in range(n)]
    t0 = time.perf_counter()
    for p in pods:
        rewrite_pod(p, cfg)
    dt = time.perf_counter() - t0
    emit(bench="translate", pods=n, rewrites_per_s=round(n / dt))


async def wait_until(pred, poll: float = 0.02) -> None:
    while not await pred():
        await asyncio.sleep(poll)


async def bench_e2e(n_pods: int, n_svcs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        vcp = ControlPlane(data_dir=Path(tmp) / "v", allocate_service_ips=False)
        hcp = ControlPlane(data_dir=Path(tmp) / "h")
        await vcp.start()
        await hcp.start()
        v, h = Client(vcp.url), Client(hcp.url)
        await h.create(NODES, {"metadata": {"name": "node-1"}})
        await v.create(NAMESPACES, {"metadata": {"name": "bench"}})
        syncer = Syncer(name=VC, virtual=Client(vcp.url), host=Client(hcp.url),
                        host_namespace=HOST_NS, values=Values())
        task = asyncio.create_task(syncer.run())
        await syncer.wait_ready()
        seen: dict[str, float] = {}
        created: dict[str, float] = {}

        async def watch_host() -> None:
            async for ev in h.watch(PODS, namespace=HOST_NS):
                name = ev.object["metadata"].get("annotations", {}).get("vkube.io/object-name")
                if ev.type == "ADDED" and name:
                    seen.setdefault(name, time.perf_counter())
        watcher = asyncio.create_task(watch_host())
        t0 = time.perf_counter()
        for i in range(n_pods):
            created[f"p{i}"] = time.perf_counter()
            await v.create(PODS, _pod(i) | {"metadata": {"name": f"p{i}", "namespace": "bench",
                                                         "labels": {"app": "bench"}}},
                           namespace="bench")
        t_created = time.perf_counter() - t0

        async def all_down() -> bool:
            return len(seen) >= n_pods
        await wait_until(all_down)
        total = time.perf_counter() - t0
        lat = [seen[k] - created[k] for k in created if k in seen]
        emit(bench="pods_down", pods=n_pods, create_s=round(t_created, 3),
             total_s=round(total, 3), pods_per_s=round(n_pods / total, 1),
             latency_ms_p50=pct(lat, 0.5), latency_ms_p99=pct(lat, 0.99),
             latency_ms_mean=round(statistics.mean(lat) * 1000, 2))
        watcher.cancel()

        # status up
        t0 = time.perf_counter()
        for i in range(n_pods):
            hn = f"p{i}-x-bench-x-{VC}"
            await h.create(PODS, {"apiVersion": "v1", "kind": "Binding",
                                  "metadata": {"name": hn},
                                  "target": {"kind": "Node", "name": "node-1"}},
                           namespace=HOST_NS, subresource="binding", name=hn)
            hp = await h.get(PODS, hn, namespace=HOST_NS)
            hp["status"] = {"phase": "Running", "podIP": f"10.1.{i // 250}.{i % 250 + 1}"}
            await h.update(PODS, hp, subresource="status")

        async def all_up() -> bool:
            items = (await v.list(PODS, namespace="bench"))["items"]
            return sum(1 for p in items if (p.get("status") or {}).get("phase") == "Running"
                       and p["spec"].get("nodeName")) >= n_pods
        await wait_until(all_up, 0.1)
        total = time.perf_counter() - t0
        emit(bench="status_up", pods=n_pods, total_s=round(total, 3),
             pods_per_s=round(n_pods / total, 1))

        t0 = time.perf_counter()
        for i in range(n_svcs):
            await v.create(SERVICES, {"metadata": {"name": f"s{i}", "namespace": "bench"},
                                      "spec": {"selector": {"app": "bench"},
                                               "ports": [{"port": 80}]}}, namespace="bench")

        async def ips_up() -> bool:
            items = (await v.list(SERVICES, namespace="bench"))["items"]
            return sum(1 for s in items if s["spec"].get("clusterIP")) >= n_svcs
        await wait_until(ips_up, 0.1)
        total = time.perf_counter() - t0
        emit(bench="services", services=n_svcs, total_s=round(total, 3),
             services_per_s=round(n_svcs / total, 1), reconciles=syncer.processed())

        await syncer.stop()
        await asyncio.gather(task, return_exceptions=True)
        for c in (v, h, syncer.ctx.virtual, syncer.ctx.host):
            await c.close()
        await vcp.stop()
        await hcp.stop()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=300)
    ap.add_argument("--services", type=int, default=100)
    args = ap.parse_args()
    bench_translate()
    asyncio.run(bench_e2e(args.pods, args.services))


if __name__ == "__main__":
    main()
