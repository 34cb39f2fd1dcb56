"""Write path against the framework's ceiling (issue 19): sequential keep-alive create, update
(PUT) and patch of a ConfigMap and of a 40-container pod through `vkube serve`, then the same
client loop against a bare aiohttp handler that reads a body of the same size and answers JSON.
Every write is validated, admitted, tracked in managedFields and committed (fsync'd) to SQLite.
Prints JSON lines; ``ratio_to_framework`` is ops/s over the bare handler's ops/s.

Usage: python bench/bench_write.py [N]   (default 300; the pod cases run N/3)
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable

import aiohttp
import orjson

N = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 300
NS = "/api/v1/namespaces/default"
HELLO = """
import sys
from aiohttp import web
async def h(request):
    await request.read()
    return web.json_response({"kind": "Status"})
app = web.Application()
app.router.add_route("*", "/{tail:.*}", h)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""
JSON = "application/json"
MERGE = "application/merge-patch+json"
SMP = "application/strategic-merge-patch+json"


def configmap(name: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": "bench"}},
            "data": {"k": value * 32, "other": "x" * 64}}


def pod(name: str, image: str) -> dict:
    containers = [
        {"name": f"c{i}", "image": f"{image}:{i}",
         "ports": [{"containerPort": 8000 + i, "protocol": "TCP"}],
         "env": [{"name": f"E{j}", "value": str(j)} for j in range(5)],
         "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}}}
        for i in range(40)
    ]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "big"}},
            "spec": {"containers": containers, "restartPolicy": "Always"}}


Case = tuple[str, str, str, Callable[[int], bytes], str, int]  # name, method, path(i), body(i), ctype, n


def cases(n: int) -> list[Case]:
    p = max(10, n // 3)
    return [
        ("configmap_create", "POST", NS + "/configmaps", lambda i: orjson.dumps(configmap(f"cm-{i}", "a")), JSON, n),
        ("configmap_update", "PUT", NS + "/configmaps/cm-{i}", lambda i: orjson.dumps(configmap(f"cm-{i}", "b")), JSON, n),
        ("configmap_patch", "PATCH", NS + "/configmaps/cm-{i}",
         lambda i: orjson.dumps({"data": {"k": f"patched-{i}"}}), MERGE, n),
        ("pod40_create", "POST", NS + "/pods", lambda i: orjson.dumps(pod(f"big-{i}", "a")), JSON, p),
        ("pod40_update", "PUT", NS + "/pods/big-{i}", lambda i: orjson.dumps(pod(f"big-{i}", "b")), JSON, p),
        ("pod40_patch", "PATCH", NS + "/pods/big-{i}",
         lambda i: orjson.dumps({"spec": {"containers": [{"name": "c7", "image": f"p:{i}"}]}}), SMP, p),
    ]


async def loop(base: str, case: Case, *, hello: bool = False) -> float:
    name, method, path, body, ctype, n = case
    payloads = [body(i) for i in range(n)]
    async with aiohttp.ClientSession() as s:
        t0 = time.perf_counter()
        for i in range(n):
            url = base + (f"/x{i}" if hello else path.format(i=i))
            async with s.request(method, url, data=payloads[i], headers={"Content-Type": ctype}) as r:
                await r.read()
                if r.status >= 300:
                    raise RuntimeError(f"{name}: {method} {url}: {r.status} {await r.text()}")
        return n / (time.perf_counter() - t0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_up(url: str) -> None:
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def main() -> None:
    todo = cases(N)
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "vkube", "serve", "--data-dir", tmp, "--port", str(port),
                                 "--no-controllers"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_up(f"http://127.0.0.1:{port}/readyz")
            for case in todo:
                rates[case[0]] = asyncio.run(loop(f"http://127.0.0.1:{port}", case))
        finally:
            proc.terminate()
            proc.wait()
    hport = free_port()
    hello = subprocess.Popen([sys.executable, "-c", HELLO, str(hport)])
    ceiling: dict[str, float] = {}
    try:
        wait_up(f"http://127.0.0.1:{hport}/")
        for case in todo:
            ceiling[case[0]] = asyncio.run(loop(f"http://127.0.0.1:{hport}", case, hello=True))
    finally:
        hello.terminate()
        hello.wait()
    for case in todo:
        name = case[0]
        print(json.dumps({"bench": "write", "case": name, "n": case[5], "ops_per_s": round(rates[name], 1),
                          "framework_ops_per_s": round(ceiling[name], 1),
                          "ratio_to_framework": round(rates[name] / ceiling[name], 3)}), flush=True)


if __name__ == "__main__":
    main()
