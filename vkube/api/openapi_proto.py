"""``/openapi/v2`` in protobuf (gnostic ``openapi.v2.Document``), the form kubectl asks for
when a kind is missing from ``/openapi/v3``. Without it kubectl reports a content-type error
instead of its own ``no matches for kind``.

Encoded: ``swagger``, ``info`` and every definition (schemas with their vendor extensions, which
is what kubectl's validation and ``explain`` read). ``paths`` stay JSON-only.
Field numbers are those of gnostic's ``openapiv2/OpenAPIv2.proto``.
"""

from __future__ import annotations

import struct
from typing import Any

import orjson

__all__ = ["encode_document"]


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _bytes(field: int, data: bytes) -> bytes:
    return _key(field, 2) + _varint(len(data)) + data


def _str(field: int, value: str) -> bytes:
    return _bytes(field, value.encode())


def _int(field: int, value: int) -> bytes:
    return _key(field, 0) + _varint(int(value))


def _double(field: int, value: float) -> bytes:
    return _key(field, 1) + struct.pack("<d", float(value))


def _any(value: Any) -> bytes:
    """gnostic ``Any``: the value as YAML text (JSON is YAML)."""
    return _str(2, orjson.dumps(value).decode())


def _named_any(field: int, name: str, value: Any) -> bytes:
    return _bytes(field, _str(1, name) + _bytes(2, _any(value)))


_STRINGS = {"$ref": 1, "format": 2, "title": 3, "description": 4, "pattern": 13, "discriminator": 26}
_DOUBLES = {"multipleOf": 6, "maximum": 7, "minimum": 9}
_BOOLS = {"exclusiveMaximum": 8, "exclusiveMinimum": 10, "uniqueItems": 16, "readOnly": 27}
_INTS = {"maxLength": 11, "minLength": 12, "maxItems": 14, "minItems": 15, "maxProperties": 17,
         "minProperties": 18}


def _schema(schema: Any) -> bytes:
    if not isinstance(schema, dict):
        return b""
    out = bytearray()
    for key, value in schema.items():
        if key in _STRINGS and isinstance(value, str):
            out += _str(_STRINGS[key], value)
        elif key in _DOUBLES and isinstance(value, (int, float)):
            out += _double(_DOUBLES[key], value)
        elif key in _BOOLS and isinstance(value, bool):
            out += _int(_BOOLS[key], int(value))
        elif key in _INTS and isinstance(value, int):
            out += _int(_INTS[key], value)
        elif key == "default":
            out += _bytes(5, _any(value))
        elif key == "example":
            out += _bytes(30, _any(value))
        elif key == "required" and isinstance(value, list):
            for item in value:
                out += _str(19, str(item))
        elif key == "enum" and isinstance(value, list):
            for item in value:
                out += _bytes(20, _any(item))
        elif key == "additionalProperties":
            if isinstance(value, bool):
                out += _bytes(21, _int(2, int(value)))
            elif isinstance(value, dict):
                out += _bytes(21, _bytes(1, _schema(value)))
        elif key == "type":
            types = value if isinstance(value, list) else [value]
            out += _bytes(22, b"".join(_str(1, str(t)) for t in types))
        elif key == "items":
            items = value if isinstance(value, list) else [value]
            out += _bytes(23, b"".join(_bytes(1, _schema(i)) for i in items))
        elif key == "allOf" and isinstance(value, list):
            for item in value:
                out += _bytes(24, _schema(item))
        elif key == "properties" and isinstance(value, dict):
            out += _bytes(25, b"".join(_bytes(1, _str(1, name) + _bytes(2, _schema(sub)))
                                       for name, sub in value.items()))
        elif key.startswith("x-"):
            out += _named_any(31, key, value)
    return bytes(out)


def encode_document(doc: dict[str, Any]) -> bytes:
    """The protobuf form of a Swagger 2.0 document (see the module docstring for what)."""
    out = bytearray(_str(1, str(doc.get("swagger", "2.0"))))
    info = doc.get("info") or {}
    out += _bytes(2, _str(1, str(info.get("title", ""))) + _str(2, str(info.get("version", ""))))
    definitions = doc.get("definitions") or {}
    out += _bytes(9, b"".join(_bytes(1, _str(1, name) + _bytes(2, _schema(schema)))
                              for name, schema in definitions.items()))
    return bytes(out)
