"""The embedded host's PersistentVolume controller and local-path provisioner: what a real
cluster's kube-controller-manager (binder) and a kind cluster's local-path-provisioner do.

- A claim binds to an available volume that fits (class, size, access modes, volume mode,
  selector), or, with a class whose provisioner is ours, to a new volume made for it: at once
  for ``Immediate`` classes, once the scheduler picked a node
  (``volume.kubernetes.io/selected-node``) for ``WaitForFirstConsumer`` ones; the volume is
  then pinned to that node. A claim without a class gets the default class.
- Binding is both halves: ``PV.spec.claimRef`` (with the claim's uid) and
  ``PVC.spec.volumeName``, then phases Bound on both.
- A bound volume whose claim is gone is Released; with reclaim policy ``Delete`` it is deleted
  (a provisioned volume's directory is "removed" with it: nothing real is written), with
  ``Retain`` it stays Released until an administrator acts.
- The host gets a default StorageClass ``standard`` (as kind does) if it has none.
"""

from __future__ import annotations

import copy
import logging

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.client import Client
from vkube.client.resources import PVCS, PVS, STORAGECLASSES
from vkube.controllers.events import EventRecorder
from vkube.controllers.informer import Informer
from vkube.controllers.workqueue import WorkQueue, run_workers
from vkube.host.volumebinding import (ANN_SELECTED_NODE, storage_bytes, volume_fits,
                                     volume_mismatch)

log = logging.getLogger(__name__)

PROVISIONER = "rancher.io/local-path"  # the name kind's default class uses
PROVISIONERS = (PROVISIONER, "vkube.io/local-path")
ANN_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
LOCAL_PATH_ROOT = "/var/local-path-provisioner"
DEFAULT_CLASS: Obj = {
    "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
    "metadata": {"name": "standard", "annotations": {ANN_DEFAULT_CLASS: "true"}},
    "provisioner": PROVISIONER, "reclaimPolicy": "Delete",
    "volumeBindingMode": "WaitForFirstConsumer"}


def _is_default(sc: Obj) -> bool:
    ann = sc["metadata"].get("annotations") or {}
    return "true" in (ann.get(ANN_DEFAULT_CLASS),
                      ann.get("storageclass.beta.kubernetes.io/is-default-class"))


def _claim_ref(pvc: Obj) -> Obj:
    meta = pvc["metadata"]
    return {"kind": "PersistentVolumeClaim", "apiVersion": "v1", "namespace": meta["namespace"],
            "name": meta["name"], "uid": meta["uid"],
            "resourceVersion": meta.get("resourceVersion", "")}


