"""Field sets as server-side apply tracks them, in the trie shape of ``FieldsV1``.

A set is a nested dict keyed by path elements — ``f:<field>``, ``k:<json of key fields>``,
``v:<json value>``, ``i:<index>`` — where the key ``"."`` marks the node itself as a member.
Internally every member carries ``"."`` (``{".": {}}`` for a leaf); ``to_fields_v1`` writes
leaves as ``{}`` exactly as Kubernetes does. Ownership rules follow structured-merge-diff's
``ToFieldSet``: scalars, atomic lists/maps, list items and map entries are members; struct
fields only when empty or null.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import orjson

from vkube.api.jsonvalue import canonical

Schema = dict[str, Any]
Trie = dict[str, Any]
DOT = "."
MISSING: Any = object()
#: key fields Kubernetes defaults, used when an applied list item omits them
KEY_DEFAULTS = {"protocol": "TCP"}


# -- schema helpers ----------------------------------------------------------------------

def child_schema(schema: Schema | None, key: str) -> Schema | None:
    if not schema:
        return None
    props = schema.get("properties")
    if props and key in props:
        return props[key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def is_struct_field(schema: Schema | None, key: str) -> bool:
    return bool(schema and key in (schema.get("properties") or {}))


def list_semantics(schema: Schema | None) -> tuple[str, tuple[str, ...]]:
    """("map", keys) | ("set", ()) | ("atomic", ()), from ``x-kubernetes-list-type`` with
    the patch merge key as fallback, as Kubernetes does for built-in kinds."""
    if not schema:
        return "atomic", ()
    kind = schema.get("x-kubernetes-list-type")
    if kind == "map":
        return "map", tuple(schema.get("x-kubernetes-list-map-keys") or ())
    if kind in ("set", "atomic"):
        return kind, ()
    strategy = schema.get("x-kubernetes-patch-strategy") or ""
    if "merge" in strategy.split(","):
        key = schema.get("x-kubernetes-patch-merge-key")
        return ("map", (key,)) if key else ("set", ())
    return "atomic", ()


def map_is_atomic(schema: Schema | None) -> bool:
    return bool(schema and schema.get("x-kubernetes-map-type") == "atomic")


def item_key(item: Any, kind: str, keys: tuple[str, ...]) -> str:
    """The path element of a list item: ``k:{"name":"nginx"}`` or ``v:"value"``."""
    if kind == "map" and isinstance(item, dict):
        if len(keys) == 1:  # the common case (containers, env): no sorting, one encode
            k = keys[0]
            if k in item:  # list-map keys are Go field names: JSON writes them as they are
                if k.isidentifier() and k.isascii():
                    return f'k:{{"{k}":{orjson.dumps(item[k], option=orjson.OPT_SORT_KEYS).decode()}}}'
                return "k:" + canonical({k: item[k]})
            if k in KEY_DEFAULTS:
                return "k:" + canonical({k: KEY_DEFAULTS[k]})
            return "k:{}"
        fields = {}
        for k in sorted(keys):
            if k in item:
                fields[k] = item[k]
            elif k in KEY_DEFAULTS:
                fields[k] = KEY_DEFAULTS[k]
        return "k:" + canonical(fields)
    return "v:" + canonical(item)


def child_value(value: Any, element: str, schema: Schema | None) -> tuple[Any, Schema | None]:
    """The value under one path element (``MISSING`` when absent) and its schema."""
    if element.startswith("f:"):
        name = element[2:]
        if isinstance(value, dict) and name in value:
            return value[name], child_schema(schema, name)
        return MISSING, child_schema(schema, name)
    items_schema = schema.get("items") if schema else None
    if not isinstance(value, list):
        return MISSING, items_schema
    if element.startswith("i:"):
        idx = int(element[2:])
        return (value[idx] if 0 <= idx < len(value) else MISSING), items_schema
    kind, keys = list_semantics(schema)
    for item in value:
        if item_key(item, kind if element.startswith("k:") else "set", keys) == element:
            return item, items_schema
    return MISSING, items_schema


# -- building sets from values -----------------------------------------------------------

def field_set(value: Any, schema: Schema | None) -> Trie:
    """The fields an object (an applied configuration) sets: structured-merge-diff's
    ``ToFieldSet``."""
    out: Trie = {}
    _collect(value, schema, out)
    return out


def _collect(value: Any, schema: Schema | None, node: Trie) -> None:
    if isinstance(value, dict):
        if map_is_atomic(schema):
            return
        props = (schema.get("properties") or {}) if schema else {}
        extra = schema.get("additionalProperties") if schema else None
        extra = extra if isinstance(extra, dict) else None
        for key, child in value.items():
            if not isinstance(child, (dict, list)):  # scalars and null are leaves: members
                node["f:" + key] = {DOT: {}}
                continue
            sub = props.get(key) if key in props else extra
            target: Trie = {}
            _collect(child, sub, target)
            if (isinstance(child, dict) and not child) or key not in props or _is_leaf(child, sub):
                target[DOT] = {}
            if target:
                node["f:" + key] = target
    elif isinstance(value, list):
        kind, keys = list_semantics(schema)
        if kind == "atomic":
            return
        items_schema = schema.get("items") if schema else None
        for item in value:
            target = node.setdefault(item_key(item, kind, keys), {})
            target[DOT] = {}
            if kind == "map":
                _collect(item, items_schema, target)


def _is_leaf(value: Any, schema: Schema | None) -> bool:
    if isinstance(value, dict):
        return map_is_atomic(schema)
    if isinstance(value, list):
        return list_semantics(schema)[0] == "atomic"
    return True


# -- set algebra -------------------------------------------------------------------------

def union(a: Trie, b: Trie) -> Trie:
    out = dict(a)
    for k, v in b.items():
        out[k] = union(out[k], v) if k in out else v
    return out


def difference(a: Trie, b: Trie) -> Trie:
    """Members of ``a`` not members of ``b`` (structure pruned to what remains)."""
    out: Trie = {}
    for k, v in a.items():
        if k == DOT:
            if DOT not in b:
                out[DOT] = {}
            continue
        sub = difference(v, b[k]) if k in b else v
        if sub:
            out[k] = sub
    return out


def raw_difference(raw: dict, b: Trie) -> dict:
    """``to_fields_v1(difference(from_fields_v1(raw), b))`` on an encoded ``fieldsV1`` that
    is known to be valid (a stored object's), without decoding it: only the paths of ``b``
    are walked, and ``raw`` itself comes back when none of its members is in ``b``. A write
    changes a few fields of an object that other managers own hundreds of; decoding and
    re-encoding every manager's set per write was most of managedFields' cost. ValueError
    when ``raw`` is not shaped as fieldsV1."""
    if not isinstance(raw, dict):
        raise ValueError("fieldsV1 must be an object")
    out: dict | None = None
    for k, sub in b.items():
        if k == DOT:
            if DOT in raw:
                if out is None:
                    out = dict(raw)
                del out[DOT]
            continue
        v = raw.get(k)
        if v is None:
            continue
        if not isinstance(v, dict):
            raise ValueError(f"fieldsV1 member {k!r} must be an object")
        if not v:  # a member with nothing below it
            if DOT in sub:
                if out is None:
                    out = dict(raw)
                del out[k]
            continue
        nv = raw_difference(v, sub)
        if nv is v:
            continue
        if out is None:
            out = dict(raw)
        if not nv:
            del out[k]
        else:
            out[k] = {} if len(nv) == 1 and DOT in nv else nv
    return raw if out is None else out


def intersection(a: Trie, b: Trie) -> Trie:
    out: Trie = {}
    for k, v in a.items():
        if k in b:
            if k == DOT:
                out[DOT] = {}
                continue
            sub = intersection(v, b[k])
            if sub:
                out[k] = sub
    return out


def members(trie: Trie, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every member path, parents before children."""
    if DOT in trie and prefix:
        yield prefix
    for k, v in trie.items():
        if k != DOT:
            yield from members(v, prefix + (k,))


def has_member_at_or_below(trie: Trie, path: tuple[str, ...]) -> bool:
    node = trie
    for element in path:
        if element not in node:
            return False
        node = node[element]
    return bool(node)


def remove_path(trie: Trie, path: tuple[str, ...]) -> None:
    """Drop one member (and empty parents) in place."""
    stack = [trie]
    for element in path:
        node = stack[-1].get(element)
        if node is None:
            return
        stack.append(node)
    stack[-1].pop(DOT, None)
    for i in range(len(path) - 1, -1, -1):
        if stack[i + 1]:
            break
        del stack[i][path[i]]


# -- FieldsV1 encoding -------------------------------------------------------------------

_ORDER = {".": 0, "f:": 1, "k:": 2, "v:": 3, "i:": 4}


def _sort_key(element: str) -> tuple[int, Any]:
    if element == DOT:
        return (0, "")
    kind = _ORDER.get(element[:2], 5)
    return (kind, int(element[2:]) if kind == 4 else element[2:])


def to_fields_v1(trie: Trie) -> dict:
    """The ``fieldsV1`` JSON: ``"."`` first, then fields, keys, values, indices, sorted."""
    out: dict = {}
    keys = sorted(trie)  # ".", "f:", "k:", "v:" already sort as Kubernetes orders them ...
    at = bisect_left(keys, "i:")
    if at < len(keys) and keys[at][:2] == "i:":  # ... indices do not ("i:" < "k:", numbers)
        keys.sort(key=_sort_key)
    for k in keys:
        v = trie[k]
        if k == DOT or (len(v) == 1 and DOT in v):
            out[k] = {}
        else:
            out[k] = to_fields_v1(v)
    return out


def from_fields_v1(raw: Any) -> Trie:
    """Parse ``fieldsV1``; ValueError on anything Kubernetes would fail to decode
    (``orjson.JSONDecodeError`` is a ValueError). Leaves (most members) take no recursion."""
    if not isinstance(raw, dict):
        raise ValueError("fieldsV1 must be an object")
    out: Trie = {}
    for k, v in raw.items():
        if k == DOT:
            if v != {}:
                raise ValueError('"." must map to an empty object')
            out[DOT] = {}
            continue
        kind = k[:2] if isinstance(k, str) else None
        if kind == "f:":
            pass
        elif kind == "k:" or kind == "v:":
            orjson.loads(k[2:])
        elif kind == "i:":
            int(k[2:])
        else:
            raise ValueError(f"invalid path element {k!r}")
        if v == {}:
            out[k] = {DOT: {}}
        else:
            child = from_fields_v1(v)
            out[k] = child if child else {DOT: {}}
    return out


class FieldSetCache:
    """Decoded ``fieldsV1`` by their JSON text, least recently used dropped past ``size``.
    Every write of an object decodes the same managers' sets again; one cache per cluster
    (on its Context) makes that a lookup. Cached tries are shared: callers must not change
    them in place (``ssa`` copies before ``remove_path``)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self._tries: OrderedDict[bytes, Trie] = OrderedDict()

    def decode(self, raw: Any) -> Trie:
        """``from_fields_v1(raw)``, from the cache when the same JSON was decoded before."""
        try:
            key = orjson.dumps(raw)
        except TypeError:  # not JSON (the decoder raises the right ValueError)
            return from_fields_v1(raw)
        trie = self._tries.get(key)
        if trie is not None:
            self._tries.move_to_end(key)
            return trie
        trie = from_fields_v1(raw)  # ValueError: nothing cached
        self._tries[key] = trie
        if len(self._tries) > self.size:
            self._tries.popitem(last=False)
        return trie

    def __len__(self) -> int:
        return len(self._tries)


def path_string(path: tuple[str, ...]) -> str:
    """structured-merge-diff's rendering: ``.spec.containers[name="nginx"].image``."""
    out = []
    for element in path:
        kind, rest = element[:2], element[2:]
        if kind == "f:":
            out.append("." + rest)
        elif kind == "k:":
            fields = json.loads(rest)
            out.append("[" + ",".join(f"{k}={json.dumps(v)}" for k, v in fields.items()) + "]")
        elif kind == "v:":
            out.append(f"[={rest}]")
        else:
            out.append(f"[{rest}]")
    return "".join(out)
