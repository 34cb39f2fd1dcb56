"""Deployment controller (with the ReplicaSet controller) against the in-memory API double."""

from __future__ import annotations

import copy

from tests.fakes import FakeCluster

from vkube.client.resources import DEPLOYMENTS
from vkube.controllers.workloads._common import controller_ref, get_condition
from vkube.controllers.workloads.deployment import DeploymentController
from vkube.controllers.workloads.history import POD_TEMPLATE_HASH
from vkube.controllers.workloads.replicaset import ReplicaSetController
from vkube.controllers.workloads.rollout import REVISION


def deploy(name: str = "web", replicas: int = 3, image: str = "nginx:1", **spec) -> dict:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": image}]}},
                     **spec}}


def cluster() -> FakeCluster:
    c = FakeCluster()
    c.add(DeploymentController)
    c.add(ReplicaSetController)
    return c


async def converge(c: FakeCluster, rounds: int = 30) -> None:
    """Play kubelet (all pods ready) and run controllers until nothing changes."""
    for _ in range(rounds):
        before = copy.deepcopy(c.objs)
        await c.settle()
        await c.run_pods()
        await c.settle()
        if c.objs == before:
            assert not c.errors, c.errors
            return
    raise AssertionError(f"did not converge: {c.errors}")


def rs_list(c: FakeCluster) -> list[dict]:
    return c.list("replicasets")


async def set_image(c: FakeCluster, image: str) -> None:
    await c.client.patch(DEPLOYMENTS, "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": image}]}}}}, namespace="default")


def rollout_done(d: dict) -> bool:
    """kubectl rollout status' rule for Deployments."""
    s, spec = d.get("status") or {}, d["spec"]
    if d["metadata"]["generation"] > s.get("observedGeneration", 0):
        return False
    want = spec.get("replicas", 1)
    return (s.get("updatedReplicas", 0) >= want and s.get("replicas", 0) <= s.get("updatedReplicas", 0)
            and s.get("availableReplicas", 0) >= s.get("updatedReplicas", 0))


async def test_creates_rs_with_hash_and_revision() -> None:
    c = cluster()
    await c.client.create(DEPLOYMENTS, deploy())
    await converge(c)
    [rs] = rs_list(c)
    h = rs["spec"]["template"]["metadata"]["labels"][POD_TEMPLATE_HASH]
    assert rs["metadata"]["name"] == f"web-{h}"
    assert rs["spec"]["selector"]["matchLabels"][POD_TEMPLATE_HASH] == h
    anns = rs["metadata"]["annotations"]
    assert anns[REVISION] == "1"
    assert anns["deployment.kubernetes.io/desired-replicas"] == "3"
    assert anns["deployment.kubernetes.io/max-replicas"] == "4"  # 25% surge of 3 rounds up
    assert controller_ref(rs)["kind"] == "Deployment"
    d = c.get("deployments", "web")
    assert d["metadata"]["annotations"][REVISION] == "1"
    st = d["status"]
    assert (st["replicas"], st["updatedReplicas"], st["readyReplicas"],
            st["availableReplicas"]) == (3, 3, 3, 3)
    assert get_condition(st, "Available")["reason"] == "MinimumReplicasAvailable"
    assert get_condition(st, "Progressing")["reason"] == "NewReplicaSetAvailable"
    assert rollout_done(d)
    assert "ScalingReplicaSet" in c.recorder.reasons()


async def test_rolling_update_respects_surge_and_unavailable() -> None:
    c = cluster()
    await c.client.create(DEPLOYMENTS, deploy(replicas=4, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}))
    await converge(c)
    await set_image(c, "nginx:2")
    # step through: pods never exceed 5 and available never drops below 4
    for _ in range(40):
        await c.settle()
        pods = [p for p in c.list("pods") if not p["metadata"].get("deletionTimestamp")]
        assert len(pods) <= 5
        ready = [p for p in pods if (p.get("status") or {}).get("phase") == "Running"]
        assert len(ready) >= 4
        await c.run_pods()
        if rollout_done(c.get("deployments", "web")):
            break
    d = c.get("deployments", "web")
    assert rollout_done(d)
    images = {p["spec"]["containers"][0]["image"] for p in c.list("pods")}
    assert images == {"nginx:2"}
    rss = sorted(rs_list(c), key=lambda r: r["metadata"]["annotations"][REVISION])
    assert [r["spec"]["replicas"] for r in rss] == [0, 4]
    assert rss[1]["metadata"]["annotations"][REVISION] == "2"
    assert d["metadata"]["annotations"][REVISION] == "2"


