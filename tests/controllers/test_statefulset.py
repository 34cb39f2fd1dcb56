"""StatefulSet controller against the in-memory API double."""

from __future__ import annotations

from tests.fakes import FakeCluster
from vkube.client.resources import STATEFULSETS
from vkube.controllers.workloads.history import CONTROLLER_REVISION_HASH
from vkube.controllers.workloads.statefulset import (
    POD_INDEX_LABEL, POD_NAME_LABEL, StatefulSetController,
)


def sts(replicas: int = 3, image: str = "nginx:1", **spec) -> dict:
    labels = {"app": "web"}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": replicas, "serviceName": "nginx",
                     "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": image}]}},
                     **spec}}


def names(c: FakeCluster) -> list[str]:
    return sorted(p["metadata"]["name"] for p in c.list("pods"))


async def set_image(c: FakeCluster, image: str) -> None:
    await c.client.patch(STATEFULSETS, "web", {"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": image}]}}}}, namespace="default")


async def converge(c: FakeCluster) -> None:
    for _ in range(30):
        await c.settle()
        await c.run_pods()
        await c.settle()
        if all(p.get("status", {}).get("phase") == "Running" for p in c.list("pods")):
            st = c.get("statefulsets", "web")["status"]
            if st["readyReplicas"] == c.get("statefulsets", "web")["spec"]["replicas"] \
                    and st["currentRevision"] == st["updateRevision"]:
                return
    raise AssertionError("did not converge")


async def test_ordered_creation_with_identity_and_claims() -> None:
    c = FakeCluster()
    c.add(StatefulSetController)
    claim = {"metadata": {"name": "www"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                   "resources": {"requests": {"storage": "1Gi"}}}}
    await c.client.create(STATEFULSETS, sts(volumeClaimTemplates=[claim]))
    await c.settle()
    assert names(c) == ["web-0"]  # OrderedReady: web-1 waits for web-0 to be Ready
    assert [p["metadata"]["name"] for p in c.list("persistentvolumeclaims")] == ["www-web-0"]
    await c.run_pods(ready=False)
    await c.settle()
    assert names(c) == ["web-0"]
    await converge(c)
    assert names(c) == ["web-0", "web-1", "web-2"]
    p1 = c.get("pods", "web-1")
    assert p1["metadata"]["labels"][POD_NAME_LABEL] == "web-1"
    assert p1["metadata"]["labels"][POD_INDEX_LABEL] == "1"
    assert p1["spec"]["hostname"] == "web-1" and p1["spec"]["subdomain"] == "nginx"
    assert {"name": "www", "persistentVolumeClaim": {"claimName": "www-web-1"}} in \
        p1["spec"]["volumes"]
    pvc = c.get("persistentvolumeclaims", "www-web-1")
    assert pvc["metadata"]["labels"] == {"app": "web"} and "ownerReferences" not in pvc["metadata"]
    st = c.get("statefulsets", "web")["status"]
    assert st["replicas"] == 3 and st["readyReplicas"] == 3 and st["currentReplicas"] == 3
    assert st["currentRevision"] == st["updateRevision"]
    assert p1["metadata"]["labels"][CONTROLLER_REVISION_HASH] == st["updateRevision"]
    [rev] = c.list("controllerrevisions")
    assert rev["revision"] == 1 and rev["metadata"]["name"] == st["updateRevision"]
    reasons = c.recorder.events
    assert ("web", "Normal", "SuccessfulCreate",
            "create Pod web-0 in StatefulSet web successful") in reasons
    assert ("web", "Normal", "SuccessfulCreate",
            "create Claim www-web-0 Pod web-0 in StatefulSet web success") in reasons


async def test_scale_down_from_highest() -> None:
    c = FakeCluster()
    c.add(StatefulSetController)
    await c.client.create(STATEFULSETS, sts(replicas=3))
    await converge(c)
    c.client.calls.clear()
    await c.client.patch(STATEFULSETS, "web", {"spec": {"replicas": 1}}, namespace="default")
    await c.settle()
    assert names(c) == ["web-0"]
    deleted = [n for verb, plural, n in c.client.calls if verb == "delete" and plural == "pods"]
    assert deleted == ["web-2", "web-1"]


