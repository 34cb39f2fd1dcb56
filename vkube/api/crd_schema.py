"""Schema-level checks of a CRD version's ``openAPIV3Schema``: keyword types first (so no later
check meets a number where a list belongs), then the rules that make a schema structural,
with the apiextensions-apiserver's field paths (``properties[spec].type``) and wording."""

from __future__ import annotations

import json
import re
from typing import Any

from vkube.api import structural
from vkube.api.errors import field_error
from vkube.api.validation import Causes, forbidden, invalid_value, not_supported, required

__all__ = ["schema_shape", "typed", "validate_structural"]

_LIST_TYPES = ("atomic", "map", "set")
_FORBIDDEN_KEYS = ("$ref", "$schema", "definitions", "dependencies", "additionalItems",
                   "patternProperties", "id")
_TYPES = ("array", "boolean", "integer", "number", "object", "string")
_NUM = (int, float)
_KEYWORD_TYPES: dict[str, tuple[type, ...]] = {
    "type": (str,), "format": (str,), "pattern": (str,), "description": (str,), "title": (str,),
    "maximum": _NUM, "minimum": _NUM, "multipleOf": _NUM, "exclusiveMaximum": (bool,),
    "exclusiveMinimum": (bool,), "maxLength": (int,), "minLength": (int,), "maxItems": (int,),
    "minItems": (int,), "maxProperties": (int,), "minProperties": (int,), "uniqueItems": (bool,),
    "nullable": (bool,), "required": (list,), "enum": (list,), "properties": (dict,),
    "additionalProperties": (dict, bool), "items": (dict,), "allOf": (list,), "anyOf": (list,),
    "oneOf": (list,), "not": (dict,), "x-kubernetes-validations": (list,),
    "x-kubernetes-list-map-keys": (list,), "x-kubernetes-list-type": (str,), "x-kubernetes-map-type": (str,),
    "x-kubernetes-embedded-resource": (bool,), "x-kubernetes-int-or-string": (bool,),
    "x-kubernetes-preserve-unknown-fields": (bool,),
}
_TYPE_NAMES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


def typed(path: str, value: Any, types: tuple[type, ...], causes: Causes) -> bool:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        want = " or ".join(dict.fromkeys(_TYPE_NAMES[t] for t in types))
        causes.append(invalid_value(path, value, f"must be of type {want}"))
    return ok


def schema_shape(node: Any, path: str, causes: Causes) -> None:
    """Keyword types of a schema, so later checks never meet a number where a list belongs."""
    if not isinstance(node, dict):
        causes.append(invalid_value(path, node, "must be of type object"))
        return
    for key, types in _KEYWORD_TYPES.items():
        if key in node:
            typed(f"{path}.{key}", node[key], types, causes)
    for key in ("required", "x-kubernetes-list-map-keys"):
        for i, item in enumerate(node.get(key) if isinstance(node.get(key), list) else ()):
            typed(f"{path}.{key}[{i}]", item, (str,), causes)
    if isinstance(node.get("pattern"), str):
        try:
            re.compile(node["pattern"])
        except re.error as exc:
            causes.append(invalid_value(f"{path}.pattern", node["pattern"], f"must be a valid regular expression: {exc}"))
    for i, rule in enumerate(node.get("x-kubernetes-validations") if isinstance(node.get("x-kubernetes-validations"), list) else ()):
        rpath = f"{path}.x-kubernetes-validations[{i}]"
        if typed(rpath, rule, (dict,), causes):
            for key in ("rule", "message", "messageExpression", "fieldPath", "reason"):
                if key in rule:
                    typed(f"{rpath}.{key}", rule[key], (str,), causes)
    props = node.get("properties")
    for key, sub in (props.items() if isinstance(props, dict) else ()):
        schema_shape(sub, f"{path}.properties[{key}]", causes)
    for key in ("items", "not"):
        if isinstance(node.get(key), dict):
            schema_shape(node[key], f"{path}.{key}", causes)
    if isinstance(node.get("additionalProperties"), dict):
        schema_shape(node["additionalProperties"], f"{path}.additionalProperties", causes)
    for key in ("allOf", "anyOf", "oneOf"):
        for i, sub in enumerate(node.get(key) if isinstance(node.get(key), list) else ()):
            schema_shape(sub, f"{path}.{key}[{i}]", causes)


