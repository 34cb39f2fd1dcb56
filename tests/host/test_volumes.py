"""Storage on the embedded host, driven by the real kubectl: the scheduler's volume binding and
the PV controller / local-path provisioner (vkube.host.volumebinding, vkube.host.provisioner)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.host.test_host_kubectl import eventually, kubectl

from vkube.host.runner import EmbeddedHost
from vkube.host.stages import KubeletConfig

WFFC = """
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: local}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: %s
"""
PVC = """
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: %s}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
  %s
"""
POD = """
apiVersion: v1
kind: Pod
metadata: {name: %s}
spec:
  containers: [{name: c, image: nginx}]
  volumes: [{name: data, persistentVolumeClaim: {claimName: %s}}]
"""


@pytest.fixture
async def host(control_plane):
    h = EmbeddedHost(control_plane.url, pki=control_plane.cp.pki, nodes=2, seed=3,
                     kubelet=KubeletConfig(stop_seconds=0.1))
    await h.start()
    # the protection controllers a host runs: StorageObjectInUseProtection admission puts
    # their finalizers on every claim and volume
    from vkube.client import Client
    from vkube.controllers.pvcprotection import PVCProtectionController
    from vkube.controllers.pvprotection import PVProtectionController
    from vkube.controllers.runtime import ControllerManager

    client = control_plane.client()
    mgr = ControllerManager(client, identity="volumes-test", leader_election=False)
    mgr.add(PVCProtectionController)
    mgr.add(PVProtectionController)
    task = asyncio.create_task(mgr.run())
    try:
        yield h
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
        await h.stop()


async def get(cp, *args: str) -> dict:
    return json.loads((await kubectl(cp, "get", *args, "-o", "json")).stdout)


async def test_wait_for_first_consumer_binds_on_the_pods_node(control_plane, host):
    cp = control_plane
    await kubectl(cp, "apply", "-f", "-", input=WFFC % "Delete")
    await kubectl(cp, "apply", "-f", "-", input=PVC % ("data", "storageClassName: local"))

    async def waiting():
        pvc = await get(cp, "pvc", "data")
        events = (await kubectl(cp, "get", "events", "--field-selector",
                                "involvedObject.name=data")).stdout
        return pvc["status"].get("phase") == "Pending" and "WaitForFirstConsumer" in events
    await eventually(waiting)
    assert not (await get(cp, "pv"))["items"], "no volume before a consumer exists"

    await kubectl(cp, "apply", "-f", "-", input=POD % ("web", "data"))

    async def running():
        pod = await get(cp, "pod", "web")
        return pod if pod["status"].get("phase") == "Running" else None
    pod = await eventually(running, timeout=60)
    pvc = await get(cp, "pvc", "data")
    node = pod["spec"]["nodeName"]
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == node
    pv = await get(cp, "pv", pvc["spec"]["volumeName"])
    assert pv["status"]["phase"] == "Bound"
    assert pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
    assert pv["spec"]["storageClassName"] == "local"
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0][
        "matchExpressions"][0]["values"] == [node], "a local volume lives on the pod's node"

    # reclaim Delete: claim gone → volume gone
    await kubectl(cp, "delete", "pod", "web", "--wait=false")
    await kubectl(cp, "delete", "pvc", "data", "--wait=false")

    async def volume_deleted():
        return not (await get(cp, "pv"))["items"]
    await eventually(volume_deleted, timeout=60)


async def test_immediate_retain_and_default_class(control_plane, host):
    cp = control_plane
    classes = (await get(cp, "storageclass"))["items"]
    default = [c for c in classes if (c["metadata"].get("annotations") or {}).get(
        "storageclass.kubernetes.io/is-default-class") == "true"]
    assert [c["metadata"]["name"] for c in default] == ["standard"], "kind's default class"

    await kubectl(cp, "apply", "-f", "-", input="""
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: keep}
provisioner: vkube.io/local-path
volumeBindingMode: Immediate
reclaimPolicy: Retain
""")
    await kubectl(cp, "apply", "-f", "-", input=PVC % ("kept", "storageClassName: keep"))

    async def bound(name):
        pvc = await get(cp, "pvc", name)
        return pvc if pvc["status"].get("phase") == "Bound" else None
    pvc = await eventually(lambda: bound("kept"), timeout=60)  # no consumer needed
    volume = pvc["spec"]["volumeName"]
    await kubectl(cp, "delete", "pvc", "kept")

    async def released():
        pv = await get(cp, "pv", volume)
        return pv["status"].get("phase") == "Released"
    await eventually(released, timeout=60)  # Retain: kept, Released, claimRef still there

    # a claim with no class gets the default one (and binds with its first consumer)
    await kubectl(cp, "apply", "-f", "-", input=PVC % ("plain", ""))

    async def defaulted():
        return (await get(cp, "pvc", "plain"))["spec"].get("storageClassName") == "standard"
    await eventually(defaulted)
    await kubectl(cp, "apply", "-f", "-", input=POD % ("user", "plain"))
    await eventually(lambda: bound("plain"), timeout=60)


async def test_pod_with_unbindable_claims_is_not_placed(control_plane, host):
    cp = control_plane
    await kubectl(cp, "apply", "-f", "-", input=POD % ("orphan", "missing"))

    async def refused():
        pod = await get(cp, "pod", "orphan")
        cond = next((c for c in pod["status"].get("conditions") or []
                     if c["type"] == "PodScheduled"), None)
        return cond if cond and cond["status"] == "False" else None
    cond = await eventually(refused)
    assert cond["message"] == ('0/2 nodes are available: persistentvolumeclaim "missing" not '
                               'found. preemption: 0/2 nodes are available: 2 Preemption is not '
                               'helpful for scheduling.')
    pod = await get(cp, "pod", "orphan")
    assert not pod["spec"].get("nodeName")

    # an Immediate claim nobody can provision: not placed either
    await kubectl(cp, "apply", "-f", "-", input="""
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: elsewhere}
provisioner: example.com/nobody
volumeBindingMode: Immediate
""")
    await kubectl(cp, "apply", "-f", "-", input=PVC % ("stuck", "storageClassName: elsewhere"))
    await kubectl(cp, "apply", "-f", "-", input=POD % ("waiting", "stuck"))

    async def refused2():
        pod = await get(cp, "pod", "waiting")
        return next((c["message"] for c in pod["status"].get("conditions") or []
                     if c["type"] == "PodScheduled" and c["status"] == "False"), None)
    msg = await eventually(refused2)
    assert msg.startswith("0/2 nodes are available: pod has unbound immediate "
                          "PersistentVolumeClaims.")

    # the missing claim appears: the waiting pod is placed and runs
    await kubectl(cp, "apply", "-f", "-", input=PVC % ("missing", ""))

    async def placed():
        pod = await get(cp, "pod", "orphan")
        return pod["status"].get("phase") == "Running"
    await eventually(placed, timeout=60)

    # a static volume pinned to one node: the pod goes where the volume is
    await kubectl(cp, "apply", "-f", "-", input="""
