"""Scheduler filters, scores and the FitError message, as pure functions over dicts."""

from __future__ import annotations

import random

import pytest

from vkube.host.algorithm import schedule
from vkube.host.nodes import build_node
from vkube.host.predicates import NodeInfo, match_node_selector_term, pod_info, pod_requests, tolerates


def mkpod(name="p", ns="default", *, cpu=None, mem=None, labels=None, spec=None, owner=None):
    res = {}
    if cpu or mem:
        res = {"requests": {k: v for k, v in (("cpu", cpu), ("memory", mem)) if v}}
    meta = {"name": name, "namespace": ns, "uid": f"uid-{ns}-{name}", "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": "ReplicaSet", "name": "rs", "uid": owner, "controller": True}]
    return {"metadata": meta,
            "spec": {"containers": [{"name": "c", "image": "nginx", "resources": res}], **(spec or {})}}


def cluster(n=3, *, cpu="4", memory="8Gi", **kw):
    return [NodeInfo.from_node(build_node(i, cpu=cpu, memory=memory, kubelet_port=10250, **kw))
            for i in range(1, n + 1)]


def place(nodes, pod, node_name):
    info = pod_info(pod)
    next(n for n in nodes if n.name == node_name).add_pod(info)


def test_quantities():
    from vkube.host.predicates import resource_value

    assert resource_value("cpu", "100m") == 100 and resource_value("cpu", "1.5") == 1500
    assert resource_value("cpu", 2) == 2000 and resource_value("cpu", "1n") == 1
    assert resource_value("memory", "1Gi") == 2**30 and resource_value("memory", "1k") == 1000
    assert resource_value("memory", "1e3") == 1000 and resource_value("pods", "129M") == 129_000_000
    with pytest.raises(ValueError):
        resource_value("cpu", "abc")


def test_pod_requests_take_init_max_and_limits():
    spec = {"containers": [{"resources": {"requests": {"cpu": "100m"}}},
                           {"resources": {"limits": {"cpu": "200m", "memory": "1Gi"}}}],
            "initContainers": [{"resources": {"requests": {"cpu": "500m"}}}]}
    assert pod_requests(spec) == {"cpu": 500, "memory": 2**30}


def test_fits_and_spreads_least_allocated():
    nodes = cluster(3)
    place(nodes, mkpod("a", cpu="3"), "vkube-host-node-1")
    place(nodes, mkpod("b", cpu="2"), "vkube-host-node-2")
    node, _ = schedule(pod_info(mkpod(cpu="1")), nodes, rng=random.Random(1))
    assert node == "vkube-host-node-3"


def test_insufficient_cpu_message():
    node, diag = schedule(pod_info(mkpod(cpu="64")), cluster(3))
    assert node is None
    assert diag.message() == (
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
        "3 No preemption victims found for incoming pod.")


def test_mixed_reasons_message_is_sorted_histogram():
    nodes = cluster(3)
    nodes[0].unschedulable = True
    nodes[1].taints = [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]
    node, diag = schedule(pod_info(mkpod(mem="100Gi")), nodes)
    assert node is None
    assert diag.message() == (
        "0/3 nodes are available: 1 Insufficient memory, 1 node(s) had untolerated taint "
        "{dedicated: gpu}, 1 node(s) were unschedulable. preemption: 0/3 nodes are available: "
        "1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.")


def test_too_many_pods():
    nodes = cluster(1)
    nodes[0].allocatable["pods"] = 1
    place(nodes, mkpod("a"), "vkube-host-node-1")
    assert schedule(pod_info(mkpod()), nodes)[1].reasons == {"Too many pods": 1}


