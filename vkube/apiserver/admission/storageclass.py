"""DefaultStorageClass and StorageObjectInUseProtection: a claim without ``storageClassName``
gets the default class (the newest one annotated ``storageclass.kubernetes.io/is-default-class``),
and new claims and volumes carry the ``kubernetes.io/pvc-protection`` / ``pv-protection``
finalizers from the moment they exist, so no pod can lose its storage mid-flight."""

from __future__ import annotations

from vkube.apiserver.context import AdmissionRequest, Context

DEFAULT_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                       "storageclass.beta.kubernetes.io/is-default-class")
PVC_FINALIZER = "kubernetes.io/pvc-protection"
PV_FINALIZER = "kubernetes.io/pv-protection"


def _create_of(req: AdmissionRequest, kind: str) -> bool:
    return (req.spec.group == "" and req.spec.kind == kind and req.operation == "CREATE"
            and not req.subresource and req.obj is not None)


class DefaultStorageClass:
    async def mutate(self, ctx: Context, req: AdmissionRequest) -> None:
        if not _create_of(req, "PersistentVolumeClaim"):
            return
        spec = req.obj.setdefault("spec", {})  # type: ignore[union-attr]
        if "storageClassName" in spec:
            return
        cache = ctx.cache_for("storage.k8s.io", "StorageClass")
        if cache is None:
            return
        defaults = [sc for sc in await cache.list(req.request, None)
                    if any(str(((sc.get("metadata") or {}).get("annotations") or {}).get(a, "")).lower() == "true"
                           for a in DEFAULT_ANNOTATIONS)]
        if defaults:
            newest = max(defaults, key=lambda sc: (sc["metadata"].get("creationTimestamp", ""),
                                                   sc["metadata"]["name"]))
            spec["storageClassName"] = newest["metadata"]["name"]


class StorageObjectInUseProtection:
    async def mutate(self, ctx: Context, req: AdmissionRequest) -> None:
        for kind, finalizer in (("PersistentVolumeClaim", PVC_FINALIZER), ("PersistentVolume", PV_FINALIZER)):
            if _create_of(req, kind):
                fins = req.obj.setdefault("metadata", {}).setdefault("finalizers", [])  # type: ignore[union-attr]
                if finalizer not in fins:
                    fins.append(finalizer)
