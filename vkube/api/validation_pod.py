"""Pod spec validation (``ValidatePodSpec`` and friends), shared by Pods and every template,
and the Pod update rule ("pod updates may not change fields other than …")."""

from __future__ import annotations

from typing import Any

from vkube.api.meta import Obj
from vkube.api.quantity import QuantityError, parse_quantity
from vkube.api.validation import (
    Causes, dns1123_label, dns1123_subdomain, duplicate, forbidden, invalid_value, not_supported,
    required, validate_labels, validate_nonnegative,
)


__all__ = ["validate_pod_spec", "validate_pod_template", "validate_pod_update"]

RESTART_POLICIES = ("Always", "OnFailure", "Never")
DNS_POLICIES = ("ClusterFirstWithHostNet", "ClusterFirst", "Default", "None")
PROTOCOLS = ("SCTP", "TCP", "UDP")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")
_IANA_SVC = "must contain at least one letter (a-z)"


def _port_number(value: Any, path: str, *, allow_zero: bool = False) -> Causes:
    if not isinstance(value, int) or isinstance(value, bool) or not (
        (0 if allow_zero else 1) <= value <= 65535
    ):
        return [invalid_value(path, value, "must be between 1 and 65535, inclusive")]
    return []


def _validate_ports(ports: Any, path: str) -> Causes:
    causes: Causes = []
    names: set[str] = set()
    for i, port in enumerate(ports or ()):
        p = f"{path}[{i}]"
        if not isinstance(port, dict):
            causes.append(invalid_value(p, port, "must be an object"))
            continue
        name = port.get("name")
        if name:
            if len(name) > 15 or not dns1123_label(name) == [] or not any(ch.isalpha() for ch in name):
                causes.append(invalid_value(f"{p}.name", name,
                                            "must be no more than 15 characters and a valid IANA_SVC_NAME"))
            elif name in names:
                causes.append(duplicate(f"{p}.name", name))
            names.add(name)
        if "containerPort" not in port:
            causes.append(required(f"{p}.containerPort"))
        else:
            causes += _port_number(port["containerPort"], f"{p}.containerPort")
        if port.get("hostPort") not in (None, 0):
            causes += _port_number(port["hostPort"], f"{p}.hostPort")
        proto = port.get("protocol")
        if proto not in PROTOCOLS:
            causes.append(required(f"{p}.protocol") if not proto else
                          not_supported(f"{p}.protocol", proto, PROTOCOLS))
    return causes


def _validate_resources(res: Any, path: str) -> Causes:
    causes: Causes = []
    if not isinstance(res, dict):
        return causes
    parsed: dict[str, dict[str, Any]] = {}
    for kind in ("limits", "requests"):
        for name, value in (res.get(kind) or {}).items():
            try:
                q = parse_quantity(value).value
            except QuantityError as exc:
                causes.append(invalid_value(f"{path}.{kind}[{name}]", value, str(exc)))
                continue
            if q.numerator < 0:  # Fraction comparison is slow; the sign is the numerator's
                causes.append(invalid_value(f"{path}.{kind}[{name}]", value,
                                            "must be greater than or equal to 0"))
            parsed.setdefault(kind, {})[name] = q
    for name, req in parsed.get("requests", {}).items():
        lim = parsed.get("limits", {}).get(name)
        if lim is not None and req > lim:
            causes.append(invalid_value(f"{path}.requests", res["requests"][name],
                                        f"must be less than or equal to {name} limit of "
                                        f"{res['limits'][name]}"))
    return causes


