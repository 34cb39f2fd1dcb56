"""The RSS floor under one idle dedicated cluster: what its processes would hold with no vkube
code at all. Prints JSON lines.

1. ``floor.supervisor``: a bare ``python -S`` (the supervisor runs as ``python -S -P``; its
   own code adds little to the interpreter).
2. ``floor.serve``: a fresh interpreter importing, one by one, the libraries an idle
   ``vkube serve`` keeps loaded (asyncio and ssl, sqlite3, uvloop, orjson, PyYAML, aiohttp,
   cryptography, prometheus_client), RSS after each; then serving HTTPS with aiohttp on uvloop
   beside an open SQLite database, as a control plane does.

    .venv/bin/python bench/bench_rss_floor.py

Compare with ``bench/bench_cli.py`` (``cli.idle_rss``: the cluster's real processes).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile

LIBS = ("asyncio", "ssl", "sqlite3", "uvloop", "orjson", "yaml", "aiohttp", "cryptography.x509",
        "prometheus_client")

CHILD = r"""
import importlib, json, sys

def mem():
    out = {}
    for line in open("/proc/self/status"):
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            out[key] = round(int(value.split()[0]) / 1024, 1)
    return {"rss_mib": out["VmRSS"], "anon_mib": out["RssAnon"], "file_mib": out["RssFile"]}

print(json.dumps({"bench": "floor.serve", "step": "python", **mem()}), flush=True)
for name in sys.argv[2:]:
    importlib.import_module(name)
    print(json.dumps({"bench": "floor.serve", "step": "+" + name, **mem()}), flush=True)

import asyncio, os, sqlite3, ssl, subprocess
import uvloop
from aiohttp import web

d = sys.argv[1]
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", d + "/key", "-out", d + "/crt", "-subj", "/CN=floor", "-days", "1"],
               capture_output=True, check=True)

async def serve():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(d + "/crt", d + "/key")
    app = web.Application()
    app.router.add_get("/", lambda request: web.Response(text="ok"))
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx).start()
    db = sqlite3.connect(d + "/db")
    db.execute("create table t (k text primary key, v blob)")
    db.commit()
    await asyncio.sleep(2)
    print(json.dumps({"bench": "floor.serve", "step": "serving https + sqlite",
                      "modules": len(sys.modules), **mem()}), flush=True)
    await runner.cleanup()

uvloop.run(serve())
"""

#: read before anything is imported, printed after
BARE = ("rss = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS')][0]\n"
        "import json\n"
        "print(json.dumps({'bench': 'floor.supervisor', 'step': 'python -S', "
        "'rss_mib': round(int(rss) / 1024, 1)}))")


def main() -> None:
    out = subprocess.run([sys.executable, "-S", "-c", BARE], capture_output=True, text=True, check=True)
    print(out.stdout.strip(), flush=True)
    with tempfile.TemporaryDirectory(prefix="vkube-rss-floor-") as d:
        subprocess.run([sys.executable, "-c", CHILD, d, *LIBS], check=True)


if __name__ == "__main__":
    main()
