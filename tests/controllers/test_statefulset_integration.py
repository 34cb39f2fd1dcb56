"""StatefulSets on a real control plane with the embedded host, driven by kubectl."""

from __future__ import annotations

import json

from tests.controllers.workload_env import WorkloadEnv, eventually, workloads  # noqa: F401
from vkube.client.resources import PODS, PVCS, STATEFULSETS

STS = {"apiVersion": "apps/v1", "kind": "StatefulSet",
       "metadata": {"name": "db", "namespace": "default"},
       "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}},
                             "spec": {"containers": [{"name": "c", "image": "pg:1"}]}},
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}}}]}}


async def test_statefulset_rollout_and_undo(workloads: WorkloadEnv) -> None:
    env, client = workloads, workloads.client
    await env.kubectl("apply", "-f", "-", input=json.dumps(STS))
    out = await env.kubectl("rollout", "status", "statefulset/db", "--timeout=60s")
    assert "complete" in out
    s = await client.get(STATEFULSETS, "db", namespace="default")
    assert s["status"]["readyReplicas"] == 2
    pvcs = sorted(p["metadata"]["name"]
                  for p in (await client.list(PVCS, namespace="default"))["items"])
    assert pvcs == ["data-db-0", "data-db-1"]
    pod = await client.get(PODS, "db-1", namespace="default")
    assert pod["spec"]["hostname"] == "db-1" and pod["spec"]["subdomain"] == "db"
    await env.kubectl("set", "image", "statefulset/db", "c=pg:2")
    await env.kubectl("rollout", "status", "statefulset/db", "--timeout=60s")
    assert (await client.get(PODS, "db-0", namespace="default"))["spec"]["containers"][0][
        "image"] == "pg:2"
    await env.kubectl("rollout", "undo", "statefulset/db")
    await env.kubectl("rollout", "status", "statefulset/db", "--timeout=60s")

    async def back() -> bool:
        imgs = []
        for n in ("db-0", "db-1"):
            p = await client.get(PODS, n, namespace="default")
            imgs.append(p["spec"]["containers"][0]["image"])
        return imgs == ["pg:1", "pg:1"]
    await eventually(back, timeout=30)
