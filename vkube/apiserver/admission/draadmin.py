"""DRA admin access (KEP-5018, the ResourceClaim strategies' ``AuthorizedForAdmin``): a
request with ``exactly.adminAccess: true`` — which lets a claim see devices already in use,
for monitoring or diagnostics — is allowed only in a namespace labelled
``resource.kubernetes.io/admin-access: "true"``; elsewhere the create is a 422 naming the
field, in upstream's words. Claims and claim templates alike (their specs are immutable, so
creates are what is checked)."""

from __future__ import annotations

from typing import Any

from vkube.api import errors
from vkube.api.validation import forbidden
from vkube.apiserver.context import AdmissionRequest, Context
from vkube.apiserver.request import internal_context

__all__ = ["ADMIN_NAMESPACE_LABEL", "DRAAdminAccess", "admin_requests"]

ADMIN_NAMESPACE_LABEL = "resource.kubernetes.io/admin-access"
_KINDS = {"ResourceClaim": "spec", "ResourceClaimTemplate": "spec.spec"}


def admin_requests(spec: Any, path: str) -> list[str]:
    """Paths of the requests in a claim spec that ask for admin access."""
    out = []
    for i, req in enumerate(((spec or {}).get("devices") or {}).get("requests") or ()):
        exactly = (req or {}).get("exactly")
        if isinstance(exactly, dict) and exactly.get("adminAccess") is True:
            out.append(f"{path}.devices.requests[{i}].exactly.adminAccess")
        elif (req or {}).get("adminAccess") is True:  # v1beta1's flat request
            out.append(f"{path}.devices.requests[{i}].adminAccess")
    return out


class DRAAdminAccess:
    async def validate(self, ctx: Context, req: AdmissionRequest) -> None:
        path = _KINDS.get(req.spec.kind)
        if req.spec.group != "resource.k8s.io" or path is None or req.operation != "CREATE" \
                or req.subresource or req.obj is None or not req.namespace:
            return
        spec = req.obj.get("spec")
        if path == "spec.spec":
            spec = (spec or {}).get("spec")
        paths = admin_requests(spec, path)
        if not paths:
            return
        storage = ctx.storage_for("", "Namespace")
        rc = internal_context("get", resource="namespaces", version="v1")
        ns = await storage.get_or_none(rc, None, req.namespace) if storage else None
        if (((ns or {}).get("metadata") or {}).get("labels") or {}).get(ADMIN_NAMESPACE_LABEL) == "true":
            return
        detail = (f"admin access to devices requires the `{ADMIN_NAMESPACE_LABEL}: true` label "
                  "on the containing namespace")
        raise errors.invalid(req.spec.kind, req.name, [forbidden(p, detail) for p in paths],
                             group="resource.k8s.io")
