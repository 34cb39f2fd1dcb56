"""PVC protection: a claim in use by a pod keeps the ``kubernetes.io/pvc-protection`` finalizer,
so deleting it waits until no (running or pending) pod uses it any more."""

from __future__ import annotations

from vkube.api import errors
from vkube.client.resources import PODS, PVCS
from vkube.controllers.runtime import Controller, Obj
from vkube.controllers.vanished import quiet_when_vanished

FINALIZER = "kubernetes.io/pvc-protection"


def claims_of(pod: Obj) -> list[str]:
    """Claim names a pod uses, including generic ephemeral volumes (``POD-VOLUME``)."""
    out = []
    for v in (pod.get("spec") or {}).get("volumes") or []:
        if v.get("persistentVolumeClaim"):
            out.append(v["persistentVolumeClaim"].get("claimName", ""))
        elif v.get("ephemeral"):
            out.append(f"{pod['metadata']['name']}-{v['name']}")
    return out


def _terminated(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


class PVCProtectionController(Controller):
    name = "pvc-protection-controller"

    def setup(self) -> None:
        self.pvcs = self.mgr.informer(PVCS)
        self.pods = self.mgr.informer(PODS)
        self.pods.add_index("pvc", lambda p: [f"{p['metadata']['namespace']}/{c}"
                                              for c in claims_of(p)])
        self.pvcs.add_handler(self.handler)
        self.pods.add_handler(self._on_pod)

    def _on_pod(self, typ: str, obj: Obj, old: Obj | None) -> None:
        ns = obj["metadata"]["namespace"]
        for c in set(claims_of(obj)) | set(claims_of(old) if old else ()):
            self.queue.add(f"{ns}/{c}")

    def in_use(self, ns: str, name: str) -> bool:
        return any(not _terminated(p) for p in self.pods.by_index("pvc", f"{ns}/{name}"))

    @quiet_when_vanished("pvcs")
    async def reconcile(self, key: str) -> float | None:
        ns, _, name = key.partition("/")
        pvc = self.pvcs.get(name, ns)
        if pvc is None:
            return None
        meta = pvc["metadata"]
        fins = list(meta.get("finalizers") or [])
        if not meta.get("deletionTimestamp"):
            if FINALIZER not in fins:
                await self._set_finalizers(pvc, fins + [FINALIZER])
            return None
        if FINALIZER in fins and not self.in_use(ns, name):
            # the cache may lag: confirm with a live list before letting the claim go
            live = await self.client.list(PODS, namespace=ns)
            if any(name in claims_of(p) and not _terminated(p) for p in live["items"]):
                return None
            await self._set_finalizers(pvc, [f for f in fins if f != FINALIZER])
        return None

    async def _set_finalizers(self, pvc: Obj, fins: list[str]) -> None:
        meta = pvc["metadata"]
        try:
            await self.client.patch(PVCS, meta["name"], {"metadata": {
                "finalizers": fins, "resourceVersion": meta["resourceVersion"]}},
                namespace=meta["namespace"])
        except errors.NotFound:
            pass
