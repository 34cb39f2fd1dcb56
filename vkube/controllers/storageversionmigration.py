"""The storage version migrator (kube-controller-manager's ``storage-version-migrator``): a
StorageVersionMigration names a resource; every object of it is written back unchanged through
the API, so the server stores it again in its current storage form — the way to re-encrypt
Secrets after an encryption key rotation. Status follows upstream: ``resourceVersion`` (where
the migration started), then ``Running`` and ``Succeeded`` (or ``Failed`` for an unknown
resource) conditions.
"""

from __future__ import annotations

from typing import Any

from vkube.api import errors
from vkube.api.meta import Obj, rfc3339
from vkube.client.client import Resource
from vkube.controllers.runtime import Controller

__all__ = ["StorageVersionMigrationController", "MIGRATIONS"]

MIGRATIONS = Resource("storagemigration.k8s.io", "v1", "storageversionmigrations", False, "StorageVersionMigration")


def _has(svm: Obj, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in ((svm.get("status") or {}).get("conditions")) or ())


class StorageVersionMigrationController(Controller):
    name = "storage-version-migrator-controller"
    workers = 1

    def setup(self) -> None:
        self.migrations = self.mgr.informer(MIGRATIONS)
        self.migrations.add_handler(self.handler)

    async def _resource(self, group: str, plural: str) -> Resource | None:
        for found in await self.client.discover():
            res = found.resource
            if res.group == group and res.plural == plural and {"list", "update"} <= set(found.verbs):
                return res
        return None

    async def reconcile(self, key: str) -> float | None:
        svm = self.migrations.get(key)
        if svm is None or _has(svm, "Succeeded") or _has(svm, "Failed"):
            return None
        wanted = (svm.get("spec") or {}).get("resource") or {}
        res = await self._resource(wanted.get("group", ""), wanted.get("resource", ""))
        if res is None:
            gr = ".".join(p for p in (wanted.get("resource", ""), wanted.get("group", "")) if p)
            await self._status(svm, "Failed", "ResourceNotFound", f"resource {gr} is not served")
            return None
        listed = await self.client.list_all(res)
        svm = await self._status(svm, "Running", "", "", resource_version=listed["metadata"].get("resourceVersion", ""))
        for obj in listed.get("items") or ():
            obj.setdefault("apiVersion", res.api_version)
            obj.setdefault("kind", res.kind)
            try:
                await self.client.update(res, obj)
            except (errors.Conflict, errors.NotFound):
                pass  # written or deleted since the list: stored in the current form already
        await self._status(svm, "Succeeded", "", "")
        return None

    async def _status(self, svm: Obj, ctype: str, reason: str, message: str, *,
                      resource_version: str | None = None) -> Obj:
        status: dict[str, Any] = dict(svm.get("status") or {})
        now = rfc3339(self.mgr.clock())
        conds = [c for c in status.get("conditions") or () if c.get("type") not in ("Running", ctype)]
        if ctype != "Running" and any(c.get("type") == "Running" for c in status.get("conditions") or ()):
            conds.append({"type": "Running", "status": "False", "lastUpdateTime": now,
                          "reason": "Completed", "message": ""})
        conds.append({"type": ctype, "status": "True", "lastUpdateTime": now, "reason": reason or ctype,
                      "message": message})
        status["conditions"] = conds
        if resource_version is not None:
            status["resourceVersion"] = resource_version
        return await self.client.update(MIGRATIONS, {**svm, "status": status}, subresource="status")
