"""DaemonSet and CronJob on a real control plane with the embedded host (scheduler binds the
DaemonSet pods through their node affinity; kubelets run them)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

from tests.controllers.workload_env import WorkloadEnv, eventually, workloads  # noqa: F401
from vkube.client.resources import CRONJOBS, DAEMONSETS, JOBS, PODS


async def test_daemonset_runs_on_every_node(workloads: WorkloadEnv) -> None:
    cp, client = workloads.cp, workloads.client
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet",
          "metadata": {"name": "agent", "namespace": "default"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}},
                                "spec": {"containers": [{"name": "c", "image": "agent:1"}]}}}}
    await asyncio.to_thread(cp.kubectl, "apply", "-f", "-", input=json.dumps(ds))
    out = (await asyncio.to_thread(cp.kubectl, "rollout", "status", "daemonset/agent",
                                   "--timeout=60s")).stdout
    assert "successfully rolled out" in out
    pods = (await client.list(PODS, namespace="default", label_selector="app=agent"))["items"]
    assert len({p["spec"]["nodeName"] for p in pods}) == 3 == len(pods)
    await asyncio.to_thread(cp.kubectl, "set", "image", "daemonset/agent", "c=agent:2")
    await asyncio.to_thread(cp.kubectl, "rollout", "status", "daemonset/agent", "--timeout=60s")
    st = (await client.get(DAEMONSETS, "agent", namespace="default"))["status"]
    assert st["updatedNumberScheduled"] == 3 and st["numberAvailable"] == 3
    hist = (await asyncio.to_thread(cp.kubectl, "rollout", "history", "daemonset/agent")).stdout
    assert "1 " in hist and "2 " in hist
    # kubectl rollout undo applies the previous ControllerRevision's data as a patch
    await asyncio.to_thread(cp.kubectl, "rollout", "undo", "daemonset/agent")
    await asyncio.to_thread(cp.kubectl, "rollout", "status", "daemonset/agent", "--timeout=60s")

    async def back_to_v1() -> bool:
        items = (await client.list(PODS, namespace="default", label_selector="app=agent"))["items"]
        live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
        return len(live) == 3 and {p["spec"]["containers"][0]["image"] for p in live} == {"agent:1"}
    await eventually(back_to_v1, timeout=30)


async def test_cronjob_starts_a_job_when_its_time_comes(workloads: WorkloadEnv) -> None:
    cp, client, clock = workloads.cp, workloads.client, workloads.clock
    cj = {"apiVersion": "batch/v1", "kind": "CronJob",
          "metadata": {"name": "tick", "namespace": "default"},
          "spec": {"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": {"spec": {
              "restartPolicy": "Never",
              "containers": [{"name": "c", "image": "busybox", "command": ["true"]}]}}}}}}
    await asyncio.to_thread(cp.kubectl, "apply", "-f", "-", input=json.dumps(cj))
    clock.offset = timedelta(minutes=1)
    await client.patch(CRONJOBS, "tick", {"metadata": {"annotations": {"poke": "1"}}},
                       namespace="default")

    async def job_complete() -> bool:
        jobs = (await client.list(JOBS, namespace="default"))["items"]
        return any(c["type"] == "Complete" for j in jobs
                   for c in (j.get("status") or {}).get("conditions") or ())
    await eventually(job_complete, timeout=60)

    async def saw_it() -> bool:
        st = (await client.get(CRONJOBS, "tick", namespace="default")).get("status") or {}
        return "lastSuccessfulTime" in st and not st.get("active")
    await eventually(saw_it, timeout=30)
