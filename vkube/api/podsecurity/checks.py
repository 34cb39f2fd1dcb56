"""Every check of the Pod Security Standards, as ``k8s.io/pod-security-admission/policy`` has them.

A check reads a pod's ``metadata`` and ``spec`` (plain dicts, JSON field names) and returns a
:class:`CheckResult`. Reasons and details are Kubernetes' own words, character for character, because
users grep for them and kube-apiserver puts them in the Forbidden message. Lists of names keep the
pod's container order (init, regular, ephemeral) and sets are sorted, exactly as upstream does.

Each :class:`Check` has versions (the policy version from which a variant applies) and restricted
variants may *override* baseline checks they supersede (``restrictedVolumes`` replaces
``hostPathVolumes``). :mod:`vkube.api.podsecurity.policy` assembles them per level and version.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["CheckResult", "Check", "VersionedCheck", "CHECKS", "OK"]

Obj = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """``allowed`` or not, with upstream's ``ForbiddenReason`` and ``ForbiddenDetail``."""

    allowed: bool
    reason: str = ""
    detail: str = ""


OK = CheckResult(True)
CheckFn = Callable[[Obj, Obj], CheckResult]


@dataclass(frozen=True, slots=True)
class VersionedCheck:
    minimum: tuple[int, int]
    fn: CheckFn
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Check:
    id: str
    level: str  # "baseline" or "restricted"
    versions: tuple[VersionedCheck, ...]


# -- helpers (policy/helpers.go, visitor.go) --------------------------------------------------

def _plural(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _join_quote(items: list[str]) -> str:
    return '"' + '", "'.join(items) + '"' if items else ""


def go_quote(value: str) -> str:
    """Go's ``%q`` for the strings we meet (printable text): a JSON string without ASCII escaping."""
    return json.dumps(value, ensure_ascii=False)


def _containers(spec: Obj) -> Iterator[Obj]:
    """Init containers, then containers, then ephemeral containers — upstream's visiting order.

    Objects are decoded JSON, so ``dict`` checks suffice (and are much cheaper than ``Mapping``).
    """
    for key in ("initContainers", "containers", "ephemeralContainers"):
        for c in spec.get(key) or ():
            if isinstance(c, dict):
                yield c


def _sc(obj: Obj) -> Obj | None:
    sc = obj.get("securityContext")
    return sc if isinstance(sc, dict) else None


def _sub(obj: Obj | None, key: str) -> Obj | None:
    if obj is None:
        return None
    value = obj.get(key)
    return value if isinstance(value, dict) else None


def _is_zero(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == 0


def _windows(spec: Obj) -> bool:
    os_ = _sub(spec, "os")
    return os_ is not None and os_.get("name") == "windows"


def _user_namespace(spec: Obj) -> bool:
    return spec.get("hostUsers") is False


def _setters(pod_bad: bool, containers: list[str]) -> list[str]:
    out = ["pod"] if pod_bad else []
    if containers:
        out.append(f"{_plural('container', 'containers', len(containers))} {_join_quote(containers)}")
    return out


# -- baseline ---------------------------------------------------------------------------------

def privileged_1_0(meta: Obj, spec: Obj) -> CheckResult:
    bad = [c.get("name", "") for c in _containers(spec) if (_sc(c) or {}).get("privileged") is True]
    if not bad:
        return OK
    return CheckResult(False, "privileged", f"{_plural('container', 'containers', len(bad))} "
                       f"{_join_quote(bad)} must not set securityContext.privileged=true")


def host_namespaces_1_0(meta: Obj, spec: Obj) -> CheckResult:
    found = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key) is True]
    return CheckResult(False, "host namespaces", ", ".join(found)) if found else OK


def host_path_volumes_1_0(meta: Obj, spec: Obj) -> CheckResult:
    bad = [v.get("name", "") for v in spec.get("volumes") or () if v.get("hostPath") is not None]
    if not bad:
        return OK
    return CheckResult(False, "hostPath volumes",
                       f"{_plural('volume', 'volumes', len(bad))} {_join_quote(bad)}")


