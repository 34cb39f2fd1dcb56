"""Job controller against the in-memory API double, plus its pure accounting helpers."""

from __future__ import annotations

import copy

import pytest

from tests.fakes import FakeCluster

from vkube.client.resources import JOBS
from vkube.controllers.workloads._common import get_condition
from vkube.controllers.workloads.job import JobController
from vkube.controllers.workloads.job_policy import (
    COMPLETION_INDEX, TRACKING_FINALIZER, backoff_delay, format_indexes, match_failure_policy,
    parse_indexes, want_active,
)


def job(name: str = "pi", **spec) -> dict:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"template": {"metadata": {"labels": {"app": name}}, "spec": {
                "restartPolicy": "Never", "containers": [{"name": "c", "image": "perl"}]}},
                **spec}}


def cluster(**attrs) -> FakeCluster:
    c = FakeCluster()
    c.add(JobController, **{"backoff_base": 0.0, **attrs})
    return c


def live_pods(c: FakeCluster) -> list[dict]:
    return [p for p in c.list("pods")
            if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]


async def test_completions_and_parallelism() -> None:
    c = cluster()
    await c.client.create(JOBS, job(completions=3, parallelism=2))
    await c.settle()
    pods = c.list("pods")
    assert len(pods) == 2
    assert all(TRACKING_FINALIZER in p["metadata"]["finalizers"] for p in pods)
    st = c.get("jobs", "pi")["status"]
    assert st["active"] == 2 and "startTime" in st
    for p in pods:
        await c.finish_pod(p["metadata"]["name"])
    await c.settle()
    # finished pods were counted and released; a third pod runs
    assert all(TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or ())
               for p in c.list("pods") if p.get("status", {}).get("phase") == "Succeeded")
    st = c.get("jobs", "pi")["status"]
    assert st["succeeded"] == 2 and st["active"] == 1
    assert st["uncountedTerminatedPods"] == {"succeeded": [], "failed": []}
    [p] = live_pods(c)
    await c.finish_pod(p["metadata"]["name"])
    await c.settle()
    st = c.get("jobs", "pi")["status"]
    assert st["succeeded"] == 3 and st["active"] == 0 and "completionTime" in st
    types = [x["type"] for x in st["conditions"]]
    assert types == ["SuccessCriteriaMet", "Complete"]
    assert get_condition(st, "Complete")["reason"] == "CompletionsReached"
    assert "Completed" in c.recorder.reasons()
    assert c.recorder.reasons().count("SuccessfulCreate") == 3


async def test_backoff_limit_exceeded() -> None:
    c = cluster()
    await c.client.create(JOBS, job(backoffLimit=1))
    await c.settle()
    for _ in range(2):
        [p] = live_pods(c)
        await c.finish_pod(p["metadata"]["name"], phase="Failed", exit_code=1)
        await c.settle()
    st = c.get("jobs", "pi")["status"]
    assert st["failed"] == 2
    assert [x["type"] for x in st["conditions"]] == ["FailureTarget", "Failed"]
    assert get_condition(st, "Failed")["reason"] == "BackoffLimitExceeded"
    assert "BackoffLimitExceeded" in c.recorder.reasons()
    assert live_pods(c) == []


async def test_backoff_delays_recreation() -> None:
    c = cluster(backoff_base=10.0)
    await c.client.create(JOBS, job(backoffLimit=5))
    await c.settle()
    [p] = live_pods(c)
    await c.finish_pod(p["metadata"]["name"], phase="Failed", exit_code=1)
    await c.settle()
    assert live_pods(c) == []
    assert c.requeues["job:default/pi"] == 10.0
    c.advance(10)
    c.kick()
    await c.settle()
    assert len(live_pods(c)) == 1


async def test_active_deadline() -> None:
    c = cluster()
    await c.client.create(JOBS, job(activeDeadlineSeconds=30))
    await c.settle()
    assert c.requeues["job:default/pi"] == 30
    c.advance(31)
    c.kick()
    await c.settle()
    st = c.get("jobs", "pi")["status"]
    assert get_condition(st, "Failed")["reason"] == "DeadlineExceeded"
    assert st["failed"] == 1 and st["active"] == 0
    assert live_pods(c) == []


