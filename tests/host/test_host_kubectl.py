"""The embedded host against a real control plane, driven by the real kubectl."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from vkube.client.resources import EVENTS, LEASES, NODES, PODS
from vkube.host.runner import EmbeddedHost
from vkube.host.stages import KubeletConfig


@pytest.fixture
async def host(control_plane) -> AsyncIterator[EmbeddedHost]:
    h = EmbeddedHost(control_plane.url, pki=control_plane.cp.pki, nodes=3, seed=1,
                     kubelet=KubeletConfig(stop_seconds=0.1, backoff_base=0.5, backoff_max=2.0))
    await h.start()
    try:
        yield h
    finally:
        await h.stop()


async def kubectl(cp, *args: str, check: bool = True, input: str | None = None):
    """kubectl in a thread: the API server shares this event loop."""
    return await asyncio.to_thread(cp.kubectl, *args, check=check, input=input)


async def eventually(fn: Callable[[], Any], *, timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll an async predicate until it returns something truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await fn()
        if got:
            return got
        if loop.time() > deadline:
            raise AssertionError(f"condition not met in {timeout}s; last value {got!r}")
        await asyncio.sleep(interval)


async def pod_json(cp, name: str) -> dict:
    out = await kubectl(cp, "get", "pod", name, "-o", "json")
    return json.loads(out.stdout)


async def test_get_nodes_lists_ready_nodes(control_plane, host):
    out = (await kubectl(control_plane, "get", "nodes")).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 4, out
    for i in (1, 2, 3):
        assert any(line.split()[0] == f"vkube-host-node-{i}" and line.split()[1] == "Ready" for line in lines), out
    node = json.loads((await kubectl(control_plane, "get", "node", "vkube-host-node-2", "-o", "json")).stdout)
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == host.kubelet_port
    assert node["spec"]["podCIDR"] == "10.244.2.0/24"
    assert node["metadata"]["labels"]["topology.kubernetes.io/zone"] == "b"
    async with control_plane.client() as c:
        lease = await c.get(LEASES, "vkube-host-node-1", namespace="kube-node-lease")
        assert lease["spec"]["holderIdentity"] == "vkube-host-node-1" and lease["spec"]["renewTime"]
    assert node["status"]["nodeInfo"]["kubeletVersion"].startswith("v1.")


async def test_run_pod_gets_running_with_ip_and_logs(control_plane, host):
    await kubectl(control_plane, "run", "web", "--image=nginx")

    async def running():
        pod = await pod_json(control_plane, "web")
        return pod if pod["status"].get("phase") == "Running" and pod["status"].get("podIP") else None

    pod = await eventually(running)
    assert pod["spec"]["nodeName"].startswith("vkube-host-node-")
    idx = pod["spec"]["nodeName"].rsplit("-", 1)[1]
    assert pod["status"]["podIP"].startswith(f"10.244.{idx}.")
    assert pod["status"]["hostIP"] == "127.0.0.1"
    cs = pod["status"]["containerStatuses"][0]
    assert cs["ready"] and cs["started"] and cs["containerID"].startswith("containerd://")
    wide = (await kubectl(control_plane, "get", "pod", "web", "-o", "wide")).stdout
    assert "Running" in wide and pod["status"]["podIP"] in wide
    logs = (await kubectl(control_plane, "logs", "web")).stdout
    assert "nginx" in logs and len(logs.splitlines()) >= 3
    tail = (await kubectl(control_plane, "logs", "web", "--tail=1")).stdout
    assert len(tail.splitlines()) == 1
    # exec goes through the API server's pods/exec WebSocket relay to the node's kubelet
    hello = (await kubectl(control_plane, "exec", "web", "--", "echo", "hello", "exec")).stdout
    assert hello.strip() == "hello exec"
    failed = await kubectl(control_plane, "exec", "web", "--", "false", check=False)
    assert failed.returncode != 0

    async def events():
        async with control_plane.client() as c:
            evs = (await c.list(EVENTS, namespace="default")).get("items", [])
        return {e["reason"] for e in evs if e["involvedObject"]["name"] == "web"} >= {
            "Scheduled", "Pulled", "Created", "Started"}  # Pulling only if not yet on the node

    await eventually(events)
    await kubectl(control_plane, "delete", "pod", "web", "--wait=true", "--timeout=20s")


async def test_unschedulable_pod_stays_pending_and_describe_says_why(control_plane, host):
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hungry"},
                "spec": {"containers": [{"name": "c", "image": "nginx",
                                         "resources": {"requests": {"cpu": "64"}}}]}}
    await kubectl(control_plane, "create", "-f", "-", input=json.dumps(manifest))
    msg = "0/3 nodes are available: 3 Insufficient cpu."

    async def reported():
        out = (await kubectl(control_plane, "describe", "pod", "hungry")).stdout
        return out if "FailedScheduling" in out and msg in out else None

    out = await eventually(reported)
    assert "Pending" in out
    pod = await pod_json(control_plane, "hungry")
    cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable" and msg in cond["message"]
    assert not pod["spec"].get("nodeName")


async def test_node_selector_waits_for_label(control_plane, host):
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ssd"},
                "spec": {"nodeSelector": {"disktype": "ssd"}, "containers": [{"name": "c", "image": "nginx"}]}}
    await kubectl(control_plane, "create", "-f", "-", input=json.dumps(manifest))

    async def failed():
        pod = await pod_json(control_plane, "ssd")
        conds = pod["status"].get("conditions") or []
        return any(c["type"] == "PodScheduled" and c["status"] == "False" for c in conds)

    await eventually(failed)
    await kubectl(control_plane, "label", "node", "vkube-host-node-3", "disktype=ssd")

    async def bound():
        return (await pod_json(control_plane, "ssd"))["spec"].get("nodeName")

    assert await eventually(bound) == "vkube-host-node-3"


async def test_cordon_keeps_new_pods_off(control_plane, host):
    await kubectl(control_plane, "cordon", "vkube-host-node-1")
    await kubectl(control_plane, "cordon", "vkube-host-node-2")
    out = (await kubectl(control_plane, "get", "nodes")).stdout
    assert "SchedulingDisabled" in out
    for i in range(3):
        await kubectl(control_plane, "run", f"c{i}", "--image=nginx")
    for i in range(3):
        async def bound(i=i):
            return (await pod_json(control_plane, f"c{i}"))["spec"].get("nodeName")
        assert await eventually(bound) == "vkube-host-node-3"


async def test_completed_and_error_pods(control_plane, host):
    await kubectl(control_plane, "run", "ok", "--image=busybox", "--restart=Never", "--", "sleep", "1")
    await kubectl(control_plane, "run", "bad", "--image=busybox", "--restart=Never", "--", "sh", "-c", "exit 3")

    async def phase(name):
        return (await pod_json(control_plane, name))["status"].get("phase")

    async def done(name, want):
        return await phase(name) == want

    await eventually(lambda: done("ok", "Succeeded"))
    await eventually(lambda: done("bad", "Failed"))
    ok = await pod_json(control_plane, "ok")
    term = ok["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "Completed" and term["exitCode"] == 0
    bad = await pod_json(control_plane, "bad")
    term = bad["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["reason"] == "Error" and term["exitCode"] == 3
    out = (await kubectl(control_plane, "get", "pods")).stdout
    assert any(line.split()[0] == "ok" and "Completed" in line for line in out.splitlines()), out
    assert any(line.split()[0] == "bad" and "Error" in line for line in out.splitlines()), out


async def test_crashloop_restarts(control_plane, host):
    await kubectl(control_plane, "run", "crash", "--image=busybox", "--", "sh", "-c", "echo boom; exit 1")

    async def restarted():
        pod = await pod_json(control_plane, "crash")
        cs = (pod["status"].get("containerStatuses") or [{}])[0]
        return cs if cs.get("restartCount", 0) >= 2 else None

    cs = await eventually(restarted)
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    prev = (await kubectl(control_plane, "logs", "crash", "--previous")).stdout
    assert "boom" in prev


async def test_delete_is_graceful_and_completes(control_plane, host):
    await kubectl(control_plane, "run", "gone", "--image=nginx")

    async def running():
        return (await pod_json(control_plane, "gone"))["status"].get("phase") == "Running"

    await eventually(running)
    await kubectl(control_plane, "delete", "pod", "gone", "--timeout=20s")
    out = await kubectl(control_plane, "get", "pod", "gone", check=False)
    assert out.returncode != 0 and "NotFound" in out.stderr


async def test_not_ready_node_evicts_pods_without_tolerations(control_plane, host):
    # The API server's DefaultTolerationSeconds admission gives every pod 300s; ask for 1s.
    manifest = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "victim"},
                "spec": {"nodeName": "vkube-host-node-1", "containers": [{"name": "c", "image": "nginx"}],
                         "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                          "effect": "NoExecute", "tolerationSeconds": 1}]}}
    keep = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "stays"},
            "spec": {"nodeName": "vkube-host-node-1", "containers": [{"name": "c", "image": "nginx"}],
                     "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                                      "effect": "NoExecute"}]}}
    for m in (manifest, keep):
        await kubectl(control_plane, "create", "-f", "-", input=json.dumps(m))
    await host.set_ready("vkube-host-node-1", False)
    out = (await kubectl(control_plane, "get", "nodes")).stdout
    assert any(line.startswith("vkube-host-node-1 ") and "NotReady" in line for line in out.splitlines()), out

    async def evicted():
        return (await kubectl(control_plane, "get", "pod", "victim", check=False)).returncode != 0

    await eventually(evicted)
    assert (await pod_json(control_plane, "stays"))["metadata"]["name"] == "stays"


async def test_drain_evicts_through_the_eviction_api(control_plane, host):
    for i in range(2):
        m = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"d{i}"},
             "spec": {"nodeName": "vkube-host-node-2", "containers": [{"name": "c", "image": "nginx"}]}}
        await kubectl(control_plane, "create", "-f", "-", input=json.dumps(m))
    evicted = await host.drain("vkube-host-node-2", timeout=10)
    assert sorted(evicted) == ["default/d0", "default/d1"]
    async with control_plane.client() as c:
        node = await c.get(NODES, "vkube-host-node-2")
        assert node["spec"]["unschedulable"] is True
        assert any(t["key"] == "node.kubernetes.io/unschedulable" for t in node["spec"]["taints"])

        async def gone():
            pods = (await c.list(PODS, namespace="default")).get("items", [])
            return not [p for p in pods if p["metadata"]["name"] in ("d0", "d1")]

        await eventually(gone)