def host_ports_1_0(meta: Obj, spec: Obj) -> CheckResult:
    bad: list[str] = []
    ports: set[str] = set()
    for c in _containers(spec):
        used = [str(p.get("hostPort")) for p in c.get("ports") or () if p.get("hostPort") not in (None, 0)]
        if used:
            bad.append(c.get("name", ""))
            ports.update(used)
    if not bad:
        return OK
    return CheckResult(False, "hostPort", (
        f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} "
        f"{_plural('uses', 'use', len(bad))} {_plural('hostPort', 'hostPorts', len(ports))} "
        f"{', '.join(sorted(ports))}"))


def _probe_hosts(handler: Any) -> list[str]:
    if not isinstance(handler, dict):
        return []
    out = []
    for key in ("httpGet", "tcpSocket"):
        action = handler.get(key)
        if isinstance(action, dict) and action.get("host"):
            out.append(str(action["host"]))
    return out


def host_probes_1_34(meta: Obj, spec: Obj) -> CheckResult:
    bad: set[str] = set()
    hosts: set[str] = set()
    for c in _containers(spec):
        lifecycle = c.get("lifecycle") or {}
        handlers = [c.get("livenessProbe"), c.get("readinessProbe"), c.get("startupProbe"),
                    lifecycle.get("postStart"), lifecycle.get("preStop")]
        for handler in handlers:
            found = _probe_hosts(handler)
            if found:
                bad.add(c.get("name", ""))
                hosts.update(found)
    if not bad:
        return OK
    return CheckResult(False, "probe or lifecycle host", (
        f"{_plural('container', 'containers', len(bad))} {_join_quote(sorted(bad))} "
        f"{_plural('uses', 'use', len(bad))} "
        f"{_plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} "
        f"{_join_quote(sorted(hosts))}"))


BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})


def capabilities_baseline_1_0(meta: Obj, spec: Obj) -> CheckResult:
    bad: list[str] = []
    caps: set[str] = set()
    for c in _containers(spec):
        added = (_sub(_sc(c), "capabilities") or {}).get("add") or ()
        extra = [str(cap) for cap in added if cap not in BASELINE_CAPABILITIES]
        if extra:
            bad.append(c.get("name", ""))
            caps.update(extra)
    if not bad:
        return OK
    return CheckResult(False, "non-default capabilities", (
        f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} must not include "
        f"{_join_quote(sorted(caps))} in securityContext.capabilities.add"))


def app_armor_1_0(meta: Obj, spec: Obj) -> CheckResult:
    bad_values: set[str] = set()
    pod_profile = _sub(_sc(spec), "appArmorProfile")
    pod_bad = pod_profile is not None and pod_profile.get("type") not in ("RuntimeDefault", "Localhost")
    if pod_bad:
        bad_values.add(str(pod_profile.get("type") or ""))  # type: ignore[union-attr]
    bad: list[str] = []
    for c in _containers(spec):
        profile = _sub(_sc(c), "appArmorProfile")
        if profile is not None and profile.get("type") not in ("RuntimeDefault", "Localhost"):
            bad.append(c.get("name", ""))
            bad_values.add(str(profile.get("type") or ""))
    setters = _setters(pod_bad, bad)
    annotations = []
    for key, value in (meta.get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
                not value or value == "runtime/default" or str(value).startswith("localhost/")):
            annotations.append(f"{key}={go_quote(str(value))}")
    values = sorted(bad_values)
    if annotations:
        values += sorted(annotations)
        setters.append(_plural("annotation", "annotations", len(annotations)))
    if not setters:
        return OK
    return CheckResult(
        False, _plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
        f"{' and '.join(setters)} must not set AppArmor profile type to {_join_quote(values)}")


SELINUX_TYPES_1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
SELINUX_TYPES_1_31 = SELINUX_TYPES_1_0 | {"container_engine_t"}


