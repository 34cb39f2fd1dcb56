"""Objects kube-apiserver keeps in every cluster beyond namespaces and RBAC, written at every
start as its post-start hooks do:

- API Priority and Fairness (``priority-and-fairness-config-producer``): the mandatory
  PriorityLevelConfigurations and FlowSchemas are created and forced back to their defined
  spec; the suggested ones are created when missing and updated while their
  ``apf.kubernetes.io/autoupdate-spec`` annotation is ``"true"``. Each FlowSchema's
  ``Dangling`` condition says whether its priority level exists.
- the default ServiceCIDR ``kubernetes`` for the cluster's service range, Ready.
"""

from __future__ import annotations

import asyncio
from typing import Any

from vkube.api import errors
from vkube.api.kinds_flowcontrol import AUTOUPDATE, GROUP, dangling_condition, mandatory_objects, suggested_objects
from vkube.api.meta import Obj, rfc3339
from vkube.apiserver.context import Context
from vkube.apiserver.request import internal_context
from vkube.apiserver.storage import ResourceStorage

__all__ = ["ensure_api_defaults", "ensure_flowcontrol"]

MANAGER = "api-priority-and-fairness-config-producer-v1"
_PLURALS = {"PriorityLevelConfiguration": "prioritylevelconfigurations", "FlowSchema": "flowschemas"}


async def ensure_api_defaults(ctx: Context) -> None:
    await asyncio.gather(ensure_flowcontrol(ctx), ensure_service_cidr(ctx))


async def ensure_flowcontrol(ctx: Context) -> None:
    """Mandatory objects first (so the suggested ones never dangle), then the suggested ones,
    then the Dangling conditions."""
    await asyncio.gather(*(_ensure(ctx, obj, force=True) for obj in mandatory_objects()))
    await asyncio.gather(*(_ensure(ctx, obj, force=False) for obj in suggested_objects()))
    await _dangling(ctx)


async def _ensure(ctx: Context, want: Obj, *, force: bool) -> None:
    kind, name = want["kind"], want["metadata"]["name"]
    storage = ctx.storage_for(GROUP, kind)
    if storage is None:
        return
    rc = internal_context("create", resource=_PLURALS[kind], group=GROUP, version="v1", name=name,
                          field_manager=MANAGER)
    try:
        have = await storage.get_or_none(rc, None, name)
        if have is None:
            await storage.create(rc, None, want)
            return
        auto = ((have.get("metadata") or {}).get("annotations") or {}).get(AUTOUPDATE)
        if not force and auto != "true":
            return  # the user took it over (annotation removed or "false")
        if have.get("spec") == _defaulted(storage, want).get("spec") and auto == "true":
            return
        updated = dict(have)
        updated["spec"] = want["spec"]
        annotations = dict((have.get("metadata") or {}).get("annotations") or {})
        annotations[AUTOUPDATE] = "true"
        updated["metadata"] = {**have["metadata"], "annotations": annotations}
        await storage.update(rc, None, name, updated)
    except (errors.AlreadyExists, errors.Conflict, errors.NotFound):
        pass  # another API server on the same store got there first


def _defaulted(storage: ResourceStorage, obj: Obj) -> Obj:
    import copy

    out = copy.deepcopy(obj)
    storage.strategy.default(out)
    return out


async def _dangling(ctx: Context) -> None:
    levels_st = ctx.storage_for(GROUP, "PriorityLevelConfiguration")
    schemas_st = ctx.storage_for(GROUP, "FlowSchema")
    if levels_st is None or schemas_st is None:
        return
    rc = internal_context("list", resource="flowschemas", group=GROUP, version="v1", field_manager=MANAGER)
    levels = {o["metadata"]["name"] for o in (await levels_st.list(rc, None)).items}
    now = rfc3339(ctx.clock())
    await asyncio.gather(*(_set_dangling(schemas_st, fs, levels, now)
                           for fs in (await schemas_st.list(rc, None)).items))


async def _set_dangling(schemas_st: ResourceStorage, fs: Obj, levels: set[str], now: str) -> None:
    cond = dangling_condition(fs, levels, now)
    conds = [c for c in ((fs.get("status") or {}).get("conditions") or ()) if c.get("type") != "Dangling"]
    old = next((c for c in ((fs.get("status") or {}).get("conditions") or ()) if c.get("type") == "Dangling"), None)
    if old is not None and old.get("status") == cond["status"]:
        return
    fs["status"] = {"conditions": conds + [cond]}
    src = internal_context("update", resource="flowschemas", group=GROUP, version="v1",
                           name=fs["metadata"]["name"], subresource="status", field_manager=MANAGER)
    try:
        await schemas_st.update(src, None, fs["metadata"]["name"], fs, subresource="status")
    except (errors.Conflict, errors.NotFound):
        pass


async def ensure_service_cidr(ctx: Context) -> None:
    """The ``kubernetes`` ServiceCIDR (the repair loop of kube-apiserver's ``--service-cluster-ip-range``)."""
    storage = ctx.storage_for("networking.k8s.io", "ServiceCIDR")
    if storage is None:
        return
    rc = internal_context("create", resource="servicecidrs", group="networking.k8s.io", version="v1",
                          name="kubernetes", field_manager="kube-apiserver")
    if await storage.get_or_none(rc, None, "kubernetes") is not None:
        return
    try:
        obj: dict[str, Any] = await storage.create(rc, None, {
            "apiVersion": "networking.k8s.io/v1", "kind": "ServiceCIDR",
            "metadata": {"name": "kubernetes"},
            # dual-stack: one CIDR per family (``--service-cluster-ip-range`` "v4,v6")
            "spec": {"cidrs": [c.strip() for c in ctx.service_cidr.split(",") if c.strip()]}})
        obj["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "",
                                         "message": "Kubernetes Service CIDR is ready",
                                         "lastTransitionTime": rfc3339(ctx.clock())}]}
        src = internal_context("update", resource="servicecidrs", group="networking.k8s.io", version="v1",
                               name="kubernetes", subresource="status", field_manager="kube-apiserver")
        await storage.update(src, None, "kubernetes", obj, subresource="status")
    except (errors.AlreadyExists, errors.Conflict):
        pass
