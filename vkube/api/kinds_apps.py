"""Strategies for apps/v1 kinds (Deployment, ReplicaSet, StatefulSet, DaemonSet,
ControllerRevision), as ``pkg/registry/apps/*`` and ``pkg/apis/apps/v1/defaults.go``."""

from __future__ import annotations

import copy

from vkube.api import printers_workloads as P
from vkube.api.defaults import default_pod_template, default_pvc_spec
from vkube.api.kinds_core import validate_pvc_spec
from vkube.api.strategy import Obj, Strategy
from vkube.api.validation import (
    Causes, forbidden, invalid_value, not_supported, required, validate_immutable,
    validate_nonnegative, validate_object_meta, validate_object_meta_update,
)
from vkube.api.workloads import validate_selector_and_template, validate_selector_immutable

__all__ = ["STRATEGIES"]


def _int_or_percent_zero(value: object) -> bool:
    return value in (0, "0", "0%")


class _Workload(Strategy):
    """Replicated kinds: status is the controller's, defaults on the spec and template."""

    what = ""

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=True)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return causes + [required("spec")]
        causes += validate_nonnegative(spec.get("replicas"), "spec.replicas")
        causes += validate_nonnegative(spec.get("minReadySeconds"), "spec.minReadySeconds")
        causes += validate_nonnegative(spec.get("revisionHistoryLimit"), "spec.revisionHistoryLimit")
        causes += validate_selector_and_template(spec, what=self.what, allowed_restart=("Always",))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old) + validate_selector_immutable(new, old)

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)


