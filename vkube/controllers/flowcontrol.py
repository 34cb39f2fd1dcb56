"""The API Priority and Fairness configuration controller's status work: every FlowSchema's
``Dangling`` condition says whether the PriorityLevelConfiguration it references exists
(kubectl shows it as MISSINGPL), kept current as schemas and levels come and go."""

from __future__ import annotations

from vkube.api import errors
from vkube.api.kinds_flowcontrol import dangling_condition
from vkube.api.meta import rfc3339
from vkube.client.client import Resource
from vkube.controllers.runtime import Controller

__all__ = ["FlowSchemaStatusController"]

GROUP = "flowcontrol.apiserver.k8s.io"
FLOWSCHEMAS = Resource(GROUP, "v1", "flowschemas", False, "FlowSchema")
LEVELS = Resource(GROUP, "v1", "prioritylevelconfigurations", False, "PriorityLevelConfiguration")


class FlowSchemaStatusController(Controller):
    name = "apf-configuration-controller"
    workers = 1

    def setup(self) -> None:
        self.schemas = self.mgr.informer(FLOWSCHEMAS)
        self.levels = self.mgr.informer(LEVELS)
        self.schemas.add_handler(self.handler)
        self.levels.add_handler(self._on_level)

    def _on_level(self, typ: str, level: dict, old: dict | None) -> None:
        name = level["metadata"]["name"]
        for fs in self.schemas.list():
            if ((fs.get("spec") or {}).get("priorityLevelConfiguration") or {}).get("name") == name:
                self.enqueue(fs)

    async def reconcile(self, key: str) -> float | None:
        fs = self.schemas.get(key)
        if fs is None:
            return None
        levels = {o["metadata"]["name"] for o in self.levels.list()}
        want = dangling_condition(fs, levels, rfc3339(self.mgr.clock()))
        conds = list((fs.get("status") or {}).get("conditions") or ())
        have = next((c for c in conds if c.get("type") == "Dangling"), None)
        if have is not None and all(have.get(k) == want[k] for k in ("status", "reason", "message")):
            return None
        conds = [c for c in conds if c.get("type") != "Dangling"] + [want]
        try:
            await self.client.update(FLOWSCHEMAS, {**fs, "status": {**(fs.get("status") or {}), "conditions": conds}},
                                     subresource="status")
        except (errors.Conflict, errors.NotFound):
            pass
        return None
