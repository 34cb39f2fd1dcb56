"""The vcluster load test's shape (issue 19): Secrets created at a fixed total rate by concurrent
clients against `vkube serve` on SQLite; reports latency percentiles and errors. Each client
paces itself on a schedule (open loop), so a slow server shows as latency, not as a lower rate.

Usage: python bench/bench_load.py [COUNT] [QPS] [CLIENTS]   (default 5000 200 10)
"""

from __future__ import annotations

import asyncio
import base64
import json
import ssl
import sys
import time

import aiohttp
import orjson

from _serve import serve_api  # bench/ is the script's directory, first on sys.path

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
QPS = float(sys.argv[2]) if len(sys.argv) > 2 else 200.0
CLIENTS = int(sys.argv[3]) if len(sys.argv) > 3 else 10
PATH = "/api/v1/namespaces/default/secrets"


def secret(name: str) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                         "type": "Opaque", "data": {"password": base64.b64encode(name.encode() * 4).decode()}})


async def client(base: str, k: int, start: float, latencies: list[float], errors: list[str],
                 tls: ssl.SSLContext) -> None:
    per_client = COUNT // CLIENTS
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as s:
        for i in range(per_client):
            due = start + (i * CLIENTS + k) / QPS
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            body = secret(f"load-{k}-{i}")
            t = time.perf_counter()
            try:
                async with s.post(base + PATH, data=body, headers={"Content-Type": "application/json"}) as r:
                    await r.read()
                    if r.status != 201:
                        errors.append(f"{r.status}")
            except aiohttp.ClientError as exc:
                errors.append(type(exc).__name__)
            latencies.append(time.perf_counter() - t)


async def run(base: str, tls: ssl.SSLContext) -> None:
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter() + 0.2
    await asyncio.gather(*(client(base, k, start, latencies, errors, tls) for k in range(CLIENTS)))
    elapsed = time.perf_counter() - start
    s = sorted(latencies)

    def pct(p: float) -> float:
        return round(s[min(len(s) - 1, int(len(s) * p))] * 1000, 2)

    print(json.dumps({"bench": "load_secrets", "count": len(s), "target_qps": QPS, "clients": CLIENTS,
                      "achieved_qps": round(len(s) / elapsed, 1), "p50_ms": pct(0.5), "p99_ms": pct(0.99),
                      "max_ms": round(s[-1] * 1000, 2), "errors": len(errors)}), flush=True)


def main() -> None:
    with serve_api() as (base, tls):
        asyncio.run(run(base, tls))


if __name__ == "__main__":
    main()
