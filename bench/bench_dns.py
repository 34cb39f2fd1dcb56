"""Cluster DNS benchmark (issue 15): queries per second and latency of the built-in DNS server
for a cluster of N services, and the time from a Service change to the DNS answer showing it.

The control plane and the DNS server run in this process (as in a virtual cluster's control
plane); the querying client runs in a separate process so it does not share the event loop.
Prints JSON lines. Usage: python bench/bench_dns.py [SERVICES] [QUERIES]   (default 200 5000)
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVICES = int(sys.argv[1]) if len(sys.argv) > 1 else 200
QUERIES = int(sys.argv[2]) if len(sys.argv) > 2 else 5000

CLIENT = r"""
import json, sys, time
import dns.message, dns.query
host, port, n, services = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
names = [f"svc-{i}.default.svc.cluster.local." for i in range(services)]
lat = []
t0 = time.perf_counter()
for i in range(n):
    q = dns.message.make_query(names[i % services], "A")
    t = time.perf_counter()
    r = dns.query.udp(q, host, port=port, timeout=5)
    lat.append(time.perf_counter() - t)
    assert r.answer, r
total = time.perf_counter() - t0
lat.sort()
print(json.dumps({"n": n, "qps": round(n / total, 1), "p50_ms": round(lat[n // 2] * 1000, 3),
                  "p99_ms": round(lat[int(n * 0.99)] * 1000, 3)}))
"""


async def main() -> None:
    import dns.asyncquery
    import dns.message

    from vkube.apiserver.server import ControlPlane
    from vkube.client import Client
    from vkube.client.resources import SERVICES as SVC
    from vkube.dns.server import ClusterDNS

    with tempfile.TemporaryDirectory() as tmp:
        cp = ControlPlane(data_dir=Path(tmp) / "cp")
        await cp.start()
        client = Client(cp.url, ssl=cp.client_ssl())
        srv = ClusterDNS(client)
        started = asyncio.Event()
        task = asyncio.create_task(srv.run(started.set))
        await started.wait()
        try:
            for i in range(SERVICES):
                await client.create(SVC, {"metadata": {"name": f"svc-{i}"},
                                          "spec": {"ports": [{"name": "http", "port": 80}]}},
                                    namespace="default")
            # change → answer: create a service, poll DNS until it answers
            changes = []
            for i in range(20):
                name = f"late-{i}"
                t = time.perf_counter()
                await client.create(SVC, {"metadata": {"name": name},
                                          "spec": {"ports": [{"port": 80}]}}, namespace="default")
                q = dns.message.make_query(f"{name}.default.svc.cluster.local.", "A")
                while not (await dns.asyncquery.udp(q, srv.host, port=srv.port, timeout=5)).answer:
                    await asyncio.sleep(0.001)
                changes.append(time.perf_counter() - t)
            changes.sort()
            print(json.dumps({"bench": "dns_change_to_answer", "services": SERVICES,
                              "p50_ms": round(changes[len(changes) // 2] * 1000, 2),
                              "max_ms": round(changes[-1] * 1000, 2)}), flush=True)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-c", CLIENT, srv.host, str(srv.port), str(QUERIES), str(SERVICES),
                stdout=subprocess.PIPE)
            out, _ = await proc.communicate()
            print(json.dumps({"bench": "dns_udp_queries", "services": SERVICES,
                              **json.loads(out)}), flush=True)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await client.close()
            await cp.stop()


if __name__ == "__main__":
    asyncio.run(main())
