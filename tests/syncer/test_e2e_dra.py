"""Dynamic resource allocation inside a virtual cluster (``sync.resourceclaims``), as a user
drives it: ``vkube host start --node-devices``, ``vkube create -f values.yaml`` and kubectl on
both clusters. The host admin publishes a DeviceClass; the tenant sees it and the host's
ResourceSlices, runs a Deployment whose pods claim a GPU each through a ResourceClaimTemplate,
and gets two Running pods with allocated claims and a third Pending with the host scheduler's
reason; scaling down frees the devices and cleans the host claims. The tenant cannot write
DeviceClasses or ResourceSlices (they are the host's); admin access to devices needs an
admin namespace on both sides."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import User, cleanup, eventually, make_user
from tests.conftest import kubectl

DRIVER = "gpu.example.com"
VC = "dra"
HOST_NS = f"vkube-{VC}"

DEVICE_CLASS = f"""
apiVersion: resource.k8s.io/v1
kind: DeviceClass
metadata: {{name: gpu}}
spec:
  selectors: [{{cel: {{expression: 'device.driver == "{DRIVER}"'}}}}]
"""

WORKLOAD = """
apiVersion: resource.k8s.io/v1
kind: ResourceClaimTemplate
metadata: {name: one-gpu, namespace: default}
spec:
  spec:
    devices:
      requests: [{name: gpu, exactly: {deviceClassName: gpu}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: train, namespace: default}
spec:
  replicas: 3
  selector: {matchLabels: {app: train}}
  template:
    metadata: {labels: {app: train}}
    spec:
      containers:
      - name: c
        image: cuda
        resources: {claims: [{name: gpu}]}
      resourceClaims: [{name: gpu, resourceClaimTemplateName: one-gpu}]
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[User, Path]]:
    root = tmp_path_factory.mktemp("dra-virtual")
    user = make_user(root)
    try:
        user.vkube("host", "start", "--nodes", "1", "--node-devices", f"{DRIVER}=2", timeout=120)
        host = user.home / "host" / "kubeconfig"
        kubectl(host, "apply", "-f", "-", input=DEVICE_CLASS)
        values = root / "values.yaml"
        values.write_text("sync:\n  resourceclaims:\n    enabled: true\n")
        user.vkube("create", VC, "-f", str(values), timeout=180)
        yield user, host
    finally:
        cleanup(user)


def _items(kc: Path, *args: str) -> list[dict[str, Any]]:
    return json.loads(kubectl(kc, "get", *args, "-o", "json").stdout)["items"]