def test_node_selector_and_affinity_operators():
    nodes = cluster(3)
    nodes[1].labels["disktype"] = "ssd"
    nodes[2].labels["gen"] = "5"
    assert schedule(pod_info(mkpod(spec={"nodeSelector": {"disktype": "ssd"}})), nodes)[0] == "vkube-host-node-2"
    node_aff = lambda *exprs, fields=(): {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": list(exprs), "matchFields": list(fields)}]}}}}
    gt = node_aff({"key": "gen", "operator": "Gt", "values": ["4"]})
    assert schedule(pod_info(mkpod(spec=gt)), nodes)[0] == "vkube-host-node-3"
    lt = node_aff({"key": "gen", "operator": "Lt", "values": ["4"]})
    assert schedule(pod_info(mkpod(spec=lt)), nodes)[0] is None
    notin = node_aff({"key": "kubernetes.io/hostname", "operator": "NotIn",
                      "values": ["vkube-host-node-1", "vkube-host-node-2"]})
    assert schedule(pod_info(mkpod(spec=notin)), nodes)[0] == "vkube-host-node-3"
    absent = node_aff({"key": "disktype", "operator": "DoesNotExist"},
                      {"key": "gen", "operator": "DoesNotExist"})
    assert schedule(pod_info(mkpod(spec=absent)), nodes)[0] == "vkube-host-node-1"
    by_name = node_aff(fields=[{"key": "metadata.name", "operator": "In", "values": ["vkube-host-node-2"]}])
    assert schedule(pod_info(mkpod(spec=by_name)), nodes)[0] == "vkube-host-node-2"
    _, diag = schedule(pod_info(mkpod(spec={"nodeSelector": {"disktype": "hdd"}})), nodes)
    assert "3 node(s) didn't match Pod's node affinity/selector." in diag.message()
    assert "3 Preemption is not helpful for scheduling." in diag.message()


def test_match_node_selector_term_exists():
    node = build_node(1, cpu="1", memory="1Gi", kubelet_port=1)
    assert match_node_selector_term({"matchExpressions": [{"key": "kubernetes.io/os", "operator": "Exists"}]}, node)
    assert not match_node_selector_term({}, node)


def test_taints_and_tolerations():
    assert tolerates({"operator": "Exists"}, {"key": "x", "effect": "NoSchedule"})
    assert tolerates({"key": "x", "value": "1", "effect": "NoSchedule"}, {"key": "x", "value": "1", "effect": "NoSchedule"})
    assert not tolerates({"key": "x", "value": "2"}, {"key": "x", "value": "1", "effect": "NoSchedule"})
    assert not tolerates({"key": "x", "operator": "Exists", "effect": "NoExecute"}, {"key": "x", "effect": "NoSchedule"})
    nodes = cluster(2)
    for n in nodes:
        n.taints = [{"key": "dedicated", "value": "db", "effect": "NoExecute"}]
    assert schedule(pod_info(mkpod()), nodes)[0] is None
    tol = {"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoExecute"}]}
    assert schedule(pod_info(mkpod(spec=tol)), nodes)[0] is not None


def test_prefer_no_schedule_scores_lower():
    nodes = cluster(2)
    nodes[0].taints = [{"key": "soft", "effect": "PreferNoSchedule"}]
    for seed in range(5):
        assert schedule(pod_info(mkpod()), nodes, rng=random.Random(seed))[0] == "vkube-host-node-2"


def test_not_ready_node_is_filtered():
    nodes = cluster(2)
    nodes[0].ready = False
    assert schedule(pod_info(mkpod()), nodes)[0] == "vkube-host-node-2"


