"""RSS and descriptors of a shared server that a client floods with idle connections (issue
18: 4,000 idle or half-open connections took ~1.2 GB before the listener had limits). The
shared server runs in this process on uvloop with one API-only cluster; the attacker, in a
subprocess, opens N connections by the cluster's TLS server name that finish their handshake
and then say nothing, and N raw TCP connections that never start one. Prints one JSON line:

``python -m bench.bench_idle_conns [N] [--limits default|off]`` (``off``: caps of 1,000,000 and
hour-long timeouts, what the listener did before it had limits)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._process import emit, rss_mib

ATTACKER = r'''
import base64, json, socket, ssl, sys, time
kubeconfig, n = sys.argv[1], int(sys.argv[2])
cluster = json.loads(open(kubeconfig).read())["clusters"][0]["cluster"]
host, port = cluster["server"].split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
ctx = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
held, failed = [], 0
for i in range(n):
    try:
        raw = socket.create_connection((host, int(port)), timeout=10)
        held.append(raw)  # half-open: no TLS handshake
        tls = ctx.wrap_socket(socket.create_connection((host, int(port)), timeout=10),
                              server_hostname=cluster["tls-server-name"])
        held.append(tls)  # handshake done, no request
    except OSError:
        failed += 1
open_now = 0
for s in held:
    s.settimeout(0.001)
    try:
        open_now += s.recv(1) != b""
    except (TimeoutError, ssl.SSLWantReadError):
        open_now += 1
    except OSError:
        pass
print(json.dumps({"opened": len(held), "failed": failed, "open_after": open_now}), flush=True)
sys.stdin.readline()
'''


async def run(n: int, limits: str) -> None:
    from vkube.cluster.config import ClusterConfig
    from vkube.cluster.listener import ListenerLimits
    from vkube.cluster.shared import SharedServer
    from vkube.syncer.values import load_values

    tmp = Path(tempfile.mkdtemp(prefix="bench-conns-"))
    caps = ListenerLimits() if limits == "default" else ListenerLimits(
        max_connections=1_000_000, max_per_client=1_000_000, handshake_timeout=3600, idle_timeout=3600)
    values = "controlPlane: {mode: shared}" if limits == "default" else \
        "controlPlane: {mode: shared, connections: {maxPerCluster: 1000000}}"
    server = SharedServer(tmp / "shared", limits=caps)
    await server.start()
    proc = None
    try:
        await server.add(ClusterConfig(name="a", data_dir=tmp / "a", controllers=False, values=load_values(values)))
        gc.collect()
        await asyncio.sleep(1)
        before, fds_before = rss_mib(), len(os.listdir("/proc/self/fd"))
        proc = subprocess.Popen([sys.executable, "-c", ATTACKER, str(tmp / "a" / "kubeconfig"), str(n)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdin is not None and proc.stdout is not None
        client = json.loads(await asyncio.to_thread(proc.stdout.readline))
        await asyncio.sleep(1)
        gc.collect()
        emit(bench="idle_conns", limits=limits, attempts=2 * n, client=client,
             held_by_server=server.connections.total, refused=server.connections.refused,
             rss_before_mib=before, rss_after_mib=rss_mib(), fds_before=fds_before,
             fds_after=len(os.listdir("/proc/self/fd")))
        proc.stdin.write("done\n")
        proc.stdin.flush()
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=2000, help="of each kind (TLS, half-open)")
    parser.add_argument("--limits", choices=("default", "off"), default="default")
    args = parser.parse_args()
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    import uvloop

    uvloop.run(run(args.n, args.limits))


if __name__ == "__main__":
    main()
