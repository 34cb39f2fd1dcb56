"""The HorizontalPodAutoscaler's arithmetic, as ``pkg/controller/podautoscaler`` computes it:
the replica calculator (utilization and average value, missing and unready pods, tolerance
0.1) and the behavior rules (stabilization windows, scale-up/scale-down policies, min/max).
Pure functions over plain data; the controller feeds them pods, metrics and its history."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vkube.api.meta import Obj, parse_time
from vkube.api.quantity import QuantityError, parse_quantity

__all__ = ["TOLERANCE", "MetricError", "PodTiming", "Sample", "group_pods", "Recommendation", "ScaleEvent", "container_requests",
           "limit_rate", "replicas_for_utilization", "replicas_for_average", "stabilize"]

TOLERANCE = 0.1
CPU_INITIALIZATION_PERIOD = dt.timedelta(minutes=5)
INITIAL_READINESS_DELAY = dt.timedelta(seconds=30)
_ZERO_TIME = dt.datetime.min.replace(tzinfo=dt.timezone.utc)


class MetricError(Exception):
    """The replica count cannot be computed; the message is what upstream puts in the
    ScalingActive condition."""


@dataclass(frozen=True, slots=True)
class Recommendation:
    replicas: int
    at: float  # seconds (the controller's monotonic clock)


@dataclass(frozen=True, slots=True)
class ScaleEvent:
    change: int  # replicas added (scale up) or removed (scale down), positive
    at: float


def _milli(value: Any) -> int:
    return parse_quantity(value).milli_value()


def container_requests(pod: Obj, resource: str, container: str = "") -> int:
    """The pod's request of ``resource`` in milli-units (``calculatePodRequests``)."""
    total = 0
    name = (pod.get("metadata") or {}).get("name", "")
    for c in (pod.get("spec") or {}).get("containers") or ():
        if container and c.get("name") != container:
            continue
        value = ((c.get("resources") or {}).get("requests") or {}).get(resource)
        if value is None:
            raise MetricError(f"missing request for {resource} in container {c.get('name')} of Pod {name}")
        try:
            total += _milli(value)
        except (QuantityError, TypeError, ValueError):
            raise MetricError(f"missing request for {resource} in container {c.get('name')} of Pod {name}") from None
    return total


def _ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or ())


@dataclass(frozen=True, slots=True)
class Sample:
    """When a pod's metric was taken and over which window (PodMetrics' ``timestamp``/``window``)."""

    timestamp: dt.datetime
    window: dt.timedelta


@dataclass(frozen=True, slots=True)
class PodTiming:
    """What ``groupPods`` needs to judge CPU samples of starting pods: the time now, each
    pod's sample, and kube-controller-manager's ``--horizontal-pod-autoscaler-cpu-initialization-period``
    (5m) and ``--horizontal-pod-autoscaler-initial-readiness-delay`` (30s)."""

    now: dt.datetime
    samples: dict[str, Sample] = field(default_factory=dict)
    cpu_initialization_period: dt.timedelta = CPU_INITIALIZATION_PERIOD
    initial_readiness_delay: dt.timedelta = INITIAL_READINESS_DELAY


def _cpu_unready(pod: Obj, sample: Sample | None, timing: PodTiming) -> bool:
    """Upstream's test: no Ready condition or start time is unready; within the initialization
    period a pod is unready while not Ready or until one metric window has passed since its
    last readiness change; after it, only a pod not Ready that never was (its readiness last
    changed within the initial delay of its start)."""
    status = pod.get("status") or {}
    condition = next((c for c in status.get("conditions") or () if c.get("type") == "Ready"), None)
    started = parse_time(status.get("startTime"))
    if condition is None or started is None:
        return True
    changed = parse_time(condition.get("lastTransitionTime")) or _ZERO_TIME  # Go's zero time when unset
    if started + timing.cpu_initialization_period > timing.now:
        taken = sample.timestamp if sample is not None else timing.now
        window = sample.window if sample is not None else dt.timedelta(0)
        return condition.get("status") == "False" or taken < changed + window
    return condition.get("status") == "False" and started + timing.initial_readiness_delay > changed