class DeploymentStrategy(_Workload):
    what = "deployment"
    columns = P.DEPLOYMENT_COLUMNS

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        strategy = spec.setdefault("strategy", {})
        strategy.setdefault("type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            rolling = strategy.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", "25%")
            rolling.setdefault("maxSurge", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
        default_pod_template(spec.get("template"))

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        spec = obj.get("spec") or {}
        strategy = spec.get("strategy") or {}
        stype = strategy.get("type")
        if stype not in ("Recreate", "RollingUpdate"):
            causes.append(not_supported("spec.strategy.type", stype, ("Recreate", "RollingUpdate")))
        elif stype == "Recreate" and strategy.get("rollingUpdate") is not None:
            causes.append(forbidden("spec.strategy.rollingUpdate",
                                    "may not be specified when strategy `type` is 'Recreate'"))
        rolling = strategy.get("rollingUpdate") or {}
        if stype == "RollingUpdate" and _int_or_percent_zero(rolling.get("maxUnavailable")) and \
                _int_or_percent_zero(rolling.get("maxSurge")):
            causes.append(invalid_value("spec.strategy.rollingUpdate.maxUnavailable",
                                        rolling.get("maxUnavailable"),
                                        "may not be 0 when `maxSurge` is 0"))
        pds = spec.get("progressDeadlineSeconds")
        if isinstance(pds, int) and pds <= spec.get("minReadySeconds", 0):
            causes.append(invalid_value("spec.progressDeadlineSeconds", pds,
                                        "must be greater than minReadySeconds"))
        return causes


class ReplicaSetStrategy(_Workload):
    what = "replicaset"
    columns = P.REPLICASET_COLUMNS
    field_selector_keys = ("status.replicas",)

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if isinstance(spec, dict):
            spec.setdefault("replicas", 1)
            default_pod_template(spec.get("template"))

    def field_attrs(self, obj: Obj) -> dict[str, str]:
        attrs = super().field_attrs(obj)
        attrs["status.replicas"] = str((obj.get("status") or {}).get("replicas", 0))
        return attrs


_STS_MUTABLE = ("replicas", "ordinals", "template", "updateStrategy",
                "persistentVolumeClaimRetentionPolicy", "minReadySeconds")


class StatefulSetStrategy(_Workload):
    what = "statefulset"
    columns = P.STATEFULSET_COLUMNS

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        spec.setdefault("podManagementPolicy", "OrderedReady")
        update = spec.setdefault("updateStrategy", {})
        update.setdefault("type", "RollingUpdate")
        if update["type"] == "RollingUpdate":
            update.setdefault("rollingUpdate", {}).setdefault("partition", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        retention = spec.setdefault("persistentVolumeClaimRetentionPolicy", {})
        retention.setdefault("whenDeleted", "Retain")
        retention.setdefault("whenScaled", "Retain")
        default_pod_template(spec.get("template"))
        for claim in spec.get("volumeClaimTemplates") or ():
            if isinstance(claim, dict):
                claim.setdefault("apiVersion", "v1")
                claim.setdefault("kind", "PersistentVolumeClaim")
                default_pvc_spec(claim.get("spec"))
                claim.setdefault("status", {"phase": "Pending"})

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        spec = obj.get("spec") or {}
        policy = spec.get("podManagementPolicy")
        if policy not in ("OrderedReady", "Parallel"):
            causes.append(not_supported("spec.podManagementPolicy", policy, ("OrderedReady", "Parallel")))
        utype = (spec.get("updateStrategy") or {}).get("type")
        if utype not in ("OnDelete", "RollingUpdate"):
            causes.append(not_supported("spec.updateStrategy.type", utype, ("OnDelete", "RollingUpdate")))
        for key in ("whenDeleted", "whenScaled"):
            value = (spec.get("persistentVolumeClaimRetentionPolicy") or {}).get(key)
            if value not in ("Retain", "Delete"):
                causes.append(not_supported(f"spec.persistentVolumeClaimRetentionPolicy.{key}",
                                            value, ("Retain", "Delete")))
        for i, claim in enumerate(spec.get("volumeClaimTemplates") or ()):
            if not ((claim or {}).get("metadata") or {}).get("name"):
                causes.append(required(f"spec.volumeClaimTemplates[{i}].metadata.name"))
            causes += validate_pvc_spec((claim or {}).get("spec"), f"spec.volumeClaimTemplates[{i}].spec")
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        causes = validate_object_meta_update(new, old)
        a, b = copy.deepcopy(new.get("spec") or {}), copy.deepcopy(old.get("spec") or {})
        for spec in (a, b):
            for key in _STS_MUTABLE:
                spec.pop(key, None)
        if a != b:
            causes.append(forbidden("spec", "updates to statefulset spec for fields other than "
                                    "'replicas', 'ordinals', 'template', 'updateStrategy', "
                                    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' "
                                    "are forbidden"))
        return causes


class DaemonSetStrategy(_Workload):
    what = "daemonset"
    columns = P.DAEMONSET_COLUMNS

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        update = spec.setdefault("updateStrategy", {})
        update.setdefault("type", "RollingUpdate")
        if update["type"] == "RollingUpdate":
            rolling = update.setdefault("rollingUpdate", {})
            rolling.setdefault("maxUnavailable", 1)
            rolling.setdefault("maxSurge", 0)
        spec.setdefault("revisionHistoryLimit", 10)
        default_pod_template(spec.get("template"))

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        utype = ((obj.get("spec") or {}).get("updateStrategy") or {}).get("type")
        if utype not in ("OnDelete", "RollingUpdate"):
            causes.append(not_supported("spec.updateStrategy.type", utype, ("OnDelete", "RollingUpdate")))
        return causes


class ControllerRevisionStrategy(Strategy):
    columns = P.CONTROLLERREVISION_COLUMNS

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=True)
        causes += validate_nonnegative(obj.get("revision"), "revision")
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old) + validate_immutable(new.get("data"), old.get("data"), "data")


STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    ("apps", "ControllerRevision"): ControllerRevisionStrategy,
    ("apps", "DaemonSet"): DaemonSetStrategy,
    ("apps", "Deployment"): DeploymentStrategy,
    ("apps", "ReplicaSet"): ReplicaSetStrategy,
    ("apps", "StatefulSet"): StatefulSetStrategy,
}
