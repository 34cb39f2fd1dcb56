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
    ("host.docker.internal", "host machine's own resolver"),
    ("kubernetes.docker.internal.", "host machine's own resolver"),
    ("Gateway.Docker.Internal", "host machine's own resolver"),
    ("host.containers.internal", "host machine's own resolver"),
    ("control-plane.minikube.internal", "host machine's own resolver"),
    ("host.k3d.internal", "host machine's own resolver"),
    ("kind-control-plane", "host machine's own resolver"),
    ("kind-worker2", "single-label"),
    ("metadata", "metadata"),
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


# what a name resolves to: the names of public wildcard DNS services that answer loopback
# (localtest.me, *.nip.io, *.sslip.io) are answered here by an injected resolver — no DNS
_ANSWERS = {
    "localtest.me": ["127.0.0.1"],
    "app.127.0.0.1.nip.io": ["127.0.0.1"],
    "127.0.0.1.sslip.io": ["127.0.0.1"],
    "v6.sslip.io": ["::1"],
    "nat64.example.com": ["64:ff9b::7f00:1"],
    "imds.example.com": ["fd00:ec2::254"],
    "ali.example.com": ["100.100.100.200"],
    "oci.example.com": ["fd00:c1::a9fe:a9fe"],  # Oracle Cloud's IPv6 instance metadata
    "split.example.com": ["203.0.113.7", "169.254.169.254"],
    "api.example.com": ["203.0.113.7", "2001:db8::7"],
}


async def _lookup(host: str) -> list:
    import ipaddress

    if host not in _ANSWERS:
        raise OSError(f"lookup {host}: no such host")
    return [ipaddress.ip_address(a) for a in _ANSWERS[host]]


@pytest.mark.parametrize("name", ["localtest.me", "app.127.0.0.1.nip.io", "127.0.0.1.sslip.io.",
                                  "v6.sslip.io", "nat64.example.com", "imds.example.com",
                                  "ali.example.com", "oci.example.com", "split.example.com"])
async def test_a_name_resolving_to_this_machine_or_metadata_is_refused(name: str) -> None:
    from vkube.syncer.externalname import needs_lookup, resolved_refusal

    assert host_external_name(name, _host, "vkube-vc") == (name, "")  # passes by its spelling
    assert needs_lookup(name)
    why = await resolved_refusal(name, _lookup)
    assert why.startswith(f"spec.externalName: {name!r} resolves to "), why


async def test_outside_names_resolving_elsewhere_or_not_at_all_pass() -> None:
    from vkube.syncer.externalname import needs_lookup, resolved_refusal

    assert await resolved_refusal("api.example.com", _lookup) == ""
    assert await resolved_refusal("not-yet.example.com", _lookup) == ""  # looked up again later

    async def slow(host: str) -> list:
        import asyncio

        await asyncio.sleep(30)
        return []
    assert await resolved_refusal("slow.example.com", slow, timeout=0.05) == ""
    # a Service of this cluster rewritten to its host copy is not looked up
    assert not needs_lookup("web-x-shop-x-vc.vkube-vc.svc.cluster.local")


async def test_this_machines_resolver_is_the_default() -> None:
    """``localhost`` and this machine's own name, by the real resolver (they resolve locally
    from the hosts file; the machine's name is skipped where it does not resolve)."""
    import socket

    from vkube.syncer.externalname import resolved_refusal

    assert "resolves to " in await resolved_refusal("localhost")
    name = socket.gethostname()
    try:
        socket.getaddrinfo(name, None)
    except OSError:
        return
    assert "resolves to" in await resolved_refusal(name)
