"""Kubernetes' CEL libraries for cel-python: lists (isSorted, sum, min, max, indexOf,
lastIndexOf), the strings extension (charAt, indexOf, lowerAscii, replace, split, substring,
trim, join, format, strings.quote, …), regex (find, findAll), quantity, URL, IP and CIDR,
sets, and optionals — with the results and error texts of k8s.io/apiserver/pkg/cel/library
and cel-go's ext package. Authorization (``authorizer``) is not offered.

Each function returns a ``CELEvalError`` instead of raising, as CEL errors are values (a
failing call inside ``||`` may still be absorbed).
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
import urllib.parse
from typing import Any, Callable

from vkube.api.cel_ast import NAMESPACED
from vkube.api.cel_format import FORMATS, KFormat
from vkube.api.quantity import Quantity, QuantityError, parse_quantity

__all__ = ["functions", "Optional", "is_optional", "KQuantity", "KURL", "KIP", "KCIDR", "KSemver"]


_NONE = object()


@functools.lru_cache(maxsize=1)
def _optional_class() -> type:
    """CEL's ``optional_type``, made once celpy is loaded: a ``MessageType`` so that selecting
    a field of an optional (``a.?b.c``) chains, as CEL's optional field selection does."""
    from celpy import celtypes
    from celpy.evaluation import CELEvalError

    class OptionalValue(celtypes.MessageType):
        def __init__(self, value: Any = _NONE) -> None:
            super().__init__({})
            self.value = value

        def has(self) -> bool:
            return self.value is not _NONE

        def get(self, name: Any, default: Any = None) -> Any:  # celpy's field selection on a message
            if not self.has():
                return self
            if isinstance(self.value, dict) and name in self.value:
                return OptionalValue(self.value[name])
            return CELEvalError(f"no such key: {name}")

        def __eq__(self, other: object) -> bool:
            return isinstance(other, OptionalValue) and self.value == other.value

        def __ne__(self, other: object) -> bool:
            return not self == other

        def __hash__(self) -> int:  # type: ignore[override]
            return 0

        def __repr__(self) -> str:
            return f"optional.of({self.value!r})" if self.has() else "optional.none()"

    return OptionalValue


def Optional(value: Any = _NONE) -> Any:  # noqa: N802 - reads as the CEL type it makes
    """``optional.of(value)``, or ``optional.none()`` without a value."""
    return _optional_class()(value)


def is_optional(value: Any) -> bool:
    return isinstance(value, _optional_class())


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
                     r"(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$")


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


def _types() -> Any:
    from celpy import celtypes

    return celtypes


def _wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Errors become CEL error values, with the library's own message."""
    from celpy.evaluation import CELEvalError

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # noqa: BLE001 - any failure is the rule's error value
            return CELEvalError(str(exc) or type(exc).__name__)

    return call


# ------------------------------------------------------------------ strings (cel-go ext, version 2)


def _char_at(s: str, i: int) -> Any:
    if i < 0 or i > len(s):
        raise IndexError(f"index out of range: {i}")
    return _types().StringType(s[i:i + 1])


def _index_of(s: Any, sub: Any, start: Any = 0) -> Any:
    T = _types()  # noqa: N806
    if isinstance(s, list):
        for i, x in enumerate(s):
            if x == sub:
                return T.IntType(i)
        return T.IntType(-1)
    if start < 0 or start > len(s):
        raise IndexError(f"index out of range: {start}")
    return T.IntType(str(s).find(str(sub), int(start)))


def _last_index_of(s: Any, sub: Any, start: Any = None) -> Any:
    T = _types()  # noqa: N806
    if isinstance(s, list):
        for i in range(len(s) - 1, -1, -1):
            if s[i] == sub:
                return T.IntType(i)
        return T.IntType(-1)
    text = str(s)
    if start is None:
        return T.IntType(text.rfind(str(sub)))
    if start < 0 or start > len(text):
        raise IndexError(f"index out of range: {start}")
    return T.IntType(text.rfind(str(sub), 0, int(start) + len(str(sub))))


