"""Restricted-level Pod Security checks (``policy/check_*.go``), word for word in their messages."""

from __future__ import annotations

from vkube.api.podsecurity._helpers import (
    CheckResult, OK, Obj, containers, is_zero, join_quote, plural, seccomp_profiles,
    security_context, who_set, sub, user_namespace, windows)


def allow_privilege_escalation_1_8(meta: Obj, spec: Obj) -> CheckResult:
    bad = [c.get("name", "") for c in containers(spec)
           if (security_context(c) or {}).get("allowPrivilegeEscalation") is not False]
    if not bad:
        return OK
    return CheckResult(False, "allowPrivilegeEscalation != false", (
        f"{plural('container', 'containers', len(bad))} {join_quote(bad)} must set "
        "securityContext.allowPrivilegeEscalation=false"))


def allow_privilege_escalation_1_25(meta: Obj, spec: Obj) -> CheckResult:
    return OK if windows(spec) else allow_privilege_escalation_1_8(meta, spec)


def capabilities_restricted_1_22(meta: Obj, spec: Obj) -> CheckResult:
    missing_drop: list[str] = []
    adding: list[str] = []
    caps: set[str] = set()
    for c in containers(spec):
        capabilities = sub(security_context(c), "capabilities")
        if capabilities is None:
            missing_drop.append(c.get("name", ""))
            continue
        if "ALL" not in (capabilities.get("drop") or ()):
            missing_drop.append(c.get("name", ""))
        extra = [str(cap) for cap in capabilities.get("add") or () if cap != "NET_BIND_SERVICE"]
        if extra:
            adding.append(c.get("name", ""))
            caps.update(extra)
    details = []
    if missing_drop:
        details.append(f"{plural('container', 'containers', len(missing_drop))} "
                       f'{join_quote(missing_drop)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{plural('container', 'containers', len(adding))} {join_quote(adding)} "
                       f"must not include {join_quote(sorted(caps))} in securityContext.capabilities.add")
    return CheckResult(False, "unrestricted capabilities", "; ".join(details)) if details else OK


def capabilities_restricted_1_25(meta: Obj, spec: Obj) -> CheckResult:
    return OK if windows(spec) else capabilities_restricted_1_22(meta, spec)


_ALLOWED_VOLUMES = ("configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image",
                    "persistentVolumeClaim", "projected", "secret")
_RESTRICTED_VOLUMES = (
    "hostPath", "gcePersistentDisk", "awsElasticBlockStore", "gitRepo", "nfs", "iscsi", "glusterfs",
    "rbd", "flexVolume", "cinder", "cephfs", "flocker", "fc", "azureFile", "vsphereVolume", "quobyte",
    "azureDisk", "photonPersistentDisk", "portworxVolume", "scaleIO", "storageos")


def restricted_volumes_1_0(meta: Obj, spec: Obj) -> CheckResult:
    bad: list[str] = []
    kinds: set[str] = set()
    for v in spec.get("volumes") or ():
        if any(v.get(key) is not None for key in _ALLOWED_VOLUMES):
            continue
        bad.append(v.get("name", ""))
        kinds.add(next((key for key in _RESTRICTED_VOLUMES if v.get(key) is not None), "unknown"))
    if not bad:
        return OK
    return CheckResult(False, "restricted volume types", (
        f"{plural('volume', 'volumes', len(bad))} {join_quote(bad)} {plural('uses', 'use', len(bad))} "
        f"{plural('restricted volume type', 'restricted volume types', len(kinds))} "
        f"{join_quote(sorted(kinds))}"))


def run_as_non_root_1_0(meta: Obj, spec: Obj) -> CheckResult:
    pod_value = (security_context(spec) or {}).get("runAsNonRoot")
    pod_bad = pod_value is False
    pod_ok = pod_value is True
    explicit: list[str] = []
    implicit: list[str] = []
    for c in containers(spec):
        value = (security_context(c) or {}).get("runAsNonRoot")
        if value is not None:
            if value is False:
                explicit.append(c.get("name", ""))
        elif not pod_ok:
            implicit.append(c.get("name", ""))
    setters = who_set(pod_bad, explicit)
    if setters:
        return CheckResult(False, "runAsNonRoot != true",
                           f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicit:
        return CheckResult(False, "runAsNonRoot != true", (
            f"pod or {plural('container', 'containers', len(implicit))} {join_quote(implicit)} "
            "must set securityContext.runAsNonRoot=true"))
    return OK


def run_as_non_root_1_35(meta: Obj, spec: Obj) -> CheckResult:
    return OK if user_namespace(spec) else run_as_non_root_1_0(meta, spec)


def run_as_user_1_23(meta: Obj, spec: Obj) -> CheckResult:
    pod_bad = is_zero((security_context(spec) or {}).get("runAsUser"))
    bad = [c.get("name", "") for c in containers(spec) if is_zero((security_context(c) or {}).get("runAsUser"))]
    setters = who_set(pod_bad, bad)
    if not setters:
        return OK
    return CheckResult(False, "runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")


def run_as_user_1_35(meta: Obj, spec: Obj) -> CheckResult:
    return OK if user_namespace(spec) else run_as_user_1_23(meta, spec)


def seccomp_restricted_1_19(meta: Obj, spec: Obj) -> CheckResult:
    return seccomp_profiles(spec, required=True)


def seccomp_restricted_1_25(meta: Obj, spec: Obj) -> CheckResult:
    return OK if windows(spec) else seccomp_restricted_1_19(meta, spec)
