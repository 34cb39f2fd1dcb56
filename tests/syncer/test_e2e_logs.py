"""`kubectl logs` in the virtual cluster: virtual API → fake node's kubelet endpoint (the
syncer's proxy) → host API pods/log → the host node's kubelet (a stand-in here)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web

from vkube.client.resources import NODES, PODS
from vkube.pki.cluster import ClusterPKI, KubeletTLS

from .conftest import HOST_NS, VC, Pair, eventually
from .test_e2e_pods import host_pod_exists, make_running, pod

KUBECTL = str(Path(sys.executable).parent / "kubectl")


async def host_kubelet(pki: ClusterPKI) -> tuple[web.AppRunner, int, list[str]]:
    """A kubelet of the host cluster as the real one is reached: HTTPS, the host CA's
    certificate, only the host API server's kubelet-client certificate admitted."""
    seen: list[str] = []

    async def logs(req: web.Request) -> web.StreamResponse:
        seen.append(req.path_qs)
        resp = web.StreamResponse()
        await resp.prepare(req)
        for line in ("hello from the host\n", "second line\n"):
            await resp.write(line.encode())
        await resp.write_eof()
        return resp

    tls = KubeletTLS(pki)
    app = web.Application(middlewares=[tls.middleware()])
    app.router.add_get("/containerLogs/{ns}/{pod}/{c}", logs)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.context)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1], seen  # noqa: SLF001


async def test_kubectl_logs_through_the_syncer(synced: Pair, planes, tmp_path):
    vcp, hcp = planes
    v, h = synced.virtual, synced.host
    runner, port, seen = await host_kubelet(hcp.pki)
    try:
        node = await h.get(NODES, "node-1")
        node["status"] = {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                          "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}
        await h.update(NODES, node, subresource="status")
        await v.create(PODS, pod() | {"spec": {"containers": [{"name": "c", "image": "x"}]}},
                       namespace="demo")
        await eventually(host_pod_exists(h))
        await make_running(synced)

        async def bound():
            vp = await v.get(PODS, "web", namespace="demo")
            assert vp["spec"].get("nodeName") == "node-1"
        await eventually(bound)

        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "--kubeconfig", str(vcp.data_dir / "kubeconfig"), "logs", "web",
            "-n", "demo", "--tail=5", stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert out.decode() == "hello from the host\nsecond line\n"
        assert seen and seen[-1].startswith(f"/containerLogs/{HOST_NS}/web-x-demo-x-{VC}/c")
        assert "tailLines=5" in seen[-1]

        # follow=true streams through the proxy's streaming path
        proc = await asyncio.create_subprocess_exec(
            KUBECTL, "--kubeconfig", str(vcp.data_dir / "kubeconfig"), "logs", "-f", "web",
            "-n", "demo", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, err.decode()
        assert out.decode() == "hello from the host\nsecond line\n"
        assert "follow=true" in seen[-1]
    finally:
        await runner.cleanup()