def _ascii(s: str, upper: bool) -> Any:
    table = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ") if upper else \
        str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
    return _types().StringType(str(s).translate(table))


def _replace(s: str, old: str, new: str, n: int = -1) -> Any:
    return _types().StringType(str(s).replace(str(old), str(new), int(n) if n >= 0 else -1))


def _split(s: str, sep: str, n: int = -1) -> Any:
    T = _types()  # noqa: N806
    text, sep, n = str(s), str(sep), int(n)
    if n == 0:
        return T.ListType([])
    if sep == "":
        chars = list(text)
        if 0 < n < len(chars):
            chars = chars[:n - 1] + ["".join(chars[n - 1:])]
        return T.ListType([T.StringType(c) for c in chars])
    parts = text.split(sep, n - 1) if n > 0 else text.split(sep)
    return T.ListType([T.StringType(p) for p in parts])


def _substring(s: str, start: int, end: Any = None) -> Any:
    text = str(s)
    stop = len(text) if end is None else int(end)
    if start < 0 or start > len(text):
        raise IndexError(f"index out of range: {start}")
    if stop < 0 or stop > len(text):
        raise IndexError(f"index out of range: {stop}")
    if start > stop:
        raise IndexError(f"invalid substring range. start: {start}, end: {stop}")
    return _types().StringType(text[start:stop])


_WHITESPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
              "\u2028\u2029\u202f\u205f\u3000"


def _join(lst: list, sep: str = "") -> Any:
    for x in lst:
        if not isinstance(x, str):
            raise TypeError("join: list must contain only strings")
    return _types().StringType(str(sep).join(lst))


def _quote(s: str) -> Any:
    out = ['"']
    escapes = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
               "\\": "\\\\", '"': '\\"'}
    for ch in str(s):
        out.append(escapes.get(ch, ch))
    out.append('"')
    return _types().StringType("".join(out))


def _format(template: str, args: list) -> Any:
    """``'%s is %d'.format([a, b])``: the verbs of cel-go's strings.format."""
    T = _types()  # noqa: N806
    out: list[str] = []
    i = arg = 0
    text = str(template)
    spec = re.compile(r"%(?:\.(\d+))?([sdfeEbxXo%])")
    while i < len(text):
        m = spec.match(text, i) if text[i] == "%" else None
        if m is None:
            if text[i] == "%":
                raise ValueError(f"could not parse formatting clause: unrecognized formatting clause \"{text[i + 1:i + 2]}\"")
            out.append(text[i])
            i += 1
            continue
        i = m.end()
        verb, precision = m.group(2), m.group(1)
        if verb == "%":
            out.append("%")
            continue
        if arg >= len(args):
            raise IndexError(f"index {arg} out of range")
        value = args[arg]
        arg += 1
        out.append(_format_one(value, verb, int(precision) if precision is not None else None, T))
    return T.StringType("".join(out))


def _format_one(value: Any, verb: str, precision: int | None, T: Any) -> str:  # noqa: N803
    if verb == "s":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return "[" + ", ".join(_format_one(v, "s", None, T) for v in value) + "]"
        if isinstance(value, float):
            return repr(float(value))
        return str(value) if value is not None else "null"
    if verb == "d":
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"error during formatting: decimal clause can only be used on integers, was given {type(value).__name__}")
        return str(int(value))
    if verb in "fe E":
        number = float(value)
        if math.isnan(number):
            return "NaN"
        if math.isinf(number):
            return "Infinity" if number > 0 else "-Infinity"
        return f"{number:.{6 if precision is None else precision}{verb}}"
    if verb in "xX":
        if isinstance(value, (str, bytes)):
            data = value.encode() if isinstance(value, str) else bytes(value)
            text = data.hex()
        else:
            n = int(value)
            text = f"-{-n:x}" if n < 0 else f"{n:x}"
        return text.upper() if verb == "X" else text
    if verb == "o":
        return f"{int(value):o}"
    return f"{int(value):b}"