def test_deployment_claims_gpus_through_the_host(env: tuple[User, Path]) -> None:
    user, host = env
    vk = user.kubeconfig

    # the host's devices, read-only copies inside
    def devices_shown() -> None:
        assert [c["metadata"]["name"] for c in _items(vk, "deviceclasses")] == ["gpu"]
        slices = _items(vk, "resourceslices")
        assert slices and {s["spec"]["driver"] for s in slices} == {DRIVER}
        assert sorted(d["name"] for s in slices for d in s["spec"]["devices"]) == ["gpu-0", "gpu-1"]
    eventually(devices_shown, timeout=60, delay=0.5)
    # the copies are the host's: a tenant's edit is refused at once, naming the host
    out = user.kubectl("label", "deviceclass", "gpu", "tenant=edit", check=False)
    assert out.returncode != 0
    assert 'deviceclasses.resource.k8s.io "gpu" is forbidden: ' in out.stderr
    assert "copies of the host cluster's" in out.stderr and "ask the host's admin" in out.stderr
    for verb in (("delete", "deviceclass", "gpu"), ("delete", "resourceslices", "--all")):
        out = user.kubectl(*verb, check=False)
        assert out.returncode != 0 and "is forbidden: " in out.stderr, out
    assert "tenant" not in (_items(vk, "deviceclasses")[0]["metadata"].get("labels") or {})

    user.kubectl("apply", "-f", "-", input=WORKLOAD)

    def two_run_one_waits() -> tuple[list[dict[str, Any]], dict[str, Any]]:
        pods = _items(vk, "pods", "-n", "default", "-l", "app=train")
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        pending = [p for p in pods if p["status"].get("phase") == "Pending"]
        assert len(pods) == 3 and len(running) == 2 and len(pending) == 1, \
            [(p["metadata"]["name"], p["status"].get("phase")) for p in pods]
        cond = next((c for c in pending[0]["status"].get("conditions") or ()
                     if c["type"] == "PodScheduled"), None)
        assert cond is not None and cond["status"] == "False", pending[0]["status"]
        assert "cannot allocate all claims" in cond["message"], cond
        return running, pending[0]
    running, waiting = eventually(two_run_one_waits, timeout=180, delay=1.0)

    # every pod's claim is in the virtual cluster; the running pods' are allocated to them
    claims = {c["metadata"]["name"]: c for c in _items(vk, "resourceclaims", "-n", "default")}
    assert len(claims) == 3
    used = set()
    for pod in running:
        [st] = pod["status"]["resourceClaimStatuses"]
        claim = claims[st["resourceClaimName"]]
        assert claim["metadata"]["name"].startswith(pod["metadata"]["name"] + "-gpu-")
        assert claim["status"]["reservedFor"] == [
            {"resource": "pods", "name": pod["metadata"]["name"], "uid": pod["metadata"]["uid"]}]
        [result] = claim["status"]["allocation"]["devices"]["results"]
        assert result["driver"] == DRIVER and result["request"] == "gpu"
        used.add(result["device"])
    assert used == {"gpu-0", "gpu-1"}
    [st] = waiting["status"]["resourceClaimStatuses"]
    assert not claims[st["resourceClaimName"]].get("status", {}).get("allocation")
    assert "allocated,reserved" in user.kubectl("get", "resourceclaims", "-n", "default").stdout

    # on the host: translated claims, and pods naming them
    hclaims = {c["metadata"]["name"] for c in _items(host, "resourceclaims", "-n", HOST_NS)}
    assert hclaims == {f"{n}-x-default-x-{VC}" for n in claims}
    for hp in _items(host, "pods", "-n", HOST_NS):
        assert [c["resourceClaimName"] for c in hp["spec"]["resourceClaims"]][0] in hclaims

    # fewer replicas: the waiting pod's turn never comes, the freed claims go on both sides
    user.kubectl("scale", "deployment", "train", "--replicas=0")

    def cleaned() -> None:
        assert _items(vk, "resourceclaims", "-n", "default") == []
        assert _items(host, "resourceclaims", "-n", HOST_NS) == []
    eventually(cleaned, timeout=120, delay=1.0)


