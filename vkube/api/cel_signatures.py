"""The functions CRD rules may call, with their overloads as the CEL type checker
(``cel_check``) matches them: the CEL standard functions and Kubernetes' libraries (lists,
strings, regex, quantity, URL, IP/CIDR, sets, optionals, format, semver)."""

from __future__ import annotations

from typing import Callable

from vkube.api.cel_ast import FORMAT_NAMES
from vkube.api.cel_types import CelType, primitive

__all__ = ["SIGNATURES", "Result"]

_UNBOUNDED = 2**64 - 1
_DYN = primitive("dyn")
_INT, _STRING = primitive("int"), primitive("string")


Result = Callable[[CelType | None, list[CelType]], CelType]


def _r(kind: str) -> Result:
    t = primitive(kind) if kind not in ("list_string", "optional") else None
    if kind == "list_string":
        # at most one element per character, none longer than the string split
        return lambda _t, _a: CelType("list", elem=(_t or _STRING) if (_t or _STRING).kind == "string" else _STRING,
                                      max_elements=(_t or _STRING).max_elements)
    return lambda _t, _a: t  # type: ignore[return-value]


def _elem(t: CelType | None, _a: list[CelType]) -> CelType:
    return (t.elem if t is not None and t.elem is not None else _DYN)


def _same_as_target(t: CelType | None, _a: list[CelType]) -> CelType:
    return t or _DYN


