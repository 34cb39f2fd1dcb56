"""Baseline-level Pod Security checks (``policy/check_*.go``), word for word in their messages."""

from __future__ import annotations

from typing import Any

from vkube.api.podsecurity._helpers import (
    CheckFn, CheckResult, OK, Obj, containers, go_quote, join_quote, plural, seccomp_profiles,
    security_context, who_set, sub, user_namespace)


def privileged_1_0(meta: Obj, spec: Obj) -> CheckResult:
    bad = [c.get("name", "") for c in containers(spec) if (security_context(c) or {}).get("privileged") is True]
    if not bad:
        return OK
    return CheckResult(False, "privileged", f"{plural('container', 'containers', len(bad))} "
                       f"{join_quote(bad)} must not set securityContext.privileged=true")


def host_namespaces_1_0(meta: Obj, spec: Obj) -> CheckResult:
    found = [f"{key}=true" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key) is True]
    return CheckResult(False, "host namespaces", ", ".join(found)) if found else OK


def host_path_volumes_1_0(meta: Obj, spec: Obj) -> CheckResult:
    bad = [v.get("name", "") for v in spec.get("volumes") or () if v.get("hostPath") is not None]
    if not bad:
        return OK
    return CheckResult(False, "hostPath volumes",
                       f"{plural('volume', 'volumes', len(bad))} {join_quote(bad)}")


def host_ports_1_0(meta: Obj, spec: Obj) -> CheckResult:
    bad: list[str] = []
    ports: set[str] = set()
    for c in containers(spec):
        used = [str(p.get("hostPort")) for p in c.get("ports") or () if p.get("hostPort") not in (None, 0)]
        if used:
            bad.append(c.get("name", ""))
            ports.update(used)
    if not bad:
        return OK
    return CheckResult(False, "hostPort", (
        f"{plural('container', 'containers', len(bad))} {join_quote(bad)} "
        f"{plural('uses', 'use', len(bad))} {plural('hostPort', 'hostPorts', len(ports))} "
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
    for c in containers(spec):
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
        f"{plural('container', 'containers', len(bad))} {join_quote(sorted(bad))} "
        f"{plural('uses', 'use', len(bad))} "
        f"{plural('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} "
        f"{join_quote(sorted(hosts))}"))


BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"})


def capabilities_baseline_1_0(meta: Obj, spec: Obj) -> CheckResult:
    bad: list[str] = []
    caps: set[str] = set()
    for c in containers(spec):
        added = (sub(security_context(c), "capabilities") or {}).get("add") or ()
        extra = [str(cap) for cap in added if cap not in BASELINE_CAPABILITIES]
        if extra:
            bad.append(c.get("name", ""))
            caps.update(extra)
    if not bad:
        return OK
    return CheckResult(False, "non-default capabilities", (
        f"{plural('container', 'containers', len(bad))} {join_quote(bad)} must not include "
        f"{join_quote(sorted(caps))} in securityContext.capabilities.add"))


