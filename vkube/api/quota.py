"""Resource quota arithmetic, as ``k8s.io/apiserver/pkg/quota/v1`` and the core evaluators
compute it: what one object uses (pods, services, claims, object counts), which quotas' scopes
match a pod, and the ``exceeded quota`` comparison. Pure functions over plain dicts, shared by
the ResourceQuota admission plugin and the quota controller so both count alike."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Any

from vkube.api.meta import Obj, parse_time
from vkube.api.quantity import Quantity, QuantityError, format_quantity, parse_quantity

__all__ = ["usage", "pod_usage", "matches_scopes", "covers", "add", "subtract", "exceeded",
           "pretty", "to_list", "parse_list", "is_pod_active", "best_effort", "count_names",
           "LEGACY_COUNTS", "POD_COMPUTE"]

Usage = dict[str, Fraction]

#: the legacy names kept next to ``count/<resource>`` (``quota/v1/evaluator/core``)
LEGACY_COUNTS: Mapping[tuple[str, str], str] = {
    ("", "pods"): "pods", ("", "services"): "services", ("", "configmaps"): "configmaps",
    ("", "secrets"): "secrets", ("", "persistentvolumeclaims"): "persistentvolumeclaims",
    ("", "replicationcontrollers"): "replicationcontrollers", ("", "resourcequotas"): "resourcequotas",
}
POD_COMPUTE = ("cpu", "memory", "ephemeral-storage")
_STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"
_FORMATS: dict[str, str] = {"memory": "BinarySI", "storage": "BinarySI", "ephemeral-storage": "BinarySI"}


def count_names(group: str, resource: str) -> list[str]:
    """``count/pods`` (``count/deployments.apps``) and the legacy name, if any."""
    names = [f"count/{resource}" + (f".{group}" if group else "")]
    legacy = LEGACY_COUNTS.get((group, resource))
    if legacy:
        names.append(legacy)
    return names


def _q(value: Any) -> Fraction:
    try:
        return parse_quantity(value).value
    except QuantityError:
        return Fraction(0)


def parse_list(rl: Mapping[str, Any] | None) -> Usage:
    return {k: _q(v) for k, v in (rl or {}).items()}


def to_list(u: Mapping[str, Fraction]) -> dict[str, str]:
    """A ResourceList in canonical quantity strings."""
    out = {}
    for k, v in sorted(u.items()):
        base = k.rsplit(".", 1)[-1] if k.startswith(("requests.", "limits.")) else k
        fmt = "BinarySI" if base in _FORMATS or k.endswith("requests.storage") else "DecimalSI"
        if v != 0 and v.denominator == 1 and fmt == "BinarySI" and v % 1024:
            fmt = "DecimalSI"
        out[k] = format_quantity(v, fmt)  # type: ignore[arg-type]
    return out


def is_pod_active(pod: Obj, now: dt.datetime | None = None) -> bool:
    """``QuotaV1Pod``: terminal pods and pods past their deletion grace are not charged."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    m = pod.get("metadata") or {}
    if m.get("deletionTimestamp") and m.get("deletionGracePeriodSeconds") is not None and now is not None:
        at = parse_time(m["deletionTimestamp"])
        if at is not None and now > at:
            return False
    return True


def _containers_total(spec: Obj, field: str) -> Usage:
    total: Usage = {}
    for c in spec.get("containers") or []:
        for k, v in parse_list((c.get("resources") or {}).get(field)).items():
            total[k] = total.get(k, Fraction(0)) + v
    for c in spec.get("initContainers") or []:  # init containers run one at a time: max, not sum
        res = parse_list((c.get("resources") or {}).get(field))
        if c.get("restartPolicy") == "Always":  # sidecars run alongside
            for k, v in res.items():
                total[k] = total.get(k, Fraction(0)) + v
            continue
        for k, v in res.items():
            if v > total.get(k, Fraction(0)):
                total[k] = v
    for k, v in parse_list(spec.get("overhead")).items():
        total[k] = total.get(k, Fraction(0)) + v
    return total


def best_effort(pod: Obj) -> bool:
    """No container requests or limits cpu or memory (``qos.GetPodQOS == BestEffort``)."""
    spec = pod.get("spec") or {}
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        res = c.get("resources") or {}
        for field in ("requests", "limits"):
            if any(k in ("cpu", "memory") for k in (res.get(field) or {})):
                return False
    return True


def pod_usage(pod: Obj) -> Usage:
    u: Usage = {"pods": Fraction(1), "count/pods": Fraction(1)}
    spec = pod.get("spec") or {}
    requests, limits = _containers_total(spec, "requests"), _containers_total(spec, "limits")
    for k, v in requests.items():
        u["requests." + k] = v
        if k in POD_COMPUTE:
            u[k] = v
    for k, v in limits.items():
        u["limits." + k] = v
    return u


