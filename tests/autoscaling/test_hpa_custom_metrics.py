"""Pods, Object and External metrics: an HPA reads them from a metrics adapter registered as
APIServices (``custom.metrics.k8s.io``, ``external.metrics.k8s.io``) and scales a Deployment's
``/scale`` by them; without an adapter the HPA says which metrics API failed."""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from typing import Any

from tests.aggregator.wardle import Wardle
from vkube.client.client import Resource
from vkube.client.resources import DEPLOYMENTS, PODS, SERVICES
from vkube.controllers.hpa import HorizontalPodAutoscalerController
from vkube.controllers.runtime import ControllerManager

HPAS = Resource("autoscaling", "v2", "horizontalpodautoscalers", True, "HorizontalPodAutoscaler")
APISERVICES = Resource("apiregistration.k8s.io", "v1", "apiservices", False, "APIService")


class Adapter:
    """What prometheus-adapter would answer: per-pod requests_per_second, a queue length."""

    def __init__(self) -> None:
        self.rps = "10"  # per pod
        self.queue = "30"

    def __call__(self, raw_path: str, user: str) -> tuple[int, dict[str, Any]] | None:
        path, _, query = raw_path.partition("?")
        params = urllib.parse.parse_qs(query)
        if path in ("/apis/custom.metrics.k8s.io/v1beta2", "/apis/external.metrics.k8s.io/v1beta1"):
            group_version = path[len("/apis/"):]
            return 200, {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": []}
        if path == "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/pods/*/requests_per_second":
            assert params.get("labelSelector") == ["app=web"], params
            items = [{"describedObject": {"kind": "Pod", "namespace": "default", "name": f"web-{i}", "apiVersion": "/v1"},
                      "metric": {"name": "requests_per_second"}, "timestamp": "2026-11-30T00:00:00Z",
                      "value": self.rps} for i in range(2)]
            return 200, {"kind": "MetricValueList", "apiVersion": "custom.metrics.k8s.io/v1beta2", "metadata": {},
                         "items": items}
        if path == "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/queue_length":
            assert params.get("labelSelector") == ["queue=jobs"], params
            return 200, {"kind": "ExternalMetricValueList", "apiVersion": "external.metrics.k8s.io/v1beta1",
                         "metadata": {}, "items": [{"metricName": "queue_length", "metricLabels": {"queue": "jobs"},
                                                    "timestamp": "2026-11-30T00:00:00Z", "value": self.queue}]}
        return None


async def running_pod(client, name: str) -> None:
    await client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": "web"}},
                               "spec": {"containers": [{"name": "app", "image": "x"}]}}, namespace="default")
    pod = await client.get(PODS, name, namespace="default")
    pod["status"] = {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    await client.update(PODS, pod, subresource="status")


async def wait_for(check, timeout: float = 60.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await check()
        if got or asyncio.get_running_loop().time() > deadline:
            return got
        await asyncio.sleep(0.1)


async def test_pods_and_external_metrics_from_an_adapter(control_plane):
    client = control_plane.client()
    mgr = ControllerManager(client, identity="test-hpa", retry_period=0.2,
                            options={"horizontal-pod-autoscaler": {"sync_period": 0.5}})
    mgr.add(HorizontalPodAutoscalerController)
    task = asyncio.create_task(mgr.run())
    adapter = Adapter()
    try:
        with Wardle(service="adapter", routes=adapter) as server:
            await client.create(DEPLOYMENTS, {
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "app", "image": "x"}]}}}}, namespace="default")
            for i in range(2):
                await running_pod(client, f"web-{i}")
            metric_pods = {"type": "Pods", "pods": {"metric": {"name": "requests_per_second"},
                                                    "target": {"type": "AverageValue", "averageValue": "10"}}}
            metric_ext = {"type": "External", "external": {
                "metric": {"name": "queue_length", "selector": {"matchLabels": {"queue": "jobs"}}},
                "target": {"type": "AverageValue", "averageValue": "10"}}}
            await client.create(HPAS, {
                "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
                "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                         "minReplicas": 1, "maxReplicas": 10, "metrics": [metric_pods, metric_ext]}},
                namespace="default")
            await asyncio.wait_for(mgr.started.wait(), 15)

            async def failed_on_custom() -> dict | None:
                status = (await client.get(HPAS, "web", namespace="default")).get("status") or {}
                conds = {c["type"]: c for c in status.get("conditions") or ()}
                active = conds.get("ScalingActive")
                return active if active and active["status"] == "False" else None
            active = await wait_for(failed_on_custom)
            assert active and active["reason"] in ("FailedGetPodsMetric", "FailedGetExternalMetric"), active
            assert "unable to fetch metrics from" in active["message"]

            await client.create(SERVICES, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "adapter"},
                                           "spec": {"type": "ExternalName", "externalName": "127.0.0.1",
                                                    "ports": [{"port": server.port}]}}, namespace="default")
            for group, version in (("custom.metrics.k8s.io", "v1beta2"), ("external.metrics.k8s.io", "v1beta1")):
                await client.create(APISERVICES, {
                    "apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                    "metadata": {"name": f"{version}.{group}"},
                    "spec": {"group": group, "version": version, "groupPriorityMinimum": 100, "versionPriority": 200,
                             "caBundle": server.ca_bundle,
                             "service": {"namespace": "default", "name": "adapter", "port": server.port}}})

            async def replicas() -> int:
                return (await client.get(DEPLOYMENTS, "web", namespace="default"))["spec"]["replicas"]
            # 10 rps per pod at a 10 target and a queue of 30 at 10 per pod: the queue wins, 3
            assert await wait_for(lambda: _eq(replicas(), 3))

            async def status_written() -> dict | None:  # the status follows the scale write
                status = (await client.get(HPAS, "web", namespace="default")).get("status") or {}
                return status if status.get("desiredReplicas") == 3 and status.get("currentMetrics") else None
            status = await wait_for(status_written)
            assert status["currentMetrics"][0] == {"type": "Pods", "pods": {
                "metric": {"name": "requests_per_second"}, "current": {"averageValue": "10"}}}
            assert status["currentMetrics"][1]["external"]["current"] == {"averageValue": "10"}
            events_ok = json.dumps(status["conditions"])
            assert "external metric queue_length" in events_ok

            adapter.rps = "40"  # 4x the per-pod target over the 2 measured pods: 8
            assert await wait_for(lambda: _eq(replicas(), 8))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


async def _eq(value, want) -> bool:
    return (await value) == want
