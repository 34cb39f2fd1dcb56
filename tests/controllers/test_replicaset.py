"""ReplicaSet / ReplicationController reconcile loops against the in-memory API double."""

from __future__ import annotations

import pytest
from tests.fakes import FakeCluster

from vkube.api.errors import Invalid
from vkube.client.resources import PODS, REPLICASETS, REPLICATIONCONTROLLERS
from vkube.controllers.workloads._common import (
    Expectations, controller_ref, deletion_rank, int_or_percent, pods_to_delete, slow_start,
)
from vkube.controllers.workloads.replicaset import (
    ReplicaSetController, ReplicationControllerController,
)


def rs_obj(name: str = "web", replicas: int = 3, labels: dict | None = None, **spec) -> dict:
    labels = labels or {"app": name}
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
                     **spec}}


async def test_creates_pods_with_owner_and_status() -> None:
    c = FakeCluster()
    c.add(ReplicaSetController)
    await c.client.create(REPLICASETS, rs_obj())
    await c.settle()
    pods = c.list("pods")
    assert len(pods) == 3
    for p in pods:
        assert p["metadata"]["name"].startswith("web-") and len(p["metadata"]["name"]) == 9
        ref = controller_ref(p)
        assert ref["kind"] == "ReplicaSet" and ref["blockOwnerDeletion"] is True
    assert c.recorder.reasons().count("SuccessfulCreate") == 3
    st = c.get("replicasets", "web")["status"]
    assert st["replicas"] == 3 and st["readyReplicas"] == 0 and st["observedGeneration"] == 1
    await c.run_pods()
    await c.settle()
    st = c.get("replicasets", "web")["status"]
    assert st["readyReplicas"] == 3 and st["availableReplicas"] == 3
    assert st["fullyLabeledReplicas"] == 3


async def test_pod_status_changes_are_batched_but_what_the_controller_awaits_is_not() -> None:
    """A 1,000-pod rollout's status changes must not each cost a sync that reads every pod:
    they wait ``pod_batch_seconds`` (one timer per ReplicaSet); the last awaited creation and
    a pod that stops being active sync at once."""
    c = FakeCluster()
    ctl = c.add(ReplicaSetController, pod_batch_seconds=0.5)
    key = "default/web"
    await c.client.create(REPLICASETS, rs_obj(replicas=3))
    assert ctl.queue.keys == [key]
    ctl.queue.keys.clear()
    await ctl.reconcile(key)  # creates 3 pods; their ADDED events arrive meanwhile
    assert len(c.list("pods")) == 3
    assert ctl.queue.later == {key: 0.5}  # the first two: more creations still awaited
    assert ctl.queue.keys == [key]  # the third: expectations met, sync now
    ctl.queue.keys.clear()
    ctl.queue.later.clear()
    await c.run_pods()  # Running and Ready: status only
    assert ctl.queue.keys == [] and ctl.queue.later == {key: 0.5}
    await ctl.reconcile(key)  # what the timer does
    assert c.get("replicasets", "web")["status"]["readyReplicas"] == 3
    first = c.list("pods")[0]["metadata"]["name"]
    await c.finish_pod(first, phase="Failed", exit_code=1)  # one fewer active: replace it now
    assert ctl.queue.keys == [key]
    await c.settle()
    assert sum(1 for p in c.list("pods") if (p.get("status") or {}).get("phase") != "Failed") == 3


async def test_scale_down_prefers_unready_and_newer() -> None:
    c = FakeCluster()
    c.add(ReplicaSetController)
    await c.client.create(REPLICASETS, rs_obj(replicas=2))
    await c.settle()
    await c.run_pods()
    await c.settle()
    ready = {p["metadata"]["name"] for p in c.list("pods")}
    rs = c.get("replicasets", "web")
    await c.client.patch(REPLICASETS, "web", {"spec": {"replicas": 4}}, namespace="default")
    await c.settle()
    assert len(c.list("pods")) == 4
    await c.client.patch(REPLICASETS, "web", {"spec": {"replicas": 2}}, namespace="default")
    await c.settle()
    assert {p["metadata"]["name"] for p in c.list("pods")} == ready
    assert c.recorder.reasons().count("SuccessfulDelete") == 2
    assert rs is not None


async def test_adopts_orphans_and_releases_non_matching() -> None:
    c = FakeCluster()
    orphan = {"metadata": {"name": "stray", "namespace": "default", "labels": {"app": "web"}},
              "spec": {"containers": [{"name": "c", "image": "x"}]}}
    await c.client.create(PODS, orphan)
    c.add(ReplicaSetController)
    await c.client.create(REPLICASETS, rs_obj(replicas=2))
    await c.settle()
    pods = c.list("pods")
    assert len(pods) == 2
    assert controller_ref(c.get("pods", "stray"))["name"] == "web"
    # relabel one owned pod: it is released and replaced
    await c.client.patch(PODS, "stray", {"metadata": {"labels": {"app": "other"}}},
                         namespace="default")
    await c.settle()
    assert controller_ref(c.get("pods", "stray")) is None
    owned = [p for p in c.list("pods") if controller_ref(p)]
    assert len(owned) == 2


async def test_expectations_block_duplicate_creates() -> None:
    c = FakeCluster()
    ctl = c.add(ReplicaSetController)
    await c.client.create(REPLICASETS, rs_obj(replicas=2))
    ctl.expectations.expect_creations("default/web", 2)  # creations in flight, not yet seen
    await c.settle()
    assert c.list("pods") == []
    ctl.expectations.forget("default/web")
    ctl.queue.add("default/web")
    await c.settle()
    assert len(c.list("pods")) == 2


