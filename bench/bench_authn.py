"""Cost of HTTPS + authentication per request (issue 12), as ratios against the same API server
without them.

A server process runs one ControlPlane (HTTPS, x509 and service-account token authentication)
and, on a second port, the *same* APIServer code on the same store built without an
authenticator and served over plain HTTP. The bench process (the client) then runs one loop of
sequential GETs of one ConfigMap per mode:

- ``plain``: HTTP, no authentication (the baseline);
- ``tls_x509``: HTTPS with the admin's client certificate (keep-alive);
- ``tls_token``: HTTPS with a service-account JWT (ES256; each request re-reads the bound
  service account);
- ``tls_x509_new_conn`` / ``plain_new_conn``: a new connection per request (full handshake).

Prints JSON lines. Usage: python bench/bench_authn.py [N]   (default N=2000)
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

N = int(sys.argv[1]) if len(sys.argv) > 1 else 2000

SERVER = r"""
import asyncio, sys
from aiohttp import web
from vkube.apiserver.server import APIServer, ControlPlane

async def main():
    cp = ControlPlane(data_dir=sys.argv[1])
    await cp.start()
    bare = APIServer(cp.ctx)  # same code and store, no authenticator
    runner = web.AppRunner(bare.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    print(cp.url, f"http://127.0.0.1:{port}", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def loop(url: str, n: int, *, ssl: object = None, headers: dict[str, str] | None = None,
               new_conn: bool = False) -> list[float]:
    samples: list[float] = []
    connector = aiohttp.TCPConnector(ssl=ssl if ssl is not None else False, force_close=new_conn)
    async with aiohttp.ClientSession(connector=connector, headers=headers or {}) as s:
        for _ in range(n):
            t = time.perf_counter()
            async with s.get(url) as r:
                await r.read()
                if r.status != 200:
                    raise RuntimeError(f"GET {url}: {r.status} {await r.text()}")
            samples.append(time.perf_counter() - t)
    return samples


def emit(mode: str, samples: list[float], base: float | None) -> float:
    med = statistics.median(samples)
    out = {"bench": "authn", "mode": mode, "n": len(samples), "p50_ms": round(med * 1000, 3),
           "ops_per_s": round(len(samples) / sum(samples), 1)}
    if base:
        out["ratio_to_plain"] = round(med / base, 2)
    print(json.dumps(out), flush=True)
    return med


async def run(https: str, http: str, data_dir: str) -> None:
    import yaml

    from vkube.client.kubeconfig import parse_kubeconfig, ssl_context
    from vkube.pki import client_context

    admin = ssl_context(parse_kubeconfig(yaml.safe_load(Path(data_dir, "kubeconfig").read_text())))
    ca_only = client_context(Path(data_dir, "pki", "ca.crt").read_bytes())
    path = "/api/v1/namespaces/default/configmaps/bench"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=admin)) as s:
        async with s.post(https + "/api/v1/namespaces/default/configmaps",
                          json={"metadata": {"name": "bench"}, "data": {"k": "v"}}) as r:
            assert r.status == 201, await r.text()
        async with s.post(https + "/api/v1/namespaces/default/serviceaccounts",
                          json={"metadata": {"name": "bench"}}) as r:
            assert r.status == 201, await r.text()
        async with s.post(https + "/api/v1/namespaces/default/serviceaccounts/bench/token",
                          json={"spec": {}}) as r:
            token = (await r.json())["status"]["token"]
    await loop(http + path, 200)  # warm up both
    await loop(https + path, 200, ssl=admin)
    base = emit("plain", await loop(http + path, N), None)
    emit("tls_x509", await loop(https + path, N, ssl=admin), base)
    emit("tls_token", await loop(https + path, N, ssl=ca_only, headers={"Authorization": f"Bearer {token}"}), base)
    m = max(50, N // 10)
    base_new = emit("plain_new_conn", await loop(http + path, m, new_conn=True), None)
    emit("tls_x509_new_conn", await loop(https + path, m, ssl=admin, new_conn=True), base_new)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, "-c", SERVER, tmp], stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout is not None
            https, http = proc.stdout.readline().split()
            asyncio.run(run(https, http, tmp))
        finally:
            proc.terminate()
            proc.wait()


if __name__ == "__main__":
    main()
