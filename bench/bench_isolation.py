"""Isolation benchmark (issue 16): what ``isolation.enabled`` costs the syncer, as a ratio
against the same virtual cluster without it, and the time to create a namespace tenant.

- sync: two in-process control planes (virtual, host) and a syncer; N pods created in the
  virtual cluster one after another (latency: create → host pod seen by a host watch) and then
  N at once (throughput: pods/s until every host pod exists). Isolated: Pod Security
  (baseline) and an allowed-registries check in the syncer, the NetworkPolicies and labels.
  The quota is left off here, so N may pass 20: enforcing it is the host's admission's cost.
- tenant: ``vkube create T --tenancy namespace`` against an embedded host (CLI subprocess,
  median of R runs), then ``vkube delete T``.

Prints JSON lines. Usage: python bench/bench_isolation.py [N] [R]   (default 100 pods, 3 runs)
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vkube.apiserver.server import ControlPlane
from vkube.client import Client
from vkube.client.resources import PODS
from vkube.syncer import Syncer, load_values

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
R = int(sys.argv[2]) if len(sys.argv) > 2 else 3
ISOLATED = ("isolation: {enabled: true, resourceQuota: {enabled: false}, "
            "allowedRegistries: [docker.io]}")


def pod(i: int) -> dict:
    return {"metadata": {"name": f"p{i}", "namespace": "default"}, "spec": {
        "automountServiceAccountToken": False,
        "containers": [{"name": "c", "image": "nginx"}]}}


async def run(values_text: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        vcp = ControlPlane(data_dir=Path(d) / "v", name="v", allocate_service_ips=False)
        hcp = ControlPlane(data_dir=Path(d) / "h", name="h")
        await vcp.start()
        await hcp.start()
        v, h, watcher = Client(vcp.url), Client(hcp.url), Client(hcp.url)
        syncer = Syncer(name="b", virtual=v, host=h, host_namespace="vkube-b",
                        values=load_values(values_text))
        task = asyncio.create_task(syncer.run())
        await asyncio.wait_for(syncer.wait_ready(), 60)
        seen: dict[str, float] = {}
        arrived = asyncio.Event()

        async def watch() -> None:
            async for ev in watcher.watch(PODS, namespace="vkube-b"):
                if ev.type == "ADDED":
                    seen[ev.object["metadata"]["annotations"]["vkube.io/object-name"]] = \
                        time.perf_counter()
                    arrived.set()
        wtask = asyncio.create_task(watch())
        await asyncio.sleep(0.5)
        lat = []
        for i in range(N):  # one at a time: latency
            t0 = time.perf_counter()
            await v.create(PODS, pod(i), namespace="default")
            while f"p{i}" not in seen:
                arrived.clear()
                await arrived.wait()
            lat.append(seen[f"p{i}"] - t0)
        t0 = time.perf_counter()  # N at once: throughput
        await asyncio.gather(*(v.create(PODS, pod(N + i), namespace="default")
                               for i in range(N)))
        while sum(1 for k in seen if int(k[1:]) >= N) < N:
            arrived.clear()
            await arrived.wait()
        took = time.perf_counter() - t0
        wtask.cancel()
        await syncer.stop()
        task.cancel()
        for c in (v, h, watcher):
            await c.close()
        await vcp.stop()
        await hcp.stop()
    return {"p50_ms": statistics.median(lat) * 1000,
            "p95_ms": sorted(lat)[int(len(lat) * 0.95)] * 1000, "pods_per_s": N / took}


def tenant_create() -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        env = {**os.environ, "VKUBE_HOME": f"{d}/home", "KUBECONFIG": f"{d}/kubeconfig",
               "VKUBE_HOST_NODES": "1"}

        def vkube(*args: str) -> float:
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "vkube", *args], env=env, check=True,
                           capture_output=True, timeout=300)
            return time.perf_counter() - t0
        vkube("host", "start", "--nodes", "1")
        try:
            times = []
            for i in range(R):
                times.append(vkube("create", f"t{i}", "--tenancy", "namespace",
                                   "--connect=false"))
                vkube("delete", f"t{i}")
        finally:
            vkube("host", "stop")
    return {"median_s": statistics.median(times), "min_s": min(times), "runs": R}


async def main() -> None:
    plain = await run("")
    iso = await run(ISOLATED)
    print(json.dumps({"bench": "isolation_sync", "pods": N, "plain": plain, "isolated": iso,
                      "latency_p50_ratio": round(iso["p50_ms"] / plain["p50_ms"], 3),
                      "throughput_ratio": round(iso["pods_per_s"] / plain["pods_per_s"], 3)}))
    print(json.dumps({"bench": "namespace_tenant_create", **tenant_create()}))


if __name__ == "__main__":
    asyncio.run(main())
