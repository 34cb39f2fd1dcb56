"""Kubernetes' CEL libraries for cel-python: lists (isSorted, sum, min, max, indexOf,
lastIndexOf, and cel-go's lists extension), the strings extension (charAt, indexOf, lowerAscii,
replace, split, substring, trim, join, format, strings.quote, …), regex (find, findAll), sets,
optionals and the format library here; quantity, URL, IP/CIDR and semver in ``cel_objects`` — with the results and error texts of k8s.io/apiserver/pkg/cel/library
and cel-go's ext package. Authorization (``authorizer``) is not offered.

Each function returns a ``CELEvalError`` instead of raising, as CEL errors are values (a
failing call inside ``||`` may still be absorbed).
"""

from __future__ import annotations

import functools
import math
import re
from typing import Any, Callable

from vkube.api.cel_ast import NAMESPACED
from vkube.api.cel_format import FORMATS, KFormat
from vkube.api.cel_objects import celtypes as _types
from vkube.api.cel_objects import object_functions

__all__ = ["functions", "Optional", "is_optional"]


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
        **object_functions(),
        "optional.of": Optional, "optional.none": lambda: Optional(), "optional.ofNonZeroValue": _of_non_zero,
        "hasValue": lambda o: T.BoolType(o.has()), "value": _value,
        "orValue": lambda o, d: o.value if o.has() else d, "or": _or,
        "_optSelect_": _opt_select, "_optIndex_": _opt_index,
        "format.named": lambda n: Optional(KFormat(str(n))) if str(n) in FORMATS else Optional(),
        "validate": _format_validate,
        **{f"format.{name}": (lambda name=name: KFormat(name)) for name in FORMATS},
    }
    return {NAMESPACED.get(name, name): _wrap(fn) for name, fn in raw.items()}
