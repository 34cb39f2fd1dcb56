"""A host-provisioned PersistentVolume's life, seen through kubectl in the virtual cluster: it
shows up bound to the tenant's claim, and when the claim goes the virtual volume follows the
host's: deleted with it under reclaim policy ``Delete`` (the pv-protection finalizer dropped
once unused), kept ``Released`` (claimRef and all) under ``Retain``."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from vkube.client import Client
from vkube.client.resources import PODS, PVS
from vkube.controllers.pvcprotection import PVCProtectionController
from vkube.controllers.pvprotection import PVProtectionController
from vkube.controllers.runtime import ControllerManager
from vkube.syncer import Syncer, load_values

from .conftest import eventually
from .test_acceptance import VCluster, World, world  # noqa: F401 - the fixture

VALUES = "sync: {persistentvolumes: {enabled: true}, storageclasses: {enabled: true}}"
MANIFESTS = [
    {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "fast"},
     "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
     "volumeBindingMode": "WaitForFirstConsumer"},
    {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "keep"},
     "provisioner": "rancher.io/local-path", "reclaimPolicy": "Retain", "volumeBindingMode": "Immediate"},
    *({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "default"},
       "spec": {"storageClassName": sc, "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}} for name, sc in (("data", "fast"), ("kept", "keep"))),
    {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "user", "namespace": "default"},
     "spec": {"containers": [{"name": "c", "image": "nginx", "volumeMounts": [{"name": "d", "mountPath": "/d"}]}],
              "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}]}},
]


@dataclass
class StorageVCluster(VCluster):
    """A virtual cluster whose syncer syncs StorageClasses and PersistentVolumes."""

    async def start_syncer(self) -> None:
        v = Client(self.cp.url, ssl=self.cp.client_ssl(), user_agent="syncer")
        h = Client(self.host_cp.url, ssl=self.host_cp.client_ssl(), user_agent="syncer")
        self._syncer_clients = [v, h]
        self.syncer = Syncer(name=self.name, virtual=v, host=h, virtual_pki=self.cp.pki,
                             host_namespace=self.host_namespace, values=load_values(VALUES))
        self._syncer_task = asyncio.create_task(self.syncer.run())
        await asyncio.wait_for(self.syncer.wait_ready(), 30)


async def test_virtual_volume_follows_the_host_volume(world: World) -> None:  # noqa: F811
    from vkube.apiserver.server import ControlPlane

    vc = StorageVCluster("pvlife", ControlPlane(data_dir=world.tmp / "pvlife", name="pvlife",
                                                allocate_service_ips=False), world.host_cp)
    await vc.start()
    world.clusters.append(vc)
    # the host's kube-controller-manager, as `vkube host` runs it: claims and volumes are
    # protected by finalizers that only its protection controllers remove
    host_cm = ControllerManager(Client(world.host_cp.url, ssl=world.host_cp.client_ssl()),
                                identity="host-cm", leader_election=False)
    host_cm.add(PVCProtectionController)
    host_cm.add(PVProtectionController)
    host_task = asyncio.create_task(host_cm.run())
    try:
        await journey(world, vc)
    finally:
        host_task.cancel()
        await asyncio.gather(host_task, return_exceptions=True)
        await host_cm.client.close()


async def journey(world: World, vc: StorageVCluster) -> None:
    manifest = world.tmp / "storage.json"
    manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": MANIFESTS}))
    await vc.kubectl("apply", "-f", str(manifest))

    async def volumes() -> dict[str, dict]:  # polled with the client, checked with kubectl
        items = (await vc.virtual.list(PVS))["items"]
        return {pv["spec"]["claimRef"]["name"]: pv for pv in items}

    async def both_bound() -> dict[str, dict]:
        pvs = await volumes()
        assert {k: pv["status"].get("phase") for k, pv in pvs.items()} == {"data": "Bound", "kept": "Bound"}, pvs
        pod = await vc.virtual.get(PODS, "user", namespace="default")
        assert pod["status"].get("phase") == "Running", pod["status"]
        return pvs
    pvs = await eventually(both_bound, attempts=1200, delay=0.1)
    assert "kubernetes.io/pv-protection" in pvs["data"]["metadata"]["finalizers"]
    deleted, retained = pvs["data"]["metadata"]["name"], pvs["kept"]["metadata"]["name"]

    await vc.kubectl("delete", "pod", "user", "--wait=false")
    await vc.kubectl("delete", "pvc", "data", "kept", "--wait=false")

    def check(pvs: dict[str, dict]) -> None:
        assert deleted not in pvs, (pvs[deleted]["metadata"], pvs[deleted]["status"])  # Delete: gone, finalizer and all
        pv = pvs[retained]  # Retain: kept Released, still naming its claim
        assert pv["status"].get("phase") == "Released", pv["status"]
        assert not pv["metadata"].get("deletionTimestamp")
        assert (pv["spec"]["claimRef"]["namespace"], pv["spec"]["claimRef"]["name"]) == ("default", "kept")

    async def followed() -> None:
        check({pv["metadata"]["name"]: pv for pv in (await volumes()).values()})
    await eventually(followed, attempts=1200, delay=0.1)
    check({pv["metadata"]["name"]: pv for pv in json.loads(await vc.kubectl("get", "pv", "-o", "json"))["items"]})
    assert (await world.host.get(PVS, retained))["status"]["phase"] == "Released"
    assert "Released" in await vc.kubectl("get", "pv", retained)
