"""``vkube render``: manifests a real API server accepts, and that agree with each other."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
import yaml

from vkube.cli.render import manifests


def render(*args: str) -> list[dict]:
    out = subprocess.run([sys.executable, "-m", "vkube", "render", *args], capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def by_kind(objs: list[dict]) -> dict[str, dict]:
    return {o["kind"]: o for o in objs}


def test_manifests_are_consistent():
    objs = by_kind(manifests("team-a", "tenants-a", {}))
    # by default the cluster-scoped grants read nodes (fake nodes mirror the host's) and list
    # ingresses (a host name another tenant's Ingress claims is refused)
    assert objs["ClusterRole"]["rules"] == [{"apiGroups": [""], "resources": ["nodes"],
                                             "verbs": ["get", "list", "watch"]},
                                            {"apiGroups": ["networking.k8s.io"],
                                             "resources": ["ingresses"], "verbs": ["list"]}]
    sts, svc, sa = objs["StatefulSet"], objs["Service"], objs["ServiceAccount"]
    for kind, o in objs.items():
        if kind not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            assert o["metadata"]["namespace"] == "tenants-a", kind
    pod = sts["spec"]["template"]
    assert svc["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    assert sts["spec"]["selector"]["matchLabels"] == pod["metadata"]["labels"]
    assert pod["spec"]["serviceAccountName"] == sa["metadata"]["name"]
    assert objs["RoleBinding"]["subjects"][0]["name"] == sa["metadata"]["name"]
    assert objs["RoleBinding"]["roleRef"]["name"] == objs["Role"]["metadata"]["name"]
    container = pod["spec"]["containers"][0]
    assert svc["spec"]["ports"][0]["targetPort"] == container["ports"][0]["containerPort"]
    mounts = {m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"] for v in pod["spec"]["volumes"]}
    claims = {c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]}
    assert mounts == volumes | claims
    args = container["args"]
    assert args[args.index("--host-namespace") + 1] == "tenants-a"
    assert "host-kubeconfig" in objs["ConfigMap"]["data"] and "values.yaml" in objs["ConfigMap"]["data"]


def test_storage_sync_adds_cluster_rbac():
    objs = by_kind(manifests("n", "vkube-n", {"sync": {"storageclasses": {"enabled": True}}}))
    rules = objs["ClusterRole"]["rules"]
    assert rules[2:] == [{"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"],
                          "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]}]
    assert objs["ClusterRoleBinding"]["roleRef"]["name"] == objs["ClusterRole"]["metadata"]["name"]


async def _apply(control_plane, tmp_path, *, statefulset: bool):
    """Render through the CLI and apply with kubectl (the API server runs on this test's event
    loop, so kubectl runs in a thread)."""
    async def kubectl(*args: str, **kw: str) -> str:
        return (await asyncio.to_thread(control_plane.kubectl, *args, **kw)).stdout

    values = tmp_path / "v.yaml"
    values.write_text("sync:\n  nodes: {enabled: true, syncAllNodes: true}\n")
    objs = await asyncio.to_thread(render, "team-a", "-f", str(values), "--image",
                                   "registry.local/vkube:dev")
    if not statefulset:
        objs = [o for o in objs if o["kind"] != "StatefulSet"]
    text = yaml.safe_dump_all(objs)
    out = await kubectl("apply", "-f", "-", input=text)
    for o in objs:
        assert f"{o['metadata']['name']} created" in out, o["kind"]
    versions = await kubectl("get", "-f", "-", "-o", "jsonpath={.items[*].metadata.resourceVersion}", input=text)
    again = await kubectl("apply", "-f", "-", input=text)  # idempotent
    assert "created" not in again
    # A StatefulSet's volumeClaimTemplates are an atomic list the server defaults (status,
    # volumeMode), so kubectl's three-way patch re-sends it and prints "configured", as against
    # Kubernetes; the server must still find nothing to change.
    assert "configured" not in again.replace(f"statefulset.apps/vkube-team-a configured", "")
    assert await kubectl("get", "-f", "-", "-o", "jsonpath={.items[*].metadata.resourceVersion}", input=text) == versions
    return kubectl


async def test_rendered_manifests_are_accepted_by_an_api_server(control_plane, tmp_path):
    kubectl = await _apply(control_plane, tmp_path, statefulset=False)
    cm = json.loads(await kubectl("get", "configmap", "vkube-team-a-config", "-n",
                                  "vkube-team-a", "-o", "json"))
    assert yaml.safe_load(cm["data"]["values.yaml"]) == {"sync": {"nodes": {"enabled": True,
                                                                            "syncAllNodes": True}}}
    assert "vkube-vkube-team-a.team-a" in await kubectl("get", "clusterrole", "-o", "name")
    svc = json.loads(await kubectl("get", "service", "vkube-team-a", "-n", "vkube-team-a",
                                   "-o", "json"))
    assert svc["spec"]["ports"][0]["targetPort"] == 6443


async def test_rendered_statefulset_is_accepted(control_plane, tmp_path):
    kubectl = await _apply(control_plane, tmp_path, statefulset=True)
    sts = json.loads(await kubectl("get", "statefulset", "vkube-team-a", "-n", "vkube-team-a",
                                   "-o", "json"))
    assert sts["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/vkube:dev"
    assert sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "5Gi"