def validate_structural(schema: dict[str, Any], path: str) -> Causes:
    """The rules that make a schema structural (and a few OpenAPI sanity checks)."""
    causes: Causes = []
    if schema.get("type") != "object":
        causes.append(invalid_value(f"{path}.type", schema.get("type", ""), "must be object at the root")
                      if schema.get("type") else required(f"{path}.type", "must not be empty at the root"))
    meta = (schema.get("properties") or {}).get("metadata")
    if isinstance(meta, dict):
        allowed = {"name", "generateName"}
        if set((meta.get("properties") or {})) - allowed or set(meta) - {"type", "properties", "description"}:
            causes.append(forbidden(f"{path}.properties[metadata]",
                                    "must not specify anything other than name and generateName, but "
                                    "metadata is implicitly specified"))
    _node(schema, path, causes, root=True)
    return causes


def _node(schema: Any, path: str, causes: Causes, *, root: bool = False) -> None:
    if not isinstance(schema, dict):
        causes.append(invalid_value(path, schema, "must be an object"))
        return
    for key in _FORBIDDEN_KEYS:
        if key in schema:
            causes.append(forbidden(f"{path}.{key}", f"{key} is forbidden in structural schemas"))
    t = schema.get("type")
    int_or_string = schema.get("x-kubernetes-int-or-string") is True
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    if preserve is not None and preserve is not True:
        causes.append(invalid_value(f"{path}.x-kubernetes-preserve-unknown-fields", preserve, "must be true or undefined"))
    if t is not None and t not in _TYPES:
        causes.append(not_supported(f"{path}.type", t, _TYPES))
    if int_or_string and t:
        causes.append(forbidden(f"{path}.type", "must be empty if x-kubernetes-int-or-string is true"))
    if not t and not int_or_string and not preserve and not root:
        causes.append(required(f"{path}.type", "must not be empty for specified object fields"))
    if schema.get("x-kubernetes-embedded-resource") and t != "object":
        causes.append(invalid_value(f"{path}.type", t or "", "must be object if x-kubernetes-embedded-resource is true"))
    props = schema.get("properties")
    extra = schema.get("additionalProperties")
    if props is not None and extra not in (None, False):
        causes.append(forbidden(f"{path}.additionalProperties", "additionalProperties and properties are mutual exclusive"))
    if isinstance(props, dict):
        if t not in (None, "object"):
            causes.append(forbidden(f"{path}.properties", f"must not be specified for type {t}"))
        for key, sub in props.items():
            _node(sub, f"{path}.properties[{key}]", causes)
    if isinstance(extra, dict):
        _node(extra, f"{path}.additionalProperties", causes)
    if t == "array":
        items = schema.get("items")
        if not isinstance(items, dict):
            causes.append(required(f"{path}.items", "must be specified"))
        else:
            _node(items, f"{path}.items", causes)
        _list_type(schema, path, causes)
    for key in ("allOf", "anyOf", "oneOf", "not"):
        if key in schema and (key != "not" or not isinstance(schema[key], dict)) and not isinstance(schema[key], (list, dict)):
            causes.append(invalid_value(f"{path}.{key}", schema[key], "must be a list of schemas"))
    if "default" in schema:
        if root:
            causes.append(forbidden(f"{path}.default", "must not be set at the root"))
        else:
            probe = json.loads(json.dumps(schema["default"]))
            for c in structural.validate(probe, {k: v for k, v in schema.items() if k != "x-kubernetes-validations"},
                                         f"{path}.default"):
                causes.append(field_error(c["field"], c["message"], reason=c["reason"]))


def _list_type(schema: dict[str, Any], path: str, causes: Causes) -> None:
    lt = schema.get("x-kubernetes-list-type")
    if lt is None:
        return
    if lt not in _LIST_TYPES:
        causes.append(not_supported(f"{path}.x-kubernetes-list-type", lt, _LIST_TYPES))
        return
    keys = schema.get("x-kubernetes-list-map-keys")
    items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
    if lt == "map":
        if not keys:
            causes.append(required(f"{path}.x-kubernetes-list-map-keys",
                                   "must not be empty if x-kubernetes-list-type is map"))
        if items.get("type") != "object":
            causes.append(invalid_value(f"{path}.items.type", items.get("type", ""),
                                        "must be object if parent array's x-kubernetes-list-type is map"))
        props = items.get("properties") or {}
        for i, key in enumerate(keys or ()):
            prop = props.get(key)
            if prop is None:
                causes.append(invalid_value(f"{path}.x-kubernetes-list-map-keys[{i}]", key,
                                            "entries must all be names of item properties"))
            elif key not in (items.get("required") or ()) and "default" not in prop:
                causes.append(required(f"{path}.items.properties[{key}]",
                                       "all map keys must be required or have a default value"))
    elif keys:
        causes.append(forbidden(f"{path}.x-kubernetes-list-map-keys",
                                "must only be set if x-kubernetes-list-type is map"))
    if lt == "set" and items.get("type") in ("object", "array"):
        causes.append(invalid_value(f"{path}.items.type", items.get("type"),
                                    "must be a scalar type if parent array's x-kubernetes-list-type is set"))
