"""A small kopf operator, run unmodified against a vkube cluster by test_kopf.py: for each
CronTab it adds a finalizer (kopf does, for the delete handler), creates a ConfigMap, keeps it
in step with the spec, writes status, and deletes the ConfigMap when the CronTab goes."""

from __future__ import annotations

from typing import Any

import kopf
import kubernetes

GROUP, VERSION, PLURAL = "stable.example.com", "v1", "crontabs"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.persistence.finalizer = "stable.example.com/kopf-cleanup"
    settings.watching.server_timeout = 60
    settings.posting.enabled = False
    kubernetes.config.load_kube_config()


def _configmap(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": f"{name}-schedule", "labels": {"app.kubernetes.io/managed-by": "crontab-operator"}},
            "data": {"cronSpec": str(spec.get("cronSpec", "")), "replicas": str(spec.get("replicas", ""))}}


@kopf.on.create(GROUP, VERSION, PLURAL)
def created(spec: dict[str, Any], name: str, namespace: str, body: dict[str, Any], **_: Any) -> dict[str, Any]:
    cm = _configmap(name, dict(spec))
    kopf.adopt(cm, owner=dict(body))
    kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace, cm)
    return {"configMap": cm["metadata"]["name"], "phase": "Scheduled"}


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def updated(spec: dict[str, Any], name: str, namespace: str, **_: Any) -> dict[str, Any]:
    cm = _configmap(name, dict(spec))
    kubernetes.client.CoreV1Api().patch_namespaced_config_map(cm["metadata"]["name"], namespace, {"data": cm["data"]})
    return {"replicas": spec.get("replicas")}


@kopf.on.delete(GROUP, VERSION, PLURAL)
def deleted(name: str, namespace: str, **_: Any) -> None:
    try:
        kubernetes.client.CoreV1Api().delete_namespaced_config_map(f"{name}-schedule", namespace)
    except kubernetes.client.ApiException as exc:
        if exc.status != 404:
            raise
