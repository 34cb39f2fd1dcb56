"""Type checking of objects against their OpenAPI schema, as Go's typed JSON decoding rejects
``image: 5`` or ``replicas: "two"``: a 400 naming the field, before any defaulting runs."""

from __future__ import annotations

import binascii
from typing import Any

from vkube.api.gotime import rfc3339_error
from vkube.api.openapi_convert import GO_TYPE_MARK, QUANTITY_MARK

Schema = dict[str, Any]

_JSON_TYPE = {str: "string", bool: "boolean", int: "number", float: "number", dict: "object", list: "array"}
#: the Python type that satisfies a schema type outright (anything else takes the slow check)
_PLAIN = {"string": str, "boolean": bool, "integer": int, "object": dict, "array": list}
MAX_ERRORS = 10
#: the range of each integer format, as Go's ``int32``/``int64`` fields decode them
_BOUNDS = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_GO_PREFIX = "json: "


class TypeIndex:
    """Per object node of one schema, each field's schema and the Python type a value of it
    may simply have (nothing to check below it), worked out once: the walk then settles most
    leaves with one lookup. Holds the schema, so that the nodes' ids stay theirs."""

    __slots__ = ("schema", "_fields", "_items")

    @classmethod
    def shared(cls, schema: Schema) -> "TypeIndex":
        """The process's index of ``schema``: built-in schemas are shared by every cluster of
        a process, and so are their indexes (tens of KiB for a pod's)."""
        return shared_index(cls, schema)

    def __init__(self, schema: Schema | None) -> None:
        self.schema = schema
        self._fields: dict[int, tuple[dict[str, tuple[Any, type | None]], tuple[Any, type | None] | None]] = {}
        self._items: dict[int, type | None] = {}

    def fields(self, schema: Schema) -> tuple[dict[str, tuple[Any, type | None]], tuple[Any, type | None] | None]:
        """(property → (schema, plain type)), and (schema, plain type) of map values or None."""
        found = self._fields.get(id(schema))
        if found is None:
            props = schema.get("properties") or {}
            extra = schema.get("additionalProperties")
            found = self._fields[id(schema)] = (
                {k: (sub, _plain_type(sub)) for k, sub in props.items() if sub is not None},
                (extra, _plain_type(extra)) if isinstance(extra, dict) else None)
        return found

    def item_type(self, items: Schema) -> type | None:
        key = id(items)
        if key not in self._items:
            self._items[key] = _plain_type(items)
        return self._items[key]


#: indexes of the schemas the process checks objects against, shared like the schemas they
#: describe (each holds its schema, so an id is never reused while cached); derived data only
_SHARED: dict[tuple[type, int], Any] = {}
_SHARED_MAX = 512


def shared_index(cls: type, schema: Schema) -> Any:
    """The one index of class ``cls`` (built from a schema alone) for ``schema`` in this process."""
    index = _SHARED.get((cls, id(schema)))
    if index is None or index.schema is not schema:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()  # CRD schemas come and go; built-in ones are made again on demand
        index = _SHARED[(cls, id(schema))] = cls(schema)
    return index


def _plain_type(schema: Any) -> type | None:
    """The type whose values need no check for ``schema``: a scalar of exactly its declared
    type, with nothing else to look at (None: always walk)."""
    if not isinstance(schema, dict) or "x-kubernetes-int-or-string" in schema:
        return None
    t = _PLAIN.get(schema.get("type"))  # type: ignore[arg-type]
    if t is dict or t is list or (t is int and "format" in schema) or (t is str and (
            schema.get("format") == "byte" or schema.get(GO_TYPE_MARK) == "Time")):
        return None  # ints: their range; []byte: base64; metav1.Time: RFC 3339
    return t


def type_errors(obj: Any, schema: Schema | None, index: TypeIndex | None = None) -> list[tuple[str, str]]:
    """(field path, message) for values whose JSON type the schema does not allow.
    ``index`` (of ``schema``) is kept by a caller that checks many objects of one kind."""
    out: list[tuple[str, str]] = []
    if schema:
        if index is None or index.schema is not schema:
            index = TypeIndex(schema)
        _walk(obj, schema, [], out, "", index)
    return out


