"""HorizontalPodAutoscaler as an API (validation, v1 <-> v2 conversion, Helm-style manifests,
``kubectl autoscale``) and the controller scaling a custom resource through its ``/scale``
subresource, on a real control plane with the real kubectl and the vkube client."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest
import yaml

from vkube.api import errors
from vkube.api.meta import rfc3339
from vkube.client.client import Resource
from vkube.client.resources import NAMESPACES, PODS
from vkube.controllers.hpa import HorizontalPodAutoscalerController
from vkube.controllers.runtime import ControllerManager

HPAS_V2 = Resource("autoscaling", "v2", "horizontalpodautoscalers", True, "HorizontalPodAutoscaler")
HPAS_V1 = Resource("autoscaling", "v1", "horizontalpodautoscalers", True, "HorizontalPodAutoscaler")


async def kubectl(cp, *args: str, input: str | None = None, check: bool = True):
    return await asyncio.to_thread(cp.kubectl, *args, input=input, check=check)


def hpa(name: str = "web", **spec: Any) -> dict[str, Any]:
    body = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 5, **spec}
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": name, "namespace": "default"}, "spec": body}


@pytest.mark.parametrize("spec, message", [
    ({"minReplicas": 0}, "spec.minReplicas: Invalid value: 0: must be greater than or equal to 1"),
    ({"minReplicas": 4, "maxReplicas": 2}, "spec.maxReplicas: Invalid value: 2: must be greater than or equal to `minReplicas`"),
    ({"metrics": [{"type": "Bogus"}]}, 'spec.metrics[0].type: Unsupported value: "Bogus"'),
    ({"metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 0}}}]},
     "spec.metrics[0].resource.target.averageUtilization: Invalid value: 0: must be greater than 0"),
    ({"behavior": {"scaleDown": {"stabilizationWindowSeconds": 4000}}},
     "spec.behavior.scaleDown.stabilizationWindowSeconds: Invalid value: 4000: must be less than or equal to 3600"),
    ({"behavior": {"scaleUp": {"policies": [{"type": "Pods", "value": 0, "periodSeconds": 15}]}}},
     "spec.behavior.scaleUp.policies[0].value: Invalid value: 0: must be greater than zero"),
])
async def test_bad_hpas_are_refused_and_not_stored(control_plane, spec, message):
    out = await kubectl(control_plane, "apply", "-f", "-", input=json.dumps(hpa(**spec)), check=False)
    assert out.returncode != 0 and message in out.stderr, out.stderr
    assert out.stderr.startswith('The HorizontalPodAutoscaler "web" is invalid: ')
    listed = await kubectl(control_plane, "get", "hpa", "-o", "name")
    assert listed.stdout == ""


async def test_v1_and_v2_are_one_object(control_plane):
    client = control_plane.client()
    try:
        memory = {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}}
        cpu = {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}
        behavior = {"scaleDown": {"stabilizationWindowSeconds": 30}}
        await client.create(HPAS_V2, hpa(metrics=[cpu, memory], behavior=behavior), namespace="default")
        v1 = await client.get(HPAS_V1, "web", namespace="default")
        assert v1["apiVersion"] == "autoscaling/v1"
        assert v1["spec"]["targetCPUUtilizationPercentage"] == 60 and "metrics" not in v1["spec"]
        assert json.loads(v1["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"]) == [memory]
        # a v1 read-modify-write keeps what v1 cannot express
        v1["spec"]["maxReplicas"] = 7
        v1["spec"]["targetCPUUtilizationPercentage"] = 70
        await client.update(HPAS_V1, v1)
        v2 = await client.get(HPAS_V2, "web", namespace="default")
        assert v2["spec"]["maxReplicas"] == 7
        assert v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 70
        assert v2["spec"]["metrics"][1] == memory
        assert v2["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 30
        assert v2["spec"]["behavior"]["scaleUp"]["policies"]  # defaulted
        assert "annotations" not in v2["metadata"] or not any(
            k.startswith("autoscaling.alpha") for k in v2["metadata"]["annotations"])
        # status: the CPU utilization is v1's field, the rest travels in annotations
        v2["status"] = {"currentReplicas": 2, "desiredReplicas": 3, "currentMetrics": [
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 91, "averageValue": "91m"}}},
            {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "20Mi"}}}],
            "conditions": [{"type": "AbleToScale", "status": "True", "reason": "ReadyForNewScale",
                            "message": "recommended size matches current size",
                            "lastTransitionTime": "2026-11-30T00:00:00Z"}]}
        await client.update(HPAS_V2, v2, subresource="status")
        v1 = await client.get(HPAS_V1, "web", namespace="default")
        assert v1["status"] == {"currentReplicas": 2, "desiredReplicas": 3, "currentCPUUtilizationPercentage": 91}
        ann = v1["metadata"]["annotations"]
        assert json.loads(ann["autoscaling.alpha.kubernetes.io/conditions"])[0]["reason"] == "ReadyForNewScale"
        assert json.loads(ann["autoscaling.alpha.kubernetes.io/current-metrics"])[0]["resource"]["name"] == "memory"
        # created through v1 without a target: v2 shows none, the controller uses 80 % CPU
        await client.create(HPAS_V1, {"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
                                      "metadata": {"name": "old"}, "spec": {
                                          "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3}},
                            namespace="default")
        old = await client.get(HPAS_V2, "old", namespace="default")
        assert old["spec"]["minReplicas"] == 1 and old["spec"]["maxReplicas"] == 3
    finally:
        await client.close()


HELM_HPA = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: release-name-mychart
  labels:
    helm.sh/chart: mychart-0.1.0
    app.kubernetes.io/name: mychart
    app.kubernetes.io/instance: release-name
    app.kubernetes.io/version: "1.16.0"
    app.kubernetes.io/managed-by: Helm
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: release-name-mychart
  minReplicas: 1
  maxReplicas: 100
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: 80
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: 80
"""