async def test_indexed_job() -> None:
    c = cluster()
    await c.client.create(JOBS, job(completions=3, parallelism=3, completionMode="Indexed"))
    await c.settle()
    pods = {p["metadata"]["annotations"][COMPLETION_INDEX]: p for p in c.list("pods")}
    assert sorted(pods) == ["0", "1", "2"]
    p1 = pods["1"]
    assert p1["metadata"]["name"].startswith("pi-1-")
    assert p1["metadata"]["labels"][COMPLETION_INDEX] == "1"
    assert p1["spec"]["hostname"] == "pi-1"
    env = p1["spec"]["containers"][0]["env"][0]
    assert env["name"] == "JOB_COMPLETION_INDEX"
    await c.finish_pod(pods["1"]["metadata"]["name"])
    await c.finish_pod(pods["2"]["metadata"]["name"], phase="Failed", exit_code=2)
    await c.settle()
    st = c.get("jobs", "pi")["status"]
    assert st["completedIndexes"] == "1" and st["failed"] == 1
    redo = [p for p in live_pods(c) if p["metadata"]["annotations"][COMPLETION_INDEX] == "2"]
    assert len(redo) == 1
    for p in live_pods(c):
        await c.finish_pod(p["metadata"]["name"])
    await c.settle()
    st = c.get("jobs", "pi")["status"]
    assert st["completedIndexes"] == "0-2" and st["succeeded"] == 3
    assert get_condition(st, "Complete") is not None


async def test_pod_failure_policy_fail_job_and_ignore() -> None:
    policy = {"rules": [
        {"action": "FailJob", "onExitCodes": {"containerName": "c", "operator": "In",
                                              "values": [42]}},
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}]}
    c = cluster()
    await c.client.create(JOBS, job(backoffLimit=0, podFailurePolicy=policy))
    await c.settle()
    [p] = live_pods(c)
    # a disruption is ignored: not counted, the pod is replaced
    await c.finish_pod(p["metadata"]["name"], phase="Failed", exit_code=137)
    pod = copy.deepcopy(c.get("pods", p["metadata"]["name"]))
    pod["status"]["conditions"].append({"type": "DisruptionTarget", "status": "True"})
    await c.client.update(type("R", (), {"plural": "pods", "namespaced": True})(), pod,
                          subresource="status")
    await c.settle()
    st = c.get("jobs", "pi")["status"]
    assert "failed" not in st and st["active"] == 1
    [p] = live_pods(c)
    await c.finish_pod(p["metadata"]["name"], phase="Failed", exit_code=42)
    await c.settle()
    st = c.get("jobs", "pi")["status"]
    cond = get_condition(st, "Failed")
    assert cond["reason"] == "PodFailurePolicy"
    assert "exit code 42 matching FailJob rule at index 0" in cond["message"]


async def test_suspend_and_resume() -> None:
    c = cluster()
    await c.client.create(JOBS, job(parallelism=2, completions=4))
    await c.settle()
    assert len(live_pods(c)) == 2
    await c.client.patch(JOBS, "pi", {"spec": {"suspend": True}}, namespace="default")
    await c.settle()
    st = c.get("jobs", "pi")["status"]
    assert live_pods(c) == [] and st["active"] == 0 and "failed" not in st
    assert get_condition(st, "Suspended")["status"] == "True"
    await c.client.patch(JOBS, "pi", {"spec": {"suspend": False}}, namespace="default")
    await c.settle()
    assert len(live_pods(c)) == 2
    assert get_condition(c.get("jobs", "pi")["status"], "Suspended")["reason"] == "JobResumed"


async def test_ttl_after_finished_deletes_job() -> None:
    c = cluster()
    await c.client.create(JOBS, job(ttlSecondsAfterFinished=100))
    await c.settle()
    [p] = live_pods(c)
    await c.finish_pod(p["metadata"]["name"])
    await c.settle()
    assert c.get("jobs", "pi") is not None
    assert c.requeues["job:default/pi"] == 100
    c.advance(100)
    c.kick()
    await c.settle()
    assert c.get("jobs", "pi") is None and c.list("pods") == []


async def test_work_queue_job_without_completions() -> None:
    c = cluster()
    await c.client.create(JOBS, job(parallelism=2))
    await c.settle()
    a, b = live_pods(c)
    await c.finish_pod(a["metadata"]["name"])
    await c.settle()
    assert len(live_pods(c)) == 1  # no replacement once one succeeded
    await c.finish_pod(b["metadata"]["name"])
    await c.settle()
    assert get_condition(c.get("jobs", "pi")["status"], "Complete") is not None


def test_index_intervals() -> None:
    assert format_indexes({1, 3, 4, 5, 7}) == "1,3-5,7"
    assert parse_indexes("1,3-5,7") == {1, 3, 4, 5, 7}
    assert parse_indexes("0-9", completions=3) == {0, 1, 2}
    assert format_indexes([]) == ""


def test_want_active_and_backoff() -> None:
    assert want_active({"parallelism": 5, "completions": 3}, 1, 0) == 2
    assert want_active({"parallelism": 2}, 0, 0) == 2
    assert want_active({"parallelism": 2}, 1, 1) == 1
    assert [backoff_delay(n, 10, 360) for n in (0, 1, 2, 3, 7)] == [0, 10, 20, 40, 360]


