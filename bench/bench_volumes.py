"""Storage on the embedded host (issue 11): time from "PVC + pod created" to "claim Bound and
pod Running" for N pairs on the default WaitForFirstConsumer class, i.e. scheduler volume
binding + selected-node + provisioning + binding + pod start, all through the API.

Control plane and embedded host run in this process. Prints JSON lines.
Usage: python bench/bench_volumes.py [PAIRS]   (default 50)
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

PAIRS = int(sys.argv[1]) if len(sys.argv) > 1 else 50


async def main() -> None:
    from vkube.apiserver.server import ControlPlane
    from vkube.client import Client
    from vkube.client.resources import PODS, PVCS
    from vkube.controllers.informer import Informer
    from vkube.host.runner import EmbeddedHost

    with tempfile.TemporaryDirectory() as d:
        cp = ControlPlane(data_dir=Path(d) / "cp")
        await cp.start()
        host = EmbeddedHost(cp.url, pki=cp.pki, nodes=3, seed=1)
        await host.start()
        client = Client(cp.url, ssl=cp.client_ssl())
        pods, pvcs = Informer(client, PODS), Informer(client, PVCS)
        tasks = [asyncio.create_task(pods.run()), asyncio.create_task(pvcs.run())]
        await pods.wait_synced()
        await pvcs.wait_synced()
        started: dict[str, float] = {}
        done: dict[str, float] = {}

        def check(_: str, __: dict, ___: dict | None) -> None:
            for name, t0 in started.items():
                if name in done:
                    continue
                pod, pvc = pods.get(name, "default"), pvcs.get(name, "default")
                if pod and pvc and (pod.get("status") or {}).get("phase") == "Running" and \
                        (pvc.get("status") or {}).get("phase") == "Bound":
                    done[name] = time.perf_counter() - t0
        pods.add_handler(check)
        pvcs.add_handler(check)
        t_all = time.perf_counter()
        for i in range(PAIRS):
            name = f"app-{i}"
            started[name] = time.perf_counter()
            await client.create(PVCS, {"metadata": {"name": name}, "spec": {
                "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
                namespace="default")
            await client.create(PODS, {"metadata": {"name": name}, "spec": {
                "containers": [{"name": "c", "image": "nginx"}],
                "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": name}}]}},
                namespace="default")
        while len(done) < PAIRS:
            await asyncio.sleep(0.05)
            if time.perf_counter() - t_all > 600:
                raise SystemExit(f"only {len(done)}/{PAIRS} bound and running after 600 s")
        total = time.perf_counter() - t_all
        lat = sorted(done.values())
        print(json.dumps({"bench": "volumes_wffc_bind_and_run", "pairs": PAIRS,
                          "total_s": round(total, 2), "pairs_per_s": round(PAIRS / total, 1),
                          "p50_s": round(lat[len(lat) // 2], 3),
                          "p99_s": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3)}))
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await client.close()
        await host.stop()
        await cp.stop()


if __name__ == "__main__":
    asyncio.run(main())