def test_named_claim_waits_for_its_claim_and_tenant_classes_are_refused(env: tuple[User, Path]) -> None:
    user, host = env
    vk = user.kubeconfig
    # a class of the tenant's own would name nothing the host's scheduler knows: refused
    out = user.kubectl("apply", "-f", "-", input=DEVICE_CLASS.replace("name: gpu", "name: mine"), check=False)
    assert out.returncode != 0
    assert 'deviceclasses.resource.k8s.io "mine" is forbidden: ' in out.stderr, out.stderr
    assert "ask the host's admin to create it on the host" in out.stderr
    assert [c["metadata"]["name"] for c in _items(vk, "deviceclasses")] == ["gpu"]

    # a pod naming a claim that does not exist yet waits, saying so, as kube-scheduler does
    user.kubectl("create", "-f", "-", input=json.dumps({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "solo", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "cuda", "resources": {"claims": [{"name": "gpu"}]}}],
                 "resourceClaims": [{"name": "gpu", "resourceClaimName": "solo-gpu"}]}}))

    def waits() -> None:
        p = json.loads(user.kubectl("get", "pod", "solo", "-o", "json").stdout)
        cond = next((c for c in p["status"].get("conditions") or () if c["type"] == "PodScheduled"), None)
        assert cond is not None and cond["reason"] == "Unschedulable", p["status"]
        assert cond["message"].endswith('nodes are available: resourceclaim.resource.k8s.io "solo-gpu" not found.')
    eventually(waits, timeout=60, delay=0.5)
    # never sent down without its claim (the earlier test's host pods may still be going)
    assert [p["metadata"]["name"] for p in _items(host, "pods", "-n", HOST_NS)
            if p["metadata"]["name"].startswith("solo")] == []

    user.kubectl("apply", "-f", "-", input=SOLO_CLAIM)

    def runs() -> None:
        p = json.loads(user.kubectl("get", "pod", "solo", "-o", "json").stdout)
        assert p["status"].get("phase") == "Running", p["status"]
        c = json.loads(user.kubectl("get", "resourceclaim", "solo-gpu", "-o", "json").stdout)
        assert c["status"]["reservedFor"] == [{"resource": "pods", "name": "solo", "uid": p["metadata"]["uid"]}]
    eventually(runs, timeout=120, delay=1.0)

    # the claim goes while its pod runs: the host copy stays (its device stays the pod's) ...
    user.kubectl("delete", "resourceclaim", "solo-gpu")
    eventually(lambda: _assert_empty(vk, "resourceclaims", "-n", "default"), timeout=60, delay=0.5)
    # a claim made after the deletion reaching the host shows the syncer has seen the deletion
    user.kubectl("apply", "-f", "-", input=SOLO_CLAIM.replace("solo-gpu", "probe"))
    eventually(lambda: _assert_host_claims(host, {f"solo-gpu-x-default-x-{VC}", f"probe-x-default-x-{VC}"}),
               timeout=60, delay=0.5)
    hc = next(c for c in _items(host, "resourceclaims", "-n", HOST_NS) if c["metadata"]["name"].startswith("solo"))
    assert hc["status"]["reservedFor"] and not hc["metadata"].get("deletionTimestamp")
    user.kubectl("delete", "resourceclaim", "probe")  # not in use: its host copy goes at once
    assert json.loads(user.kubectl("get", "pod", "solo", "-o", "json").stdout)["status"]["phase"] == "Running"
    # ... until the pod goes
    user.kubectl("delete", "pod", "solo", "--wait=false")
    eventually(lambda: _assert_empty(host, "resourceclaims", "-n", HOST_NS), timeout=120, delay=1.0)


def test_pause_resume_keeps_a_bare_pods_devices_its_own(env: tuple[User, Path]) -> None:
    """A bare pod's host pod re-made after a pause goes through the host scheduler, so its
    claim is allocated and reserved for it again before it runs; the devices are not free
    for anyone else meanwhile."""
    user, host = env
    vk = user.kubeconfig
    user.kubectl("apply", "-f", "-", input=ALL_CLAIM)
    user.kubectl("create", "-f", "-", input=json.dumps(_claiming_pod("adm", "default", "adm")))

    def held_on_host() -> dict[str, Any]:
        pods = _items(host, "pods", "-n", HOST_NS)
        assert len(pods) == 1, pods
        hp = pods[0]
        assert hp["status"].get("phase") == "Running", hp["status"]
        hc = next(c for c in _items(host, "resourceclaims", "-n", HOST_NS) if c["metadata"]["name"].startswith("adm"))
        assert hc["status"]["reservedFor"] == [
            {"resource": "pods", "name": hp["metadata"]["name"], "uid": hp["metadata"]["uid"]}], hc["status"]
        assert len(hc["status"]["allocation"]["devices"]["results"]) == 2
        return hp
    before = eventually(held_on_host, timeout=120, delay=1.0)
    node = before["spec"]["nodeName"]

    user.vkube("pause", VC, timeout=120)
    user.vkube("resume", VC, timeout=180)

    def held_again() -> None:
        hp = held_on_host()
        assert hp["metadata"]["uid"] != before["metadata"]["uid"]  # made again ...
        assert hp["spec"]["nodeName"] == node  # ... on the virtual pod's node
    eventually(held_again, timeout=180, delay=1.0)
    vpod = json.loads(user.kubectl("get", "pod", "adm", "-o", "json").stdout)
    assert vpod["spec"]["nodeName"] == node and vpod["status"]["phase"] == "Running"

    # another workload on the host finds no free device
    kubectl(host, "create", "namespace", "other")
    try:
        kubectl(host, "apply", "-f", "-", input=ALL_CLAIM.replace("default", "other"))
        kubectl(host, "create", "-f", "-", input=json.dumps(_claiming_pod("thief", "other", "adm")))

        def refused() -> None:
            p = json.loads(kubectl(host, "get", "pod", "thief", "-n", "other", "-o", "json").stdout)
            cond = next((c for c in p["status"].get("conditions") or () if c["type"] == "PodScheduled"), None)
            assert cond is not None and "cannot allocate all claims" in cond["message"], p["status"]
        eventually(refused, timeout=60, delay=0.5)
    finally:
        kubectl(host, "delete", "namespace", "other", "--wait=false")
    user.kubectl("delete", "pod", "adm", "--wait=false")
    user.kubectl("delete", "resourceclaim", "adm", "--wait=false")
    eventually(lambda: _assert_empty(host, "resourceclaims", "-n", HOST_NS), timeout=120, delay=1.0)


