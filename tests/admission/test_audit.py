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
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe,x")
    for flag, path, message in (
            ("--audit-policy-file", policy, 'rules[0].level: Unsupported value: "Loud"'),
            ("--encryption-config", enc, "resources[0].providers[0].kms: KMS providers are not supported"),
            ("--encryption-config", tmp_path / "missing.yaml", "missing.yaml not found"),
            ("--audit-policy-file", tmp_path, "is a directory, not a file"),
            ("--token-auth-file", binary, "is not UTF-8 text (byte 0 is 0xff)")):
        out = subprocess.run([sys.executable, "-m", "vkube", "serve", "--data-dir", str(tmp_path / "d"),
                              flag, str(path)], env=env, capture_output=True, text=True, timeout=60)
        assert out.returncode == 2, out.stderr
        assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_audit_log_rotates_as_kube_apiserver_does(tmp_path):
    """`vkube serve --audit-log-maxsize 1 --audit-log-maxbackup 2`: past 1 MiB the log is
    renamed audit-<UTC time>.log and a new one begun; only the two newest backups stay. Every
    event lands whole in exactly one file."""
    import os
    import re
    import subprocess
    import sys
    import time

    import http.client
    import socket

    import yaml as _yaml

    from vkube.client.kubeconfig import parse_kubeconfig, ssl_context

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = tmp_path / "d"
    env = {**os.environ, "VKUBE_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "vkube", "serve", "--data-dir", str(data),
                             "--port", str(port), "--no-controllers", "--audit-log-maxsize", "1",
                             "--audit-log-maxbackup", "2"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (data / "kubeconfig").exists():
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline
            time.sleep(0.1)
        tls = ssl_context(parse_kubeconfig(_yaml.safe_load((data / "kubeconfig").read_text())))
        conn = http.client.HTTPSConnection("127.0.0.1", port, context=tls, timeout=30)
        # ~4 MiB of Metadata events: requests with long URIs (each event ~7 KiB)
        names = ",".join(f"n{i:04d}" for i in range(1100))
        for _ in range(600):
            conn.request("GET", f"/api/v1/namespaces/default/configmaps?labelSelector=x+in+({names})")
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, resp.status
        conn.close()
        backups = sorted(p.name for p in data.iterdir() if p.name.startswith("audit-"))
        assert len(backups) == 2, backups
        assert all(re.fullmatch(r"audit-\d{4}-\d\d-\d\dT\d\d-\d\d-\d\d\.\d{3}\.log", b) for b in backups)
        for f in [*backups, "audit.log"]:
            size = (data / f).stat().st_size
            assert size <= 1024 * 1024, (f, size)
            assert all(json.loads(line)["kind"] == "Event" for line in (data / f).read_text().splitlines())
        assert (data / backups[0]).stat().st_mode & 0o777 == 0o600
    finally:
        proc.terminate()
        proc.wait(30)
