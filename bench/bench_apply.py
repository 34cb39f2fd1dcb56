"""Server-side apply against a plain update, through the API (issue 19): a 40-container pod
updated N times with PUT (the client sends the whole object back, as `kubectl replace` does)
and N times with `PATCH application/apply-patch+yaml` (as `kubectl apply --server-side`), from a
separate client process against `vkube serve`. Both change every container's image, so both
pay validation, managedFields and an fsync'd commit. Prints JSON lines with the ratio.

Usage: python bench/bench_apply.py [N]   (default 200)
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
import time

import aiohttp
import orjson

from _serve import serve_api  # bench/ is the script's directory, first on sys.path

N = int(sys.argv[1]) if len(sys.argv) > 1 else 200
POD = "/api/v1/namespaces/default/pods/big"


def pod(image: str) -> dict:
    containers = [
        {"name": f"c{i}", "image": f"{image}:{i}",
         "ports": [{"containerPort": 8000 + i, "protocol": "TCP"}],
         "env": [{"name": f"E{j}", "value": str(j)} for j in range(5)],
         "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}
        for i in range(40)
    ]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "big", "namespace": "default", "labels": {"app": "big"}},
            "spec": {"containers": containers, "restartPolicy": "Always"}}


async def run(base: str, tls: ssl.SSLContext) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as s:
        async with s.post(base + "/api/v1/namespaces/default/pods", data=orjson.dumps(pod("a")),
                          headers={"Content-Type": "application/json"}) as r:
            assert r.status == 201, await r.text()
        # PUT: read-modify-write, as an Update-operation client does
        t0 = time.perf_counter()
        for i in range(N):
            async with s.get(base + POD) as r:
                live = orjson.loads(await r.read())
            for c in live["spec"]["containers"]:
                c["image"] = f"img-{i}:{c['name']}"
            async with s.put(base + POD, data=orjson.dumps(live),
                             headers={"Content-Type": "application/json"}) as r:
                assert r.status == 200, await r.text()
                await r.read()
        put = N / (time.perf_counter() - t0)
        t0 = time.perf_counter()
        for i in range(N):
            async with s.patch(base + POD, params={"fieldManager": "bench", "force": "true"},
                               data=orjson.dumps(pod(f"apply-{i}")),
                               headers={"Content-Type": "application/apply-patch+yaml"}) as r:
                assert r.status == 200, await r.text()
                await r.read()
        ssa = N / (time.perf_counter() - t0)
    print(json.dumps({"bench": "update_40_containers", "n": N, "ops_per_s": round(put, 1)}))
    print(json.dumps({"bench": "apply_40_containers", "n": N, "ops_per_s": round(ssa, 1),
                      "ratio_to_update": round(ssa / put, 3)}))


def main() -> None:
    with serve_api() as (base, tls):
        asyncio.run(run(base, tls))


if __name__ == "__main__":
    main()