def describe(problems: list[tuple[str, str]]) -> str:
    """The problems as one message: encoding/json's own errors as Go writes them, the others
    after the field they concern."""
    return "; ".join(m if m.startswith(_BARE) else f"{p}: {m}" for p, m in problems)


_BASE64_ERROR = "illegal base64 data at input byte "
_BARE = (_GO_PREFIX, _BASE64_ERROR, "parsing time ")  # Go's own errors name no field
_B64_ALPHABET = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")


def base64_error(text: str) -> str | None:
    """Go's error for a ``[]byte`` field (``format: byte``) that is not standard base64, with
    the offset its decoder reports (encoding/base64 ``decodeQuantum``: CR and LF are skipped,
    padding is required)."""
    src = text.encode()
    try:
        binascii.a2b_base64(src, strict_mode=True)
        return None
    except (binascii.Error, ValueError):
        pass
    n, si = len(src), 0
    while si < n:
        j = 0
        while j < 4:
            if si == n:
                return f"{_BASE64_ERROR}{si - j}" if j else None
            c = src[si]
            si += 1
            if c in _B64_ALPHABET:
                j += 1
                continue
            if c in (10, 13):
                continue
            if c != 61 or j < 2:  # not "=", or padding too early
                return f"{_BASE64_ERROR}{si - 1}"
            if j == 2:  # "==" expected
                while si < n and src[si] in (10, 13):
                    si += 1
                if si == n:
                    return f"{_BASE64_ERROR}{n}"
                if src[si] != 61:
                    return f"{_BASE64_ERROR}{si - 1}"
                si += 1
            while si < n and src[si] in (10, 13):
                si += 1
            return f"{_BASE64_ERROR}{si}" if si < n else None
    return None


class _MapKey(str):
    """A map's key in a field path: shown in our path, left out of Go's (encoding/json names
    the map field, not the key)."""


#: the Go type encoding/json names for a scalar field of each schema type
_GO_SCALAR = {"string": "string", "boolean": "bool", "number": "float64"}
#: encoding/json's name for a JSON value's kind in an UnmarshalTypeError
_GO_VALUE = {str: "string", bool: "bool", int: "number", float: "number", dict: "object", list: "array"}


def _go_field(path: list[str | int]) -> str:
    return ".".join(p for p in path if isinstance(p, str) and not isinstance(p, _MapKey))


def _type_error(value: Any, schema: Schema, stype: str, path: list[str | int], owner: str) -> str:
    """encoding/json's words for a value of the wrong JSON type in a scalar field (``json:
    cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32``);
    ours (``expected integer, got string``) for the others, whose Go types we do not name."""
    gotype = (schema.get("format") if schema.get("format") in _BOUNDS else "int") if stype == "integer" \
        else _GO_SCALAR.get(stype)
    if gotype is None or type(value) not in _GO_VALUE:
        return f"expected {stype}, got {_describe(value)}"
    where = f"Go struct field {owner}.{_go_field(path)}" if owner else "Go value"
    return f"{_GO_PREFIX}cannot unmarshal {_GO_VALUE[type(value)]} into {where} of type {gotype}"


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_TYPE.get(type(value), type(value).__name__)


def _path(parts: list[str | int]) -> str:
    """The field path, built only when there is an error to report (most walks find none)."""
    out = ""
    for p in parts:
        out = f"{out}[{p}]" if isinstance(p, int) else (f"{out}.{p}" if out else p)
    return out


