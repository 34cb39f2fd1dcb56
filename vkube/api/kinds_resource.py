"""resource.k8s.io/v1 (dynamic resource allocation): DeviceClass, ResourceClaim,
ResourceClaimTemplate, ResourceSlice and DeviceTaintRule — validation and columns as
``pkg/apis/resource/validation`` and the printers have them. Allocation itself is the
scheduler's (``vkube.host.dra``)."""

from __future__ import annotations

from typing import Any

from vkube.api.kinds import Column
from vkube.api.meta import Obj
from vkube.api.strategy import Strategy
from vkube.api.tables import age_column
from vkube.api.validation import (
    Causes, dns1123_label, dns1123_subdomain, duplicate, forbidden, invalid_value, not_supported,
    required, validate_object_meta, validate_object_meta_update)

__all__ = ["STRATEGIES", "GROUP", "claim_state"]

GROUP = "resource.k8s.io"
_ALLOCATION_MODES = ("All", "ExactCount")
MAX_DEVICES_PER_SLICE = 128
MAX_REQUESTS = 32


def _spec(o: Obj) -> dict[str, Any]:
    return o.get("spec") or {}


def claim_state(o: Obj) -> str:
    """The STATE column: ``allocated,reserved`` / ``allocated`` / ``pending``, plus
    ``deleted`` while a deletion is pending."""
    status = o.get("status") or {}
    parts = []
    if status.get("allocation"):
        parts.append("allocated")
        if status.get("reservedFor"):
            parts.append("reserved")
    else:
        parts.append("pending")
    if (o.get("metadata") or {}).get("deletionTimestamp"):
        parts.append("deleted")
    return ",".join(parts)


def _label(value: Any, path: str) -> Causes:
    if not value:
        return [required(path)]
    return [invalid_value(path, value, m) for m in dns1123_label(str(value))]


def _selectors(selectors: Any, path: str) -> Causes:
    causes: Causes = []
    for i, sel in enumerate(selectors or ()):
        cel = (sel or {}).get("cel")
        if not isinstance(cel, dict) or not cel.get("expression"):
            causes.append(required(f"{path}[{i}].cel.expression"))
    return causes


def _validate_claim_spec(spec: dict[str, Any], path: str) -> Causes:
    devices = spec.get("devices") or {}
    requests = devices.get("requests") or []
    causes: Causes = []
    if len(requests) > MAX_REQUESTS:
        causes.append(invalid_value(f"{path}.devices.requests", len(requests), f"must have at most {MAX_REQUESTS} items"))
    names: set[str] = set()
    for i, req in enumerate(requests):
        rp = f"{path}.devices.requests[{i}]"
        name = (req or {}).get("name")
        causes += _label(name, f"{rp}.name")
        if name in names:
            causes.append(duplicate(f"{rp}.name", name))
        names.add(name)
        exactly, first = (req or {}).get("exactly"), (req or {}).get("firstAvailable")
        if bool(exactly) == bool(first):
            causes.append(invalid_value(rp, "<value omitted>", "exactly one of `exactly` or `firstAvailable` is required"))
        for j, sub in enumerate(([exactly] if exactly else []) + list(first or ())):
            sp = f"{rp}.exactly" if exactly else f"{rp}.firstAvailable[{j}]"
            if first:
                causes += _label((sub or {}).get("name"), f"{sp}.name")
            cls = (sub or {}).get("deviceClassName")
            if not cls:
                causes.append(required(f"{sp}.deviceClassName"))
            else:
                causes += [invalid_value(f"{sp}.deviceClassName", cls, m) for m in dns1123_subdomain(str(cls))]
            mode = (sub or {}).get("allocationMode", "ExactCount")
            if mode not in _ALLOCATION_MODES:
                causes.append(not_supported(f"{sp}.allocationMode", mode, _ALLOCATION_MODES))
            count = (sub or {}).get("count")
            if mode == "ExactCount" and count is not None and (not isinstance(count, int) or count <= 0):
                causes.append(invalid_value(f"{sp}.count", count, "must be greater than zero"))
            if mode == "All" and count:
                causes.append(invalid_value(f"{sp}.count", count, "must not be specified when allocationMode is 'All'"))
            causes += _selectors((sub or {}).get("selectors"), f"{sp}.selectors")
    for i, con in enumerate(devices.get("constraints") or ()):
        for j, ref in enumerate((con or {}).get("requests") or ()):
            if ref.split("/")[0] not in names:
                causes.append(invalid_value(f"{path}.devices.constraints[{i}].requests[{j}]", ref,
                                            "must be the name of a request in the claim or the name of a request "
                                            "and the subrequest separated with '/'"))
    return causes


def _default_claim_spec(spec: Any) -> None:
    if not isinstance(spec, dict):
        return
    for req in ((spec.get("devices") or {}).get("requests")) or ():
        if not isinstance(req, dict):
            continue
        for sub in ([req["exactly"]] if isinstance(req.get("exactly"), dict) else []) + list(req.get("firstAvailable") or ()):
            if isinstance(sub, dict):
                sub.setdefault("allocationMode", "ExactCount")
                if sub["allocationMode"] == "ExactCount":
                    sub.setdefault("count", 1)


class DeviceClassStrategy(Strategy):
    has_generation = True
    columns = (age_column(),)

    def validate(self, obj: Obj) -> Causes:
        return validate_object_meta(obj, namespaced=False) + _selectors(_spec(obj).get("selectors"), "spec.selectors")

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