def test_host_kubelet_refuses_claims_not_reserved_for_the_pod(env: tuple[User, Path]) -> None:
    """A pod bound straight to a node skips the scheduler: its claim is neither allocated nor
    reserved, so the kubelet does not start it and says why, as upstream's does."""
    _, host = env
    node = _items(host, "nodes")[0]["metadata"]["name"]
    kubectl(host, "create", "namespace", "bound")
    try:
        kubectl(host, "apply", "-f", "-", input=ALL_CLAIM.replace("default", "bound"))
        pod = _claiming_pod("direct", "bound", "adm")
        pod["spec"]["nodeName"] = node
        kubectl(host, "create", "-f", "-", input=json.dumps(pod))

        def refused() -> None:
            events = kubectl(host, "get", "events", "-n", "bound", "--field-selector",
                             "involvedObject.name=direct", "-o", "json").stdout
            [ev] = [e for e in json.loads(events)["items"] if e["reason"] == "FailedPrepareDynamicResources"]
            assert ev["type"] == "Warning"
            assert ev["message"].startswith("Failed to prepare dynamic resources: pod direct (")
            assert "is not allowed to use ResourceClaim adm (" in ev["message"]
        eventually(refused, timeout=60, delay=0.5)
        p = json.loads(kubectl(host, "get", "pod", "direct", "-n", "bound", "-o", "json").stdout)
        assert p["status"]["phase"] == "Pending"
        assert p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "ContainerCreating"
        c = json.loads(kubectl(host, "get", "resourceclaim", "adm", "-n", "bound", "-o", "json").stdout)
        assert not (c.get("status") or {}).get("allocation")
    finally:
        kubectl(host, "delete", "namespace", "bound", "--wait=false")