def _se_linux(spec: Obj, allowed: frozenset[str]) -> CheckResult:
    bad_types: set[str] = set()
    flags = {"user": False, "role": False}

    def valid(opts: Obj) -> bool:
        ok = True
        kind = str(opts.get("type") or "")
        if kind not in allowed:
            ok = False
            bad_types.add(kind)
        for key in ("user", "role"):
            if opts.get(key):
                flags[key] = True
                ok = False
        return ok

    pod_opts = _sub(_sc(spec), "seLinuxOptions")
    pod_bad = pod_opts is not None and not valid(pod_opts)
    bad = [c.get("name", "") for c in _containers(spec)
           if (opts := _sub(_sc(c), "seLinuxOptions")) is not None and not valid(opts)]
    setters = _setters(pod_bad, bad)
    if not setters:
        return OK
    data = []
    if bad_types:
        data.append(f"{_plural('type', 'types', len(bad_types))} {_join_quote(sorted(bad_types))}")
    data += [f"{key} may not be set" for key in ("user", "role") if flags[key]]
    return CheckResult(False, "seLinuxOptions", (
        f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: {'; '.join(data)}"))


def se_linux_1_0(meta: Obj, spec: Obj) -> CheckResult:
    return _se_linux(spec, SELINUX_TYPES_1_0)


def se_linux_1_31(meta: Obj, spec: Obj) -> CheckResult:
    return _se_linux(spec, SELINUX_TYPES_1_31)


def proc_mount_1_0(meta: Obj, spec: Obj) -> CheckResult:
    bad: list[str] = []
    kinds: set[str] = set()
    for c in _containers(spec):
        mount = (_sc(c) or {}).get("procMount")
        if mount is not None and mount != "Default":
            bad.append(c.get("name", ""))
            kinds.add(str(mount))
    if not bad:
        return OK
    return CheckResult(False, "procMount", (
        f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} must not set "
        f"securityContext.procMount to {_join_quote(sorted(kinds))}"))


def proc_mount_1_35(meta: Obj, spec: Obj) -> CheckResult:
    return OK if _user_namespace(spec) else proc_mount_1_0(meta, spec)


_SECCOMP_POD = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER = "container.seccomp.security.alpha.kubernetes.io/"


def _seccomp_annotation_ok(value: Any) -> bool:
    text = str(value)
    return text in ("runtime/default", "docker/default") or text.startswith("localhost/")


def seccomp_baseline_1_0(meta: Obj, spec: Obj) -> CheckResult:
    annotations = meta.get("annotations") or {}
    forbidden: set[str] = set()
    keys = [_SECCOMP_POD] + [_SECCOMP_CONTAINER + str(c.get("name", "")) for c in _containers(spec)]
    for key in keys:
        if key in annotations and not _seccomp_annotation_ok(annotations[key]):
            forbidden.add(f"{key}={go_quote(str(annotations[key]))}")
    if not forbidden:
        return OK
    return CheckResult(False, "seccompProfile", (
        f"forbidden {_plural('annotation', 'annotations', len(forbidden))} "
        f"{', '.join(sorted(forbidden))}"))


def _seccomp(spec: Obj, *, required: bool) -> CheckResult:
    values: set[str] = set()
    profile = _sub(_sc(spec), "seccompProfile")
    pod_bad = profile is not None and profile.get("type") not in ("RuntimeDefault", "Localhost")
    if pod_bad:
        values.add(str(profile.get("type") or ""))  # type: ignore[union-attr]
    pod_set = profile is not None and not pod_bad
    explicit: list[str] = []
    implicit: list[str] = []
    for c in _containers(spec):
        cp = _sub(_sc(c), "seccompProfile")
        if cp is not None:
            if cp.get("type") not in ("RuntimeDefault", "Localhost"):
                explicit.append(c.get("name", ""))
                values.add(str(cp.get("type") or ""))
        elif not pod_set:
            implicit.append(c.get("name", ""))
    setters = _setters(pod_bad, explicit)
    if setters:
        return CheckResult(False, "seccompProfile", (
            f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
            f"{_join_quote(sorted(values))}"))
    if required and implicit:
        return CheckResult(False, "seccompProfile", (
            f"pod or {_plural('container', 'containers', len(implicit))} {_join_quote(implicit)} "
            'must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"'))
    return OK


def seccomp_baseline_1_19(meta: Obj, spec: Obj) -> CheckResult:
    return _seccomp(spec, required=False)


_SYSCTLS_1_0 = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
                          "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
                          "net.ipv4.ip_unprivileged_port_start"})