class ResourceClaimStrategy(Strategy):
    has_generation = True
    status_subresource = True
    columns = (Column("State", claim_state), age_column())

    def default(self, obj: Obj) -> None:
        _default_claim_spec(obj.get("spec"))

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=True) + _validate_claim_spec(_spec(obj), "spec")
        status = obj.get("status") or {}
        if status.get("reservedFor") and not status.get("allocation"):
            causes.append(forbidden("status.reservedFor", "may not be specified when `allocated` is not set"))
        if len(status.get("reservedFor") or ()) > 256:
            causes.append(invalid_value("status.reservedFor", len(status["reservedFor"]), "must have at most 256 items"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        causes = validate_object_meta_update(new, old)
        if new.get("spec") != old.get("spec"):
            causes.append(invalid_value("spec", "<value omitted>", "field is immutable"))
        old_alloc = (old.get("status") or {}).get("allocation")
        if old_alloc and (new.get("status") or {}).get("allocation") not in (None, old_alloc):
            causes.append(invalid_value("status.allocation", "<value omitted>", "field is immutable"))
        return causes


class ResourceClaimTemplateStrategy(Strategy):
    has_generation = True
    columns = (age_column(),)

    def default(self, obj: Obj) -> None:
        _default_claim_spec((_spec(obj).get("spec")))

    def validate(self, obj: Obj) -> Causes:
        return validate_object_meta(obj, namespaced=True) + _validate_claim_spec(_spec(obj).get("spec") or {}, "spec.spec")

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        causes = validate_object_meta_update(new, old)
        if new.get("spec") != old.get("spec"):
            causes.append(invalid_value("spec", "<value omitted>", "field is immutable"))
        return causes


class ResourceSliceStrategy(Strategy):
    has_generation = True
    columns = (
        Column("Node", lambda o: _spec(o).get("nodeName", "")),
        Column("Driver", lambda o: _spec(o).get("driver", "")),
        Column("Pool", lambda o: (_spec(o).get("pool") or {}).get("name", "")),
        age_column(),
    )
    field_selector_keys = ("spec.nodeName", "spec.driver")

    def field_attrs(self, obj: Obj) -> dict[str, str]:
        attrs = super().field_attrs(obj)
        attrs["spec.nodeName"] = str(_spec(obj).get("nodeName", ""))
        attrs["spec.driver"] = str(_spec(obj).get("driver", ""))
        return attrs

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        spec = _spec(obj)
        driver = spec.get("driver")
        if not driver:
            causes.append(required("spec.driver"))
        else:
            causes += [invalid_value("spec.driver", driver, m) for m in dns1123_subdomain(str(driver))]
        pool = spec.get("pool") or {}
        if not pool.get("name"):
            causes.append(required("spec.pool.name"))
        if not isinstance(pool.get("resourceSliceCount"), int) or pool["resourceSliceCount"] <= 0:
            causes.append(invalid_value("spec.pool.resourceSliceCount", pool.get("resourceSliceCount", 0),
                                        "must be greater than zero"))
        if not isinstance(pool.get("generation", 0), int) or pool.get("generation", 0) < 0:
            causes.append(invalid_value("spec.pool.generation", pool.get("generation"), "must be greater than or equal to zero"))
        chosen = [k for k in ("nodeName", "nodeSelector", "allNodes", "perDeviceNodeSelection") if spec.get(k)]
        if len(chosen) != 1:
            causes.append(invalid_value("spec", "<value omitted>",
                                        "exactly one of `nodeName`, `nodeSelector`, `allNodes`, `perDeviceNodeSelection` is required"))
        devices = spec.get("devices") or []
        if len(devices) > MAX_DEVICES_PER_SLICE:
            causes.append(invalid_value("spec.devices", len(devices), f"must have at most {MAX_DEVICES_PER_SLICE} items"))
        seen: set[str] = set()
        for i, dev in enumerate(devices):
            name = (dev or {}).get("name")
            causes += _label(name, f"spec.devices[{i}].name")
            if name in seen:
                causes.append(duplicate(f"spec.devices[{i}].name", name))
            seen.add(name)
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        causes = validate_object_meta_update(new, old)
        for key in ("nodeName", "driver"):
            if _spec(new).get(key) != _spec(old).get(key):
                causes.append(invalid_value(f"spec.{key}", _spec(new).get(key), "field is immutable"))
        return causes


_TAINT_EFFECTS = ("NoExecute", "NoSchedule", "None")


class DeviceTaintRuleStrategy(Strategy):
    has_generation = True
    status_subresource = True
    columns = (age_column(),)

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        taint = _spec(obj).get("taint") or {}
        if not taint.get("key"):
            causes.append(required("spec.taint.key"))
        if taint.get("effect") not in _TAINT_EFFECTS:
            causes.append(not_supported("spec.taint.effect", taint.get("effect", ""), _TAINT_EFFECTS))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    (GROUP, "DeviceClass"): DeviceClassStrategy,
    (GROUP, "ResourceClaim"): ResourceClaimStrategy,
    (GROUP, "ResourceClaimTemplate"): ResourceClaimTemplateStrategy,
    (GROUP, "ResourceSlice"): ResourceSliceStrategy,
    (GROUP, "DeviceTaintRule"): DeviceTaintRuleStrategy,
}
