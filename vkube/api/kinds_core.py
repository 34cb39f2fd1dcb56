"""Strategies for core/v1 kinds: defaulting, validation, field selectors and table columns as
kube-apiserver's ``pkg/registry/core/*`` strategies do."""

from __future__ import annotations

import base64
import binascii
import copy
import re
from typing import Any

from vkube.api import printers_core as P
from vkube.api.defaults import (
    default_pod_admission, default_pod_template, default_pvc_spec, pod_qos_class,
)
from vkube.api.quantity import QuantityError, parse_quantity
from vkube.api.strategy import Obj, Strategy
from vkube.api.validation import (
    Causes, dns1123_label, dns1123_subdomain, duplicate, forbidden, invalid_value,
    not_supported, required, too_long, validate_immutable, validate_labels, validate_nonnegative,
    validate_object_meta, validate_object_meta_update,
)
from vkube.api.validation_ip import control_plane_endpoints, validate_non_special_ip
from vkube.api.validation_pod import validate_pod_spec, validate_pod_template, validate_pod_update
from vkube.api.validation_ephemeral import (keep_only_ephemeral_changes, validate_ephemeral_containers,
                                            validate_ephemeral_on_create, validate_ephemeral_update)

__all__ = ["STRATEGIES", "validate_data_keys"]


