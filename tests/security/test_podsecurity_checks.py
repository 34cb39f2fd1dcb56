"""Every Pod Security check: reasons and details word for word as upstream's policy tests expect."""

from __future__ import annotations

from typing import Any

import pytest

from vkube.api.podsecurity import baseline as b
from vkube.api.podsecurity import restricted as r
from vkube.api.podsecurity.checks import CHECKS


def pod(*containers: dict[str, Any], init: tuple[dict[str, Any], ...] = (), **spec: Any) -> dict:
    return {"containers": list(containers), "initContainers": list(init), **spec}


def ctr(name: str, **sc: Any) -> dict[str, Any]:
    return {"name": name, "securityContext": sc} if sc else {"name": name}


CASES = [
    # (check fn, spec, metadata, reason, detail)
    (b.privileged_1_0, pod(ctr("a"), ctr("b", privileged=False), ctr("d", privileged=True),
                           ctr("e", privileged=True)), {},
     "privileged", 'containers "d", "e" must not set securityContext.privileged=true'),
    (b.privileged_1_0, pod(init=(ctr("i", privileged=True),)), {},
     "privileged", 'container "i" must not set securityContext.privileged=true'),
    (b.host_namespaces_1_0, pod(hostNetwork=True, hostPID=True, hostIPC=True), {},
     "host namespaces", "hostNetwork=true, hostPID=true, hostIPC=true"),
    (b.host_namespaces_1_0, pod(hostPID=True, hostNetwork=False), {}, "host namespaces", "hostPID=true"),
    (b.host_path_volumes_1_0, pod(volumes=[{"name": "a", "hostPath": {"path": "/"}}, {"name": "x", "emptyDir": {}},
                                           {"name": "b", "hostPath": {"path": "/b"}}]), {},
     "hostPath volumes", 'volumes "a", "b"'),
    (b.host_ports_1_0, pod({"name": "a", "ports": [{"containerPort": 1}]},
                           {"name": "b", "ports": [{"containerPort": 1, "hostPort": 20}]}), {},
     "hostPort", 'container "b" uses hostPort 20'),
    (b.host_ports_1_0, pod({"name": "b", "ports": [{"hostPort": 20}, {"hostPort": 10}]},
                           {"name": "c", "ports": [{"hostPort": 30}, {"hostPort": 0}]}), {},
     "hostPort", 'containers "b", "c" use hostPorts 10, 20, 30'),
    (b.host_probes_1_34, pod({"name": "a", "livenessProbe": {"httpGet": {"host": "localhost"}},
                              "readinessProbe": {"tcpSocket": {"host": "127.0.0.1"}},
                              "lifecycle": {"preStop": {"httpGet": {"host": "::1"}}}}), {},
     "probe or lifecycle host", 'container "a" uses probe or lifecycle hosts "127.0.0.1", "::1", "localhost"'),
    (b.host_probes_1_34, pod({"name": "invalid2", "startupProbe": {"httpGet": {"host": "b.com"}}},
                             {"name": "invalid1", "lifecycle": {"postStart": {"tcpSocket": {"host": "a.com"}}}},
                             {"name": "ok", "livenessProbe": {"httpGet": {"host": ""}}}), {},
     "probe or lifecycle host", 'containers "invalid1", "invalid2" use probe or lifecycle hosts "a.com", "b.com"'),
    (b.capabilities_baseline_1_0, pod(ctr("a", capabilities={"add": ["FOO", "BAR", "CHOWN"]}),
                                      ctr("b", capabilities={"add": ["BAZ", "KILL"]}),
                                      ctr("c", capabilities={"add": ["NET_BIND_SERVICE"]})), {},
     "non-default capabilities",
     'containers "a", "b" must not include "BAR", "BAZ", "FOO" in securityContext.capabilities.add'),
    (b.app_armor_1_0, pod(ctr("foo", appArmorProfile={"type": "Unconfined"}),
                          ctr("ok", appArmorProfile={"type": "Localhost", "localhostProfile": "p"})), {},
     "forbidden AppArmor profile", 'container "foo" must not set AppArmor profile type to "Unconfined"'),
    (b.app_armor_1_0, pod(securityContext={"appArmorProfile": {"type": "Unconfined"}}), {},
     "forbidden AppArmor profile", 'pod must not set AppArmor profile type to "Unconfined"'),
    (b.app_armor_1_0, pod(ctr("a")), {"annotations": {
        "container.apparmor.security.beta.kubernetes.io/a": "unconfined",
        "container.apparmor.security.beta.kubernetes.io/b": "bogus",
        "container.apparmor.security.beta.kubernetes.io/c": "runtime/default",
        "container.apparmor.security.beta.kubernetes.io/d": "localhost/x"}},
     "forbidden AppArmor profiles",
     'annotations must not set AppArmor profile type to '
     '"container.apparmor.security.beta.kubernetes.io/a="unconfined"", '
     '"container.apparmor.security.beta.kubernetes.io/b="bogus""'),
    (b.se_linux_1_31, pod(securityContext={"seLinuxOptions": {"type": "bad"}}), {},
     "seLinuxOptions", 'pod set forbidden securityContext.seLinuxOptions: type "bad"'),
    (b.se_linux_1_31, pod(securityContext={"seLinuxOptions": {"user": "u"}}), {},
     "seLinuxOptions", "pod set forbidden securityContext.seLinuxOptions: user may not be set"),
    (b.se_linux_1_31, pod(ctr("d", seLinuxOptions={"type": "container_engine_t"}),
                          ctr("e", seLinuxOptions={"type": "bar"}), ctr("f", seLinuxOptions={"user": "x"}),
                          ctr("g", seLinuxOptions={"role": "x"}),
                          securityContext={"seLinuxOptions": {"type": "foo"}}), {},
     "seLinuxOptions", 'pod and containers "e", "f", "g" set forbidden securityContext.seLinuxOptions: '
     'types "bar", "foo"; user may not be set; role may not be set'),
    (b.se_linux_1_0, pod(ctr("d", seLinuxOptions={"type": "container_engine_t"})), {},
     "seLinuxOptions", 'container "d" set forbidden securityContext.seLinuxOptions: type "container_engine_t"'),
    (b.proc_mount_1_0, pod(ctr("a", procMount="Default"), ctr("d", procMount="Unmasked"),
                           ctr("e", procMount="other")), {},
     "procMount", 'containers "d", "e" must not set securityContext.procMount to "Unmasked", "other"'),
    (b.seccomp_baseline_1_0, pod(ctr("a"), ctr("b"), ctr("c")), {"annotations": {
        "seccomp.security.alpha.kubernetes.io/pod": "unconfined",
        "container.seccomp.security.alpha.kubernetes.io/a": "unconfined",
        "container.seccomp.security.alpha.kubernetes.io/b": "unknown",
        "container.seccomp.security.alpha.kubernetes.io/c": "docker/default"}},
     "seccompProfile", 'forbidden annotations container.seccomp.security.alpha.kubernetes.io/a="unconfined", '
     'container.seccomp.security.alpha.kubernetes.io/b="unknown", seccomp.security.alpha.kubernetes.io/pod="unconfined"'),
    (b.seccomp_baseline_1_19, pod(ctr("a"), ctr("c", seccompProfile={"type": "Unconfined"}),
                                  ctr("d", seccompProfile={"type": "Unconfined"}),
                                  securityContext={"seccompProfile": {"type": "Unconfined"}}), {},
     "seccompProfile", 'pod and containers "c", "d" must not set securityContext.seccompProfile.type to "Unconfined"'),
    (b.sysctls(b.SYSCTLS_1_37), pod(securityContext={"sysctls": [
        {"name": "a"}, {"name": "net.ipv4.tcp_notsent_lowat"}, {"name": "b"}]}), {},
     "forbidden sysctls", "a, b"),
    (b.sysctls(b.SYSCTLS_1_32), pod(securityContext={"sysctls": [{"name": "net.ipv4.tcp_notsent_lowat"}]}), {},
     "forbidden sysctls", "net.ipv4.tcp_notsent_lowat"),
    (b.windows_host_process_1_0, pod(ctr("a", windowsOptions={"hostProcess": True}), ctr("b"),
                                     securityContext={"windowsOptions": {"hostProcess": True}}), {},
     "hostProcess", 'pod and container "a" must not set securityContext.windowsOptions.hostProcess=true'),
    (r.allow_privilege_escalation_1_25, pod(ctr("a"), ctr("b", allowPrivilegeEscalation=True),
                                            ctr("c", allowPrivilegeEscalation=False), init=(ctr("i"),)), {},
     "allowPrivilegeEscalation != false",
     'containers "i", "a", "b" must set securityContext.allowPrivilegeEscalation=false'),
    (r.capabilities_restricted_1_25, pod(ctr("a"), ctr("b", capabilities={"add": ["FOO"]}),
                                         ctr("c", capabilities={"drop": ["ALL"], "add": ["BAR", "BAZ", "CHOWN"]}),
                                         ctr("d", capabilities={"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]})), {},
     "unrestricted capabilities", 'containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; '
     'containers "b", "c" must not include "BAR", "BAZ", "CHOWN", "FOO" in securityContext.capabilities.add'),
    (r.restricted_volumes_1_0, pod(volumes=[
        {"name": "ok", "configMap": {}}, {"name": "b1", "hostPath": {}}, {"name": "b2", "nfs": {}},
        {"name": "b3", "gitRepo": {}}, {"name": "b4", "hostPath": {}}, {"name": "b5", "weird": {}}]), {},
     "restricted volume types", 'volumes "b1", "b2", "b3", "b4", "b5" use restricted volume types '
     '"gitRepo", "hostPath", "nfs", "unknown"'),
    (r.restricted_volumes_1_0, pod(volumes=[{"name": "v", "cephfs": {}}]), {},
     "restricted volume types", 'volume "v" uses restricted volume type "cephfs"'),
    (r.run_as_non_root_1_0, pod(ctr("a")), {},
     "runAsNonRoot != true", 'pod or container "a" must set securityContext.runAsNonRoot=true'),
    (r.run_as_non_root_1_0, pod(ctr("a"), securityContext={"runAsNonRoot": False}), {},
     "runAsNonRoot != true", "pod must not set securityContext.runAsNonRoot=false"),
    (r.run_as_non_root_1_0, pod(ctr("a"), ctr("b", runAsUser=1), ctr("c", runAsNonRoot=False),
                                ctr("d", runAsNonRoot=False), ctr("e", runAsNonRoot=True),
                                securityContext={"runAsNonRoot": True}), {},
     "runAsNonRoot != true", 'containers "c", "d" must not set securityContext.runAsNonRoot=false'),
    (r.run_as_non_root_1_0, pod(ctr("a"), ctr("b", privileged=False), ctr("d", runAsNonRoot=True)), {},
     "runAsNonRoot != true", 'pod or containers "a", "b" must set securityContext.runAsNonRoot=true'),
    (r.run_as_user_1_35, pod(ctr("a", runAsUser=1), ctr("c", runAsUser=0), ctr("d", runAsUser=0),
                             securityContext={"runAsUser": 1}), {},
     "runAsUser=0", 'containers "c", "d" must not set runAsUser=0'),
    (r.run_as_user_1_35, pod(ctr("a"), securityContext={"runAsUser": 0}), {},
     "runAsUser=0", "pod must not set runAsUser=0"),
    (r.seccomp_restricted_1_25, pod(ctr("a"), ctr("b", seccompProfile={"type": "Localhost"})), {},
     "seccompProfile", 'pod or container "a" must set securityContext.seccompProfile.type to '
     '"RuntimeDefault" or "Localhost"'),
    (r.seccomp_restricted_1_25, pod(ctr("a"), securityContext={"seccompProfile": {"type": "Unconfined"}}), {},
     "seccompProfile", 'pod must not set securityContext.seccompProfile.type to "Unconfined"'),
]


@pytest.mark.parametrize("fn, spec, meta, reason, detail", CASES,
                         ids=[f"{case[0].__name__}-{i}" for i, case in enumerate(CASES)])
def test_forbidden_reason_and_detail(fn, spec, meta, reason, detail):
    result = fn(meta, spec)
    assert (result.allowed, result.reason, result.detail) == (False, reason, detail)


ALLOWED = [
    (b.privileged_1_0, pod(ctr("a", privileged=False), ctr("b"))),
    (b.host_namespaces_1_0, pod(hostNetwork=False)),
    (b.capabilities_baseline_1_0, pod(ctr("a", capabilities={"add": sorted(b.BASELINE_CAPABILITIES)}))),
    (b.app_armor_1_0, pod(ctr("a", appArmorProfile={"type": "RuntimeDefault"}))),
    (b.se_linux_1_31, pod(ctr("a", seLinuxOptions={"type": "container_init_t", "level": "s0"}))),
    (b.proc_mount_1_35, pod(ctr("a", procMount="Unmasked"), hostUsers=False)),
    (b.seccomp_baseline_1_19, pod(ctr("a", seccompProfile={"type": "Localhost"}))),
    (b.sysctls(b.SYSCTLS_1_0), pod(securityContext={"sysctls": [{"name": "kernel.shm_rmid_forced"}]})),
    (r.allow_privilege_escalation_1_25, pod(ctr("a"), os={"name": "windows"})),
    (r.capabilities_restricted_1_25, pod(ctr("a"), os={"name": "windows"})),
    (r.run_as_non_root_1_35, pod(ctr("a"), hostUsers=False)),
    (r.run_as_non_root_1_0, pod(ctr("a"), securityContext={"runAsNonRoot": True})),
    (r.run_as_user_1_23, pod(ctr("a", runAsUser=1000))),
    (r.run_as_user_1_35, pod(ctr("a", runAsUser=0), hostUsers=False)),
    (r.seccomp_restricted_1_25, pod(ctr("a"), securityContext={"seccompProfile": {"type": "RuntimeDefault"}})),
    (r.restricted_volumes_1_0, pod(volumes=[{"name": n, k: {}} for n, k in enumerate(r._ALLOWED_VOLUMES)])),
]


@pytest.mark.parametrize("fn, spec", ALLOWED, ids=[f"{case[0].__name__}-{i}" for i, case in enumerate(ALLOWED)])
def test_allowed(fn, spec):
    assert fn({}, spec).allowed


def test_every_upstream_check_is_registered_with_its_versions():
    table = {check.id: (check.level, [v.minimum for v in check.versions]) for check in CHECKS}
    assert table == {
        "privileged": ("baseline", [(1, 0)]), "hostNamespaces": ("baseline", [(1, 0)]),
        "hostPathVolumes": ("baseline", [(1, 0)]), "hostPorts": ("baseline", [(1, 0)]),
        "hostProbesAndHostLifecycle": ("baseline", [(1, 34)]),
        "capabilities_baseline": ("baseline", [(1, 0)]), "appArmorProfile": ("baseline", [(1, 0)]),
        "seLinuxOptions": ("baseline", [(1, 0), (1, 31)]), "procMount": ("baseline", [(1, 0), (1, 35)]),
        "seccompProfile_baseline": ("baseline", [(1, 0), (1, 19)]),
        "sysctls": ("baseline", [(1, 0), (1, 27), (1, 29), (1, 32), (1, 37)]),
        "windowsHostProcess": ("baseline", [(1, 0)]),
        "allowPrivilegeEscalation": ("restricted", [(1, 8), (1, 25)]),
        "capabilities_restricted": ("restricted", [(1, 22), (1, 25)]),
        "procMount_restricted": ("restricted", [(1, 35)]), "restrictedVolumes": ("restricted", [(1, 0)]),
        "runAsNonRoot": ("restricted", [(1, 0), (1, 35)]), "runAsUser": ("restricted", [(1, 23), (1, 35)]),
        "seccompProfile_restricted": ("restricted", [(1, 19), (1, 25)]),
    }


def test_malformed_fields_never_crash():
    weird = {"containers": [None, "x", {"name": "a", "securityContext": "bogus", "ports": []}],
             "securityContext": None, "volumes": []}
    for check in CHECKS:
        for version in check.versions:
            assert version.fn({}, weird).allowed in (True, False)
