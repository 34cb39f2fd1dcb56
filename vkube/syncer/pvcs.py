"""PersistentVolumeClaims: spec down (storage class, data source, volume and selector translated:
:mod:`vkube.syncer.claimspec`), status and the bound volume's name up."""

from __future__ import annotations

import copy

from vkube.api.meta import Obj
from vkube.client.resources import PVCS
from vkube.syncer.admission import REASON_REJECTED, class_refusal
from vkube.syncer.base import DownSyncer, update_status
from vkube.syncer.claimspec import claim_spec_problems, translate_claim_spec

#: annotations of a host claim that the host's own controllers own
HOST_ANNOTATION_PREFIXES = ("volume.kubernetes.io/", "volume.beta.kubernetes.io/",
                            "pv.kubernetes.io/")


class PVCSyncer(DownSyncer):
    kind = "persistentvolumeclaims"
    vres = hres = PVCS

    def wanted(self, vobj: Obj) -> bool:
        spec = vobj.get("spec") or {}
        if class_refusal(self.ctx.recorder, vobj, what="storage class", field="spec.storageClassName",
                         name=spec.get("storageClassName"),
                         allowed=self.ctx.values.isolation.allowed_storage_classes):
            return False
        problems = claim_spec_problems(spec, vobj["metadata"]["namespace"])
        if problems:
            self.ctx.recorder.event(vobj, "Warning", REASON_REJECTED,
                                    "; ".join(problems) + "; not synced to the host")
            return False
        return True

    def desired(self, vobj: Obj) -> Obj:
        spec = copy.deepcopy(vobj.get("spec") or {})
        storage = self.ctx.syncers.get("persistentvolumes")
        translate_claim_spec(
            spec, vobj["metadata"]["namespace"], self.tr,
            sync_storage_classes=self.ctx.values.sync.storageclasses.enabled,
            volume_name=storage.host_pv_name if storage is not None else  # type: ignore[attr-defined]
            (lambda name: None))
        return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": self.tr.host_metadata(vobj), "spec": spec}

    def merge(self, desired: Obj, hobj: Obj) -> Obj | None:
        """As for every kind, plus the annotations the host's scheduler and volume controller
        write on a claim (selected node, bind state, provisioner): they are the host's; and
        never a selector on a host claim made without one (immutable)."""
        if "selector" not in (hobj.get("spec") or {}) and "selector" in desired["spec"]:
            # a claim's selector is immutable: a host claim made before class "" claims were
            # confined keeps its binding (changing it would only be refused, again and again)
            desired = {**desired, "spec": {k: v for k, v in desired["spec"].items()
                                           if k != "selector"}}
        hann = (hobj.get("metadata") or {}).get("annotations") or {}
        kept = {k: v for k, v in hann.items() if k.startswith(HOST_ANNOTATION_PREFIXES)}
        if kept:
            desired = {**desired, "metadata": {**desired["metadata"], "annotations": {
                **desired["metadata"]["annotations"], **kept}}}
        return super().merge(desired, hobj)

    async def sync_up(self, vobj: Obj, hobj: Obj) -> None:
        hvol = (hobj.get("spec") or {}).get("volumeName")
        if hvol and not (vobj.get("spec") or {}).get("volumeName"):
            vname = hvol
            storage = self.ctx.syncers.get("persistentvolumes")
            if storage is not None:
                vname = storage.virtual_pv_name(hvol)  # type: ignore[attr-defined]
            body = copy.deepcopy(vobj)
            body["spec"]["volumeName"] = vname
            vobj = await self.ctx.virtual.update(PVCS, body)
        hstatus = hobj.get("status") or {}
        if hstatus and hstatus != (vobj.get("status") or {}):
            await update_status(self.ctx.virtual, PVCS, vobj, copy.deepcopy(hstatus))