#: name → overloads (receiver kind or None for a global function, argument kinds, result)
SIGNATURES: dict[str, list[tuple[str | None, tuple[str, ...], Result]]] = {
    "size": [(None, ("string",), _r("int")), (None, ("bytes",), _r("int")), (None, ("list",), _r("int")),
             (None, ("map",), _r("int")), ("string", (), _r("int")), ("bytes", (), _r("int")),
             ("list", (), _r("int")), ("map", (), _r("int"))],
    "contains": [("string", ("string",), _r("bool"))],
    "startsWith": [("string", ("string",), _r("bool"))],
    "endsWith": [("string", ("string",), _r("bool"))],
    "matches": [("string", ("string",), _r("bool")), (None, ("string", "string"), _r("bool"))],
    "int": [(None, (k,), _r("int")) for k in ("int", "uint", "double", "string", "timestamp", "duration")],
    "uint": [(None, (k,), _r("uint")) for k in ("int", "uint", "double", "string")],
    "double": [(None, (k,), _r("double")) for k in ("int", "uint", "double", "string")],
    "string": [(None, ("A",), _r("string"))],
    "bytes": [(None, ("string",), _r("bytes")), (None, ("bytes",), _r("bytes"))],
    "bool": [(None, ("bool",), _r("bool")), (None, ("string",), _r("bool"))],
    "duration": [(None, ("string",), _r("duration")), (None, ("duration",), _r("duration"))],
    "timestamp": [(None, ("string",), _r("timestamp")), (None, ("timestamp",), _r("timestamp"))],
    "dyn": [(None, ("A",), _r("dyn"))],
    "type": [(None, ("A",), _r("type"))],
    # Kubernetes lists library
    "isSorted": [("list", (), _r("bool"))],
    "sum": [("list", (), _elem)],
    "min": [("list", (), _elem)],
    "max": [("list", (), _elem)],
    "indexOf": [("list", ("A",), _r("int")), ("string", ("string",), _r("int")),
                ("string", ("string", "int"), _r("int"))],
    "lastIndexOf": [("list", ("A",), _r("int")), ("string", ("string",), _r("int")),
                    ("string", ("string", "int"), _r("int"))],
    # strings extension (version 2, as Kubernetes' environment)
    "charAt": [("string", ("int",), _r("string"))],
    "lowerAscii": [("string", (), _same_as_target)],
    "upperAscii": [("string", (), _same_as_target)],
    "trim": [("string", (), _same_as_target)],
    "replace": [("string", ("string", "string"), _r("string")), ("string", ("string", "string", "int"), _r("string"))],
    "split": [("string", ("string",), _r("list_string")), ("string", ("string", "int"), _r("list_string"))],
    "substring": [("string", ("int",), _r("string")), ("string", ("int", "int"), _r("string"))],
    "join": [("list", (), _r("string")), ("list", ("string",), _r("string"))],
    "format": [("string", ("list",), _r("string"))],
    "reverse": [("string", (), _same_as_target), ("list", (), _same_as_target)],
    "includes": [("list", ("A",), _r("bool"))],
    "slice": [("list", ("int", "int"), _same_as_target)],
    "flatten": [("list", (), lambda t, _a: CelType("list", elem=_DYN, max_elements=_UNBOUNDED)),
                ("list", ("int",), lambda t, _a: CelType("list", elem=_DYN, max_elements=_UNBOUNDED))],
    "distinct": [("list", (), _same_as_target)],
    "sort": [("list", (), _same_as_target)],
    "first": [("list", (), lambda t, _a: CelType("optional", elem=_elem(t, _a)))],
    "last": [("list", (), lambda t, _a: CelType("optional", elem=_elem(t, _a)))],
    "lists.range": [(None, ("int",), lambda _t, _a: CelType("list", elem=_INT, max_elements=_UNBOUNDED))],
    "strings.quote": [(None, ("string",), _r("string"))],
    # regex
    "find": [("string", ("string",), _r("string"))],
    "findAll": [("string", ("string",), _r("list_string")), ("string", ("string", "int"), _r("list_string"))],
    # quantity
    "quantity": [(None, ("string",), _r("quantity"))],
    "isQuantity": [(None, ("string",), _r("bool"))],
    "isInteger": [("quantity", (), _r("bool"))],
    "asInteger": [("quantity", (), _r("int"))],
    "asApproximateFloat": [("quantity", (), _r("double"))],
    "sign": [("quantity", (), _r("int"))],
    "isGreaterThan": [("quantity", ("quantity",), _r("bool")), ("semver", ("semver",), _r("bool"))],
    "isLessThan": [("quantity", ("quantity",), _r("bool")), ("semver", ("semver",), _r("bool"))],
    "compareTo": [("quantity", ("quantity",), _r("int")), ("semver", ("semver",), _r("int"))],
    # format (Kubernetes 1.31+)
    "format.named": [(None, ("string",), lambda _t, _a: CelType("optional", elem=primitive("format")))],
    **{f"format.{n}": [(None, (), _r("format"))] for n in FORMAT_NAMES},
    "validate": [("format", ("string",), lambda _t, _a: CelType("optional", elem=CelType("list", elem=_STRING)))],
    # semver (Kubernetes 1.33+)
    "semver": [(None, ("string",), _r("semver")), (None, ("string", "bool"), _r("semver"))],
    "isSemver": [(None, ("string",), _r("bool")), (None, ("string", "bool"), _r("bool"))],
    **{f: [("semver", (), _r("int"))] for f in ("major", "minor", "patch")},
    "add": [("quantity", ("quantity",), _r("quantity")), ("quantity", ("int",), _r("quantity"))],
    "sub": [("quantity", ("quantity",), _r("quantity")), ("quantity", ("int",), _r("quantity"))],
    # URL
    "url": [(None, ("string",), _r("url"))],
    "isURL": [(None, ("string",), _r("bool"))],
    **{f: [("url", (), _r("string"))] for f in ("getScheme", "getHost", "getHostname", "getPort", "getEscapedPath")},
    "getQuery": [("url", (), lambda _t, _a: CelType("map", elem=CelType("list", elem=_STRING), key=_STRING))],
    # IP and CIDR
    "ip": [(None, ("string",), _r("ip")), ("cidr", (), _r("ip"))],
    "isIP": [(None, ("string",), _r("bool"))],
    "ip.isCanonical": [(None, ("string",), _r("bool"))],
    "family": [("ip", (), _r("int"))],
    **{f: [("ip", (), _r("bool"))] for f in ("isUnspecified", "isLoopback", "isLinkLocalMulticast",
                                             "isLinkLocalUnicast", "isGlobalUnicast")},
    "cidr": [(None, ("string",), _r("cidr"))],
    "isCIDR": [(None, ("string",), _r("bool"))],
    "containsIP": [("cidr", ("ip",), _r("bool")), ("cidr", ("string",), _r("bool"))],
    "containsCIDR": [("cidr", ("cidr",), _r("bool")), ("cidr", ("string",), _r("bool"))],
    "masked": [("cidr", (), _r("cidr"))],
    "prefixLength": [("cidr", (), _r("int"))],
    # sets
    **{f: [(None, ("list", "list"), _r("bool"))] for f in ("sets.contains", "sets.equivalent", "sets.intersects")},
    # optionals
    "optional.of": [(None, ("A",), lambda _t, a: CelType("optional", elem=a[0]))],
    "optional.ofNonZeroValue": [(None, ("A",), lambda _t, a: CelType("optional", elem=a[0]))],
    "optional.none": [(None, (), lambda _t, _a: CelType("optional", elem=_DYN))],
    "hasValue": [("optional", (), _r("bool"))],
    "value": [("optional", (), _elem)],
    "orValue": [("optional", ("A",), _elem)],
    "or": [("optional", ("optional",), _same_as_target)],
    # timestamps and durations
    **{f: [("timestamp", (), _r("int")), ("timestamp", ("string",), _r("int"))]
       for f in ("getFullYear", "getMonth", "getDate", "getDayOfMonth", "getDayOfWeek", "getDayOfYear")},
    **{f: [("timestamp", (), _r("int")), ("timestamp", ("string",), _r("int")), ("duration", (), _r("int"))]
       for f in ("getHours", "getMinutes", "getSeconds", "getMilliseconds")},
}