def group_pods(pods: list[Obj], metrics: dict[str, int], resource: str,
               timing: PodTiming | None = None) -> tuple[int, set[str], set[str], set[str]]:
    """``groupPods``: (ready count, unready, missing, ignored). Deleted and failed pods are
    ignored, pending ones unready; for CPU, ``_cpu_unready`` (without ``timing``: a pod not
    Ready)."""
    ready, unready, missing, ignored = 0, set(), set(), set()
    for pod in pods:
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        name = meta.get("name", "")
        if meta.get("deletionTimestamp") or status.get("phase") == "Failed":
            ignored.add(name)
            continue
        if status.get("phase") == "Pending":
            unready.add(name)
            continue
        if name not in metrics:
            missing.add(name)
            continue
        if resource == "cpu" and (_cpu_unready(pod, timing.samples.get(name), timing) if timing is not None
                                  else not _ready(pod)):
            unready.add(name)
            continue
        ready += 1
    return ready, unready, missing, ignored


def _within(ratio: float) -> bool:
    return abs(1.0 - ratio) <= TOLERANCE


def _adjust(current: int, ratio: float, new_ratio_of: Callable[[dict[str, int]], float],
            metrics: dict[str, int], ready: int, unready: set[str], missing: set[str],
            fill_missing_down: Callable[[str], int]) -> int:
    scale_up_with_unready = bool(unready) and ratio > 1.0
    if not scale_up_with_unready and not missing:
        if _within(ratio):
            return current
        return math.ceil(ratio * ready)
    metrics = dict(metrics)
    for name in missing:
        if ratio < 1.0:
            metrics[name] = fill_missing_down(name)
        elif ratio > 1.0:
            metrics[name] = 0
    if scale_up_with_unready:
        for name in unready:
            metrics[name] = 0
    new_ratio = new_ratio_of(metrics)
    if _within(new_ratio) or (ratio < 1.0 < new_ratio) or (ratio > 1.0 > new_ratio):
        return current
    replicas = math.ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return current
    return replicas


def replicas_for_utilization(current: int, target: int, pods: list[Obj], metrics: dict[str, int],
                             resource: str, container: str = "", timing: PodTiming | None = None
                             ) -> tuple[int, int, int]:
    """``GetResourceReplicas``: (replicas, utilization %, average raw usage in milli-units).
    ``metrics``: pod name -> usage in milli-units."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    ready, unready, missing, ignored = group_pods(pods, metrics, resource, timing)
    metrics = {k: v for k, v in metrics.items() if k not in ignored and k not in unready}
    if not metrics:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    requests = {(p.get("metadata") or {}).get("name", ""): container_requests(p, resource, container) for p in pods}

    def ratio_of(m: dict[str, int]) -> tuple[float, int, int]:
        usage = sum(m.values())
        req = sum(requests[name] for name in m if name in requests)
        if req == 0:
            raise MetricError(f"no metrics returned matched known pods")
        utilization = int(usage * 100 / req)
        return utilization / target, utilization, usage // len(m)

    ratio, utilization, raw = ratio_of(metrics)
    fallback = max(100, target)
    replicas = _adjust(current, ratio, lambda m: ratio_of(m)[0], metrics, ready, unready, missing,
                       lambda name: requests[name] * fallback // 100)
    return replicas, utilization, raw


def replicas_for_average(current: int, target_milli: int, pods: list[Obj], metrics: dict[str, int],
                         resource: str, timing: PodTiming | None = None) -> tuple[int, int]:
    """``GetRawResourceReplicas`` (``calcPlainMetricReplicas``): (replicas, average usage in
    milli-units) for an AverageValue target."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    ready, unready, missing, ignored = group_pods(pods, metrics, resource, timing)
    metrics = {k: v for k, v in metrics.items() if k not in ignored and k not in unready}
    if not metrics:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")

    def ratio_of(m: dict[str, int]) -> float:
        return (sum(m.values()) / len(m)) / target_milli

    ratio = ratio_of(metrics)
    replicas = _adjust(current, ratio, ratio_of, metrics, ready, unready, missing, lambda name: target_milli)
    return replicas, sum(metrics.values()) // len(metrics)


