"""The horizontal pod autoscaler controller (``pkg/controller/podautoscaler/horizontal.go``).

Every ``SYNC_PERIOD`` seconds (kube-controller-manager's 15 s default) and on every change of
an HPA: read the target's ``/scale`` subresource (any kind that has one, CRs included), read
``metrics.k8s.io`` for the selected pods (Resource, ContainerResource) or the custom and
external metrics APIs an adapter serves through an APIService (Pods, Object, External:
``hpa_metrics``), compute the desired count per metric (``hpa_replicas``), take the largest, apply the behavior (stabilization windows and rate
policies; an HPA without ``spec.behavior`` gets the v2 defaults, 300 s down-stabilization),
clamp to min/max, write ``/scale`` and the HPA's status with upstream's conditions and
events. Recommendations and scale events are kept in memory, as upstream keeps them.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import time
from vkube.api import errors
from vkube.api.kinds_autoscaling import default_behavior
from vkube.api.cron import CronError, parse_duration
from vkube.api.meta import Obj, parse_time, rfc3339, split_key
from vkube.api.quantity import format_quantity, parse_quantity
from vkube.client.client import Resource
from vkube.client.resources import PODS
from vkube.controllers.hpa_metrics import external_metric, object_metric, pods_metric
from vkube.controllers.hpa_replicas import (CPU_INITIALIZATION_PERIOD, INITIAL_READINESS_DELAY, MetricError, PodTiming,
                                            Recommendation, Sample, ScaleEvent, limit_rate, replicas_for_average,
                                            replicas_for_utilization, stabilize)
from vkube.controllers.runtime import Controller
from vkube.controllers.vanished import quiet_when_vanished

__all__ = ["HorizontalPodAutoscalerController", "HPAS"]

log = logging.getLogger(__name__)
HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", True, "HorizontalPodAutoscaler")
SYNC_PERIOD = 15.0
_DISCOVERY_TTL = 30.0


class HorizontalPodAutoscalerController(Controller):
    name = "horizontal-pod-autoscaler"

    def setup(self) -> None:
        self.hpas = self.mgr.informer(HPAS)
        self.pods = self.mgr.informer(PODS)
        self.hpas.add_handler(self._on_hpa)
        opts = self.mgr.options.get(self.name) or {}
        self.sync_period = float(opts.get("sync_period", SYNC_PERIOD))
        # kube-controller-manager's --horizontal-pod-autoscaler-cpu-initialization-period and
        # --horizontal-pod-autoscaler-initial-readiness-delay (seconds)
        self.cpu_initialization_period = dt.timedelta(seconds=float(opts.get(
            "cpu_initialization_period", CPU_INITIALIZATION_PERIOD.total_seconds())))
        self.initial_readiness_delay = dt.timedelta(seconds=float(opts.get(
            "initial_readiness_delay", INITIAL_READINESS_DELAY.total_seconds())))
        self.monotonic = time.monotonic
        self._recommendations: dict[str, list[Recommendation]] = {}
        self._ups: dict[str, list[ScaleEvent]] = {}
        self._downs: dict[str, list[ScaleEvent]] = {}
        self._resources: dict[str, tuple[float, dict[str, Resource]]] = {}

    def _on_hpa(self, typ: str, obj: Obj, old: Obj | None) -> None:
        if typ == "DELETED":
            key = f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"
            for history in (self._recommendations, self._ups, self._downs):
                history.pop(key, None)
            return
        if old is not None and old.get("spec") == obj.get("spec"):
            return  # our own status write
        self.enqueue(obj)

    async def _resource_for(self, api_version: str, kind: str) -> Resource:
        """The REST resource of ``kind`` in ``api_version``, from discovery (cached briefly, so
        a CRD created later is found)."""
        now = self.monotonic()
        cached = self._resources.get(api_version)
        if cached is None or now - cached[0] > _DISCOVERY_TTL or kind not in cached[1]:
            group, _, version = api_version.rpartition("/")
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                doc = await self.client.request("GET", path)
            except errors.NotFound:
                doc = {}
            kinds = {r["kind"]: Resource(group, version, r["name"], bool(r.get("namespaced")), r["kind"])
                     for r in doc.get("resources") or () if "/" not in r.get("name", "")}
            self._resources[api_version] = cached = (now, kinds)
        res = cached[1].get(kind)
        if res is None:
            raise errors.NotFound(f'no matches for kind "{kind}" in group "{api_version.rpartition("/")[0]}"')
        return res

    @quiet_when_vanished("hpas")
    async def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        cached = self.hpas.get(name, ns)
        if cached is None or cached["metadata"].get("deletionTimestamp"):
            return None
        hpa = copy.deepcopy(cached)
        try:
            await self._reconcile(key, hpa)
        except errors.StatusError as exc:
            if isinstance(exc, (errors.NotFound, errors.Conflict)) and await self._gone(ns, name):
                return None
            log.debug("hpa %s: %s", key, exc.message)
        return self.sync_period

    async def _gone(self, ns: str | None, name: str) -> bool:
        try:
            await self.client.get(HPAS, name, namespace=ns)
        except errors.NotFound:
            return True
        return False

    async def _reconcile(self, key: str, hpa: Obj) -> None:
        ns = hpa["metadata"]["namespace"]
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        reference = f"{ref.get('kind')}/{ref.get('name')}"
        status_before = copy.deepcopy(hpa.get("status") or {})
        conditions = list((hpa.get("status") or {}).get("conditions") or [])
        try:
            res = await self._resource_for(ref.get("apiVersion") or "v1", ref.get("kind", ""))
            scale = await self.client.get(res, ref.get("name", ""), namespace=ns, subresource="scale")
        except errors.StatusError as exc:
            message = f"the HPA controller was unable to get the target's current scale: {exc.message}"
            self.recorder.event(hpa, "Warning", "FailedGetScale", exc.message)
            self._condition(conditions, "AbleToScale", "False", "FailedGetScale", message)
            await self._write_status(hpa, status_before, conditions, current=(status_before.get("currentReplicas") or 0),
                                     desired=(status_before.get("desiredReplicas") or 0), metrics=None, rescaled=False)
            return
        self._condition(conditions, "AbleToScale", "True", "SucceededGetScale",
                        "the HPA controller was able to get the target's current scale")
        current = int((scale.get("spec") or {}).get("replicas") or 0)
        low, high = int(spec.get("minReplicas") or 1), int(spec.get("maxReplicas") or 1)
        behavior = default_behavior(spec.get("behavior"))
        metric_statuses: list[Obj] | None = None
        reason = ""
        if current == 0 and low != 0:
            desired = 0
            self._condition(conditions, "ScalingActive", "False", "ScalingDisabled",
                            "scaling is disabled since the replica count of the target is zero")
        elif current > high:
            desired, reason = high, "Current number of replicas above Spec.MaxReplicas"
        elif current < low:
            desired, reason = low, "Current number of replicas below Spec.MinReplicas"
        else:
            selector = (scale.get("status") or {}).get("selector") or ""
            try:
                status_replicas = int((scale.get("status") or {}).get("replicas") or 0)
                proposal, metric_name, metric_statuses = await self._compute(hpa, ns, selector, current,
                                                                             status_replicas)
            except MetricError as exc:
                message = f"the HPA was unable to compute the replica count: {exc}"
                why = getattr(exc, "reason", "FailedGetResourceMetric")
                self.recorder.event(hpa, "Warning", why, str(exc))
                self._condition(conditions, "ScalingActive", "False", why, message)
                await self._write_status(hpa, status_before, conditions, current=current,
                                         desired=status_before.get("desiredReplicas") or 0,
                                         metrics=getattr(exc, "statuses", None), rescaled=False)
                return
            self._condition(conditions, "ScalingActive", "True", "ValidMetricFound",
                            f"the HPA was able to successfully calculate a replica count from {metric_name}")
            now = self.monotonic()
            history = self._recommendations.get(key)
            window = int(behavior["scaleDown"].get("stabilizationWindowSeconds") or 0)
            if history is None and window > 0:  # maybeInitScaleDownStabilizationWindow
                history = [Recommendation(current, now)]
            stabilized, why, self._recommendations[key] = stabilize(history or [], current, proposal, behavior, now)
            if stabilized != proposal:
                self._condition(conditions, "AbleToScale", "True", *why)
            else:
                self._condition(conditions, "AbleToScale", "True", "ReadyForNewScale",
                                "recommended size matches current size")
            desired, lim_reason, lim_message = limit_rate(
                current, stabilized, low=low, high=high, behavior=behavior,
                ups=self._ups.get(key, []), downs=self._downs.get(key, []), now=now)
            self._condition(conditions, "ScalingLimited", "True" if desired != stabilized else "False",
                            lim_reason, lim_message)
            if desired > current:
                reason = f"{metric_name} above target"
            elif desired < current:
                reason = "All metrics below target"
        rescaled = desired != current
        if rescaled:
            try:
                scale = {**scale, "spec": {**(scale.get("spec") or {}), "replicas": desired}}
                await self.client.update(res, scale, subresource="scale")
            except errors.StatusError as exc:
                self._condition(conditions, "AbleToScale", "False", "FailedUpdateScale",
                                f"the HPA controller was unable to update the target scale: {exc.message}")
                self.recorder.event(hpa, "Warning", "FailedRescale",
                                    f"New size: {desired}; reason: {reason}; error: {exc.message}")
                await self._write_status(hpa, status_before, conditions, current=current, desired=desired,
                                         metrics=metric_statuses, rescaled=False)
                return
            self._condition(conditions, "AbleToScale", "True", "SucceededRescale",
                            f"the HPA controller was able to update the target scale to {desired}")
            self.recorder.event(hpa, "Normal", "SuccessfulRescale", f"New size: {desired}; reason: {reason}")
            now = self.monotonic()
            events = self._ups if desired > current else self._downs
            keep = max(int(p.get("periodSeconds") or 15) for rules in (behavior["scaleUp"], behavior["scaleDown"])
                       for p in rules.get("policies") or [{}])
            events[key] = [e for e in events.get(key, []) if e.at > now - keep] + [ScaleEvent(abs(desired - current), now)]
            log.info("hpa %s: %s %d -> %d (%s)", key, reference, current, desired, reason)
        await self._write_status(hpa, status_before, conditions, current=current, desired=desired,
                                 metrics=metric_statuses, rescaled=rescaled)

    async def _compute(self, hpa: Obj, ns: str, selector: str, current: int,
                       status_replicas: int) -> tuple[int, str, list[Obj]]:
        """``computeReplicasForMetrics``: the largest proposal over the metrics, its metric's
        name, and the statuses for ``status.currentMetrics``."""
        metrics = (hpa.get("spec") or {}).get("metrics") or [
            {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]
        if not selector:
            err = MetricError("selector is required")
            err.reason = "SelectorRequired"  # type: ignore[attr-defined]
            raise err
        pods = self.pods.list(ns, selector)
        best, best_name, statuses = -1, "", []
        failures: list[MetricError] = []
        usage: dict[str, dict[str, dict[str, int]]] | None = None
        timing = PodTiming(self.mgr.clock(), {}, self.cpu_initialization_period, self.initial_readiness_delay)
        for metric in metrics:
            typ = metric.get("type")
            if typ in ("Pods", "Object", "External"):
                try:
                    replicas, name, entry = await self._custom_metric(typ, metric, ns, selector, current,
                                                                      status_replicas, pods)
                except MetricError as exc:
                    exc.reason = f"FailedGet{typ}Metric"  # type: ignore[attr-defined]
                    failures.append(exc)
                    continue
                statuses.append(entry)
                if replicas > best:
                    best, best_name = replicas, name
                continue
            if typ not in ("Resource", "ContainerResource"):
                failures.append(MetricError(f"metric type {typ} is not supported"))
                continue
            field = "resource" if typ == "Resource" else "containerResource"
            body = metric.get(field) or {}
            resource, container = body.get("name", ""), body.get("container", "")
            target = body.get("target") or {}
            try:
                if usage is None:
                    usage = await self._pod_usage(ns, selector, timing.samples)
                per_pod = {pod: sum(v.get(resource, 0) for c, v in cs.items() if not container or c == container)
                           for pod, cs in usage.items()
                           if not container or container in cs}
                if not per_pod:
                    raise MetricError(f"unable to get metrics for resource {resource}: no metrics returned from resource metrics API")
                kind_text = "container resource" if typ == "ContainerResource" else "resource"
                if target.get("type") == "Utilization":
                    replicas, utilization, raw = replicas_for_utilization(
                        current, int(target.get("averageUtilization") or 80), pods, per_pod, resource, container,
                        timing)
                    name = f"{resource} {kind_text} utilization (percentage of request)"
                    cur = {"averageUtilization": utilization, "averageValue": _quantity(raw, resource)}
                else:
                    target_milli = parse_quantity(target.get("averageValue") or target.get("value") or 0).milli_value()
                    replicas, raw = replicas_for_average(current, target_milli, pods, per_pod, resource, timing)
                    name = f"{resource} {kind_text}"
                    cur = {"averageValue": _quantity(raw, resource)}
            except MetricError as exc:
                failures.append(exc)
                continue
            entry: Obj = {"name": resource, "current": cur}
            if container:
                entry["container"] = container
            statuses.append({"type": typ, field: entry})
            if replicas > best:
                best, best_name = replicas, name
        if failures and (best < 0 or best < current):
            failures[-1].statuses = statuses  # type: ignore[attr-defined]
            raise failures[-1]
        return best, best_name, statuses

    async def _custom_metric(self, typ: str, metric: Obj, ns: str, selector: str, current: int,
                             status_replicas: int, pods: list[Obj]) -> tuple[int, str, Obj]:
        if typ == "Pods":
            return await pods_metric(self.client.request, ns, selector, metric.get("pods") or {}, current, pods)
        if typ == "Object":
            return await object_metric(self.client.request, self._resource_for, ns, metric.get("object") or {},
                                       current, status_replicas, pods)
        return await external_metric(self.client.request, ns, metric.get("external") or {}, current,
                                     status_replicas, pods)

    async def _pod_usage(self, ns: str, selector: str, samples: dict[str, Sample]) -> dict[str, dict[str, dict[str, int]]]:
        """pod -> container -> resource -> milli-units, from ``metrics.k8s.io``; each pod's
        timestamp and window go into ``samples``."""
        try:
            doc = await self.client.request("GET", f"/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods",
                                            params={"labelSelector": selector})
        except errors.StatusError as exc:
            raise MetricError(f"unable to get metrics for resource: unable to fetch metrics from resource "
                              f"metrics API: {exc.message}") from None
        out: dict[str, dict[str, dict[str, int]]] = {}
        for item in doc.get("items") or ():
            containers: dict[str, dict[str, int]] = {}
            for c in item.get("containers") or ():
                containers[c.get("name", "")] = {r: parse_quantity(v).milli_value()
                                                 for r, v in (c.get("usage") or {}).items()}
            name = (item.get("metadata") or {}).get("name", "")
            out[name] = containers
            taken = parse_time(item.get("timestamp"))
            if taken is not None:
                try:
                    window = parse_duration(str(item.get("window") or "0"))
                except CronError:
                    window = dt.timedelta(0)
                samples[name] = Sample(taken, window)
        return out

    def _condition(self, conditions: list[Obj], typ: str, status: str, reason: str, message: str) -> None:
        now = rfc3339(self.mgr.clock())
        for c in conditions:
            if c.get("type") == typ:
                if c.get("status") != status:
                    c["lastTransitionTime"] = now
                c.update(status=status, reason=reason, message=message)
                return
        conditions.append({"type": typ, "status": status, "lastTransitionTime": now,
                           "reason": reason, "message": message})

    async def _write_status(self, hpa: Obj, before: Obj, conditions: list[Obj], *, current: int, desired: int,
                            metrics: list[Obj] | None, rescaled: bool) -> None:
        status: Obj = {"observedGeneration": hpa["metadata"].get("generation", 1),
                       "currentReplicas": current, "desiredReplicas": desired}
        if before.get("lastScaleTime"):
            status["lastScaleTime"] = before["lastScaleTime"]
        if rescaled:
            status["lastScaleTime"] = rfc3339(self.mgr.clock())
        if metrics:
            status["currentMetrics"] = metrics
        order = {"AbleToScale": 0, "ScalingActive": 1, "ScalingLimited": 2}
        status["conditions"] = sorted(conditions, key=lambda c: order.get(c.get("type", ""), 3))
        if status == before:
            return
        hpa["status"] = status
        await self.client.update(HPAS, hpa, subresource="status")


def _quantity(milli: int, resource: str) -> str:
    from fractions import Fraction

    value = Fraction(milli, 1000)
    return format_quantity(value, "BinarySI" if resource == "memory" and value.denominator == 1 else "DecimalSI")

