"""storage.k8s.io/v1 beyond StorageClass — CSIDriver, CSINode, VolumeAttachment,
CSIStorageCapacity, VolumeAttributesClass — plus networking.k8s.io ServiceCIDR/IPAddress and
storagemigration.k8s.io StorageVersionMigration: defaulting, validation and table columns as
``pkg/apis/storage/validation`` and the server-side printers have them."""

from __future__ import annotations

import ipaddress
from typing import Any

from vkube.api.kinds import Column
from vkube.api.meta import Obj
from vkube.api.strategy import Strategy
from vkube.api.tables import NONE, age_column
from vkube.api.validation import (
    Causes, dns1123_subdomain, duplicate, forbidden, invalid_value, not_supported, required,
    validate_immutable, validate_object_meta, validate_object_meta_update)

__all__ = ["STRATEGIES"]

STORAGE = "storage.k8s.io"


def _spec(o: Obj) -> dict[str, Any]:
    return o.get("spec") or {}


def _bool(v: Any) -> str:
    return "true" if v else "false"


class _Meta(Strategy):
    has_generation = False

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


def _driver_name(value: Any, path: str) -> Causes:
    """``ValidateCSIDriverName``: a DNS subdomain of at most 63 characters."""
    if not value:
        return [required(path)]
    if len(str(value)) > 63:
        return [invalid_value(path, value, "must be no more than 63 characters")]
    return [invalid_value(path, value, msg) for msg in dns1123_subdomain(str(value))]


_LIFECYCLE_MODES = ("Ephemeral", "Persistent")
_FSGROUP_POLICIES = ("File", "None", "ReadWriteOnceWithFSType")


