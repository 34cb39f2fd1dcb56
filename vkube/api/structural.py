"""Structural schemas of CustomResourceDefinitions, applied to custom resources: pruning of
unknown fields, defaulting, and validation with the field paths and wording of Kubernetes'
apiextensions-apiserver (kube-openapi's validator).

Schemas are CRD ``openAPIV3Schema`` trees (plain dicts, no ``$ref``). Order on a write, as in
Kubernetes: prune → default → validate. Defaults are also applied on read.
"""

from __future__ import annotations

import base64
import copy
import ipaddress
import json
import math
import re
import uuid
from functools import lru_cache
from typing import Any

from vkube.api.errors import field_error

Schema = dict[str, Any]
Causes = list[dict[str, str]]

__all__ = ["prune", "apply_defaults", "validate", "has_defaults", "type_name", "child_path"]

_META_KEEP = ("apiVersion", "kind", "metadata")


def child_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _children(schema: Schema) -> tuple[dict[str, Schema], Schema | None]:
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    return props, extra if isinstance(extra, dict) else None


# ---------------------------------------------------------------- pruning


def prune(obj: Any, schema: Schema | None, *, root: bool = True) -> None:
    """Drop fields the schema does not specify (in place), except where
    ``x-kubernetes-preserve-unknown-fields`` is true. At the root and in embedded resources
    apiVersion, kind and metadata are kept."""
    if schema is None or not isinstance(obj, dict) and not isinstance(obj, list):
        return
    if isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in obj:
                prune(item, items, root=False)
        return
    props, extra = _children(schema)
    keep_meta = root or schema.get("x-kubernetes-embedded-resource")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields") is True
    for key in list(obj):
        if keep_meta and key in _META_KEEP:
            continue
        sub = props.get(key)
        if sub is None and extra is not None:
            sub = extra
        if sub is None and schema.get("additionalProperties") is True:
            continue
        if sub is None:
            if not preserve:
                del obj[key]
            continue
        prune(obj[key], sub, root=False)


# ---------------------------------------------------------------- defaulting


@lru_cache(maxsize=256)
def _has_defaults_json(raw: str) -> bool:
    return '"default"' in raw


def has_defaults(schema: Schema | None) -> bool:
    """Cheap check so reads of kinds without defaults skip the walk."""
    if not schema:
        return False
    return _has_defaults_json(json.dumps(schema, sort_keys=True))


def apply_defaults(obj: Any, schema: Schema | None) -> None:
    """Set ``default`` values of absent properties (in place), recursing into present objects,
    list items and map values — structural defaulting as Kubernetes does it."""
    if schema is None:
        return
    if isinstance(obj, dict):
        props, extra = _children(schema)
        for key, sub in props.items():
            if key not in obj and "default" in sub:
                obj[key] = copy.deepcopy(sub["default"])
            if key in obj:
                apply_defaults(obj[key], sub)
        if extra is not None:
            for key, value in obj.items():
                if key not in props:
                    apply_defaults(value, extra)
    elif isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in obj:
                apply_defaults(item, items)


# ---------------------------------------------------------------- validation


_INT64 = (-(2**63), 2**63 - 1)
_JSON_FLOAT_INT = 2**53 - 1  # swag.IsFloat64AJSONInteger's bound


def _is_integer(value: Any) -> bool:
    """A custom resource's number as kube-openapi types it: an int64 when the literal fits one,
    else a float64, which is an integer only when whole and within ±(2^53-1)."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int) and _INT64[0] <= value <= _INT64[1]:
        return True
    if isinstance(value, (int, float)):
        f = float(value)
        return f.is_integer() and -_JSON_FLOAT_INT <= f <= _JSON_FLOAT_INT
    return False


def type_name(value: Any) -> str:
    """The JSON type of a value, as Kubernetes names it in messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "integer" if _is_integer(value) else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if value is None:
        return '"null"'
    return json.dumps(type_name(value))


def _invalid(path: str, value: Any, detail: str) -> dict[str, str]:
    return field_error(path, f"Invalid value: {_fmt(value)}: {detail}")


def _type_error(path: str, value: Any, want: str) -> dict[str, str]:
    """The value of a type error is its JSON type name, as kube-openapi reports it."""
    got = json.dumps(type_name(value))
    return field_error(path, f"Invalid value: {got}: {path or '<root>'} in body must be of type {want}: {got}")


def _type_ok(value: Any, want: str) -> bool:
    if want == "object":
        return isinstance(value, dict)
    if want == "array":
        return isinstance(value, list)
    if want == "string":
        return isinstance(value, str)
    if want == "boolean":
        return isinstance(value, bool)
    if want == "integer":
        return _is_integer(value)
    if want == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


@lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


_HOSTNAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z", re.I)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+\Z")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}\Z")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})\Z")
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+\Z")
_MAC = re.compile(r"^([0-9a-fA-F]{2}[:-]){5}[0-9a-fA-F]{2}\Z")


def _format_ok(value: Any, fmt: str) -> bool:
    """Formats Kubernetes checks for strings; unknown formats are accepted, as upstream."""
    if not isinstance(value, str):
        return True
    try:
        if fmt == "date-time":
            return bool(_DATETIME.match(value))
        if fmt == "date":
            return bool(_DATE.match(value))
        if fmt == "uuid":
            uuid.UUID(value)
            return True
        if fmt == "ipv4":
            return isinstance(ipaddress.ip_address(value), ipaddress.IPv4Address)
        if fmt == "ipv6":
            return isinstance(ipaddress.ip_address(value), ipaddress.IPv6Address)
        if fmt == "cidr":
            ipaddress.ip_network(value, strict=False)
            return "/" in value
        if fmt == "hostname":
            return len(value) <= 255 and bool(_HOSTNAME.match(value))
        if fmt == "email":
            return bool(_EMAIL.match(value))
        if fmt == "byte":
            base64.b64decode(value, validate=True)
            return True
        if fmt == "duration":
            return bool(_DURATION.match(value))
        if fmt == "mac":
            return bool(_MAC.match(value))
    except ValueError:
        return False
    return True


def validate(obj: Any, schema: Schema | None, path: str = "") -> Causes:
    """Every schema violation of ``obj`` as StatusCauses with Kubernetes' field paths."""
    causes: Causes = []
    if schema is not None:
        _validate(obj, schema, path, causes, root=not path)
    return causes


def _validate(value: Any, schema: Schema, path: str, out: Causes, *, root: bool = False) -> None:
    name = path or "<root>"
    if value is None:
        if schema.get("nullable"):
            return
        want = schema.get("type")
        if want:
            out.append(_invalid(path, None, f"{name} in body must be of type {want}: \"null\""))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not (isinstance(value, str) or _type_ok(value, "integer")):
            out.append(_type_error(path, value, "integer,string"))
            return
    else:
        want = schema.get("type")
        if want and not _type_ok(value, want):
            out.append(_type_error(path, value, want))
            return
    enum = schema.get("enum")
    if enum is not None and value not in enum:
        supported = ", ".join(json.dumps(e) if isinstance(e, str) else _fmt(e) for e in enum)
        out.append(field_error(path, f"Unsupported value: {_fmt(value)}: supported values: {supported}",
                               reason="FieldValueNotSupported"))
    _validate_junctions(value, schema, path, out)
    if isinstance(value, str):
        _validate_string(value, schema, path, name, out)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        _validate_number(value, schema, path, name, out)
    elif isinstance(value, list):
        _validate_array(value, schema, path, name, out)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, name, out, root=root)


def _validate_junctions(value: Any, schema: Schema, path: str, out: Causes) -> None:
    """``allOf``/``anyOf``/``oneOf``/``not``: value validations on the same value (structural
    schemas allow no structure inside them)."""
    for sub in schema.get("allOf") or ():
        if isinstance(sub, dict):
            _validate(value, sub, path, out)
    any_of = [sub for sub in schema.get("anyOf") or () if isinstance(sub, dict)]
    if any_of and not any(not validate(value, sub, path) for sub in any_of):
        out.append(_invalid(path, value, "must validate at least one schema (anyOf)"))
    one_of = [sub for sub in schema.get("oneOf") or () if isinstance(sub, dict)]
    if one_of:
        valid = sum(1 for sub in one_of if not validate(value, sub, path))
        if valid != 1:
            found = "Found none valid" if valid == 0 else f"Found {valid} valid alternatives"
            out.append(_invalid(path, value, f"must validate one and only one schema (oneOf). {found}"))
    negated = schema.get("not")
    if isinstance(negated, dict) and not validate(value, negated, path):
        out.append(_invalid(path, value, "must not validate the schema (not)"))


