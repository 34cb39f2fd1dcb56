"""Values that change on `vkube create --upgrade` change the host: guard rails isolation made
are removed when the new values no longer ask for them (and come back when they do), through
the CLI and the real kubectl as a user meets it."""

from __future__ import annotations

import json

from tests.cli.conftest import cleanup, eventually, make_user
from tests.conftest import kubectl

NS = "vkube-iso3"
POD = "apiVersion: v1\nkind: Pod\nmetadata: {name: %s, namespace: default}\n" \
      "spec: {containers: [{name: c, image: %s}]}\n"


def _host(host_kc, *args: str) -> dict:
    return json.loads(kubectl(host_kc, *args, "-o", "json").stdout)


def _guard_rails(host_kc) -> dict[str, list[str]]:
    out = {}
    for kind in ("resourcequota", "limitrange", "networkpolicy"):
        items = _host(host_kc, "get", kind, "-n", NS)["items"]
        out[kind] = sorted(i["metadata"]["name"] for i in items
                           if i["metadata"]["name"].startswith("vkube-isolation-"))
    return out


TENANT_POLICY = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-in, namespace: default}
spec: {podSelector: {}, policyTypes: [Ingress]}
"""


def _fail() -> None:
    raise AssertionError("not yet")


def _tenant_policies(host_kc) -> int:
    items = _host(host_kc, "get", "networkpolicy", "-n", NS, "-l", "vkube.io/managed-by=iso3")
    return sum(1 for i in items["items"]
               if "vkube.io/object-name" in (i["metadata"].get("annotations") or {}))


def _pss(host_kc) -> dict[str, str]:
    labels = _host(host_kc, "get", "namespace", NS)["metadata"].get("labels") or {}
    return {k: v for k, v in labels.items() if k.startswith("pod-security.kubernetes.io/")}


def test_isolation_off_and_on_again_with_upgrade(shared_host, tmp_path):
    u = make_user(tmp_path / "u")
    on = tmp_path / "on.yaml"
    on.write_text("isolation: {enabled: true, podSecurityStandard: restricted, "
                  "allowedRegistries: [ghcr.io/acme]}\n")
    off = tmp_path / "off.yaml"
    off.write_text("sync: {networkpolicies: {enabled: false}}\n")
    partly = tmp_path / "partly.yaml"
    partly.write_text("isolation: {enabled: true, limitRange: {enabled: false}}\n")
    all_rails = {"resourcequota": ["vkube-isolation-iso3"], "limitrange": ["vkube-isolation-iso3"],
                 "networkpolicy": ["vkube-isolation-iso3", "vkube-isolation-iso3-control-plane"]}
    try:
        u.vkube("create", "iso3", "--host-kubeconfig", str(shared_host), "-f", str(on))

        def rails_on() -> None:
            assert _guard_rails(shared_host) == all_rails
        eventually(rails_on, timeout=60, delay=0.5)
        assert _pss(shared_host) == {"pod-security.kubernetes.io/enforce": "restricted",
                                     "pod-security.kubernetes.io/warn": "restricted"}
        u.kubectl("apply", "-f", "-", input=TENANT_POLICY)
        eventually(lambda: _tenant_policies(shared_host) == 1 or _fail(), timeout=60, delay=0.5)
        # a label of the user's own on the namespace is never vkube's to remove
        kubectl(shared_host, "label", "namespace", NS, "pod-security.kubernetes.io/audit=baseline")

        out = u.vkube("create", "iso3", "--upgrade", "-f", str(off))
        assert "isolation.enabled" in out.stdout  # named as going back to the default
        # the tenant's policy no longer synced: its host copy no longer shapes traffic
        assert "removed their host copies — networkpolicies (1)" in out.stdout, out.stdout
        assert _tenant_policies(shared_host) == 0
        assert _pss(shared_host) == {"pod-security.kubernetes.io/audit": "baseline"}

        def rails_off() -> None:
            assert _guard_rails(shared_host) == {"resourcequota": [], "limitrange": [],
                                                 "networkpolicy": []}
        eventually(rails_off, timeout=60, delay=0.5)
        # what restricted and allowedRegistries refused now runs: the host admits it
        u.kubectl("apply", "-f", "-", input=POD % ("free", "nginx"))

        def runs() -> None:
            pod = json.loads(u.kubectl("get", "pod", "free", "-o", "json").stdout)
            assert pod["status"].get("phase") == "Running", pod["status"]
        eventually(runs, timeout=90, delay=0.5)

        # on again, in part: what is asked for comes back, what is not stays away
        u.vkube("create", "iso3", "--upgrade", "-f", str(partly))
        assert _pss(shared_host) == {"pod-security.kubernetes.io/audit": "baseline",
                                     "pod-security.kubernetes.io/enforce": "baseline",
                                     "pod-security.kubernetes.io/warn": "baseline"}

        def rails_partly() -> None:
            assert _guard_rails(shared_host) == {**all_rails, "limitrange": []}
            assert _tenant_policies(shared_host) == 1  # synced again
        eventually(rails_partly, timeout=60, delay=0.5)
    finally:
        cleanup(u)
        kubectl(shared_host, "label", "namespace", NS, "pod-security.kubernetes.io/audit-",
                check=False)