_SYSCTLS_1_27 = _SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
_SYSCTLS_1_29 = _SYSCTLS_1_27 | {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                                 "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
_SYSCTLS_1_32 = _SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
_SYSCTLS_1_37 = _SYSCTLS_1_32 | {"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"}


def _sysctls(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> CheckResult:
        names = [str(s.get("name", "")) for s in (_sc(spec) or {}).get("sysctls") or ()]
        bad = [name for name in names if name not in allowed]
        return CheckResult(False, "forbidden sysctls", ", ".join(bad)) if bad else OK
    return check


def windows_host_process_1_0(meta: Obj, spec: Obj) -> CheckResult:
    def on(obj: Obj) -> bool:
        return (_sub(_sc(obj), "windowsOptions") or {}).get("hostProcess") is True

    bad = [c.get("name", "") for c in _containers(spec) if on(c)]
    setters = _setters(on(spec), bad)
    if not setters:
        return OK
    return CheckResult(False, "hostProcess", (
        f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true"))


# -- restricted -------------------------------------------------------------------------------

def allow_privilege_escalation_1_8(meta: Obj, spec: Obj) -> CheckResult:
    bad = [c.get("name", "") for c in _containers(spec)
           if (_sc(c) or {}).get("allowPrivilegeEscalation") is not False]
    if not bad:
        return OK
    return CheckResult(False, "allowPrivilegeEscalation != false", (
        f"{_plural('container', 'containers', len(bad))} {_join_quote(bad)} must set "
        "securityContext.allowPrivilegeEscalation=false"))


def allow_privilege_escalation_1_25(meta: Obj, spec: Obj) -> CheckResult:
    return OK if _windows(spec) else allow_privilege_escalation_1_8(meta, spec)


def capabilities_restricted_1_22(meta: Obj, spec: Obj) -> CheckResult:
    missing_drop: list[str] = []
    adding: list[str] = []
    caps: set[str] = set()
    for c in _containers(spec):
        capabilities = _sub(_sc(c), "capabilities")
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
        details.append(f"{_plural('container', 'containers', len(missing_drop))} "
                       f'{_join_quote(missing_drop)} must set securityContext.capabilities.drop=["ALL"]')
    if adding:
        details.append(f"{_plural('container', 'containers', len(adding))} {_join_quote(adding)} "
                       f"must not include {_join_quote(sorted(caps))} in securityContext.capabilities.add")
    return CheckResult(False, "unrestricted capabilities", "; ".join(details)) if details else OK


def capabilities_restricted_1_25(meta: Obj, spec: Obj) -> CheckResult:
    return OK if _windows(spec) else capabilities_restricted_1_22(meta, spec)


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
        f"{_plural('volume', 'volumes', len(bad))} {_join_quote(bad)} {_plural('uses', 'use', len(bad))} "
        f"{_plural('restricted volume type', 'restricted volume types', len(kinds))} "
        f"{_join_quote(sorted(kinds))}"))


def run_as_non_root_1_0(meta: Obj, spec: Obj) -> CheckResult:
    pod_value = (_sc(spec) or {}).get("runAsNonRoot")
    pod_bad = pod_value is False
    pod_ok = pod_value is True
    explicit: list[str] = []
    implicit: list[str] = []
    for c in _containers(spec):
        value = (_sc(c) or {}).get("runAsNonRoot")
        if value is not None:
            if value is False:
                explicit.append(c.get("name", ""))
        elif not pod_ok:
            implicit.append(c.get("name", ""))
    setters = _setters(pod_bad, explicit)
    if setters:
        return CheckResult(False, "runAsNonRoot != true",
                           f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicit:
        return CheckResult(False, "runAsNonRoot != true", (
            f"pod or {_plural('container', 'containers', len(implicit))} {_join_quote(implicit)} "
            "must set securityContext.runAsNonRoot=true"))
    return OK


def run_as_non_root_1_35(meta: Obj, spec: Obj) -> CheckResult:
    return OK if _user_namespace(spec) else run_as_non_root_1_0(meta, spec)


def run_as_user_1_23(meta: Obj, spec: Obj) -> CheckResult:
    pod_bad = _is_zero((_sc(spec) or {}).get("runAsUser"))
    bad = [c.get("name", "") for c in _containers(spec) if _is_zero((_sc(c) or {}).get("runAsUser"))]
    setters = _setters(pod_bad, bad)
    if not setters:
        return OK
    return CheckResult(False, "runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0")


def run_as_user_1_35(meta: Obj, spec: Obj) -> CheckResult:
    return OK if _user_namespace(spec) else run_as_user_1_23(meta, spec)


def seccomp_restricted_1_19(meta: Obj, spec: Obj) -> CheckResult:
    return _seccomp(spec, required=True)


def seccomp_restricted_1_25(meta: Obj, spec: Obj) -> CheckResult:
    return OK if _windows(spec) else seccomp_restricted_1_19(meta, spec)


def _v(major_minor: tuple[int, int], fn: CheckFn, *overrides: str) -> VersionedCheck:
    return VersionedCheck(major_minor, fn, tuple(overrides))


CHECKS: tuple[Check, ...] = (
    Check("privileged", "baseline", (_v((1, 0), privileged_1_0),)),
    Check("hostNamespaces", "baseline", (_v((1, 0), host_namespaces_1_0),)),
    Check("hostPathVolumes", "baseline", (_v((1, 0), host_path_volumes_1_0),)),
    Check("hostPorts", "baseline", (_v((1, 0), host_ports_1_0),)),
    Check("hostProbesAndHostLifecycle", "baseline", (_v((1, 34), host_probes_1_34),)),
    Check("capabilities_baseline", "baseline", (_v((1, 0), capabilities_baseline_1_0),)),
    Check("appArmorProfile", "baseline", (_v((1, 0), app_armor_1_0),)),
    Check("seLinuxOptions", "baseline", (_v((1, 0), se_linux_1_0), _v((1, 31), se_linux_1_31))),
    Check("procMount", "baseline", (_v((1, 0), proc_mount_1_0), _v((1, 35), proc_mount_1_35))),
    Check("seccompProfile_baseline", "baseline",
          (_v((1, 0), seccomp_baseline_1_0), _v((1, 19), seccomp_baseline_1_19))),
    Check("sysctls", "baseline", (
        _v((1, 0), _sysctls(_SYSCTLS_1_0)), _v((1, 27), _sysctls(_SYSCTLS_1_27)),
        _v((1, 29), _sysctls(_SYSCTLS_1_29)), _v((1, 32), _sysctls(_SYSCTLS_1_32)),
        _v((1, 37), _sysctls(_SYSCTLS_1_37)))),
    Check("windowsHostProcess", "baseline", (_v((1, 0), windows_host_process_1_0),)),
    Check("allowPrivilegeEscalation", "restricted", (
        _v((1, 8), allow_privilege_escalation_1_8), _v((1, 25), allow_privilege_escalation_1_25))),
    Check("capabilities_restricted", "restricted", (
        _v((1, 22), capabilities_restricted_1_22, "capabilities_baseline"),
        _v((1, 25), capabilities_restricted_1_25, "capabilities_baseline"))),
    Check("procMount_restricted", "restricted", (_v((1, 35), proc_mount_1_0, "procMount"),)),
    Check("restrictedVolumes", "restricted", (_v((1, 0), restricted_volumes_1_0, "hostPathVolumes"),)),
    Check("runAsNonRoot", "restricted", (_v((1, 0), run_as_non_root_1_0), _v((1, 35), run_as_non_root_1_35))),
    Check("runAsUser", "restricted", (_v((1, 23), run_as_user_1_23), _v((1, 35), run_as_user_1_35))),
    Check("seccompProfile_restricted", "restricted", (
        _v((1, 19), seccomp_restricted_1_19, "seccompProfile_baseline"),
        _v((1, 25), seccomp_restricted_1_25, "seccompProfile_baseline"))),
)