def _number_error(value: Any, schema: Schema, path: list[str | int], owner: str) -> str | None:
    """encoding/json's error for a number its integer field cannot hold: out of the format's
    range (``replicas: 2147483648`` into an int32) or not whole (``replicas: 1.5``)."""
    fmt = schema.get("format")
    bounds = _BOUNDS.get(fmt)  # type: ignore[arg-type]
    if isinstance(value, float):
        if value.is_integer() and (bounds is None or bounds[0] <= value <= bounds[1]):
            return None
        text = repr(value)
    elif bounds is None or bounds[0] <= value <= bounds[1]:
        return None
    else:
        text = str(value)
    field = _go_field(path)
    gotype = fmt if bounds else "int"
    where = f"Go struct field {owner}.{field}" if owner else "Go value"
    return f"{_GO_PREFIX}cannot unmarshal number {text} into {where} of type {gotype}"


def _walk(value: Any, schema: Schema, path: list[str | int], out: list[tuple[str, str]], owner: str,
          index: TypeIndex) -> None:
    if len(out) >= MAX_ERRORS or not isinstance(schema, dict):
        return
    if value is None:
        if path and isinstance(path[-1], int):  # a null list item has no zero value worth guessing
            out.append((_path(path), "expected a value, got null"))
        return
    stype = schema.get("type")
    if stype is not None and type(value) is _PLAIN.get(stype) and "x-kubernetes-int-or-string" not in schema:
        pass  # the common case: the value has exactly the declared type
    elif schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            out.append((_path(path), f"expected an integer or a string, got {_describe(value)}"))
        return
    elif schema.get("x-kubernetes-preserve-unknown-fields") and stype is None and "properties" not in schema:
        return
    elif stype is None and (alternatives := schema.get("anyOf") or schema.get("oneOf")):
        types = {a.get("type") for a in alternatives if isinstance(a, dict)}
        if not _type_ok(value, types, bool(schema.get(QUANTITY_MARK))):
            out.append((_path(path), f"expected {' or '.join(sorted(t for t in types if t))}, got {_describe(value)}"))
        return
    elif stype == "integer" and type(value) is float:
        pass  # whole or not, in range or not: ``_number_error`` below
    elif stype and not _type_ok(value, {stype}, bool(schema.get(QUANTITY_MARK))):
        out.append((_path(path), _type_error(value, schema, stype, path, owner)))
        return
    if type(value) is str and (fmt := schema.get("format")) is not None:
        if fmt == "byte":
            problem = base64_error(value)
        elif fmt == "date-time" and schema.get(GO_TYPE_MARK) == "Time":  # metav1.Time (not MicroTime)
            problem = rfc3339_error(value)
        else:
            problem = None
        if problem is not None:
            out.append((_path(path), problem))
        return
    if stype == "integer" and type(value) in (int, float):
        if (problem := _number_error(value, schema, path, owner)) is not None:
            out.append((_path(path), problem))
        return
    if isinstance(value, dict):
        owner = schema.get(GO_TYPE_MARK) or owner
        fields, extra = index.fields(schema)
        for k, v in value.items():
            found = fields.get(k)
            key: str = k
            if found is None:
                if extra is None:
                    continue  # unknown here
                found, key = extra, _MapKey(k)
            if v is None:
                continue  # a null field is absent (only list items must not be null)
            sub, plain = found
            if type(v) is plain:
                continue
            path.append(key)
            _walk(v, sub, path, out, owner, index)
            path.pop()
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            plain = index.item_type(items)
            for i, item in enumerate(value):
                if type(item) is plain:
                    continue
                path.append(i)
                _walk(item, items, path, out, owner, index)
                path.pop()


def _type_ok(value: Any, types: set[Any], quantity: bool) -> bool:
    """Quantities are strings in the schema but take JSON numbers too (resource.Quantity's
    UnmarshalJSON); the resolved schema marks them."""
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, int):
        if types & {"integer", "number"}:
            return True
        return "string" in types and quantity
    if isinstance(value, float):
        if "number" in types or ("integer" in types and value.is_integer()):
            return True
        return "string" in types and quantity
    if isinstance(value, str):
        return "string" in types
    if isinstance(value, dict):
        return "object" in types
    if isinstance(value, list):
        return "array" in types
    return False
