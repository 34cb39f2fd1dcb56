"""ExternalName Services on a shared host.

An ExternalName Service is a DNS CNAME that the *host's* cluster DNS answers, for the host's
pods and for the host's ingress controller, which serves every tenant and is not bound by a
tenant's NetworkPolicies. So what the name points at is judged before it goes down:

- ``NAME.NAMESPACE.svc[.cluster.local]`` names the tenant's own Service in the virtual cluster:
  it is rewritten to that Service's host copy (``HOSTNAME.HOSTNS.svc.cluster.local``), as a pod of
  the virtual cluster would resolve it;
- any other name under the cluster domain (another tenant's Services, the host's API, pod
  records), ``localhost`` and IP literals are refused: through the host they would reach what the
  tenant cannot;
- every other name (an external DNS name) goes down as written.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

DOMAIN = "cluster.local"
#: names a host's /etc/hosts maps to loopback on common distributions
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost",
                             "ip6-loopback", "localhost4", "localhost6"})
#: cloud instance metadata endpoints by name (their addresses are link-local: refused as IPs)
_METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata",
                             "instance-data",
                             "instance-data.ec2.internal", "metadata.azure.internal"})


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
    if name in _METADATA_NAMES:
        return None, (f"spec.externalName: {external!r} is a cloud metadata service: on the "
                      "host it would hand out the host's credentials")
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
