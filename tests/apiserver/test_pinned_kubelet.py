"""A control plane whose kubelet endpoint is pinned (a virtual cluster: its syncer's proxy)
sends pods/log and pods/exec there whatever the pod's Node says: a tenant who edits its Node's
kubelet endpoint cannot point it at another tenant's or the host's kubelet. kubectl reads the
logs; the wrong kubelet would answer differently."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
       "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "nginx"}]}}


async def kubelet(text: str, tls) -> tuple[web.AppRunner, int]:  # noqa: ANN001 - KubeletTLS
    async def logs(req: web.Request) -> web.Response:
        return web.Response(text=f"{text} {req.match_info['ns']}/{req.match_info['pod']}\n")

    app = web.Application(middlewares=[tls.middleware()])  # the cluster's CA, as a kubelet
    app.router.add_get("/containerLogs/{ns}/{pod}/{c}", logs)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.context)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001


@pytest.fixture
async def kubelets(control_plane) -> AsyncIterator[tuple[int, int]]:
    from vkube.pki.cluster import KubeletTLS

    tls = KubeletTLS(control_plane.cp.pki)
    own, own_port = await kubelet("own kubelet", tls)
    other, other_port = await kubelet("another tenant's kubelet", tls)
    yield own_port, other_port
    await own.cleanup()
    await other.cleanup()


async def test_logs_go_to_the_pinned_kubelet(control_plane, kubelets) -> None:
    import asyncio

    own_port, other_port = kubelets
    rcp = control_plane
    node = {**NODE, "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                               "daemonEndpoints": {"kubeletEndpoint": {"Port": other_port}}}}
    k = rcp.kubectl  # in a thread: the control plane runs on this event loop
    await asyncio.to_thread(k, "create", "-f", "-", input=json.dumps(node))
    await asyncio.to_thread(k, "patch", "node", "n1", "--subresource=status", "--type=merge",
                            "-p", json.dumps({"status": node["status"]}))
    await asyncio.to_thread(k, "create", "-f", "-", input=json.dumps(POD))

    def logs() -> str:
        return rcp.kubectl("logs", "p").stdout

    assert await asyncio.to_thread(logs) == "another tenant's kubelet default/p\n"  # unpinned
    rcp.cp.ctx.kubelet_endpoint = ("127.0.0.1", own_port)
    assert await asyncio.to_thread(logs) == "own kubelet default/p\n"
