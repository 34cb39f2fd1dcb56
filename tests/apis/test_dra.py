"""Dynamic resource allocation on the embedded host, through ``vkube host start
--node-devices`` and kubectl: the simulated kubelets publish ResourceSlices, the resourceclaim
controller makes claims from templates, the scheduler allocates devices, a pod whose claims
cannot be satisfied stays Pending with kube-scheduler's message, and freed devices are reused."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import User, cleanup, eventually, make_user
from tests.conftest import kubectl

DRIVER = "gpu.vkube.io"


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    user = make_user(tmp_path_factory.mktemp("dra"))
    try:
        user.vkube("host", "start", "--nodes", "2", "--node-devices", f"{DRIVER}=2", timeout=120)
        yield user.home / "host" / "kubeconfig"
    finally:
        cleanup(user)


def k(kc: Path, *args: str, **kw: Any) -> Any:
    return kubectl(kc, *args, **kw)


def pod_manifest(name: str, claim: dict[str, str]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
                       "spec": {"containers": [{"name": "c", "image": "cuda", "resources": {"claims": [{"name": "gpu"}]}}],
                                "resourceClaims": [{"name": "gpu", **claim}]}})


SETUP = f"""
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {{name: gpu}}
spec:
  selectors: [{{cel: {{expression: 'device.driver == "{DRIVER}"'}}}}]
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {{name: one-gpu, namespace: default}}
spec:
  spec:
    devices:
      requests: [{{name: gpu, exactly: {{deviceClassName: gpu}}}}]
"""


def _pod(kc: Path, name: str) -> dict[str, Any]:
    return json.loads(k(kc, "get", "pod", name, "-o", "json").stdout)


def _scheduled_condition(kc: Path, name: str) -> dict[str, Any] | None:
    return next((c for c in _pod(kc, name)["status"].get("conditions") or () if c["type"] == "PodScheduled"), None)


def test_nodes_publish_their_devices(host: Path) -> None:
    slices = json.loads(k(host, "get", "resourceslices", "-o", "json").stdout)["items"]
    nodes = {n["metadata"]["name"] for n in json.loads(k(host, "get", "nodes", "-o", "json").stdout)["items"]}
    assert {s["spec"]["nodeName"] for s in slices} == nodes
    for s in slices:
        assert s["spec"]["driver"] == DRIVER and [d["name"] for d in s["spec"]["devices"]] == ["gpu-0", "gpu-1"]
    table = k(host, "get", "resourceslices").stdout.splitlines()
    assert table[0].split()[:4] == ["NAME", "NODE", "DRIVER", "POOL"]


def test_claims_from_templates_are_allocated_until_devices_run_out(host: Path) -> None:
    k(host, "apply", "-f", "-", input=SETUP)
    for i in range(4):
        k(host, "create", "-f", "-", input=pod_manifest(f"train-{i}", {"resourceClaimTemplateName": "one-gpu"}))

    def all_running() -> None:
        for i in range(4):
            p = _pod(host, f"train-{i}")
            assert p["status"].get("phase") == "Running", (i, p["status"])
    eventually(all_running, timeout=90, delay=0.5)
    claims = json.loads(k(host, "get", "resourceclaims", "-n", "default", "-o", "json").stdout)["items"]
    assert len(claims) == 4
    used = set()
    for c in claims:
        owner = c["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "Pod" and owner["name"].startswith("train-")
        results = c["status"]["allocation"]["devices"]["results"]
        assert len(results) == 1 and results[0]["driver"] == DRIVER
        used.add((results[0]["pool"], results[0]["device"]))
        assert c["status"]["reservedFor"][0]["name"] == owner["name"]
        pod = _pod(host, owner["name"])
        assert pod["spec"]["nodeName"] == results[0]["pool"]  # the device is on the pod's node
        assert pod["status"]["resourceClaimStatuses"] == [{"name": "gpu", "resourceClaimName": c["metadata"]["name"]}]
    assert len(used) == 4  # no device given twice
    assert "allocated,reserved" in k(host, "get", "resourceclaims", "-n", "default").stdout

    # a fifth pod finds no free device: Pending with the scheduler's message
    k(host, "create", "-f", "-", input=pod_manifest("train-4", {"resourceClaimTemplateName": "one-gpu"}))

    def pending() -> None:
        cond = _scheduled_condition(host, "train-4")
        assert cond is not None and cond["status"] == "False", cond
        assert cond["message"].startswith("0/2 nodes are available: 2 cannot allocate all claims."), cond["message"]
    eventually(pending, timeout=60, delay=0.5)
    assert _pod(host, "train-4")["status"]["phase"] == "Pending"

    # freeing one device (its pod deleted: its claim goes, the device with it) lets it run
    k(host, "delete", "pod", "train-0", "--wait=false")

    def runs() -> None:
        assert _pod(host, "train-4")["status"].get("phase") == "Running"
    eventually(runs, timeout=90, delay=0.5)


def test_unsatisfiable_and_missing_claims_stay_pending(host: Path) -> None:
    k(host, "apply", "-f", "-", input=SETUP + """
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: three-gpus, namespace: default}
spec:
  devices:
    requests: [{name: gpu, exactly: {deviceClassName: gpu, count: 3}}]