async def test_rollback_reuses_old_rs_and_bumps_revision() -> None:
    c = cluster()
    await c.client.create(DEPLOYMENTS, deploy(replicas=2))
    await converge(c)
    first = rs_list(c)[0]["metadata"]["name"]
    await set_image(c, "nginx:2")
    await converge(c)
    # what `kubectl rollout undo` does: put the old RS's template (minus the hash) back
    await set_image(c, "nginx:1")
    await converge(c)
    rss = {r["metadata"]["name"]: r for r in rs_list(c)}
    assert len(rss) == 2
    assert rss[first]["spec"]["replicas"] == 2
    assert rss[first]["metadata"]["annotations"][REVISION] == "3"
    assert rss[first]["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"
    assert c.get("deployments", "web")["metadata"]["annotations"][REVISION] == "3"


async def test_recreate_scales_old_to_zero_first() -> None:
    c = cluster()
    await c.client.create(DEPLOYMENTS, deploy(replicas=2, strategy={"type": "Recreate"}))
    await converge(c)
    old_rs = rs_list(c)[0]["metadata"]["name"]
    c.client.calls.clear()
    await set_image(c, "nginx:2")
    await converge(c)
    # every old pod was deleted before the first new pod was created
    deletes = [i for i, (verb, plural, _) in enumerate(c.client.calls)
               if verb == "delete" and plural == "pods"]
    creates = [i for i, (verb, plural, name) in enumerate(c.client.calls)
               if verb == "create" and plural == "pods"]
    assert len(deletes) == 2 and len(creates) == 2 and max(deletes) < min(creates)
    assert all(not p["metadata"]["name"].startswith(old_rs) for p in c.list("pods"))
    assert {p["spec"]["containers"][0]["image"] for p in c.list("pods")} == {"nginx:2"}
    assert rollout_done(c.get("deployments", "web"))


async def test_revision_history_limit() -> None:
    c = cluster()
    await c.client.create(DEPLOYMENTS, deploy(replicas=1, revisionHistoryLimit=1))
    await converge(c)
    for i in range(2, 5):
        await set_image(c, f"nginx:{i}")
        await converge(c)
    revs = sorted(int(r["metadata"]["annotations"][REVISION]) for r in rs_list(c))
    assert revs == [3, 4]


async def test_pause_resume_and_restart() -> None:
    c = cluster()
    await c.client.create(DEPLOYMENTS, deploy(replicas=2))
    await converge(c)
    await c.client.patch(DEPLOYMENTS, "web", {"spec": {"paused": True}}, namespace="default")
    await set_image(c, "nginx:2")
    await converge(c)
    assert len(rs_list(c)) == 1
    cond = get_condition(c.get("deployments", "web")["status"], "Progressing")
    assert cond["reason"] == "DeploymentPaused" and cond["status"] == "Unknown"
    # scaling works while paused
    await c.client.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 3}}, namespace="default")
    await converge(c)
    assert len(c.list("pods")) == 3
    await c.client.patch(DEPLOYMENTS, "web", {"spec": {"paused": False}}, namespace="default")
    await converge(c)
    assert {p["spec"]["containers"][0]["image"] for p in c.list("pods")} == {"nginx:2"}
    # kubectl rollout restart: a template annotation
    await c.client.patch(DEPLOYMENTS, "web", {"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-01-01T00:00:00Z"}}}}}, namespace="default")
    await converge(c)
    assert len(rs_list(c)) == 3
    assert rollout_done(c.get("deployments", "web"))


async def test_progress_deadline_exceeded() -> None:
    c = cluster()
    await c.client.create(DEPLOYMENTS, deploy(replicas=1, progressDeadlineSeconds=60))
    await c.settle()
    await c.run_pods(ready=False)
    await c.settle()
    c.advance(61)
    c.kick()
    await c.settle()
    cond = get_condition(c.get("deployments", "web")["status"], "Progressing")
    assert cond["status"] == "False" and cond["reason"] == "ProgressDeadlineExceeded"
    assert "ProgressDeadlineExceeded" in c.recorder.reasons()


async def test_scale_event_mid_rollout_is_proportional() -> None:
    c = cluster()
    await c.client.create(DEPLOYMENTS, deploy(replicas=10, strategy={
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 3, "maxUnavailable": 2}}))
    await converge(c)
    await set_image(c, "nginx:bad")
    await c.settle()  # new RS surges, old scales down; the new pods never become ready
    await c.client.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 15}}, namespace="default")
    await c.settle()
    total = sum(r["spec"]["replicas"] for r in rs_list(c))
    assert total == 15 + 3
    assert all(r["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] == "15"
               for r in rs_list(c) if r["spec"]["replicas"])


async def test_resync_of_converged_state_writes_nothing() -> None:
    c = cluster()
    await c.client.create(DEPLOYMENTS, deploy(replicas=3))
    await converge(c)
    c.client.calls.clear()
    c.kick()
    await c.settle()
    assert c.client.calls == []
