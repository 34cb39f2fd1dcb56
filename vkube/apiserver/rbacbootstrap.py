"""The RBAC bootstrap policy, created and reconciled at every start (kube-apiserver's
``rbac/bootstrap-roles`` post-start hook): missing roles and bindings are created, existing
ones gain what the defaults add (:mod:`vkube.api.rbac.reconcile`), nothing is removed.

Written as the API server itself (``system:apiserver`` in ``system:masters``), through the
storages, so validation, managedFields and watches see ordinary writes. The writes are issued
together: the store commits them in a few group commits instead of ~100 sequential ones.
"""

from __future__ import annotations

import asyncio
from typing import Any

from vkube.api import errors
from vkube.api.rbac import bootstrap_policy
from vkube.api.rbac.reconcile import reconcile_binding, reconcile_role
from vkube.apiserver.context import Context
from vkube.apiserver.request import internal_context
from vkube.apiserver.storage import ResourceStorage

__all__ = ["ensure_bootstrap_policy"]

RBAC = "rbac.authorization.k8s.io"
MANAGER = "vkube-apiserver"
_SECTIONS = (("clusterRoles", "ClusterRole", "clusterroles"), ("roles", "Role", "roles"),
             ("clusterRoleBindings", "ClusterRoleBinding", "clusterrolebindings"),
             ("roleBindings", "RoleBinding", "rolebindings"))


async def ensure_bootstrap_policy(ctx: Context) -> dict[str, int]:
    """Create or reconcile every bootstrap object; counts of what was created/updated."""
    policy = bootstrap_policy()
    storages = [(section, kind, plural, ctx.storage_for(RBAC, kind)) for section, kind, plural in _SECTIONS]
    listed = await asyncio.gather(*(
        st.list(internal_context("list", resource=plural, group=RBAC, version="v1"), None)
        for _, _, plural, st in storages if st is not None))
    writes = []
    for (section, kind, plural, storage), found in zip([s for s in storages if s[3] is not None], listed):
        assert storage is not None
        existing = {(o["metadata"].get("namespace") or "", o["metadata"]["name"]): o for o in found.items}
        for want in policy[section]:
            have = existing.get((want["metadata"].get("namespace") or "", want["metadata"]["name"]))
            writes.append(_ensure(storage, kind, plural, want, have))
    results = await asyncio.gather(*writes)
    return {"created": results.count("created"), "updated": results.count("updated")}


async def _ensure(storage: ResourceStorage, kind: str, plural: str, want: dict[str, Any],
                  have: dict[str, Any] | None) -> str:
    meta = want["metadata"]
    namespace, name = meta.get("namespace") or None, meta["name"]
    rc = internal_context("create" if have is None else "update", resource=plural, group=RBAC, version="v1",
                          namespace=namespace or "", name=name, field_manager=MANAGER)
    try:
        if have is None:  # checked: tests/authz/test_bootstrap.py type-checks and validates each
            await storage.create(rc, namespace, want, checked=True)
            return "created"
        if kind.endswith("Binding"):
            updated, recreate = reconcile_binding(have, want)
        else:
            updated, recreate = reconcile_role(have, want), False
        if updated is None:
            return ""
        if recreate:  # roleRef is immutable: delete, then create with the expected one
            await storage.delete(rc, namespace, name)
            fresh: dict[str, Any] = {k: v for k, v in updated.items() if k != "metadata"}
            fresh["metadata"] = {k: v for k, v in updated["metadata"].items()
                                 if k in ("name", "namespace", "labels", "annotations")}
            await storage.create(rc, namespace, fresh)
        else:
            await storage.update(rc, namespace, name, updated)
        return "updated"
    except (errors.AlreadyExists, errors.Conflict, errors.NotFound):
        return ""  # another API server on the same store wrote it first; it reconciles too
