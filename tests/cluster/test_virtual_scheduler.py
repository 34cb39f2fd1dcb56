"""``sync.nodes.enableScheduler: true`` (issue 11): the virtual cluster runs its own scheduler
over its synced nodes. Through ``vkube create NAME -f values.yaml`` and the real kubectl, as
the guide's scheduling walk goes: label a node in the virtual cluster, deploy with a
``nodeSelector``, and every replica lands on that node — in the virtual cluster and on the
host. A pod that fits nowhere is reported (PodScheduled=False, FailedScheduling), not left
Pending in silence."""

from __future__ import annotations

import json
from typing import Any

from tests.cli.conftest import User, eventually
from tests.conftest import kubectl

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: fast, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: fast}}
  template:
    metadata: {labels: {app: fast}}
    spec:
      nodeSelector: {disktype: ssd}
      containers: [{name: app, image: nginx}]
"""

NOWHERE = """
apiVersion: v1
kind: Pod
metadata: {name: nowhere, namespace: default}
spec:
  nodeSelector: {disktype: nvme}
  containers: [{name: app, image: nginx}]
"""


def _json(u: User, *args: str) -> Any:
    return json.loads(u.kubectl(*args, "-o", "json").stdout)


def test_enable_scheduler_places_pods_by_virtual_node_labels(cli_user: User, tmp_path) -> None:
    u = cli_user
    values = tmp_path / "values.yaml"
    values.write_text("sync:\n  nodes:\n    enableScheduler: true\n")
    u.vkube("create", "sched", "-f", str(values), timeout=180)
    host_kc = u.home / "host" / "kubeconfig"

    # the virtual scheduler needs every host node to choose from (vcluster does the same)
    def nodes() -> list[str]:
        names = [n["metadata"]["name"] for n in _json(u, "get", "nodes")["items"]]
        assert len(names) == 2, names
        return sorted(names)
    chosen, other = eventually(nodes, timeout=120)
    u.kubectl("label", "node", chosen, "disktype=ssd")
    u.kubectl("apply", "-f", "-", input=DEPLOYMENT)

    def placed() -> list[dict]:
        pods = _json(u, "get", "pods", "-l", "app=fast")["items"]
        assert len(pods) == 3 and all(p["status"].get("phase") == "Running" for p in pods), \
            [(p["metadata"]["name"], p["spec"].get("nodeName"), p["status"].get("phase")) for p in pods]
        return pods
    pods = eventually(placed, timeout=240, delay=0.5)
    assert {p["spec"]["nodeName"] for p in pods} == {chosen}
    for p in pods:
        cond = next(c for c in p["status"]["conditions"] if c["type"] == "PodScheduled")
        assert cond["status"] == "True"
    events = _json(u, "get", "events", "--field-selector", "reason=Scheduled")["items"]
    assert {e["involvedObject"]["name"] for e in events} >= {p["metadata"]["name"] for p in pods}

    # on the host the pods run on the node the virtual scheduler chose, not the host's pick
    host = json.loads(kubectl(host_kc, "get", "pods", "-n", "vkube-sched", "-o", "json").stdout)
    hosted = [p for p in host["items"] if p["metadata"]["name"].startswith("fast-")]
    assert len(hosted) == 3
    assert {p["spec"]["nodeName"] for p in hosted} == {chosen}

    # a pod that fits no node is reported as the scheduler does, and not synced to the host
    u.kubectl("apply", "-f", "-", input=NOWHERE)

    def unschedulable() -> dict:
        pod = _json(u, "get", "pod", "nowhere")
        cond = next((c for c in pod["status"].get("conditions") or []
                     if c["type"] == "PodScheduled"), None)
        assert cond is not None and cond["status"] == "False", pod["status"]
        assert cond["reason"] == "Unschedulable"
        return pod
    pod = eventually(unschedulable, timeout=120, delay=0.5)
    assert "node(s) didn't match Pod's node affinity/selector" in \
        next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")["message"]
    events = _json(u, "get", "events", "--field-selector",
                   "reason=FailedScheduling,involvedObject.name=nowhere")["items"]
    assert events
    host = json.loads(kubectl(host_kc, "get", "pods", "-n", "vkube-sched", "-o", "json").stdout)
    assert not [p for p in host["items"] if p["metadata"]["name"].startswith("nowhere-")]

    # labelling the other node makes it fit: the scheduler retries on node changes
    u.kubectl("label", "node", other, "disktype=nvme")

    def bound() -> None:
        pod = _json(u, "get", "pod", "nowhere")
        assert pod["spec"].get("nodeName") == other and pod["status"].get("phase") == "Running"
    eventually(bound, timeout=180, delay=0.5)