class VolumeController:
    """Keys: ``pvc:NS/NAME`` and ``pv:NAME``, one work queue, level-based."""

    def __init__(self, client: Client, pvcs: Informer, pvs: Informer, classes: Informer, *,
                 workers: int = 2) -> None:
        self.client = client
        self.pvcs, self.pvs, self.classes = pvcs, pvs, classes
        self.workers = workers
        self.queue = WorkQueue(base_delay=0.05, max_delay=30.0)
        self.recorder = EventRecorder(client, "persistentvolume-controller")
        pvcs.add_handler(self._on_pvc)
        pvs.add_handler(self._on_pv)
        classes.add_handler(self._on_class)

    # -- events -------------------------------------------------------------------------------
    def _on_pvc(self, typ: str, pvc: Obj, old: Obj | None) -> None:
        meta = pvc["metadata"]
        self.queue.add(f"pvc:{meta['namespace']}/{meta['name']}")
        if (name := (pvc.get("spec") or {}).get("volumeName")):
            self.queue.add(f"pv:{name}")
        if typ == "DELETED":  # its volume is released
            for pv in self.pvs.list():
                ref = (pv.get("spec") or {}).get("claimRef") or {}
                if ref.get("uid") == meta.get("uid"):
                    self.queue.add(f"pv:{pv['metadata']['name']}")

    def _on_pv(self, typ: str, pv: Obj, old: Obj | None) -> None:
        self.queue.add(f"pv:{pv['metadata']['name']}")
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if ref.get("name"):
            self.queue.add(f"pvc:{ref.get('namespace')}/{ref['name']}")
        elif typ != "DELETED":  # an available volume: waiting claims may fit now
            self._pending_claims()

    def _on_class(self, typ: str, sc: Obj, old: Obj | None) -> None:
        self._pending_claims()

    def _pending_claims(self) -> None:
        for pvc in self.pvcs.list():
            if (pvc.get("status") or {}).get("phase") != "Bound":
                self.queue.add(f"pvc:{pvc['metadata']['namespace']}/{pvc['metadata']['name']}")

    # -- run ----------------------------------------------------------------------------------
    async def ensure_default_class(self) -> None:
        """A default StorageClass if the host has none (kind's ``standard``)."""
        items = (await self.client.list(STORAGECLASSES)).get("items") or []
        if any(_is_default(sc) for sc in items):
            return
        try:
            await self.client.create(STORAGECLASSES, copy.deepcopy(DEFAULT_CLASS))
        except errors.AlreadyExists:
            pass

    async def run(self) -> None:
        for pvc in self.pvcs.list():
            self._on_pvc("ADDED", pvc, None)
        for pv in self.pvs.list():
            self.queue.add(f"pv:{pv['metadata']['name']}")
        try:
            await run_workers(self.queue, self.reconcile, name="volume controller",
                              workers=self.workers, logger=log)
        finally:
            await self.recorder.close()

    async def reconcile(self, key: str) -> None:
        kind, _, rest = key.partition(":")
        if kind == "pvc":
            ns, _, name = rest.partition("/")
            await self.sync_claim(ns, name)
        else:
            await self.sync_volume(rest)

    # -- claims -------------------------------------------------------------------------------
    async def sync_claim(self, ns: str, name: str) -> None:
        pvc = self.pvcs.get(name, ns)
        if pvc is None or pvc["metadata"].get("deletionTimestamp"):
            return
        spec = pvc.get("spec") or {}
        if spec.get("volumeName"):
            await self._finish_claim(pvc)
            return
        if "storageClassName" not in spec or spec.get("storageClassName") is None:
            default = next((sc for sc in self.classes.list() if _is_default(sc)), None)
            if default is not None:  # retroactive default class assignment
                await self.client.patch(PVCS, name, {"spec": {
                    "storageClassName": default["metadata"]["name"]}}, namespace=ns)
            return
        class_name = spec.get("storageClassName") or ""
        pv = self._matching_volume(pvc, class_name)
        if pv is not None:
            await self._bind(pvc, pv)
            return
        if not class_name:
            await self._pending(pvc, "FailedBinding", "no persistent volumes available for this "
                                "claim and no storage class is set", warning=True)
            return
        sc = self.classes.get(class_name)
        if sc is None:
            await self._pending(pvc, "ProvisioningFailed", f'storageclass.storage.k8s.io '
                                f'"{class_name}" not found', warning=True)
            return
        node = (pvc["metadata"].get("annotations") or {}).get(ANN_SELECTED_NODE)
        if sc.get("volumeBindingMode") == "WaitForFirstConsumer" and not node:
            await self._pending(pvc, "WaitForFirstConsumer", "waiting for first consumer to be "
                                "created before binding")
            return
        if sc.get("provisioner") not in PROVISIONERS:
            await self._pending(pvc, "ExternalProvisioning", "Waiting for a volume to be created "
                                f"either by the external provisioner '{sc.get('provisioner')}' "
                                "or manually by the system administrator. If volume creation is "
                                "delayed, please verify that the provisioner is running and "
                                "correctly registered.")
            return
        await self._provision(pvc, sc, node)

    def _matching_volume(self, pvc: Obj, class_name: str) -> Obj | None:
        """The smallest available volume that fits; one pre-bound to the claim wins. A
        WaitForFirstConsumer claim only takes volumes once the scheduler chose (it picks
        static volumes itself by pre-binding them)."""
        uid = pvc["metadata"].get("uid")
        best = None
        for pv in self.pvs.list():
            ref = (pv.get("spec") or {}).get("claimRef") or {}
            if ref.get("uid") == uid or (ref.get("name") == pvc["metadata"]["name"] and
                                         ref.get("namespace") == pvc["metadata"]["namespace"]
                                         and not ref.get("uid")):
                return pv
            if ref or not volume_fits(pv, pvc, class_name=class_name):
                continue
            sc = self.classes.get(class_name) if class_name else None
            if sc is not None and sc.get("volumeBindingMode") == "WaitForFirstConsumer":
                continue
            size = _size(pv)
            if best is None or size < best[0]:
                best = (size, pv)
        return best[1] if best else None

    async def _provision(self, pvc: Obj, sc: Obj, node: str | None) -> None:
        meta = pvc["metadata"]
        name = f"pvc-{meta['uid']}"
        if self.pvs.get(name) is not None:
            return  # made already; its event binds the claim
        storage = (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get(
            "storage", "0")
        spec: Obj = {
            "capacity": {"storage": storage},
            "accessModes": list((pvc.get("spec") or {}).get("accessModes") or ["ReadWriteOnce"]),
            "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
            "storageClassName": sc["metadata"]["name"],
            "volumeMode": (pvc.get("spec") or {}).get("volumeMode") or "Filesystem",
            "claimRef": _claim_ref(pvc),
            "hostPath": {"path": f"{LOCAL_PATH_ROOT}/{name}_{meta['namespace']}_{meta['name']}",
                         "type": "DirectoryOrCreate"},
        }
        if sc.get("mountOptions"):
            spec["mountOptions"] = list(sc["mountOptions"])
        if node:
            spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}}
        body = {"apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": name, "annotations": {ANN_PROVISIONED_BY: sc["provisioner"]}},
                "spec": spec}
        try:
            await self.client.create(PVS, body)
        except errors.AlreadyExists:
            return
        self.recorder.event(pvc, "Normal", "ProvisioningSucceeded",
                            f"Successfully provisioned volume {name}")

    async def _bind(self, pvc: Obj, pv: Obj) -> None:
        """Volume half first (claimRef), then the claim half; the PV's event finishes."""
        if not ((pv.get("spec") or {}).get("claimRef") or {}).get("uid"):
            new = copy.deepcopy(pv)
            new["spec"]["claimRef"] = _claim_ref(pvc)
            new["metadata"].setdefault("annotations", {})[ANN_BOUND_BY_CONTROLLER] = "yes"
            pv = await self.client.update(PVS, new)
        await self._claim_volume(pvc, pv["metadata"]["name"])

    async def _claim_volume(self, pvc: Obj, volume: str) -> None:
        new = copy.deepcopy(pvc)
        new["spec"]["volumeName"] = volume
        ann = new["metadata"].setdefault("annotations", {})
        ann[ANN_BIND_COMPLETED] = "yes"
        ann[ANN_BOUND_BY_CONTROLLER] = "yes"
        pvc = await self.client.update(PVCS, new)
        await self._finish_claim(pvc)

    async def _finish_claim(self, pvc: Obj) -> None:
        """A claim with a volumeName: Bound once that volume points back at it."""
        volume = pvc["spec"]["volumeName"]
        pv = self.pvs.get(volume)
        status = pvc.get("status") or {}
        ref = ((pv or {}).get("spec") or {}).get("claimRef") or {}
        meta = pvc["metadata"]
        problem = volume_mismatch(pv, pvc) if pv is not None and not ref else None
        if problem:  # upstream's VolumeMismatch: the claim stays Pending
            await self._pending(pvc, "VolumeMismatch",
                                f'Cannot bind to requested volume "{volume}": {problem}',
                                warning=True)
            return
        if pv is not None and (not ref or (not ref.get("uid") and (
                ref.get("namespace"), ref.get("name")) == (meta["namespace"], meta["name"]))):
            # a claim pre-bound by name (the volume free, or pre-bound to it): the volume half
            pv = copy.deepcopy(pv)
            pv["spec"]["claimRef"] = _claim_ref(pvc)
            pv = await self.client.update(PVS, pv)
            ref = pv["spec"]["claimRef"]
        if pv is None or ref.get("uid") != pvc["metadata"].get("uid"):
            if status.get("phase") == "Bound":
                await self._claim_status(pvc, {"phase": "Lost"})
                self.recorder.event(pvc, "Warning", "ClaimLost",
                                    f"Bound claim has lost its PersistentVolume {volume}")
            return
        want = {"phase": "Bound", "accessModes": list(pv["spec"].get("accessModes") or []),
                "capacity": dict(pv["spec"].get("capacity") or {})}
        if any(status.get(k) != v for k, v in want.items()):
            await self._claim_status(pvc, {**status, **want})

    async def _claim_status(self, pvc: Obj, status: Obj) -> None:
        await self.client.update(PVCS, {**pvc, "status": status}, subresource="status")

    async def _pending(self, pvc: Obj, reason: str, message: str, *, warning: bool = False
                       ) -> None:
        self.recorder.event(pvc, "Warning" if warning else "Normal", reason, message)
        if (pvc.get("status") or {}).get("phase") != "Pending":
            await self._claim_status(pvc, {**(pvc.get("status") or {}), "phase": "Pending"})

    # -- volumes ------------------------------------------------------------------------------
    async def sync_volume(self, name: str) -> None:
        pv = self.pvs.get(name)
        if pv is None or pv["metadata"].get("deletionTimestamp"):
            return
        spec = pv.get("spec") or {}
        ref = spec.get("claimRef")
        if not ref:
            await self._volume_phase(pv, "Available")
            return
        pvc = self.pvcs.get(ref.get("name", ""), ref.get("namespace"))
        if pvc is not None and ref.get("uid") and pvc["metadata"].get("uid") != ref["uid"]:
            pvc = None  # a new claim of the same name: not ours
        if pvc is None:
            if not ref.get("uid"):  # pre-bound by an administrator to a claim not made yet
                await self._volume_phase(pv, "Available")
                return
            await self._release(pv)  # its claim is gone
            return
        if (pvc.get("spec") or {}).get("volumeName") == name:
            await self._volume_phase(pv, "Bound")
            await self._finish_claim(pvc)
        elif not (pvc.get("spec") or {}).get("volumeName"):
            await self._claim_volume(pvc, name)  # the claim half of a bind in progress
            await self._volume_phase(pv, "Bound")

    async def _release(self, pv: Obj) -> None:
        name = pv["metadata"]["name"]
        policy = (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") or "Retain"
        if policy == "Delete":
            try:
                await self.client.delete(PVS, name)
            except errors.NotFound:
                pass
            return
        await self._volume_phase(pv, "Released")

    async def _volume_phase(self, pv: Obj, phase: str) -> None:
        status = pv.get("status") or {}
        if status.get("phase") == phase:
            return
        await self.client.update(PVS, {**pv, "status": {**status, "phase": phase}},
                                 subresource="status")


def _size(pv: Obj) -> int:
    return storage_bytes(((pv.get("spec") or {}).get("capacity") or {}).get("storage"))