def test_admin_access_needs_an_admin_namespace(env: tuple[User, Path]) -> None:
    """``adminAccess`` is refused (422 naming the field) outside a namespace labelled
    ``resource.kubernetes.io/admin-access: "true"``, in the virtual cluster and on the host;
    where allowed, the admin claim sees a device in use by another claim without taking it."""
    user, host = env
    admin = ALL_CLAIM.replace("name: adm", "name: watch").replace("allocationMode: All", "adminAccess: true")
    template = ("apiVersion: resource.k8s.io/v1\nkind: ResourceClaimTemplate\n"
                "metadata: {name: watch, namespace: default}\nspec:\n  spec:\n    devices:\n"
                "      requests: [{name: gpu, exactly: {deviceClassName: gpu, adminAccess: true}}]\n")
    want = ("admin access to devices requires the `resource.kubernetes.io/admin-access: true` label "
            "on the containing namespace")
    for kc in (user.kubeconfig, host):
        out = kubectl(kc, "create", "-f", "-", input=admin, check=False)
        assert out.returncode != 0, out
        assert ('The ResourceClaim "watch" is invalid: spec.devices.requests[0].exactly.adminAccess: '
                f"Forbidden: {want}") in out.stderr, out.stderr
        out = kubectl(kc, "create", "-f", "-", input=template, check=False)
        assert out.returncode != 0 and "spec.spec.devices.requests[0].exactly.adminAccess: Forbidden: " \
            f"{want}" in out.stderr, out.stderr

    # on the host, in an admin namespace: one device is a pod's, the admin claim still gets both
    kubectl(host, "create", "namespace", "ops")
    try:
        kubectl(host, "label", "namespace", "ops", "resource.kubernetes.io/admin-access=true")
        kubectl(host, "apply", "-f", "-", input=SOLO_CLAIM.replace("default", "ops"))
        kubectl(host, "create", "-f", "-", input=json.dumps(_claiming_pod("user", "ops", "solo-gpu")))
        kubectl(host, "apply", "-f", "-", input=admin.replace("default", "ops").replace(
            "adminAccess: true", "adminAccess: true, allocationMode: All"))
        kubectl(host, "create", "-f", "-", input=json.dumps(_claiming_pod("watcher", "ops", "watch")))

        def both_run() -> None:
            for name in ("user", "watcher"):
                p = json.loads(kubectl(host, "get", "pod", name, "-n", "ops", "-o", "json").stdout)
                assert p["status"].get("phase") == "Running", (name, p["status"])
        eventually(both_run, timeout=120, delay=1.0)
        c = json.loads(kubectl(host, "get", "resourceclaim", "watch", "-n", "ops", "-o", "json").stdout)
        results = c["status"]["allocation"]["devices"]["results"]
        assert sorted(r["device"] for r in results) == ["gpu-0", "gpu-1"]
        assert all(r["adminAccess"] is True for r in results)
        # the admin claim took nothing: the device the pod does not use is still free
        kubectl(host, "apply", "-f", "-", input=SOLO_CLAIM.replace("default", "ops").replace("solo-gpu", "second"))
        kubectl(host, "create", "-f", "-", input=json.dumps(_claiming_pod("user2", "ops", "second")))
        eventually(lambda: _phase(host, "user2", "ops", "Running"), timeout=120, delay=1.0)
    finally:
        kubectl(host, "delete", "namespace", "ops", "--wait=false")


def _phase(kc: Path, name: str, namespace: str, phase: str) -> None:
    p = json.loads(kubectl(kc, "get", "pod", name, "-n", namespace, "-o", "json").stdout)
    assert p["status"].get("phase") == phase, p["status"]


def _claiming_pod(name: str, namespace: str, claim: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
            "spec": {"containers": [{"name": "c", "image": "cuda", "resources": {"claims": [{"name": "gpu"}]}}],
                     "resourceClaims": [{"name": "gpu", "resourceClaimName": claim}]}}


def _assert_empty(kc: Path, *args: str) -> None:
    assert _items(kc, *args) == []


def _assert_host_claims(kc: Path, names: set[str]) -> None:
    assert {c["metadata"]["name"] for c in _items(kc, "resourceclaims", "-n", HOST_NS)} == names


SOLO_CLAIM = """
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: solo-gpu, namespace: default}
spec:
  devices:
    requests: [{name: gpu, exactly: {deviceClassName: gpu}}]
"""

ALL_CLAIM = """
apiVersion: resource.k8s.io/v1
kind: ResourceClaim
metadata: {name: adm, namespace: default}
spec:
  devices:
    requests: [{name: gpu, exactly: {deviceClassName: gpu, allocationMode: All}}]
"""
