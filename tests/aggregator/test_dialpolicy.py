"""The dial policy and the body cap (``vkube.apiserver.dialpolicy``) as units, and which
policy each kind of virtual cluster gets. The acceptance side (real kubectl against ``vkube
create`` and ``--shared`` clusters) is tests/webhooks/probes.py."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest
from aiohttp import web

from vkube.apiserver.dialpolicy import DialPolicy, Refused, TooLarge, local, read_capped
from vkube.cluster.config import ClusterConfig
from vkube.cluster.virtual import _dial_policy
from vkube.syncer.values import parse_values


def _own_address() -> str | None:
    """A non-loopback address of this machine, if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.1", 9))  # no packet is sent: only a route is picked
        except OSError:
            return None
        ip = s.getsockname()[0]
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


async def test_loopback_link_local_unspecified_and_own_addresses_are_refused():
    policy = DialPolicy(restricted=True, published=frozenset({("127.0.0.1", 8443)}))
    for host, port in (("127.0.0.1", 8444), ("127.9.9.9", 8443), ("::1", 8443), ("0.0.0.0", 80),
                       ("0.1.2.3", 80), ("169.254.169.254", 80), ("fe80::1", 443), ("::ffff:127.0.0.1", 22),
                       ("localhost", 8444)):
        with pytest.raises(Refused) as info:
            await policy.resolve(host, port)
        # one wording whatever listens there (no OS error text)
        assert str(info.value).endswith("the control plane does not connect to this address (loopback, "
                                        "link-local, a cloud metadata service or this machine's own) — "
                                        "the cluster's owner can publish it in "
                                        "sync.pods.portForwardTargets"), info.value
    assert await policy.resolve("127.0.0.1", 8443) == "127.0.0.1"
    assert await policy.resolve("10.96.0.1", 443) == "10.96.0.1"
    with pytest.raises(Refused, match="no such host"):
        await policy.resolve("no-such-host.invalid", 443)
    own = _own_address()
    if own is not None:
        assert local(ipaddress.ip_address(own))
        with pytest.raises(Refused):
            await policy.resolve(own, 443)
    # the open policy (the embedded host, bare control planes) leaves everything as it was
    assert await DialPolicy().resolve("127.0.0.1", 1) == "127.0.0.1"
    assert await DialPolicy().resolve("localhost", 1) == "localhost"


def test_each_virtual_cluster_gets_a_restricted_policy(tmp_path):
    from vkube.cluster.config import HostConnection

    host = HostConnection(kubeconfig=str(tmp_path / "kc"))
    published = parse_values({"sync": {"pods": {"portForwardTargets": ["127.0.0.1:8443"]}}})
    dedicated = _dial_policy(ClusterConfig(name="a", data_dir=tmp_path, host=host, values=published), shared=False)
    assert dedicated.restricted and dedicated.published == frozenset({("127.0.0.1", 8443)})
    assert _dial_policy(ClusterConfig(name="a", data_dir=tmp_path, host=host, values=published), shared=True).published == frozenset()
    isolated = parse_values({"isolation": {"enabled": True}})
    policy = _dial_policy(ClusterConfig(name="a", data_dir=tmp_path, host=host, values=isolated), shared=False)
    assert policy.restricted and not policy.published
    assert _dial_policy(ClusterConfig(name="a", data_dir=tmp_path, host=host), shared=False).restricted
    assert _dial_policy(ClusterConfig(name="a", data_dir=tmp_path), shared=True).restricted
    # vkube serve without a host: this machine's user alone
    assert not _dial_policy(ClusterConfig(name="a", data_dir=tmp_path), shared=False).restricted


async def test_read_capped_stops_past_the_limit():
    size = 4 * 1024 * 1024

    async def big(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        await resp.prepare(request)
        chunk = b"x" * 65536
        try:
            for _ in range(size // len(chunk)):
                await resp.write(chunk)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp

    import aiohttp

    app = web.Application()
    app.router.add_get("/big", big)
    async def small(request: web.Request) -> web.Response:
        return web.Response(body=b"y" * 100000)

    app.router.add_get("/small", small)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/small") as resp:
                assert await read_capped(resp.content, 1024 * 1024) == b"y" * 100000
            async with session.get(f"http://127.0.0.1:{port}/big") as resp:
                with pytest.raises(TooLarge, match="exceeds the limit of 1048576 bytes"):
                    await read_capped(resp.content, 1024 * 1024)
    finally:
        await runner.cleanup()


async def test_a_tenants_node_cannot_point_logs_at_this_machine(control_plane):
    """Before a virtual cluster's own kubelet endpoint is set (or without one), logs and exec
    follow the Node's address, which a tenant may write: the restricted policy refuses a
    loopback kubelet with the same words an open port and a closed one would get."""
    from tests.webhooks.probes import REFUSED, listener

    cp = control_plane
    cp.cp.ctx.dial_policy = DialPolicy(restricted=True)
    with listener() as lst:
        port = lst.getsockname()[1]
        node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                           "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "default"},
               "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "x"}]}}
        import json

        await asyncio.to_thread(cp.kubectl, "create", "-f", "-", input=json.dumps(node))
        await asyncio.to_thread(cp.kubectl, "create", "-f", "-", input=json.dumps(pod))
        out = await asyncio.to_thread(cp.kubectl, "logs", "p", check=False)
        assert out.returncode != 0 and REFUSED in out.stderr, out.stderr
        with pytest.raises(BlockingIOError):
            lst.accept()
