"""isolation.enabled guard rails on the host; priority classes; pause keeps volumes."""

from __future__ import annotations

from vkube.client.resources import (
    EVENTS,
    LIMITRANGES,
    NAMESPACES,
    NETWORKPOLICIES,
    PODS,
    PRIORITYCLASSES,
    PVCS,
    RESOURCEQUOTAS,
)
from vkube.syncer import cleanup_host, load_values
from vkube.syncer.podrewrite import system_class_host_name

from .conftest import HOST_NS, VC, eventually, getter, start_syncer, stop_syncer


async def test_isolation_priority_classes_and_pause(planes):
    vcp, hcp = planes
    values = load_values("isolation: {enabled: true}\nsync: {priorityclasses: {enabled: true, "
                         "maxValue: 1000000, allowPreemption: true}}")
    assert values.host_access == "reject"
    pair = await start_syncer(vcp, hcp, values)
    v, h = pair.virtual, pair.host
    try:
        name = f"vkube-isolation-{VC}"
        quota = await eventually(getter(h, RESOURCEQUOTAS, name, HOST_NS))
        assert quota["spec"]["hard"]["count/pods"] == "20"
        await eventually(getter(h, LIMITRANGES, name, HOST_NS))
        np = await eventually(getter(h, NETWORKPOLICIES, name, HOST_NS))
        assert np["spec"]["policyTypes"] == ["Egress"]

        async def pss():
            ns = await h.get(NAMESPACES, HOST_NS)
            assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
        await eventually(pss)

        # drift is repaired
        await h.patch(RESOURCEQUOTAS, name, {"spec": {"hard": {"count/pods": "1000"}}}, namespace=HOST_NS)

        async def repaired():
            got = await h.get(RESOURCEQUOTAS, name, namespace=HOST_NS)
            assert got["spec"]["hard"]["count/pods"] == "20"
        await eventually(repaired)

        await v.create(PRIORITYCLASSES, {"metadata": {"name": "high"}, "value": 1_000_000,
                                         "globalDefault": True})
        hpc = await eventually(getter(h, PRIORITYCLASSES, f"high-x-{VC}"))
        assert hpc["value"] == 1_000_000 and hpc["globalDefault"] is False
        assert hpc["preemptionPolicy"] == "PreemptLowerPriority", "the owner allows preemption"

        await v.create(NAMESPACES, {"metadata": {"name": "demo"}})
        await v.create(PVCS, {"metadata": {"name": "data", "namespace": "demo"}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}},
            namespace="demo")
        await v.create(PODS, {"metadata": {"name": "p", "namespace": "demo"}, "spec": {
            "priorityClassName": "high", "containers": [{"name": "c", "image": "x"}],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}},
            namespace="demo")
        hp = await eventually(getter(h, PODS, f"p-x-demo-x-{VC}", HOST_NS))
        assert hp["spec"]["priorityClassName"] == f"high-x-{VC}"
        await eventually(getter(h, PVCS, f"data-x-demo-x-{VC}", HOST_NS))

        # a built-in class goes down under a name the host does not reserve (system-), at
        # maxValue: the pod ranks on the host as the tenant's highest class may, and is told
        crit = system_class_host_name(VC, "system-cluster-critical")
        hcrit = await eventually(getter(h, PRIORITYCLASSES, crit))
        assert hcrit["value"] == 1_000_000 and hcrit["globalDefault"] is False
        await v.create(PODS, {"metadata": {"name": "crit", "namespace": "demo"}, "spec": {
            "priorityClassName": "system-cluster-critical",
            "containers": [{"name": "c", "image": "x"}]}}, namespace="demo")
        hc = await eventually(getter(h, PODS, f"crit-x-demo-x-{VC}", HOST_NS))
        assert hc["spec"]["priorityClassName"] == crit and hc["spec"]["priority"] == 1_000_000
        assert (await v.get(PODS, "crit", namespace="demo"))["spec"]["priority"] == 2_000_000_000

        async def told():
            events = (await v.list(EVENTS, namespace="demo"))["items"]
            said = [e for e in events if e["reason"] == "SystemPriorityCapped"]
            assert said and said[0]["involvedObject"]["name"] == "crit"
            assert "system-cluster-critical" in said[0]["message"]
            assert "value 1000000" in said[0]["message"]
        await eventually(told)
    finally:
        await stop_syncer(pair)

    from vkube.client import Client
    async with Client(hcp.url, ssl=hcp.client_ssl()) as h2:
        assert await cleanup_host(h2, HOST_NS, VC, workloads_only=True, grace_period_seconds=0) == 2
        await h2.get(PVCS, f"data-x-demo-x-{VC}", namespace=HOST_NS)  # the data stays
        assert not (await h2.list(PODS, namespace=HOST_NS))["items"]
