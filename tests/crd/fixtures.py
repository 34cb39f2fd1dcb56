"""CRD manifests shared by the CRD tests."""

from __future__ import annotations

import copy
from typing import Any

CRONTAB: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "crontabs.stable.example.com"},
    "spec": {
        "group": "stable.example.com",
        "scope": "Namespaced",
        "names": {"plural": "crontabs", "singular": "crontab", "kind": "CronTab",
                  "shortNames": ["ct"], "categories": ["all"]},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}, "scale": {
                "specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                "labelSelectorPath": ".status.labelSelector"}},
            "additionalPrinterColumns": [
                {"name": "Spec", "type": "string", "jsonPath": ".spec.cronSpec"},
                {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
                {"name": "Ready", "type": "string",
                 "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
                {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            ],
            "selectableFields": [{"jsonPath": ".spec.color"}],
            "schema": {"openAPIV3Schema": {
                "type": "object",
                "description": "A CronTab runs a command on a schedule.",
                "properties": {
                    "spec": {
                        "type": "object",
                        "description": "What to run and how often.",
                        "required": ["cronSpec"],
                        "x-kubernetes-validations": [
                            {"rule": "self.replicas <= self.maxReplicas",
                             "message": "replicas must be no greater than maxReplicas",
                             "fieldPath": ".replicas"},
                        ],
                        "properties": {
                            "cronSpec": {"type": "string", "pattern": r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$",
                                         "description": "The schedule, in cron format."},
                            "image": {"type": "string", "maxLength": 64},
                            "replicas": {"type": "integer", "minimum": 0, "maximum": 10, "default": 1},
                            "maxReplicas": {"type": "integer", "default": 5},
                            "color": {"type": "string", "enum": ["red", "green", "blue"], "default": "red"},
                            "ports": {"type": "array", "x-kubernetes-list-type": "map",
                                      "x-kubernetes-list-map-keys": ["name"],
                                      "items": {"type": "object", "required": ["name"], "properties": {
                                          "name": {"type": "string"}, "port": {"type": "integer"}}}},
                            "tags": {"type": "array", "x-kubernetes-list-type": "set",
                                     "items": {"type": "string"}},
                            "mode": {"type": "string",
                                     "x-kubernetes-validations": [{
                                         "rule": "self == oldSelf", "message": "mode is immutable"}]},
                        },
                    },
                    "status": {"type": "object", "properties": {
                        "replicas": {"type": "integer"},
                        "labelSelector": {"type": "string"},
                        "conditions": {"type": "array", "items": {
                            "type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                    }},
                },
            }},
        }],
    },
}


def crontab_crd(**changes: Any) -> dict[str, Any]:
    crd = copy.deepcopy(CRONTAB)
    crd["spec"].update(changes)
    return crd


def crontab(name: str, namespace: str = "default", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "stable.example.com/v1", "kind": "CronTab",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"cronSpec": "* * * * */5", "image": "my-cron-image", **spec}}
