"""Issue 2's acceptance, through the real kubectl against a real control plane."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import KUBECTL

MANIFEST = """\
apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
  labels: {tier: backend}
data:
  color: blue
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.25
        ports: [{containerPort: 80}]
"""


async def run(cp, *args: str, input: str | None = None, check: bool = True):
    return await asyncio.to_thread(cp.kubectl, *args, input=input, check=check)


async def test_namespaces_and_configmaps(control_plane):
    out = (await run(control_plane, "get", "ns")).stdout
    for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
        assert ns in out
    await run(control_plane, "create", "ns", "team")
    await run(control_plane, "create", "configmap", "conf", "-n", "team", "--from-literal=a=b", "--from-literal=c=d")
    got = yaml.safe_load((await run(control_plane, "get", "cm", "conf", "-n", "team", "-o", "yaml")).stdout)
    assert got["data"] == {"a": "b", "c": "d"}
    assert got["metadata"]["namespace"] == "team" and got["metadata"]["uid"]
    # round trip: what get returns, replace accepts unchanged, and get returns it again
    again = yaml.safe_load((await run(control_plane, "get", "cm", "conf", "-n", "team", "-o", "yaml")).stdout)
    assert again == got


async def test_apply_twice_is_unchanged_then_delete(control_plane, tmp_path: Path):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(MANIFEST)
    first = (await run(control_plane, "apply", "-f", str(manifest))).stdout
    assert "namespace/shop created" in first and "deployment.apps/web created" in first
    second = (await run(control_plane, "apply", "-f", str(manifest))).stdout
    assert second.count("unchanged") == 3, second
    out = (await run(control_plane, "get", "deploy", "-n", "shop")).stdout
    assert out.split("\n")[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    await run(control_plane, "delete", "-f", str(manifest), "--wait=false")
    out = (await run(control_plane, "get", "cm", "-n", "shop", check=False))
    assert "settings" not in out.stdout


async def test_label_annotate_and_selectors(control_plane):
    await run(control_plane, "create", "configmap", "one", "--from-literal=k=v")
    await run(control_plane, "create", "configmap", "two", "--from-literal=k=v")
    await run(control_plane, "label", "cm", "one", "a=b")
    await run(control_plane, "annotate", "cm", "two", "note=hello")
    by_label = (await run(control_plane, "get", "cm", "-l", "a=b", "-o", "name")).stdout.split()
    assert by_label == ["configmap/one"]
    not_label = (await run(control_plane, "get", "cm", "-l", "a!=b", "-o", "name")).stdout.split()
    assert "configmap/two" in not_label and "configmap/one" not in not_label
    set_based = (await run(control_plane, "get", "cm", "-l", "a in (b,c)", "-o", "name")).stdout.split()
    assert set_based == ["configmap/one"]
    by_field = (await run(control_plane, "get", "cm", "--field-selector", "metadata.name=two", "-o", "name")).stdout.split()
    assert by_field == ["configmap/two"]
    ann = json.loads((await run(control_plane, "get", "cm", "two", "-o", "json")).stdout)
    assert ann["metadata"]["annotations"]["note"] == "hello"
    bad = await run(control_plane, "get", "cm", "--field-selector", "spec.nope=1", check=False)
    assert bad.returncode != 0 and "field label not supported" in bad.stderr


async def test_chunked_list_returns_everything(control_plane):
    client = control_plane.client()
    try:
        from vkube.client.resources import CONFIGMAPS

        for i in range(95):
            await client.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap",
                                             "metadata": {"name": f"cm-{i:03d}"}, "data": {"i": str(i)}},
                                namespace="default")
    finally:
        await client.close()
    out = (await run(control_plane, "get", "cm", "--chunk-size=10", "-o", "name")).stdout.split()
    names = [n for n in out if n.startswith("configmap/cm-")]
    assert len(names) == 95 and len(set(names)) == 95


async def test_get_all_and_discovery(control_plane):
    await run(control_plane, "create", "deployment", "nginx", "--image=nginx")
    out = (await run(control_plane, "get", "deploy")).stdout
    header = out.splitlines()[0].split()
    assert header == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert out.splitlines()[1].split()[:2] == ["nginx", "0/1"]
    all_out = (await run(control_plane, "get", "all", "-A")).stdout
    assert "deployment.apps/nginx" in all_out and "service/kubernetes" in all_out
    resources = (await run(control_plane, "api-resources")).stdout
    for plural in ("namespaces", "pods", "services", "endpoints", "configmaps", "secrets", "serviceaccounts",
                   "events", "nodes", "persistentvolumes", "persistentvolumeclaims", "resourcequotas",
                   "limitranges", "replicationcontrollers", "deployments", "replicasets", "statefulsets",
                   "daemonsets", "controllerrevisions", "jobs", "cronjobs", "roles", "rolebindings",
                   "clusterroles", "clusterrolebindings", "networkpolicies", "ingresses", "ingressclasses",
                   "storageclasses", "leases", "endpointslices", "poddisruptionbudgets", "priorityclasses",
                   "runtimeclasses"):
        assert f"\n{plural} " in resources, plural
    endpoints = await run(control_plane, "get", "endpoints")
    assert ("Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"
            in endpoints.stderr), endpoints.stderr
    slices = await run(control_plane, "get", "endpointslices")
    assert "deprecated" not in slices.stderr, slices.stderr
    versions = (await run(control_plane, "api-versions")).stdout.split()
    for gv in ("v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1", "networking.k8s.io/v1",
               "storage.k8s.io/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1", "events.k8s.io/v1",
               "policy/v1", "scheduling.k8s.io/v1", "node.k8s.io/v1"):
        assert gv in versions, gv


async def test_watch_shows_added_modified_deleted(control_plane, tmp_path: Path):
    env = {**os.environ, "KUBECONFIG": str(control_plane.kubeconfig)}
    proc = await asyncio.create_subprocess_exec(
        KUBECTL, "get", "pods", "-w", "--output-watch-events", "--request-timeout=0",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        await asyncio.sleep(1.0)
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "watched"},
               "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        await run(control_plane, "create", "-f", "-", input=json.dumps(pod))
        await run(control_plane, "label", "pod", "watched", "x=y")
        await run(control_plane, "delete", "pod", "watched", "--wait=false")
        seen: list[str] = []
        async def collect() -> None:
            assert proc.stdout is not None
            while len({"ADDED", "MODIFIED", "DELETED"} & set(seen)) < 3:
                line = (await proc.stdout.readline()).decode()
                if not line:
                    break
                if "watched" in line:
                    seen.append(line.split()[0])
        await asyncio.wait_for(collect(), 30)
        assert seen[0] == "ADDED" and "MODIFIED" in seen and seen[-1] == "DELETED", seen
    finally:
        proc.kill()
        await proc.wait()


async def test_delete_namespace_with_kubectl(control_plane):
    """Without the namespace controller the API server still marks it Terminating; the
    controllers' tests show it disappearing."""
    await run(control_plane, "create", "ns", "gone")
    await run(control_plane, "delete", "ns", "gone", "--wait=false")
    ns = json.loads((await run(control_plane, "get", "ns", "gone", "-o", "json")).stdout)
    assert ns["status"]["phase"] == "Terminating" and ns["metadata"]["deletionTimestamp"]
    blocked = await run(control_plane, "create", "cm", "x", "-n", "gone", "--from-literal=a=b", check=False)
    assert blocked.returncode != 0 and "being terminated" in blocked.stderr


