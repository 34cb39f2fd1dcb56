"""Jobs on a real control plane with the embedded host."""

from __future__ import annotations

import json

from tests.controllers.workload_env import WorkloadEnv, eventually, workloads  # noqa: F401
from vkube.client.resources import JOBS, PODS


async def test_indexed_job_completes(workloads: WorkloadEnv) -> None:
    env, client = workloads, workloads.client
    await env.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once", "namespace": "default"},
        "spec": {"completions": 3, "parallelism": 2, "completionMode": "Indexed",
                 "template": {"spec": {"restartPolicy": "Never", "containers": [
                     {"name": "c", "image": "busybox", "command": ["true"]}]}}}}))

    async def complete() -> bool:
        j = await client.get(JOBS, "once", namespace="default")
        return any(c["type"] == "Complete" and c["status"] == "True"
                   for c in (j.get("status") or {}).get("conditions") or ())
    await eventually(complete, timeout=60)
    j = await client.get(JOBS, "once", namespace="default")
    assert j["status"]["succeeded"] == 3 and j["status"]["completedIndexes"] == "0-2"
    pods = (await client.list(PODS, namespace="default"))["items"]
    assert not any("batch.kubernetes.io/job-tracking" in (p["metadata"].get("finalizers") or ())
                   for p in pods)
    desc = await env.kubectl("describe", "job", "once")
    assert "Completed" in desc and "SuccessfulCreate" in desc