def app_armor_1_0(meta: Obj, spec: Obj) -> CheckResult:
    bad_values: set[str] = set()
    pod_profile = sub(security_context(spec), "appArmorProfile")
    pod_bad = pod_profile is not None and pod_profile.get("type") not in ("RuntimeDefault", "Localhost")
    if pod_bad:
        bad_values.add(str(pod_profile.get("type") or ""))  # type: ignore[union-attr]
    bad: list[str] = []
    for c in containers(spec):
        profile = sub(security_context(c), "appArmorProfile")
        if profile is not None and profile.get("type") not in ("RuntimeDefault", "Localhost"):
            bad.append(c.get("name", ""))
            bad_values.add(str(profile.get("type") or ""))
    setters = who_set(pod_bad, bad)
    annotations = []
    for key, value in (meta.get("annotations") or {}).items():
        if key.startswith("container.apparmor.security.beta.kubernetes.io/") and not (
                not value or value == "runtime/default" or str(value).startswith("localhost/")):
            annotations.append(f"{key}={go_quote(str(value))}")
    values = sorted(bad_values)
    if annotations:
        values += sorted(annotations)
        setters.append(plural("annotation", "annotations", len(annotations)))
    if not setters:
        return OK
    return CheckResult(
        False, plural("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
        f"{' and '.join(setters)} must not set AppArmor profile type to {join_quote(values)}")


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

    pod_opts = sub(security_context(spec), "seLinuxOptions")
    pod_bad = pod_opts is not None and not valid(pod_opts)
    bad = [c.get("name", "") for c in containers(spec)
           if (opts := sub(security_context(c), "seLinuxOptions")) is not None and not valid(opts)]
    setters = who_set(pod_bad, bad)
    if not setters:
        return OK
    data = []
    if bad_types:
        data.append(f"{plural('type', 'types', len(bad_types))} {join_quote(sorted(bad_types))}")
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
    for c in containers(spec):
        mount = (security_context(c) or {}).get("procMount")
        if mount is not None and mount != "Default":
            bad.append(c.get("name", ""))
            kinds.add(str(mount))
    if not bad:
        return OK
    return CheckResult(False, "procMount", (
        f"{plural('container', 'containers', len(bad))} {join_quote(bad)} must not set "
        f"securityContext.procMount to {join_quote(sorted(kinds))}"))


def proc_mount_1_35(meta: Obj, spec: Obj) -> CheckResult:
    return OK if user_namespace(spec) else proc_mount_1_0(meta, spec)


_SECCOMP_POD = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER = "container.seccomp.security.alpha.kubernetes.io/"


def _seccomp_annotation_ok(value: Any) -> bool:
    text = str(value)
    return text in ("runtime/default", "docker/default") or text.startswith("localhost/")


def seccomp_baseline_1_0(meta: Obj, spec: Obj) -> CheckResult:
    annotations = meta.get("annotations") or {}
    forbidden: set[str] = set()
    keys = [_SECCOMP_POD] + [_SECCOMP_CONTAINER + str(c.get("name", "")) for c in containers(spec)]
    for key in keys:
        if key in annotations and not _seccomp_annotation_ok(annotations[key]):
            forbidden.add(f"{key}={go_quote(str(annotations[key]))}")
    if not forbidden:
        return OK
    return CheckResult(False, "seccompProfile", (
        f"forbidden {plural('annotation', 'annotations', len(forbidden))} "
        f"{', '.join(sorted(forbidden))}"))




def seccomp_baseline_1_19(meta: Obj, spec: Obj) -> CheckResult:
    return seccomp_profiles(spec, required=False)


SYSCTLS_1_0 = frozenset({"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range",
                          "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range",
                          "net.ipv4.ip_unprivileged_port_start"})
SYSCTLS_1_27 = SYSCTLS_1_0 | {"net.ipv4.ip_local_reserved_ports"}
SYSCTLS_1_29 = SYSCTLS_1_27 | {"net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
                                 "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"}
SYSCTLS_1_32 = SYSCTLS_1_29 | {"net.ipv4.tcp_rmem", "net.ipv4.tcp_wmem"}
SYSCTLS_1_37 = SYSCTLS_1_32 | {"net.ipv4.tcp_slow_start_after_idle", "net.ipv4.tcp_notsent_lowat"}


def sysctls(allowed: frozenset[str]) -> CheckFn:
    def check(meta: Obj, spec: Obj) -> CheckResult:
        names = [str(s.get("name", "")) for s in (security_context(spec) or {}).get("sysctls") or ()]
        bad = [name for name in names if name not in allowed]
        return CheckResult(False, "forbidden sysctls", ", ".join(bad)) if bad else OK
    return check


def windows_host_process_1_0(meta: Obj, spec: Obj) -> CheckResult:
    def on(obj: Obj) -> bool:
        return (sub(security_context(obj), "windowsOptions") or {}).get("hostProcess") is True

    bad = [c.get("name", "") for c in containers(spec) if on(c)]
    setters = who_set(on(spec), bad)
    if not setters:
        return OK
    return CheckResult(False, "hostProcess", (
        f"{' and '.join(setters)} must not set securityContext.windowsOptions.hostProcess=true"))
