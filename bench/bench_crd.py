"""CRD benchmark (issue 13): sequential create throughput of a custom resource with a
30-property schema and 3 CEL rules against a ConfigMap of the same size (as a ratio), and the
time from creating a CRD to its resource being served (first successful list).

Runs `vkube serve --no-controllers` in a separate process. Prints JSON lines.
Usage: python bench/bench_crd.py [N]   (default N=1000 creates of each)
"""

from __future__ import annotations

import asyncio
import json
import ssl
import statistics
import sys
import time

import aiohttp
import orjson

from _serve import serve_api  # bench/ is the script's directory, first on sys.path

N = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 1000
PROPS = 30
GROUP = "bench.example.com"


def crd(plural: str = "widgets", kind: str = "Widget") -> dict:
    props = {f"field{i}": {"type": "string", "maxLength": 64} for i in range(PROPS)}
    props["field0"] = {"type": "integer", "minimum": 0}
    props["field1"] = {"type": "integer", "minimum": 0}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {"group": GROUP, "scope": "Namespaced",
                 "names": {"plural": plural, "kind": kind},
                 "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": {
                     "type": "object", "properties": {"spec": {
                         "type": "object", "properties": props,
                         "x-kubernetes-validations": [
                             {"rule": "self.field0 <= self.field1", "message": "field0 must not exceed field1"},
                             {"rule": "self.field2.startsWith('v')"},
                             {"rule": "size(self.field3) > 0"},
                         ]}}}}}]},
    }


def values() -> dict:
    data = {f"field{i}": f"v{i}-value" for i in range(PROPS)}
    return data


async def create_loop(session: aiohttp.ClientSession, url: str, make) -> list[float]:  # noqa: ANN001
    samples = []
    for i in range(N):
        body = orjson.dumps(make(i))
        t = time.perf_counter()
        async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as r:
            await r.read()
            if r.status != 201:
                raise RuntimeError(f"POST {url}: {r.status} {await r.text()}")
        samples.append(time.perf_counter() - t)
    return samples


def report(name: str, samples: list[float]) -> float:
    total = sum(samples)
    ops = len(samples) / total
    s = sorted(samples)
    print(json.dumps({"bench": name, "n": len(samples), "ops_per_s": round(ops, 1),
                      "p50_ms": round(statistics.median(s) * 1000, 3),
                      "p99_ms": round(s[min(len(s) - 1, int(len(s) * 0.99))] * 1000, 3)}), flush=True)
    return ops


async def run(base: str, tls: ssl.SSLContext) -> None:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=tls)) as s:
        # CRD create → served: poll the list URL until it answers 200
        served = []
        for round_ in range(5):
            plural, kind = f"gadgets{round_}", f"Gadget{round_}"
            url = f"{base}/apis/{GROUP}/v1/namespaces/default/{plural}"
            t = time.perf_counter()
            async with s.post(f"{base}/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                              data=orjson.dumps(crd(plural, kind)), headers={"Content-Type": "application/json"}) as r:
                assert r.status == 201, await r.text()
            while True:
                async with s.get(url) as r:
                    await r.read()
                    if r.status == 200:
                        break
                await asyncio.sleep(0.001)
            served.append(time.perf_counter() - t)
        print(json.dumps({"bench": "crd_create_to_served", "rounds": len(served),
                          "median_ms": round(statistics.median(served) * 1000, 1),
                          "max_ms": round(max(served) * 1000, 1)}), flush=True)
        async with s.post(f"{base}/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                          data=orjson.dumps(crd()), headers={"Content-Type": "application/json"}) as r:
            assert r.status == 201
        await asyncio.sleep(1)
        spec = values()
        spec["field0"], spec["field1"] = 1, 2
        cr_ops = report("create_custom_resource_30props_3cel", await create_loop(
            s, f"{base}/apis/{GROUP}/v1/namespaces/default/widgets",
            lambda i: {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": f"w-{i}"}, "spec": spec}))
        data = {k: str(v) for k, v in spec.items()}
        cm_ops = report("create_configmap_30keys", await create_loop(
            s, f"{base}/api/v1/namespaces/default/configmaps",
            lambda i: {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"c-{i}"}, "data": data}))
        print(json.dumps({"bench": "cr_vs_configmap_create_ratio", "ratio": round(cr_ops / cm_ops, 3)}), flush=True)


def main() -> None:
    with serve_api() as (base, tls):
        asyncio.run(run(base, tls))


if __name__ == "__main__":
    main()
