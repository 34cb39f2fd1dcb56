"""Quota arithmetic and LimitRanger constraints as pure functions, with upstream's messages."""

from __future__ import annotations

from fractions import Fraction

from vkube.api import quota
from vkube.api.quantity import parse_quantity
from vkube.apiserver.admission.limitranger import (max_constraint, max_request_constraint, min_constraint,
                                                   ratio_constraint)
from vkube.apiserver.admission.quota import must_specify


def pod(*containers: dict, init: tuple[dict, ...] = (), **spec) -> dict:
    return {"spec": {"containers": list(containers), "initContainers": list(init), **spec}}


def c(name: str = "c", requests: dict | None = None, limits: dict | None = None) -> dict:
    res = {}
    if requests:
        res["requests"] = requests
    if limits:
        res["limits"] = limits
    return {"name": name, "resources": res}


def test_pod_usage_sums_containers_and_takes_the_largest_init_container():
    p = pod(c("a", {"cpu": "100m", "memory": "64Mi"}, {"cpu": "200m"}), c("b", {"cpu": "250m"}),
            init=(c("i", {"cpu": "1", "memory": "1Mi"}),))
    u = quota.pod_usage(p)
    assert u["pods"] == 1 and u["count/pods"] == 1
    assert u["requests.cpu"] == Fraction(1) and u["cpu"] == Fraction(1)  # the init container is larger
    assert u["requests.memory"] == 64 * 2**20 and u["limits.cpu"] == Fraction(1, 5)
    assert quota.to_list({"requests.memory": u["requests.memory"], "requests.cpu": Fraction(7, 20)}) == {
        "requests.cpu": "350m", "requests.memory": "64Mi"}


def test_service_and_claim_usage():
    svc = {"spec": {"type": "NodePort", "ports": [{"port": 1}, {"port": 2}]}}
    assert quota.usage("", "services", svc)["services.nodeports"] == 2
    lb = {"spec": {"type": "LoadBalancer", "ports": [{"port": 1}]}}
    assert quota.usage("", "services", lb)["services.loadbalancers"] == 1
    pvc = {"spec": {"storageClassName": "fast", "resources": {"requests": {"storage": "2Gi"}}}}
    u = quota.usage("", "persistentvolumeclaims", pvc)
    assert u["requests.storage"] == 2 * 2**30
    assert u["fast.storageclass.storage.k8s.io/requests.storage"] == 2 * 2**30
    assert u["fast.storageclass.storage.k8s.io/persistentvolumeclaims"] == 1
    assert quota.usage("apps", "deployments", {}) == {"count/deployments.apps": 1}
    assert quota.usage("", "configmaps", {}) == {"count/configmaps": 1, "configmaps": 1}


def test_scopes():
    be, burst = pod(c()), pod(c(requests={"cpu": "1"}))
    term = pod(c(), activeDeadlineSeconds=10)
    q = lambda *scopes, sel=None: {"spec": {"scopes": list(scopes), **({"scopeSelector": sel} if sel else {})}}  # noqa: E731
    assert quota.matches_scopes(q("BestEffort"), "", "pods", be)
    assert not quota.matches_scopes(q("BestEffort"), "", "pods", burst)
    assert quota.matches_scopes(q("NotBestEffort"), "", "pods", burst)
    assert quota.matches_scopes(q("Terminating"), "", "pods", term)
    assert not quota.matches_scopes(q("NotTerminating"), "", "pods", term)
    assert not quota.matches_scopes(q("BestEffort"), "", "services", {})  # scoped: pods only
    high = pod(c(), priorityClassName="high")
    sel = {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]}
    assert quota.matches_scopes(q(sel=sel), "", "pods", high)
    assert not quota.matches_scopes(q(sel=sel), "", "pods", be)
    sel = {"matchExpressions": [{"scopeName": "PriorityClass", "operator": "DoesNotExist"}]}
    assert quota.matches_scopes(q(sel=sel), "", "pods", be)
    assert quota.covers(["pods", "requests.cpu"], q("BestEffort"), "pods")
    assert not quota.covers(["pods", "requests.cpu"], q("BestEffort"), "requests.cpu")


def test_exceeded_and_pretty():
    used = quota.parse_list({"pods": "2", "requests.cpu": "500m"})
    hard = quota.parse_list({"pods": "2", "requests.cpu": "1"})
    new = quota.add(used, {"pods": Fraction(1), "requests.cpu": Fraction(1, 10)})
    assert quota.exceeded(new, hard) == ["pods"]
    assert quota.pretty({"pods": Fraction(1)}, ["pods"]) == "pods=1"
    assert quota.pretty(used, ["requests.cpu"], {"requests.cpu": "500m"}) == "requests.cpu=500m"
    assert quota.is_pod_active({"status": {"phase": "Running"}})
    assert not quota.is_pod_active({"status": {"phase": "Succeeded"}})


def test_must_specify():
    p = pod(c("a", {"cpu": "1"}), c("b"))
    assert must_specify(p, {"pods", "requests.cpu", "limits.memory"}) == (
        "must specify limits.memory for: a,b; requests.cpu for: b")
    assert must_specify(p, {"pods", "count/configmaps"}) is None


def test_limit_range_messages():
    q = parse_quantity
    assert min_constraint("Container", "cpu", q("100m"), {"cpu": "50m"}, {}) == (
        "minimum cpu usage per Container is 100m, but request is 50m")
    assert min_constraint("Container", "cpu", q("100m"), {}, {}) == (
        "minimum cpu usage per Container is 100m.  No request is specified")
    assert min_constraint("Container", "cpu", q("100m"), {"cpu": "200m"}, {"cpu": "50m"}) == (
        "minimum cpu usage per Container is 100m, but limit is 50m")
    assert max_constraint("Pod", "memory", q("1Gi"), {}, {}) == (
        "maximum memory usage per Pod is 1Gi.  No limit is specified")
    assert max_constraint("Pod", "memory", q("1Gi"), {"memory": "2Gi"}, {"memory": "512Mi"}) == (
        "maximum memory usage per Pod is 1Gi, but request is 2Gi")
    assert max_request_constraint("PersistentVolumeClaim", "storage", q("5Gi"), {}) == (
        "maximum storage usage per PersistentVolumeClaim is 5Gi.  No request is specified")
    assert ratio_constraint("Container", "cpu", q("2"), {"cpu": "100m"}, {"cpu": "250m"}) == (
        "cpu max limit to request ratio per Container is 2, but provided ratio is 2.500000")
    assert ratio_constraint("Container", "cpu", q("2"), {}, {"cpu": "1"}) == (
        "cpu max limit to request ratio per Container is 2, but no request is specified or request is 0")
    assert ratio_constraint("Container", "cpu", q("2"), {"cpu": "1"}, {"cpu": "2"}) is None