""")
    k(host, "create", "-f", "-", input=pod_manifest("greedy", {"resourceClaimName": "three-gpus"}))
    k(host, "create", "-f", "-", input=pod_manifest("lost", {"resourceClaimName": "nope"}))

    def pending() -> None:
        cond = _scheduled_condition(host, "greedy")
        assert cond is not None and "cannot allocate all claims" in cond["message"], cond
        cond = _scheduled_condition(host, "lost")
        assert cond is not None and cond["message"].startswith(
            '0/2 nodes are available: resourceclaim.resource.k8s.io "nope" not found.'), cond
    eventually(pending, timeout=60, delay=0.5)
    claim = json.loads(k(host, "get", "resourceclaim", "three-gpus", "-n", "default", "-o", "json").stdout)
    assert not claim.get("status", {}).get("allocation")
    events = k(host, "get", "events", "-n", "default", "--field-selector", "involvedObject.name=greedy").stdout
    assert "FailedScheduling" in events


def test_bad_claims_are_refused(host: Path) -> None:
    proc = k(host, "create", "-f", "-", check=False, input="""
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: bad, namespace: default}
spec:
  devices:
    requests: [{name: Not_A_Label, exactly: {allocationMode: Some, count: 0}}]
""")
    assert proc.returncode != 0
    assert 'spec.devices.requests[0].name: Invalid value: "Not_A_Label"' in proc.stderr
    assert "spec.devices.requests[0].exactly.deviceClassName: Required value" in proc.stderr
    assert 'spec.devices.requests[0].exactly.allocationMode: Unsupported value: "Some"' in proc.stderr


def test_bad_node_devices_flag(tmp_path: Path) -> None:
    user = make_user(tmp_path / "u")
    proc = user.vkube("host", "start", "--node-devices", "GPU", check=False)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[0] == "error: --node-devices: 'GPU' is not DRIVER=COUNT (COUNT 0..128)"
    assert not (user.home / "host" / "host.pid").exists()


def test_tainted_devices_are_used_only_when_tolerated(host: Path) -> None:
    k(host, "delete", "pods", "--all", "-n", "default", "--wait=true", timeout=120)

    def freed() -> None:
        claims = json.loads(k(host, "get", "resourceclaims", "-n", "default", "-o", "json").stdout)["items"]
        assert not [c for c in claims if c.get("status", {}).get("allocation")], claims
    eventually(freed, timeout=90, delay=0.5)
    nodes = sorted(n["metadata"]["name"] for n in json.loads(k(host, "get", "nodes", "-o", "json").stdout)["items"])
    tainted, clean = nodes[0], nodes[1]
    k(host, "apply", "-f", "-", input=f"""
apiVersion: resource.k8s.io/v1
kind: DeviceTaintRule
metadata: {{name: maintenance}}
spec:
  deviceSelector: {{driver: {DRIVER}, pool: {tainted}}}
  taint: {{key: maintenance, value: "true", effect: NoSchedule}}
---
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {{name: tolerant-gpu, namespace: default}}
spec:
  spec:
    devices:
      requests:
      - name: gpu
        exactly:
          deviceClassName: gpu
          tolerations: [{{key: maintenance, operator: Exists, effect: NoSchedule}}]
""")
    for i in range(3):
        k(host, "create", "-f", "-", input=pod_manifest(f"t-{i}", {"resourceClaimTemplateName": "one-gpu"}))

    def two_run_on_the_clean_node() -> None:
        pods = [_pod(host, f"t-{i}") for i in range(3)]
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        assert len(running) == 2 and all(p["spec"]["nodeName"] == clean for p in running), \
            [(p["metadata"]["name"], p["spec"].get("nodeName"), p["status"].get("phase")) for p in pods]
        waiting = [p for p in pods if p not in running]
        cond = _scheduled_condition(host, waiting[0]["metadata"]["name"])
        assert cond is not None and "cannot allocate all claims" in cond["message"]
    eventually(two_run_on_the_clean_node, timeout=90, delay=0.5)
    k(host, "create", "-f", "-", input=pod_manifest("tolerant", {"resourceClaimTemplateName": "tolerant-gpu"}))

    def tolerant_runs_on_the_tainted_node() -> None:
        p = _pod(host, "tolerant")
        assert p["status"].get("phase") == "Running" and p["spec"]["nodeName"] == tainted, p["status"]
    eventually(tolerant_runs_on_the_tainted_node, timeout=90, delay=0.5)
