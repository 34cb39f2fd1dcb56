"""Kubernetes' defaulting for pod specs and the objects that embed them (``SetDefaults_*`` in
``pkg/apis/core/v1/defaults.go``): the values clients rely on and ``kubectl get -o yaml`` shows.

All functions work in place and only fill what is missing, so defaulting twice is harmless.
"""

from __future__ import annotations

from typing import Any

from vkube.api.meta import Obj
from vkube.api.quantity import QuantityError, parse_quantity


__all__ = [
    "default_pod_spec", "default_pod_template", "default_container", "default_pod_admission",
    "pod_qos_class", "default_pvc_spec", "image_pull_policy",
]


def image_pull_policy(image: str) -> str:
    """``Always`` for ``:latest`` or untagged images (digests pin, so not those), else IfNotPresent."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    if ":" not in last or last.endswith(":latest"):
        return "Always"
    return "IfNotPresent"


def _default_probe(probe: Any) -> None:
    if not isinstance(probe, dict):
        return
    probe.setdefault("timeoutSeconds", 1)
    probe.setdefault("periodSeconds", 10)
    probe.setdefault("successThreshold", 1)
    probe.setdefault("failureThreshold", 3)
    http = probe.get("httpGet")
    if isinstance(http, dict):
        http.setdefault("path", "/")
        http.setdefault("scheme", "HTTP")
    grpc = probe.get("grpc")
    if isinstance(grpc, dict):
        grpc.setdefault("service", "")


def _default_env(env: Any) -> None:
    for var in env or ():
        ref = ((var or {}).get("valueFrom") or {}).get("fieldRef")
        if isinstance(ref, dict):
            ref.setdefault("apiVersion", "v1")


def default_container(c: Obj) -> None:
    """``SetDefaults_Container`` plus the port/probe/env defaults reached through it."""
    if not isinstance(c, dict):
        return
    if "imagePullPolicy" not in c and isinstance(c.get("image"), str):
        c["imagePullPolicy"] = image_pull_policy(c["image"])
    c.setdefault("terminationMessagePath", "/dev/termination-log")
    c.setdefault("terminationMessagePolicy", "File")
    c.setdefault("resources", {})
    for port in c.get("ports") or ():
        if isinstance(port, dict):
            port.setdefault("protocol", "TCP")
    for key in ("livenessProbe", "readinessProbe", "startupProbe"):
        _default_probe(c.get(key))
    for hook in ((c.get("lifecycle") or {}).get("postStart"), (c.get("lifecycle") or {}).get("preStop")):
        if isinstance(hook, dict) and isinstance(hook.get("httpGet"), dict):
            hook["httpGet"].setdefault("path", "/")
            hook["httpGet"].setdefault("scheme", "HTTP")
    _default_env(c.get("env"))


def _default_volume(v: Obj) -> None:
    if not isinstance(v, dict):
        return
    sources = [k for k in v if k != "name"]
    if not sources:
        v["emptyDir"] = {}
    for key in ("secret", "configMap", "projected", "downwardAPI"):
        if isinstance(v.get(key), dict):
            v[key].setdefault("defaultMode", 420)
    if isinstance(v.get("hostPath"), dict):
        v["hostPath"].setdefault("type", "")
    for item in (v.get("downwardAPI") or {}).get("items") or ():
        if isinstance((item or {}).get("fieldRef"), dict):
            item["fieldRef"].setdefault("apiVersion", "v1")


def default_pod_spec(spec: Obj) -> None:
    """``SetDefaults_PodSpec`` (applies to pods and to every pod template)."""
    if not isinstance(spec, dict):
        return
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or ():
            default_container(c)
    for v in spec.get("volumes") or ():
        _default_volume(v)
    if spec.get("hostNetwork"):
        for key in ("initContainers", "containers"):
            for c in spec.get(key) or ():
                for port in (c or {}).get("ports") or ():
                    if isinstance(port, dict) and "containerPort" in port:
                        port.setdefault("hostPort", port["containerPort"])


def default_pod_template(template: Any) -> None:
    if isinstance(template, dict) and isinstance(template.get("spec"), dict):
        default_pod_spec(template["spec"])


def _copy_limits_to_requests(spec: Obj) -> None:
    """``SetDefaults_Pod``: a container with limits but no request for a resource requests the
    limit (what makes a limits-only pod Guaranteed)."""
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or ():
            res = (c or {}).get("resources")
            if not isinstance(res, dict) or not isinstance(res.get("limits"), dict):
                continue
            requests = res.setdefault("requests", {})
            for name, value in res["limits"].items():
                requests.setdefault(name, value)


def default_pod_admission(pod: Obj) -> None:
    """What a Pod (not a template) gets from ``SetDefaults_Pod`` and the default admission
    plugins (ServiceAccount, Priority, DefaultTolerationSeconds)."""
    spec = pod.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    default_pod_spec(spec)
    _copy_limits_to_requests(spec)
    spec.setdefault("enableServiceLinks", True)
    sa = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
    spec["serviceAccountName"] = sa
    spec["serviceAccount"] = sa
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    if isinstance(tolerations, list):
        for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
            if not any(isinstance(t, dict) and t.get("key") == key and
                       t.get("effect") in ("NoExecute", None, "") for t in tolerations):
                tolerations.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                                    "tolerationSeconds": 300})


def _quantity(value: Any) -> Any:
    try:
        return parse_quantity(value).value
    except QuantityError:
        return None


def pod_qos_class(spec: Obj) -> str:
    """``qos.GetPodQOS``: Guaranteed when every container limits cpu and memory with equal
    requests; BestEffort when nothing requests or limits cpu/memory; else Burstable."""
    requests: dict[str, Any] = {}
    limits: dict[str, Any] = {}
    guaranteed = True
    containers = list(spec.get("initContainers") or ()) + list(spec.get("containers") or ())
    for c in containers:
        res = (c or {}).get("resources") or {}
        c_req = {k: _quantity(v) for k, v in (res.get("requests") or {}).items()
                 if k in ("cpu", "memory")}
        c_lim = {k: _quantity(v) for k, v in (res.get("limits") or {}).items()
                 if k in ("cpu", "memory")}
        c_req = {k: v for k, v in c_req.items() if v}
        c_lim = {k: v for k, v in c_lim.items() if v}
        requests.update(c_req)
        limits.update(c_lim)
        if set(c_lim) != {"cpu", "memory"}:
            guaranteed = False
        for name, value in c_req.items():
            if c_lim.get(name) != value:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def default_pvc_spec(spec: Any) -> None:
    if isinstance(spec, dict):
        spec.setdefault("volumeMode", "Filesystem")
