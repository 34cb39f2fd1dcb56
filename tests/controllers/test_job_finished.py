"""A finished Job leaves no running pods and no pod held by its finalizer (issue 11): Failed by
backoff (restartPolicy OnFailure), by deadline, by podFailurePolicy FailJob; suspended; and
deleted. Driven through kubectl against a control plane with every controller and the
embedded host; pod streams are recorded from a watch, so a pod that lived for an instant
after the Job finished is seen too."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.controllers.test_acceptance import Recorder, condition
from tests.controllers.workload_env import WorkloadEnv, eventually, running_workloads
from vkube.client.resources import JOBS, PODS
from vkube.controllers.workloads import JobController
from vkube.host.stages import KubeletConfig

Obj = dict[str, Any]
FINALIZER = "batch.kubernetes.io/job-tracking"
FAST = KubeletConfig(stop_seconds=0.05, backoff_base=0.2, backoff_max=0.4)


def job(name: str, command: list[str], *, restart: str = "Never", **spec: Any) -> str:
    return json.dumps({"apiVersion": "batch/v1", "kind": "Job",
                       "metadata": {"name": name, "namespace": "default"},
                       "spec": {**spec, "template": {"spec": {
                           "restartPolicy": restart, "terminationGracePeriodSeconds": 1,
                           "containers": [{"name": "c", "image": "busybox",
                                           "command": command}]}}}})


def running(pod: Obj) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and (pod.get("status") or {}).get(
        "phase") not in ("Succeeded", "Failed")


async def settled_after_finish(env: WorkloadEnv, name: str, cond: str, rec: Recorder) -> Obj:
    """Wait for the condition, then for every pod of the Job to stop; then watch 3 s more:
    nothing may be created or start running again."""
    await env.kubectl("wait", f"--for=condition={cond}", f"job/{name}", "--timeout=90s")

    async def quiet() -> bool:
        pods = (await env.client.list(PODS, namespace="default",
                                      label_selector=f"job-name={name}"))["items"]
        assert not [p["metadata"]["name"] for p in pods if running(p)]
        assert not [p["metadata"]["name"] for p in pods
                    if FINALIZER in (p["metadata"].get("finalizers") or ())]
        return True
    await eventually(quiet, timeout=60)
    seen = len(rec.log)
    await asyncio.sleep(3)
    # this Job's pods only (another Job of the same test may still be running its own)
    late = [(t, o["metadata"]["name"]) for t, o in rec.log[seen:]
            if ((o["metadata"].get("labels") or {}).get("job-name") == name)
            and (t == "ADDED" or (t == "MODIFIED" and running(o)))]
    assert not late, late
    out = await env.kubectl("get", "pods", "-l", f"job-name={name}", "--no-headers")
    assert "Running" not in out and "ContainerCreating" not in out, out
    return await env.client.get(JOBS, name, namespace="default")


async def test_onfailure_backoff_limit_failed_job_leaves_no_running_pod(control_plane) -> None:
    async with running_workloads(control_plane, kubelet=FAST) as env:
        rec = Recorder(env.client, PODS, label_selector="job-name=crash")
        await rec.start()
        await env.kubectl("apply", "-f", "-", input=job("crash", ["sh", "-c", "exit 1"],
                                                        restart="OnFailure", backoffLimit=2))
        j = await settled_after_finish(env, "crash", "Failed", rec)
        await rec.stop()
        assert condition(j, "Failed")["reason"] == "BackoffLimitExceeded"
        assert len({o["metadata"]["name"] for t, o in rec.log if t == "ADDED"}) == 1
        assert not j["status"].get("active")


async def test_deadline_and_pod_failure_policy_terminate_the_running_pods(control_plane) -> None:
    async with running_workloads(control_plane, kubelet=FAST) as env:
        rec = Recorder(env.client, PODS)
        await rec.start()
        await env.kubectl("apply", "-f", "-", input=job("slow", ["sleep", "3600"], parallelism=3,
                                                        completions=3, activeDeadlineSeconds=3))
        await env.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "policy"},
            "spec": {"parallelism": 2, "completionMode": "Indexed", "completions": 2,
                     "podFailurePolicy": {"rules": [{"action": "FailJob", "onExitCodes": {
                         "operator": "In", "values": [42]}}]},
                     "template": {"spec": {"restartPolicy": "Never",
                                           "terminationGracePeriodSeconds": 1,
                                           "containers": [{"name": "c", "image": "busybox",
                                                           "command": ["sh", "-c",
                                                                       "sleep 1; exit 42"]}]}}}}))
        slow = await settled_after_finish(env, "slow", "Failed", rec)
        assert condition(slow, "Failed")["reason"] == "DeadlineExceeded"
        pol = await settled_after_finish(env, "policy", "Failed", rec)
        await rec.stop()
        assert condition(pol, "Failed")["reason"] == "PodFailurePolicy"


async def test_suspended_job_runs_nothing_and_resumes(control_plane) -> None:
    async with running_workloads(control_plane, kubelet=FAST) as env:
        await env.kubectl("apply", "-f", "-", input=job("pause", ["sleep", "3600"],
                                                        parallelism=2, completions=2))

        async def two_running() -> bool:
            pods = (await env.client.list(PODS, namespace="default",
                                          label_selector="job-name=pause"))["items"]
            return sum(1 for p in pods if running(p)) == 2
        await eventually(two_running, timeout=60)
        rec = Recorder(env.client, PODS, label_selector="job-name=pause")
        await rec.start()
        await env.kubectl("patch", "job", "pause", "--type=merge", "-p", '{"spec":{"suspend":true}}')
        await settled_after_finish(env, "pause", "Suspended", rec)
        await rec.stop()
        await env.kubectl("patch", "job", "pause", "--type=merge", "-p", '{"spec":{"suspend":false}}')
        await eventually(two_running, timeout=60)


async def test_pods_of_a_deleted_job_do_not_hang_terminating(control_plane) -> None:
    async with running_workloads(control_plane, kubelet=FAST) as env:
        ctrl = env.mgr.get(JobController)
        assert ctrl is not None
        for name in ("gone", "orphaned", "fg"):
            await env.kubectl("apply", "-f", "-", input=job(name, ["sleep", "3600"], parallelism=2,
                                                            completions=2))

        async def running_pods(name: str) -> list[Obj]:
            return [p for p in (await env.client.list(
                PODS, namespace="default", label_selector=f"job-name={name}"))["items"] if running(p)]

        for name in ("gone", "orphaned", "fg"):
            await eventually(lambda n=name: _len_is(running_pods(n), 2), timeout=60)
        # a foreground delete: the Job waits for its pods, and makes no new ones meanwhile
        rec = Recorder(env.client, PODS, label_selector="job-name=fg")
        await rec.start()
        await env.kubectl("delete", "job", "fg", "--cascade=foreground", "--timeout=60s")
        await rec.stop()
        assert not [o["metadata"]["name"] for t, o in rec.log if t == "ADDED"]
        assert (await env.client.list(PODS, namespace="default",
                                      label_selector="job-name=fg"))["items"] == []
        # a cascading delete: the pods go away entirely (no finalizer holds them)
        await env.kubectl("delete", "job", "gone", "--wait=false")

        async def no_pods() -> bool:
            pods = (await env.client.list(PODS, namespace="default",
                                          label_selector="job-name=gone"))["items"]
            assert not pods, [(p["metadata"]["name"], p["metadata"].get("finalizers")) for p in pods]
            return True
        await eventually(no_pods, timeout=60)
        # an orphaning delete: the pods keep running but no longer carry our finalizer
        await env.kubectl("delete", "job", "orphaned", "--cascade=orphan")

        async def released() -> bool:
            pods = await running_pods("orphaned")
            assert len(pods) == 2
            assert not [p for p in pods if FINALIZER in (p["metadata"].get("finalizers") or ())]
            return True
        await eventually(released, timeout=60)
        await env.kubectl("delete", "pods", "-l", "job-name=orphaned", "--wait=true",
                          "--timeout=60s")


async def _len_is(pods: Any, n: int) -> bool:
    return len(await pods) == n
