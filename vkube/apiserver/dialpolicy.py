"""Where the control plane may connect on a tenant's behalf (webhooks, conversion webhooks,
aggregated APIs), and how much of the answer it reads.

A tenant chooses these addresses (``clientConfig.url``/``service``, an ExternalName Service,
Endpoints, a pod's ``vkube.io/port-forward-PORT`` annotation), so without a policy a virtual
cluster's API server reaches every listener of this machine's loopback with its own identity and
tells the tenant which ports are open. A restricted :class:`DialPolicy` resolves the name once,
refuses loopback, unspecified, link-local and this machine's own addresses — unless the
cluster's owner published that exact ``HOST:PORT`` (``sync.pods.portForwardTargets``, never in
shared mode nor with isolation) — and hands back the checked IP, which the caller dials (no
second lookup: no DNS rebinding). The rule (which addresses are this machine's or a cloud
metadata service's, every IPv6 form that carries an IPv4 address unwrapped) is
:mod:`vkube.netio.addresses`, shared with the syncer's ExternalName check. A refusal reads the
same whatever listens there.

The embedded host and bare control planes keep the open policy: their only user is this
machine's owner.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from vkube.netio import addresses
from vkube.netio.addresses import IP

__all__ = ["DialPolicy", "Refused", "TooLarge", "read_capped", "MAX_BODY"]

#: what the control plane reads of an answer from a tenant-chosen endpoint (kube-apiserver
#: reads at most 3 MiB of a webhook's answer; a discovery document is far smaller)
MAX_BODY = 3 * 1024 * 1024
_LOOKUP_TIMEOUT = 10.0


class Refused(Exception):
    """The policy does not let the control plane connect there; ``str()`` is the one message
    a tenant sees (never an OS error, so open and closed ports read alike)."""


class TooLarge(Exception):
    """An answer longer than the cap."""


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def local(ip: IP) -> bool:
    """This machine's (loopback, unspecified, link-local, "this network", its own addresses)
    or a cloud metadata service — judged also as every IPv4 address an IPv6 form carries."""
    return addresses.forbidden(ip)


def _published(targets: Iterable[tuple[str, int]]) -> frozenset[tuple[IP, int]]:
    out: set[tuple[IP, int]] = set()
    for host, port in targets:
        if host == "localhost":
            out |= {(ipaddress.ip_address("127.0.0.1"), port), (ipaddress.ip_address("::1"), port)}
        elif (ip := addresses.parse_ip(host)) is not None:
            out.add((ip, port))
    return frozenset(out)


@dataclass(frozen=True)
class DialPolicy:
    """``restricted=False`` (the default): any address. Restricted: not this machine's,
    except the ``published`` ``(host, port)`` pairs (as :func:`vkube.api.portforward.parse_target`
    gives them)."""

    restricted: bool = False
    published: frozenset[tuple[str, int]] = frozenset()
    #: the resolver (default: this machine's, :func:`vkube.netio.addresses.lookup`); tests
    #: inject names that would need DNS
    lookup: Callable[[str], Awaitable[list[IP]]] | None = field(default=None, compare=False)
    _allowed: frozenset[tuple[IP, int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allowed", _published(self.published))

    def refusal(self, host: str, port: int) -> Refused:
        return Refused(f"dial tcp {_hostport(host, port)}: the control plane does not connect to "
                       "this address (loopback, link-local, a cloud metadata service or this "
                       "machine's own) — the cluster's owner can publish it in "
                       "sync.pods.portForwardTargets")

    def allows(self, ip: IP, port: int) -> bool:
        return not self.restricted or (ip, port) in self._allowed or not local(ip)

    async def resolve(self, host: str, port: int) -> str:
        """The IP to connect to for ``host:port``; raises Refused. Every address the name
        resolves to must be allowed (a name cannot mix a public and a loopback answer)."""
        host = host.strip().strip("[]")
        ip = addresses.parse_ip(host)
        if ip is not None:
            if not self.allows(ip, port):
                raise self.refusal(host, port)
            return str(ip)
        if not self.restricted:
            return host  # the caller's client resolves it, as before
        if not 0 < port < 65536 or not host:
            raise self.refusal(host, port)
        if host.lower().rstrip(".") in addresses.METADATA_NAMES:
            raise self.refusal(host, port)
        try:
            ips = await asyncio.wait_for((self.lookup or addresses.lookup)(host), _LOOKUP_TIMEOUT)
        except (OSError, asyncio.TimeoutError, UnicodeError):
            raise Refused(f"dial tcp: lookup {host}: no such host") from None
        if not ips:
            raise Refused(f"dial tcp: lookup {host}: no such host")
        if not all(self.allows(ip, port) for ip in ips):
            raise self.refusal(host, port)
        return str(ips[0])


async def read_capped(content: Any, limit: int = MAX_BODY) -> bytes:
    """The whole body of an aiohttp response stream, raising TooLarge past ``limit`` bytes
    (read chunk by chunk: the excess is never buffered)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in content.iter_any():
        size += len(chunk)
        if size > limit:
            raise TooLarge(f"the response body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
