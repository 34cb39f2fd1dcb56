"""PV protection (``pkg/controller/volume/pvprotection``): a PersistentVolume keeps the
``kubernetes.io/pv-protection`` finalizer (StorageObjectInUseProtection admission adds it on
create), and a deleted volume goes only once no claim holds it: not Bound, or Bound to a claim
that no longer exists (a reclaimer may delete a volume before marking it Released)."""

from __future__ import annotations

from vkube.api import errors
from vkube.client.resources import PVCS, PVS
from vkube.controllers.runtime import Controller, Obj

FINALIZER = "kubernetes.io/pv-protection"


class PVProtectionController(Controller):
    name = "pv-protection-controller"

    def setup(self) -> None:
        self.pvs = self.mgr.informer(PVS)
        self.pvs.add_handler(self.handler)
        self.pvcs = self.mgr.informer(PVCS)
        self.pvcs.add_handler(self._on_claim)

    def _on_claim(self, typ: str, obj: Obj, old: Obj | None) -> None:
        name = (obj.get("spec") or {}).get("volumeName")
        if typ == "DELETED" and name:
            self.queue.add(name)

    def in_use(self, pv: Obj) -> bool:
        if (pv.get("status") or {}).get("phase") != "Bound":
            return False
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        claim = self.pvcs.get(ref.get("name", ""), ref.get("namespace"))
        return claim is not None and (not ref.get("uid") or claim["metadata"].get("uid") == ref["uid"])

    async def reconcile(self, key: str) -> float | None:
        pv = self.pvs.get(key)
        if pv is None:
            return None
        meta = pv["metadata"]
        fins = list(meta.get("finalizers") or [])
        if not meta.get("deletionTimestamp"):
            if FINALIZER not in fins:
                await self._set(pv, fins + [FINALIZER])
            return None
        if FINALIZER in fins and not self.in_use(pv):
            await self._set(pv, [f for f in fins if f != FINALIZER])
        return None

    async def _set(self, pv: Obj, finalizers: list[str]) -> None:
        try:
            await self.client.patch(PVS, pv["metadata"]["name"], {"metadata": {
                "finalizers": finalizers, "resourceVersion": pv["metadata"]["resourceVersion"]}})
        except (errors.Conflict, errors.NotFound):
            pass  # the informer brings the newer state and a new reconcile
