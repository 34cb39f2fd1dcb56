"""HorizontalPodAutoscaler ``autoscaling/v1`` <-> ``autoscaling/v2`` conversion.

v2 is the storage version (as in kube-apiserver). v1 only knows a CPU utilization target; what
it cannot hold travels in the annotations upstream's conversion uses
(``autoscaling.alpha.kubernetes.io/{metrics,current-metrics,conditions,behavior}``), so a v1
read-modify-write keeps a v2 object's other metrics, behavior and conditions. Unlike upstream
(which writes the old v2beta1-shaped ``MetricSpec`` there), the annotations hold v2 JSON.
"""

from __future__ import annotations

import json
from typing import Any

from vkube.api.meta import Obj

__all__ = ["v1_to_v2", "v2_to_v1"]

_PREFIX = "autoscaling.alpha.kubernetes.io/"
METRICS = _PREFIX + "metrics"
CURRENT = _PREFIX + "current-metrics"
CONDITIONS = _PREFIX + "conditions"
BEHAVIOR = _PREFIX + "behavior"


def _is_cpu_utilization(metric: Any) -> bool:
    if not isinstance(metric, dict) or metric.get("type") != "Resource":
        return False
    res = metric.get("resource") or {}
    target = res.get("target") or {}
    return res.get("name") == "cpu" and target.get("type") == "Utilization"


def _load(annotations: dict[str, Any], key: str) -> Any:
    raw = annotations.pop(key, None)
    if not isinstance(raw, str):
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def v2_to_v1(obj: Obj) -> Obj:
    """A v2 object (as stored) in v1's shape: a new dict, ``obj`` is not changed."""
    meta = dict(obj.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    spec = obj.get("spec") or {}
    out_spec: dict[str, Any] = {}
    if "scaleTargetRef" in spec:
        out_spec["scaleTargetRef"] = spec["scaleTargetRef"]
    if "minReplicas" in spec:
        out_spec["minReplicas"] = spec["minReplicas"]
    if "maxReplicas" in spec:
        out_spec["maxReplicas"] = spec["maxReplicas"]
    others = []
    for metric in spec.get("metrics") or ():
        if _is_cpu_utilization(metric) and "targetCPUUtilizationPercentage" not in out_spec:
            value = metric["resource"]["target"].get("averageUtilization")
            if value is not None:
                out_spec["targetCPUUtilizationPercentage"] = value
                continue
        others.append(metric)
    if others:
        annotations[METRICS] = json.dumps(others, separators=(",", ":"))
    if spec.get("behavior"):
        annotations[BEHAVIOR] = json.dumps(spec["behavior"], separators=(",", ":"))
    status = obj.get("status")
    out_status: dict[str, Any] | None = None
    if isinstance(status, dict):
        out_status = {k: status[k] for k in ("observedGeneration", "lastScaleTime", "currentReplicas",
                                             "desiredReplicas") if k in status}
        out_status.setdefault("currentReplicas", 0)
        out_status.setdefault("desiredReplicas", 0)
        rest = []
        for metric in status.get("currentMetrics") or ():
            res = (metric or {}).get("resource") or {}
            cur = res.get("current") or {}
            if (metric.get("type") == "Resource" and res.get("name") == "cpu"
                    and "averageUtilization" in cur and "currentCPUUtilizationPercentage" not in out_status):
                out_status["currentCPUUtilizationPercentage"] = cur["averageUtilization"]
            else:
                rest.append(metric)
        if rest:
            annotations[CURRENT] = json.dumps(rest, separators=(",", ":"))
        if status.get("conditions"):
            annotations[CONDITIONS] = json.dumps(status["conditions"], separators=(",", ":"))
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out: Obj = {**obj, "apiVersion": "autoscaling/v1", "metadata": meta, "spec": out_spec}
    if out_status is not None:
        out["status"] = out_status
    return out


def v1_to_v2(obj: Obj) -> Obj:
    """A v1 object in v2's shape (what is stored): a new dict. Without a CPU target v2's
    default (80 % CPU) is filled by v2 defaulting, as upstream leaves it to the controller."""
    meta = dict(obj.get("metadata") or {})
    annotations = dict(meta.get("annotations") or {})
    spec = obj.get("spec") or {}
    out_spec: dict[str, Any] = {k: spec[k] for k in ("scaleTargetRef", "minReplicas", "maxReplicas")
                                if k in spec}
    metrics: list[Any] = []
    if spec.get("targetCPUUtilizationPercentage") is not None:
        metrics.append({"type": "Resource", "resource": {"name": "cpu", "target": {
            "type": "Utilization", "averageUtilization": spec["targetCPUUtilizationPercentage"]}}})
    extra = _load(annotations, METRICS)
    if isinstance(extra, list):
        metrics += [m for m in extra if not _is_cpu_utilization(m) or not metrics]
    if metrics:
        out_spec["metrics"] = metrics
    behavior = _load(annotations, BEHAVIOR)
    if isinstance(behavior, dict):
        out_spec["behavior"] = behavior
    current = _load(annotations, CURRENT)
    conditions = _load(annotations, CONDITIONS)
    status = obj.get("status")
    out_status: dict[str, Any] | None = None
    if isinstance(status, dict):
        out_status = {k: status[k] for k in ("observedGeneration", "lastScaleTime", "currentReplicas",
                                             "desiredReplicas") if k in status}
        cur_metrics: list[Any] = []
        if status.get("currentCPUUtilizationPercentage") is not None:
            cur_metrics.append({"type": "Resource", "resource": {"name": "cpu", "current": {
                "averageUtilization": status["currentCPUUtilizationPercentage"]}}})
        if isinstance(current, list):
            cur_metrics += current
        if cur_metrics:
            out_status["currentMetrics"] = cur_metrics
        if isinstance(conditions, list):
            out_status["conditions"] = conditions
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out: Obj = {**obj, "apiVersion": "autoscaling/v2", "metadata": meta, "spec": out_spec}
    if out_status is not None:
        out["status"] = out_status
    return out
