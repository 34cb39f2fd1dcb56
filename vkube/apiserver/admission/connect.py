"""Admission of CONNECT requests (pods/exec, attach, portforward), as kube-apiserver runs it
before it dials the kubelet: the chain sees the operation ``CONNECT`` and the request's options
object (``PodExecOptions``, ``PodAttachOptions``, ``PodPortForwardOptions``) built from the
query, so webhooks and policies with CONNECT rules can refuse an exec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vkube.api.kinds import ResourceSpec
from vkube.apiserver.context import AdmissionRequest, Context
from vkube.apiserver.request import RequestContext

__all__ = ["admit_connect", "connect_options"]

_KINDS = {"exec": "PodExecOptions", "attach": "PodAttachOptions", "portforward": "PodPortForwardOptions"}


def _flag(query: Any, key: str) -> bool:
    return str(query.get(key, "")).lower() in ("1", "true")


def connect_options(subresource: str, query: Any, container: str) -> dict[str, Any]:
    """The options object of the request (false booleans omitted, as Go's omitempty does)."""
    out: dict[str, Any] = {"kind": _KINDS[subresource], "apiVersion": "v1"}
    if subresource == "portforward":
        ports = [int(p) for v in query.getall("ports", []) for p in str(v).split(",") if p.strip().isdigit()]
        if ports:
            out["ports"] = ports
        return out
    for key in ("stdin", "stdout", "stderr", "tty"):
        if _flag(query, key):
            out[key] = True
    if container:
        out["container"] = container
    if subresource == "exec":
        out["command"] = [str(c) for c in query.getall("command", [])]
    return out


async def admit_connect(ctx: Context, spec: ResourceSpec, rc: RequestContext, query: Mapping[str, Any],
                        container: str) -> None:
    info = rc.info
    options = connect_options(info.subresource, query, container)
    req = AdmissionRequest("CONNECT", spec, info.namespace or None, info.name, options, None, info.subresource,
                           rc.dry_run, user=rc.user, request=rc)
    for plugin in ctx.admission:
        step = getattr(plugin, "mutate", None) or getattr(plugin, "admit", None)
        if step is not None:
            await step(ctx, req)
    for plugin in ctx.admission:
        step = getattr(plugin, "validate", None)
        if step is not None:
            await step(ctx, req)
