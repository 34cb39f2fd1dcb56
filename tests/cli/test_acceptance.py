"""Issue 7's acceptance walk, from a fresh VKUBE_HOME, through the CLI and the real kubectl:
create → list → pause → resume → upgrade → disconnect → delete."""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import yaml

from tests.cli.conftest import User, alive, eventually
from tests.conftest import kubectl

WORKLOAD = """
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: default}
data: {color: blue}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: nginx, image: nginx}]}
"""


def host_pods(u: User, ns: str) -> list[dict]:
    out = kubectl(u.home / "host" / "kubeconfig", "get", "pods", "-n", ns, "-o", "json").stdout
    return json.loads(out)["items"]


def running_host_pods(u: User, ns: str, n: int) -> list[dict]:
    pods = host_pods(u, ns)
    assert len(pods) == n and all(p["status"].get("phase") == "Running" for p in pods), \
        [(p["metadata"]["name"], p["status"].get("phase")) for p in pods]
    return pods


def check_credentials(user: User, tmp_path) -> None:
    """The context `vkube create` added verifies the server and embeds its credentials; the
    server answers 401 without them; `connect --print` is a standalone kubeconfig; the
    virtual cluster's credentials are refused by the host API server."""
    doc = yaml.safe_load(user.kubeconfig.read_text())
    entry = next(c["cluster"] for c in doc["clusters"] if c["name"] == "vkube_my-vcluster")
    creds = next(u["user"] for u in doc["users"] if u["name"] == "vkube_my-vcluster")
    assert entry["server"].startswith("https://127.0.0.1:") and "certificate-authority-data" in entry
    assert "insecure-skip-tls-verify" not in entry
    assert set(creds) == {"client-certificate-data", "client-key-data"}
    ca = tmp_path / "vc-ca.crt"
    ca.write_bytes(base64.b64decode(entry["certificate-authority-data"]))
    anon = subprocess.run(["curl", "-s", "--cacert", str(ca), "-w", " %{http_code}",
                           entry["server"] + "/api/v1/namespaces"], capture_output=True, text=True)
    assert anon.stdout.endswith(" 401"), anon.stdout
    alone = tmp_path / "printed.kubeconfig"
    alone.write_text(user.vkube("connect", "my-vcluster", "--print").stdout)
    assert kubectl(alone, "get", "ns", "default", "-o", "name").stdout.strip() == "namespace/default"
    host = yaml.safe_load((user.home / "host" / "kubeconfig").read_text())
    wrong = yaml.safe_load(alone.read_text())
    wrong["clusters"][0]["cluster"] = host["clusters"][0]["cluster"]  # the host, trusted properly
    (tmp_path / "wrong.kubeconfig").write_text(yaml.safe_dump(wrong))
    out = kubectl(tmp_path / "wrong.kubeconfig", "get", "ns", check=False)
    assert out.returncode != 0 and "default" not in out.stdout


def test_create_list_pause_resume_upgrade_disconnect_delete(user: User, tmp_path):
    out = user.vkube("create", "my-vcluster")
    assert "host ready (embedded, 2 nodes)" in out.stdout
    assert "control plane ready" in out.stdout
    assert "switched context to vkube_my-vcluster" in out.stdout
    assert user.current_context() == "vkube_my-vcluster"
    namespaces = user.kubectl("get", "ns", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
    assert set(namespaces) == {"default", "kube-system", "kube-public", "kube-node-lease"}
    check_credentials(user, tmp_path)

    listed = user.list()["my-vcluster"]
    assert listed["status"] == "Running" and listed["connected"] is True
    assert listed["namespace"] == "vkube-my-vcluster" and listed["created"]
    table = user.vkube("list").stdout
    assert table.splitlines()[0].split() == ["NAME", "NAMESPACE", "STATUS", "CONNECTED", "AGE",
                                           "MODE"]
    assert table.splitlines()[1].split()[:4] == ["my-vcluster", "vkube-my-vcluster", "Running", "True"]

    # the state is on the host too: labelled namespace with annotations
    ns = json.loads(kubectl(user.home / "host" / "kubeconfig", "get", "ns",
                            "vkube-my-vcluster", "-o", "json").stdout)
    assert ns["metadata"]["labels"]["vkube.io/vcluster"] == "my-vcluster"
    assert ns["metadata"]["annotations"]["vkube.io/status"] == "Running"

    user.kubectl("apply", "-f", "-", input=WORKLOAD)
    eventually(lambda: running_host_pods(user, "vkube-my-vcluster", 2))
    before = json.loads(user.kubectl("get", "deploy/web", "configmap/settings", "-o", "json").stdout)
    pids = user.describe("my-vcluster")["process"]["pids"]
    assert len(pids) == 2 and all(alive(p) for p in pids)

    out = user.vkube("pause", "my-vcluster")
    assert "removed" in out.stdout
    assert host_pods(user, "vkube-my-vcluster") == []
    assert not any(alive(p) for p in pids)
    paused = user.list()["my-vcluster"]
    assert paused["status"] == "Paused" and paused["connected"] is False
    row = user.vkube("list").stdout.splitlines()[1].split()
    assert row[2] == "Paused" and "True" not in row  # kubectl would get "connection refused"
    assert user.kubectl("get", "ns", check=False).returncode != 0  # nothing serves it now

    user.vkube("resume", "my-vcluster")
    eventually(lambda: running_host_pods(user, "vkube-my-vcluster", 2))
    after = json.loads(user.kubectl("get", "deploy/web", "configmap/settings", "-o", "json").stdout)
    for b, a in zip(before["items"], after["items"]):
        assert a["metadata"]["uid"] == b["metadata"]["uid"]
        assert a.get("spec") == b.get("spec") and a.get("data") == b.get("data")
    assert user.list()["my-vcluster"]["status"] == "Running"

    nodes_yaml = tmp_path / "nodes.yaml"
    nodes_yaml.write_text("sync:\n  nodes: {enabled: true, syncAllNodes: true}\n")
    user.vkube("create", "my-vcluster", "--upgrade", "-f", str(nodes_yaml))

    def real_nodes() -> None:
        names = user.kubectl("get", "nodes", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()
        assert sorted(names) == ["vkube-host-node-1", "vkube-host-node-2"], names
    eventually(real_nodes)
    kept = json.loads(user.kubectl("get", "deploy/web", "configmap/settings", "-o", "json").stdout)
    assert [o["metadata"]["uid"] for o in kept["items"]] == [o["metadata"]["uid"] for o in before["items"]]
    assert user.describe("my-vcluster")["values"] == {"sync": {"nodes": {"enabled": True, "syncAllNodes": True}}}

    user.vkube("disconnect")
    assert user.current_context() == "previous"
    user.vkube("connect", "my-vcluster")
    assert user.current_context() == "vkube_my-vcluster"

    pids = user.describe("my-vcluster")["process"]["pids"]
    out = user.vkube("delete", "my-vcluster")
    assert "host namespace vkube-my-vcluster deleted" in out.stdout
    assert kubectl(user.home / "host" / "kubeconfig", "get", "ns", "vkube-my-vcluster",
                   check=False).returncode != 0
    assert not any(alive(p) for p in pids)
    contexts = user.kubectl("config", "get-contexts", "-o", "name").stdout.split()
    # the embedded host's context stays while the host runs (as kind's does)
    assert sorted(contexts) == ["previous", "vkube-host"] and user.current_context() == "previous"
    assert user.list() == {}
    assert not (user.home / "clusters" / "my-vcluster").exists()
