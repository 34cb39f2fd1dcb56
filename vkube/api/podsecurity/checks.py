"""The registry of every Pod Security check, as ``k8s.io/pod-security-admission/policy`` has them
(the checks themselves are in :mod:`.baseline` and :mod:`.restricted`).

A check reads a pod's ``metadata`` and ``spec`` (plain dicts, JSON field names) and returns a
:class:`CheckResult`. Reasons and details are Kubernetes' own words, character for character, because
users grep for them and kube-apiserver puts them in the Forbidden message. Lists of names keep the
pod's container order (init, regular, ephemeral) and sets are sorted, exactly as upstream does.

Each :class:`Check` has versions (the policy version from which a variant applies) and restricted
variants may *override* baseline checks they supersede (``restrictedVolumes`` replaces
``hostPathVolumes``). :mod:`vkube.api.podsecurity.policy` assembles them per level and version.
"""

from __future__ import annotations

from dataclasses import dataclass

from vkube.api.podsecurity._helpers import OK, CheckFn, CheckResult
from vkube.api.podsecurity.baseline import (
    SYSCTLS_1_0, SYSCTLS_1_27, SYSCTLS_1_29, SYSCTLS_1_32, SYSCTLS_1_37, app_armor_1_0,
    capabilities_baseline_1_0, host_namespaces_1_0, host_path_volumes_1_0, host_ports_1_0,
    host_probes_1_34, privileged_1_0, proc_mount_1_0, proc_mount_1_35, se_linux_1_0, se_linux_1_31,
    seccomp_baseline_1_0, seccomp_baseline_1_19, sysctls, windows_host_process_1_0)
from vkube.api.podsecurity.restricted import (
    allow_privilege_escalation_1_8, allow_privilege_escalation_1_25, capabilities_restricted_1_22,
    capabilities_restricted_1_25, restricted_volumes_1_0, run_as_non_root_1_0, run_as_non_root_1_35,
    run_as_user_1_23, run_as_user_1_35, seccomp_restricted_1_19, seccomp_restricted_1_25)

__all__ = ["CheckResult", "Check", "VersionedCheck", "CHECKS", "OK"]


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
        _v((1, 0), sysctls(SYSCTLS_1_0)), _v((1, 27), sysctls(SYSCTLS_1_27)),
        _v((1, 29), sysctls(SYSCTLS_1_29)), _v((1, 32), sysctls(SYSCTLS_1_32)),
        _v((1, 37), sysctls(SYSCTLS_1_37)))),
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
