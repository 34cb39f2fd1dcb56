"""Issue 3's acceptance through the real kubectl: apply, diff, server-side apply, patch types,
explain, field validation, replace with a stale resourceVersion."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import yaml


def deploy(image: str = "nginx:1.25", env: str = "one", containers: list | None = None) -> str:
    doc = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": containers or [
                     {"name": "nginx", "image": image, "env": [{"name": "MODE", "value": env}],
                      "ports": [{"containerPort": 80}]}]}}},
    }
    return yaml.safe_dump(doc)


async def k(cp, *args: str, input: str | None = None, check: bool = True):
    return await asyncio.to_thread(cp.kubectl, *args, input=input, check=check)


async def get_deploy(cp) -> dict:
    return json.loads((await k(cp, "get", "deploy", "web", "-o", "json")).stdout)


async def test_apply_edit_apply_keeps_other_writers(control_plane, tmp_path: Path):
    f = tmp_path / "d.yaml"
    f.write_text(deploy())
    await k(control_plane, "apply", "-f", str(f))
    # another writer adds a sidecar with a strategic merge patch
    await k(control_plane, "patch", "deploy", "web", "--type=strategic", "-p",
            json.dumps({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox"}]}}}}))
    f.write_text(deploy(image="nginx:1.27", env="two"))
    out = (await k(control_plane, "apply", "-f", str(f))).stdout
    assert "configured" in out
    d = await get_deploy(control_plane)
    cs = {c["name"]: c for c in d["spec"]["template"]["spec"]["containers"]}
    assert cs["nginx"]["image"] == "nginx:1.27" and cs["nginx"]["env"] == [{"name": "MODE", "value": "two"}]
    assert "sidecar" in cs, "a container added by another writer must survive apply"
    assert d["metadata"]["generation"] == 3
    # removing a container from the file removes it on the next apply
    f.write_text(deploy(image="nginx:1.27", env="two", containers=[
        {"name": "nginx", "image": "nginx:1.27", "env": [{"name": "MODE", "value": "two"}]},
        {"name": "extra", "image": "redis"}]))
    await k(control_plane, "apply", "-f", str(f))
    f.write_text(deploy(image="nginx:1.27", env="two"))
    await k(control_plane, "apply", "-f", str(f))
    names = [c["name"] for c in (await get_deploy(control_plane))["spec"]["template"]["spec"]["containers"]]
    assert "extra" not in names and "nginx" in names


async def test_diff_exit_codes(control_plane, tmp_path: Path):
    f = tmp_path / "d.yaml"
    f.write_text(deploy())
    await k(control_plane, "apply", "-f", str(f))
    f.write_text(deploy(image="nginx:1.27"))
    pending = await k(control_plane, "diff", "-f", str(f), check=False)
    assert pending.returncode == 1, pending.stderr
    assert "-        image: nginx:1.25" in pending.stdout and "+        image: nginx:1.27" in pending.stdout
    assert "generation" in pending.stdout  # the server's dry-run computed the new generation
    await k(control_plane, "apply", "-f", str(f))
    clean = await k(control_plane, "diff", "-f", str(f), check=False)
    assert clean.returncode == 0, clean.stdout + clean.stderr


async def test_server_side_apply_conflicts_and_force(control_plane, tmp_path: Path):
    f = tmp_path / "d.yaml"
    f.write_text(deploy())
    await k(control_plane, "apply", "--server-side", "--field-manager=alice", "-f", str(f))
    again = await k(control_plane, "apply", "--server-side", "--field-manager=alice", "-f", str(f))
    assert "serverside-applied" in again.stdout
    f.write_text(deploy().replace("replicas: 2", "replicas: 5"))
    conflict = await k(control_plane, "apply", "--server-side", "--field-manager=bob", "-f", str(f), check=False)
    assert conflict.returncode != 0
    assert "conflict" in conflict.stderr.lower() and "alice" in conflict.stderr and ".spec.replicas" in conflict.stderr
    await k(control_plane, "apply", "--server-side", "--field-manager=bob", "--force-conflicts", "-f", str(f))
    d = yaml.safe_load((await k(control_plane, "get", "deploy", "web", "-o", "yaml", "--show-managed-fields")).stdout)
    managers = {m["manager"] for m in d["metadata"]["managedFields"]}
    assert {"alice", "bob"} <= managers
    assert d["spec"]["replicas"] == 5


async def test_patch_types_match_kubernetes_docs(control_plane, tmp_path: Path):
    """The cases of "Update API Objects in Place Using kubectl patch"."""
    doc = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "patch-demo", "namespace": "default"},
           "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "nginx"}},
                    "template": {"metadata": {"labels": {"app": "nginx"}},
                                 "spec": {"containers": [{"name": "patch-demo-ctr", "image": "nginx"}],
                                          "tolerations": [{"effect": "NoSchedule", "key": "dedicated", "value": "test-team"}]}}}}
    await k(control_plane, "apply", "-f", "-", input=json.dumps(doc))
    await k(control_plane, "patch", "deployment", "patch-demo", "--patch",
            '{"spec": {"template": {"spec": {"containers": [{"name": "patch-demo-ctr-2", "image": "redis"}]}}}}')
    d = json.loads((await k(control_plane, "get", "deploy", "patch-demo", "-o", "json")).stdout)
    spec = d["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["containers"]] == ["patch-demo-ctr-2", "patch-demo-ctr"]
    await k(control_plane, "patch", "deployment", "patch-demo", "--patch",
            '{"spec": {"template": {"spec": {"tolerations": [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]}}}}')
    d = json.loads((await k(control_plane, "get", "deploy", "patch-demo", "-o", "json")).stdout)
    assert d["spec"]["template"]["spec"]["tolerations"] == [{"effect": "NoSchedule", "key": "disktype", "value": "ssd"}]
    await k(control_plane, "patch", "deployment", "patch-demo", "--type", "merge", "--patch",
            '{"spec": {"template": {"spec": {"containers": [{"name": "patch-demo-ctr-3", "image": "gcr.io/google-samples/hello-app:2.0"}]}}}}')
    d = json.loads((await k(control_plane, "get", "deploy", "patch-demo", "-o", "json")).stdout)
    assert [c["name"] for c in d["spec"]["template"]["spec"]["containers"]] == ["patch-demo-ctr-3"]
    await k(control_plane, "patch", "deployment", "patch-demo", "--type=json", "-p",
            '[{"op": "replace", "path": "/spec/replicas", "value": 3}, {"op": "add", "path": "/metadata/labels", "value": {"x": "y"}}]')
    d = json.loads((await k(control_plane, "get", "deploy", "patch-demo", "-o", "json")).stdout)
    assert d["spec"]["replicas"] == 3 and d["metadata"]["labels"] == {"x": "y"}
    # retainKeys: switching the strategy type drops rollingUpdate
    await k(control_plane, "patch", "deployment", "patch-demo", "--patch",
            '{"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}')
    d = json.loads((await k(control_plane, "get", "deploy", "patch-demo", "-o", "json")).stdout)
    assert d["spec"]["strategy"] == {"type": "Recreate"}
    failing = await k(control_plane, "patch", "deployment", "patch-demo", "--type=json", "-p",
                      '[{"op": "test", "path": "/spec/replicas", "value": 9}]', check=False)
    # what kubectl prints against kube-apiserver, word for word
    assert failing.returncode != 0 and failing.stderr == (
        "The request is invalid: the server rejected our request due to an error in our request\n")


async def test_explain(control_plane):
    out = (await k(control_plane, "explain", "deployment.spec.strategy.rollingUpdate")).stdout
    assert "maxSurge" in out and "maxUnavailable" in out
    rec = (await k(control_plane, "explain", "pod.spec.containers", "--recursive")).stdout
    assert "livenessProbe" in rec and "volumeMounts" in rec


async def test_validate_strict_and_warn(control_plane, tmp_path: Path):
    f = tmp_path / "bad.yaml"
    f.write_text(deploy().replace("replicas: 2", "replica: 2"))
    strict = await k(control_plane, "create", "--validate=strict", "-f", str(f), check=False)
    assert strict.returncode != 0 and 'unknown field "spec.replica"' in strict.stderr
    warn = await k(control_plane, "create", "--validate=warn", "-f", str(f))
    assert 'unknown field "spec.replica"' in warn.stderr


async def test_replace_with_stale_resource_version_conflicts(control_plane, tmp_path: Path):
    await k(control_plane, "apply", "-f", "-", input=deploy())
    stale = yaml.safe_load((await k(control_plane, "get", "deploy", "web", "-o", "yaml")).stdout)
    await k(control_plane, "scale", "deploy", "web", "--replicas=4")
    stale["spec"]["replicas"] = 7
    f = tmp_path / "stale.yaml"
    f.write_text(yaml.safe_dump(stale))
    out = await k(control_plane, "replace", "-f", str(f), check=False)
    assert out.returncode != 0 and "the object has been modified" in out.stderr
    assert (await get_deploy(control_plane))["spec"]["replicas"] == 4