def _validate_containers(containers: Any, path: str, volumes: set[str], seen: set[str]) -> Causes:
    causes: Causes = []
    for i, c in enumerate(containers or ()):
        p = f"{path}[{i}]"
        if not isinstance(c, dict):
            causes.append(invalid_value(p, c, "must be an object"))
            continue
        name = c.get("name")
        if not name:
            causes.append(required(f"{p}.name"))
        else:
            causes += [invalid_value(f"{p}.name", name, m) for m in dns1123_label(str(name))]
            if name in seen:
                causes.append(duplicate(f"{p}.name", name))
            seen.add(name)
        image = c.get("image")
        if not image or not str(image).strip():
            causes.append(required(f"{p}.image"))
        policy = c.get("imagePullPolicy")
        if policy is not None and policy not in PULL_POLICIES:
            causes.append(not_supported(f"{p}.imagePullPolicy", policy, PULL_POLICIES))
        causes += _validate_ports(c.get("ports"), f"{p}.ports")
        causes += _validate_resources(c.get("resources"), f"{p}.resources")
        mount_paths: set[str] = set()
        for j, mount in enumerate(c.get("volumeMounts") or ()):
            mp = f"{p}.volumeMounts[{j}]"
            vname = (mount or {}).get("name")
            if not vname:
                causes.append(required(f"{mp}.name"))
            elif vname not in volumes:
                causes.append(field_not_found(f"{mp}.name", vname))
            mpath = (mount or {}).get("mountPath")
            if not mpath:
                causes.append(required(f"{mp}.mountPath"))
            elif mpath in mount_paths:
                causes.append(invalid_value(f"{mp}.mountPath", mpath, "must be unique"))
            mount_paths.add(mpath or "")
        env_names = (c.get("env") or ())
        for j, var in enumerate(env_names):
            if not (var or {}).get("name"):
                causes.append(required(f"{p}.env[{j}].name"))
    return causes


def field_not_found(path: str, value: Any) -> dict[str, str]:
    from vkube.api.errors import field_error

    return field_error(path, f'Not found: "{value}"', reason="FieldValueNotFound")


def validate_pod_spec(spec: Any, path: str = "spec", *, extra_volumes: frozenset[str] = frozenset()) -> Causes:
    """``extra_volumes``: names mounts may use besides spec.volumes (a StatefulSet's
    volumeClaimTemplates)."""
    if not isinstance(spec, dict):
        return [required(path)]
    causes: Causes = []
    volumes: set[str] = set()
    for i, vol in enumerate(spec.get("volumes") or ()):
        vp = f"{path}.volumes[{i}]"
        name = (vol or {}).get("name")
        if not name:
            causes.append(required(f"{vp}.name"))
            continue
        causes += [invalid_value(f"{vp}.name", name, m) for m in dns1123_label(str(name))]
        if name in volumes:
            causes.append(duplicate(f"{vp}.name", name))
        volumes.add(name)
    containers = spec.get("containers")
    if not containers:
        causes.append(required(f"{path}.containers"))
    seen: set[str] = set()
    mountable = volumes | extra_volumes
    causes += _validate_containers(containers, f"{path}.containers", mountable, seen)
    causes += _validate_containers(spec.get("initContainers"), f"{path}.initContainers", mountable, seen)
    policy = spec.get("restartPolicy")
    if policy not in RESTART_POLICIES:
        causes.append(required(f"{path}.restartPolicy") if not policy else
                      not_supported(f"{path}.restartPolicy", policy, RESTART_POLICIES))
    dns = spec.get("dnsPolicy")
    if dns is not None and dns not in DNS_POLICIES:
        causes.append(not_supported(f"{path}.dnsPolicy", dns, DNS_POLICIES))
    if dns == "None" and not spec.get("dnsConfig"):
        causes.append(required(f"{path}.dnsConfig", "must provide `dnsConfig` when `dnsPolicy` is None"))
    causes += validate_nonnegative(spec.get("terminationGracePeriodSeconds"),
                                   f"{path}.terminationGracePeriodSeconds")
    ads = spec.get("activeDeadlineSeconds")
    if ads is not None and (not isinstance(ads, int) or ads <= 0):
        causes.append(invalid_value(f"{path}.activeDeadlineSeconds", ads,
                                    "must be between 1 and 2147483647, inclusive"))
    causes += validate_labels(spec.get("nodeSelector"), f"{path}.nodeSelector")
    for key in ("serviceAccountName", "nodeName"):
        value = spec.get(key)
        if value:
            causes += [invalid_value(f"{path}.{key}", value, m) for m in dns1123_subdomain(str(value))]
    for i, tol in enumerate(spec.get("tolerations") or ()):
        op = (tol or {}).get("operator", "Equal")
        if op not in ("Equal", "Exists"):
            causes.append(not_supported(f"{path}.tolerations[{i}].operator", op, ("Equal", "Exists")))
        elif op == "Exists" and (tol or {}).get("value"):
            causes.append(invalid_value(f"{path}.tolerations[{i}].operator", tol.get("value"),
                                        "value must be empty when `operator` is 'Exists'"))
        effect = (tol or {}).get("effect")
        if effect and effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
            causes.append(not_supported(f"{path}.tolerations[{i}].effect", effect,
                                        ("NoExecute", "NoSchedule", "PreferNoSchedule")))
    return causes


