"""Type checking of objects against their OpenAPI schema, as Go's typed JSON decoding rejects
``image: 5`` or ``replicas: "two"``: a 400 naming the field, before any defaulting runs."""

from __future__ import annotations

from typing import Any

from vkube.api.openapi_convert import QUANTITY_MARK

Schema = dict[str, Any]

_JSON_TYPE = {str: "string", bool: "boolean", int: "number", float: "number", dict: "object", list: "array"}
MAX_ERRORS = 10


def type_errors(obj: Any, schema: Schema | None) -> list[tuple[str, str]]:
    """(field path, message) for values whose JSON type the schema does not allow."""
    out: list[tuple[str, str]] = []
    if schema:
        _walk(obj, schema, "", out)
    return out


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    return _JSON_TYPE.get(type(value), type(value).__name__)


def _walk(value: Any, schema: Schema, path: str, out: list[tuple[str, str]]) -> None:
    if len(out) >= MAX_ERRORS or not isinstance(schema, dict):
        return
    if value is None:
        if path.endswith("]"):  # a null list item has no zero value worth guessing
            out.append((path, "expected a value, got null"))
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, (int, str)) or isinstance(value, bool):
            out.append((path, f"expected an integer or a string, got {_describe(value)}"))
        return
    if schema.get("x-kubernetes-preserve-unknown-fields") and "type" not in schema and "properties" not in schema:
        return
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives and "type" not in schema:
        types = {a.get("type") for a in alternatives if isinstance(a, dict)}
        if not _type_ok(value, types, bool(schema.get(QUANTITY_MARK))):
            out.append((path, f"expected {' or '.join(sorted(t for t in types if t))}, got {_describe(value)}"))
        return
    stype = schema.get("type")
    if stype and not _type_ok(value, {stype}, bool(schema.get(QUANTITY_MARK))):
        out.append((path, f"expected {stype}, got {_describe(value)}"))
        return
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for k, v in value.items():
            sub = props.get(k)
            child = f"{path}.{k}" if path else k
            if sub is not None:
                _walk(v, sub, child, out)
            elif isinstance(extra, dict):
                _walk(v, extra, child, out)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _walk(item, schema["items"], f"{path}[{i}]", out)


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