def test_failure_policy_ignores_exit_zero_and_not_in() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "status": {"containerStatuses": [
        {"name": "a", "state": {"terminated": {"exitCode": 0}}},
        {"name": "b", "state": {"terminated": {"exitCode": 3}}}]}}
    rule = {"rules": [{"action": "Count", "onExitCodes": {"operator": "NotIn", "values": [1]}}]}
    action, msg = match_failure_policy(rule, pod)
    assert action == "Count" and "Container b for pod ns/p failed with exit code 3" in msg
    assert match_failure_policy({"rules": [{"action": "FailJob", "onExitCodes": {
        "operator": "In", "values": [1]}}]}, pod) is None


async def test_success_policy_completes_early() -> None:
    c = cluster()
    await c.client.create(JOBS, job(completions=3, parallelism=3, completionMode="Indexed",
                                    successPolicy={"rules": [{"succeededIndexes": "0"}]}))
    await c.settle()
    lead = next(p for p in c.list("pods")
                if p["metadata"]["annotations"][COMPLETION_INDEX] == "0")
    await c.finish_pod(lead["metadata"]["name"])
    await c.settle()
    st = c.get("jobs", "pi")["status"]
    assert get_condition(st, "SuccessCriteriaMet")["reason"] == "SuccessPolicy"
    assert get_condition(st, "Complete")["message"] == "Matched rules at index 0"
    assert live_pods(c) == []


async def test_managed_by_other_controller_is_left_alone() -> None:
    c = cluster()
    await c.client.create(JOBS, job(managedBy="example.com/other"))
    await c.settle()
    assert c.list("pods") == [] and "status" not in c.get("jobs", "pi")


async def test_pod_replacement_policy_failed_waits_for_terminal() -> None:
    c = cluster()
    await c.client.create(JOBS, job(podReplacementPolicy="Failed", backoffLimit=3))
    await c.settle()
    [p] = live_pods(c)
    # hold the pod in Terminating with a foreign finalizer: no replacement yet
    await c.client.patch(type("R", (), {"plural": "pods", "namespaced": True})(),
                         p["metadata"]["name"], {"metadata": {"finalizers": [
                             TRACKING_FINALIZER, "example.com/hold"]}}, namespace="default")
    await c.client.delete(type("R", (), {"plural": "pods", "namespaced": True})(),
                          p["metadata"]["name"], namespace="default")
    await c.settle()
    assert [q["metadata"]["name"] for q in c.list("pods")] == [p["metadata"]["name"]]
    assert c.get("jobs", "pi")["status"]["terminating"] == 1
    await c.finish_pod(p["metadata"]["name"], phase="Failed", exit_code=137)
    await c.settle()
    assert len(live_pods(c)) == 1 and c.get("jobs", "pi")["status"]["failed"] == 1


async def test_backoff_limit_per_index() -> None:
    c = cluster()
    await c.client.create(JOBS, job(completions=2, parallelism=2, completionMode="Indexed",
                                    backoffLimitPerIndex=1))
    await c.settle()

    def of(i: str) -> dict:
        return next(p for p in live_pods(c)
                    if p["metadata"]["annotations"][COMPLETION_INDEX] == i)
    await c.finish_pod(of("0")["metadata"]["name"], phase="Failed", exit_code=1)
    await c.settle()
    retry = of("0")
    assert retry["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"] == "1"
    await c.finish_pod(retry["metadata"]["name"], phase="Failed", exit_code=1)
    await c.settle()
    st = c.get("jobs", "pi")["status"]
    assert st["failedIndexes"] == "0" and [p["metadata"]["annotations"][COMPLETION_INDEX]
                                           for p in live_pods(c)] == ["1"]
    await c.finish_pod(of("1")["metadata"]["name"])
    await c.settle()
    st = c.get("jobs", "pi")["status"]
    assert get_condition(st, "Failed")["reason"] == "FailedIndexes"
    assert st["completedIndexes"] == "1"


def test_verdict_rules() -> None:
    from vkube.controllers.workloads.job_policy import Tally, record_finished, verdict
    spec = {"completions": 2, "backoffLimit": 1, "template": {}}
    t = Tally.from_status(spec, {"succeeded": 1})
    assert verdict(spec, {"succeeded": 1}, t, active=1, restarts=0, elapsed=5) is None
    pod = {"metadata": {"uid": "u1", "name": "p", "namespace": "ns",
                        "finalizers": [TRACKING_FINALIZER]},
           "status": {"phase": "Succeeded"}}
    record_finished(spec, t, [pod])
    assert t.uncounted_succeeded == {"u1"} and t.release == [pod]
    assert verdict(spec, {"succeeded": 1}, t, active=0, restarts=0, elapsed=5)[2] is True
    # restarts of OnFailure pods count towards the backoff limit
    t2 = Tally.from_status(spec, {"failed": 1})
    assert verdict(spec, {"failed": 1}, t2, active=1, restarts=1,
                   elapsed=5)[0] == "BackoffLimitExceeded"
    dl = dict(spec, activeDeadlineSeconds=10)
    assert verdict(dl, {}, Tally(), active=1, restarts=0, elapsed=10)[0] == "DeadlineExceeded"
    assert verdict(dl, {}, Tally(), active=1, restarts=0, elapsed=None) is None  # suspended


