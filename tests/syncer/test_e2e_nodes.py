"""Node modes: real nodes, syncAllNodes + nodeSelector, enableScheduler, tenant edits kept."""

from __future__ import annotations

from vkube.api import errors
from vkube.client import Client
from vkube.client.resources import NAMESPACES, NODES, PODS
from vkube.syncer import load_values

from .conftest import HOST_NS, VC, eventually, start_syncer, stop_syncer


async def add_host_nodes(hcp) -> None:
    async with Client(hcp.url, ssl=hcp.client_ssl()) as h:
        for name, disk in (("n1", "ssd"), ("n2", "hdd")):
            await h.create(NODES, {"metadata": {"name": name, "labels": {
                "disktype": disk, "kubernetes.io/hostname": name}},
                "spec": {"taints": [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}]
                         if name == "n2" else []}})
            n = await h.get(NODES, name)
            n["status"] = {"capacity": {"cpu": "4"}, "allocatable": {"cpu": "4"},
                           "addresses": [{"type": "InternalIP", "address": "172.18.0.9"}],
                           "conditions": [{"type": "Ready", "status": "True"}]}
            await h.update(NODES, n, subresource="status")


async def test_real_nodes_all_with_selector_and_tenant_labels_kept(planes):
    vcp, hcp = planes
    await add_host_nodes(hcp)
    values = load_values("sync: {nodes: {enabled: true, syncAllNodes: true, "
                         "nodeSelector: 'disktype=ssd'}}")
    pair = await start_syncer(vcp, hcp, values)
    v, h = pair.virtual, pair.host
    try:
        async def n1_synced():
            try:
                node = await v.get(NODES, "n1")
            except errors.NotFound as e:
                raise AssertionError from e
            assert node["status"]["capacity"] == {"cpu": "4"}
            return node
        node = await eventually(n1_synced)
        assert node["metadata"]["labels"]["disktype"] == "ssd"
        assert node["status"]["addresses"][0] == {"type": "InternalIP", "address": "127.0.0.1"}
        try:
            await v.get(NODES, "n2")
            raise AssertionError("n2 does not match the nodeSelector")
        except errors.NotFound:
            pass

        # the tenant labels the virtual node; then the host changes another label
        node["metadata"]["labels"]["team"] = "blue"
        await v.update(NODES, node)
        hn = await h.get(NODES, "n1")
        hn["metadata"]["labels"]["zone"] = "z1"
        await h.update(NODES, hn)

        async def both():
            got = await v.get(NODES, "n1")
            assert got["metadata"]["labels"].get("zone") == "z1"
            assert got["metadata"]["labels"].get("team") == "blue"
        await eventually(both)
    finally:
        await stop_syncer(pair)


async def test_enable_scheduler_keeps_the_virtual_node_choice(planes, tmp_path):
    """The virtual cluster's own scheduler (a VirtualCluster with enableScheduler) places the
    pod on a synced node; the syncer creates the host pod only then, on that node."""
    from vkube.cluster import ClusterConfig, HostConnection, VirtualCluster

    _, hcp = planes
    await add_host_nodes(hcp)
    values = load_values("sync: {nodes: {enabled: true, enableScheduler: true}}")
    vc = VirtualCluster(ClusterConfig(
        name=VC, data_dir=tmp_path / "vc", values=values, controllers=False,
        host=HostConnection(str(hcp.data_dir / "kubeconfig"), namespace=HOST_NS)))
    await vc.start()
    v, h = Client(vc.url, ssl=vc.control_plane.client_ssl()), Client(hcp.url, ssl=hcp.client_ssl())
    try:
        await vc.wait_ready(timeout=60)
        assert vc.scheduler is not None

        async def nodes_there():
            names = {n["metadata"]["name"] for n in (await v.list(NODES))["items"]}
            assert names == {"n1", "n2"}
        await eventually(nodes_there)
        n2 = await v.get(NODES, "n2")
        assert n2["spec"]["taints"][0]["key"] == "dedicated"
        await v.create(NAMESPACES, {"metadata": {"name": "demo"}})
        # fits no node: reported as unschedulable, and nothing is created on the host
        await v.create(PODS, {"metadata": {"name": "nowhere", "namespace": "demo"},
                              "spec": {"nodeSelector": {"disktype": "nvme"},
                                       "containers": [{"name": "c", "image": "x"}]}},
                       namespace="demo")

        async def unschedulable():
            pod = await v.get(PODS, "nowhere", namespace="demo")
            cond = [c for c in pod["status"].get("conditions") or [] if c["type"] == "PodScheduled"]
            assert cond and cond[0]["reason"] == "Unschedulable", pod["status"]
        await eventually(unschedulable)
        try:
            await h.get(PODS, f"nowhere-x-demo-x-{VC}", namespace=HOST_NS)
            raise AssertionError("created before the virtual scheduler placed it")
        except errors.NotFound:
            pass
        # n2 is tainted, so the virtual scheduler picks n1; the host pod keeps that choice
        await v.create(PODS, {"metadata": {"name": "p", "namespace": "demo"},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}},
                       namespace="demo")

        async def placed():
            assert (await v.get(PODS, "p", namespace="demo"))["spec"].get("nodeName") == "n1"
            try:
                hp = await h.get(PODS, f"p-x-demo-x-{VC}", namespace=HOST_NS)
            except errors.NotFound as e:
                raise AssertionError from e
            assert hp["spec"]["nodeName"] == "n1"
        await eventually(placed)
    finally:
        await v.close()
        await h.close()
        await vc.stop()