def _validate_string(value: str, schema: Schema, path: str, name: str, out: Causes) -> None:
    max_len, min_len = schema.get("maxLength"), schema.get("minLength")
    if max_len is not None and len(value) > max_len:
        out.append(field_error(path, f"Too long: may not be more than {max_len} bytes",
                               reason="FieldValueTooLong"))
    if min_len is not None and len(value) < min_len:
        out.append(_invalid(path, value, f"{name} in body should be at least {min_len} chars long"))
    pattern = schema.get("pattern")
    if pattern:
        rx = _regex(pattern)
        if rx is not None and not rx.search(value):
            out.append(_invalid(path, value, f"{name} in body should match '{pattern}'"))
    fmt = schema.get("format")
    if fmt and not _format_ok(value, fmt):
        out.append(_invalid(path, value, f"{name} in body must be of type {fmt}: {json.dumps(value)}"))


def _num(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _validate_number(value: float, schema: Schema, path: str, name: str, out: Causes) -> None:
    maximum, minimum = schema.get("maximum"), schema.get("minimum")
    if maximum is not None:
        if schema.get("exclusiveMaximum") and value >= maximum:
            out.append(_invalid(path, value, f"{name} in body should be less than {_num(maximum)}"))
        elif value > maximum:
            out.append(_invalid(path, value, f"{name} in body should be less than or equal to {_num(maximum)}"))
    if minimum is not None:
        if schema.get("exclusiveMinimum") and value <= minimum:
            out.append(_invalid(path, value, f"{name} in body should be greater than {_num(minimum)}"))
        elif value < minimum:
            out.append(_invalid(path, value, f"{name} in body should be greater than or equal to {_num(minimum)}"))
    multiple = schema.get("multipleOf")
    if multiple:
        ratio = value / multiple
        if not math.isclose(ratio, round(ratio), rel_tol=0, abs_tol=1e-9):
            out.append(_invalid(path, value, f"{name} in body should be a multiple of {_num(multiple)}"))
    fmt = schema.get("format")
    if fmt == "int32" and not -(2**31) <= value < 2**31:
        out.append(_invalid(path, value, f"{name} in body must be of type int32: {_num(value)}"))


def _validate_array(value: list, schema: Schema, path: str, name: str, out: Causes) -> None:
    max_items, min_items = schema.get("maxItems"), schema.get("minItems")
    if max_items is not None and len(value) > max_items:
        out.append(field_error(path, f"Too many: {len(value)}: must have at most {max_items} items",
                               reason="FieldValueTooMany"))
    if min_items is not None and len(value) < min_items:
        out.append(_invalid(path, len(value), f"{name} in body should have at least {min_items} items"))
    if schema.get("uniqueItems") or schema.get("x-kubernetes-list-type") == "set":
        seen: list[Any] = []
        for i, item in enumerate(value):
            if item in seen:
                out.append(field_error(f"{path}[{i}]", f"Duplicate value: {_fmt(item)}",
                                       reason="FieldValueDuplicate"))
            else:
                seen.append(item)
    keys = schema.get("x-kubernetes-list-map-keys")
    if schema.get("x-kubernetes-list-type") == "map" and keys:
        seen_keys: set[str] = set()
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                continue
            key = json.dumps({k: item.get(k) for k in keys}, sort_keys=True)
            if key in seen_keys:
                out.append(field_error(f"{path}[{i}]", f"Duplicate value: {key}",
                                       reason="FieldValueDuplicate"))
            seen_keys.add(key)
    items = schema.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(item, items, f"{path}[{i}]", out)


def _validate_object(value: dict, schema: Schema, path: str, name: str, out: Causes, *,
                     root: bool) -> None:
    max_props, min_props = schema.get("maxProperties"), schema.get("minProperties")
    if max_props is not None and len(value) > max_props:
        out.append(field_error(path, f"Too many: {len(value)}: must have at most {max_props} items",
                               reason="FieldValueTooMany"))
    if min_props is not None and len(value) < min_props:
        out.append(_invalid(path, len(value), f"{name} in body should have at least {min_props} properties"))
    for req in schema.get("required") or ():
        if req not in value:
            out.append(field_error(child_path(path, req), "Required value", reason="FieldValueRequired"))
    if schema.get("x-kubernetes-embedded-resource"):
        for key in ("apiVersion", "kind"):
            if not value.get(key):
                out.append(field_error(child_path(path, key), "Required value: must not be empty",
                                       reason="FieldValueRequired"))
    props, extra = _children(schema)
    for key, sub in value.items():
        if root and key in _META_KEEP and key not in props:
            continue
        child = props.get(key)
        if child is None:
            if schema.get("additionalProperties") is False and not schema.get(
                    "x-kubernetes-preserve-unknown-fields"):
                out.append(field_error(child_path(path, key), "Forbidden: may not be specified",
                                       reason="FieldValueForbidden"))
            child = extra
        if child is not None:
            _validate(sub, child, child_path(path, key), out)