def validate_pod_template(template: Any, path: str, *, allowed_restart: tuple[str, ...] = (),
                          extra_volumes: frozenset[str] = frozenset()) -> Causes:
    """A template's metadata labels and spec; ``allowed_restart`` narrows restartPolicy."""
    if not isinstance(template, dict):
        return [required(path)]
    causes = validate_labels((template.get("metadata") or {}).get("labels"), f"{path}.metadata.labels")
    spec = template.get("spec")
    causes += validate_pod_spec(spec, f"{path}.spec", extra_volumes=extra_volumes)
    policy = (spec or {}).get("restartPolicy") if isinstance(spec, dict) else None
    if allowed_restart and policy in RESTART_POLICIES and policy not in allowed_restart:
        causes.append(not_supported(f"{path}.spec.restartPolicy", policy, allowed_restart))
    if isinstance(spec, dict) and spec.get("ephemeralContainers"):
        causes.append(forbidden(f"{path}.spec.ephemeralContainers",
                                "ephemeral containers not allowed in pod template"))
    return causes


_UPDATE_MSG = ("pod updates may not change fields other than `spec.containers[*].image`,"
               "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
               "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
               "(allow it to be set to 1 if it was previously negative)")


_MUTABLE = frozenset({"activeDeadlineSeconds", "tolerations", "schedulingGates"})
_ABSENT = object()


def _equal_but(a: dict, b: dict, skip: frozenset[str]) -> bool:
    """Pod specs equal but for ``skip`` and the containers' images."""
    for key in a.keys() | b.keys():
        if key in skip:
            continue
        x, y = a.get(key, _ABSENT), b.get(key, _ABSENT)
        if key in ("containers", "initContainers") and isinstance(x, list) and isinstance(y, list):
            if len(x) != len(y) or not all(_same_but_image(c, d) for c, d in zip(x, y)):
                return False
        elif x != y:
            return False
    return True


def _same_but_image(c: Any, d: Any) -> bool:
    if not (isinstance(c, dict) and isinstance(d, dict)):
        return c == d
    if c.keys() - {"image"} != d.keys() - {"image"}:
        return False
    return all(v == d[k] for k, v in c.items() if k != "image")


def validate_pod_update(new: Obj, old: Obj) -> Causes:
    """``ValidatePodUpdate``: spec is immutable except images, activeDeadlineSeconds (may only
    be set or shortened), added tolerations, and schedulingGates (may only be removed)."""
    ns, os_ = new.get("spec") or {}, old.get("spec") or {}
    causes: Causes = []
    old_ads, new_ads = os_.get("activeDeadlineSeconds"), ns.get("activeDeadlineSeconds")
    if old_ads is not None and (new_ads is None or new_ads > old_ads):
        causes.append(invalid_value("spec.activeDeadlineSeconds", new_ads,
                                    "must be less than or equal to previous value"))
    old_tols = os_.get("tolerations") or []
    new_tols = ns.get("tolerations") or []
    if any(t not in new_tols for t in old_tols):
        causes.append(forbidden("spec.tolerations", "existing toleration can not be modified except its tolerationSeconds"))
    old_gates = os_.get("schedulingGates") or []
    if any(g not in old_gates for g in ns.get("schedulingGates") or []):
        causes.append(forbidden("spec.schedulingGates", "only deletion is allowed, but found new scheduling gate"))
    # compare everything else with the mutable fields masked out (no copies: a 40-container
    # pod is compared field by field, images skipped)
    skip = _MUTABLE if os_.get("nodeName") else _MUTABLE | {"nodeName"}  # nodeName: set once
    if len(ns.get("containers") or ()) != len(os_.get("containers") or ()) or \
            not _equal_but(ns, os_, skip):
        causes.append(forbidden("spec", _UPDATE_MSG))
    for key in ("containers", "initContainers"):
        for i, c in enumerate(ns.get(key) or ()):
            if isinstance(c, dict) and not c.get("image"):
                causes.append(required(f"spec.{key}[{i}].image"))
    return causes
