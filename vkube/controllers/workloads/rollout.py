"""Deployment arithmetic, pure functions over ReplicaSet dicts (pkg/controller/deployment/util).

Kept apart from the controller so the rolling-update, proportional-scaling and status rules can
be tested without any API.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from vkube.controllers.workloads._common import (
    Obj,
    get_condition,
    int_or_percent,
    parse_time,
    set_condition,
)

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# annotations never copied from a Deployment onto its ReplicaSets
SKIP_ANNOTATIONS = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY,
    DESIRED_REPLICAS, MAX_REPLICAS, "deprecated.deployment.rollback.to",
})


def spec_replicas(obj: Obj) -> int:
    r = (obj.get("spec") or {}).get("replicas")
    return 1 if r is None else int(r)


def st(obj: Obj, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def revision_of(rs: Obj) -> int:
    try:
        return int(((rs.get("metadata") or {}).get("annotations") or {}).get(REVISION) or 0)
    except ValueError:
        return 0


def created(rs: Obj) -> tuple[str, str]:
    m = rs.get("metadata") or {}
    return (m.get("creationTimestamp") or "", m.get("name") or "")


def is_rolling(d: Obj) -> bool:
    return ((d["spec"].get("strategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"


def resolve_fenceposts(max_surge: Any, max_unavailable: Any, desired: int) -> tuple[int, int]:
    """Surge rounds up, unavailability rounds down; both zero would deadlock, so unavailable
    becomes 1."""
    surge = int_or_percent(max_surge, desired, round_up=True)
    unavail = int_or_percent(max_unavailable, desired, round_up=False)
    if surge == 0 and unavail == 0:
        unavail = 1
    return surge, unavail


def _rolling_params(d: Obj) -> tuple[Any, Any]:
    ru = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    return ru.get("maxSurge", "25%"), ru.get("maxUnavailable", "25%")


def max_surge(d: Obj) -> int:
    if not is_rolling(d):
        return 0
    return resolve_fenceposts(*_rolling_params(d), spec_replicas(d))[0]


def max_unavailable(d: Obj) -> int:
    desired = spec_replicas(d)
    if not is_rolling(d) or desired == 0:
        return 0
    return min(resolve_fenceposts(*_rolling_params(d), desired)[1], desired)


def new_rs_new_replicas(d: Obj, all_rs: list[Obj], new_rs: Obj | None) -> int:
    """How big the new ReplicaSet may be now (NewRSNewReplicas)."""
    desired = spec_replicas(d)
    if not is_rolling(d):
        return desired
    new_count = spec_replicas(new_rs) if new_rs else 0
    max_total = desired + max_surge(d)
    current = sum(spec_replicas(rs) for rs in all_rs)
    if current >= max_total:
        return new_count
    return new_count + min(max_total - current, max(desired - new_count, 0))


def old_scale_down_plan(d: Obj, all_rs: list[Obj], old_rs: list[Obj],
                        new_rs: Obj | None) -> dict[str, int]:
    """Target sizes for old ReplicaSets in one rolling step (reconcileOldReplicaSets): first
    unhealthy replicas, then healthy ones down to minAvailable. Returns name → new size."""
    old_count = sum(spec_replicas(rs) for rs in old_rs)
    if old_count == 0:
        return {}
    all_count = sum(spec_replicas(rs) for rs in all_rs)
    min_available = spec_replicas(d) - max_unavailable(d)
    new_unavailable = (spec_replicas(new_rs) - st(new_rs, "availableReplicas")) if new_rs else 0
    max_scaled_down = all_count - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    plan: dict[str, int] = {}
    size = {rs["metadata"]["name"]: spec_replicas(rs) for rs in old_rs}
    ordered = sorted(old_rs, key=created)
    cleaned = 0
    for rs in ordered:  # cleanupUnhealthyReplicas
        name = rs["metadata"]["name"]
        if cleaned >= max_scaled_down:
            break
        if size[name] == 0 or st(rs, "availableReplicas") >= size[name]:
            continue
        n = min(max_scaled_down - cleaned, size[name] - st(rs, "availableReplicas"))
        size[name] -= n
        plan[name] = size[name]
        cleaned += n
    max_scaled_down -= cleaned
    # scaleDownOldReplicaSetsForRollingUpdate
    available = sum(st(rs, "availableReplicas") for rs in all_rs)
    if available > min_available and max_scaled_down > 0:
        total = min(available - min_available, max_scaled_down)
        done = 0
        for rs in ordered:
            name = rs["metadata"]["name"]
            if done >= total:
                break
            if size[name] == 0:
                continue
            n = min(size[name], total - done)
            size[name] -= n
            plan[name] = size[name]
            done += n
    return plan


def _go_round(x: float) -> int:
    """math.Round: halves away from zero."""
    return int(x + 0.5) if x >= 0 else -int(-x + 0.5)


def rs_fraction(rs: Obj, d: Obj) -> int:
    if spec_replicas(d) == 0:
        return -spec_replicas(rs)
    allowed = spec_replicas(d) + max_surge(d)
    ann = ((rs.get("metadata") or {}).get("annotations") or {}).get(MAX_REPLICAS)
    try:
        annotated = int(ann) if ann is not None else st(d, "replicas")
    except ValueError:
        annotated = st(d, "replicas")
    if annotated == 0:
        annotated = 1
    return _go_round(spec_replicas(rs) * allowed / annotated) - spec_replicas(rs)


def proportional_sizes(d: Obj, active: list[Obj]) -> dict[str, int]:
    """Spread a scale event over several active ReplicaSets in proportion to their sizes."""
    total = sum(spec_replicas(rs) for rs in active)
    allowed = spec_replicas(d) + (max_surge(d) if spec_replicas(d) > 0 else 0)
    to_add = allowed - total
    # larger first; newer first when growing, older first when shrinking
    ordered = sorted(active, key=created, reverse=to_add > 0)
    ordered.sort(key=lambda r: -spec_replicas(r))  # stable: ties keep the age order
    sizes: dict[str, int] = {}
    added = 0
    for rs in ordered:
        name = rs["metadata"]["name"]
        prop = 0
        if to_add != 0 and added != to_add and spec_replicas(rs) > 0:
            frac, left = rs_fraction(rs, d), to_add - added
            prop = min(frac, left) if to_add > 0 else max(frac, left)
        sizes[name] = spec_replicas(rs) + prop
        added += prop
    if ordered and to_add != 0:
        first = ordered[0]["metadata"]["name"]
        sizes[first] = max(sizes[first] + to_add - added, 0)
    return sizes


def is_scaling_event(d: Obj, active: list[Obj]) -> bool:
    for rs in active:
        ann = ((rs.get("metadata") or {}).get("annotations") or {}).get(DESIRED_REPLICAS)
        if ann is not None and ann != str(spec_replicas(d)):
            return True
    return False


def calculate_status(d: Obj, all_rs: list[Obj], new_rs: Obj | None, now: datetime) -> Obj:
    available = sum(st(rs, "availableReplicas") for rs in all_rs)
    total = sum(spec_replicas(rs) for rs in all_rs)
    prev = d.get("status") or {}
    status: Obj = {
        "observedGeneration": d["metadata"].get("generation", 0),
        "replicas": sum(st(rs, "replicas") for rs in all_rs),
        "updatedReplicas": st(new_rs, "replicas") if new_rs else 0,
        "readyReplicas": sum(st(rs, "readyReplicas") for rs in all_rs),
        "availableReplicas": available,
        "unavailableReplicas": max(total - available, 0),
        "conditions": [dict(c) for c in prev.get("conditions") or ()],
    }
    if prev.get("collisionCount") is not None:
        status["collisionCount"] = prev["collisionCount"]
    if available >= spec_replicas(d) - max_unavailable(d):
        set_condition(status, "Available", "True", "MinimumReplicasAvailable",
                      "Deployment has minimum availability.", now, update_field="lastUpdateTime")
    else:
        set_condition(status, "Available", "False", "MinimumReplicasUnavailable",
                      "Deployment does not have minimum availability.", now,
                      update_field="lastUpdateTime")
    return status


def deployment_complete(d: Obj, status: Obj) -> bool:
    n = spec_replicas(d)
    return (status.get("updatedReplicas") == n and status.get("replicas") == n
            and status.get("availableReplicas") == n
            and status.get("observedGeneration", 0) >= d["metadata"].get("generation", 0))


def deployment_progressing(d: Obj, new: Obj) -> bool:
    old = d.get("status") or {}
    old_stale = int(old.get("replicas") or 0) - int(old.get("updatedReplicas") or 0)
    new_stale = int(new.get("replicas") or 0) - int(new.get("updatedReplicas") or 0)
    return (int(new.get("updatedReplicas") or 0) > int(old.get("updatedReplicas") or 0)
            or new_stale < old_stale
            or int(new.get("readyReplicas") or 0) > int(old.get("readyReplicas") or 0)
            or int(new.get("availableReplicas") or 0) > int(old.get("availableReplicas") or 0))


def progress_deadline(d: Obj) -> int | None:
    v = d["spec"].get("progressDeadlineSeconds", 600)
    return None if v is None or int(v) >= 2**31 - 1 else int(v)


def deployment_timed_out(d: Obj, status: Obj, now: datetime) -> bool:
    deadline = progress_deadline(d)
    cond = get_condition(status, "Progressing")
    if deadline is None or cond is None:
        return False
    if cond.get("reason") in ("NewReplicaSetAvailable", "ProgressDeadlineExceeded"):
        return cond.get("reason") == "ProgressDeadlineExceeded"
    since = parse_time(cond.get("lastUpdateTime") or cond.get("lastTransitionTime"))
    return since is not None and (now - since).total_seconds() > deadline


def seconds_until_timeout(d: Obj, status: Obj, now: datetime) -> float | None:
    deadline = progress_deadline(d)
    cond = get_condition(status, "Progressing")
    if deadline is None or cond is None or cond.get("reason") in (
            "NewReplicaSetAvailable", "ProgressDeadlineExceeded"):
        return None
    since = parse_time(cond.get("lastUpdateTime") or cond.get("lastTransitionTime"))
    if since is None:
        return None
    return max((since - now).total_seconds() + deadline, 0.0) + 1.0
