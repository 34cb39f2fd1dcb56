"""Deployments and ReplicationControllers on a real control plane with the embedded host,
driven by the real kubectl (rollout status/history/undo/restart, scale, describe)."""

from __future__ import annotations

import json

from tests.controllers.workload_env import WorkloadEnv, eventually, workloads  # noqa: F401
from vkube.client.resources import DEPLOYMENTS, PODS, REPLICASETS

DEPLOY = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: c, image: "nginx:1"}]}
"""


async def live_images(client, selector: str) -> list[str]:
    items = (await client.list(PODS, namespace="default", label_selector=selector))["items"]
    return sorted(p["spec"]["containers"][0]["image"] for p in items
                  if not p["metadata"].get("deletionTimestamp"))


async def test_deployment_rollout_undo_and_status(workloads: WorkloadEnv) -> None:
    env, client = workloads, workloads.client
    await env.kubectl("apply", "-f", "-", input=DEPLOY)
    out = await env.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert "successfully rolled out" in out
    pods = (await client.list(PODS, namespace="default", label_selector="app=web"))["items"]
    assert len(pods) == 3 and all(p["metadata"]["name"].startswith("web-") for p in pods)
    await env.kubectl("set", "image", "deployment/web", "c=nginx:2")
    out = await env.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    assert "successfully rolled out" in out
    hist = await env.kubectl("rollout", "history", "deployment/web")
    assert "1 " in hist and "2 " in hist
    await env.kubectl("rollout", "undo", "deployment/web")
    await env.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    d = await client.get(DEPLOYMENTS, "web", namespace="default")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    await eventually(lambda: _eq(live_images(client, "app=web"), ["nginx:1"] * 3), timeout=30)
    assert len((await client.list(REPLICASETS, namespace="default"))["items"]) == 2
    await env.kubectl("scale", "deployment/web", "--replicas=1")
    await env.kubectl("rollout", "restart", "deployment/web")
    await env.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    desc = await env.kubectl("describe", "deployment", "web")
    assert "ScalingReplicaSet" in desc and "NewReplicaSetAvailable" in desc


async def test_pause_and_resume(workloads: WorkloadEnv) -> None:
    env, client = workloads, workloads.client
    await env.kubectl("apply", "-f", "-", input=DEPLOY)
    await env.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    await env.kubectl("rollout", "pause", "deployment/web")
    await env.kubectl("set", "image", "deployment/web", "c=nginx:2")
    await eventually(lambda: _progressing_reason(client, "DeploymentPaused"))
    assert await live_images(client, "app=web") == ["nginx:1"] * 3
    await env.kubectl("rollout", "resume", "deployment/web")
    await env.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    await eventually(lambda: _eq(live_images(client, "app=web"), ["nginx:2"] * 3), timeout=30)


async def test_replication_controller_scale(workloads: WorkloadEnv) -> None:
    env, client = workloads, workloads.client
    await env.kubectl("apply", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "rc", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"app": "rc"},
                 "template": {"metadata": {"labels": {"app": "rc"}},
                              "spec": {"containers": [{"name": "c", "image": "x"}]}}}}))
    await eventually(lambda: _eq(live_images(client, "app=rc"), ["x", "x"]))
    await env.kubectl("scale", "rc/rc", "--replicas=4")
    await eventually(lambda: _eq(live_images(client, "app=rc"), ["x"] * 4))
    out = await env.kubectl("get", "rc", "rc", "-o", "jsonpath={.status.readyReplicas}")
    assert out in ("", "0", "1", "2", "3", "4")


async def _eq(coro, want) -> bool:
    return (await coro) == want


async def _progressing_reason(client, reason: str) -> bool:
    d = await client.get(DEPLOYMENTS, "web", namespace="default")
    return any(c["type"] == "Progressing" and c["reason"] == reason
               for c in (d.get("status") or {}).get("conditions") or ())
