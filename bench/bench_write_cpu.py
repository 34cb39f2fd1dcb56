"""CPU per write on a loaded machine (issue 19): the cases of ``bench_write.py`` run against a
control plane in this process, and the process's CPU time per request (client and server) is
taken over several rounds. The lowest round is the figure least disturbed by other work on a
shared machine, where request rates say more about the neighbours than about vkube; compare two
trees by running this with each on ``PYTHONPATH``, alternately. Prints JSON lines.

Usage: python bench/bench_write_cpu.py [N] [ROUNDS]   (default 30 and 5; the pod cases run N/3)
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time

import aiohttp
from bench_write import cases  # bench/ is the script's directory, first on sys.path

from vkube.apiserver.server import ControlPlane

N = int(sys.argv[1]) if len(sys.argv) > 1 else 30
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 5


async def run() -> dict[str, list[float]]:
    spent: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        cp = ControlPlane(data_dir=tmp)
        await cp.start()
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=cp.client_ssl())) as s:
                for rnd in range(ROUNDS + 1):  # round 0 warms up (lazy imports, caches)
                    for name, method, path, body, ctype, n in cases(N):
                        c0 = time.process_time()
                        for i in range(n):
                            j = rnd * 100_000 + i  # each round writes its own objects
                            async with s.request(method, cp.url + path.format(i=j), data=body(j),
                                                 headers={"Content-Type": ctype}) as r:
                                await r.read()
                                if r.status >= 300:
                                    raise RuntimeError(f"{name}: {r.status} {await r.text()}")
                        if rnd:
                            spent.setdefault(name, []).append((time.process_time() - c0) / n * 1000)
        finally:
            await cp.stop()
    return spent


def main() -> None:
    for name, per_round in asyncio.run(run()).items():
        print(json.dumps({"bench": "write_cpu", "case": name, "rounds": len(per_round),
                          "cpu_ms_min": round(min(per_round), 2),
                          "cpu_ms_median": round(statistics.median(per_round), 2)}), flush=True)


if __name__ == "__main__":
    main()
