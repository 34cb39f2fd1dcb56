"""Server-side field validation (``?fieldValidation=Strict|Warn|Ignore``): unknown fields
against the kind's schema and duplicate fields in the raw request body.

Both functions return messages in Kubernetes' wording, ready for a ``Warning`` header (Warn)
or a 400 BadRequest (Strict): ``unknown field "spec.replica"``, ``duplicate field
"spec.replicas"`` (JSON), ``line 7: key "replicas" already set in map`` (YAML). Use
``strict_decoding_error`` for the Strict error message.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import yaml

from vkube.api import errors

__all__ = ["unknown_fields", "duplicate_fields", "strict_decoding_error"]

Schema = dict[str, Any]
_EMBEDDED = ("apiVersion", "kind", "metadata")

_MAX_EXPANDED = 3 * 1024 * 1024  # the request body limit: no decoded body may be larger


def unknown_fields(obj: dict, schema: Schema | None, *, prune: bool = False) -> list[str]:
    """Fields of ``obj`` the schema does not declare, honouring
    ``x-kubernetes-preserve-unknown-fields``, ``additionalProperties`` and
    ``x-kubernetes-embedded-resource``. No schema: nothing is unknown. ``prune``: also drop
    them from ``obj``, as decoding into Kubernetes' typed structs does whatever the
    fieldValidation (Warn and Ignore store the object without them)."""
    out: list[str] = []
    if schema is not None:
        _walk(obj, schema, [], out, prune)
    return [f'unknown field "{p}"' for p in out]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _path(parts: list[str | int], key: str | None = None) -> str:
    """The field path, built only for an unknown field (most walks find none)."""
    out = ""
    for p in parts if key is None else [*parts, key]:
        out = f"{out}[{p}]" if isinstance(p, int) else _join(out, p)
    return out


def _walk(value: Any, schema: Schema, path: list[str | int], out: list[str], prune: bool) -> None:
    if isinstance(value, dict):
        props = schema.get("properties")
        extra = schema.get("additionalProperties")
        if props is None and extra is None:
            if not schema.get("x-kubernetes-preserve-unknown-fields") and schema.get("type") == "object" and value:
                out.extend(_path(path, k) for k in value)
                if prune:
                    value.clear()
            return
        extra_schema = extra if isinstance(extra, dict) else None
        lenient = None
        unknown: list[str] = []
        for key, item in value.items():
            sub = props.get(key) if props else None
            if sub is None:
                sub = extra_schema
            if sub is not None:
                if isinstance(item, (dict, list)):
                    path.append(key)
                    _walk(item, sub, path, out, prune)
                    path.pop()
                continue
            if lenient is None:
                lenient = extra is True or bool(schema.get("x-kubernetes-preserve-unknown-fields"))
            if lenient or (key in _EMBEDDED and schema.get("x-kubernetes-embedded-resource")):
                continue
            out.append(_path(path, key))
            unknown.append(key)
        if prune:
            for key in unknown:
                del value[key]
    elif isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                if isinstance(item, (dict, list)):
                    path.append(i)
                    _walk(item, items, path, out, prune)
                    path.pop()


class _Pairs(list):
    """A JSON object kept as its list of (key, value) pairs, so duplicates survive parsing."""


def duplicate_fields(raw: bytes, content_type: str, yaml_nodes: list[Any] | None = None, *,
                     decoded: Any = None) -> list[str]:
    """Keys repeated within one object of a JSON or YAML request body. Undecodable bodies
    raise BadRequest (the decoder would have rejected them anyway). ``yaml_nodes``: the
    body's nodes as the request decoder composed them (then it is not parsed again);
    ``decoded``: a JSON body as decoded, unchanged since (then it is not decoded again)."""
    ctype = content_type.split(";")[0].strip().lower()
    if yaml_nodes is not None:
        return _node_duplicates(yaml_nodes[0] if yaml_nodes else None)
    if "yaml" in ctype:
        if raw.lstrip()[:1] == b"{":  # a JSON body: the fast check first, line numbers only if needed
            try:
                if not _has_duplicates(raw):
                    return []
            except (ValueError, UnicodeDecodeError):
                pass  # YAML flow style, not JSON
        return _yaml_duplicates(raw)
    try:
        if not _has_duplicates(raw, decoded):
            return []
        tree = json.loads(raw, object_pairs_hook=_Pairs)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.BadRequest(f"error decoding JSON: {exc}") from None
    out: list[str] = []
    _json_walk(tree, "", out)
    return out


def _has_duplicates(raw: bytes, decoded: Any = None) -> bool:
    """Whether any object repeats a key. A body that orjson writes back byte for byte has none
    (a repeated key would be missing from the rewrite) — compact JSON from vkube's and Go's
    clients, in microseconds; any other takes one pass of the C decoder that compares each
    object's key count with its dict's size. Paths are worked out only when a key repeats."""
    try:
        if orjson.dumps(orjson.loads(raw) if decoded is None else decoded) == raw.strip():
            return False
    except orjson.JSONDecodeError:
        pass  # the stdlib decoder below says what is wrong
    except TypeError:
        pass  # e.g. an integer orjson cannot write back
    found = False

    def pairs(items: list[tuple[str, Any]]) -> dict:
        nonlocal found
        d = dict(items)
        if len(d) != len(items):
            found = True
        return d

    json.loads(raw, object_pairs_hook=pairs)
    return found


def _json_walk(node: Any, path: str, out: list[str]) -> None:
    if isinstance(node, _Pairs):
        seen: set[str] = set()
        for key, value in node:
            here = _join(path, key)
            if key in seen:
                out.append(f'duplicate field "{here}"')
            seen.add(key)
            _json_walk(value, here, out)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _json_walk(item, f"{path}[{i}]", out)


def _yaml_duplicates(raw: bytes) -> list[str]:
    from vkube.api.yamldecode import load_yaml

    parsed = load_yaml(raw, max_bytes=_MAX_EXPANDED)
    return _node_duplicates(parsed.nodes[0] if parsed.nodes else None)


def _node_duplicates(root: Any) -> list[str]:
    """Each distinct node once: an aliased map is one map of the body (and walking every
    reference would cost as much as expanding the aliases)."""
    out: list[str] = []
    todo = [root] if root is not None else []
    seen: set[int] = set()
    while todo:
        node = todo.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
                if key is not None and key in seen:
                    out.append(f'line {key_node.start_mark.line + 1}: key "{key}" already set in map')
                if key is not None:
                    seen.add(key)
                todo.append(value_node)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)
    out.sort(key=lambda m: int(m.split(":")[0].split()[1]))
    return out


def strict_decoding_error(kind: str, version: str, messages: list[str]) -> errors.BadRequest:
    """The 400 Kubernetes returns under ``fieldValidation=Strict``:
    ``Deployment in version "v1" cannot be handled as a Deployment: strict decoding error:
    unknown field "spec.replica"``."""
    return errors.BadRequest(
        f'{kind} in version "{version}" cannot be handled as a {kind}: strict decoding error: '
        + ", ".join(messages)
    )
