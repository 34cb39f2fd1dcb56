"""API server benchmark (issue 2): sequential create/get/list and watch delivery over HTTP from a
separate process, idle RSS, start-up time to /readyz, and the same client loop against a bare
aiohttp "hello world" handler, so the API's overhead shows as a ratio to the framework ceiling.

Prints JSON lines. Usage: python bench/bench_api.py [N]   (default N=5000)
       python bench/bench_api.py --startup [ROUNDS]   (only start-up to /readyz, median)
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
from typing import Any

import aiohttp
import orjson

N = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 5000
HELLO = """
import sys
from aiohttp import web
async def h(request):
    if request.method == "POST":
        await request.read()
    return web.json_response({"kind": "Status"})
app = web.Application()
app.router.add_route("*", "/{tail:.*}", h)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p))] * 1000


def report(name: str, samples: list[float], total: float) -> None:
    print(json.dumps({"bench": name, "n": len(samples), "ops_per_s": round(len(samples) / total, 1),
                      "p50_ms": round(pct(samples, 0.5), 3), "p99_ms": round(pct(samples, 0.99), 3)}), flush=True)


async def timed(session: aiohttp.ClientSession, method: str, url: str, body: bytes | None = None) -> float:
    t = time.perf_counter()
    async with session.request(method, url, data=body, headers={"Content-Type": "application/json"}) as r:
        await r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {url}: {r.status}")
    return time.perf_counter() - t


def admin_tls(data_dir: str) -> Any:
    """The admin's TLS context from the kubeconfig `vkube serve` wrote (CA + client cert)."""
    import yaml

    from vkube.client.kubeconfig import parse_kubeconfig, ssl_context

    doc = yaml.safe_load(Path(data_dir, "kubeconfig").read_text())
    return ssl_context(parse_kubeconfig(doc))


def wait_readyz(base: str, data_dir: str) -> None:
    """Poll /readyz (anonymous is allowed there) once the cluster CA exists."""
    import ssl
    import urllib.request

    while True:
        try:
            ctx = ssl.create_default_context(cafile=str(Path(data_dir, "pki", "ca.crt")))
            if urllib.request.urlopen(base + "/readyz", timeout=1, context=ctx).read() == b"ok":
                return
        except (OSError, ssl.SSLError):
            time.sleep(0.005)


async def run_api(base: str, prefix: str, tls: Any) -> None:
    cm = "/api/v1/namespaces/default/configmaps"
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as s:
        # watch delivery: a watcher from a separate connection, timestamps compared on arrival
        sent: dict[str, float] = {}
        delivered: list[float] = []
        done = asyncio.Event()

        async def watcher() -> None:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as ws:
                async with ws.get(base + cm, params={"watch": "1", "resourceVersion": "1"}) as r:
                    async for line in r.content:
                        ev = orjson.loads(line)
                        name = ev["object"]["metadata"]["name"]
                        if ev["type"] == "ADDED" and name in sent:
                            delivered.append(time.perf_counter() - sent[name])
                            if len(delivered) == N:
                                done.set()
                                return

        wt = asyncio.create_task(watcher())
        await asyncio.sleep(0.5)
        samples = []
        t0 = time.perf_counter()
        for i in range(N):
            name = f"{prefix}{i}"
            body = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v" * 32}})
            sent[name] = time.perf_counter()
            samples.append(await timed(s, "POST", base + cm, body))
        report("create", samples, time.perf_counter() - t0)
        await asyncio.wait_for(done.wait(), 120)
        report("watch_delivery", delivered, time.perf_counter() - t0)
        wt.cancel()
        samples = []
        t0 = time.perf_counter()
        for i in range(N):
            samples.append(await timed(s, "GET", f"{base}{cm}/{prefix}{i}"))
        report("get", samples, time.perf_counter() - t0)
        samples = []
        t0 = time.perf_counter()
        for _ in range(20):
            samples.append(await timed(s, "GET", f"{base}{cm}?limit=500"))
        report("list_500", samples, time.perf_counter() - t0)


async def run_hello(base: str) -> None:
    async with aiohttp.ClientSession() as s:
        for name, method in (("hello_post", "POST"), ("hello_get", "GET")):
            samples = []
            t0 = time.perf_counter()
            for i in range(N):
                samples.append(await timed(s, method, f"{base}/x{i}", b'{"a":1}' if method == "POST" else None))
            report(name, samples, time.perf_counter() - t0)


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def bench_startup(rounds: int) -> None:
    """Spawn `vkube serve` on a fresh data dir until /readyz answers ok, ``rounds`` times."""
    import socket

    times = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            t0 = time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "vkube", "serve", "--data-dir", tmp,
                                     "--port", str(port), "--no-controllers"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_readyz(f"https://127.0.0.1:{port}", tmp)
                times.append(time.perf_counter() - t0)
            finally:
                proc.terminate()
                proc.wait()
    print(json.dumps({"bench": "startup_to_readyz", "rounds": rounds,
                      "median_seconds": round(statistics.median(times), 3),
                      "all": [round(t, 3) for t in times]}), flush=True)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--startup":
        bench_startup(int(sys.argv[2]) if len(sys.argv) > 2 else 5)
        return
    with tempfile.TemporaryDirectory() as tmp:
        import socket
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "vkube", "serve", "--data-dir", tmp, "--port", str(port), "--no-controllers"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"https://127.0.0.1:{port}"
        import urllib.request
        wait_readyz(base, tmp)
        startup = time.perf_counter() - t0
        time.sleep(1)
        print(json.dumps({"bench": "startup_to_readyz", "seconds": round(startup, 3),
                          "idle_rss_mb": round(rss_kb(proc.pid) / 1024, 1)}), flush=True)
        try:
            asyncio.run(run_api(base, "cm-", admin_tls(tmp)))
            print(json.dumps({"bench": "rss_after_load", "rss_mb": round(rss_kb(proc.pid) / 1024, 1),
                              "objects": N}), flush=True)
        finally:
            proc.terminate()
            proc.wait()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        hport = sock.getsockname()[1]
        sock.close()
        hello = subprocess.Popen([sys.executable, "-c", HELLO, str(hport)])
        try:
            while True:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{hport}/", timeout=1)
                    break
                except OSError:
                    time.sleep(0.01)
            asyncio.run(run_hello(f"http://127.0.0.1:{hport}"))
        finally:
            hello.terminate()
            hello.wait()


if __name__ == "__main__":
    main()
