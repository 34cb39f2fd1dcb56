"""``metrics.k8s.io/v1beta1`` served by the API server itself: what ``kubectl top`` and
``kubectl get --raw`` show for running pods with and without usage annotations, per node, with
selectors, and the NotFound answers metrics-server gives."""

from __future__ import annotations

import asyncio
import json

from vkube.client.resources import NODES, PODS


async def kubectl(cp, *args: str, check: bool = True):
    return await asyncio.to_thread(cp.kubectl, *args, check=check)


async def make_pod(client, name: str, node: str, annotations: dict, *, phase: str = "Running") -> None:
    await client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "labels": {"app": name.split("-")[0]}, "annotations": annotations},
        "spec": {"nodeName": node, "containers": [
            {"name": "app", "image": "x", "resources": {"requests": {"cpu": "200m", "memory": "100Mi"}}},
            {"name": "log", "image": "x", "resources": {"requests": {"cpu": "200m", "memory": "100Mi"}}}]}},
        namespace="default")
    pod = await client.get(PODS, name, namespace="default")
    pod["status"] = {"phase": phase}
    await client.update(PODS, pod, subresource="status")


async def test_top_pods_and_nodes(control_plane):
    cp = control_plane
    client = cp.client()
    try:
        await client.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"},
                                    "status": {"capacity": {"cpu": "4", "memory": "8Gi"},
                                               "allocatable": {"cpu": "4", "memory": "8Gi"}}})
        await make_pod(client, "web-1", "n1", {"vkube.io/cpu-usage": "300m", "vkube.io/memory-usage": "app=50Mi,log=10Mi"})
        await make_pod(client, "web-2", "n1", {})
        await make_pod(client, "db-1", "n1", {"vkube.io/cpu-usage": "app=100%,log=0"})
        await make_pod(client, "bad-1", "n1", {"vkube.io/cpu-usage": "lots"})
        await make_pod(client, "new-1", "n1", {}, phase="Pending")
    finally:
        await client.close()

    rows = {r.split()[0]: r.split()[1:] for r in (await kubectl(cp, "top", "pods", "--no-headers")).stdout.splitlines()}
    assert rows == {"web-1": ["300m", "60Mi"], "web-2": ["40m", "20Mi"], "db-1": ["200m", "20Mi"]}
    containers = (await kubectl(cp, "top", "pods", "web-1", "--containers", "--no-headers")).stdout.splitlines()
    assert [c.split() for c in containers] == [["web-1", "app", "150m", "50Mi"], ["web-1", "log", "150m", "10Mi"]]
    selected = (await kubectl(cp, "top", "pods", "-l", "app=web", "--no-headers")).stdout.split()
    assert selected[::3] == ["web-1", "web-2"]
    node = (await kubectl(cp, "top", "nodes", "--no-headers")).stdout.split()
    assert node[:3] == ["n1", "540m", "13%"]

    listed = json.loads((await kubectl(cp, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods")).stdout)
    assert listed["kind"] == "PodMetricsList"
    one = next(i for i in listed["items"] if i["metadata"]["name"] == "web-1")
    assert one["metadata"]["labels"] == {"app": "web"} and one["window"] == "15s"
    assert one["containers"][0] == {"name": "app", "usage": {"cpu": "150000000n", "memory": "51200Ki"}}

    missing = await kubectl(cp, "top", "pods", "nope", check=False)
    assert missing.returncode != 0 and 'pods "nope" not found' in missing.stderr
    pending = await kubectl(cp, "get", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/new-1", check=False)
    assert 'podmetrics.metrics.k8s.io "default/new-1" not found' in pending.stderr
    written = await kubectl(cp, "delete", "--raw", "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web-1", check=False)
    assert written.returncode != 0 and "MethodNotAllowed" in written.stderr


async def test_view_can_top_and_others_cannot(control_plane):
    cp = control_plane
    await kubectl(cp, "create", "rolebinding", "alice-view", "--clusterrole", "view", "--user", "alice",
                  "--namespace", "default")
    ok = await kubectl(cp, "top", "pods", "--as", "alice", "-n", "default", check=False)
    assert ok.returncode == 0 or "No resources found" in ok.stderr, ok.stderr
    denied = await kubectl(cp, "top", "pods", "--as", "bob", "-n", "default", check=False)
    assert denied.returncode != 0
    assert 'User "bob" cannot list resource "pods" in API group "metrics.k8s.io"' in denied.stderr
