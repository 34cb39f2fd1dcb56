"""RuntimeClass admission (``plugin/pkg/admission/runtimeclass``): a pod naming a
``runtimeClassName`` gets the class's ``overhead.podFixed`` as ``spec.overhead`` (which the
scheduler adds to the pod's requests) and the class's ``scheduling`` — its nodeSelector merged
into the pod's (a conflicting key is refused) and its tolerations appended. An unknown class, or
an overhead the pod sets itself that differs from the class's, is refused."""

from __future__ import annotations

from typing import Any

from vkube.api.forbidden import forbidden
from vkube.api.quantity import parse_quantity
from vkube.apiserver.context import AdmissionRequest, Context

__all__ = ["RuntimeClass"]


def _pod_create(req: AdmissionRequest) -> bool:
    return (req.spec.group == "" and req.spec.kind == "Pod" and req.operation == "CREATE"
            and not req.subresource and req.obj is not None)


def _same_quantities(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if set(a) != set(b):
        return False
    try:
        return all(parse_quantity(a[k]) == parse_quantity(b[k]) for k in a)
    except ValueError:
        return a == b


class RuntimeClass:
    async def _class(self, ctx: Context, req: AdmissionRequest, name: str) -> dict[str, Any] | None:
        storage = ctx.storage_for("node.k8s.io", "RuntimeClass")
        return None if storage is None else await storage.get_or_none(req.request, None, name)

    async def mutate(self, ctx: Context, req: AdmissionRequest) -> None:
        if not _pod_create(req):
            return
        spec = req.obj.setdefault("spec", {})  # type: ignore[union-attr]
        name = spec.get("runtimeClassName")
        if not name:
            return
        rc = await self._class(ctx, req, name)
        if rc is None:
            raise forbidden("pods", req.name, f'pod rejected: RuntimeClass "{name}" not found')
        fixed = (rc.get("overhead") or {}).get("podFixed")
        if fixed:
            if spec.get("overhead") and not _same_quantities(spec["overhead"], fixed):
                raise forbidden("pods", req.name, "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")
            spec["overhead"] = dict(fixed)
        scheduling = rc.get("scheduling") or {}
        selector = scheduling.get("nodeSelector") or {}
        if selector:
            merged = dict(spec.get("nodeSelector") or {})
            for key, value in selector.items():
                if key in merged and merged[key] != value:
                    raise forbidden("pods", req.name, f"conflict: runtimeClass.scheduling.nodeSelector[{key}] = "
                                                      f"{value}; pod.spec.nodeSelector[{key}] = {merged[key]}")
                merged[key] = value
            spec["nodeSelector"] = merged
        tolerations = list(spec.get("tolerations") or ())
        for tol in scheduling.get("tolerations") or ():
            if tol not in tolerations:
                tolerations.append(tol)
        if tolerations:
            spec["tolerations"] = tolerations

    async def validate(self, ctx: Context, req: AdmissionRequest) -> None:
        if not _pod_create(req):
            return
        spec = req.obj.get("spec") or {}  # type: ignore[union-attr]
        if not spec.get("overhead"):
            return
        name = spec.get("runtimeClassName")
        rc = await self._class(ctx, req, name) if name else None
        fixed = ((rc or {}).get("overhead") or {}).get("podFixed")
        if not fixed:
            raise forbidden("pods", req.name, "pod rejected: Pod Overhead set without corresponding RuntimeClass defined Overhead")
        if not _same_quantities(spec["overhead"], fixed):
            raise forbidden("pods", req.name, "pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead")
