"""Workload controllers on a real control plane with the embedded host, driven by kubectl."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.controllers.test_integration import eventually
from vkube.client.resources import DEPLOYMENTS, JOBS, PODS, REPLICASETS, STATEFULSETS
from vkube.controllers.runtime import ControllerManager, default_controllers
from vkube.host.runner import EmbeddedHost
from vkube.host.stages import KubeletConfig

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


@pytest.fixture
async def cluster(control_plane):
    client = control_plane.client()
    host = EmbeddedHost(control_plane.url, nodes=2, seed=1,
                        kubelet=KubeletConfig(stop_seconds=0.05))
    await host.start()
    mgr = ControllerManager(client, identity="test-cm", leader_election=False)
    for cls in default_controllers():
        mgr.add(cls)
    task = asyncio.create_task(mgr.run())
    try:
        await asyncio.wait_for(mgr.started.wait(), 15)
        yield control_plane, client
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await host.stop()
        await client.close()


async def kubectl(cp, *args: str, input: str | None = None) -> str:
    proc = await asyncio.to_thread(cp.kubectl, *args, input=input)
    return proc.stdout


async def test_deployment_rollout_undo_and_status(cluster) -> None:
    cp, client = cluster
    await kubectl(cp, "apply", "-f", "-", input=DEPLOY)
    out = await kubectl(cp, "rollout", "status", "deployment/web", "--timeout=60s")
    assert "successfully rolled out" in out
    pods = (await client.list(PODS, namespace="default", label_selector="app=web"))["items"]
    assert len(pods) == 3 and all(p["metadata"]["name"].startswith("web-") for p in pods)
    await kubectl(cp, "set", "image", "deployment/web", "c=nginx:2")
    out = await kubectl(cp, "rollout", "status", "deployment/web", "--timeout=60s")
    assert "successfully rolled out" in out
    hist = await kubectl(cp, "rollout", "history", "deployment/web")
    assert "1 " in hist and "2 " in hist
    await kubectl(cp, "rollout", "undo", "deployment/web")
    await kubectl(cp, "rollout", "status", "deployment/web", "--timeout=60s")
    d = await client.get(DEPLOYMENTS, "web", namespace="default")
    assert d["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"

    async def only_v1() -> bool:
        items = (await client.list(PODS, namespace="default", label_selector="app=web"))["items"]
        live = [p for p in items if not p["metadata"].get("deletionTimestamp")]
        return len(live) == 3 and {p["spec"]["containers"][0]["image"] for p in live} == {"nginx:1"}
    await eventually(only_v1, timeout=30)
    rs = (await client.list(REPLICASETS, namespace="default"))["items"]
    assert len(rs) == 2
    await kubectl(cp, "scale", "deployment/web", "--replicas=1")
    await kubectl(cp, "rollout", "restart", "deployment/web")
    await kubectl(cp, "rollout", "status", "deployment/web", "--timeout=60s")
    desc = await kubectl(cp, "describe", "deployment", "web")
    assert "ScalingReplicaSet" in desc


async def test_job_and_statefulset(cluster) -> None:
    cp, client = cluster
    await kubectl(cp, "apply", "-f", "-", input=json.dumps({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once", "namespace": "default"},
        "spec": {"completions": 2, "template": {"spec": {"restartPolicy": "Never", "containers": [
            {"name": "c", "image": "busybox", "command": ["true"]}]}}}}))

    async def job_done() -> bool:
        j = await client.get(JOBS, "once", namespace="default")
        return any(c["type"] == "Complete" and c["status"] == "True"
                   for c in (j.get("status") or {}).get("conditions") or ())
    await eventually(job_done, timeout=60)
    await kubectl(cp, "apply", "-f", "-", input=json.dumps({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default"},
        "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": {"metadata": {"labels": {"app": "db"}},
                              "spec": {"containers": [{"name": "c", "image": "postgres"}]}}}}))
    out = await kubectl(cp, "rollout", "status", "statefulset/db", "--timeout=60s")
    assert "roll out complete" in out or "rolling update complete" in out
    s = await client.get(STATEFULSETS, "db", namespace="default")
    assert s["status"]["readyReplicas"] == 2