# ------------------------------------------------------------------ lists, sets, regex


def _is_sorted(lst: list) -> Any:
    return _types().BoolType(all(lst[i] <= lst[i + 1] for i in range(len(lst) - 1)))


def _sum(lst: list) -> Any:
    if not lst:
        return _types().IntType(0)
    return functools.reduce(lambda a, b: a + b, lst[1:], lst[0])


def _min(lst: list) -> Any:
    if not lst:
        raise ValueError("min called on empty list")
    return min(lst)


def _max(lst: list) -> Any:
    if not lst:
        raise ValueError("max called on empty list")
    return max(lst)


def _slice(lst: list, start: int, end: int) -> Any:
    if start < 0 or end < 0:
        raise IndexError(f"cannot slice({start}, {end}), negative indexes not supported")
    if start > end:
        raise IndexError(f"cannot slice({start}, {end}), start index must be less than or equal to end index")
    if end > len(lst):
        raise IndexError(f"cannot slice({start}, {end}), list is length {len(lst)}")
    return _types().ListType(lst[start:end])


def _flatten(lst: list, depth: int = 1) -> Any:
    if depth < 0:
        raise ValueError("level must be non-negative")
    out: list[Any] = []
    for x in lst:
        if isinstance(x, list) and depth > 0:
            out.extend(_flatten(x, depth - 1))
        else:
            out.append(x)
    return _types().ListType(out)


def _distinct(lst: list) -> Any:
    out: list[Any] = []
    for x in lst:
        if not any(x == y and type(x) is type(y) for y in out):
            out.append(x)
    return _types().ListType(out)


def _sort(lst: list) -> Any:
    if len({type(x) for x in lst}) > 1:
        raise TypeError("list elements must have the same type")
    try:
        return _types().ListType(sorted(lst))
    except TypeError:
        raise TypeError("list elements must be comparable") from None


def _reverse(value: Any) -> Any:
    if isinstance(value, list):
        return _types().ListType(value[::-1])
    return _types().StringType(str(value)[::-1])


def _find(s: str, pattern: str) -> Any:
    m = re.search(_re2(pattern), str(s))
    return _types().StringType(m.group(0) if m else "")


def _find_all(s: str, pattern: str, n: int = -1) -> Any:
    T = _types()  # noqa: N806
    if n == 0:
        return T.ListType([])
    found = [m.group(0) for m in re.finditer(_re2(pattern), str(s))]
    return T.ListType([T.StringType(x) for x in (found[:n] if n > 0 else found)])


@functools.lru_cache(maxsize=256)
def _re2(pattern: str) -> re.Pattern[str]:
    return re.compile(str(pattern))


def _sets_contains(a: list, b: list) -> Any:
    return _types().BoolType(all(x in a for x in b))


def _sets_equivalent(a: list, b: list) -> Any:
    return _types().BoolType(all(x in a for x in b) and all(x in b for x in a))


def _sets_intersects(a: list, b: list) -> Any:
    return _types().BoolType(any(x in a for x in b))


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
        return _types().BoolType(True)
    except QuantityError:
        return _types().BoolType(False)


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
    return _types().IntType(int(v))


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
    return _types().StringType(text)


def _url_query(u: KURL) -> Any:
    T = _types()  # noqa: N806
    out: dict[Any, Any] = {}
    for key, value in urllib.parse.parse_qsl(u.parts.query, keep_blank_values=True):
        out.setdefault(T.StringType(key), T.ListType()).append(T.StringType(value))
    return T.MapType(out)


def _family(ip: KIP) -> Any:
    return _types().IntType(ip.addr.version)


def _contains_ip(c: KCIDR, other: Any) -> Any:
    addr = other.addr if isinstance(other, KIP) else _parse_ip(str(other))
    return _types().BoolType(addr.version == c.iface.version and addr in c.iface.network)


