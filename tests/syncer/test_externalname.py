"""ExternalName targets: the tenant's own Services are followed, the host's DNS is not."""

from __future__ import annotations

import pytest

from vkube.syncer.externalname import host_external_name


def _host(name: str, ns: str) -> str:
    return f"{name}-x-{ns}-x-vc"


@pytest.mark.parametrize("external,want", [
    ("web.shop.svc.cluster.local", "web-x-shop-x-vc.vkube-vc.svc.cluster.local"),
    ("web.shop.svc", "web-x-shop-x-vc.vkube-vc.svc.cluster.local"),
    ("WEB.shop.svc.cluster.local.", "web-x-shop-x-vc.vkube-vc.svc.cluster.local"),
    ("kubernetes.default.svc.cluster.local", "kubernetes-x-default-x-vc.vkube-vc.svc.cluster.local"),
    ("api.example.com", "api.example.com"),
    ("db.internal.corp", "db.internal.corp"),
])
def test_followed_or_passed(external: str, want: str) -> None:
    assert host_external_name(external, _host, "vkube-vc") == (want, "")


@pytest.mark.parametrize("external,why", [
    ("127.0.0.1", "IP address"),
    ("10.96.0.1", "IP address"),
    ("::1", "IP address"),
    ("127.1", "IP address"),
    ("0x7f000001", "IP address"),
    ("2130706433", "IP address"),
    ("0177.0.0.1", "IP address"),
    ("metadata.goog", "metadata"),
    ("localhost", "loopback"),
    ("x.localhost.", "loopback"),
    ("localhost.localdomain", "loopback"),
    ("ip6-localhost", "loopback"),
    ("metadata.google.internal", "metadata"),
    ("nginx-x-default-x-other.vkube-other.svc.cluster.local.x", ""),  # not under the domain: passes
    ("a.b.c.svc.cluster.local", "only NAME.NAMESPACE.svc"),
    ("10-244-0-5.default.pod.cluster.local", "host's cluster DNS"),
    ("cluster.local", "host's cluster DNS"),
])
def test_refused(external: str, why: str) -> None:
    got, reason = host_external_name(external, _host, "vkube-vc")
    if not why:
        assert got == external and reason == ""
        return
    assert got is None and why in reason and reason.startswith("spec.externalName: ")


def test_this_machines_own_name_is_loopback() -> None:
    import socket

    got, why = host_external_name(socket.gethostname(), _host, "vkube-vc")
    assert got is None and "loopback" in why
