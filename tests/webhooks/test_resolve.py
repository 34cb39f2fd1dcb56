"""Where ``clientConfig.service`` goes (``WebhookClient.target``), on a control plane in this
process: a Pod behind the Service carrying ``vkube.io/port-forward-<port>`` first, else the
Service's ClusterIP (in a virtual cluster, the synced host Service's), else a ready endpoint;
TLS is verified for ``NAME.NAMESPACE.svc`` in every case."""

from __future__ import annotations

import pytest

from tests.conftest import RunningControlPlane
from vkube.apiserver.admission.webhookclient import CallError, WebhookClient
from vkube.apiserver.request import internal_context


async def put(cp: RunningControlPlane, kind: str, obj: dict) -> None:
    storage = cp.cp.ctx.storage_for("", kind)
    rc = internal_context("create", resource=storage.spec.plural, version="v1", namespace="default")
    await storage.create(rc, "default", {"apiVersion": "v1", "kind": kind, **obj})


def ref(name: str, port: int = 443) -> dict:
    return {"service": {"namespace": "default", "name": name, "port": port, "path": "/hook"}}


async def test_service_resolution_order(control_plane: RunningControlPlane):
    client = WebhookClient(control_plane.cp.ctx)
    await put(control_plane, "Service", {"metadata": {"name": "by-ip"}, "spec": {
        "clusterIP": "10.96.0.50", "ports": [{"port": 443, "targetPort": 8443}]}})
    target = await client.target(ref("by-ip"), 10)
    assert target.connect_url == "https://10.96.0.50:443/hook?timeout=10s"
    assert target.url == "https://by-ip.default.svc:443/hook?timeout=10s"
    assert target.server_name == "by-ip.default.svc"

    await put(control_plane, "Pod", {"metadata": {"name": "p", "annotations": {
        "vkube.io/port-forward-8443": "127.0.0.1:9999"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    await put(control_plane, "Service", {"metadata": {"name": "forwarded"}, "spec": {
        "clusterIP": "10.96.0.51", "ports": [{"port": 443, "targetPort": 8443}]}})
    await put(control_plane, "Endpoints", {"metadata": {"name": "forwarded"}, "subsets": [{
        "addresses": [{"ip": "10.244.0.9", "targetRef": {"kind": "Pod", "name": "p", "namespace": "default"}}],
        "ports": [{"port": 8443}]}]})
    assert (await client.target(ref("forwarded"), 5)).connect_url == "https://127.0.0.1:9999/hook?timeout=5s"

    await put(control_plane, "Service", {"metadata": {"name": "headless"}, "spec": {
        "clusterIP": "None", "ports": [{"port": 443, "targetPort": 8443}]}})
    await put(control_plane, "Endpoints", {"metadata": {"name": "headless"}, "subsets": [{
        "addresses": [{"ip": "10.244.0.7"}], "ports": [{"port": 8443}]}]})
    assert (await client.target(ref("headless"), 10)).connect_url == "https://10.244.0.7:8443/hook?timeout=10s"

    with pytest.raises(CallError, match=r'service "by-ip" does not have a port 8080'):
        await client.target(ref("by-ip", 8080), 10)
    with pytest.raises(CallError, match=r'Post "https://nope.default.svc:443/hook\?timeout=10s": service "nope" not found'):
        await client.target(ref("nope"), 10)
    await client.close()


async def test_a_restricted_dial_policy_refuses_this_machine_but_the_published(control_plane: RunningControlPlane):
    """A virtual cluster's policy: the url's host and every Service route (ExternalName, a
    pod's port-forward annotation, endpoints) are checked; the published HOST:PORT passes and
    the connection goes to the checked IP (the url's name stays the TLS name and Host)."""
    from vkube.apiserver.dialpolicy import DialPolicy

    ctx = control_plane.cp.ctx
    ctx.dial_policy = DialPolicy(restricted=True, published=frozenset({("127.0.0.1", 9999), ("localhost", 7777)}))
    client = WebhookClient(ctx)
    refused = "the control plane does not connect to this address"
    for url in ("https://127.0.0.1:9998/x", "https://localhost:9998/x", "https://[::1]:9999/x",
                "https://[::ffff:127.0.0.1]:9998/x", "https://0.0.0.0:9999/x", "https://169.254.169.254/x",
                "https://127.1.2.3:9999/x"):
        with pytest.raises(CallError, match=refused):
            await client.target({"url": url}, 10)
    assert (await client.target({"url": "https://127.0.0.1:9999/x"}, 10)).connect_url == \
        "https://127.0.0.1:9999/x?timeout=10s"
    by_name = await client.target({"url": "https://localhost:7777/x"}, 10)
    assert by_name.connect_url in ("https://127.0.0.1:7777/x?timeout=10s", "https://[::1]:7777/x?timeout=10s")
    assert (by_name.url, by_name.server_name, by_name.host_header) == (
        "https://localhost:7777/x?timeout=10s", "localhost", "localhost:7777")
    assert (await client.target({"url": "https://10.96.0.50/x"}, 10)).connect_url == "https://10.96.0.50/x?timeout=10s"

    await put(control_plane, "Service", {"metadata": {"name": "lo"}, "spec": {
        "type": "ExternalName", "externalName": "localhost", "ports": [{"port": 443}]}})
    await put(control_plane, "Pod", {"metadata": {"name": "p", "annotations": {
        "vkube.io/port-forward-8443": "127.0.0.1:9998"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}})
    await put(control_plane, "Service", {"metadata": {"name": "fwd"}, "spec": {
        "clusterIP": "10.96.0.51", "ports": [{"port": 443, "targetPort": 8443}]}})
    await put(control_plane, "Endpoints", {"metadata": {"name": "fwd"}, "subsets": [{
        "addresses": [{"ip": "10.244.0.9", "targetRef": {"kind": "Pod", "name": "p", "namespace": "default"}}],
        "ports": [{"port": 8443}]}]})
    for svc in ("lo", "fwd"):
        with pytest.raises(CallError, match=rf'Post "https://{svc}.default.svc:443/hook\?timeout=10s": dial tcp .*{refused}'):
            await client.target(ref(svc), 10)
    await client.close()
