"""Node objects, Ready/NotReady transitions and taint-based eviction timing (pure parts)."""

from __future__ import annotations

from vkube.host.lifecycle import eviction_time
from vkube.host.nodes import build_lease, build_node, with_ready


def test_node_shape():
    n = build_node(4, cpu="8", memory="16Gi", kubelet_port=12345, zones=("a", "b", "c"))
    meta, status = n["metadata"], n["status"]
    assert meta["name"] == "vkube-host-node-4"
    assert meta["labels"]["kubernetes.io/hostname"] == "vkube-host-node-4"
    assert meta["labels"]["topology.kubernetes.io/zone"] == "a"
    assert meta["labels"]["kubernetes.io/os"] == "linux"
    assert n["spec"]["podCIDR"] == "10.244.4.0/24"
    assert status["allocatable"]["cpu"] == "8" and status["capacity"]["pods"] == "110"
    assert {c["type"] for c in status["conditions"]} == {"Ready", "MemoryPressure", "DiskPressure", "PIDPressure"}
    assert {a["type"]: a["address"] for a in status["addresses"]} == {"InternalIP": "127.0.0.1",
                                                                      "Hostname": "vkube-host-node-4"}
    assert status["daemonEndpoints"]["kubeletEndpoint"]["Port"] == 12345
    info = status["nodeInfo"]
    assert info["operatingSystem"] == "linux" and info["containerRuntimeVersion"].startswith("containerd://")
    lease = build_lease({"metadata": {"name": "vkube-host-node-4", "uid": "u"}})
    assert lease["metadata"]["namespace"] == "kube-node-lease" and lease["spec"]["holderIdentity"] == "vkube-host-node-4"
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"


def test_not_ready_and_back():
    n = build_node(1, cpu="1", memory="1Gi", kubelet_port=1)
    conds, taints = with_ready(n, False)
    ready = next(c for c in conds if c["type"] == "Ready")
    assert ready["status"] == "Unknown" and ready["reason"] == "NodeStatusUnknown"
    assert {(t["key"], t["effect"]) for t in taints} == {
        ("node.kubernetes.io/unreachable", "NoSchedule"), ("node.kubernetes.io/unreachable", "NoExecute")}
    n["status"]["conditions"], n["spec"]["taints"] = conds, taints
    conds, taints = with_ready(n, True)
    assert next(c for c in conds if c["type"] == "Ready")["status"] == "True" and taints == []


TAINT = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-01-01T00:00:00Z"}
T_ADDED = 1767225600.0


def pod(*tolerations):
    return {"spec": {"tolerations": list(tolerations)}}


def test_eviction_time():
    now = T_ADDED + 10
    # No toleration at all for unreachable: the DefaultTolerationSeconds default applies.
    assert eviction_time(pod(), [TAINT], now=now, default_seconds=300) == T_ADDED + 300
    tol = {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"}
    assert eviction_time(pod(dict(tol, tolerationSeconds=5)), [TAINT], now=now, default_seconds=300) == T_ADDED + 5
    assert eviction_time(pod(tol), [TAINT], now=now, default_seconds=300) is None  # tolerated forever
    custom = {"key": "dedicated", "value": "x", "effect": "NoExecute"}
    assert eviction_time(pod(), [custom], now=now, default_seconds=300) == now  # evict at once
    assert eviction_time(pod(), [{"key": "x", "effect": "NoSchedule"}], now=now, default_seconds=300) is None


async def test_heartbeats_renew_leases_and_ready(control_plane):
    import asyncio

    from vkube.client.resources import LEASES, NODES
    from vkube.host.runner import EmbeddedHost

    from tests.host.test_host_kubectl import eventually

    host = EmbeddedHost(control_plane.url, pki=control_plane.cp.pki, nodes=2, lease_interval=0.05, status_interval=0.1)
    await host.start()
    try:
        async with control_plane.client() as c:
            first = await c.get(LEASES, "vkube-host-node-1", namespace="kube-node-lease")
            beat = lambda n: next(x["lastHeartbeatTime"] for x in n["status"]["conditions"] if x["type"] == "Ready")

            async def renewed():
                lease = await c.get(LEASES, "vkube-host-node-1", namespace="kube-node-lease")
                return lease["spec"]["renewTime"] != first["spec"]["renewTime"]

            await eventually(renewed)
            await eventually(lambda: asyncio.sleep(0, host.nodes.heartbeats > 8))
            # A NotReady node gets no more heartbeats; adding a node takes the next index.
            await host.set_ready("vkube-host-node-2", False)
            before = beat(await c.get(NODES, "vkube-host-node-2"))
            assert await host.add_node() == "vkube-host-node-3"
            node3 = await c.get(NODES, "vkube-host-node-3")
            assert node3["spec"]["podCIDR"] == "10.244.3.0/24"
            assert node3["metadata"]["labels"]["topology.kubernetes.io/zone"] == "c"
            ready = lambda n: next(x["status"] for x in n["status"]["conditions"] if x["type"] == "Ready")

            async def unknown():
                return ready(await c.get(NODES, "vkube-host-node-2")) == "Unknown"

            await eventually(unknown)
            # the other nodes keep beating meanwhile; node-2's heartbeat stays where it was
            beats = host.nodes.heartbeats
            await eventually(lambda: asyncio.sleep(0, host.nodes.heartbeats > beats + 2))
            assert beat(await c.get(NODES, "vkube-host-node-2")) == before
    finally:
        await host.stop()