async def test_crash_between_flush_and_finalizer_removal_counts_once() -> None:
    c = cluster()
    ctl = c.controllers[0]
    await c.client.create(JOBS, job(completions=2, parallelism=1))
    await c.settle()
    [p] = live_pods(c)
    await c.finish_pod(p["metadata"]["name"])

    async def crash(pods):  # the process dies right after the uncounted list was written
        raise RuntimeError("killed")
    ctl._strip_finalizers = crash
    ctl.queue.keys.clear()
    with pytest.raises(RuntimeError):
        await ctl.reconcile("default/pi")
    st = c.get("jobs", "pi")["status"]
    assert st["uncountedTerminatedPods"]["succeeded"] == [p["metadata"]["uid"]]
    # a fresh controller (restart) finishes the bookkeeping exactly once
    c.controllers.clear()
    c.informers.clear()
    c.add(JobController, backoff_base=0.0)
    c.kick()
    await c.settle()
    c.kick()
    await c.settle()
    st = c.get("jobs", "pi")["status"]
    assert st["succeeded"] == 1 and st["uncountedTerminatedPods"]["succeeded"] == []
    assert st["active"] == 1


async def test_stale_pod_cache_never_creates_duplicates() -> None:
    c = cluster()
    c.freeze("pods")
    await c.client.create(JOBS, job(parallelism=3, completions=3))
    await c.settle()
    c.kick()
    await c.settle()
    assert len(c.list("pods")) == 3
    c.thaw("pods")
    await c.settle()
    assert len(c.list("pods")) == 3


async def test_a_lagging_job_cache_never_revives_a_failed_job() -> None:
    """Issue 11: restartPolicy OnFailure, backoffLimit 2; the verdict is written, the pod
    killed, and the pod's deletion arrives while the Job cache still shows no verdict: no
    replacement pod may be created."""
    from vkube.client.resources import PODS

    c = cluster()
    spec = job(backoffLimit=2)
    spec["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    await c.client.create(JOBS, spec)
    await c.settle()
    [p] = live_pods(c)
    p = copy.deepcopy(p)
    p["status"] = {"phase": "Running", "containerStatuses": [
        {"name": "c", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}
    c.freeze("jobs")  # the Job informer will not see the Failed status we write
    await c.client.update(PODS, p, subresource="status")
    await c.settle()
    c.kick()
    await c.settle()
    assert live_pods(c) == [] and len(c.list("pods")) == 0, c.list("pods")
    st = c.get("jobs", "pi")["status"]
    assert get_condition(st, "Failed")["reason"] == "BackoffLimitExceeded"
    c.thaw("jobs")
    await c.settle()
    assert c.list("pods") == [] and c.recorder.reasons().count("SuccessfulCreate") == 1


async def test_finished_job_stops_what_still_runs_and_releases_orphans() -> None:
    """A finished Job that still has a running pod (created by a lagging peer, say) deletes
    it; a pod whose Job is gone loses the tracking finalizer instead of hanging."""
    from vkube.client.resources import PODS

    c = cluster()
    await c.client.create(JOBS, job(completions=1))
    await c.settle()
    [p] = live_pods(c)
    await c.finish_pod(p["metadata"]["name"])
    await c.settle()
    assert get_condition(c.get("jobs", "pi")["status"], "Complete") is not None
    stray = copy.deepcopy(p)
    stray["metadata"] = {**p["metadata"], "name": "pi-stray", "uid": "", "resourceVersion": ""}
    stray.pop("status", None)
    await c.client.create(PODS, stray, namespace="default")
    await c.settle()
    assert [x["metadata"]["name"] for x in live_pods(c)] == []
    # a Job deleted while its pods still hold the finalizer
    await c.client.create(JOBS, job("gone", parallelism=2, completions=2))
    await c.settle()
    assert len([x for x in live_pods(c) if x["metadata"]["name"].startswith("gone-")]) == 2
    await c.client.delete(JOBS, "gone", namespace="default")
    await c.settle()
    assert [x["metadata"]["name"] for x in c.list("pods") if x["metadata"]["name"].startswith("gone-")] == []
