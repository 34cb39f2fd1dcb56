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


async def test_bad_log_options_are_refused_before_the_kubelet(control_plane, kubelets) -> None:
    """``ValidatePodLogOptions``: out-of-range numbers and sinceSeconds with sinceTime are a 422
    naming the field (even for a missing pod), unparsable numbers a 400, an unknown container a
    400; good options still reach the kubelet. Through kubectl and the official client."""
    import asyncio

    from kubernetes import client as k8s, config as k8s_config
    from kubernetes.client.rest import ApiException

    own_port, _ = kubelets
    rcp = control_plane
    rcp.cp.ctx.kubelet_endpoint = ("127.0.0.1", own_port)
    k = rcp.kubectl
    await asyncio.to_thread(k, "create", "-f", "-", input=json.dumps(NODE))
    await asyncio.to_thread(k, "create", "-f", "-", input=json.dumps(POD))
    base = "/api/v1/namespaces/default/pods/p/log"
    cases = {
        "sinceSeconds=-5": 'PodLogOptions "p" is invalid: sinceSeconds: Invalid value: -5: must be greater than 0',
        "tailLines=-3": 'PodLogOptions "p" is invalid: tailLines: Invalid value: -3: must be greater than or equal to 0',
        "limitBytes=0": 'PodLogOptions "p" is invalid: limitBytes: Invalid value: 0: must be greater than 0',
        "sinceSeconds=5&sinceTime=2020-01-01T00:00:00Z":
            'PodLogOptions "p" is invalid: : Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified',
        # kubectl lists the causes of a many-cause Invalid, one a line
        "tailLines=-1&limitBytes=-2": "* tailLines: Invalid value: -1: must be greater than or equal to 0\n"
                                      "* limitBytes: Invalid value: -2: must be greater than 0",
        "tailLines=abc": 'strconv.ParseInt: parsing "abc": invalid syntax',
        "container=nope": "container nope is not valid for pod p",
    }
    for query, message in cases.items():
        proc = await asyncio.to_thread(k, "get", "--raw", f"{base}?{query}", check=False)
        assert proc.returncode != 0 and message in proc.stderr, (query, proc.stderr)
        assert "kubelet" not in proc.stdout, query
    proc = await asyncio.to_thread(k, "get", "--raw", "/api/v1/namespaces/default/pods/gone/log?limitBytes=0",
                                   check=False)
    assert 'PodLogOptions "gone" is invalid: limitBytes' in proc.stderr, proc.stderr
    good = await asyncio.to_thread(k, "get", "--raw", f"{base}?tailLines=0&limitBytes=10&sinceSeconds=1")
    assert good.stdout == "own kubelet default/p\n"

    def official() -> tuple[int, dict]:
        api = k8s.CoreV1Api(k8s_config.new_client_from_config(str(rcp.kubeconfig)))
        try:
            api.read_namespaced_pod_log("p", "default", tail_lines=-3)
        except ApiException as exc:
            return exc.status, json.loads(exc.body)
        finally:
            api.api_client.close()
        return 200, {}

    status, body = await asyncio.to_thread(official)
    assert status == 422 and body["reason"] == "Invalid", body
    assert body["message"] == 'PodLogOptions "p" is invalid: tailLines: Invalid value: -3: must be greater than or equal to 0'
    assert body["details"]["kind"] == "PodLogOptions"
    assert body["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "tailLines",
                                          "message": "Invalid value: -3: must be greater than or equal to 0"}]