async def test_helm_style_manifests_install(control_plane):
    cp = control_plane
    await kubectl(cp, "apply", "-f", "-", input=HELM_HPA)
    await kubectl(cp, "apply", "--server-side", "--field-manager", "helm", "--force-conflicts", "-f", "-",
                  input=HELM_HPA.replace("maxReplicas: 100", "maxReplicas: 10"))
    got = yaml.safe_load((await kubectl(cp, "get", "hpa", "release-name-mychart", "-o", "yaml")).stdout)
    assert got["spec"]["maxReplicas"] == 10 and len(got["spec"]["metrics"]) == 2
    assert (await kubectl(cp, "get", "hpa", "release-name-mychart")).stdout.split("\n")[0].split() == [
        "NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"]
    # kubectl autoscale writes an HPA of its own
    await kubectl(cp, "create", "deployment", "web", "--image", "nginx")
    await kubectl(cp, "autoscale", "deployment", "web", "--min", "2", "--max", "4", "--cpu", "60%")
    auto = yaml.safe_load((await kubectl(cp, "get", "hpa", "web", "-o", "yaml")).stdout)
    assert auto["spec"]["minReplicas"] == 2 and auto["spec"]["maxReplicas"] == 4
    assert auto["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60


WIDGETS = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {"group": "example.com", "scope": "Namespaced",
             "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "subresources": {"status": {}, "scale": {
                               "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                               "labelSelectorPath": ".status.selector"}},
                           "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]},
}
WIDGET = Resource("example.com", "v1", "widgets", True, "Widget")
CRDS = Resource("apiextensions.k8s.io", "v1", "customresourcedefinitions", False, "CustomResourceDefinition")


async def running_pod(client, name: str, usage: str) -> None:
    await client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "labels": {"app": "widget"}, "annotations": {"vkube.io/cpu-usage": usage}},
        "spec": {"containers": [
            {"name": "app", "image": "x", "resources": {"requests": {"cpu": "100m"}}},
            {"name": "sidecar", "image": "x", "resources": {"requests": {"cpu": "100m"}}}]}}, namespace="default")
    pod = await client.get(PODS, name, namespace="default")
    # started and Ready long enough ago that the HPA's CPU initialization period (5m) is over
    now = dt.datetime.now(dt.timezone.utc)
    pod["status"] = {"phase": "Running", "startTime": rfc3339(now - dt.timedelta(minutes=10)), "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": rfc3339(now - dt.timedelta(minutes=9))}]}
    await client.update(PODS, pod, subresource="status")