apiVersion: v1
kind: PersistentVolume
metadata: {name: pinned}
spec:
  capacity: {storage: 5Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: manual
  hostPath: {path: /tmp/pinned}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [vkube-host-node-2]}]
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: manual}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
""")
    await kubectl(cp, "apply", "-f", "-", input=PVC % ("static", "storageClassName: manual"))
    await kubectl(cp, "apply", "-f", "-", input=POD % ("pinned-user", "static"))

    async def on_node2():
        pod = await get(cp, "pod", "pinned-user")
        return pod if pod["status"].get("phase") == "Running" else None
    pod = await eventually(on_node2, timeout=60)
    assert pod["spec"]["nodeName"] == "vkube-host-node-2"
    assert (await get(cp, "pvc", "static"))["spec"]["volumeName"] == "pinned"


async def test_claim_pre_bound_by_name_binds_when_its_volume_appears(control_plane, host):
    cp = control_plane
    await kubectl(cp, "apply", "-f", "-", input=PVC % ("named", "storageClassName: ''\n  "
                                                       "volumeName: later"))

    async def pending():
        return (await get(cp, "pvc", "named"))["status"].get("phase") == "Pending"
    await eventually(pending)
    await kubectl(cp, "apply", "-f", "-", input="""
apiVersion: v1
kind: PersistentVolume
metadata: {name: later}
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: /tmp/later}
""")

    async def bound():
        pvc, pv = await get(cp, "pvc", "named"), await get(cp, "pv", "later")
        return pvc["status"].get("phase") == "Bound" and pv["status"].get("phase") == "Bound" \
            and pv["spec"]["claimRef"]["uid"] == pvc["metadata"]["uid"]
    await eventually(bound)