class CSIDriverStrategy(_Meta):
    has_generation = True
    columns = (
        Column("AttachRequired", lambda o: _bool(_spec(o).get("attachRequired"))),
        Column("PodInfoOnMount", lambda o: _bool(_spec(o).get("podInfoOnMount"))),
        Column("StorageCapacity", lambda o: _bool(_spec(o).get("storageCapacity"))),
        Column("TokenRequests", lambda o: ",".join(t.get("audience", "") for t in _spec(o).get("tokenRequests") or ()) or NONE),
        Column("RequiresRepublish", lambda o: _bool(_spec(o).get("requiresRepublish"))),
        Column("Modes", lambda o: ",".join(_spec(o).get("volumeLifecycleModes") or ()) or NONE),
        age_column(),
    )

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("attachRequired", True)
        spec.setdefault("podInfoOnMount", False)
        spec.setdefault("storageCapacity", False)
        spec.setdefault("fsGroupPolicy", "ReadWriteOnceWithFSType")
        spec.setdefault("requiresRepublish", False)
        spec.setdefault("seLinuxMount", False)
        spec.setdefault("volumeLifecycleModes", ["Persistent"])

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        causes += _driver_name((obj.get("metadata") or {}).get("name"), "metadata.name") if (obj.get("metadata") or {}).get("name") else []
        spec = _spec(obj)
        for mode in spec.get("volumeLifecycleModes") or ():
            if mode not in _LIFECYCLE_MODES:  # upstream names the list, not the entry
                causes.append(not_supported("spec.volumeLifecycleModes", mode, ("Persistent", "Ephemeral")))
        policy = spec.get("fsGroupPolicy")
        if policy is not None and policy not in _FSGROUP_POLICIES:
            causes.append(not_supported("spec.fsGroupPolicy", policy, _FSGROUP_POLICIES))
        seen: set[str] = set()
        for i, token in enumerate(spec.get("tokenRequests") or ()):
            aud = (token or {}).get("audience", "")
            if aud in seen:
                causes.append(duplicate(f"spec.tokenRequests[{i}].audience", aud))
                continue
            seen.add(aud)
            secs = (token or {}).get("expirationSeconds")
            if secs is not None and (not isinstance(secs, int) or secs < 600):
                causes.append(invalid_value(f"spec.tokenRequests[{i}].expirationSeconds", secs,
                                            "may not specify a duration less than 10 minutes"))
            if isinstance(secs, int) and secs > 1 << 32:
                causes.append(invalid_value(f"spec.tokenRequests[{i}].expirationSeconds", secs,
                                            "may not specify a duration larger than 2^32 seconds"))
        period = spec.get("nodeAllocatableUpdatePeriodSeconds")
        if period is not None and (not isinstance(period, int) or period < 10):
            causes.append(invalid_value("spec.nodeAllocatableUpdatePeriodSeconds", period,
                                        "must be greater than or equal to 10 seconds"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        causes = super().validate_update(new, old)
        # upstream's path for attachRequired is "spec.attachedRequired" (sic)
        for key, path in (("attachRequired", "spec.attachedRequired"), ("volumeLifecycleModes", "spec.volumeLifecycleModes")):
            causes += validate_immutable(_spec(new).get(key), _spec(old).get(key), path)
        return causes


class CSINodeStrategy(_Meta):
    columns = (Column("Drivers", lambda o: len(_spec(o).get("drivers") or ())), age_column())

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        seen: set[str] = set()
        for i, drv in enumerate(_spec(obj).get("drivers") or ()):
            path = f"spec.drivers[{i}]"
            name = (drv or {}).get("name")
            causes += _driver_name(name, f"{path}.name")
            if name in seen:
                causes.append(duplicate(f"{path}.name", name))
            seen.add(name)
            node_id = (drv or {}).get("nodeID")
            if not node_id:
                causes.append(required(f"{path}.nodeID"))
            elif len(node_id) > 192:
                causes.append(invalid_value(f"{path}.nodeID", node_id, "must be 192 characters or less"))
            count = ((drv or {}).get("allocatable") or {}).get("count")
            if count is not None and (not isinstance(count, int) or count < 0):
                causes.append(invalid_value(f"{path}.allocatable.count", count, "must be greater than or equal to 0"))
        return causes


class VolumeAttachmentStrategy(_Meta):
    status_subresource = True
    columns = (
        Column("Attacher", lambda o: _spec(o).get("attacher", "")),
        Column("PV", lambda o: (_spec(o).get("source") or {}).get("persistentVolumeName", "")),
        Column("Node", lambda o: _spec(o).get("nodeName", "")),
        Column("Attached", lambda o: _bool((o.get("status") or {}).get("attached"))),
        age_column(),
    )

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        spec = _spec(obj)
        causes += _driver_name(spec.get("attacher"), "spec.attacher")
        source = spec.get("source") or {}
        pv, inline = source.get("persistentVolumeName"), source.get("inlineVolumeSpec")
        if pv is None and inline is None:
            causes.append(required("spec.source", "must specify exactly one of inlineVolumeSpec and persistentVolumeName"))
        elif pv is not None and inline is not None:
            causes.append(forbidden("spec.source", "must specify exactly one of inlineVolumeSpec and persistentVolumeName"))
        elif pv is not None and not pv:
            causes.append(required("spec.source.persistentVolumeName", "must specify non empty persistentVolumeName"))
        node = str(spec.get("nodeName") or "")
        causes += [invalid_value("spec.nodeName", node, m) for m in dns1123_subdomain(node)]
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        causes = super().validate_update(new, old)
        if new.get("spec") != old.get("spec"):
            causes.append(invalid_value("spec", new.get("spec"), "field is immutable"))
        return causes


class CSIStorageCapacityStrategy(_Meta):
    columns = (Column("StorageClassName", lambda o: o.get("storageClassName", "")),
               Column("Capacity", lambda o: o.get("capacity") or NONE))

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=True)
        name = str(obj.get("storageClassName") or "")
        causes += [invalid_value("storageClassName", name, m) for m in dns1123_subdomain(name)]
        if str(obj.get("capacity") or "").startswith("-"):
            causes.append(invalid_value("capacity", obj["capacity"], "must be greater than or equal to 0"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        causes = super().validate_update(new, old)
        for key in ("storageClassName", "nodeTopology"):
            causes += validate_immutable(new.get(key), old.get(key), key)
        return causes


class VolumeAttributesClassStrategy(_Meta):
    columns = (Column("DriverName", lambda o: o.get("driverName", "")), age_column())

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        causes += _driver_name(obj.get("driverName"), "driverName")
        params = obj.get("parameters") or {}
        causes += [invalid_value("parameters", k, "field can not be empty.") for k in params if not k]
        if not params:
            causes.append(required("parameters", "must contain at least one key/value pair"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        causes = super().validate_update(new, old)
        if new.get("driverName") != old.get("driverName"):
            causes.append(forbidden("driverName", "updates to driverName are forbidden."))
        if (new.get("parameters") or {}) != (old.get("parameters") or {}):
            causes.append(forbidden("parameters", "updates to parameters are forbidden."))
        return causes


# --- networking.k8s.io ServiceCIDR, IPAddress ----------------------------------------------


class ServiceCIDRStrategy(_Meta):
    has_generation = True
    status_subresource = True
    columns = (Column("CIDRs", lambda o: ",".join(_spec(o).get("cidrs") or ())), age_column())

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        cidrs = _spec(obj).get("cidrs") or []
        if not cidrs:
            causes.append(required("spec.cidrs", "at least one CIDR required"))
        if len(cidrs) > 2:
            causes.append(invalid_value("spec.cidrs", cidrs, "may only hold up to 2 values"))
        families = []
        for i, cidr in enumerate(cidrs):
            try:
                net = ipaddress.ip_network(str(cidr), strict=True)
            except ValueError:
                causes.append(invalid_value(f"spec.cidrs[{i}]", cidr, "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"))
                continue
            families.append(net.version)
        if len(families) == 2 and families[0] == families[1]:
            causes.append(invalid_value("spec.cidrs", cidrs, "may specify no more than one IP for each IP family, i.e 192.168.0.0/24 and 2001:db8::/64"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        old_cidrs, new_cidrs = _spec(old).get("cidrs") or [], _spec(new).get("cidrs") or []
        causes = super().validate_update(new, old)
        if new_cidrs[:len(old_cidrs)] != old_cidrs or (len(old_cidrs) == 2 and new_cidrs != old_cidrs):
            causes.append(invalid_value("spec.cidrs", new_cidrs, "field is immutable"))
        return causes


class IPAddressStrategy(_Meta):
    columns = (Column("ParentRef", lambda o: _parent(o)),)

    def validate(self, obj: Obj) -> Causes:
        meta = obj.get("metadata") or {}
        causes = [c for c in validate_object_meta(obj, namespaced=False) if c.get("field") != "metadata.name"]
        name = meta.get("name")
        if not name:
            causes.append(required("metadata.name", "name or generateName is required"))
        else:
            try:
                canonical = str(ipaddress.ip_address(str(name)))
            except ValueError:
                causes.append(invalid_value("metadata.name", name, "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
            else:
                if canonical != name:
                    causes.append(invalid_value("metadata.name", name, f"must be in canonical form (\"{canonical}\")"))
        ref = _spec(obj).get("parentRef")
        if not isinstance(ref, dict):
            causes.append(required("spec.parentRef"))
        else:
            for key in ("resource", "name"):
                if not ref.get(key):
                    causes.append(required(f"spec.parentRef.{key}"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return super().validate_update(new, old) + validate_immutable(
            _spec(new).get("parentRef"), _spec(old).get("parentRef"), "spec.parentRef")


def _parent(o: Obj) -> str:
    ref = _spec(o).get("parentRef") or {}
    group = ref.get("group") or ""
    res = ref.get("resource", "") + (f".{group}" if group else "")
    ns = ref.get("namespace")
    return f"{res}/{ns}/{ref.get('name', '')}" if ns else f"{res}/{ref.get('name', '')}"


# --- storagemigration.k8s.io StorageVersionMigration ---------------------------------------


class StorageVersionMigrationStrategy(_Meta):
    status_subresource = True
    columns = (Column("Resource", lambda o: ".".join(
        p for p in ((_spec(o).get("resource") or {}).get("resource", ""),
                    (_spec(o).get("resource") or {}).get("group", "")) if p)), age_column())

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        res = _spec(obj).get("resource")
        if not isinstance(res, dict) or not res.get("resource"):
            causes.append(required("spec.resource.resource"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return super().validate_update(new, old) + validate_immutable(
            new.get("spec"), old.get("spec"), "spec")


# --- core/v1 ComponentStatus (computed by the server, never stored) -------------------------


def _health(o: Obj, key: str) -> str:
    cond = next((c for c in o.get("conditions") or () if c.get("type") == "Healthy"), {})
    if key == "status":
        return {"True": "Healthy", "False": "Unhealthy"}.get(cond.get("status", ""), "Unknown")
    return cond.get(key, "")


class ComponentStatusStrategy(_Meta):
    columns = (Column("Status", lambda o: _health(o, "status")), Column("Message", lambda o: _health(o, "message")),
               Column("Error", lambda o: _health(o, "error")))
    deprecation_warning = "v1 ComponentStatus is deprecated in v1.19+"


STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    ("", "ComponentStatus"): ComponentStatusStrategy,
    (STORAGE, "CSIDriver"): CSIDriverStrategy,
    (STORAGE, "CSINode"): CSINodeStrategy,
    (STORAGE, "VolumeAttachment"): VolumeAttachmentStrategy,
    (STORAGE, "CSIStorageCapacity"): CSIStorageCapacityStrategy,
    (STORAGE, "VolumeAttributesClass"): VolumeAttributesClassStrategy,
    ("networking.k8s.io", "ServiceCIDR"): ServiceCIDRStrategy,
    ("networking.k8s.io", "IPAddress"): IPAddressStrategy,
    ("storagemigration.k8s.io", "StorageVersionMigration"): StorageVersionMigrationStrategy,
}
