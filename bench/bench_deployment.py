"""Deployment benchmark: a real control plane (SQLite), the embedded host and the controller
manager in one process. Reports how long a Deployment of N replicas takes to become available,
to roll to a new image, and to scale to zero, plus the API writes the controllers spent.

Prints JSON lines. Usage: python bench/bench_deployment.py [N] [NODES]   (default 200, 5)
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from vkube.apiserver.server import ControlPlane
from vkube.client import Client
from vkube.client.resources import DEPLOYMENTS, PODS
from vkube.controllers.registry import default_controllers
from vkube.controllers.runtime import ControllerManager
from vkube.host.runner import EmbeddedHost
from vkube.host.stages import KubeletConfig

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
NODES = int(sys.argv[2]) if len(sys.argv) > 2 else 5


def deployment(replicas: int, image: str) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "bench", "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "bench"}},
                     "strategy": {"type": "RollingUpdate",
                                  "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                     "template": {"metadata": {"labels": {"app": "bench"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}}


async def wait_for(client: Client, done: Any, timeout: float = 600) -> float:
    """Seconds until ``done(deployment)`` holds (polled every 50 ms)."""
    t0 = time.perf_counter()
    while True:
        d = await client.get(DEPLOYMENTS, "bench", namespace="default")
        if done(d):
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(json.dumps(d.get("status")))
        await asyncio.sleep(0.05)


def rolled_out(replicas: int) -> Any:
    def check(d: dict[str, Any]) -> bool:
        s = d.get("status") or {}
        return (s.get("observedGeneration", 0) >= d["metadata"]["generation"]
                and s.get("updatedReplicas", 0) == replicas == s.get("availableReplicas", 0)
                and s.get("replicas", 0) == replicas)
    return check


async def count_pods(client: Client) -> int:
    return len((await client.list(PODS, namespace="default", label_selector="app=bench"))["items"])


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        cp = ControlPlane(data_dir=Path(tmp) / "cp")
        await cp.start()
        client = Client(cp.url, ssl=cp.client_ssl())
        host = EmbeddedHost(cp.url, pki=cp.pki, nodes=NODES, seed=1, kubelet=KubeletConfig(stop_seconds=0.05))
        await host.start()
        mgr = ControllerManager(client, identity="bench", leader_election=False)
        for cls in default_controllers():
            mgr.add(cls)
        task = asyncio.create_task(mgr.run())
        await mgr.started.wait()
        try:
            await client.create(DEPLOYMENTS, deployment(N, "app:1"))
            t = await wait_for(client, rolled_out(N))
            print(json.dumps({"bench": "deployment_create_available", "replicas": N,
                              "nodes": NODES, "seconds": round(t, 3),
                              "pods_per_second": round(N / t, 1)}))
            await client.patch(DEPLOYMENTS, "bench", {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "app:2"}]}}}}, namespace="default")
            t = await wait_for(client, rolled_out(N))
            print(json.dumps({"bench": "deployment_rolling_update", "replicas": N,
                              "seconds": round(t, 3), "pods_per_second": round(N / t, 1)}))
            await client.patch(DEPLOYMENTS, "bench", {"spec": {"replicas": 0}},
                               namespace="default")
            t = await wait_for(client, rolled_out(0))
            t0 = time.perf_counter()
            while await count_pods(client):
                await asyncio.sleep(0.05)
            print(json.dumps({"bench": "deployment_scale_to_zero", "replicas": N,
                              "seconds_status": round(t, 3),
                              "seconds_pods_gone": round(t + time.perf_counter() - t0, 3)}))
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await host.stop()
            await client.close()
            await cp.stop()


if __name__ == "__main__":
    asyncio.run(main())
