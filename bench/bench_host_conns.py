"""What one idle TLS watch connection to a host costs this process (RSS per connection), so
the syncer's share of a shared-mode cluster's memory is measured, not guessed. Prints JSON.

``own``: a Client per watch (an SSL context and connector each, as every syncer had before
``vkube.client.pool``); ``pool``: every watch's client from one ``ConnectionPool``. ``--loop
asyncio`` shows the stdlib's 256 KiB TLS read buffer (the pool shrinks it); uvloop, which
the CLI runs on, allocates its own lazily.

    .venv/bin/python bench/bench_host_conns.py KUBECONFIG [--watches 200] [--loop uvloop|asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import gc

from vkube.client import load_kubeconfig
from vkube.client.pool import ConnectionPool
from vkube.client.resources import CONFIGMAPS

from _process import emit, rss_mib


async def run(kubeconfig: str, watches: int, mode: str, loop: str) -> None:
    pool = ConnectionPool()
    gc.collect()
    before = rss_mib(2)
    clients = [pool.client(kubeconfig) if mode == "pool" else load_kubeconfig(kubeconfig)
               for _ in range(watches)]

    async def watch(i: int) -> None:
        async for _ in clients[i].watch(CONFIGMAPS, namespace="default", timeout_seconds=3000):
            pass

    tasks = [asyncio.create_task(watch(i)) for i in range(watches)]
    await asyncio.sleep(8)
    gc.collect()
    after = rss_mib(2)
    emit(bench="host_conns", mode=mode, loop=loop, watches=watches,
         rss_per_watch_kib=round((after - before) * 1024 / watches, 1))
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in clients:
        await c.close()
    await pool.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("kubeconfig")
    p.add_argument("--watches", type=int, default=200)
    p.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop")
    p.add_argument("--mode", choices=("own", "pool"), default=None,
                   help="one mode in this process (default: each in a process of its own)")
    a = p.parse_args()
    if a.mode is None:  # a fresh process per mode: freed memory of one must not serve the other
        import subprocess
        import sys

        for mode in ("own", "pool"):
            subprocess.run([sys.executable, __file__, a.kubeconfig, "--watches", str(a.watches),
                            "--loop", a.loop, "--mode", mode], check=True)
    else:
        coro = run(a.kubeconfig, a.watches, a.mode, a.loop)
        if a.loop == "uvloop":
            import uvloop

            uvloop.run(coro)
        else:
            asyncio.run(coro)
