"""The clusterrole-aggregation controller: fills ``.rules`` of every ClusterRole that has an
``aggregationRule`` with the rules of the ClusterRoles its selectors match.

Follows ``pkg/controller/clusterroleaggregation``: any ClusterRole change re-queues every
aggregating role (a contributed role may feed several, and aggregation is transitive through
roles that are themselves aggregated); the merge itself is :func:`vkube.api.rbac.aggregated_rules`.
So ``admin``/``edit``/``view`` pick up rules that CRD authors label with
``rbac.authorization.k8s.io/aggregate-to-*``, and lose them when the label or role goes away.
"""

from __future__ import annotations

import copy

from vkube.api import errors
from vkube.api.rbac import aggregated_rules
from vkube.client.resources import CLUSTERROLES
from vkube.controllers.runtime import Controller, Obj

__all__ = ["ClusterRoleAggregationController"]


class ClusterRoleAggregationController(Controller):
    name = "clusterrole-aggregation-controller"
    workers = 1  # upstream runs 5; one keeps transitive updates in order and costs nothing here

    def setup(self) -> None:
        self.roles = self.mgr.informer(CLUSTERROLES)
        self.roles.add_handler(self._on_role)

    def _on_role(self, typ: str, obj: Obj, old: Obj | None) -> None:
        for role in self.roles.list():
            if role.get("aggregationRule") is not None:
                self.queue.add(role["metadata"]["name"])

    async def reconcile(self, key: str) -> float | None:
        role = self.roles.get(key)
        if role is None:
            return None
        rules = aggregated_rules(role, self.roles.list())
        if rules is None or rules == (role.get("rules") or []):
            return None
        updated = copy.deepcopy(role)
        updated["rules"] = rules
        try:
            await self.client.update(CLUSTERROLES, updated)
        except errors.NotFound:
            pass  # deleted meanwhile: nothing to aggregate
        return None
