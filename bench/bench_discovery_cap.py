"""RSS of a control plane whose tenant's aggregated API answers the discovery check with a huge
body (before the cap: a 600 MB answer grew the shared process 116 → 464 MB). Runs one control
plane in process, a streaming HTTPS server in a subprocess, and prints JSON lines:
``python bench/bench_discovery_cap.py [MB]``."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench._process import emit, rss_mib

SERVER = r'''
import asyncio, ssl, sys
from aiohttp import web
mb = int(sys.argv[3])
async def big(request):
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    await resp.write(b'{"kind":"APIResourceList","pad":"')
    chunk = b"x" * (1 << 20)
    try:
        for _ in range(mb):
            await resp.write(chunk)
        await resp.write(b'"}')
    except Exception:
        pass
    return resp
app = web.Application(); app.router.add_get("/apis/big.example.com/v1", big)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])
async def main():
    runner = web.AppRunner(app); await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx); await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
'''


async def main(mb: int) -> None:
    from vkube.apiserver.request import internal_context
    from vkube.apiserver.server import ControlPlane
    from vkube.pki.certs import CertificateAuthority

    tmp = Path(tempfile.mkdtemp(prefix="bench-cap-"))
    pair = CertificateAuthority.create("big-ca").issue_serving(["big.default.svc"], common_name="big")
    (tmp / "tls.crt").write_bytes(pair.cert_pem)
    (tmp / "tls.key").write_bytes(pair.key_pem)
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(tmp / "tls.crt"), str(tmp / "tls.key"), str(mb)],
                            stdout=subprocess.PIPE, text=True)
    port = int(proc.stdout.readline())  # type: ignore[union-attr]
    cp = ControlPlane(data_dir=tmp / "cp")
    await cp.start()
    try:
        ctx = cp.ctx
        before = rss_mib()
        svc = ctx.storage_for("", "Service")
        await svc.create(internal_context("create", resource="services", version="v1", namespace="default"), "default",
                         {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "big"},
                          "spec": {"type": "ExternalName", "externalName": "127.0.0.1"}})
        aps = ctx.storage_for("apiregistration.k8s.io", "APIService")
        await aps.create(internal_context("create", group="apiregistration.k8s.io", version="v1", resource="apiservices"),
                         None, {"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                                "metadata": {"name": "v1.big.example.com"},
                                "spec": {"group": "big.example.com", "version": "v1", "insecureSkipTLSVerify": True,
                                         "groupPriorityMinimum": 1000, "versionPriority": 15,
                                         "service": {"namespace": "default", "name": "big", "port": port}}})
        t0, reason, message = time.monotonic(), "", ""
        while time.monotonic() - t0 < 300:
            obj = await aps.get(internal_context("get", group="apiregistration.k8s.io", version="v1",
                                                 resource="apiservices"), None, "v1.big.example.com")
            cond = next((c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == "Available"), {})
            reason, message = cond.get("reason", ""), cond.get("message", "")
            if reason and reason != "":
                if reason in ("FailedDiscoveryCheck", "Passed"):
                    break
            await asyncio.sleep(0.5)
        emit(bench="discovery_cap", answer_mb=mb, rss_before_mib=before, rss_after_mib=rss_mib(),
             reason=reason, message=message[-70:])
    finally:
        await cp.stop()
        proc.kill()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 600))
