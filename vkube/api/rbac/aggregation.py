"""ClusterRole aggregation: the merge the clusterrole-aggregation controller performs.

Follows ``pkg/controller/clusterroleaggregation``: for a ClusterRole with an ``aggregationRule``,
its rules become the union of the rules of every *other* ClusterRole matched by any of its
``clusterRoleSelectors`` — selectors in order, matched roles sorted by name, each rule added once
(exact equality) in first-seen order. The controller writes the result into ``.rules``; RBAC then
evaluates the stored rules. Aggregation is transitive because the controller re-syncs every
aggregating role whenever any ClusterRole changes: :func:`aggregate_cluster_roles` repeats the
merge until nothing changes.
"""

from __future__ import annotations

import copy

import orjson
from collections.abc import Iterable, Mapping
from typing import Any

from vkube.api.errors import BadRequest
from vkube.api.selectors import label_selector_from_dict

__all__ = ["aggregated_rules", "aggregate_cluster_roles"]

Obj = Mapping[str, Any]


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def aggregated_rules(role: Obj, cluster_roles: Iterable[Obj]) -> list[Any] | None:
    """The rules ``role`` should hold; None when it has no aggregationRule (nothing to do).

    A selector that does not parse is skipped, as the controller logs and skips it.
    """
    rule = role.get("aggregationRule")
    if rule is None:
        return None
    ordered = sorted(cluster_roles, key=_name)
    out: list[Any] = []
    seen: set[bytes] = set()
    for raw in rule.get("clusterRoleSelectors") or ():
        try:
            selector = label_selector_from_dict(raw)
        except BadRequest:
            continue
        for other in ordered:
            if _name(other) == _name(role):
                continue
            if not selector.matches((other.get("metadata") or {}).get("labels")):
                continue
            for r in other.get("rules") or ():
                key = orjson.dumps(r, option=orjson.OPT_SORT_KEYS)  # equality, hashed
                if key not in seen:
                    seen.add(key)
                    out.append(copy.deepcopy(r))
    return out


def aggregate_cluster_roles(cluster_roles: Iterable[Obj], *, max_rounds: int = 32) -> list[dict[str, Any]]:
    """Copies of ``cluster_roles`` with every aggregated role's rules filled, to a fixed point."""
    roles = [copy.deepcopy(dict(r)) for r in cluster_roles]
    aggregating = [r for r in roles if r.get("aggregationRule") is not None]
    for _ in range(max_rounds):
        changed = False
        for role in aggregating:
            rules = aggregated_rules(role, roles)
            if rules is not None and rules != (role.get("rules") or []):
                role["rules"] = rules
                changed = True
        if not changed:
            break
    return roles