def test_vkube_serve_with_controllers_deletes_namespaces(tmp_path: Path):
    """`vkube serve` runs the controllers too: `kubectl delete ns` returns once it is gone,
    and a deployment gets its ReplicaSet."""
    import time

    from tests.conftest import kubectl

    data = tmp_path / "cp"
    proc = subprocess.Popen([sys.executable, "-m", "vkube", "serve", "--data-dir", str(data)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(300):
            if (data / "ready").exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert (data / "ready").exists(), proc.stderr.read().decode() if proc.poll() is not None else "not ready"
        cfg = data / "kubeconfig"
        kubectl(cfg, "create", "ns", "short-lived")
        for i in range(20):
            kubectl(cfg, "create", "cm", f"c{i}", "-n", "short-lived", "--from-literal=a=b")
        kubectl(cfg, "delete", "ns", "short-lived", "--timeout=60s")
        assert "short-lived" not in kubectl(cfg, "get", "ns").stdout
        kubectl(cfg, "create", "deployment", "nginx", "--image=nginx", "--replicas=2")
        for _ in range(100):
            rs = kubectl(cfg, "get", "rs", "-o", "name").stdout.split()
            if rs:
                break
            time.sleep(0.1)
        assert rs and rs[0].startswith("replicaset.apps/nginx-")
        pods = kubectl(cfg, "get", "pods", "-o", "name").stdout.split()
        assert len(pods) == 2  # Pending: a standalone control plane has no nodes
        sa = kubectl(cfg, "get", "sa", "default", "-o", "name").stdout.strip()
        assert sa == "serviceaccount/default"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