async def test_hpa_scales_a_custom_resource_through_its_scale_subresource(control_plane):
    client = control_plane.client()
    mgr = ControllerManager(client, identity="test-hpa", retry_period=0.2,
                            options={"horizontal-pod-autoscaler": {"sync_period": 0.5}})
    mgr.add(HorizontalPodAutoscalerController)
    task = asyncio.create_task(mgr.run())
    try:
        await client.create(CRDS, WIDGETS)
        for _ in range(100):
            try:
                await client.create(WIDGET, {"apiVersion": "example.com/v1", "kind": "Widget",
                                             "metadata": {"name": "w"}, "spec": {"replicas": 2}}, namespace="default")
                break
            except errors.NotFound:  # the CRD is not served yet
                await asyncio.sleep(0.1)
        w = await client.get(WIDGET, "w", namespace="default")
        w["status"] = {"replicas": 2, "selector": "app=widget"}
        await client.update(WIDGET, w, subresource="status")
        # the app container of each pod uses 90m of its 100m; the sidecar 10m
        await running_pod(client, "w-1", "app=90m,sidecar=10m")
        await running_pod(client, "w-2", "app=90m,sidecar=10m")
        await asyncio.wait_for(mgr.started.wait(), 15)
        # ContainerResource: only "app" counts, 90 % of request against a 30 % target: 2 -> 6
        await client.create(HPAS_V2, {
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "w"},
            "spec": {"scaleTargetRef": {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w"},
                     "minReplicas": 1, "maxReplicas": 10,
                     "metrics": [{"type": "ContainerResource", "containerResource": {
                         "name": "cpu", "container": "app", "target": {"type": "Utilization", "averageUtilization": 30}}}]}},
            namespace="default")

        async def replicas() -> int:
            return (await client.get(WIDGET, "w", namespace="default"))["spec"]["replicas"]
        for _ in range(200):
            if await replicas() != 2:
                break
            await asyncio.sleep(0.1)
        assert await replicas() == 6
        for _ in range(200):  # the status follows the scale write
            status = (await client.get(HPAS_V2, "w", namespace="default")).get("status") or {}
            if status.get("desiredReplicas") == 6:
                break
            await asyncio.sleep(0.1)
        assert status["desiredReplicas"] == 6
        assert status["currentMetrics"] == [{"type": "ContainerResource", "containerResource": {
            "name": "cpu", "container": "app", "current": {"averageUtilization": 90, "averageValue": "90m"}}}]
        conds = {c["type"]: c for c in status["conditions"]}
        assert conds["ScalingActive"]["message"] == ("the HPA was able to successfully calculate a replica count "
                                                     "from cpu container resource utilization (percentage of request)")
        assert conds["AbleToScale"]["reason"] == "SucceededRescale"

        # a target without a /scale subresource: AbleToScale False, FailedGetScale
        await client.create(HPAS_V2, {
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "nothing"},
            "spec": {"scaleTargetRef": {"apiVersion": "v1", "kind": "ConfigMap", "name": "x"}, "maxReplicas": 3}},
            namespace="default")
        for _ in range(200):
            got = (await client.get(HPAS_V2, "nothing", namespace="default")).get("status") or {}
            if got.get("conditions"):
                break
            await asyncio.sleep(0.1)
        cond = got["conditions"][0]
        assert (cond["type"], cond["status"], cond["reason"]) == ("AbleToScale", "False", "FailedGetScale")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


def _official_client_round_trip(kubeconfig: str) -> tuple[Any, Any, Any]:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
    with k8s.ApiClient(configuration) as api:
        v2 = k8s.AutoscalingV2Api(api)
        body = k8s.V2HorizontalPodAutoscaler(
            metadata=k8s.V1ObjectMeta(name="py"),
            spec=k8s.V2HorizontalPodAutoscalerSpec(
                scale_target_ref=k8s.V2CrossVersionObjectReference(api_version="apps/v1", kind="Deployment", name="web"),
                min_replicas=2, max_replicas=6,
                metrics=[k8s.V2MetricSpec(type="Resource", resource=k8s.V2ResourceMetricSource(
                    name="cpu", target=k8s.V2MetricTarget(type="Utilization", average_utilization=75)))]))
        created = v2.create_namespaced_horizontal_pod_autoscaler("default", body)
        as_v1 = k8s.AutoscalingV1Api(api).read_namespaced_horizontal_pod_autoscaler("py", "default")
        listed = v2.list_namespaced_horizontal_pod_autoscaler("default")
    return created, as_v1, listed


async def test_the_official_client_speaks_both_versions(control_plane):
    created, as_v1, listed = await asyncio.to_thread(_official_client_round_trip, str(control_plane.kubeconfig))
    assert created.spec.metrics[0].resource.target.average_utilization == 75
    assert as_v1.spec.target_cpu_utilization_percentage == 75 and as_v1.spec.min_replicas == 2
    assert [h.metadata.name for h in listed.items] == ["py"]
