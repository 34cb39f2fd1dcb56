"""Node modes: real nodes, syncAllNodes + nodeSelector, enableScheduler, tenant edits kept."""

from __future__ import annotations

from vkube.api import errors
from vkube.client import Client
from vkube.client.resources import NAMESPACES, NODES, PODS
from vkube.syncer import load_values

from .conftest import HOST_NS, VC, eventually, start_syncer, stop_syncer


async def add_host_nodes(url: str) -> None:
    async with Client(url) as h:
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
    await add_host_nodes(hcp.url)
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


async def test_enable_scheduler_keeps_the_virtual_node_choice(planes):
    vcp, hcp = planes
    await add_host_nodes(hcp.url)
    values = load_values("sync: {nodes: {enabled: true, enableScheduler: true}}")
    pair = await start_syncer(vcp, hcp, values)
    v, h = pair.virtual, pair.host
    try:
        async def nodes_there():
            names = {n["metadata"]["name"] for n in (await v.list(NODES))["items"]}
            assert names == {"n1", "n2"}
        await eventually(nodes_there)
        n2 = await v.get(NODES, "n2")
        assert n2["spec"]["taints"][0]["key"] == "dedicated"
        await v.create(NAMESPACES, {"metadata": {"name": "demo"}})
        await v.create(PODS, {"metadata": {"name": "p", "namespace": "demo"},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}},
                       namespace="demo")
        # not placed by the virtual scheduler yet: nothing on the host
        try:
            await h.get(PODS, f"p-x-demo-x-{VC}", namespace=HOST_NS)
            raise AssertionError("created before the virtual scheduler placed it")
        except errors.NotFound:
            pass
        await v.create(PODS, {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
                              "target": {"kind": "Node", "name": "n1"}},
                       namespace="demo", subresource="binding", name="p")

        async def placed():
            try:
                hp = await h.get(PODS, f"p-x-demo-x-{VC}", namespace=HOST_NS)
            except errors.NotFound as e:
                raise AssertionError from e
            assert hp["spec"]["nodeName"] == "n1"
        await eventually(placed)
    finally:
        await stop_syncer(pair)