def _s(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class _Core(Strategy):
    """Base for core kinds: ObjectMeta validation plus the immutable metadata on update."""

    name_validator = staticmethod(dns1123_subdomain)

    def validate(self, obj: Obj) -> Causes:
        return validate_object_meta(obj, namespaced=self.namespaced, name_validator=self.name_validator)

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


class PodStrategy(_Core):
    columns = P.POD_COLUMNS
    row_conditions = staticmethod(P.pod_row_conditions)
    field_selector_keys = ("spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                           "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                           "status.podIP", "status.podIPs", "status.nominatedNodeName")

    def default(self, obj: Obj) -> None:
        default_pod_admission(obj)

    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.get("spec") or {}
        obj["status"] = {"phase": "Pending", "qosClass": pod_qos_class(spec)}

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_status_update(new, old)
        # qosClass is decided once, at creation
        if isinstance(new.get("status"), dict) and (old.get("status") or {}).get("qosClass"):
            new["status"]["qosClass"] = old["status"]["qosClass"]

    def validate(self, obj: Obj) -> Causes:
        spec = obj.get("spec")
        causes = super().validate(obj) + validate_pod_spec(spec)
        return causes + validate_ephemeral_containers(spec) if isinstance(spec, dict) else causes

    def validate_create(self, obj: Obj) -> Causes:
        return validate_ephemeral_on_create(obj)

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return super().validate_update(new, old) + validate_pod_update(new, old)

    def prepare_for_ephemeral_update(self, new: Obj, old: Obj) -> None:
        """pods/ephemeralcontainers: only spec.ephemeralContainers changes (then defaulted)."""
        keep_only_ephemeral_changes(new, old)
        self.default(new)

    def validate_subresource_update(self, new: Obj, old: Obj, subresource: str) -> Causes:
        if subresource == "ephemeralcontainers":
            return super().validate_update(new, old) + validate_ephemeral_update(new, old)
        return self.validate_update(new, old)

    def field_attrs(self, obj: Obj) -> dict[str, str]:
        attrs = super().field_attrs(obj)
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        for key in ("nodeName", "restartPolicy", "schedulerName", "serviceAccountName"):
            attrs[f"spec.{key}"] = _s(spec.get(key))
        attrs["spec.hostNetwork"] = _s(bool(spec.get("hostNetwork")))
        attrs["status.phase"] = _s(status.get("phase"))
        attrs["status.podIP"] = _s(status.get("podIP"))
        attrs["status.podIPs"] = ",".join(_s(ip.get("ip")) for ip in status.get("podIPs") or ())
        attrs["status.nominatedNodeName"] = _s(status.get("nominatedNodeName"))
        return attrs


SERVICE_TYPES = ("ClusterIP", "ExternalName", "LoadBalancer", "NodePort")


class ServiceStrategy(_Core):
    columns = P.SERVICE_COLUMNS
    name_validator = staticmethod(dns1123_label)
    field_selector_keys = ("spec.clusterIP", "spec.type")

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        stype = spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or ():
            if isinstance(port, dict):
                port.setdefault("protocol", "TCP")
                if "targetPort" not in port and "port" in port:
                    port["targetPort"] = port["port"]
        if stype == "ExternalName":
            return
        spec.setdefault("internalTrafficPolicy", "Cluster")
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        if "ipFamilies" not in spec:  # the families of requested addresses, else IPv4
            ips = [ip for ip in spec.get("clusterIPs") or [spec.get("clusterIP")]
                   if isinstance(ip, str) and ip and ip != "None"]
            spec["ipFamilies"] = ["IPv6" if ":" in ip else "IPv4" for ip in ips] or ["IPv4"]
        if stype in ("NodePort", "LoadBalancer"):
            spec.setdefault("externalTrafficPolicy", "Cluster")
        if stype == "LoadBalancer":
            spec.setdefault("allocateLoadBalancerNodePorts", True)
        if spec.get("clusterIP") and "clusterIPs" not in spec:
            spec["clusterIPs"] = [spec["clusterIP"]]

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"loadBalancer": {}}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Like kube-apiserver, keep allocated values a client left out (clusterIP, nodePorts)."""
        super().prepare_for_update(new, old)
        ns, os_ = new.get("spec"), old.get("spec") or {}
        if not isinstance(ns, dict) or ns.get("type") == "ExternalName":
            return
        if not ns.get("clusterIP") and os_.get("clusterIP"):
            ns["clusterIP"] = os_["clusterIP"]
            ns.setdefault("clusterIPs", copy.deepcopy(os_.get("clusterIPs") or [os_["clusterIP"]]))
        if ns.get("type") in ("NodePort", "LoadBalancer"):
            old_ports = {(p.get("port"), p.get("protocol")): p for p in os_.get("ports") or ()}
            for port in ns.get("ports") or ():
                prev = old_ports.get((port.get("port"), port.get("protocol")))
                if prev and prev.get("nodePort") and not port.get("nodePort"):
                    port["nodePort"] = prev["nodePort"]

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return causes + [required("spec")]
        stype = spec.get("type")
        if stype not in SERVICE_TYPES:
            causes.append(not_supported("spec.type", stype, SERVICE_TYPES))
        ports = spec.get("ports") or []
        headless = spec.get("clusterIP") == "None"
        if stype == "ExternalName":
            if not spec.get("externalName"):
                causes.append(required("spec.externalName"))
            else:
                causes += [invalid_value("spec.externalName", spec["externalName"], m)
                           for m in dns1123_subdomain(str(spec["externalName"]).rstrip("."))]
        elif not ports and not headless:
            causes.append(required("spec.ports"))
        names: set[str] = set()
        for i, port in enumerate(ports):
            p = f"spec.ports[{i}]"
            name = port.get("name")
            if len(ports) > 1 and not name:
                causes.append(required(f"{p}.name"))
            elif name:
                causes += [invalid_value(f"{p}.name", name, m) for m in dns1123_label(name)]
                if name in names:
                    causes.append(duplicate(f"{p}.name", name))
                names.add(name)
            value = port.get("port")
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65535:
                causes.append(invalid_value(f"{p}.port", value, "must be between 1 and 65535, inclusive"))
            target = port.get("targetPort")
            if isinstance(target, int) and not 1 <= target <= 65535:
                causes.append(invalid_value(f"{p}.targetPort", target, "must be between 1 and 65535, inclusive"))
            elif isinstance(target, str) and (not target or len(target) > 15 or dns1123_label(target)):
                causes.append(invalid_value(f"{p}.targetPort", target,
                                            "must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)"))
            proto = port.get("protocol")
            if proto not in ("TCP", "UDP", "SCTP"):
                causes.append(not_supported(f"{p}.protocol", proto, ("SCTP", "TCP", "UDP")))
        affinity = spec.get("sessionAffinity")
        if affinity not in ("ClientIP", "None"):
            causes.append(not_supported("spec.sessionAffinity", affinity, ("ClientIP", "None")))
        causes += validate_labels(spec.get("selector"), "spec.selector")
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        causes = super().validate_update(new, old)
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        if os_.get("clusterIP") and ns.get("type") != "ExternalName" and os_.get("type") != "ExternalName":
            causes += validate_immutable(ns.get("clusterIP"), os_.get("clusterIP"), "spec.clusterIP")
        return causes

    def field_attrs(self, obj: Obj) -> dict[str, str]:
        attrs = super().field_attrs(obj)
        spec = obj.get("spec") or {}
        attrs["spec.clusterIP"] = _s(spec.get("clusterIP"))
        attrs["spec.type"] = _s(spec.get("type"))
        return attrs


class NamespaceStrategy(_Core):
    columns = P.NAMESPACE_COLUMNS
    name_validator = staticmethod(dns1123_label)
    field_selector_keys = ("status.phase",)

    def default(self, obj: Obj) -> None:
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if name:
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name

    def prepare_for_create(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if "kubernetes" not in spec.setdefault("finalizers", []):
            spec["finalizers"].append("kubernetes")
        obj["status"] = {"phase": "Active"}

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        new["spec"] = copy.deepcopy(old.get("spec") or {})

    def field_attrs(self, obj: Obj) -> dict[str, str]:
        attrs = super().field_attrs(obj)
        attrs["status.phase"] = _s((obj.get("status") or {}).get("phase"))
        return attrs


_DATA_KEY = re.compile(r"^[-._a-zA-Z0-9]+\Z")
_MAX_DATA = 1024 * 1024


def validate_data_keys(keys: Any, path: str) -> Causes:
    """``IsConfigMapKey``: ``[-._a-zA-Z0-9]+``, ≤253 chars, not ``.``/``..``/``..x``."""
    causes: Causes = []
    for key in keys:
        key = str(key)
        msgs = []
        if len(key) > 253:
            msgs.append("must be no more than 253 characters")
        if not _DATA_KEY.match(key):
            msgs.append("a valid config key must consist of alphanumeric characters, '-', '_' or '.' "
                        "(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for "
                        "validation is '[-._a-zA-Z0-9]+')")
        if key in (".", "..") or key.startswith(".."):
            msgs.append("must not be '.' or '..' or start with '..'")
        causes += [invalid_value(path, key, m) for m in msgs]
    return causes


class ConfigMapStrategy(_Core):
    has_generation = False
    columns = P.CONFIGMAP_COLUMNS

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
        causes += validate_data_keys(data, "data")
        causes += validate_data_keys(binary, "binaryData")
        for key in set(data) & set(binary):
            causes.append(invalid_value("data", key, "duplicate of key present in binaryData"))
        size = sum(len(str(k)) + len(str(v or "").encode()) for k, v in data.items())
        size += sum(len(str(k)) + len(str(v or "")) * 3 // 4 for k, v in binary.items())
        if size > _MAX_DATA:
            # field.NewPath("") — the whole object — prints as "[]" in Go
            causes.append(too_long("[]", _MAX_DATA))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return super().validate_update(new, old) + _immutable_data(new, old, ("data", "binaryData"))


def _immutable_data(new: Obj, old: Obj, keys: tuple[str, ...]) -> Causes:
    if not old.get("immutable"):
        return []
    causes: Causes = []
    if not new.get("immutable"):
        causes.append(forbidden("immutable", "field is immutable when `immutable` is set"))
    for key in keys:
        if (new.get(key) or {}) != (old.get(key) or {}):
            causes.append(forbidden(key, "field is immutable when `immutable` is set"))
    return causes


_SECRET_KEYS = {
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
}


class SecretStrategy(_Core):
    has_generation = False
    columns = P.SECRET_COLUMNS
    field_selector_keys = ("type",)
    write_only = ("stringData",)

    def default(self, obj: Obj) -> None:
        obj.setdefault("type", "Opaque")
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):  # write-only: folded into data, as the API does
            data = obj.get("data")
            if not isinstance(data, dict):
                data = obj["data"] = {}
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        data = obj.get("data") or {}
        causes += validate_data_keys(data, "data")
        size = 0
        for key, value in data.items():
            try:
                size += len(base64.b64decode(str(value or ""), validate=True))
            except (binascii.Error, ValueError):
                causes.append(invalid_value(f"data[{key}]", "<secret contents redacted>",
                                            "illegal base64 data"))
        if size > _MAX_DATA:
            causes.append(too_long("data", _MAX_DATA))
        stype = obj.get("type")
        for key in _SECRET_KEYS.get(stype, ()):
            if key not in data:
                causes.append(required(f"data[{key}]"))
        if stype == "kubernetes.io/service-account-token":
            ann = (obj.get("metadata") or {}).get("annotations") or {}
            if not ann.get("kubernetes.io/service-account.name"):
                causes.append(required("metadata.annotations[kubernetes.io/service-account.name]"))
        if stype == "kubernetes.io/basic-auth" and not ({"username", "password"} & set(data)):
            causes.append(required("data[username]"))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        causes = super().validate_update(new, old)
        causes += validate_immutable(new.get("type"), old.get("type"), "type")
        return causes + _immutable_data(new, old, ("data",))

    def field_attrs(self, obj: Obj) -> dict[str, str]:
        attrs = super().field_attrs(obj)
        attrs["type"] = _s(obj.get("type"))
        return attrs


class NodeStrategy(_Core):
    columns = P.NODE_COLUMNS
    field_selector_keys = ("spec.unschedulable",)

    def default(self, obj: Obj) -> None:
        status = obj.get("status")
        if isinstance(status, dict) and "capacity" in status and "allocatable" not in status:
            status["allocatable"] = copy.deepcopy(status["capacity"])

    def prepare_for_create(self, obj: Obj) -> None:
        """Nodes keep status on create: kubelets (ours: simulated ones) register with it."""

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        for i, taint in enumerate((obj.get("spec") or {}).get("taints") or ()):
            effect = (taint or {}).get("effect")
            if effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
                causes.append(not_supported(f"spec.taints[{i}].effect", effect,
                                            ("NoExecute", "NoSchedule", "PreferNoSchedule")))
            if not (taint or {}).get("key"):
                causes.append(required(f"spec.taints[{i}].key"))
        return causes

    def field_attrs(self, obj: Obj) -> dict[str, str]:
        attrs = super().field_attrs(obj)
        attrs["spec.unschedulable"] = _s(bool((obj.get("spec") or {}).get("unschedulable")))
        return attrs


ACCESS_MODES = ("ReadOnlyMany", "ReadWriteMany", "ReadWriteOnce", "ReadWriteOncePod")


def _validate_access_modes(modes: Any, path: str) -> Causes:
    if not modes:
        return [required(path, "at least 1 access mode is required")]
    return [not_supported(f"{path}", m, ACCESS_MODES) for m in modes if m not in ACCESS_MODES]


class PVCStrategy(_Core):
    columns = P.PVC_COLUMNS

    def default(self, obj: Obj) -> None:
        default_pvc_spec(obj.get("spec"))

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending"}

    def validate(self, obj: Obj) -> Causes:
        return super().validate(obj) + validate_pvc_spec(obj.get("spec"), "spec")

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        causes = super().validate_update(new, old)
        a, b = copy.deepcopy(new.get("spec") or {}), copy.deepcopy(old.get("spec") or {})
        for spec in (a, b):
            spec.get("resources", {}).pop("requests", None)
            spec.pop("volumeAttributesClassName", None)
        if not b.get("volumeName"):
            a.pop("volumeName", None)
            b.pop("volumeName", None)
        if b.get("storageClassName") is None and a.get("storageClassName"):
            # retroactive default StorageClass assignment (GA in 1.28): nil → a class, once
            a.pop("storageClassName")
            b.pop("storageClassName", None)
        if a != b:
            causes.append(forbidden("spec", "spec is immutable after creation except "
                                    "resources.requests and volumeAttributesClassName for bound claims"))
        return causes


def validate_pvc_spec(spec: Any, path: str) -> Causes:
    if not isinstance(spec, dict):
        return [required(path)]
    causes = _validate_access_modes(spec.get("accessModes"), f"{path}.accessModes")
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if storage is None:
        causes.append(required(f"{path}.resources[storage]"))
    else:
        try:
            if parse_quantity(storage).value <= 0:
                causes.append(invalid_value(f"{path}.resources[storage]", storage, "must be greater than zero"))
        except QuantityError as exc:
            causes.append(invalid_value(f"{path}.resources[storage]", storage, str(exc)))
    mode = spec.get("volumeMode")
    if mode is not None and mode not in ("Block", "Filesystem"):
        causes.append(not_supported(f"{path}.volumeMode", mode, ("Block", "Filesystem")))
    return causes


class PVStrategy(_Core):
    columns = P.PV_COLUMNS

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.setdefault("persistentVolumeReclaimPolicy", "Retain")
            spec.setdefault("volumeMode", "Filesystem")

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Pending"}

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        spec = obj.get("spec") or {}
        causes += _validate_access_modes(spec.get("accessModes"), "spec.accessModes")
        if not (spec.get("capacity") or {}).get("storage"):
            causes.append(required("spec.capacity[storage]"))
        policy = spec.get("persistentVolumeReclaimPolicy")
        if policy not in ("Delete", "Recycle", "Retain"):
            causes.append(not_supported("spec.persistentVolumeReclaimPolicy", policy,
                                        ("Delete", "Recycle", "Retain")))
        return causes


class EventStrategy(_Core):
    has_generation = False
    columns = P.EVENT_COLUMNS
    field_selector_keys = tuple(f"involvedObject.{k}" for k in (
        "kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")) + (
        "reason", "reportingComponent", "source", "type")

    name_column = False  # kubectl's event table leads with LAST SEEN; NAME is a wide column

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        inv = obj.get("involvedObject") if "involvedObject" in obj else obj.get("regarding")
        ns = (obj.get("metadata") or {}).get("namespace")
        if self.kind == "Event" and "regarding" not in obj and not isinstance(inv, dict):
            causes.append(required("involvedObject"))
        elif isinstance(inv, dict) and inv.get("namespace") and ns and inv["namespace"] != ns:
            causes.append(invalid_value("involvedObject.namespace", inv["namespace"],
                                        "does not match event.namespace"))
        return causes

    def field_attrs(self, obj: Obj) -> dict[str, str]:
        attrs = super().field_attrs(obj)
        inv = obj.get("involvedObject") or obj.get("regarding") or {}
        for key in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath"):
            attrs[f"involvedObject.{key}"] = _s(inv.get(key))
        attrs["reason"] = _s(obj.get("reason"))
        attrs["reportingComponent"] = _s(obj.get("reportingComponent") or obj.get("reportingController"))
        source = obj.get("source") or {}
        attrs["source"] = _s(source.get("component") if isinstance(source, dict) else
                             obj.get("deprecatedSource", {}).get("component"))
        attrs["type"] = _s(obj.get("type"))
        return attrs


class EndpointsStrategy(_Core):
    has_generation = False
    columns = P.ENDPOINTS_COLUMNS
    # kube-apiserver 1.33+ warns on every v1 Endpoints request (KEP-4974)
    deprecation_warning = "v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice"

    def default(self, obj: Obj) -> None:
        for subset in obj.get("subsets") or ():
            for port in (subset or {}).get("ports") or ():
                if isinstance(port, dict):
                    port.setdefault("protocol", "TCP")

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        loopback_ok = control_plane_endpoints(obj)
        for i, subset in enumerate(obj.get("subsets") or ()):
            for key in ("addresses", "notReadyAddresses"):
                for j, addr in enumerate((subset or {}).get(key) or ()):
                    if not (addr or {}).get("ip"):
                        causes.append(required(f"subsets[{i}].{key}[{j}].ip"))
                    else:
                        causes += validate_non_special_ip(addr["ip"], f"subsets[{i}].{key}[{j}].ip",
                                                          loopback_ok=loopback_ok)
        return causes


class ServiceAccountStrategy(_Core):
    has_generation = False
    columns = P.SERVICEACCOUNT_COLUMNS


class ResourceQuotaStrategy(_Core):
    columns = P.RESOURCEQUOTA_COLUMNS

    def prepare_for_create(self, obj: Obj) -> None:
        obj.pop("status", None)

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        for name, value in ((obj.get("spec") or {}).get("hard") or {}).items():
            try:
                if parse_quantity(value).value < 0:
                    causes.append(invalid_value(f"spec.hard[{name}]", value, "must be greater than or equal to 0"))
            except QuantityError as exc:
                causes.append(invalid_value(f"spec.hard[{name}]", value, str(exc)))
        return causes


class LimitRangeStrategy(_Core):
    columns = P.LIMITRANGE_COLUMNS

    def default(self, obj: Obj) -> None:
        """``SetDefaults_LimitRangeItem``: containers default limits to max, requests to the
        default limit (or min)."""
        for item in (obj.get("spec") or {}).get("limits") or ():
            if not isinstance(item, dict) or item.get("type") != "Container":
                continue
            default = item.setdefault("default", {})
            for name, value in (item.get("max") or {}).items():
                default.setdefault(name, value)
            request = item.setdefault("defaultRequest", {})
            for name, value in default.items():
                request.setdefault(name, value)
            for name, value in (item.get("min") or {}).items():
                request.setdefault(name, value)
            if not default:
                item.pop("default")
            if not request:
                item.pop("defaultRequest")

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        for i, item in enumerate((obj.get("spec") or {}).get("limits") or ()):
            if not (item or {}).get("type"):
                causes.append(required(f"spec.limits[{i}].type"))
        return causes


class ReplicationControllerStrategy(_Core):
    columns = P.RC_COLUMNS
    field_selector_keys = ("status.replicas",)

    def default(self, obj: Obj) -> None:
        spec = obj.setdefault("spec", {})
        if not isinstance(spec, dict):
            return
        spec.setdefault("replicas", 1)
        spec.setdefault("minReadySeconds", 0)
        template = spec.get("template")
        labels = ((template or {}).get("metadata") or {}).get("labels") if isinstance(template, dict) else None
        if labels:
            if not spec.get("selector"):
                spec["selector"] = dict(labels)
            meta = obj.setdefault("metadata", {})
            if not meta.get("labels"):
                meta["labels"] = dict(labels)
        default_pod_template(template)

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"replicas": 0}

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        spec = obj.get("spec") or {}
        causes += validate_nonnegative(spec.get("replicas"), "spec.replicas")
        selector = spec.get("selector") or {}
        if not selector:
            causes.append(required("spec.selector"))
        causes += validate_labels(selector, "spec.selector")
        template = spec.get("template")
        if template is None:
            causes.append(required("spec.template"))
        else:
            labels = (template.get("metadata") or {}).get("labels") or {}
            if selector and any(labels.get(k) != v for k, v in selector.items()):
                causes.append(invalid_value("spec.template.metadata.labels", labels,
                                            "`selector` does not match template `labels`"))
            causes += validate_pod_template(template, "spec.template", allowed_restart=("Always",))
        return causes

    def field_attrs(self, obj: Obj) -> dict[str, str]:
        attrs = super().field_attrs(obj)
        attrs["status.replicas"] = _s((obj.get("status") or {}).get("replicas", 0))
        return attrs


class PodTemplateStrategy(_Core):
    columns = P.PODTEMPLATE_COLUMNS

    def default(self, obj: Obj) -> None:
        default_pod_template(obj.get("template"))

    def validate(self, obj: Obj) -> Causes:
        return super().validate(obj) + validate_pod_template(obj.get("template"), "template")


class BindingStrategy(_Core):
    has_generation = False

    def validate(self, obj: Obj) -> Causes:
        causes = super().validate(obj)
        if not (obj.get("target") or {}).get("name"):
            causes.append(required("target.name"))
        return causes


STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    ("", "Binding"): BindingStrategy,
    ("", "ConfigMap"): ConfigMapStrategy,
    ("", "Endpoints"): EndpointsStrategy,
    ("", "Event"): EventStrategy,
    ("", "LimitRange"): LimitRangeStrategy,
    ("", "Namespace"): NamespaceStrategy,
    ("", "Node"): NodeStrategy,
    ("", "PersistentVolumeClaim"): PVCStrategy,
    ("", "PersistentVolume"): PVStrategy,
    ("", "Pod"): PodStrategy,
    ("", "PodTemplate"): PodTemplateStrategy,
    ("", "ReplicationController"): ReplicationControllerStrategy,
    ("", "ResourceQuota"): ResourceQuotaStrategy,
    ("", "Secret"): SecretStrategy,
    ("", "ServiceAccount"): ServiceAccountStrategy,
    ("", "Service"): ServiceStrategy,
}
