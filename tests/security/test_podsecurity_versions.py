"""Fixture matrix in the spirit of upstream's generated testdata: one compliant pod, one mutation per
check, evaluated at every policy version v1.0…v1.37 and ``latest`` for baseline and restricted. Each
mutation must fail exactly its check, from the version that introduced it, with that check's reason
(restricted checks replacing baseline ones where upstream overrides them)."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest

from vkube.api.podsecurity import LATEST, Evaluator, LevelVersion, Version

GOOD = {
    "metadata": {"name": "p"},
    "spec": {
        "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        "initContainers": [{"name": "init", "image": "i", "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
        "containers": [{"name": "c", "image": "i", "securityContext": {
            "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
        "volumes": [{"name": "data", "emptyDir": {}}],
    },
}
MAX = 37


def sc(pod):
    return pod["spec"]["containers"][0]["securityContext"]


def step(fn: Callable[[dict], None]) -> Callable[[dict], dict]:
    def apply(pod: dict) -> dict:
        pod = copy.deepcopy(pod)
        fn(pod)
        return pod
    return apply


def upto(minor: int, before: str | None, after: str | None) -> Callable[[int], str | None]:
    return lambda v: before if v < minor else after


# mutation, baseline reason by minor, restricted reason by minor (None: allowed)
MATRIX = {
    "privileged": (step(lambda p: sc(p).update(privileged=True)),
                   upto(0, None, "privileged"), upto(0, None, "privileged")),
    "hostNetwork": (step(lambda p: p["spec"].update(hostNetwork=True)),
                    upto(0, None, "host namespaces"), upto(0, None, "host namespaces")),
    "hostPath": (step(lambda p: p["spec"]["volumes"].append({"name": "h", "hostPath": {"path": "/"}})),
                 upto(0, None, "hostPath volumes"), upto(0, None, "restricted volume types")),
    "hostPort": (step(lambda p: p["spec"]["containers"][0].update(ports=[{"containerPort": 80, "hostPort": 80}])),
                 upto(0, None, "hostPort"), upto(0, None, "hostPort")),
    "probeHost": (step(lambda p: p["spec"]["containers"][0].update(
        readinessProbe={"httpGet": {"host": "10.0.0.1", "port": 80}})),
                  upto(34, None, "probe or lifecycle host"), upto(34, None, "probe or lifecycle host")),
    "addCapability": (step(lambda p: sc(p)["capabilities"].update(add=["NET_ADMIN"])),
                      upto(0, None, "non-default capabilities"),
                      upto(22, "non-default capabilities", "unrestricted capabilities")),
    "appArmor": (step(lambda p: sc(p).update(appArmorProfile={"type": "Unconfined"})),
                 upto(0, None, "forbidden AppArmor profile"), upto(0, None, "forbidden AppArmor profile")),
    "seLinux": (step(lambda p: sc(p).update(seLinuxOptions={"type": "spc_t"})),
                upto(0, None, "seLinuxOptions"), upto(0, None, "seLinuxOptions")),
    "procMount": (step(lambda p: sc(p).update(procMount="Unmasked")),
                  upto(0, None, "procMount"), upto(0, None, "procMount")),
    "seccompUnconfined": (step(lambda p: sc(p).update(seccompProfile={"type": "Unconfined"})),
                          upto(19, None, "seccompProfile"), upto(19, None, "seccompProfile")),
    "seccompAnnotation": (step(lambda p: p["metadata"].update(annotations={
        "seccomp.security.alpha.kubernetes.io/pod": "unconfined"})),
                          upto(19, "seccompProfile", None), upto(19, "seccompProfile", None)),
    "sysctlUnsafe": (step(lambda p: p["spec"]["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}])),
                     upto(0, None, "forbidden sysctls"), upto(0, None, "forbidden sysctls")),
    "sysctlKeepalive": (step(lambda p: p["spec"]["securityContext"].update(
        sysctls=[{"name": "net.ipv4.tcp_keepalive_time", "value": "60"}])),
                        upto(29, "forbidden sysctls", None), upto(29, "forbidden sysctls", None)),
    "hostProcess": (step(lambda p: sc(p).update(windowsOptions={"hostProcess": True})),
                    upto(0, None, "hostProcess"), upto(0, None, "hostProcess")),
    "privilegeEscalation": (step(lambda p: sc(p).update(allowPrivilegeEscalation=True)),
                            upto(0, None, None), upto(8, None, "allowPrivilegeEscalation != false")),
    "runAsNonRootFalse": (step(lambda p: p["spec"]["securityContext"].update(runAsNonRoot=False)),
                          upto(0, None, None), upto(0, None, "runAsNonRoot != true")),
    "runAsRoot": (step(lambda p: sc(p).update(runAsUser=0)),
                  upto(0, None, None), upto(23, None, "runAsUser=0")),
    "runAsRootInUserNamespace": (step(lambda p: (sc(p).update(runAsUser=0), p["spec"].update(hostUsers=False))),
                                 upto(0, None, None), lambda v: "runAsUser=0" if 23 <= v < 35 else None),
    "noSeccomp": (step(lambda p: p["spec"]["securityContext"].pop("seccompProfile")),
                  upto(0, None, None), upto(19, None, "seccompProfile")),
    "nfsVolume": (step(lambda p: p["spec"]["volumes"].append({"name": "n", "nfs": {"server": "s", "path": "/"}})),
                  upto(0, None, None), upto(0, None, "restricted volume types")),
}


@pytest.fixture(scope="module")
def evaluator():
    return Evaluator()


@pytest.mark.parametrize("level", ["baseline", "restricted"])
def test_compliant_pod_passes_everywhere(evaluator, level):
    for minor in range(MAX + 1):
        assert evaluator.check(LevelVersion(level, Version(major=1, minor=minor)), GOOD["metadata"], GOOD["spec"]).allowed
    assert evaluator.check(LevelVersion(level, LATEST), GOOD["metadata"], GOOD["spec"]).allowed


@pytest.mark.parametrize("case", sorted(MATRIX))
def test_each_mutation_fails_exactly_its_check_from_its_version(evaluator, case):
    mutate, baseline, restricted = MATRIX[case]
    pod = mutate(GOOD)
    for level, expect in (("baseline", baseline), ("restricted", restricted)):
        for minor in range(MAX + 1):
            got = evaluator.check(LevelVersion(level, Version(major=1, minor=minor)), pod["metadata"], pod["spec"])
            want = expect(minor)
            assert got.reasons == ((want,) if want else ()), (case, level, minor, got.forbidden_detail())
        latest = evaluator.check(LevelVersion(level, LATEST), pod["metadata"], pod["spec"])
        assert latest.reasons == ((expect(MAX),) if expect(MAX) else ()), (case, level, "latest")
    privileged = evaluator.check(LevelVersion("privileged", LATEST), pod["metadata"], pod["spec"])
    assert privileged.allowed
