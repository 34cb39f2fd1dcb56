"""ExternalName Services on a shared host.

An ExternalName Service is a DNS CNAME that the *host's* cluster DNS answers, for the host's
pods and for the host's ingress controller, which serves every tenant and is not bound by a
tenant's NetworkPolicies. So what the name points at is judged before it goes down:

- ``NAME.NAMESPACE.svc[.cluster.local]`` names the tenant's own Service in the virtual cluster:
  it is rewritten to that Service's host copy (``HOSTNAME.HOSTNS.svc.cluster.local``), as a pod of
  the virtual cluster would resolve it;
- any other name under the cluster domain (another tenant's Services, the host's API, pod
  records), ``localhost``, IP literals, the names a container runtime or local cluster tool
  gives the machine (``host.docker.internal``, ``host.containers.internal``,
  ``*.minikube.internal``, ``host.k3d.internal``) and single-label names (``kind-control-plane``:
  only the host's own resolver answers them) are refused: through the host they would reach
  what the tenant cannot;
- every other name (an external DNS name) goes down as written, unless it *resolves* (by this
  machine's resolver, when the syncer reconciles it and again every ``recheck_after`` seconds) to
  an address of this machine or a cloud metadata service, by the dial policy's rule
  (:mod:`vkube.netio.addresses`): ``localtest.me``, ``127.0.0.1.nip.io``, this machine's name.
  A name that later resolves there (DNS rebinding) has its host copy removed.

What stays possible: the host's DNS resolves the CNAME when a host pod or the ingress controller
asks, not when the syncer checked, so a name whose answer changes between two checks (a short
TTL) is followed until the next check; and a name this machine cannot resolve goes down.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable

from vkube.netio import addresses

DOMAIN = "cluster.local"
#: names a host's /etc/hosts maps to loopback on common distributions
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost",
                             "ip6-loopback", "localhost4", "localhost6"})
#: cloud instance metadata endpoints by name (the dial policy refuses the same names)
_METADATA_NAMES = addresses.METADATA_NAMES
#: names only the host's own resolver answers — its container runtime's or local cluster tool's
#: aliases for the machine, its gateway or its control plane (Docker Desktop, Podman,
#: minikube, k3d, kind): a CNAME to one reaches the host itself
_HOST_NAMES = frozenset({"host.docker.internal", "gateway.docker.internal",
                         "kubernetes.docker.internal", "host.containers.internal",
                         "host.minikube.internal", "control-plane.minikube.internal",
                         "host.k3d.internal", "host.lima.internal", "kind-control-plane"})
_HOST_SUFFIXES = (".docker.internal", ".containers.internal", ".minikube.internal",
                  ".k3d.internal", ".lima.internal")
#: how long the syncer waits for this machine's resolver before letting a name go down
LOOKUP_TIMEOUT = 5.0
Lookup = Callable[[str], Awaitable[list[addresses.IP]]]


def _is_address(name: str) -> bool:
    """An IP address in any spelling a resolver takes for one: ``127.1``, ``0x7f000001``,
    ``2130706433``, ``0177.0.0.1`` (inet_aton's forms, which getaddrinfo accepts) and IPv6."""
    import socket

    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        pass
    try:
        socket.inet_aton(name)
        return True
    except OSError:
        return False


def _machine_name() -> str:
    """This machine's own host name (its /etc/hosts usually maps it to a loopback address)."""
    import socket

    return socket.gethostname().lower().rstrip(".")


def host_external_name(external: str, host_name: Callable[[str, str], str], host_namespace: str,
                       domain: str = DOMAIN) -> tuple[str | None, str]:
    """``(the host's externalName, "")``, or ``(None, why)`` when it must not go down.

    ``host_name(name, namespace)`` is the host copy's name of the tenant's Service."""
    name = external.strip().rstrip(".").lower()
    if not name:
        return external, ""
    if _is_address(name):
        return None, (f"spec.externalName: {external!r} is an IP address: on the host it would "
                      "reach an address the virtual cluster's network does not decide; use a "
                      "Service without selector and its Endpoints")
    if name in _LOOPBACK_NAMES or name.endswith((".localhost", ".localdomain")) \
            or name == _machine_name():
        return None, f"spec.externalName: {external!r} names the host machine's loopback"
    if name in _HOST_NAMES or name.endswith(_HOST_SUFFIXES):
        return None, (f"spec.externalName: {external!r} is a name the host machine's own "
                      "resolver gives the machine, its gateway or its control plane")
    if name in _METADATA_NAMES:
        return None, (f"spec.externalName: {external!r} is a cloud metadata service: on the "
                      "host it would hand out the host's credentials")
    if "." not in name:  # kind-control-plane, kind-worker: the container runtime's names
        return None, (f"spec.externalName: {external!r} is a single-label name: only the host "
                      "machine's own resolver answers it (its containers, /etc/hosts, search "
                      "domains); use a fully qualified name")
    labels = name.split(".")
    in_domain = name == domain or name.endswith("." + domain)
    if in_domain:
        labels = labels[: -len(domain.split("."))]
    if labels and labels[-1] == "svc":
        if len(labels) == 3:
            svc, ns = labels[0], labels[1]
            return f"{host_name(svc, ns)}.{host_namespace}.svc.{domain}", ""
        return None, (f"spec.externalName: {external!r}: only NAME.NAMESPACE.svc names of this "
                      "virtual cluster's Services are followed under the cluster domain")
    if in_domain:
        return None, (f"spec.externalName: {external!r} is a name of the host's cluster DNS, "
                      "outside this virtual cluster")
    return external, ""


def needs_lookup(host_external: str, domain: str = DOMAIN) -> bool:
    """Whether a name :func:`host_external_name` let go down is an outside name (resolved by
    :func:`resolved_refusal`), not a Service of this cluster rewritten to its host copy."""
    name = host_external.strip().rstrip(".").lower()
    return bool(name) and not name.endswith(".svc." + domain)


async def resolved_refusal(external: str, lookup: Lookup | None = None,
                           timeout: float = LOOKUP_TIMEOUT) -> str:
    """Why ``external`` must not go down because of what it resolves to now ("" when it may):
    any answer of this machine or a metadata service refuses it. A name that does not resolve
    here passes (it may resolve later: the syncer looks again)."""
    name = external.strip().rstrip(".")
    try:
        ips = await asyncio.wait_for((lookup or addresses.lookup)(name), timeout)
    except (OSError, asyncio.TimeoutError, UnicodeError):
        return ""
    bad = sorted({_show(ip) for ip in ips if addresses.forbidden(ip)})
    if not bad:
        return ""
    return (f"spec.externalName: {external!r} resolves to {', '.join(bad)}: this machine's "
            "loopback, link-local or own address, or a cloud metadata service")


def _show(ip: addresses.IP) -> str:
    """An address as a refusal names it: an IPv6 form with the IPv4 addresses it carries."""
    carried = addresses.embedded_ipv4(ip)
    return f"{ip} (carrying {', '.join(map(str, carried))})" if carried else str(ip)