def _contains_cidr(c: KCIDR, other: Any) -> Any:
    net = other.iface.network if isinstance(other, KCIDR) else _parse_cidr(str(other)).network
    ok = net.version == c.iface.version and net.subnet_of(c.iface.network)  # type: ignore[arg-type]
    return _types().BoolType(ok)


def _is(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    def check(s: Any) -> Any:
        try:
            parse(str(s))
            return _types().BoolType(True)
        except ValueError:
            return _types().BoolType(False)
    return check


# ------------------------------------------------------------------ optionals


def _opt_select(target: Any, name: str) -> Any:
    if is_optional(target):
        if not target.has():
            return target
        target = target.value
    if isinstance(target, dict) and name in target:
        return Optional(target[name])
    return Optional()


def _opt_index(target: Any, key: Any) -> Any:
    if is_optional(target):
        if not target.has():
            return target
        target = target.value
    if isinstance(target, dict):
        return Optional(target[key]) if key in target else Optional()
    if isinstance(target, list) and isinstance(key, int) and 0 <= key < len(target):
        return Optional(target[key])
    return Optional()


def _of_non_zero(v: Any) -> Any:
    return Optional(v) if v not in (None, 0, "", b"", False) and v != [] and v != {} else Optional()


def _value(o: Any) -> Any:
    if not o.has():
        raise ValueError("optional.none() dereference")
    return o.value


def _or(a: Any, b: Any) -> Any:
    return a if a.has() else b


def _format_validate(fmt: KFormat, value: Any) -> Any:
    T = _types()  # noqa: N806
    errs = fmt.validate(str(value))
    return Optional(T.ListType([T.StringType(e) for e in errs])) if errs else Optional()


def functions() -> dict[str, Callable[..., Any]]:
    """Every library function by the name rules call it with (namespaced ones as rewritten by
    ``cel_ast.desugar``)."""
    T = _types()  # noqa: N806
    raw: dict[str, Callable[..., Any]] = {
        "charAt": _char_at, "indexOf": _index_of, "lastIndexOf": _last_index_of,
        "lowerAscii": lambda s: _ascii(s, False), "upperAscii": lambda s: _ascii(s, True),
        "replace": _replace, "split": _split, "substring": _substring,
        "trim": lambda s: T.StringType(str(s).strip(_WHITESPACE)), "join": _join, "format": _format,
        "reverse": _reverse, "strings.quote": _quote,
        "isSorted": _is_sorted, "sum": _sum, "min": _min, "max": _max,
        "includes": lambda lst, x: T.BoolType(any(x == y for y in lst)),
        # cel-go's lists extension (version 3), in Kubernetes' environment since 1.34
        "slice": _slice, "flatten": _flatten, "distinct": _distinct, "sort": _sort,
        "first": lambda lst: Optional(lst[0]) if len(lst) else Optional(),
        "last": lambda lst: Optional(lst[-1]) if len(lst) else Optional(),
        "lists.range": lambda n: T.ListType([T.IntType(i) for i in range(int(n))]),
        "find": _find, "findAll": _find_all,
        "sets.contains": _sets_contains, "sets.equivalent": _sets_equivalent, "sets.intersects": _sets_intersects,
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
        "optional.of": Optional, "optional.none": lambda: Optional(), "optional.ofNonZeroValue": _of_non_zero,
        "hasValue": lambda o: T.BoolType(o.has()), "value": _value,
        "orValue": lambda o, d: o.value if o.has() else d, "or": _or,
        "_optSelect_": _opt_select, "_optIndex_": _opt_index,
        "format.named": lambda n: Optional(KFormat(str(n))) if str(n) in FORMATS else Optional(),
        "validate": _format_validate,
        **{f"format.{name}": (lambda name=name: KFormat(name)) for name in FORMATS},
    }
    return {NAMESPACED.get(name, name): _wrap(fn) for name, fn in raw.items()}
