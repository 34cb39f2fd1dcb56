"""DaemonSet controller against the in-memory API double, plus node eligibility rules."""

from __future__ import annotations

import copy

from tests.fakes import FakeCluster
from vkube.client.resources import DAEMONSETS, NODES
from vkube.controllers.workloads.daemonset import (
    DaemonSetController, daemon_tolerations, should_run, target_node,
)


def node(name: str, labels: dict | None = None, taints: list | None = None) -> dict:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": {"taints": taints or []}}


def ds(image: str = "agent:1", **spec) -> dict:
    labels = {"app": "agent"}
    tspec = {"containers": [{"name": "c", "image": image}], **spec.pop("pod", {})}
    return {"apiVersion": "apps/v1", "kind": "DaemonSet",
            "metadata": {"name": "agent", "namespace": "default"},
            "spec": {"selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": tspec}, **spec}}


async def cluster(*nodes: dict) -> FakeCluster:
    c = FakeCluster()
    for n in nodes:
        await c.client.create(NODES, n)
    c.add(DaemonSetController)
    return c


async def bind_and_run(c: FakeCluster) -> None:
    """Play scheduler + kubelet: bind each pod to its affinity node, make it Running+Ready."""
    for p in c.list("pods"):
        if not p["spec"].get("nodeName") and not p["metadata"].get("deletionTimestamp"):
            q = copy.deepcopy(p)
            q["spec"]["nodeName"] = target_node(p)
            await c.client.update(type("R", (), {"plural": "pods", "namespaced": True})(), q)
    for p in c.list("pods"):
        await c.run_pods(names=[p["metadata"]["name"]], node=p["spec"]["nodeName"])


def pods_by_node(c: FakeCluster) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in c.list("pods"):
        out.setdefault(target_node(p), []).append(p["spec"]["containers"][0]["image"])
    return out


async def test_one_pod_per_eligible_node() -> None:
    c = await cluster(node("a", {"disk": "ssd"}), node("b"),
                      node("c", taints=[{"key": "gpu", "value": "x", "effect": "NoSchedule"}]))
    await c.client.create(DAEMONSETS, ds())
    await c.settle()
    assert sorted(pods_by_node(c)) == ["a", "b"]
    p = c.list("pods")[0]
    terms = p["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchFields"][0]["key"] == "metadata.name"
    assert any(t["key"] == "node.kubernetes.io/unschedulable" for t in p["spec"]["tolerations"])
    assert "controller-revision-hash" in p["metadata"]["labels"]
    await bind_and_run(c)
    await c.settle()
    st = c.get("daemonsets", "agent")["status"]
    assert (st["desiredNumberScheduled"], st["currentNumberScheduled"], st["numberReady"],
            st["numberAvailable"], st["updatedNumberScheduled"], st["numberMisscheduled"]) \
        == (2, 2, 2, 2, 2, 0)
    # a new node gets a pod; a relabelled node loses it under a nodeSelector
    await c.client.create(NODES, node("d"))
    await c.settle()
    assert sorted(pods_by_node(c)) == ["a", "b", "d"]
    await c.client.patch(DAEMONSETS, "agent", {"spec": {"template": {"spec": {
        "nodeSelector": {"disk": "ssd"}}}}}, namespace="default")
    await c.settle()
    await bind_and_run(c)
    await c.settle()
    assert sorted(pods_by_node(c)) == ["a"]


async def test_rolling_update_max_unavailable() -> None:
    c = await cluster(node("a"), node("b"), node("c"))
    await c.client.create(DAEMONSETS, ds())
    await c.settle()
    await bind_and_run(c)
    await c.settle()
    await c.client.patch(DAEMONSETS, "agent", {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "agent:2"}]}}}}, namespace="default")
    for _ in range(20):
        await c.settle()
        imgs = pods_by_node(c)
        assert sum(1 for v in imgs.values() if v) >= 2  # at most one node without a pod
        await bind_and_run(c)
        if all(v == ["agent:2"] for v in pods_by_node(c).values()) and len(imgs) == 3:
            break
    await c.settle()
    assert pods_by_node(c) == {"a": ["agent:2"], "b": ["agent:2"], "c": ["agent:2"]}
    st = c.get("daemonsets", "agent")["status"]
    assert st["updatedNumberScheduled"] == 3 and st["numberAvailable"] == 3
    assert len(c.list("controllerrevisions")) == 2


async def test_rolling_update_surge_keeps_old_until_new_ready() -> None:
    c = await cluster(node("a"))
    await c.client.create(DAEMONSETS, ds(updateStrategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
    await c.settle()
    await bind_and_run(c)
    await c.settle()
    await c.client.patch(DAEMONSETS, "agent", {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "agent:2"}]}}}}, namespace="default")
    await c.settle()
    assert sorted(pods_by_node(c)["a"]) == ["agent:1", "agent:2"]
    await bind_and_run(c)
    await c.settle()
    assert pods_by_node(c) == {"a": ["agent:2"]}


def test_should_run_rules() -> None:
    spec = {"containers": []}
    assert should_run(spec, node("n")) == (True, True)
    assert should_run(spec, node("n", taints=[{"key": "k", "effect": "NoSchedule"}])) \
        == (False, True)
    assert should_run(spec, node("n", taints=[{"key": "k", "effect": "NoExecute"}])) \
        == (False, False)
    assert should_run(spec, node("n", taints=[
        {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"},
        {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}])) == (True, True)
    tol = {"containers": [], "tolerations": [{"key": "k", "operator": "Exists"}]}
    assert should_run(tol, node("n", taints=[{"key": "k", "effect": "NoExecute"}])) == (True, True)
    aff = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["z1"]}]}]}}}}
    assert should_run(aff, node("n", {"zone": "z1"}))[0]
    assert not should_run(aff, node("n", {"zone": "z2"}))[0]
    hn = daemon_tolerations({"hostNetwork": True})
    assert any(t["key"] == "node.kubernetes.io/network-unavailable" for t in hn)


async def test_failed_pod_replaced_with_backoff() -> None:
    c = await cluster(node("a"))
    await c.client.create(DAEMONSETS, ds())
    await c.settle()
    await bind_and_run(c)
    await c.settle()
    first = c.list("pods")[0]["metadata"]["name"]
    await c.finish_pod(first, phase="Failed", exit_code=1)
    await c.settle()
    [p] = c.list("pods")
    assert p["metadata"]["name"] != first  # replaced at once the first time
    await bind_and_run(c)
    await c.finish_pod(p["metadata"]["name"], phase="Failed", exit_code=1)
    await c.settle()
    assert [q["metadata"]["name"] for q in c.list("pods")] == [p["metadata"]["name"]]
    assert c.requeues["daemonset:default/agent"] == 1.0
    c.advance(1)
    c.kick()
    await c.settle()
    assert [q["metadata"]["name"] for q in c.list("pods")] != [p["metadata"]["name"]]


async def test_resync_of_converged_state_writes_nothing() -> None:
    c = await cluster(node("a"), node("b"))
    await c.client.create(DAEMONSETS, ds())
    await c.settle()
    await bind_and_run(c)
    await c.settle()
    c.client.calls.clear()
    c.kick()
    await c.settle()
    assert c.client.calls == []


async def test_stale_pod_cache_never_creates_duplicates() -> None:
    c = await cluster(node("a"), node("b"))
    c.freeze("pods")
    await c.client.create(DAEMONSETS, ds())
    await c.settle()
    c.kick()
    await c.settle()
    assert sorted(pods_by_node(c)) == ["a", "b"] and len(c.list("pods")) == 2
    c.thaw("pods")
    await c.settle()
    assert len(c.list("pods")) == 2
