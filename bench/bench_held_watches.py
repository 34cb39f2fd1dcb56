"""RSS of a shared server whose sleeping cluster a tenant floods with held watches (issue 18:
4,000 held watches took 4,000 descriptors and grew the process 85 → 249 MB). The shared server
runs in this process with one cluster; the attacker, in a subprocess with the cluster's own
admin credential, opens one watch while the cluster is awake (so its re-watches may be held),
then N re-watches once it sleeps. Prints one JSON line per run:

``python -m bench.bench_held_watches [N] [--caps default|off]`` (``off``: caps of 1,000,000,
what the shared server did before there were caps)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._process import emit, rss_mib

ATTACKER = r'''
import asyncio, base64, json, ssl, sys, tempfile, os
import aiohttp

kubeconfig, n = sys.argv[1], int(sys.argv[2])
doc = json.loads(open(kubeconfig).read())
cluster, user = doc["clusters"][0]["cluster"], doc["users"][0]["user"]
tmp = tempfile.mkdtemp()
for name, key in (("ca", "certificate-authority-data"), ("crt", "client-certificate-data"), ("key", "client-key-data")):
    src = cluster if name == "ca" else user
    with open(os.path.join(tmp, name), "wb") as f:
        f.write(base64.b64decode(src[key]))
ctx = ssl.create_default_context(cafile=os.path.join(tmp, "ca"))
ctx.load_cert_chain(os.path.join(tmp, "crt"), os.path.join(tmp, "key"))
sni, url = cluster["tls-server-name"], cluster["server"] + "/api/v1/namespaces/default/configmaps"

async def main():
    conn = aiohttp.TCPConnector(ssl=ctx, limit=0)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=None)) as s:
        async with s.get(url, server_hostname=sni) as r:
            rv = (await r.json())["metadata"]["resourceVersion"]
        first = await s.get(url, params={"watch": "1", "resourceVersion": rv}, server_hostname=sni)
        assert first.status == 200, first.status
        print("awake-watch", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # asleep now
        first.close()
        codes = {}
        async def one():
            try:
                async with s.get(url, params={"watch": "1", "resourceVersion": rv}, server_hostname=sni) as r:
                    codes[r.status] = codes.get(r.status, 0) + 1
                    await r.read()
            except Exception as exc:
                codes[type(exc).__name__] = codes.get(type(exc).__name__, 0) + 1
        tasks = []
        for i in range(0, n, 100):  # in batches: a loaded loop finishes the handshakes it starts
            tasks += [asyncio.ensure_future(one()) for _ in range(min(100, n - i))]
            await asyncio.sleep(1)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)  # measured
        print(json.dumps({str(k): v for k, v in codes.items()}), flush=True)
        for t in tasks:
            t.cancel()

asyncio.run(main())
'''


async def run(n: int, caps: str) -> None:
    import json

    from vkube.cluster.config import ClusterConfig
    from vkube.cluster.shared import SharedServer
    from vkube.syncer.values import load_values

    tmp = Path(tempfile.mkdtemp(prefix="bench-held-"))
    doc = "controlPlane: {mode: shared}" if caps == "default" else \
        "controlPlane: {mode: shared, watches: {maxPerCluster: 1000000, maxPerCredential: 1000000}}"
    server = SharedServer(tmp / "shared", sleep_check=1.0)
    await server.start()
    proc = None
    try:
        await server.add(ClusterConfig(name="a", data_dir=tmp / "a", controllers=False, values=load_values(doc)))
        member = server.members["a"]
        proc = subprocess.Popen([sys.executable, "-c", ATTACKER, str(tmp / "a" / "kubeconfig"), str(n)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert proc.stdin is not None and proc.stdout is not None
        line = await asyncio.to_thread(proc.stdout.readline)
        assert line.strip() == "awake-watch", line
        await server.sleep("a")
        gc.collect()
        await asyncio.sleep(2)
        before = rss_mib()
        trimmed_before = _trimmed()
        fds_before = len(os.listdir("/proc/self/fd"))
        proc.stdin.write("go\n")
        proc.stdin.flush()
        seen, still = -1, 0
        while still < 30:  # until every watch is held or refused, or nothing moved for 30 s
            now = len(member.parked) + member.held_watches.refused
            if now >= n:
                break
            still = still + 1 if now == seen else 0
            seen = now
            await asyncio.sleep(1)
        await asyncio.sleep(2)  # refused connections close
        gc.collect()
        raw_after = rss_mib()
        trimmed_after = _trimmed()
        held, after, fds_after = len(member.parked), rss_mib(), len(os.listdir("/proc/self/fd"))
        proc.stdin.write("measured\n")
        proc.stdin.flush()
        answers = json.loads(await asyncio.to_thread(proc.stdout.readline))
        emit(bench="held_watches", caps=caps, watches=n, held=held,
             refused_429=member.held_watches.refused, client_saw=answers, rss_before_mib=before,
             rss_after_mib=raw_after, rss_trimmed_before_mib=trimmed_before,
             rss_trimmed_after_mib=trimmed_after, fds_before=fds_before, fds_after=fds_after, asleep=member.vc is None)
    finally:
        if proc is not None:
            proc.kill()
            proc.wait()
        await server.stop()


def _trimmed() -> float:
    """RSS once free heap pages went back to the OS (what the shared server's reclaimer does
    after a sleep): what the held watches really hold, not the handshakes' high-water mark."""
    from vkube.cluster.memory import _malloc_trim

    before = rss_mib()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
    return min(before, rss_mib())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("n", nargs="?", type=int, default=4000)
    parser.add_argument("--caps", choices=("default", "off"), default="default")
    args = parser.parse_args()
    asyncio.run(run(args.n, args.caps))


if __name__ == "__main__":
    main()
