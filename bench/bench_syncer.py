"""Syncer benchmark: two real control planes (virtual + host) and a Syncer between them,
the Syncer in a child process of its own so its memory can be measured. Prints JSON lines.

1. ``translate``: pod rewrites per second (pure, no I/O).
2. ``pods_down``: create N virtual pods; time until every host pod exists (throughput, and
   per-pod latency percentiles from virtual create to host pod seen); the host API requests
   the syncer made per synced pod (the host's ``/metrics`` ``apiserver_request_total``).
3. ``status_up``: mark every host pod Running; per-pod latency until the virtual pod shows it.
4. ``syncer_memory``: the syncer process's RSS (and Python heap) before and with N pods synced,
   scaled to 1,000 pods.
5. ``services``: N services down and their ClusterIPs back up.
6. ``deployment``: a D-replica Deployment in a virtual cluster (API server + controllers +
   syncer) on the embedded host: time until every virtual pod is Running.

Also per synced pod: ``virtual_requests`` (the virtual API server's, the benchmark's own
creates included), ``reconciles_down``/``reconciles_up`` (per kind syncer) and, after the
deployment, ``deployment_syncer``: reconciles and the syncer's own requests by side, verb and
resource. ``VKUBE_BENCH_PROFILE=PREFIX`` writes a cProfile of each syncer child to
``PREFIX.<pid>.prof``.

    .venv/bin/python bench/bench_syncer.py [--pods 1000] [--services 100] [--replicas 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import resource
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from vkube.apiserver.server import ControlPlane
from vkube.client import Client
from vkube.client.resources import (DEPLOYMENTS, NAMESPACES, NODES, PODS, SERVICEACCOUNTS,
                                    SERVICES)
from vkube.pki.cluster import ADMIN, SYNCER, ClusterPKI
from vkube.syncer import Syncer, Translator, Values
from vkube.syncer.podrewrite import PodRewriteConfig, rewrite_pod

VC, HOST_NS = "bench", "vkube-bench"


def emit(**kw: object) -> None:
    print(json.dumps(kw), flush=True)


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return round(s[min(len(s) - 1, int(len(s) * p))] * 1000, 2) if s else 0.0


def _pod(i: int) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"p{i}", "namespace": "bench", "uid": f"u{i}",
                         "labels": {"app": "bench", "app.kubernetes.io/name": "b"}},
            "spec": {"containers": [{"name": "c", "image": "nginx",
                                     "env": [{"name": "A", "value": "1"}],
                                     "volumeMounts": [{"name": "cfg", "mountPath": "/c"}]}],
                     "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}]}}


def bench_translate(n: int = 20000) -> None:
    cfg = PodRewriteConfig(translator=Translator(VC, HOST_NS), host_service_account="sa",
                           token_secret="tok", kube_service_host="10.0.0.1")
    pods = [_pod(i) for i in range(n)]
    t0 = time.perf_counter()
    for p in pods:
        rewrite_pod(p, cfg)
    dt = time.perf_counter() - t0
    emit(bench="translate", pods=n, rewrites_per_s=round(n / dt))


async def wait_until(pred, poll: float = 0.02) -> None:
    while not await pred():
        await asyncio.sleep(poll)


# -- the syncer in a child process ------------------------------------------------------------

def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class CountingClient(Client):
    """A Client that counts its requests by side, verb and resource (``pods/status``…), so
    the benchmark can report what the syncer asked of each API server per pod."""

    def __init__(self, server: str, side: str, counts: dict[str, int], **kw: Any) -> None:
        super().__init__(server, **kw)
        self._side, self._counts = side, counts

    async def request(self, method: str, path: str, **kw: object) -> object:
        parts = [p for p in path.split("?")[0].split("/") if p]
        parts = parts[2:] if parts[:1] == ["api"] else parts[3:] if parts[:1] == ["apis"] \
            else parts
        if "namespaces" in parts and len(parts) > parts.index("namespaces") + 2:
            parts = parts[parts.index("namespaces") + 2:]
        what = parts[0] if len(parts) < 3 else f"{parts[0]}/{parts[2]}"
        key = f"{self._side} {method} {what}"
        self._counts[key] = self._counts.get(key, 0) + 1
        return await super().request(method, path, **kw)  # type: ignore[arg-type]


async def child_main(vurl: str, hurl: str, vpki_dir: str, hpki_dir: str, name: str, hns: str) -> None:
    """Run a Syncer; answer ``stats`` lines on stdin with one JSON line (RSS after a full
    collection, traced Python heap, reconciles per kind)."""
    tracemalloc.start()
    counts: dict[str, int] = {}
    vpki, hpki = ClusterPKI(vpki_dir), ClusterPKI(hpki_dir)  # the clusters' own CAs, read back
    syncer = Syncer(name=name, virtual=CountingClient(vurl, "virtual", counts, ssl=vpki.client_ssl(*SYNCER)),
                    host=CountingClient(hurl, "host", counts, ssl=hpki.client_ssl(*ADMIN)),
                    host_namespace=hns, values=Values(), virtual_pki=vpki)
    task = asyncio.create_task(syncer.run())
    await syncer.wait_ready()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(json.dumps({"ready": True}), flush=True)
    while line := await reader.readline():
        if line.strip() == b"stats":
            gc.collect()
            print(json.dumps({"rss": _rss(), "heap": tracemalloc.get_traced_memory()[0],
                              "processed": syncer.processed(), "requests": counts}),
                  flush=True)
    await syncer.stop()
    await asyncio.gather(task, return_exceptions=True)
    await syncer.ctx.virtual.close()
    await syncer.ctx.host.close()


class SyncerProcess:
    def __init__(self, vcp: ControlPlane, hcp: ControlPlane, name: str = VC, hns: str = HOST_NS) -> None:
        assert vcp.data_dir is not None and hcp.data_dir is not None
        self.args = [vcp.url, hcp.url, str(vcp.data_dir / "pki"), str(hcp.data_dir / "pki"), name, hns]
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--child", *self.args, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE)
        assert json.loads(await self._line())["ready"]

    async def _line(self) -> bytes:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 120)
        if not line:
            raise RuntimeError("syncer child exited")
        return line

    async def stats(self) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(b"stats\n")
        await self.proc.stdin.drain()
        return json.loads(await self._line())

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                await asyncio.wait_for(self.proc.wait(), 20)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


async def host_requests(c: Client) -> tuple[int, dict[str, int]]:
    """Total requests the host API server has answered, and per verb."""
    text = (await c.request("GET", "/metrics", raw=True)).decode()
    total, by_verb = 0, {}
    for m in re.finditer(r'^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$', text, re.M):
        n = int(float(m.group(2)))
        verb = re.search(r'verb="([^"]*)"', m.group(1))
        key = verb.group(1) if verb else "?"
        by_verb[key] = by_verb.get(key, 0) + n
        total += n
    return total, by_verb


# -- pods, status and services through one syncer ----------------------------------------------

async def bench_e2e(n_pods: int, n_svcs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        vcp = ControlPlane(data_dir=Path(tmp) / "v", allocate_service_ips=False)
        hcp = ControlPlane(data_dir=Path(tmp) / "h")
        await vcp.start()
        await hcp.start()
        v, h = Client(vcp.url, ssl=vcp.client_ssl()), Client(hcp.url, ssl=hcp.client_ssl())
        await h.create(NODES, {"metadata": {"name": "node-1"}})
        await v.create(NAMESPACES, {"metadata": {"name": "bench"}})
        # what the service-account controller would have made: pods get its token
        await v.create(SERVICEACCOUNTS, {"metadata": {"name": "default"}}, namespace="bench")
        child = SyncerProcess(vcp, hcp)
        await child.start()
        before = await child.stats()
        seen: dict[str, float] = {}
        running: dict[str, float] = {}
        created: dict[str, float] = {}

        async def watch_host() -> None:
            async for ev in h.watch(PODS, namespace=HOST_NS):
                name = ev.object["metadata"].get("annotations", {}).get("vkube.io/object-name")
                if ev.type == "ADDED" and name:
                    seen.setdefault(name, time.perf_counter())

        async def watch_virtual() -> None:
            async for ev in v.watch(PODS, namespace="bench"):
                if (ev.object.get("status") or {}).get("phase") == "Running":
                    running.setdefault(ev.object["metadata"]["name"], time.perf_counter())
        watchers = [asyncio.create_task(watch_host()), asyncio.create_task(watch_virtual())]
        await asyncio.sleep(0.2)  # both watches open
        req0, verbs0 = await host_requests(h)
        vreq0, vverbs0 = await host_requests(v)
        rec0 = (await child.stats())["processed"]
        t0 = time.perf_counter()
        for i in range(n_pods):
            created[f"p{i}"] = time.perf_counter()
            await v.create(PODS, _pod(i) | {"metadata": {"name": f"p{i}", "namespace": "bench",
                                                         "labels": {"app": "bench"}}},
                           namespace="bench")
        t_created = time.perf_counter() - t0

        async def all_down() -> bool:
            return len(seen) >= n_pods
        await wait_until(all_down)
        total = time.perf_counter() - t0
        lat = [seen[k] - created[k] for k in created if k in seen]
        emit(bench="pods_down", pods=n_pods, create_s=round(t_created, 3),
             total_s=round(total, 3), pods_per_s=round(n_pods / total, 1),
             latency_ms_p50=pct(lat, 0.5), latency_ms_p99=pct(lat, 0.99),
             latency_ms_mean=round(statistics.mean(lat) * 1000, 2))
        # let the syncer finish what follows each creation (annotations, token secret) and
        # count what it asked of the host (/metrics itself is not counted)
        await asyncio.sleep(1.0)
        req1, verbs1 = await host_requests(h)
        emit(bench="host_requests", pods=n_pods,
             per_pod=round((req1 - req0) / n_pods, 2),
             by_verb={k: verbs1[k] - verbs0.get(k, 0) for k in verbs1
                      if verbs1[k] != verbs0.get(k, 0)})
        vreq1, vverbs1 = await host_requests(v)
        # the virtual side also serves this benchmark's own creates (one per pod)
        emit(bench="virtual_requests", pods=n_pods,
             per_pod=round((vreq1 - vreq0) / n_pods, 2),
             by_verb={k: vverbs1[k] - vverbs0.get(k, 0) for k in vverbs1
                      if vverbs1[k] != vverbs0.get(k, 0)})
        rec1 = (await child.stats())["processed"]
        emit(bench="reconciles_down", pods=n_pods,
             per_pod={k: round((rec1[k] - rec0.get(k, 0)) / n_pods, 2) for k in rec1
                      if rec1[k] != rec0.get(k, 0)})

        # status up: per pod, host status Running → virtual pod Running
        marked: dict[str, float] = {}
        t0 = time.perf_counter()
        for i in range(n_pods):
            hn = f"p{i}-x-bench-x-{VC}"
            await h.create(PODS, {"apiVersion": "v1", "kind": "Binding",
                                  "metadata": {"name": hn},
                                  "target": {"kind": "Node", "name": "node-1"}},
                           namespace=HOST_NS, subresource="binding", name=hn)
            hp = await h.get(PODS, hn, namespace=HOST_NS)
            hp["status"] = {"phase": "Running", "podIP": f"10.1.{i // 250}.{i % 250 + 1}"}
            await h.update(PODS, hp, subresource="status")
            marked[f"p{i}"] = time.perf_counter()

        async def all_up() -> bool:
            return len(running) >= n_pods
        await wait_until(all_up)
        total = time.perf_counter() - t0
        lat = [running[k] - marked[k] for k in marked if k in running]
        emit(bench="status_up", pods=n_pods, total_s=round(total, 3),
             pods_per_s=round(n_pods / total, 1), latency_ms_p50=pct(lat, 0.5),
             latency_ms_p99=pct(lat, 0.99), latency_ms_mean=round(statistics.mean(lat) * 1000, 2))
        await asyncio.sleep(1.0)  # let the echoes of the status writes settle
        rec2 = (await child.stats())["processed"]
        emit(bench="reconciles_up", pods=n_pods,
             per_pod={k: round((rec2[k] - rec1.get(k, 0)) / n_pods, 2) for k in rec2
                      if rec2[k] != rec1.get(k, 0)})
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)

        after = await child.stats()
        per_k = 1000 / n_pods
        emit(bench="syncer_memory", pods=n_pods, rss_before_mb=round(before["rss"] / 2**20, 1),
             rss_after_mb=round(after["rss"] / 2**20, 1),
             rss_per_1000_pods_mb=round((after["rss"] - before["rss"]) * per_k / 2**20, 1),
             heap_per_1000_pods_mb=round((after["heap"] - before["heap"]) * per_k / 2**20, 1))

        t0 = time.perf_counter()
        for i in range(n_svcs):
            await v.create(SERVICES, {"metadata": {"name": f"s{i}", "namespace": "bench"},
                                      "spec": {"selector": {"app": "bench"},
                                               "ports": [{"port": 80}]}}, namespace="bench")

        async def ips_up() -> bool:
            items = (await v.list(SERVICES, namespace="bench"))["items"]
            return sum(1 for s in items if s["spec"].get("clusterIP")) >= n_svcs
        await wait_until(ips_up, 0.1)
        total = time.perf_counter() - t0
        emit(bench="services", services=n_svcs, total_s=round(total, 3),
             services_per_s=round(n_svcs / total, 1),
             reconciles=(await child.stats())["processed"])

        await child.stop()
        for c in (v, h):
            await c.close()
        await vcp.stop()
        await hcp.stop()


# -- a Deployment in a virtual cluster on the embedded host ------------------------------------

async def bench_deployment(replicas: int) -> None:
    from vkube.controllers.registry import default_controllers
    from vkube.controllers.runtime import ControllerManager
    from vkube.host.runner import EmbeddedHost

    with tempfile.TemporaryDirectory() as tmp:
        vcp = ControlPlane(data_dir=Path(tmp) / "v", allocate_service_ips=False)
        hcp = ControlPlane(data_dir=Path(tmp) / "h")
        await vcp.start()
        await hcp.start()
        embedded = EmbeddedHost(hcp.url, pki=hcp.pki, nodes=max(1, -(-replicas // 100)), seed=1)
        await embedded.start()
        v = Client(vcp.url, ssl=vcp.client_ssl())
        mgr = ControllerManager(Client(vcp.url, ssl=vcp.client_ssl()), identity="bench", leader_election=False)
        for ctrl in default_controllers():
            mgr.add(ctrl)
        mgr_task = asyncio.create_task(mgr.run())
        await mgr.started.wait()
        child = SyncerProcess(vcp, hcp)
        await child.start()
        labels = {"app": "big"}
        t0 = time.perf_counter()
        await v.create(DEPLOYMENTS, {
            "metadata": {"name": "big", "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}},
            namespace="default")
        first_running = None

        async def all_running() -> bool:
            nonlocal first_running
            items = (await v.list(PODS, namespace="default", label_selector="app=big"))["items"]
            n = sum(1 for p in items if (p.get("status") or {}).get("phase") == "Running")
            if n and first_running is None:
                first_running = time.perf_counter() - t0
            return n >= replicas
        await wait_until(all_running, 0.25)
        total = time.perf_counter() - t0
        emit(bench="deployment", replicas=replicas, first_running_s=round(first_running or 0, 2),
             all_running_s=round(total, 2), pods_per_s=round(replicas / total, 1),
             host_nodes=embedded.node_count)
        st = await child.stats()
        emit(bench="deployment_syncer", replicas=replicas,
             reconciles_per_pod={k: round(n / replicas, 2) for k, n in st["processed"].items()
                                 if n},
             requests_per_pod={k: round(n / replicas, 2)
                               for k, n in sorted(st["requests"].items())})
        await child.stop()
        mgr_task.cancel()
        await asyncio.gather(mgr_task, return_exceptions=True)
        await mgr.client.close()
        await v.close()
        await embedded.stop()
        await vcp.stop()
        await hcp.stop()


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        # VKUBE_BENCH_PROFILE=PREFIX: cProfile each syncer child into PREFIX.<pid>.prof
        prof_prefix = os.environ.get("VKUBE_BENCH_PROFILE")
        if not prof_prefix:
            asyncio.run(child_main(*sys.argv[2:8]))
            return
        import cProfile
        prof = cProfile.Profile()
        prof.enable()
        try:
            asyncio.run(child_main(*sys.argv[2:8]))
        finally:
            prof.disable()
            prof.dump_stats(f"{prof_prefix}.{os.getpid()}.prof")
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--services", type=int, default=100)
    ap.add_argument("--replicas", type=int, default=1000, help="0 skips the deployment bench")
    args = ap.parse_args()
    bench_translate()
    asyncio.run(bench_e2e(args.pods, args.services))
    if args.replicas:
        asyncio.run(bench_deployment(args.replicas))
    emit(bench="bench_process", max_rss_mb=round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))


if __name__ == "__main__":
    main()