# --- behavior --------------------------------------------------------------------------------

UP_STABILIZED = ("ScaleUpStabilized",
                 "recent recommendations were lower than current one, applying the lowest recent recommendation")
DOWN_STABILIZED = ("ScaleDownStabilized",
                   "recent recommendations were higher than current one, applying the highest recent recommendation")


def stabilize(history: list[Recommendation], current: int, desired: int, behavior: Obj,
              now: float) -> tuple[int, tuple[str, str], list[Recommendation]]:
    """``stabilizeRecommendationWithBehaviors``: (recommendation, condition reason/message,
    the new history including this recommendation, obsolete ones dropped)."""
    up_window = int(behavior["scaleUp"].get("stabilizationWindowSeconds") or 0)
    down_window = int(behavior["scaleDown"].get("stabilizationWindowSeconds") or 0)
    if desired >= current:
        window, better, reason = up_window, min, UP_STABILIZED
    else:
        window, better, reason = down_window, max, DOWN_STABILIZED
    recommendation = desired
    for rec in history:
        if rec.at > now - window:
            recommendation = better(rec.replicas, recommendation)
    keep_after = now - max(up_window, down_window)
    new_history = [r for r in history if r.at >= keep_after] + [Recommendation(desired, now)]
    return recommendation, reason, new_history


def _changed(events: list[ScaleEvent], period: int, now: float) -> int:
    return sum(e.change for e in events if e.at > now - period)


def _up_limit(current: int, ups: list[ScaleEvent], downs: list[ScaleEvent], rules: Obj, now: float) -> int:
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    pick, result = (min, math.inf) if select == "Min" else (max, -math.inf)
    for policy in rules.get("policies") or ():
        period = int(policy.get("periodSeconds") or 15)
        start = current - _changed(ups, period, now) + _changed(downs, period, now)
        value = int(policy.get("value") or 0)
        proposed = start + value if policy.get("type") == "Pods" else math.ceil(start * (1 + value / 100))
        result = pick(result, proposed)
    return current if result in (math.inf, -math.inf) else int(result)


def _down_limit(current: int, ups: list[ScaleEvent], downs: list[ScaleEvent], rules: Obj, now: float) -> int:
    select = rules.get("selectPolicy") or "Max"
    if select == "Disabled":
        return current
    pick, result = (max, -math.inf) if select == "Min" else (min, math.inf)
    for policy in rules.get("policies") or ():
        period = int(policy.get("periodSeconds") or 15)
        start = current - _changed(ups, period, now) + _changed(downs, period, now)
        value = int(policy.get("value") or 0)
        proposed = start - value if policy.get("type") == "Pods" else int(start * (1 - value / 100))
        result = pick(result, proposed)
    return current if result in (math.inf, -math.inf) else int(result)


def limit_rate(current: int, desired: int, *, low: int, high: int, behavior: Obj,
               ups: list[ScaleEvent], downs: list[ScaleEvent], now: float) -> tuple[int, str, str]:
    """``convertDesiredReplicasWithBehaviorRate``: (replicas, ScalingLimited reason, message)."""
    if desired > current:
        limit = max(_up_limit(current, ups, downs, behavior["scaleUp"], now), current)
        if high > limit:
            allowed, reason = limit, ("ScaleUpLimit", "the desired replica count is increasing faster than the maximum scale rate")
        else:
            allowed, reason = high, ("TooManyReplicas", "the desired replica count is more than the maximum replica count")
        if desired > allowed:
            return allowed, *reason
    elif desired < current:
        limit = min(_down_limit(current, ups, downs, behavior["scaleDown"], now), current)
        if low < limit:
            allowed, reason = limit, ("ScaleDownLimit", "the desired replica count is decreasing faster than the maximum scale rate")
        else:
            allowed, reason = low, ("TooFewReplicas", "the desired replica count is less than the minimum replica count")
        if desired < allowed:
            return allowed, *reason
    return desired, "DesiredWithinRange", "the desired count is within the acceptable range"
