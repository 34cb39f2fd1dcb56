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
