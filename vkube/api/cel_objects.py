"""Kubernetes' CEL object types for cel-python — ``kubernetes.Quantity``, ``kubernetes.URL``,
``net.IP``, ``net.CIDR``, ``kubernetes.Semver`` — and their functions, with the results and
error texts of k8s.io/apiserver/pkg/cel/library (quantity.go, urls.go, ip.go, cidr.go,
semverlib.go)."""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from typing import Any, Callable

from vkube.api.quantity import Quantity, QuantityError, parse_quantity

__all__ = ["KQuantity", "KURL", "KIP", "KCIDR", "KSemver", "celtypes", "object_functions"]


def celtypes() -> Any:
    """celpy's types module (celpy loads lazily: ≈1.4 s, only once a CRD has rules)."""
    from celpy import celtypes as types

    return types


class KQuantity:
    """``kubernetes.Quantity``."""

    __slots__ = ("q",)

    def __init__(self, q: Quantity) -> None:
        self.q = q

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KQuantity) and self.q.value == other.q.value

    def __hash__(self) -> int:
        return hash(self.q.value)

    def __str__(self) -> str:
        return str(self.q)


class KURL:
    """``kubernetes.URL``: an absolute URI or an absolute path."""

    __slots__ = ("text", "parts")

    def __init__(self, text: str) -> None:
        parts = urllib.parse.urlsplit(text)
        if not (parts.scheme or text.startswith("/")):
            raise ValueError(f"URL must be an absolute URI or an absolute path: {text}")
        if parts.netloc:
            host = parts.netloc.rpartition("@")[2]
            port = host.rpartition("]")[2] if host.startswith("[") else host
            if port.count(":") > 1:
                raise ValueError(f'parse "{text}": invalid port "{port[port.find(":", 1):]}" after host')
            if ":" in port and not port.rpartition(":")[2].isdigit() and port.rpartition(":")[2]:
                raise ValueError(f'parse "{text}": invalid port ":{port.rpartition(":")[2]}" after host')
        self.text, self.parts = text, parts

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KURL) and self.text == other.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __str__(self) -> str:
        return self.text


class KIP:
    """``net.IP``."""

    __slots__ = ("addr",)

    def __init__(self, addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
        self.addr = addr

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KIP) and self.addr == other.addr

    def __hash__(self) -> int:
        return hash(self.addr)

    def __str__(self) -> str:
        return str(self.addr)


class KCIDR:
    """``net.CIDR``: an address and a prefix length (host bits may be set; ``masked()`` clears them)."""

    __slots__ = ("iface",)

    def __init__(self, iface: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None:
        self.iface = iface

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KCIDR) and self.iface == other.iface

    def __hash__(self) -> int:
        return hash(self.iface)

    def __str__(self) -> str:
        return str(self.iface)


_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                     r"(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?"
                     r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?\Z")


class KSemver:
    """``kubernetes.Semver``: a semantic version, ordered as semver.org orders them."""

    __slots__ = ("major", "minor", "patch", "pre", "text")

    def __init__(self, text: str, normalize: bool = False) -> None:
        if normalize:
            text = _normalize_semver(text)
        m = _SEMVER.match(text)
        if m is None:
            raise ValueError(f"Invalid semver: {text}")
        self.major, self.minor, self.patch = int(m.group(1)), int(m.group(2)), int(m.group(3))
        self.pre = tuple(m.group(4).split(".")) if m.group(4) else ()
        self.text = text

    def key(self) -> tuple:
        # a release sorts after its pre-releases; numeric identifiers before alphanumeric ones
        pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in self.pre)
        return (self.major, self.minor, self.patch, 1 if not pre else 0, pre)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KSemver) and self.key() == other.key()

    def __hash__(self) -> int:
        return hash(self.key())

    def __str__(self) -> str:
        return self.text


def _normalize_semver(text: str) -> str:
    text = text[1:] if text.startswith("v") else text
    core = re.match(r"^[0-9.]*", text).group(0)  # type: ignore[union-attr]
    suffix = text[len(core):]
    parts = [p.lstrip("0") or "0" for p in core.split(".")] if core else []
    while 0 < len(parts) < 3:
        parts.append("0")
    return ".".join(parts) + suffix


def _compare_any(a: Any, b: Any) -> int:
    if isinstance(a, KSemver) and isinstance(b, KSemver):
        ka, kb = a.key(), b.key()
    else:
        ka, kb = a.q.value, b.q.value
    return (ka > kb) - (ka < kb)


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if "%" in text:
        raise ValueError(f'IP Address "{text}" with zone value is not allowed')
    try:
        addr = ipaddress.ip_address(text)
    except ValueError as exc:
        raise ValueError(f'IP Address "{text}" parse error during conversion from string: {exc}') from None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        raise ValueError(f'IPv4-mapped IPv6 address "{text}" is not allowed')
    return addr


