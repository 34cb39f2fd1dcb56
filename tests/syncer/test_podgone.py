"""The status a pod shows while its host pod is gone and once it is made again (pause/resume):
the pure parts of ``vkube.syncer.podgone`` and ``vkube.syncer.podowners``. The whole path runs
through the CLI in tests/ha/test_bare_pods.py."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

from vkube.client.resources import DEPLOYMENTS, REPLICASETS
from vkube.syncer.podgone import ANN_RESTARTS, as_shown, claims_to_run, not_running, restarts_before
from vkube.syncer.podowners import overcounts, ready_counts, stale_owners, wait_owners

NOW = "2026-01-02T03:04:05Z"
RUNNING = {
    "phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.244.1.5", "podIPs": [{"ip": "10.244.1.5"}],
    "startTime": "2026-01-01T00:00:00Z",
    "conditions": [{"type": "PodScheduled", "status": "True"},
                   {"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:01Z"}],
    "containerStatuses": [{"name": "main", "ready": True, "started": True, "restartCount": 2,
                           "containerID": "containerd://abc", "lastState": {},
                           "state": {"running": {"startedAt": "2026-01-01T00:00:01Z"}}}],
}


def pod(status: dict, **meta: object) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", **meta},
            "spec": {"containers": [{"name": "main"}]}, "status": status}


def test_a_pod_whose_host_pod_went_is_shown_waiting_with_its_last_run_kept():
    assert claims_to_run(pod(RUNNING))
    shown = not_running(RUNNING, pod(RUNNING), now=NOW)
    assert shown["phase"] == "Pending" and "podIP" not in shown and "podIPs" not in shown
    assert shown["hostIP"] == "10.0.0.1" and shown["startTime"]  # had a host pod: kept
    cond = {c["type"]: c for c in shown["conditions"]}
    assert cond["Ready"]["status"] == "False" and cond["Ready"]["lastTransitionTime"] == NOW
    assert cond["PodScheduled"]["status"] == "True"
    [cs] = shown["containerStatuses"]
    assert cs["state"] == {"waiting": {"reason": "ContainerCreating"}} and not cs["ready"]
    assert cs["restartCount"] == 2 and "containerID" not in cs  # not restarted yet
    assert cs["lastState"] == {"terminated": {"exitCode": 255, "reason": "Unknown", "finishedAt": NOW,
                                              "startedAt": "2026-01-01T00:00:01Z",
                                              "containerID": "containerd://abc"}}
    assert not claims_to_run(pod(shown))


def test_a_pod_made_again_continues_its_restarts_and_waits_until_the_host_reports():
    gone = not_running(RUNNING, pod(RUNNING), now=NOW)
    ann = restarts_before(pod(gone))
    assert json.loads(ann) == {"main": [2, True]}
    host = {"metadata": {"annotations": {ANN_RESTARTS: ann}}, "status": {"phase": "Pending", "qosClass": "BestEffort"}}
    # the host's kubelet has said nothing of the containers yet: still waiting, still scheduled
    early = as_shown(host, gone)
    assert early["containerStatuses"] == gone["containerStatuses"]
    assert {c["type"] for c in early["conditions"]} == {"PodScheduled", "Ready"}
    assert early["phase"] == "Pending" and early["qosClass"] == "BestEffort"
    # it runs again: one restart more, the run before the pause its last state
    host["status"] = {"phase": "Running", "podIP": "10.244.2.9", "containerStatuses": [
        {"name": "main", "ready": True, "restartCount": 0, "lastState": {},
         "state": {"running": {"startedAt": NOW}}}]}
    [cs] = as_shown(host, early)["containerStatuses"]
    assert cs["restartCount"] == 3 and cs["lastState"] == gone["containerStatuses"][0]["lastState"]
    # and restarts on the host count on top; the host's own last state wins
    host["status"]["containerStatuses"][0].update(restartCount=2, lastState={"terminated": {"exitCode": 1}})
    [cs] = as_shown(host, early)["containerStatuses"]
    assert cs["restartCount"] == 5 and cs["lastState"] == {"terminated": {"exitCode": 1}}


def test_a_container_that_never_ran_counts_no_restart():
    waiting = {"phase": "Pending", "containerStatuses": [
        {"name": "main", "restartCount": 0, "state": {"waiting": {"reason": "ErrImagePull"}}}]}
    ann = restarts_before(pod(waiting))
    host = {"metadata": {"annotations": {ANN_RESTARTS: ann}}, "status": {"phase": "Running", "containerStatuses": [
        {"name": "main", "restartCount": 0, "state": {"running": {}}}]}}
    [cs] = as_shown(host, waiting)["containerStatuses"]
    assert cs["restartCount"] == 0


def test_a_new_host_pod_without_history_is_copied_as_it_is():
    host = {"metadata": {}, "status": {"phase": "Pending", "qosClass": "BestEffort"}}
    assert as_shown(host, {}) == host["status"]
    # a host pod that failed before its containers were reported (evicted) is not masked
    failed = {"metadata": {}, "status": {"phase": "Failed", "reason": "Evicted"}}
    gone = not_running(RUNNING, pod(RUNNING), now=NOW)
    assert as_shown(failed, gone) == failed["status"]


def test_owners_count_only_the_pods_that_are_ready_now():
    def owned(uid: str, ready: str, owner: str = "web-1") -> dict:
        return {"metadata": {"namespace": "ns", "uid": uid, "ownerReferences": [
            {"kind": "ReplicaSet", "name": owner, "controller": True}]},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}

    pods = [owned("a", "True"), owned("b", "True"), owned("c", "False"), owned("d", "True", "db-0")]
    counts = ready_counts(pods, not_ready={"b"})  # b was just shown not running: the cache lags
    assert counts == Counter({("ns", "ReplicaSet", "web-1"): 1, ("ns", "ReplicaSet", "db-0"): 1})
    assert overcounts({"readyReplicas": 2, "availableReplicas": 2}, ("readyReplicas", "availableReplicas"), 1)
    assert not overcounts({"readyReplicas": 1}, ("readyReplicas", "availableReplicas"), 1)


async def test_the_wait_ends_once_the_owners_no_longer_count_the_pods(control_plane):
    """Against a real API server without controllers: the status the ReplicaSet and
    Deployment controllers would write is written by hand, to see the wait follow it."""
    async with control_plane.client() as c:
        dep = await c.create(DEPLOYMENTS, {
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}},
            namespace="default")
        rs = await c.create(REPLICASETS, {
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {
                "name": "web-1", "labels": {"app": "web"}, "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                     "uid": dep["metadata"]["uid"], "controller": True}]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}},
            namespace="default")
        counted = {"replicas": 2, "readyReplicas": 2, "availableReplicas": 2}
        for res, name in ((REPLICASETS, "web-1"), (DEPLOYMENTS, "web")):
            await c.patch(res, name, {"status": counted}, namespace="default", subresource="status")
        ref = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1",
               "uid": rs["metadata"]["uid"], "controller": True}
        marked = [{"metadata": {"name": f"web-1-{i}", "namespace": "default", "uid": f"u{i}",
                                "ownerReferences": [ref]},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}]}} for i in (1, 2)]
        # both still counted ready: the wait gives up after its bound and says so
        assert not await wait_owners(c, marked, lambda: marked, timeout=0.3, interval=0.05)
        await c.patch(REPLICASETS, "web-1", {"status": {"readyReplicas": 0, "availableReplicas": 0}},
                      namespace="default", subresource="status")
        stale = await stale_owners(c, {("default", "ReplicaSet", "web-1")}, Counter())
        assert stale == ["Deployment default/web"]  # its Deployment has not followed yet

        async def follow() -> None:
            await asyncio.sleep(0.3)
            await c.patch(DEPLOYMENTS, "web", {"status": {"readyReplicas": 0, "availableReplicas": 0}},
                          namespace="default", subresource="status")

        task = asyncio.create_task(follow())
        assert await wait_owners(c, marked, lambda: marked, timeout=60, interval=0.05)
        await task
        dep = await c.get(DEPLOYMENTS, "web", namespace="default")
        assert dep["status"]["availableReplicas"] == 0  # it waited for exactly this
        # pods without a controller wait for nothing
        assert await wait_owners(c, [pod(RUNNING)], lambda: [], timeout=0)
