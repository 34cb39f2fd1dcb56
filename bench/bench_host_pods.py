"""The host's share of a rollout (issue 19), in one process so its CPU can be counted and
profiled exactly: an embedded host (API server, controllers, scheduler, simulated kubelets)
is given N pods the way a syncer gives them (created over HTTPS in the host namespace, 16 at
a time), and the process's CPU seconds are taken until all are Running (binding, status
patches, events). Alternate runs of two trees (``PYTHONPATH=...``) to compare them on a
loaded machine; ``--profile`` prints cProfile's top functions instead of timing cleanly.

    .venv/bin/python bench/bench_host_pods.py [--pods 300] [--nodes 10] [--rounds 2] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import pstats
import re
import tempfile
import time
from pathlib import Path

from vkube.client import Client
from vkube.client.resources import NAMESPACES, PODS
from vkube.cluster.host import EmbeddedHostCluster, HostConfig


def pod(i: int, ns: str) -> dict:
    return {"metadata": {"name": f"roll-{i:05d}-x-default-x-roll", "namespace": ns,
                         "labels": {"vkube.io/managed-by": "roll", "vkube.io/namespace": "default",
                                    "vkube.io/label-app-x-roll": "roll"},
                         "annotations": {"vkube.io/object-name": f"roll-{i:05d}",
                                         "vkube.io/object-namespace": "default"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}], "automountServiceAccountToken": False}}


async def one_round(args: argparse.Namespace, prof: cProfile.Profile | None, rnd: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="vkube-bench-hostpods-") as d:
        host = EmbeddedHostCluster(HostConfig(data_dir=Path(d), nodes=args.nodes))
        await host.start()
        try:
            cp = host.control_plane
            c = Client(cp.url, ssl=cp.client_ssl(), user_agent="vkube-bench/syncer")
            ns = "vkube-roll"
            await c.create(NAMESPACES, {"metadata": {"name": ns}})
            assert host.data_plane is not None
            informer = host.data_plane.pod_informer

            def running() -> int:
                return sum(1 for p in informer.list(ns) if (p.get("status") or {}).get("phase") == "Running")

            sem = asyncio.Semaphore(16)

            async def make(i: int) -> None:
                async with sem:
                    await c.create(PODS, pod(i, ns), namespace=ns)

            await asyncio.sleep(1)
            cpu0, t0 = time.process_time(), time.monotonic()
            if prof is not None:
                prof.enable()
            await asyncio.gather(*(make(i) for i in range(args.pods)))
            while running() < args.pods and time.monotonic() - t0 < args.timeout:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)  # events and last status writes settle
            if prof is not None:
                prof.disable()
            cpu, wall = time.process_time() - cpu0, time.monotonic() - t0
            text = (await c.request("GET", "/metrics", raw=True)).decode()
            await c.close()
            requests: dict[str, int] = {}
            for line in text.splitlines():
                if line.startswith("apiserver_request_total{"):
                    labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
                    k = f"{labels.get('verb')} {labels.get('resource')}/{labels.get('subresource', '')}".rstrip("/")
                    requests[k] = requests.get(k, 0) + int(float(line.rsplit(" ", 1)[1]))
            return {"bench": "host_pods", "round": rnd, "pods": args.pods, "nodes": args.nodes,
                    "running": running(), "cpu_s": round(cpu, 2), "wall_s": round(wall, 2),
                    "cpu_ms_per_pod": round(cpu * 1000 / args.pods, 2),
                    **({"requests": dict(sorted(requests.items()))} if args.requests else {})}
        finally:
            await host.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pods", type=int, default=300)
    p.add_argument("--nodes", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--timeout", type=float, default=600.0)
    p.add_argument("--profile", action="store_true")
    p.add_argument("--requests", action="store_true", help="requests served, by verb and resource")
    p.add_argument("--top", type=int, default=45)
    args = p.parse_args()
    prof = cProfile.Profile() if args.profile else None
    for rnd in range(args.rounds):
        print(json.dumps(asyncio.run(one_round(args, prof, rnd))), flush=True)
    if prof is not None:
        st = pstats.Stats(prof)
        st.sort_stats("tottime").print_stats(args.top)
        st.sort_stats("cumulative").print_stats(args.top * 2)


if __name__ == "__main__":
    main()
