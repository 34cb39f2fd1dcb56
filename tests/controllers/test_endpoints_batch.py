"""Endpoints, EndpointSlice and disruption controllers under a rollout's pod churn: pod
changes are batched per Service/PDB (at most one sync per ``pod_batch_seconds`` while they
churn), changes an endpoint does not show cost nothing, a quiet Service reacts at once, and
EndpointSlices keep their endpoints in place (only the changed slice is written)."""

from __future__ import annotations

import copy

from tests.fakes import FakeCluster

from vkube.client.resources import ENDPOINTSLICES, PDBS, PODS, SERVICES
from vkube.controllers.endpoints import EndpointsController, EndpointSliceController, place
from vkube.controllers.pdb import DisruptionController

KEY = "default/web"


def svc() -> dict:
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}


def pod(i: int, *, ready: bool = False) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"web-{i}", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "image": "nginx"}]},
            "status": {"phase": "Running", "podIP": f"10.0.{i // 250}.{i % 250 + 1}",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


async def set_ready(c: FakeCluster, i: int, ready: bool, *, extra: str = "") -> None:
    p = copy.deepcopy(c.get("pods", f"web-{i}"))
    p["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]
    if extra:  # a change no endpoint shows (a container's restart count, say)
        p["status"]["containerStatuses"] = [{"name": "c", "restartCount": extra}]
    await c.client.update(PODS, p, subresource="status")


def fire_timers(ctl) -> None:
    """What the work queue's timers do once the batch period has passed."""
    for key in list(ctl.queue.later):
        ctl.queue.add(key)
    ctl.queue.later.clear()


def writes(c: FakeCluster, plural: str) -> int:
    return sum(1 for verb, p, _ in c.client.calls if p == plural and verb != "delete")


async def test_a_burst_of_pod_changes_costs_one_endpoints_write_per_batch() -> None:
    n = 60
    c = FakeCluster()
    ep = c.add(EndpointsController, pod_batch_seconds=0.5)
    sl = c.add(EndpointSliceController, pod_batch_seconds=0.5)
    await c.client.create(SERVICES, svc())
    for i in range(n):
        await c.client.create(PODS, pod(i))
    await c.settle()
    assert len(c.get("endpoints", "web")["subsets"][0]["notReadyAddresses"]) == n
    c.client.calls.clear()
    ep.queue.later.clear()
    sl.queue.later.clear()
    c.advance(1)  # quiet for a period: the next change is handled at once
    await set_ready(c, 0, True)
    assert ep.queue.keys == [KEY] and sl.queue.keys == [KEY] and not ep.queue.later
    await c.settle()  # as a worker would: synced now, so the burst below waits
    for i in range(1, n):  # the rollout's churn, each change handled as it comes
        await set_ready(c, i, True)
        await c.settle()
        assert ep.queue.later == {KEY: 0.5} and sl.queue.later == {KEY: 0.5}
    assert writes(c, "endpoints") == 1 and writes(c, "endpointslices") == 1
    c.advance(0.5)
    fire_timers(ep)
    fire_timers(sl)
    await c.settle()
    assert writes(c, "endpoints") == 2  # n changes, two writes
    sub = c.get("endpoints", "web")["subsets"]
    assert len(sub) == 1 and "notReadyAddresses" not in sub[0]
    assert sorted(a["targetRef"]["name"] for a in sub[0]["addresses"]) == sorted(
        f"web-{i}" for i in range(n))
    assert sub[0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    slices = c.list("endpointslices")
    assert len(slices) == 1 and all(e["conditions"]["ready"] for e in slices[0]["endpoints"])
    assert len(slices[0]["endpoints"]) == n

    # changes no endpoint shows, and the echoes of our own writes, queue nothing
    c.client.calls.clear()
    c.advance(5)
    for i in range(n):
        await set_ready(c, i, True, extra=str(i))
    assert not ep.queue.keys and not ep.queue.later and not sl.queue.keys and not sl.queue.later
    await c.settle()
    assert writes(c, "endpoints") == 0 and writes(c, "endpointslices") == 0


async def test_slices_keep_endpoints_in_place_and_write_only_the_changed_one() -> None:
    n = 250
    c = FakeCluster()
    c.add(EndpointSliceController)  # batching off: every change synced at once
    await c.client.create(SERVICES, svc())
    for i in range(n):
        await c.client.create(PODS, pod(i, ready=True))
    await c.settle()
    slices = c.list("endpointslices")
    assert sorted(len(s["endpoints"]) for s in slices) == [50, 100, 100]  # at most 100 each
    where = {e["targetRef"]["name"]: s["metadata"]["name"]
             for s in slices for e in s["endpoints"]}
    assert len(where) == n
    c.client.calls.clear()
    await set_ready(c, 7, False)  # one pod turns unready: its slice only
    await c.settle()
    calls = [(v, name) for v, p, name in c.client.calls if p == "endpointslices"]
    assert calls == [("update", where["web-7"])]
    c.client.calls.clear()
    await c.client.delete(PODS, "web-3", namespace="default")  # leaves a hole…
    await c.client.create(PODS, pod(n, ready=True))  # …that a new pod fills, still one slice
    await c.settle()
    updated = {name for v, p, name in c.client.calls if p == "endpointslices"}
    assert updated == {where["web-3"]}
    held = {e["targetRef"]["name"] for s in c.list("endpointslices") for e in s["endpoints"]}
    assert held == {f"web-{i}" for i in range(n + 1)} - {"web-3"}
    assert max(len(s["endpoints"]) for s in c.list("endpointslices")) <= 100


def test_place_drops_emptied_slices_and_keeps_one_placeholder() -> None:
    ports = (("", 8080, "TCP"),)
    ep = {"addresses": ["10.0.0.1"], "targetRef": {"name": "a"}}
    sl = {"metadata": {"name": "s1"}, "endpoints": [ep],
          "ports": [{"port": 8080, "protocol": "TCP"}]}
    sl2 = {"metadata": {"name": "s2"}, "endpoints": [], "ports": []}
    keep, drop = place([sl, sl2], {ports: {"a": ep}})
    assert keep == [(sl, ports, [ep])] and drop == [sl2]
    keep, drop = place([sl, sl2], {})
    assert keep == [(sl, (), [])] and drop == [sl2]
    keep, drop = place([], {ports: {f"p{i}": {"addresses": [f"10.0.{i // 250}.{i % 250}"],
                                             "targetRef": {"name": f"p{i}"}}
                                    for i in range(201)}})
    assert [len(eps) for s, _, eps in keep] == [100, 100, 1] and all(s is None for s, _, _ in keep)


async def test_disruption_budget_syncs_once_per_batch() -> None:
    n = 40
    c = FakeCluster()
    ctl = c.add(DisruptionController, pod_batch_seconds=0.5)
    await c.client.create(PDBS, {
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}})
    await c.settle()
    for i in range(n):
        await c.client.create(PODS, pod(i))
        await c.settle()
    c.client.calls.clear()
    for i in range(n):
        await set_ready(c, i, True)
        await c.settle()
        await set_ready(c, i, True, extra="1")  # no change a budget counts: nothing queued
        assert not ctl.queue.keys
    assert sum(1 for v, p, _ in c.client.calls if p == "poddisruptionbudgets") <= 1
    c.advance(0.5)
    fire_timers(ctl)
    await c.settle()
    st = c.get("poddisruptionbudgets", "web")["status"]
    assert (st["currentHealthy"], st["expectedPods"], st["disruptionsAllowed"]) == (n, n, n - 2)
    c.advance(1)  # quiet: a lone change counts at once
    await set_ready(c, 0, False)
    assert ctl.queue.keys == [KEY]
    await c.settle()
    assert c.get("poddisruptionbudgets", "web")["status"]["currentHealthy"] == n - 1


async def test_a_write_that_conflicts_on_a_lagging_cache_is_redone_when_the_cache_catches_up() -> None:
    """The echo of our own write is no reason to sync, but after a write conflicted it is:
    the conflict said the cache was behind, and that echo is it catching up. Without this the
    last pods of a large rollout waited out the work queue's back-off (grown by every
    conflict while the watch lagged) before their endpoints were written."""
    n = 60
    c = FakeCluster()
    ep = c.add(EndpointsController)
    sl = c.add(EndpointSliceController)
    await c.client.create(SERVICES, svc())
    for i in range(n):
        await c.client.create(PODS, pod(i))
    await c.settle()
    assert len(c.get("endpoints", "web")["subsets"][0]["notReadyAddresses"]) == n
    assert len(c.list("endpointslices")) == 1
    c.freeze("endpoints")  # both watches lag: the caches keep showing what is there now
    c.freeze("endpointslices")
    await set_ready(c, 0, True)
    await c.settle()  # written from the cache, which still matches the API: accepted
    assert not c.errors
    for i in range(1, 10):  # the rollout's last pods: each write goes from the stale cache
        await set_ready(c, i, True)
        await c.settle()
        assert [type(e).__name__ for e in c.errors] == ["Conflict", "Conflict"]  # real: back-off
    assert not ep.queue.keys and not sl.queue.keys  # nothing else is coming for this Service
    c.thaw("endpoints")  # the echoes of the accepted writes arrive
    c.thaw("endpointslices")
    assert ep.queue.keys == [KEY] and sl.queue.keys == [KEY]  # redone now, not after a back-off
    await c.settle()
    assert not c.errors
    sub = c.get("endpoints", "web")["subsets"][0]
    assert len(sub["addresses"]) == 10 and len(sub["notReadyAddresses"]) == n - 10
    for i in range(10, n):  # and the rest, with the caches current
        await set_ready(c, i, True)
        await c.settle()
    assert not c.errors
    sub = c.get("endpoints", "web")["subsets"]
    assert len(sub) == 1 and "notReadyAddresses" not in sub[0] and len(sub[0]["addresses"]) == n
    slices = c.list("endpointslices")
    assert sum(1 for s in slices for e in s["endpoints"] if e["conditions"]["ready"]) == n

    # once caught up, echoes of our own writes are again no reason to sync
    c.client.calls.clear()
    await set_ready(c, 0, False)
    await c.settle()
    assert writes(c, "endpoints") == 1 and writes(c, "endpointslices") == 1
    assert not ep.queue.keys and not sl.queue.keys