async def test_parallel_creates_all() -> None:
    c = FakeCluster()
    c.add(StatefulSetController)
    await c.client.create(STATEFULSETS, sts(replicas=3, podManagementPolicy="Parallel"))
    await c.settle()
    assert names(c) == ["web-0", "web-1", "web-2"]


async def test_rolling_update_with_partition() -> None:
    c = FakeCluster()
    c.add(StatefulSetController)
    await c.client.create(STATEFULSETS, sts(replicas=3, updateStrategy={
        "type": "RollingUpdate", "rollingUpdate": {"partition": 1}}))
    await converge(c)
    old_rev = c.get("statefulsets", "web")["status"]["currentRevision"]
    await set_image(c, "nginx:2")
    for _ in range(10):
        await c.settle()
        await c.run_pods()
    imgs = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"] for p in c.list("pods")}
    assert imgs == {"web-0": "nginx:1", "web-1": "nginx:2", "web-2": "nginx:2"}
    st = c.get("statefulsets", "web")["status"]
    assert st["currentRevision"] == old_rev and st["updatedReplicas"] == 2
    assert st["currentReplicas"] == 1
    assert [r["revision"] for r in sorted(c.list("controllerrevisions"),
                                          key=lambda r: r["revision"])] == [1, 2]
    await c.client.patch(STATEFULSETS, "web", {"spec": {"updateStrategy": {
        "rollingUpdate": {"partition": 0}}}}, namespace="default")
    await converge(c)
    st = c.get("statefulsets", "web")["status"]
    assert st["currentRevision"] == st["updateRevision"] and st["updatedReplicas"] == 3


async def test_on_delete_waits_for_manual_delete() -> None:
    c = FakeCluster()
    c.add(StatefulSetController)
    await c.client.create(STATEFULSETS, sts(replicas=2, updateStrategy={"type": "OnDelete"}))
    await converge(c)
    await set_image(c, "nginx:2")
    await c.settle()
    assert {p["spec"]["containers"][0]["image"] for p in c.list("pods")} == {"nginx:1"}
    from vkube.client.resources import PODS
    await c.client.delete(PODS, "web-1", namespace="default")
    await c.settle()
    assert c.get("pods", "web-1")["spec"]["containers"][0]["image"] == "nginx:2"


async def test_retention_policy_delete_owns_claims() -> None:
    c = FakeCluster()
    c.add(StatefulSetController)
    claim = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
    await c.client.create(STATEFULSETS, sts(
        replicas=2, volumeClaimTemplates=[claim],
        persistentVolumeClaimRetentionPolicy={"whenDeleted": "Delete", "whenScaled": "Delete"}))
    await converge(c)
    pvc = c.get("persistentvolumeclaims", "data-web-1")
    assert pvc["metadata"]["ownerReferences"][0]["kind"] == "StatefulSet"
    await c.client.patch(STATEFULSETS, "web", {"spec": {"replicas": 1}}, namespace="default")
    await c.settle()
    # the condemned pod owned its claim, so the claim went with it
    assert c.get("persistentvolumeclaims", "data-web-1") is None
    assert c.get("persistentvolumeclaims", "data-web-0") is not None


async def test_resync_of_converged_state_writes_nothing() -> None:
    c = FakeCluster()
    c.add(StatefulSetController)
    await c.client.create(STATEFULSETS, sts(replicas=2))
    await converge(c)
    await c.settle()
    c.client.calls.clear()
    c.kick()
    await c.settle()
    assert c.client.calls == []


async def test_stale_cache_is_harmless() -> None:
    c = FakeCluster()
    c.add(StatefulSetController)
    await c.client.create(STATEFULSETS, sts(replicas=2, podManagementPolicy="Parallel"))
    c.freeze("pods")
    await c.settle()
    c.kick()
    await c.settle()  # the cache still shows no pods: creates hit AlreadyExists, no harm
    assert names(c) == ["web-0", "web-1"] and not c.errors
    c.thaw("pods")
    await c.settle()
    assert names(c) == ["web-0", "web-1"]