def _service_usage(svc: Obj) -> Usage:
    spec = svc.get("spec") or {}
    u: Usage = {"services": Fraction(1), "count/services": Fraction(1),
                "services.loadbalancers": Fraction(0), "services.nodeports": Fraction(0)}
    kind = spec.get("type", "ClusterIP")
    ports = len(spec.get("ports") or [])
    if kind == "LoadBalancer":
        u["services.loadbalancers"] = Fraction(1)
        if spec.get("allocateLoadBalancerNodePorts", True) is not False:
            u["services.nodeports"] = Fraction(ports)
    elif kind == "NodePort":
        u["services.nodeports"] = Fraction(ports)
    return u


def _pvc_usage(pvc: Obj) -> Usage:
    spec = pvc.get("spec") or {}
    storage = _q(((spec.get("resources") or {}).get("requests") or {}).get("storage", 0))
    u: Usage = {"persistentvolumeclaims": Fraction(1), "count/persistentvolumeclaims": Fraction(1),
                "requests.storage": storage}
    sc = spec.get("storageClassName")
    if sc:
        u[sc + _STORAGE_CLASS_SUFFIX + "persistentvolumeclaims"] = Fraction(1)
        u[sc + _STORAGE_CLASS_SUFFIX + "requests.storage"] = storage
    return u


def usage(group: str, resource: str, obj: Obj) -> Usage:
    """What ``obj`` (of group/resource) is charged against a quota."""
    if (group, resource) == ("", "pods"):
        return pod_usage(obj)
    if (group, resource) == ("", "services"):
        return _service_usage(obj)
    if (group, resource) == ("", "persistentvolumeclaims"):
        return _pvc_usage(obj)
    return {name: Fraction(1) for name in count_names(group, resource)}


def _scope_match(scope: str, operator: str, values: list[str], pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    if scope == "Terminating":
        return spec.get("activeDeadlineSeconds") is not None
    if scope == "NotTerminating":
        return spec.get("activeDeadlineSeconds") is None
    if scope == "BestEffort":
        return best_effort(pod)
    if scope == "NotBestEffort":
        return not best_effort(pod)
    if scope == "PriorityClass":
        pc = spec.get("priorityClassName") or ""
        if operator == "Exists":
            return bool(pc)
        if operator == "DoesNotExist":
            return not pc
        if operator == "In":
            return pc in values
        if operator == "NotIn":
            return pc not in values
        return False
    if scope == "CrossNamespacePodAffinity":
        return False
    return False


def _scopes(quota: Obj) -> list[tuple[str, str, list[str]]]:
    spec = quota.get("spec") or {}
    out = [(s, "Exists", []) for s in spec.get("scopes") or []]
    for expr in (spec.get("scopeSelector") or {}).get("matchExpressions") or []:
        out.append((expr.get("scopeName", ""), expr.get("operator", ""), list(expr.get("values") or [])))
    return out


def matches_scopes(quota: Obj, group: str, resource: str, obj: Obj) -> bool:
    """A scoped quota only charges pods its scopes select; unscoped quotas charge everything."""
    scopes = _scopes(quota)
    if not scopes:
        return True
    if (group, resource) != ("", "pods"):
        return False
    return all(_scope_match(s, op, vals, obj) for s, op, vals in scopes)


def covers(hard: Iterable[str], scopes_quota: Obj, name: str) -> bool:
    """Whether ``name`` is a resource the quota tracks (BestEffort quotas track only pods)."""
    scopes = {s for s, _, _ in _scopes(scopes_quota)}
    if "BestEffort" in scopes and name not in ("pods", "count/pods"):
        return False
    return name in set(hard)


def add(a: Mapping[str, Fraction], b: Mapping[str, Fraction]) -> Usage:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, Fraction(0)) + v
    return out


def subtract(a: Mapping[str, Fraction], b: Mapping[str, Fraction]) -> Usage:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, Fraction(0)) - v
    return out


def exceeded(new_used: Mapping[str, Fraction], hard: Mapping[str, Fraction]) -> list[str]:
    """Resources where ``new_used`` passes ``hard`` (``quota.LessThanOrEqual``), sorted."""
    return sorted(k for k, v in new_used.items() if k in hard and v > hard[k])


def pretty(u: Mapping[str, Fraction], names: Iterable[str], original: Mapping[str, Any] | None = None) -> str:
    """``pods=1,requests.cpu=500m``: the ResourceList print upstream's messages use."""
    parts = []
    for k in sorted(names):
        if original is not None and k in original:
            parts.append(f"{k}={Quantity(parse_quantity(original[k]).value, parse_quantity(original[k]).format)}")
        else:
            parts.append(f"{k}={to_list({k: u.get(k, Fraction(0))})[k]}")
    return ",".join(parts)
