"""The vcluster load test's shape (issue 19): Secrets created at a fixed total rate by concurrent
clients against `vkube serve` on SQLite; reports latency percentiles and errors. Each client
paces itself on a schedule (open loop), so a slow server shows as latency, not as a lower rate.

With ``--bare`` the same clients then run against a bare aiohttp handler over the same TLS, and
the disk's fdatasync latency is sampled in the data directory: on a shared machine the p99
depends on the neighbours' load as much as on vkube, and every acknowledged write waits for at
least one fsync, so these two lines say what the machine allowed during the run.

Usage: python bench/bench_load.py [COUNT] [QPS] [CLIENTS] [--bare]   (default 5000 200 10)
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

# bench/ is the script's directory, first on sys.path
from _serve import admin_tls, free_port, wait_ready
from bench_write import HELLO, wait_up

ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
BARE = "--bare" in sys.argv[1:]
COUNT = int(ARGS[0]) if len(ARGS) > 0 else 5000
QPS = float(ARGS[1]) if len(ARGS) > 1 else 200.0
CLIENTS = int(ARGS[2]) if len(ARGS) > 2 else 10
PATH = "/api/v1/namespaces/default/secrets"


def secret(name: str) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                         "type": "Opaque", "data": {"password": base64.b64encode(name.encode() * 4).decode()}})


async def client(base: str, k: int, start: float, latencies: list[float], errors: list[str],
                 tls: ssl.SSLContext, expect: int) -> None:
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
                    if r.status != expect:
                        errors.append(f"{r.status}")
            except aiohttp.ClientError as exc:
                errors.append(type(exc).__name__)
            latencies.append(time.perf_counter() - t)


async def run(base: str, tls: ssl.SSLContext, name: str = "load_secrets", expect: int = 201) -> None:
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter() + 0.2
    await asyncio.gather(*(client(base, k, start, latencies, errors, tls, expect) for k in range(CLIENTS)))
    elapsed = time.perf_counter() - start
    s = sorted(latencies)

    def pct(p: float) -> float:
        return round(s[min(len(s) - 1, int(len(s) * p))] * 1000, 2)

    print(json.dumps({"bench": name, "count": len(s), "target_qps": QPS, "clients": CLIENTS,
                      "achieved_qps": round(len(s) / elapsed, 1), "p50_ms": pct(0.5), "p99_ms": pct(0.99),
                      "max_ms": round(s[-1] * 1000, 2), "errors": len(errors)}), flush=True)


def fsync_ms(directory: str, rounds: int = 200) -> dict[str, float]:
    """fdatasync of a 4 KiB append, as a commit's WAL sync, in ``directory`` (ms)."""
    path = Path(directory, "fsync-probe")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    took = []
    try:
        for _ in range(rounds):
            os.write(fd, b"x" * 4096)
            t = time.perf_counter()
            os.fdatasync(fd)
            took.append(time.perf_counter() - t)
    finally:
        os.close(fd)
        path.unlink()
    took.sort()
    return {f"fsync_{k}_ms": round(took[min(rounds - 1, int(rounds * p))] * 1000, 2)
            for k, p in (("p50", 0.5), ("p99", 0.99))}


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "vkube", "serve", "--data-dir", tmp,
                                 "--port", str(port), "--no-controllers"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        hello = None
        try:
            base = f"https://127.0.0.1:{port}"
            wait_ready(base, tmp)
            tls = admin_tls(tmp)
            asyncio.run(run(base, tls))
            if BARE:  # the same clients against the framework alone, same certificate authority
                hport = free_port()
                hello = subprocess.Popen([sys.executable, "-c", HELLO, str(hport), str(Path(tmp, "pki"))])
                wait_up(f"https://127.0.0.1:{hport}/", tls)
                asyncio.run(run(f"https://127.0.0.1:{hport}", tls, "load_bare_handler", 200))
                print(json.dumps({"bench": "load_disk", **fsync_ms(tmp)}), flush=True)
        finally:
            for p in (proc, hello):
                if p is not None:
                    p.terminate()
                    p.wait()


if __name__ == "__main__":
    main()