def _parse_cidr(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    problem = "" if "/" in text and text.rpartition("/")[2].isdigit() else "no '/'" if "/" not in text else "bad bits"
    if not problem:
        try:
            iface = ipaddress.ip_interface(text)
            _parse_ip(str(iface.ip))
            return iface
        except ValueError as exc:
            problem = str(exc)
    raise ValueError(f"network address parse error during conversion from string: {problem}")


# ------------------------------------------------------------------ quantity, URL, IP, CIDR


def _quantity(s: Any) -> KQuantity:
    if not isinstance(s, str):
        raise TypeError("no such overload")
    try:
        return KQuantity(parse_quantity(str(s)))
    except QuantityError as exc:
        raise ValueError(f"quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {exc}") from None


def _is_quantity(s: Any) -> Any:
    try:
        parse_quantity(str(s))
        return celtypes().BoolType(True)
    except QuantityError:
        return celtypes().BoolType(False)


def _q_operand(x: Any) -> Quantity:
    if isinstance(x, KQuantity):
        return x.q
    return parse_quantity(str(int(x)))


def _is_semver(text: str, normalize: bool) -> bool:
    try:
        KSemver(text, normalize)
        return True
    except ValueError:
        return False


def _as_integer(q: KQuantity) -> Any:
    v = q.q.value
    if v.denominator != 1 or not -(2**63) <= v <= 2**63 - 1:
        raise ValueError("cannot convert value to integer")
    return celtypes().IntType(int(v))


def _url_part(u: KURL, part: str) -> Any:
    p = u.parts
    if part == "scheme":
        text = p.scheme
    elif part == "host":
        text = p.netloc.rpartition("@")[2]
    elif part == "hostname":
        host = p.netloc.rpartition("@")[2]
        text = host[1:host.index("]")] if host.startswith("[") else host.rpartition(":")[0] if ":" in host else host
    elif part == "port":
        host = p.netloc.rpartition("@")[2]
        tail = host.rpartition("]")[2] if host.startswith("[") else host
        text = tail.rpartition(":")[2] if ":" in tail else ""
    else:
        text = urllib.parse.quote(urllib.parse.unquote(p.path), safe="/:@!$&'()*+,;=-._~")
    return celtypes().StringType(text)


def _url_query(u: KURL) -> Any:
    T = celtypes()  # noqa: N806
    out: dict[Any, Any] = {}
    for key, value in urllib.parse.parse_qsl(u.parts.query, keep_blank_values=True):
        out.setdefault(T.StringType(key), T.ListType()).append(T.StringType(value))
    return T.MapType(out)


def _family(ip: KIP) -> Any:
    return celtypes().IntType(ip.addr.version)


def _contains_ip(c: KCIDR, other: Any) -> Any:
    addr = other.addr if isinstance(other, KIP) else _parse_ip(str(other))
    return celtypes().BoolType(addr.version == c.iface.version and addr in c.iface.network)


def _contains_cidr(c: KCIDR, other: Any) -> Any:
    net = other.iface.network if isinstance(other, KCIDR) else _parse_cidr(str(other)).network
    ok = net.version == c.iface.version and net.subnet_of(c.iface.network)  # type: ignore[arg-type]
    return celtypes().BoolType(ok)


def _is(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    def check(s: Any) -> Any:
        try:
            parse(str(s))
            return celtypes().BoolType(True)
        except ValueError:
            return celtypes().BoolType(False)
    return check


def object_functions() -> dict[str, Callable[..., Any]]:
    """The functions of these types, by the name rules call them with."""
    T = celtypes()  # noqa: N806
    return {
        "quantity": _quantity, "isQuantity": _is_quantity,
        "isInteger": lambda q: T.BoolType(q.q.value.denominator == 1 and -(2**63) <= q.q.value <= 2**63 - 1),
        "asInteger": _as_integer, "asApproximateFloat": lambda q: T.DoubleType(float(q.q.value)),
        "sign": lambda q: T.IntType((q.q.value > 0) - (q.q.value < 0)),
        "isGreaterThan": lambda a, b: T.BoolType(_compare_any(a, b) > 0),
        "isLessThan": lambda a, b: T.BoolType(_compare_any(a, b) < 0),
        "compareTo": lambda a, b: T.IntType(_compare_any(a, b)),
        "semver": lambda s, normalize=False: KSemver(str(s), bool(normalize)),
        "isSemver": lambda s, normalize=False: T.BoolType(_is_semver(str(s), bool(normalize))),
        "major": lambda v: T.IntType(v.major), "minor": lambda v: T.IntType(v.minor),
        "patch": lambda v: T.IntType(v.patch),
        "add": lambda a, b: KQuantity(a.q + _q_operand(b)), "sub": lambda a, b: KQuantity(a.q - _q_operand(b)),
        "url": lambda s: KURL(str(s)), "isURL": _is(KURL),
        "getScheme": lambda u: _url_part(u, "scheme"), "getHost": lambda u: _url_part(u, "host"),
        "getHostname": lambda u: _url_part(u, "hostname"), "getPort": lambda u: _url_part(u, "port"),
        "getEscapedPath": lambda u: _url_part(u, "path"), "getQuery": _url_query,
        "ip": lambda s: KIP(s.iface.ip) if isinstance(s, KCIDR) else KIP(_parse_ip(str(s))),
        "isIP": _is(_parse_ip), "ip.isCanonical": lambda s: T.BoolType(str(_parse_ip(str(s))) == str(s)),
        "family": _family, "isUnspecified": lambda i: T.BoolType(i.addr.is_unspecified),
        "isLoopback": lambda i: T.BoolType(i.addr.is_loopback),
        "isLinkLocalMulticast": lambda i: T.BoolType(
            i.addr in (ipaddress.ip_network("224.0.0.0/24") if i.addr.version == 4 else ipaddress.ip_network("ff02::/16"))),
        "isLinkLocalUnicast": lambda i: T.BoolType(i.addr.is_link_local),
        "isGlobalUnicast": lambda i: T.BoolType(not (i.addr.is_unspecified or i.addr.is_loopback or i.addr.is_multicast
                                                     or i.addr.is_link_local or str(i.addr) == "255.255.255.255")),
        "cidr": lambda s: KCIDR(_parse_cidr(str(s))), "isCIDR": _is(_parse_cidr),
        "containsIP": _contains_ip, "containsCIDR": _contains_cidr,
        "masked": lambda c: KCIDR(ipaddress.ip_interface(str(c.iface.network))),
        "prefixLength": lambda c: T.IntType(c.iface.network.prefixlen),
    }
