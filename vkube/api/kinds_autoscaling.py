"""``autoscaling/v2`` and ``autoscaling/v1`` HorizontalPodAutoscaler: defaulting and validation
as ``pkg/apis/autoscaling/{v2,validation}``, the printer columns, and v1 served by conversion
from the stored v2 object (``hpaconvert``)."""

from __future__ import annotations

from typing import Any

from vkube.api.hpaconvert import v1_to_v2, v2_to_v1
from vkube.api.kinds import Column
from vkube.api.meta import Obj
from vkube.api.quantity import QuantityError, parse_quantity
from vkube.api.strategy import Strategy
from vkube.api.tables import age_column
from vkube.api.validation import (Causes, invalid_value, not_supported, path_segment_name, required,
                                  validate_object_meta, validate_object_meta_update)

__all__ = ["STRATEGIES", "VERSIONED", "default_behavior", "SCALE_UP_DEFAULT", "SCALE_DOWN_DEFAULT"]

METRIC_TYPES = ("ContainerResource", "External", "Object", "Pods", "Resource")
TARGET_TYPES = ("AverageValue", "Utilization", "Value")
POLICY_TYPES = ("Percent", "Pods")
SELECT_POLICIES = ("Disabled", "Max", "Min")
MAX_WINDOW = 3600
MAX_PERIOD = 1800

