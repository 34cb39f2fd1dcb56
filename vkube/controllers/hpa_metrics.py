"""Pods, Object and External metrics for the HPA controller: read from the custom and external
metrics APIs (``custom.metrics.k8s.io``, ``external.metrics.k8s.io``) that an adapter serves
through an APIService (e.g. prometheus-adapter), and turned into replica counts as
``replica_calculator.go`` does (``GetMetricReplicas``, ``GetObjectMetricReplicas``,
``GetObjectPerPodMetricReplicas``, ``GetExternalMetricReplicas``,
``GetExternalPerPodMetricReplicas``)."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.api.quantity import QuantityError, format_quantity, parse_quantity
from vkube.api.selectors import selector_to_string
from vkube.controllers.hpa_replicas import TOLERANCE, MetricError, group_pods, replicas_for_average

__all__ = ["external_metric", "object_metric", "pods_metric"]

CUSTOM = "custom.metrics.k8s.io"
EXTERNAL = "external.metrics.k8s.io"
Request = Callable[..., Awaitable[Any]]


def _milli(value: Any) -> int:
    try:
        return parse_quantity(value).milli_value()
    except (QuantityError, TypeError, ValueError):
        raise MetricError(f"the metrics API returned an invalid quantity {value!r}") from None


def _quantity(milli: int) -> str:
    from fractions import Fraction

    return format_quantity(Fraction(milli, 1000))


async def _custom(request: Request, path: str, params: dict[str, str], what: str) -> Obj:
    """GET from the custom metrics API, v1beta2 first, then v1beta1 (as upstream's client)."""
    last: errors.StatusError | None = None
    for version in ("v1beta2", "v1beta1"):
        try:
            return await request("GET", f"/apis/{CUSTOM}/{version}{path}", params=params)
        except (errors.NotFound, errors.ServiceUnavailable) as exc:
            last = exc
    assert last is not None
    raise MetricError(f"unable to get metric {what}: unable to fetch metrics from custom metrics API: {last.message}")


def _metric_selector(metric: Obj) -> dict[str, str]:
    sel = selector_to_string(metric.get("selector"))
    return {"metricLabelSelector": sel} if sel else {}


def _ready_count(pods: list[Obj]) -> int:
    ready, _, _, _ = group_pods(pods, {((p.get("metadata") or {}).get("name", "")): 0 for p in pods}, "")
    return ready


def _usage_ratio_replicas(current: int, ratio: float, pods: list[Obj]) -> int:
    """``getUsageRatioReplicaCount``."""
    if current == 0:
        return math.ceil(ratio)
    if abs(1.0 - ratio) <= TOLERANCE:
        return current
    ready = _ready_count(pods)
    if ready == 0:
        raise MetricError("unable to calculate ready pods: no ready pods")
    return math.ceil(ratio * ready)


async def pods_metric(request: Request, ns: str, selector: str, body: Obj, current: int,
                      pods: list[Obj]) -> tuple[int, str, Obj]:
    metric = body.get("metric") or {}
    name = metric.get("name", "")
    target = body.get("target") or {}
    doc = await _custom(request, f"/namespaces/{ns}/pods/*/{name}",
                        {"labelSelector": selector, **_metric_selector(metric)}, name)
    values = {(i.get("describedObject") or {}).get("name", ""): _milli(i.get("value"))
              for i in doc.get("items") or ()}
    if not values:
        raise MetricError(f"unable to get metric {name}: no metrics returned from custom metrics API")
    replicas, average = replicas_for_average(current, _milli(target.get("averageValue")), pods, values, "")
    status = {"metric": metric, "current": {"averageValue": _quantity(average)}}
    return replicas, f"pods metric {name}", {"type": "Pods", "pods": status}


async def object_metric(request: Request, resource_of: Callable[[str, str], Awaitable[Any]], ns: str, body: Obj,
                        current: int, status_replicas: int, pods: list[Obj]) -> tuple[int, str, Obj]:
    metric = body.get("metric") or {}
    name = metric.get("name", "")
    target = body.get("target") or {}
    described = body.get("describedObject") or {}
    res = await resource_of(described.get("apiVersion") or "v1", described.get("kind", ""))
    doc = await _custom(request, f"/namespaces/{ns}/{res.plural}/{described.get('name', '')}/{name}",
                        _metric_selector(metric), name)
    item = (doc.get("items") or [None])[0] if "items" in doc else doc
    if not item:
        raise MetricError(f"unable to get metric {name}: no metrics returned from custom metrics API")
    usage = _milli(item.get("value"))
    if target.get("type") == "AverageValue":  # GetObjectPerPodMetricReplicas
        per_pod = _milli(target.get("averageValue"))
        replicas = status_replicas
        if abs(1.0 - usage / (per_pod * max(status_replicas, 1))) > TOLERANCE:
            replicas = math.ceil(usage / per_pod)
        cur = {"averageValue": _quantity(math.ceil(usage / max(replicas, 1)))}
    else:
        replicas = _usage_ratio_replicas(current, usage / _milli(target.get("value")), pods)
        cur = {"value": _quantity(usage)}
    status = {"metric": metric, "describedObject": described, "current": cur}
    return replicas, f"{described.get('kind', '')} metric {name}", {"type": "Object", "object": status}


async def external_metric(request: Request, ns: str, body: Obj, current: int, status_replicas: int,
                          pods: list[Obj]) -> tuple[int, str, Obj]:
    metric = body.get("metric") or {}
    name = metric.get("name", "")
    target = body.get("target") or {}
    sel = selector_to_string(metric.get("selector"))
    try:
        doc = await request("GET", f"/apis/{EXTERNAL}/v1beta1/namespaces/{ns}/{name}",
                            params={"labelSelector": sel} if sel else None)
    except (errors.NotFound, errors.ServiceUnavailable) as exc:
        raise MetricError(f"unable to get external metric {ns}/{name}/{metric.get('selector')}: unable to fetch "
                          f"metrics from external metrics API: {exc.message}") from None
    items = doc.get("items") or []
    if not items:
        raise MetricError(f"unable to get external metric {ns}/{name}/{metric.get('selector')}: no metrics returned "
                          f"from external metrics API")
    usage = sum(_milli(i.get("value")) for i in items)
    if target.get("type") == "AverageValue":  # GetExternalPerPodMetricReplicas
        per_pod = _milli(target.get("averageValue"))
        replicas = status_replicas
        if abs(1.0 - usage / (per_pod * max(status_replicas, 1))) > TOLERANCE:
            replicas = math.ceil(usage / per_pod)
        cur = {"averageValue": _quantity(math.ceil(usage / max(replicas, 1)))}
    else:
        replicas = _usage_ratio_replicas(current, usage / _milli(target.get("value")), pods)
        cur = {"value": _quantity(usage)}
    status = {"metric": metric, "current": cur}
    return replicas, f"external metric {name}", {"type": "External", "external": status}
