"""``/api/v1/componentstatuses``: not stored, computed per request from health probes, as
kube-apiserver's componentstatus REST does (deprecated since 1.19, still served). A vkube
control plane's one probed component is its store, reported as ``etcd-0`` whatever the backend
(kube-apiserver names each storage backend ``etcd-N``)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from vkube.api import errors
from vkube.api.kinds import ResourceSpec
from vkube.api.meta import Obj
from vkube.apiserver import http
from vkube.apiserver.context import Context
from vkube.apiserver.request import RequestContext

__all__ = ["serve_component_status", "is_component_status"]


def is_component_status(spec: ResourceSpec) -> bool:
    return spec.group == "" and spec.kind == "ComponentStatus"


async def _probe_store(ctx: Context) -> Obj:
    try:
        await asyncio.wait_for(ctx.store.current_revision(), 5)
        cond = {"type": "Healthy", "status": "True", "message": "ok"}
    except Exception as exc:  # any failure of the probe is the component's ill health
        cond = {"type": "Healthy", "status": "False", "error": f"{type(exc).__name__}: {exc}"}
    return {"kind": "ComponentStatus", "apiVersion": "v1", "metadata": {"name": "etcd-0"}, "conditions": [cond]}


async def serve_component_status(ctx: Context, handlers: object, request: web.Request, spec: ResourceSpec,
                                 rc: RequestContext) -> web.StreamResponse:
    verb = rc.info.verb
    if verb not in ("get", "list"):
        raise errors.method_not_allowed()
    items = [await _probe_store(ctx)]
    if verb == "get":
        found = next((i for i in items if i["metadata"]["name"] == rc.info.name), None)
        if found is None:
            raise errors.NotFound(f'componentstatuses "{rc.info.name}" not found',
                                  details={"name": rc.info.name, "kind": "componentstatuses"})
        return handlers.render(request, spec, found)  # type: ignore[attr-defined]
    accept = http.parse_accept(request.headers.get("Accept"))
    if http.wants(accept, "Table"):
        table = handlers.to_table(spec, items, now=ctx.clock(), wide=True,  # type: ignore[attr-defined]
                                  include_object=request.query.get("includeObject", "Metadata"))
        table["metadata"] = {}
        return http.json_response(table)
    return http.json_response({"kind": "ComponentStatusList", "apiVersion": "v1", "metadata": {}, "items": items})