#: upstream's GenerateHPAScaleUpRules / GenerateHPAScaleDownRules defaults
SCALE_UP_DEFAULT = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
    {"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]}
SCALE_DOWN_DEFAULT = {"stabilizationWindowSeconds": 300, "selectPolicy": "Max", "policies": [
    {"type": "Percent", "value": 100, "periodSeconds": 15}]}


def _rules(given: Any, default: dict[str, Any]) -> dict[str, Any]:
    given = given if isinstance(given, dict) else {}
    out = dict(given)
    for key, value in default.items():
        if out.get(key) is None:
            out[key] = [dict(p) for p in value] if isinstance(value, list) else value
    return out


def default_behavior(behavior: Any) -> dict[str, Any]:
    """A behavior with every unset field filled with the defaults (also what the controller
    uses when ``spec.behavior`` is absent)."""
    behavior = behavior if isinstance(behavior, dict) else {}
    return {**behavior, "scaleUp": _rules(behavior.get("scaleUp"), SCALE_UP_DEFAULT),
            "scaleDown": _rules(behavior.get("scaleDown"), SCALE_DOWN_DEFAULT)}


def _int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_quantity(value: Any, path: str) -> Causes:
    try:
        q = parse_quantity(value)
    except (QuantityError, TypeError, ValueError):
        return [invalid_value(path, value, "must be a quantity")]
    return [] if q.value > 0 else [invalid_value(path, value, "must be positive")]


def _validate_target(target: Any, path: str, *, utilization_ok: bool) -> Causes:
    if not isinstance(target, dict):
        return [required(path, "must specify a metric target")]
    typ = target.get("type")
    if typ not in TARGET_TYPES:
        return [not_supported(f"{path}.type", typ, TARGET_TYPES)]
    causes: Causes = []
    if typ == "Utilization":
        value = target.get("averageUtilization")
        if not utilization_ok:
            causes.append(not_supported(f"{path}.type", typ, ("AverageValue", "Value")))
        elif value is None:
            causes.append(required(f"{path}.averageUtilization", "must set either a target raw value or a target utilization"))
        elif not _int(value) or value <= 0:
            causes.append(invalid_value(f"{path}.averageUtilization", value, "must be greater than 0"))
    elif typ == "AverageValue":
        if target.get("averageValue") is None:
            causes.append(required(f"{path}.averageValue", "must set either a target raw value or a target utilization"))
        else:
            causes += _positive_quantity(target["averageValue"], f"{path}.averageValue")
    else:
        if target.get("value") is None:
            causes.append(required(f"{path}.value", "must set either a target value or averageValue"))
        else:
            causes += _positive_quantity(target["value"], f"{path}.value")
    return causes


def _validate_metric(metric: Any, path: str) -> Causes:
    if not isinstance(metric, dict):
        return [invalid_value(path, metric, "must be an object")]
    typ = metric.get("type")
    if typ not in METRIC_TYPES:
        return [not_supported(f"{path}.type", typ, METRIC_TYPES)]
    field = {"ContainerResource": "containerResource", "External": "external", "Object": "object",
             "Pods": "pods", "Resource": "resource"}[typ]
    body = metric.get(field)
    if not isinstance(body, dict):
        return [required(f"{path}.{field}", f"must populate information for the given metric source (only allowed when type is '{typ}')")]
    causes: Causes = []
    p = f"{path}.{field}"
    if typ in ("Resource", "ContainerResource"):
        if not body.get("name"):
            causes.append(required(f"{p}.name", "must specify a resource name"))
        if typ == "ContainerResource" and not body.get("container"):
            causes.append(required(f"{p}.container", "must specify a container"))
        causes += _validate_target(body.get("target"), f"{p}.target", utilization_ok=True)
    else:
        if not (body.get("metric") or {}).get("name"):
            causes.append(required(f"{p}.metric.name", "must specify a metric name"))
        causes += _validate_target(body.get("target"), f"{p}.target", utilization_ok=False)
        if typ == "Object" and not (body.get("describedObject") or {}).get("kind"):
            causes.append(required(f"{p}.describedObject.kind"))
    return causes


def _validate_rules(rules: Any, path: str) -> Causes:
    if rules is None:
        return []
    if not isinstance(rules, dict):
        return [invalid_value(path, rules, "must be an object")]
    causes: Causes = []
    window = rules.get("stabilizationWindowSeconds")
    if window is not None:
        if not _int(window) or window < 0:
            causes.append(invalid_value(f"{path}.stabilizationWindowSeconds", window, "must be greater than or equal to zero"))
        elif window > MAX_WINDOW:
            causes.append(invalid_value(f"{path}.stabilizationWindowSeconds", window,
                                        f"must be less than or equal to {MAX_WINDOW}"))
    select = rules.get("selectPolicy")
    if select is not None and select not in SELECT_POLICIES:
        causes.append(not_supported(f"{path}.selectPolicy", select, SELECT_POLICIES))
    policies = rules.get("policies")
    if policies is not None and not policies and select != "Disabled":
        causes.append(required(f"{path}.policies", "must specify at least one Policy"))
    for i, pol in enumerate(policies or ()):
        pp = f"{path}.policies[{i}]"
        pol = pol if isinstance(pol, dict) else {}
        if pol.get("type") not in POLICY_TYPES:
            causes.append(not_supported(f"{pp}.type", pol.get("type"), POLICY_TYPES))
        value, period = pol.get("value"), pol.get("periodSeconds")
        if not _int(value) or value <= 0:
            causes.append(invalid_value(f"{pp}.value", value, "must be greater than zero"))
        if not _int(period) or period <= 0:
            causes.append(invalid_value(f"{pp}.periodSeconds", period, "must be greater than zero"))
        elif period > MAX_PERIOD:
            causes.append(invalid_value(f"{pp}.periodSeconds", period, f"must be less than or equal to {MAX_PERIOD}"))
    return causes


def validate_hpa_v2(obj: Obj) -> Causes:
    """``ValidateHorizontalPodAutoscaler`` on the v2 shape (v1 objects are converted first)."""
    causes = validate_object_meta(obj, namespaced=True, name_validator=path_segment_name)
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        return causes + [required("spec")]
    ref = spec.get("scaleTargetRef")
    if not isinstance(ref, dict):
        causes.append(required("spec.scaleTargetRef"))
    else:
        if not ref.get("kind"):
            causes.append(required("spec.scaleTargetRef.kind"))
        else:
            causes += [invalid_value("spec.scaleTargetRef.kind", ref["kind"], m) for m in path_segment_name(str(ref["kind"]))]
        if not ref.get("name"):
            causes.append(required("spec.scaleTargetRef.name"))
        else:
            causes += [invalid_value("spec.scaleTargetRef.name", ref["name"], m) for m in path_segment_name(str(ref["name"]))]
    low, high = spec.get("minReplicas"), spec.get("maxReplicas")
    if low is not None and (not _int(low) or low < 1):
        causes.append(invalid_value("spec.minReplicas", low, "must be greater than or equal to 1"))
    if not _int(high) or high < 1:
        causes.append(invalid_value("spec.maxReplicas", high, "must be greater than 0"))
    elif _int(low) and high < low:
        causes.append(invalid_value("spec.maxReplicas", high, "must be greater than or equal to `minReplicas`"))
    for i, metric in enumerate(spec.get("metrics") or ()):
        causes += _validate_metric(metric, f"spec.metrics[{i}]")
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        causes += _validate_rules(behavior.get("scaleUp"), "spec.behavior.scaleUp")
        causes += _validate_rules(behavior.get("scaleDown"), "spec.behavior.scaleDown")
    return causes


def _reference(o: Obj) -> str:
    ref = (o.get("spec") or {}).get("scaleTargetRef") or {}
    return f"{ref.get('kind', '')}/{ref.get('name', '')}"


def _pct(value: Any) -> str:
    return "<unknown>" if value is None else f"{value}%"


def _metric_text(spec: Obj, current: Obj | None) -> str:
    typ = spec.get("type")
    field = {"ContainerResource": "containerResource", "External": "external", "Object": "object",
             "Pods": "pods", "Resource": "resource"}.get(str(typ), "")
    body, cur_body = spec.get(field) or {}, (current or {}).get(field) or {}
    target, cur = body.get("target") or {}, cur_body.get("current") or {}
    name = body.get("name") or (body.get("metric") or {}).get("name") or ""
    if target.get("type") == "Utilization":
        text = f"{_pct(cur.get('averageUtilization'))}/{_pct(target.get('averageUtilization'))}"
    elif target.get("type") == "AverageValue":
        text = f"{cur.get('averageValue', '<unknown>')}/{target.get('averageValue')} (avg)"
    else:
        text = f"{cur.get('value', '<unknown>')}/{target.get('value')}"
    return f"{name}: {text}" if typ in ("Resource", "ContainerResource") else text


def _targets(o: Obj) -> str:
    """kubectl's ``formatHPAMetrics``: each metric as current/target, at most two shown."""
    specs = (o.get("spec") or {}).get("metrics") or []
    if not specs:
        return "<none>"
    currents = (o.get("status") or {}).get("currentMetrics") or []
    parts = [_metric_text(m, currents[i] if i < len(currents) else None) for i, m in enumerate(specs[:2])]
    more = f" + {len(specs) - 2} more..." if len(specs) > 2 else ""
    return ", ".join(parts) + more


HPA_COLUMNS = (
    Column("Reference", _reference, description="Reference to the scaled object"),
    Column("Targets", _targets, description="Current and target metric values"),
    Column("MinPods", lambda o: (o.get("spec") or {}).get("minReplicas", "<unset>"), description="Lower limit"),
    Column("MaxPods", lambda o: (o.get("spec") or {}).get("maxReplicas", 0), type="integer", description="Upper limit"),
    Column("Replicas", lambda o: (o.get("status") or {}).get("currentReplicas", 0), type="integer",
           description="Current replicas"),
    age_column(),
)


class HPAStrategyV2(Strategy):
    """The stored version. Status changes only through ``/status``."""

    columns = HPA_COLUMNS

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        if spec.get("minReplicas") is None:
            spec["minReplicas"] = 1
        if not spec.get("metrics"):
            spec["metrics"] = [{"type": "Resource", "resource": {"name": "cpu", "target": {
                "type": "Utilization", "averageUtilization": 80}}}]
        if isinstance(spec.get("behavior"), dict):
            spec["behavior"] = default_behavior(spec["behavior"])

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)

    def validate(self, obj: Obj) -> Causes:
        return validate_hpa_v2(obj)

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


class HPAStrategyV1(HPAStrategyV2):
    """Served by conversion: stored as v2, read back as v1."""

    def from_storage(self, obj: Obj) -> Obj:
        return v2_to_v1(obj)

    def to_storage(self, obj: Obj) -> Obj:
        return v1_to_v2(obj) if obj.get("apiVersion") != "autoscaling/v2" else obj

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict) and spec.get("minReplicas") is None:
            spec["minReplicas"] = 1

    def validate(self, obj: Obj) -> Causes:
        causes = validate_hpa_v2(v1_to_v2(obj))
        spec = obj.get("spec") or {}
        pct = spec.get("targetCPUUtilizationPercentage") if isinstance(spec, dict) else None
        if pct is not None and (not _int(pct) or pct < 1):
            causes.append(invalid_value("spec.targetCPUUtilizationPercentage", pct, "must be greater than 0"))
        return causes


STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    ("autoscaling", "HorizontalPodAutoscaler"): HPAStrategyV2,
}
#: strategies for one version only (the served-by-conversion versions)
VERSIONED: dict[tuple[str, str, str], type[Strategy]] = {
    ("autoscaling", "v1", "HorizontalPodAutoscaler"): HPAStrategyV1,
}
