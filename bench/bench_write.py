"""Write path against the framework's ceiling (issue 19): sequential keep-alive create, update
(PUT), patch and get of a ConfigMap and create, update and patch of a 40-container pod through
`vkube serve`, and the same client loop against a bare aiohttp handler that reads a body of the
same size and answers JSON,
in interleaved rounds so that load on a shared machine hits both alike.
Every write is validated, admitted, tracked in managedFields and committed (fsync'd) to SQLite.
Prints JSON lines; ``ratio_to_framework`` is ops/s over the bare handler's ops/s, and
``cpu_ratio_to_framework`` the bare handler's CPU per op over vkube's (steadier on a loaded
machine, where the rates move with everyone else's work).

Both serve HTTPS (the bare handler with a certificate from the cluster's CA).

Usage: python bench/bench_write.py [N]   (default 300; the pod cases run N/3)
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import aiohttp
import orjson
from bench_api import admin_tls, wait_readyz

N = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 300
NS = "/api/v1/namespaces/default"
#: the bare handler serves HTTPS like vkube (a certificate from the cluster's CA, so one client
#: context trusts both): the ceiling then includes the same TLS work
HELLO = """
import ssl, sys, tempfile
from pathlib import Path
from aiohttp import web
from vkube.pki.certs import CertificateAuthority
pki = Path(sys.argv[2])
ca = CertificateAuthority((pki / "ca.crt").read_bytes(), (pki / "ca.key").read_bytes())
pair = ca.issue_serving(["127.0.0.1", "localhost"])
tmp = Path(tempfile.mkdtemp())
(tmp / "c").write_bytes(pair.cert_pem)
(tmp / "k").write_bytes(pair.key_pem)
tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(tmp / "c", tmp / "k")
async def h(request):
    await request.read()
    return web.json_response({"kind": "Status"})
app = web.Application()
app.router.add_route("*", "/{tail:.*}", h)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), ssl_context=tls, print=None, access_log=None)
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
            # no token volume injected, so a PUT of this same body changes only the images
            "spec": {"containers": containers, "restartPolicy": "Always", "automountServiceAccountToken": False}}


Case = tuple[str, str, str, Callable[[int], bytes], str, int]  # name, method, path(i), body(i), ctype, n


def cases(n: int) -> list[Case]:
    p = max(10, n // 3)
    return [
        ("configmap_create", "POST", NS + "/configmaps", lambda i: orjson.dumps(configmap(f"cm-{i}", "a")), JSON, n),
        ("configmap_update", "PUT", NS + "/configmaps/cm-{i}", lambda i: orjson.dumps(configmap(f"cm-{i}", "b")), JSON, n),
        ("configmap_patch", "PATCH", NS + "/configmaps/cm-{i}",
         lambda i: orjson.dumps({"data": {"k": f"patched-{i}"}}), MERGE, n),
        ("configmap_get", "GET", NS + "/configmaps/cm-{i}", lambda i: b"", JSON, n),
        ("pod40_create", "POST", NS + "/pods", lambda i: orjson.dumps(pod(f"big-{i}", "a")), JSON, p),
        ("pod40_update", "PUT", NS + "/pods/big-{i}", lambda i: orjson.dumps(pod(f"big-{i}", "b")), JSON, p),
        ("pod40_patch", "PATCH", NS + "/pods/big-{i}",
         lambda i: orjson.dumps({"spec": {"containers": [{"name": "c7", "image": f"p:{i}"}]}}), SMP, p),
    ]


ROUNDS = 5  # vkube and the bare handler take turns, so load on a shared machine hits both alike


async def timed_chunk(s: aiohttp.ClientSession, base: str, case: Case, payloads: list[bytes], indices: range,
                      hello: bool) -> float:
    name, method, path, _, ctype, _ = case
    t0 = time.perf_counter()
    for i in indices:
        url = base + (f"/x{i}" if hello else path.format(i=i))
        async with s.request(method, url, data=payloads[i], headers={"Content-Type": ctype}) as r:
            await r.read()
            if r.status >= 300:
                raise RuntimeError(f"{name}: {method} {url}: {r.status} {await r.text()}")
    return time.perf_counter() - t0


async def side_by_side(api: str, hello: str, case: Case, tls: ssl.SSLContext) -> tuple[float, float]:
    """(vkube ops/s, bare handler ops/s) over the same interleaved rounds."""
    n = case[5]
    payloads = [case[3](i) for i in range(n)]
    spent = {False: 0.0, True: 0.0}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as s:
        step = -(-n // ROUNDS)
        for start in range(0, n, step):
            chunk = range(start, min(n, start + step))
            for is_hello, base in ((False, api), (True, hello)):
                spent[is_hello] += await timed_chunk(s, base, case, payloads, chunk, is_hello)
    return n / spent[False], n / spent[True]


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used (Linux): per-op CPU is what a loaded machine
    leaves comparable, where rates move with everyone else's load."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_up(url: str, tls: ssl.SSLContext | None = None) -> None:
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(url, timeout=1, context=tls).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def main() -> None:
    todo = cases(N)
    with tempfile.TemporaryDirectory() as tmp:
        port, hport = free_port(), free_port()
        proc = subprocess.Popen([sys.executable, "-m", "vkube", "serve", "--data-dir", tmp, "--port", str(port),
                                 "--no-controllers"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        hello = None
        try:
            wait_readyz(f"https://127.0.0.1:{port}", tmp)
            hello = subprocess.Popen([sys.executable, "-c", HELLO, str(hport), str(Path(tmp) / "pki")])
            wait_up(f"https://127.0.0.1:{hport}/", admin_tls(tmp))
            for case in todo:
                cpu0 = cpu_seconds(proc.pid), cpu_seconds(hello.pid)
                rate, ceiling = asyncio.run(side_by_side(f"https://127.0.0.1:{port}", f"https://127.0.0.1:{hport}",
                                                         case, admin_tls(tmp)))
                cpu = cpu_seconds(proc.pid) - cpu0[0], cpu_seconds(hello.pid) - cpu0[1]
                print(json.dumps({"bench": "write", "case": case[0], "n": case[5], "ops_per_s": round(rate, 1),
                                  "framework_ops_per_s": round(ceiling, 1),
                                  "ratio_to_framework": round(rate / ceiling, 3),
                                  "cpu_ms_per_op": round(cpu[0] / case[5] * 1000, 2),
                                  "framework_cpu_ms_per_op": round(cpu[1] / case[5] * 1000, 2),
                                  "cpu_ratio_to_framework": round(cpu[1] / cpu[0], 3) if cpu[0] else None}),
                      flush=True)
        finally:
            for p in (proc, hello):
                if p is not None:
                    p.terminate()
                    p.wait()


if __name__ == "__main__":
    main()