def _pod_aff(kind, key, labels, weight=None):
    term = {"labelSelector": {"matchLabels": labels}, "topologyKey": key}
    if weight is None:
        return {"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [term]}}}
    return {"affinity": {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": weight, "podAffinityTerm": term}]}}}


def test_pod_affinity_hostname_and_zone():
    nodes = cluster(6)  # zones a,b,c,a,b,c
    place(nodes, mkpod("db", labels={"app": "db"}), "vkube-host-node-2")
    spec = _pod_aff("podAffinity", "kubernetes.io/hostname", {"app": "db"})
    assert schedule(pod_info(mkpod("web", spec=spec)), nodes)[0] == "vkube-host-node-2"
    spec = _pod_aff("podAffinity", "topology.kubernetes.io/zone", {"app": "db"})
    got = {schedule(pod_info(mkpod("web", spec=spec)), nodes, rng=random.Random(s))[0] for s in range(20)}
    assert got <= {"vkube-host-node-2", "vkube-host-node-5"}
    # No pod matches at all and the pod does not match itself: unschedulable.
    spec = _pod_aff("podAffinity", "kubernetes.io/hostname", {"app": "cache"})
    node, diag = schedule(pod_info(mkpod("web", spec=spec)), nodes)
    assert node is None and "6 node(s) didn't match pod affinity rules" in diag.message()
    # ...but the first pod of a self-affine group may go anywhere.
    assert schedule(pod_info(mkpod("c1", labels={"app": "cache"}, spec=spec)), nodes)[0] is not None


def test_pod_anti_affinity_and_existing_anti_affinity():
    nodes = cluster(3)
    spec = _pod_aff("podAntiAffinity", "kubernetes.io/hostname", {"app": "web"})
    placed = []
    for i in range(3):
        node, _ = schedule(pod_info(mkpod(f"w{i}", labels={"app": "web"}, spec=spec)), nodes)
        place(nodes, mkpod(f"w{i}", labels={"app": "web"}, spec=spec), node)
        placed.append(node)
    assert len(set(placed)) == 3
    node, diag = schedule(pod_info(mkpod("w4", labels={"app": "web"}, spec=spec)), nodes)
    assert node is None and "3 node(s) didn't match pod anti-affinity rules" in diag.message()
    # A pod without its own rules is still kept away by the existing pods' anti-affinity.
    node, diag = schedule(pod_info(mkpod("x", labels={"app": "web"})), nodes)
    assert node is None and "3 node(s) didn't satisfy existing pods anti-affinity rules" in diag.message()


def test_preferred_pod_affinity_and_node_affinity_scores():
    nodes = cluster(3)
    place(nodes, mkpod("db", labels={"app": "db"}), "vkube-host-node-3")
    spec = _pod_aff("podAffinity", "kubernetes.io/hostname", {"app": "db"}, weight=100)
    for s in range(5):
        assert schedule(pod_info(mkpod(spec=spec)), nodes, rng=random.Random(s))[0] == "vkube-host-node-3"
    spec = _pod_aff("podAntiAffinity", "kubernetes.io/hostname", {"app": "db"}, weight=100)
    for s in range(5):
        assert schedule(pod_info(mkpod(spec=spec)), nodes, rng=random.Random(s))[0] != "vkube-host-node-3"
    pref = {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [
            {"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["b"]}]}}]}}}
    assert schedule(pod_info(mkpod(spec=pref)), nodes)[0] == "vkube-host-node-2"


def test_topology_spread_do_not_schedule():
    nodes = cluster(3)
    c = {"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": {"app": "s"}}}
    place(nodes, mkpod("s1", labels={"app": "s"}), "vkube-host-node-1")
    place(nodes, mkpod("s2", labels={"app": "s"}), "vkube-host-node-2")
    node, _ = schedule(pod_info(mkpod("s3", labels={"app": "s"}, spec={"topologySpreadConstraints": [c]})), nodes)
    assert node == "vkube-host-node-3"
    nodes[2].unschedulable = True
    node, diag = schedule(pod_info(mkpod("s3", labels={"app": "s"}, spec={"topologySpreadConstraints": [c]})), nodes)
    assert node is None
    assert "2 node(s) didn't match pod topology spread constraints" in diag.message()
    c2 = dict(c, topologyKey="example.com/rack")
    node, diag = schedule(pod_info(mkpod("s4", labels={"app": "s"}, spec={"topologySpreadConstraints": [c2]})), nodes)
    assert "missing required label" in diag.message()


def test_default_spread_of_one_controller():
    nodes = cluster(3)
    chosen = []
    for i in range(6):
        p = mkpod(f"r{i}", owner="rs-uid")
        node, _ = schedule(pod_info(p), nodes, rng=random.Random(i))
        place(nodes, p, node)
        chosen.append(node)
    assert sorted(chosen.count(n.name) for n in nodes) == [2, 2, 2]
