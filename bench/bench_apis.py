"""Costs the remaining API groups add (issue 14 part C), in process:

- ``bootstrap``: control-plane start with the APF configuration and the default ServiceCIDR
  (first start: 22 creates plus status writes; later starts: reads only) against without;
- ``csr_sign``: one CSR signed by the cluster CA (parse, checks, ECDSA P-256 signature);
- ``dra_filter``: the DynamicResources Filter for one pod over N nodes with 8 devices each
  (CEL selector evaluated per device).

Prints JSON lines. Usage: python bench/bench_apis.py [ROUNDS] (default 5)
"""

from __future__ import annotations

import asyncio
import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5


async def bench_bootstrap() -> None:
    """The API defaults alone, on a started control plane: first (creates) and again (reads
    only, as every restart does), against the control-plane start without them. Measured in
    isolation: whole-start ratios drown in noise on a loaded machine."""
    import vkube.apiserver.server as server_mod
    from vkube.apiserver.server import ControlPlane

    real = server_mod.ensure_api_defaults

    async def nothing(ctx) -> None:  # noqa: ANN001
        return None

    starts, firsts, agains = [], [], []
    server_mod.ensure_api_defaults = nothing
    try:
        for _ in range(ROUNDS):
            with tempfile.TemporaryDirectory() as d:
                cp = ControlPlane(data_dir=Path(d) / "cp")
                t0 = time.perf_counter()
                await cp.start()
                starts.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                await real(cp.ctx)
                firsts.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                await real(cp.ctx)
                agains.append(time.perf_counter() - t0)
                await cp.stop()
    finally:
        server_mod.ensure_api_defaults = real
    start = statistics.median(starts)
    for phase, values in (("first", firsts), ("again", agains)):
        ms = statistics.median(values)
        print(json.dumps({"bench": "apis_bootstrap", "defaults": phase, "rounds": ROUNDS,
                          "defaults_ms": round(ms * 1000, 1), "start_without_ms": round(start * 1000, 1),
                          "share_of_start": round(ms / start, 3)}))


def bench_csr_sign() -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from vkube.controllers.certificates import signer_refusal
    from vkube.pki import CertificateAuthority
    from vkube.pki.signing import parse_csr, sign_request

    ca = CertificateAuthority.create("bench")
    key = ec.generate_private_key(ec.SECP256R1())
    pem = (x509.CertificateSigningRequestBuilder()
           .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "alice")]))
           .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
    request = base64.b64encode(pem)
    n = 200 * ROUNDS
    t = time.perf_counter()
    for _ in range(n):
        csr = parse_csr(base64.b64decode(request))
        assert not signer_refusal("kubernetes.io/kube-apiserver-client", csr, ["client auth"])
        sign_request(ca, csr, ["client auth"])
    per = (time.perf_counter() - t) / n
    print(json.dumps({"bench": "csr_sign", "n": n, "per_csr_ms": round(per * 1000, 3)}))


class _Inf:
    """An informer's read side over fixed objects (with its indexes)."""

    def __init__(self, items: list[dict]) -> None:
        self.items = items
        self.indexes: dict[str, dict[str, list[dict]]] = {}

    def add_index(self, name: str, fn) -> None:  # noqa: ANN001
        idx: dict[str, list[dict]] = {}
        for item in self.items:
            for v in fn(item):
                idx.setdefault(v, []).append(item)
        self.indexes[name] = idx

    def by_index(self, name: str, value: str) -> list[dict]:
        return self.indexes[name].get(value, [])

    def list(self, namespace: str | None = None) -> list[dict]:
        return self.items

    def get(self, name: str, namespace: str | None = None) -> dict | None:
        return next((i for i in self.items if i["metadata"]["name"] == name), None)


def bench_dra_filter() -> None:
    from vkube.host.dra import DeviceAllocator, PodDevices
    from vkube.host.nodes import build_resource_slice
    from vkube.host.predicates import NodeInfo

    for nodes in (10, 100):
        node_objs = [{"metadata": {"name": f"n{i}", "uid": str(i)}, "status": {"allocatable": {"cpu": "4"}}}
                     for i in range(nodes)]
        slices = [build_resource_slice(n, "gpu.example.com", 8) for n in node_objs]
        cls = {"metadata": {"name": "gpu"}, "spec": {"selectors": [{"cel": {"expression": 'device.driver == "gpu.example.com"'}}]}}
        claim = {"metadata": {"name": "c", "namespace": "d"}, "spec": {"devices": {"requests": [
            {"name": "g", "exactly": {"deviceClassName": "gpu", "count": 2}}]}}}
        alloc = DeviceAllocator(None, _Inf([]), _Inf(slices), _Inf([cls]))  # type: ignore[arg-type]
        infos = [NodeInfo.from_node(n) for n in node_objs]
        pd = PodDevices(pending=[claim])
        t = time.perf_counter()
        for info in infos:  # cold: every device's selector evaluated once
            assert alloc.filter(pd, info) is None
        cold = time.perf_counter() - t
        t = time.perf_counter()
        for _ in range(ROUNDS):  # warm: verdicts cached per device and slice version
            for info in infos:
                assert alloc.filter(pd, info) is None
        warm = (time.perf_counter() - t) / ROUNDS
        print(json.dumps({"bench": "dra_filter", "nodes": nodes, "devices_per_node": 8, "rounds": ROUNDS,
                          "cold_per_pod_ms": round(cold * 1000, 2), "warm_per_pod_ms": round(warm * 1000, 2),
                          "warm_per_node_us": round(warm / nodes * 1e6, 1)}))


def main() -> None:
    asyncio.run(bench_bootstrap())
    bench_csr_sign()
    bench_dra_filter()


if __name__ == "__main__":
    main()
