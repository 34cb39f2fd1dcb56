"""What the pod syncer writes, not just what it ends with: one binding and one status write per
host change, no bookkeeping writes on the virtual pod, no repeated work on its own echoes, and
never a status meant for a pod written onto a new pod of the same name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from vkube.api import errors
from vkube.apiserver.server import ControlPlane
from vkube.client import Client
from vkube.client.resources import NAMESPACES, NODES, PODS
from vkube.syncer import Syncer, load_values
from vkube.syncer.pods import ANN_HOST_UID, PodSyncer

from .conftest import HOST_NS, VC, Pair, eventually, start_syncer, stop_syncer
from .test_e2e_pods import HPOD, host_pod_exists, make_running


class RecordingClient(Client):
    """Records every request (method, path) it sends."""

    def __init__(self, server: str, **kw: Any) -> None:
        super().__init__(server, **kw)
        self.sent: list[tuple[str, str]] = []

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        self.sent.append((method, path.split("?")[0]))
        return await super().request(method, path, **kw)

    def writes(self, suffix: str) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.sent if m != "GET" and p.endswith(suffix)]


def simple_pod(name: str = "web") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "demo", "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}],
                     "automountServiceAccountToken": False}}


async def _prepare(vcp: ControlPlane, hcp: ControlPlane) -> None:
    async with Client(hcp.url, ssl=hcp.client_ssl()) as host:
        await host.create(NODES, {"metadata": {"name": "node-1"}})
    async with Client(vcp.url, ssl=vcp.client_ssl()) as virtual:
        await virtual.create(NAMESPACES, {"metadata": {"name": "demo"}})


@pytest.fixture
async def recorded(planes: tuple[ControlPlane, ControlPlane]) -> AsyncIterator[Pair]:
    vcp, hcp = planes
    await _prepare(vcp, hcp)
    virtual, host = RecordingClient(vcp.url, ssl=vcp.client_ssl()), RecordingClient(hcp.url, ssl=hcp.client_ssl())
    syncer = Syncer(name=VC, virtual=virtual, host=host, host_namespace=HOST_NS,
                    values=load_values(""), virtual_pki=vcp.pki)
    task = asyncio.create_task(syncer.run())
    await asyncio.wait_for(syncer.wait_ready(), 30)
    pair = Pair(virtual, host, syncer, task)
    try:
        yield pair
    finally:
        await stop_syncer(pair)


def virtual_gone(v: Client, name: str):
    async def check() -> None:
        try:
            await v.get(PODS, name, namespace="demo")
        except errors.NotFound:
            return
        raise AssertionError(f"virtual pod {name} still there")
    return check


async def _running(v: Client, name: str = "web") -> dict:
    vp = await v.get(PODS, name, namespace="demo")
    assert vp["status"].get("phase") == "Running" and vp["spec"].get("nodeName") == "node-1"
    return vp


async def test_one_binding_and_one_status_write_per_host_change(recorded: Pair):
    v, h = recorded.virtual, recorded.host
    assert isinstance(v, RecordingClient) and isinstance(h, RecordingClient)
    async with Client(str(v.server), ssl=v.ssl) as tenant:
        await tenant.create(PODS, simple_pod(), namespace="demo")
        async with Client(str(h.server), ssl=h.ssl) as tenant_host:
            await eventually(host_pod_exists(tenant_host))
            await make_running(Pair(tenant, tenant_host, recorded.syncer, recorded.task))
        vp = await eventually(lambda: _running(tenant))
    await asyncio.sleep(0.5)  # echoes of our writes (and any retries) have come back
    pod_path = "/api/v1/namespaces/demo/pods/web"
    # no bookkeeping write on the pod itself: only the binding and status subresources
    assert [w for w in v.sent if w[0] != "GET" and w[1] == pod_path] == []
    assert len(v.writes("/pods/web/binding")) == 1
    # the host changed twice (bound, then Running): at most one status write for each
    assert 1 <= len(v.writes("/pods/web/status")) <= 2
    assert ANN_HOST_UID not in (vp["metadata"].get("annotations") or {})
    assert vp["status"]["podIP"] == "10.244.0.7"
    assert vp["status"]["containerStatuses"][0]["ready"] is True
    # the host pod was created once and never rewritten (status changes are not spec changes)
    assert len(h.writes("/pods")) == 1 and h.writes(f"/pods/{HPOD}") == []


async def test_status_write_never_lands_on_a_new_pod_of_the_same_name(synced: Pair):
    v = synced.virtual
    pods = synced.syncer.syncers["pods"]
    assert isinstance(pods, PodSyncer)
    old = await v.create(PODS, simple_pod("twin"), namespace="demo")
    await v.delete(PODS, "twin", namespace="demo", grace_period_seconds=0)

    await eventually(virtual_gone(v, "twin"))
    new = await v.create(PODS, simple_pod("twin"), namespace="demo")
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    # what a reconcile holding a stale cache would do: the old pod's host status
    stale_host = {"metadata": {"name": "twin-x-demo-x-vc1", "namespace": HOST_NS},
                  "spec": {}, "status": {"phase": "Running", "podIP": "10.9.9.9"}}
    with pytest.raises(errors.Conflict):
        await pods._sync_up("demo/twin", old, stale_host)
    cur = await v.get(PODS, "twin", namespace="demo")
    assert cur["metadata"]["uid"] == new["metadata"]["uid"]
    assert cur["status"].get("phase") != "Running" and "podIP" not in cur["status"]


async def test_host_pod_deleted_while_the_syncer_was_down(
        planes: tuple[ControlPlane, ControlPlane]):
    """Nothing on the virtual pod records that it had a host pod: after a restart the
    binding and the started status tell it. As after a node's reboot, a pod whose containers
    always restart (bare, or a ReplicaSet's) gets its host pod back on its node with its uid;
    a Job's pod (restartPolicy Never) goes, and its Job makes a new one."""
    vcp, hcp = planes
    await _prepare(vcp, hcp)
    pair = await start_syncer(vcp, hcp)
    owned = simple_pod()
    owned["metadata"]["ownerReferences"] = [{
        "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "controller": True,
        "uid": "6b4b1f2e-0000-4000-8000-000000000001"}]
    job = simple_pod("job-1-abcde")
    job["spec"]["restartPolicy"] = "Never"
    job["metadata"]["ownerReferences"] = [{
        "apiVersion": "batch/v1", "kind": "Job", "name": "job-1", "controller": True,
        "uid": "6b4b1f2e-0000-4000-8000-000000000002"}]
    hsolo = f"solo-x-demo-x-{VC}"
    hjob = f"job-1-abcde-x-demo-x-{VC}"
    try:
        v, h = pair.virtual, pair.host
        web = await v.create(PODS, owned, namespace="demo")
        await v.create(PODS, job, namespace="demo")
        await v.create(PODS, simple_pod("pending"), namespace="demo")
        solo = await v.create(PODS, simple_pod("solo"), namespace="demo")
        hpending = f"pending-x-demo-x-{VC}"

        await eventually(host_pod_exists(h))
        await eventually(host_pod_exists(h, hpending))
        await eventually(host_pod_exists(h, hsolo))
        await eventually(host_pod_exists(h, hjob))
        await make_running(pair)
        await make_running(pair, hsolo)
        await make_running(pair, hjob)
        await eventually(lambda: _running(v))
        await eventually(lambda: _running(v, "solo"))
        await eventually(lambda: _running(v, "job-1-abcde"))
    finally:
        await stop_syncer(pair)
    async with Client(hcp.url, ssl=hcp.client_ssl()) as h:
        for hname in (HPOD, hpending, hsolo, hjob):
            await h.delete(PODS, hname, namespace=HOST_NS, grace_period_seconds=0)
    pair = await start_syncer(vcp, hcp)
    try:
        v, h = pair.virtual, pair.host

        async def outcome() -> None:
            # the Job's pod lost its host pod: its Job must make a new one
            await virtual_gone(v, "job-1-abcde")()
            # the never-scheduled one is simply created again
            await host_pod_exists(h, hpending)()
            assert (await v.get(PODS, "pending", namespace="demo"))["metadata"]["name"]
            # the bare one and the ReplicaSet's come back as they were, on their node
            for name, hname, before in (("solo", hsolo, solo), ("web", HPOD, web)):
                hp = await h.get(PODS, hname, namespace=HOST_NS)
                assert hp["spec"]["nodeName"] == "node-1"
                vp = await v.get(PODS, name, namespace="demo")
                assert vp["metadata"]["uid"] == before["metadata"]["uid"]
        await eventually(outcome)
    finally:
        await stop_syncer(pair)
