"""Admission chain benchmark (issue 12): the latency the chain adds to a pod create, as a ratio
against the same server without it; and the cost of encryption at rest and of the audit log.

Each configuration starts its own control plane in this process and creates N pods (or
secrets) sequentially over HTTP with aiohttp, JSON bodies. Configurations:
  bare          NamespaceLifecycle + service allocation only (the chain before issue 12),
                no audit log, no encryption
  chain         the full default chain, namespace without policies
  chain+policy  the full chain with Pod Security (enforce=baseline, warn=restricted), a
                LimitRange with defaults and a pod ResourceQuota charged on every create
  +audit        chain+policy with the Metadata audit log written
Secrets: plain vs AES-GCM at rest.

Prints JSON lines. Usage: python bench/bench_admission.py [N]   (default N=300)
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

from vkube.apiserver.admission import NamespaceLifecycle, ServiceAllocation
from vkube.apiserver.server import ControlPlane

N = int(sys.argv[1]) if len(sys.argv) > 1 else 300


def pod(i: int) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}"},
                         "spec": {"containers": [{"name": "c", "image": "nginx", "securityContext": {
                             "allowPrivilegeEscalation": False, "runAsNonRoot": True,
                             "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}}]}})


def secret(i: int) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"s{i}"},
                         "stringData": {"password": "x" * 64}})


async def post(session: aiohttp.ClientSession, url: str, body: bytes) -> None:
    async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
        if r.status != 201:
            raise RuntimeError(f"{url}: {r.status} {await r.text()}")


async def setup_ns(session: aiohttp.ClientSession, base: str, policy: bool) -> None:
    labels = {"pod-security.kubernetes.io/enforce": "baseline",
              "pod-security.kubernetes.io/warn": "restricted"} if policy else {}
    await post(session, f"{base}/api/v1/namespaces",
               orjson.dumps({"metadata": {"name": "bench", "labels": labels}}))
    ns = f"{base}/api/v1/namespaces/bench"
    await post(session, f"{ns}/serviceaccounts", orjson.dumps({"metadata": {"name": "default"}}))
    if not policy:
        return
    await post(session, f"{ns}/limitranges", orjson.dumps({"metadata": {"name": "lr"}, "spec": {"limits": [
        {"type": "Container", "default": {"cpu": "100m", "memory": "64Mi"}}]}}))
    await post(session, f"{ns}/resourcequotas", orjson.dumps({"metadata": {"name": "q"},
                                                               "spec": {"hard": {"pods": "100000"}}}))
    # what the quota controller would write: admission refuses a quota whose status is unknown
    async with session.get(f"{ns}/resourcequotas/q") as r:
        q = await r.json()
    q["status"] = {"hard": {"pods": "100000"}, "used": {"pods": "0"}}
    async with session.put(f"{ns}/resourcequotas/q/status", data=orjson.dumps(q),
                           headers={"Content-Type": "application/json"}) as r:
        assert r.status == 200, await r.text()


async def run(name: str, *, chain: bool, policy: bool, audit: bool, encrypt: bool = True,
              kind: str = "pods") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        kw = {}
        if not encrypt:
            cfg = Path(tmp) / "identity.yaml"
            cfg.write_text("apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
                           "resources: [{resources: [secrets], providers: [{identity: {}}]}]\n")
            kw["encryption_config"] = cfg
        cp = ControlPlane(data_dir=Path(tmp) / "cp", **kw)
        await cp.start()
        assert cp.ctx is not None and cp.server is not None
        if not chain:
            cp.ctx.admission = [NamespaceLifecycle(), ServiceAllocation(cp.ctx.service_cidr)]
        if not audit:
            cp.server.audit = None
        try:
            async with aiohttp.ClientSession() as s:
                await setup_ns(s, cp.url, policy)
                url = f"{cp.url}/api/v1/namespaces/bench/{kind}"
                make = pod if kind == "pods" else secret
                for i in range(20):  # warm-up
                    await post(s, url, make(100000 + i))
                samples = []
                t0 = time.perf_counter()
                for i in range(N):
                    t = time.perf_counter()
                    await post(s, url, make(i))
                    samples.append(time.perf_counter() - t)
                total = time.perf_counter() - t0
        finally:
            await cp.stop()
    row = {"bench": f"admission/{kind}/{name}", "n": N, "ops_per_s": round(N / total, 1),
           "p50_ms": round(statistics.median(samples) * 1000, 3),
           "mean_ms": round(statistics.fmean(samples) * 1000, 3)}
    return row


async def main() -> None:
    rows = [
        await run("bare", chain=False, policy=False, audit=False),
        await run("chain", chain=True, policy=False, audit=False),
        await run("chain+policy", chain=True, policy=True, audit=False),
        await run("chain+policy+audit", chain=True, policy=True, audit=True),
    ]
    base, base50 = rows[0]["mean_ms"], rows[0]["p50_ms"]
    for r in rows:
        r["ratio_vs_bare"] = round(r["mean_ms"] / base, 2)
        r["p50_ratio_vs_bare"] = round(r["p50_ms"] / base50, 2)
        print(json.dumps(r), flush=True)
    plain = await run("plain", chain=True, policy=False, audit=False, encrypt=False, kind="secrets")
    enc = await run("aesgcm", chain=True, policy=False, audit=False, encrypt=True, kind="secrets")
    enc["ratio_vs_plain"] = round(enc["mean_ms"] / plain["mean_ms"], 2)
    enc["p50_ratio_vs_plain"] = round(enc["p50_ms"] / plain["p50_ms"], 2)
    print(json.dumps(plain), flush=True)
    print(json.dumps(enc), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