async def test_create_failure_sets_condition_and_slow_start_stops() -> None:
    c = FakeCluster()
    ctl = c.add(ReplicaSetController)
    c.fail_creates["pods"] = 1
    await c.client.create(REPLICASETS, rs_obj(replicas=10))
    ctl.queue.keys.clear()
    # first batch of 1 fails: nothing else attempted, the error surfaces for backoff
    with pytest.raises(Invalid):
        await ctl.reconcile("default/web")
    assert c.list("pods") == []
    conds = c.get("replicasets", "web")["status"]["conditions"]
    assert conds[0]["type"] == "ReplicaFailure" and conds[0]["reason"] == "FailedCreate"
    assert "FailedCreate" in c.recorder.reasons()
    c.kick()
    await c.settle()
    assert len(c.list("pods")) == 10
    assert "conditions" not in c.get("replicasets", "web")["status"]


async def test_min_ready_seconds_available_after_clock_moves() -> None:
    c = FakeCluster()
    c.add(ReplicaSetController)
    await c.client.create(REPLICASETS, rs_obj(replicas=1, minReadySeconds=30))
    await c.settle()
    await c.run_pods()
    await c.settle()
    st = c.get("replicasets", "web")["status"]
    assert st["readyReplicas"] == 1 and st["availableReplicas"] == 0
    assert c.requeues["replicaset:default/web"] is not None
    c.advance(31)
    c.kick()
    await c.settle()
    assert c.get("replicasets", "web")["status"]["availableReplicas"] == 1


async def test_replication_controller_map_selector() -> None:
    c = FakeCluster()
    c.add(ReplicationControllerController)
    rc = {"apiVersion": "v1", "kind": "ReplicationController",
          "metadata": {"name": "rc", "namespace": "default"},
          "spec": {"replicas": 2, "selector": {"app": "rc"},
                   "template": {"metadata": {"labels": {"app": "rc"}},
                                "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    await c.client.create(REPLICATIONCONTROLLERS, rc)
    await c.settle()
    pods = c.list("pods")
    assert len(pods) == 2 and controller_ref(pods[0])["kind"] == "ReplicationController"


def test_deletion_rank_order() -> None:
    def pod(name, node="", phase="Pending", ready=False, created="2026-01-01T00:00:00Z"):
        conds = [{"type": "Ready", "status": "True" if ready else "False",
                  "lastTransitionTime": "2026-01-01T00:00:00Z"}]
        return {"metadata": {"name": name, "creationTimestamp": created},
                "spec": {"nodeName": node} if node else {},
                "status": {"phase": phase, "conditions": conds}}
    pods = [pod("ready", "n", "Running", True), pod("unsched"), pod("pending", "n"),
            pod("notready", "n", "Running"),
            pod("ready-new", "n", "Running", True, created="2026-01-02T00:00:00Z")]
    order = [p["metadata"]["name"] for p in sorted(pods, key=deletion_rank)]
    assert order[:3] == ["unsched", "pending", "notready"]
    assert [p["metadata"]["name"] for p in pods_to_delete(pods, 4)][-1] == "ready-new"


def test_int_or_percent_rounding() -> None:
    assert int_or_percent("25%", 10, round_up=True) == 3
    assert int_or_percent("25%", 10, round_up=False) == 2
    assert int_or_percent(4, 10, round_up=False) == 4
    assert int_or_percent("0%", 10, round_up=True) == 0


async def test_slow_start_batches() -> None:
    sizes: list[int] = []
    calls: list[int] = []

    async def fn(i: int) -> None:
        calls.append(i)
        if i == 5:
            raise ValueError("boom")
    done, err = await slow_start(20, fn)
    # batches 1, 2, 4 → the batch of 4 (indices 3..6) contains the failure; stop there
    assert sorted(calls) == list(range(7)) and done == 6 and isinstance(err, ValueError)
    assert sizes == []


def test_expectations_ttl() -> None:
    t = [0.0]
    e = Expectations(ttl=10, monotonic=lambda: t[0])
    e.expect_creations("k", 2)
    assert not e.satisfied("k")
    e.creation_observed("k")
    assert not e.satisfied("k")
    t[0] = 11
    assert e.satisfied("k")
    e.expect_deletions("k", ["a"])
    e.deletion_observed("k", "a")
    assert e.satisfied("k")


async def test_stale_pod_cache_never_creates_duplicates() -> None:
    c = FakeCluster()
    c.add(ReplicaSetController)
    c.freeze("pods")  # the pod informer lags: it will not see the pods we create
    await c.client.create(REPLICASETS, rs_obj(replicas=3))
    await c.settle()
    assert len(c.list("pods")) == 3
    for _ in range(3):  # resyncs against the stale cache: expectations hold creation back
        c.kick()
        await c.settle()
    assert len(c.list("pods")) == 3
    c.thaw("pods")
    await c.settle()
    assert len(c.list("pods")) == 3
    assert c.recorder.reasons().count("SuccessfulCreate") == 3


async def test_stale_pod_cache_never_deletes_twice() -> None:
    c = FakeCluster()
    c.add(ReplicaSetController)
    await c.client.create(REPLICASETS, rs_obj(replicas=3))
    await c.settle()
    c.freeze("pods")
    await c.client.patch(REPLICASETS, "web", {"spec": {"replicas": 1}}, namespace="default")
    await c.settle()
    c.kick()
    await c.settle()
    assert len(c.list("pods")) == 1
    c.thaw("pods")
    await c.settle()
    assert len(c.list("pods")) == 1 and c.recorder.reasons().count("SuccessfulDelete") == 2
