"""Controller benchmark (issue 5): a control plane (SQLite) and the embedded host in this
process, the controller manager with every built-in controller in a child process so its CPU
time can be measured on its own (from /proc). Reports

- how long a Deployment of N replicas takes to become fully available,
- how long a rolling update of it (25% surge / 25% unavailable) takes,
- the controller manager's CPU at steady state per 1,000 pods (idle for IDLE seconds), with
  the API requests served meanwhile,

plus the controller manager's CPU spent during each phase. Prints JSON lines.

Usage: python bench/bench_controllers.py [N] [NODES] [IDLE]   (default 1000, 20, 10)
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from bench_deployment import deployment, rolled_out, wait_for
from prometheus_client.parser import text_string_to_metric_families

from vkube.apiserver.server import ControlPlane
from vkube.client import Client
from vkube.client.resources import DEPLOYMENTS, PODS
from vkube.host.nodes import NodeTemplate
from vkube.host.runner import EmbeddedHost
from vkube.host.stages import KubeletConfig

N = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
NODES = int(sys.argv[2]) if len(sys.argv) > 2 else 20
IDLE = float(sys.argv[3]) if len(sys.argv) > 3 else 10.0
TIMEOUT = 240.0  # per phase: the benchmark must stay bounded
WRITES = ("create", "update", "patch", "delete", "deletecollection")

CHILD = """
import asyncio, logging, sys
from vkube.client import Client
from vkube.controllers.registry import default_controllers
from vkube.controllers.runtime import ControllerManager

async def main(url):
    logging.basicConfig(level=logging.WARNING)
    client = Client(url, user_agent="vkube-controller-manager")
    mgr = ControllerManager(client, identity="bench", leader_election=False)
    for cls in default_controllers():
        mgr.add(cls)
    task = asyncio.create_task(mgr.run())
    await mgr.started.wait()
    print("started", flush=True)
    await task

asyncio.run(main(sys.argv[1]))
"""


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` from /proc (clock ticks → seconds)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def start_controllers(url: str) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, url, stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    if line.strip() != b"started":
        raise RuntimeError(f"controller manager did not start: {line!r}")
    return proc


async def all_pods(client: Client) -> int:
    """Pods of the benchmark, terminating ones included."""
    return len((await client.list(PODS, namespace="default", label_selector="app=bench"))["items"])


async def request_counts(url: str) -> dict[str, float]:
    """The API server's request counters by verb and resource, from its /metrics."""
    async with aiohttp.ClientSession() as session, session.get(url + "/metrics") as resp:
        text = await resp.text()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "apiserver_request_total":
                lb = s.labels
                key = f"{lb['verb']} {lb['resource']}" + (
                    f"/{lb['subresource']}" if lb["subresource"] else "")
                out[key] = out.get(key, 0) + s.value
    return out


async def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        cp = ControlPlane(data_dir=Path(tmp) / "cp")
        await cp.start()
        client = Client(cp.url, ssl=cp.client_ssl())
        pods_per_node = max(110, -(-N * 3 // (2 * NODES)))  # room for the surge
        host = EmbeddedHost(cp.url, pki=cp.pki, nodes=NODES, seed=1,
                            template=NodeTemplate(pods=pods_per_node, cpu="64", memory="256Gi"),
                            kubelet=KubeletConfig(stop_seconds=0.05))
        await host.start()
        proc = await start_controllers(cp.url)
        try:
            c0 = cpu_seconds(proc.pid)
            await client.create(DEPLOYMENTS, deployment(N, "app:1"))
            t = await wait_for(client, rolled_out(N), timeout=TIMEOUT)
            c1 = cpu_seconds(proc.pid)
            print(json.dumps({"bench": "controllers_deployment_available", "replicas": N,
                              "nodes": NODES, "seconds": round(t, 2),
                              "pods_per_second": round(N / t, 1),
                              "controller_cpu_seconds": round(c1 - c0, 2)}), flush=True)

            await client.patch(DEPLOYMENTS, "bench", {"spec": {"template": {"spec": {
                "containers": [{"name": "c", "image": "app:2"}]}}}}, namespace="default")
            t = await wait_for(client, rolled_out(N), timeout=TIMEOUT)
            c2 = cpu_seconds(proc.pid)
            print(json.dumps({"bench": "controllers_rolling_update", "replicas": N,
                              "seconds": round(t, 2), "pods_per_second": round(N / t, 1),
                              "controller_cpu_seconds": round(c2 - c1, 2)}), flush=True)

            t0 = time.perf_counter()  # old pods finish terminating before "steady"
            while await all_pods(client) > N and time.perf_counter() - t0 < TIMEOUT:
                await asyncio.sleep(0.2)
            # Writes trail the rollout (events, mostly): wait until a second passes with no
            # write but lease renewals — that is the steady state — and report the wait.
            t1, busy = time.perf_counter(), {}
            prev = await request_counts(cp.url)
            while time.perf_counter() - t1 < TIMEOUT:
                await asyncio.sleep(1.0)
                cur = await request_counts(cp.url)
                busy = {k: v - prev.get(k, 0) for k, v in cur.items()
                        if v != prev.get(k, 0) and k.split()[0] in WRITES
                        and not k.endswith("leases")}
                prev = cur
                if not busy:
                    break
            print(json.dumps({"bench": "controllers_writes_settle_after_rollout",
                              "seconds": round(time.perf_counter() - t1, 1),
                              "last_second_writes": {k: int(v) for k, v in busy.items()}}),
                  flush=True)
            pods = await all_pods(client)
            r3 = await request_counts(cp.url)
            c3, w3, s3 = cpu_seconds(proc.pid), time.perf_counter(), time.process_time()
            await asyncio.sleep(IDLE)
            c4, w4, s4 = cpu_seconds(proc.pid), time.perf_counter(), time.process_time()
            r4 = await request_counts(cp.url)
            share = (c4 - c3) / (w4 - w3)
            busiest = sorted(((v - r3.get(k, 0), k) for k, v in r4.items()), reverse=True)[:4]
            print(json.dumps({"bench": "controllers_steady_state_cpu", "pods": pods,
                              "idle_seconds": round(w4 - w3, 1),
                              "controller_cpu_percent": round(100 * share, 3),
                              "controller_cpu_percent_per_1000_pods":
                                  round(100 * share * 1000 / max(pods, 1), 3),
                              "apiserver_and_host_cpu_percent":
                                  round(100 * (s4 - s3) / (w4 - w3), 3),
                              "idle_requests": {k: int(n) for n, k in busiest if n}}),
                  flush=True)
        finally:
            proc.terminate()
            await proc.wait()
            await host.stop()
            await client.close()
            await cp.stop()


if __name__ == "__main__":
    asyncio.run(main())
