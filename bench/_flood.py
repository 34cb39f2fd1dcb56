"""A tenant in a tight loop, in a process of its own: ``_flood.py KUBECONFIG`` creates
ConfigMaps (8 at a time) until SIGTERM, then prints how many it created. Used by
``bench_shared.py --flood-process`` so the flood's own client work does not run on the
measured server's event loop."""

from __future__ import annotations

import asyncio
import signal
import sys

from vkube.api import errors
from vkube.client import load_kubeconfig
from vkube.client.resources import CONFIGMAPS


async def main(path: str) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    n = refused = 0
    async with load_kubeconfig(path) as c:
        async def one(worker: int) -> None:
            nonlocal n, refused
            i = 0
            while not stop.is_set():
                body = {"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": f"p{worker}-{i}"}, "data": {"k": "v"}}
                try:
                    await c.create(CONFIGMAPS, body, namespace="default")
                    n += 1
                except errors.StatusError:
                    refused += 1
                i += 1
        print("ready", flush=True)
        await asyncio.gather(*(one(w) for w in range(8)))
    print(n, refused, flush=True)


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(sys.argv[1]))
