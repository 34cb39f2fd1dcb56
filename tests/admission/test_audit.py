"""The audit log: one audit.k8s.io/v1 Event per request, levels chosen by a Policy file."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import RunningControlPlane, kubectl
from vkube.apiserver.audit import Policy, PolicyError
from vkube.apiserver.server import ControlPlane


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


async def kc(cp: RunningControlPlane, *args: str, **kw):
    return await asyncio.to_thread(kubectl, cp.kubeconfig, *args, **kw)


async def test_create_get_delete_are_audited_at_metadata(control_plane):
    cp = control_plane
    await kc(cp, "create", "configmap", "audited", "--from-literal=k=hidden-value")
    await kc(cp, "get", "configmap", "audited")
    await kc(cp, "label", "namespace", "default", "pod-security.kubernetes.io/audit=restricted")
    await kc(cp, "run", "root", "--image=nginx")
    await kc(cp, "delete", "configmap", "audited")
    out = await kc(cp, "get", "configmap", "audited", check=False)
    assert out.returncode != 0
    log = events(cp.cp.data_dir / "audit.log")
    mine = [e for e in log if (e.get("objectRef") or {}).get("name") == "audited"]
    verbs = [e["verb"] for e in mine]
    assert verbs[:3] == ["create", "get", "delete"] and set(verbs[3:]) == {"get"}, verbs  # delete --wait polls
    for e in mine:
        assert e["kind"] == "Event" and e["apiVersion"] == "audit.k8s.io/v1"
        assert e["level"] == "Metadata" and e["stage"] == "ResponseComplete"
        assert e["user"]["username"] == "kubernetes-admin"
        assert e["sourceIPs"] == ["127.0.0.1"] and e["userAgent"].startswith("kubectl")
        assert e["objectRef"]["resource"] == "configmaps" and e["objectRef"]["namespace"] == "default"
        assert e["objectRef"]["apiVersion"] == "v1"
        assert e["requestReceivedTimestamp"] <= e["stageTimestamp"]
        assert e["requestURI"].startswith("/api/v1/namespaces/default/configmaps")
        assert "requestObject" not in e and "responseObject" not in e
        assert len(e["auditID"]) == 36
    assert [e["responseStatus"]["code"] for e in mine][:3] == [201, 200, 200]
    assert mine[-1]["responseStatus"]["code"] == 404
    assert mine[-1]["responseStatus"]["reason"] == "NotFound"
    assert b"hidden-value" not in (cp.cp.data_dir / "audit.log").read_bytes()
    pod = next(e for e in log if e["verb"] == "create" and (e.get("objectRef") or {}).get("resource") == "pods")
    assert pod["annotations"]["pod-security.kubernetes.io/enforce-policy"] == "privileged:latest"
    assert pod["annotations"]["pod-security.kubernetes.io/audit-violations"].startswith(
        'would violate PodSecurity "restricted:latest": allowPrivilegeEscalation != false')


async def test_policy_levels(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [
        {"level": "None", "nonResourceURLs": ["/api*", "/version", "/openapi*"]},
        {"level": "None", "resources": [{"group": "", "resources": ["namespaces"]}]},
        {"level": "RequestResponse", "resources": [{"group": "", "resources": ["configmaps"]}],
         "verbs": ["create"]},
        {"level": "Request", "resources": [{"group": "", "resources": ["configmaps"]}]},
        {"level": "Metadata"},
    ]}))
    cp = ControlPlane(data_dir=tmp_path / "cp", audit_policy=policy)
    await cp.start()
    try:
        rcp = RunningControlPlane(cp, tmp_path / "cp" / "kubeconfig")
        await kc(rcp, "apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
                                                "data: {k: v}\n")
        await kc(rcp, "get", "namespaces")
        await kc(rcp, "delete", "configmap", "c")
    finally:
        await cp.stop()
    log = events(tmp_path / "cp" / "audit.log")
    assert not any((e.get("objectRef") or {}).get("resource") == "namespaces" for e in log)
    assert not any(e["requestURI"].startswith(("/api?", "/openapi")) or e["requestURI"] == "/api" for e in log)
    create = next(e for e in log if e["verb"] == "create")
    assert create["level"] == "RequestResponse"
    assert create["responseObject"]["data"] == {"k": "v"}
    assert create["requestObject"]["data"] == {"k": "v"} and create["requestObject"]["kind"] == "ConfigMap"
    assert create["responseObject"]["metadata"]["name"] == "c"
    delete = next(e for e in log if e["verb"] == "delete")
    assert delete["level"] == "Request" and "responseObject" not in delete


@pytest.mark.parametrize("doc, message", [
    ({"kind": "Policy", "rules": [{"level": "Everything"}]}, 'rules[0].level: Unsupported value: "Everything"'),
    ({"kind": "Policy", "rules": []}, "rules: Required value"),
    ({"kind": "Other"}, "kind: must be Policy"),
    ({"kind": "Policy", "rules": [{"level": "None", "resources": [{"resources": ["pods"]}],
                                   "nonResourceURLs": ["/x"]}]}, "rules[0].nonResourceURLs: Invalid value"),
])
def test_bad_policies_name_the_field(doc, message):
    with pytest.raises(PolicyError) as exc:
        Policy.parse(doc)
    assert message in str(exc.value)


def test_serve_refuses_bad_files_in_one_line(tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "VKUBE_HOME": str(tmp_path / "home")}
    policy = tmp_path / "p.yaml"
    policy.write_text("kind: Policy\nrules: [{level: Loud}]\n")
    enc = tmp_path / "e.yaml"
    enc.write_text("kind: EncryptionConfiguration\nresources: [{resources: [secrets], providers: [{kms: {}}]}]\n")
    for flag, path, message in (
            ("--audit-policy-file", policy, 'rules[0].level: Unsupported value: "Loud"'),
            ("--encryption-config", enc, "resources[0].providers[0].kms: KMS providers are not supported"),
            ("--encryption-config", tmp_path / "missing.yaml", "missing.yaml: no such file")):
        out = subprocess.run([sys.executable, "-m", "vkube", "serve", "--data-dir", str(tmp_path / "d"),
                              flag, str(path)], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out.stderr
        assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
