"""``isolation.nodeSelector`` + ``tolerations``: a tenant's pods go only to its dedicated
(tainted) nodes, and only those nodes are visible in the virtual cluster."""

from __future__ import annotations

from vkube.api import errors
from vkube.client.resources import NODES, PODS, RUNTIMECLASSES
from vkube.syncer import load_values

from tests.syncer.conftest import (HOST_NS, VC, eventually, getter, planes,  # noqa: F401
                                   start_syncer, stop_syncer)
from tests.syncer.test_e2e_nodes import add_host_nodes


async def test_pinned_to_dedicated_nodes(planes):  # noqa: F811
    vcp, hcp = planes
    await add_host_nodes(hcp)  # n1: disktype=ssd; n2: disktype=hdd, tainted dedicated=x
    values = load_values("sync: {nodes: {enabled: true, syncAllNodes: true}}\n"
                         "isolation: {nodeSelector: 'disktype=hdd', runtimeClassName: gvisor, "
                         "tolerations: [{key: dedicated, value: x, effect: NoSchedule}]}")
    pair = await start_syncer(vcp, hcp, values)
    v, h = pair.virtual, pair.host
    try:
        await eventually(getter(v, NODES, "n2", None))
        try:
            await v.get(NODES, "n1")
            raise AssertionError("n1 is not one of the tenant's nodes")
        except errors.NotFound:
            pass
        # RuntimeClass admission refuses unknown classes: the tenant's and the forced one exist
        for client, handler in ((v, "runc"), (h, "gvisor")):
            await client.create(RUNTIMECLASSES, {"metadata": {"name": handler}, "handler": handler})
        await v.create(PODS, {"metadata": {"name": "p", "namespace": "default"}, "spec": {
            "automountServiceAccountToken": False, "runtimeClassName": "runc",
            "nodeSelector": {"disktype": "ssd"},
            "containers": [{"name": "c", "image": "nginx"}]}}, namespace="default")
        hp = await eventually(getter(h, PODS, f"p-x-default-x-{VC}", HOST_NS), attempts=400)
        assert hp["spec"]["nodeSelector"] == {"disktype": "hdd"}
        assert hp["spec"]["runtimeClassName"] == "gvisor"
        assert {"key": "dedicated", "operator": "Equal", "value": "x",
                "effect": "NoSchedule"} in hp["spec"]["tolerations"]
    finally:
        await stop_syncer(pair)
