"""`vkube create NAME --upgrade -f` with values that shape host pods: pods already running
follow them (a running pod cannot change those fields, so its host pod is made again under
the same virtual pod), and pods the new values refuse get the refusal a new pod would."""

from __future__ import annotations

import json

from tests.cli.conftest import cleanup, eventually, make_user
from tests.conftest import kubectl

PODS = """
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec:
  containers: [{name: c, image: nginx}]
---
apiVersion: v1
kind: Pod
metadata: {name: hn, namespace: default}
spec:
  hostNetwork: true
  containers: [{name: c, image: nginx}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: dep, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: dep}}
  template:
    metadata: {labels: {app: dep}}
    spec: {containers: [{name: c, image: nginx}]}
"""


def test_running_pods_follow_upgraded_values(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    before, after = tmp_path / "before.yaml", tmp_path / "after.yaml"
    before.write_text("sync: {pods: {hostAccess: allow}}\n")
    after.write_text("isolation: {runtimeClassName: upgradepods}\nsync: {pods: {hostAccess: reject}}\n")
    kubectl(shared_host, "apply", "-f", "-", input="apiVersion: node.k8s.io/v1\nkind: RuntimeClass\n"
            "metadata: {name: upgradepods}\nhandler: runc\n")

    def vpod(name: str) -> dict:
        return json.loads(u.kubectl("get", "pod", name, "-o", "json").stdout)

    def hpod(name: str) -> dict:
        return json.loads(kubectl(shared_host, "get", "pod", "-n", "vkube-up",
                                  f"{name}-x-default-x-up", "-o", "json").stdout)

    def running(name: str) -> dict:
        p = vpod(name)
        assert p["status"].get("phase") == "Running", p["status"]
        return p

    try:
        u.vkube("create", "up", "--host-kubeconfig", str(shared_host), "-f", str(before))
        u.kubectl("apply", "-f", "-", input=PODS)
        uid = eventually(lambda: running("web"), timeout=90, delay=0.5)["metadata"]["uid"]
        eventually(lambda: running("hn"), timeout=90, delay=0.5)
        old = hpod("web")
        assert "runtimeClassName" not in old["spec"]

        def dep_pods() -> list[dict]:
            out = kubectl(shared_host, "get", "pods", "-n", "vkube-up", "-o", "json").stdout
            pods = [p for p in json.loads(out)["items"] if p["metadata"]["name"].startswith("dep-")
                    and not p["metadata"].get("deletionTimestamp")]
            assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
            return pods
        eventually(dep_pods, timeout=90, delay=0.5)

        u.vkube("create", "up", "--upgrade", "-f", str(after), timeout=180)

        def remade() -> dict:
            h = hpod("web")
            assert h["metadata"]["uid"] != old["metadata"]["uid"]
            assert h["spec"]["runtimeClassName"] == "upgradepods"
            p = running("web")
            assert p["metadata"]["uid"] == uid, "a bare pod keeps its virtual pod"
            return h
        eventually(remade, timeout=120, delay=0.5)

        def dep_follows() -> None:  # an owned pod: its controller makes the new one
            assert dep_pods()[0]["spec"].get("runtimeClassName") == "upgradepods"
        eventually(dep_follows, timeout=120, delay=0.5)

        def refused() -> None:
            p = vpod("hn")
            assert p["status"].get("phase") != "Running", p["status"]
            assert "hostNetwork" in p["status"].get("message", ""), p["status"]
            assert kubectl(shared_host, "get", "pod", "-n", "vkube-up", "hn-x-default-x-up",
                           check=False).returncode != 0, "refused: no host pod"
        eventually(refused, timeout=120, delay=0.5)

        events = json.loads(u.kubectl("get", "events", "-o", "json").stdout)["items"]
        said = {e["involvedObject"]["name"]: e for e in events if e["reason"] == "HostPodReplaced"}
        assert "web" in said and any(n.startswith("dep-") for n in said), sorted(said)
        assert said["web"]["type"] == "Normal" and "spec.runtimeClassName" in said["web"]["message"]
    finally:
        cleanup(u)
        kubectl(shared_host, "delete", "runtimeclass", "upgradepods", check=False)
