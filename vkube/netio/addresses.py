"""Which addresses are this machine's or a cloud's metadata service, in every spelling.

The API server's dial policy (what the control plane connects to for a tenant) and the
syncer's ExternalName check (what the host's DNS would answer for a tenant) judge addresses by
one rule, kept here, in the bottom layer both may import:

- loopback, unspecified, link-local, multicast, "this network" (``0.0.0.0/8``) and every
  address of this machine (binding to it works);
- cloud instance metadata services that are not link-local (link-local covers
  ``169.254.169.254`` and OpenStack's ``fe80::a9fe:a9fe``): AWS's IPv6 ``fd00:ec2::254`` and
  its EKS Pod Identity agent ``fd00:ec2::23``, GCP's IPv6 ``fd20:ce::254``, Scaleway's IPv6
  ``fd00:42::42``, Oracle's IPv6 ``fd00:c1::a9fe:a9fe``, Alibaba's ``100.100.100.200``, Oracle's legacy ``192.0.0.192``, Azure's
  WireServer ``168.63.129.16``;
- an IPv6 address judged as each IPv4 address it carries, so no translation or tunnel
  mechanism is a way round: IPv4-mapped (``::ffff:a.b.c.d``), IPv4-compatible
  (``::a.b.c.d``), IPv4-translated (``::ffff:0:a.b.c.d``, SIIT), NAT64 (``64:ff9b::/96`` and every
  RFC 6052 layout of the local-use ``64:ff9b:1::/48``), 6to4 (``2002::/16``), Teredo (server
  and the de-obfuscated client) and ISATAP interface identifiers (``…:0:5efe:a.b.c.d``).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket

__all__ = ["IP", "METADATA_NAMES", "parse_ip", "embedded_ipv4", "metadata", "forbidden",
           "lookup"]

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
#: metadata services outside link-local (see the module docstring)
_METADATA = frozenset(ipaddress.ip_address(a) for a in (
    "fd00:ec2::254", "fd00:ec2::23", "fd20:ce::254", "fd00:42::42", "fd00:c1::a9fe:a9fe",
    "100.100.100.200", "192.0.0.192", "168.63.129.16"))
#: cloud instance metadata services by name (the host's DNS may answer them)
METADATA_NAMES = frozenset({"metadata.google.internal", "metadata.goog", "metadata",
                            "instance-data", "instance-data.ec2.internal",
                            "metadata.azure.internal", "metadata.tencentyun.com"})

_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_IPV4_TRANSLATED = ipaddress.ip_network("::ffff:0:0:0/96")
_NAT64_WELL_KNOWN = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_LOW32 = 0xFFFFFFFF


def parse_ip(text: str) -> IP | None:
    """An IP literal (brackets and an IPv6 zone ``%eth0`` dropped), or None for a name."""
    try:
        return ipaddress.ip_address(text.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _bits(x: int, first: int, last: int) -> int:
    """Bits ``first..last`` (inclusive, 0 = most significant) of a 128-bit integer."""
    return (x >> (127 - last)) & ((1 << (last - first + 1)) - 1)


def _rfc6052(x: int, prefix: int) -> int:
    """The IPv4 address embedded after a NAT64 prefix of length ``prefix`` (RFC 6052 §2.2:
    bits 64–71 are the reserved "u" octet, skipped)."""
    if prefix == 96:
        return _bits(x, 96, 127)
    if prefix == 64:
        return _bits(x, 72, 103)
    head = 64 - prefix  # bits of the address before the u octet
    return (_bits(x, prefix, 63) << (32 - head)) | _bits(x, 72, 72 + 32 - head - 1)


def embedded_ipv4(ip: IP) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address an IPv6 address carries by a translation or tunnel mechanism."""
    if isinstance(ip, ipaddress.IPv4Address):
        return []
    x = int(ip)
    out: list[int] = []
    if ip.ipv4_mapped is not None:
        out.append(int(ip.ipv4_mapped))
    if ip in _IPV4_COMPATIBLE and x > 1:  # "::" and "::1" are themselves
        out.append(x & _LOW32)
    if ip in _IPV4_TRANSLATED:
        out.append(x & _LOW32)
    if ip in _NAT64_WELL_KNOWN:
        out.append(x & _LOW32)
    if ip in _NAT64_LOCAL:  # the operator picks the prefix length inside the /48
        out += [_rfc6052(x, n) for n in (48, 56, 64, 96)]
    if ip.sixtofour is not None:
        out.append(int(ip.sixtofour))
    if ip.teredo is not None:
        out += [int(a) for a in ip.teredo]
    if (x >> 32) & 0xFCFFFFFF == 0x00005EFE:  # ISATAP, the u and g bits either way
        out.append(x & _LOW32)
    return [ipaddress.IPv4Address(v) for v in dict.fromkeys(out)]


def metadata(ip: IP) -> bool:
    """A cloud instance metadata address outside link-local."""
    return ip in _METADATA


def _own(ip: IP) -> bool:
    """An address of this machine: binding to it works (EADDRNOTAVAIL otherwise). Any other
    failure counts as ours, so the check fails closed."""
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.bind((str(ip), 0))
    except OSError as exc:
        return exc.errno != errno.EADDRNOTAVAIL
    return True


def _special(ip: IP) -> bool:
    if ip.is_loopback or ip.is_unspecified or ip.is_link_local or ip.is_multicast:
        return True
    return metadata(ip) or (isinstance(ip, ipaddress.IPv4Address) and ip in _THIS_NETWORK)


def forbidden(ip: IP) -> bool:
    """This machine (loopback, unspecified, link-local, multicast, "this network", its own
    addresses) or a metadata service — the address itself or any IPv4 address it embeds."""
    candidates: list[IP] = [ip, *embedded_ipv4(ip)]
    if any(_special(c) for c in candidates):
        return True
    return any(_own(c) for c in candidates)


async def lookup(host: str, timeout: float = 10.0) -> list[IP]:
    """Every address ``host`` resolves to by this machine's resolver (getaddrinfo: hosts file,
    then DNS); raises OSError (no such host) or asyncio.TimeoutError."""
    try:
        infos = await asyncio.wait_for(asyncio.get_running_loop().getaddrinfo(
            host, None, type=socket.SOCK_STREAM), timeout)
    except UnicodeError:
        raise OSError(errno.ENOENT, f"lookup {host}: no such host") from None
    return [ip for info in infos if (ip := parse_ip(str(info[4][0]))) is not None]
