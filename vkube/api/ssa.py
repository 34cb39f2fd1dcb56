"""Server-side apply and ``metadata.managedFields``, after structured-merge-diff.

``server_side_apply`` merges an applied configuration into the live object, detects conflicts
with fields other managers own (409 with ``FieldManagerConflict`` causes), removes what the
manager applied before and no longer applies, and records the manager's ``Apply`` entry.
``update_managed_fields`` keeps ownership current for create/update/patch (``Update`` entries).

Merge semantics come from the schema: ``x-kubernetes-list-type`` map/set/atomic with
``-list-map-keys`` (the patch merge key as fallback), ``x-kubernetes-map-type: atomic``.
Without a schema maps merge and lists are atomic, as for schemaless custom resources.
"""

from __future__ import annotations

from typing import Any

from vkube.api import errors
from vkube.api import fieldset as fs
from vkube.api import openapi_convert
from vkube.api.fieldset import DOT, MISSING, Schema, Trie
from vkube.api.jsonvalue import clone

__all__ = ["server_side_apply", "update_managed_fields", "decode_managed_fields"]

#: never owned by anyone (Kubernetes' ``stripMeta``)
_STRIPPED: tuple[tuple[str, ...], ...] = (
    ("f:apiVersion",), ("f:kind",), ("f:metadata", "f:name"), ("f:metadata", "f:namespace"),
    ("f:metadata", "f:creationTimestamp"), ("f:metadata", "f:selfLink"), ("f:metadata", "f:uid"),
    ("f:metadata", "f:generation"), ("f:metadata", "f:managedFields"),
    ("f:metadata", "f:resourceVersion"), ("f:metadata", "f:deletionTimestamp"),
    ("f:metadata", "f:deletionGracePeriodSeconds"),
)


class Entry:
    """One ``managedFields`` entry: identity, time and the owned set."""

    __slots__ = ("manager", "operation", "api_version", "subresource", "time", "fields", "raw")

    def __init__(self, manager: str, operation: str, api_version: str, subresource: str,
                 time: str | None, fields: Trie, raw: dict | None = None) -> None:
        self.manager, self.operation, self.api_version = manager, operation, api_version
        self.subresource, self.time, self.fields = subresource, time, fields
        self.raw = raw  # the decoded fieldsV1, reused while ``fields`` is unchanged

    def set_fields(self, fields: Trie) -> None:
        if fields != self.fields:
            self.fields, self.raw = fields, None

    def identity(self) -> tuple[str, str, str, str]:
        # Apply entries are one per manager whatever the apiVersion; Update ones per version.
        version = self.api_version if self.operation == "Update" else ""
        return (self.manager, self.operation, version, self.subresource)

    def encode(self) -> dict:
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version}
        if self.time:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = self.raw if self.raw is not None else fs.to_fields_v1(self.fields)
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def decode_managed_fields(raw: Any, cache: fs.FieldSetCache | None = None) -> list[Entry]:
    """Parse ``metadata.managedFields``; ValueError when malformed. With ``cache``, field
    sets decoded before are looked up (they are shared: never change them in place)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ValueError("managedFields must be a list")
    out = []
    for item in raw:
        if not isinstance(item, dict):
            raise ValueError("managedFields entries must be objects")
        operation = item.get("operation")
        if operation not in ("Apply", "Update"):
            raise ValueError(f"unsupported operation {operation!r}")
        if item.get("fieldsType", "FieldsV1") != "FieldsV1":
            raise ValueError(f"unsupported fieldsType {item.get('fieldsType')!r}")
        for key in ("manager", "apiVersion", "time", "subresource"):
            if item.get(key) is not None and not isinstance(item[key], str):
                raise ValueError(f"{key} must be a string")
        raw_fields = item.get("fieldsV1") or {}
        out.append(Entry(item.get("manager") or "", operation, item.get("apiVersion") or "",
                         item.get("subresource") or "", item.get("time"),
                         cache.decode(raw_fields) if cache is not None else fs.from_fields_v1(raw_fields),
                         raw_fields))
    return out


def _encode(entries: list[Entry]) -> list[dict]:
    live = [e for e in entries if e.fields]
    live.sort(key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    return [e.encode() for e in live]


def _strip(trie: Trie) -> Trie:
    for path in _STRIPPED:
        if fs.has_member_at_or_below(trie, path):
            node = trie
            for element in path[:-1]:
                node = node[element]
            del node[path[-1]]
            if path[0] == "f:metadata" and not trie.get("f:metadata"):
                trie.pop("f:metadata", None)
    return trie


def _effective(schema: Schema | None) -> Schema:
    """Schemaless custom resources still have typed ``metadata`` (as in Kubernetes, where
    everything else is deduced: maps granular, lists atomic)."""
    if schema is not None:
        return schema
    meta = openapi_convert.builtin_resolver().definition(openapi_convert.OBJECT_META) or {}
    return {"type": "object", "properties": {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": meta},
            "additionalProperties": {"x-kubernetes-preserve-unknown-fields": True}}


def _write(obj: dict, entries: list[Entry]) -> None:
    meta = obj.setdefault("metadata", {})
    encoded = _encode(entries)
    if encoded:
        meta["managedFields"] = encoded
    else:
        meta.pop("managedFields", None)


# -- apply -------------------------------------------------------------------------------

def server_side_apply(current: dict | None, applied: dict, *, manager: str, force: bool,
                      schema: Schema | None, now: str, cache: fs.FieldSetCache | None = None) -> dict:
    """Apply ``applied`` as ``manager`` to ``current`` (None: the object does not exist yet)
    and return the new object with its ``managedFields``. Raises ``errors.Conflict`` when
    another manager owns a field the applier changes and ``force`` is False."""
    if not isinstance(applied, dict):
        raise errors.BadRequest("error decoding YAML: the applied configuration must be an object")
    if (applied.get("metadata") or {}).get("managedFields") is not None:
        raise errors.BadRequest("metadata.managedFields must be nil")
    if not manager:
        raise errors.BadRequest("PATCH, application/apply-patch+yaml requests must specify a fieldManager")
    schema = _effective(schema)
    live = clone(current) if current else {}
    try:
        entries = decode_managed_fields((live.get("metadata") or {}).get("managedFields"), cache)
    except ValueError:
        entries = []
    (live.get("metadata") or {}).pop("managedFields", None)
    api_version = str(applied.get("apiVersion") or live.get("apiVersion") or "")
    config = clone(applied)
    config_set = _strip(fs.field_set(config, schema))
    merged = _merge(live, config, schema) if live else _drop_nulls(config)

    mine = Entry(manager, "Apply", api_version, "", now, config_set)
    previous = next((e for e in entries if e.identity() == mine.identity()), None)
    if previous is not None and previous.raw is not None and previous.fields == config_set:
        mine.raw = previous.raw  # the same fields applied again: their FieldsV1 as they were
    others = [e for e in entries if e.identity() != mine.identity()]
    conflicts = _conflicts(live, merged, config_set, others, schema)
    if conflicts and not force:
        raise _conflict_error(conflicts)
    copied: set[int] = set()
    for entry, path in conflicts:
        if id(entry) not in copied:  # decoded sets may be shared (cache): change a copy
            entry.fields = clone(entry.fields)
            copied.add(id(entry))
        fs.remove_path(entry.fields, path)
        entry.raw = None

    if previous is not None:
        owned_by_others: Trie = {}
        for entry in others:
            owned_by_others = fs.union(owned_by_others, entry.fields)
        # re-applying the same fields (new values) is the common case: nothing became stale
        stale = {} if previous.fields == config_set else fs.difference(previous.fields, config_set)
        for path in fs.members(stale):
            if not fs.has_member_at_or_below(owned_by_others, path):
                _remove(merged, path, schema)
    _write(merged, others + [mine])
    return merged


def _drop_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def _merge(lhs: Any, rhs: Any, schema: Schema | None) -> Any:
    if isinstance(rhs, dict) and isinstance(lhs, dict) and not fs.map_is_atomic(schema):
        out = dict(lhs)
        for key, value in rhs.items():
            if value is None:
                out.pop(key, None)
            elif not isinstance(value, (dict, list)):  # a scalar replaces whatever was there
                out[key] = value
            elif key in lhs:
                out[key] = _merge(lhs[key], value, fs.child_schema(schema, key))
            else:
                out[key] = _drop_nulls(value)
        return out
    if isinstance(rhs, list) and isinstance(lhs, list):
        kind, keys = fs.list_semantics(schema)
        if kind == "set":
            return list(lhs) + [x for x in _drop_nulls(rhs) if x not in lhs]
        if kind == "map":
            items_schema = schema.get("items") if schema else None
            out = list(lhs)
            index = {fs.item_key(x, kind, keys): i for i, x in enumerate(out)}
            for item in rhs:
                key = fs.item_key(item, kind, keys)
                if key in index:
                    out[index[key]] = _merge(out[index[key]], item, items_schema)
                else:
                    index[key] = len(out)
                    out.append(_drop_nulls(item))
            return out
    return _drop_nulls(rhs)


def _conflicts(live: dict, merged: dict, config_set: Trie, others: list[Entry],
               schema: Schema | None) -> list[tuple[Entry, tuple[str, ...]]]:
    found: list[tuple[Entry, tuple[str, ...]]] = []
    for entry in others:
        overlap = fs.intersection(entry.fields, config_set)
        _conflicts_below(overlap, live, merged, schema, (), entry, found)
    return found


def _conflicts_below(node: Trie, before: Any, after: Any, schema: Schema | None, path: tuple[str, ...],
                     entry: Entry, found: list[tuple[Entry, tuple[str, ...]]]) -> None:
    """Walk the overlap and both values together (members in ``fs.members`` order): each list
    is indexed once, so a 40-container pod costs one pass, not a list scan per member."""
    indexes: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for element, child in node.items():
        if element == DOT:
            continue
        kind = element[:2]
        if kind == "f:":
            name = element[2:]
            sub = fs.child_schema(schema, name)
            b = before.get(name, MISSING) if isinstance(before, dict) else MISSING
            a = after.get(name, MISSING) if isinstance(after, dict) else MISSING
        else:
            sub = schema.get("items") if schema else None
            if kind == "i:":
                b, a = _at(before, int(element[2:])), _at(after, int(element[2:]))
            else:
                if kind not in indexes:
                    indexes[kind] = (_items(before, schema, kind), _items(after, schema, kind))
                b, a = indexes[kind][0].get(element, MISSING), indexes[kind][1].get(element, MISSING)
        here = path + (element,)
        has_children = any(k != DOT for k in child)
        if DOT in child:
            changed = b is MISSING if has_children else b != a
            if changed and a is not MISSING or (b is not MISSING and a is MISSING):
                found.append((entry, here))
        if has_children:
            _conflicts_below(child, b, a, sub, here, entry, found)


def _at(value: Any, idx: int) -> Any:
    return value[idx] if isinstance(value, list) and 0 <= idx < len(value) else MISSING


def _items(value: Any, schema: Schema | None, kind: str) -> dict[str, Any]:
    """A list's items by path element (the first item wins, as a scan finds it)."""
    if not isinstance(value, list):
        return {}
    semantics, keys = fs.list_semantics(schema)
    out: dict[str, Any] = {}
    for item in value:
        out.setdefault(fs.item_key(item, semantics if kind == "k:" else "set", keys), item)
    return out


def _conflict_error(conflicts: list[tuple[Entry, tuple[str, ...]]]) -> errors.Conflict:
    by_manager: dict[str, list[str]] = {}
    causes = []
    for entry, path in conflicts:
        who = f'"{entry.manager}"'
        if entry.subresource:
            who += f' with subresource "{entry.subresource}"'
        who += f" using {entry.api_version}"
        field = fs.path_string(path)
        by_manager.setdefault(who, []).append(field)
        causes.append({"reason": "FieldManagerConflict", "message": f"conflict with {who}", "field": field})
    n = len(conflicts)
    head = f"Apply failed with {n} conflict{'s' if n != 1 else ''}: "
    parts = []
    for who, fields in by_manager.items():
        if len(fields) == 1:
            parts.append(f"conflict with {who}: {fields[0]}")
        else:
            parts.append(f"conflicts with {who}:\n" + "\n".join(f"- {f}" for f in fields))
    return errors.Conflict(head + "\n".join(parts), causes=causes)


def _remove(obj: Any, path: tuple[str, ...], schema: Schema | None) -> None:
    """Delete the value at ``path`` (a field, map entry or list item), then drop map-typed
    parents left empty, as Go's ``omitempty`` would."""
    parents: list[tuple[Any, Schema | None, str]] = []
    value: Any = obj
    for element in path[:-1]:
        parents.append((value, schema, element))
        value, schema = fs.child_value(value, element, schema)
        if value is MISSING:
            return
    last = path[-1]
    if last.startswith("f:") and isinstance(value, dict):
        value.pop(last[2:], None)
    elif isinstance(value, list) and last[:2] in ("k:", "v:"):
        kind, keys = fs.list_semantics(schema)
        value[:] = [x for x in value if fs.item_key(x, kind if last.startswith("k:") else "set", keys) != last]
    for container, parent_schema, element in reversed(parents):
        child, child_schema = fs.child_value(container, element, parent_schema)
        if child in ({}, []) and element.startswith("f:") and isinstance(container, dict):
            declared = fs.is_struct_field(parent_schema, element[2:])
            is_map = child_schema is None or "additionalProperties" in (child_schema or {})
            if child == [] or not declared or is_map:
                container.pop(element[2:], None)
                continue
        break


# -- update ------------------------------------------------------------------------------

def update_managed_fields(old: dict | None, new: dict, *, manager: str, operation: str,
                          api_version: str, now: str, schema: Schema | None,
                          subresource: str = "", cache: fs.FieldSetCache | None = None) -> None:
    """Record a create/update/patch by ``manager`` in ``new["metadata"]["managedFields"]``
    (in place). Changed fields move to ``manager``; removed fields leave every set.

    managedFields sent by the client are honoured when they decode (clients may edit them);
    malformed ones, or none, fall back to the live object's, so a client cannot corrupt them.
    As in Kubernetes, ``[]`` keeps the current entries and ``[{}]`` clears them all."""
    schema = _effective(schema)
    meta = new.setdefault("metadata", {})
    sent = meta.get("managedFields")
    if sent == [{}]:
        meta.pop("managedFields", None)
        return
    if old is None and not sent:  # a create: one entry owning all of it, built in one pass
        meta.pop("managedFields", None)
        raw = _strip_raw(_raw_contents(new, schema))
        if raw:
            entry = Entry(manager or "unknown", operation, api_version, subresource, now, {}, raw)
            meta["managedFields"] = [entry.encode()]
        return
    entries: list[Entry] = []
    live = ((old or {}).get("metadata") or {}).get("managedFields")
    edited = not subresource and sent and sent != live
    if edited:  # the client edited them: honour when valid
        try:
            entries = decode_managed_fields(sent, cache)
        except ValueError:
            entries = []
    meta.pop("managedFields", None)
    old_body = dict(old) if old else {}
    if isinstance(old_body.get("metadata"), dict):
        old_body["metadata"] = {k: v for k, v in old_body["metadata"].items() if k != "managedFields"}
    changed: Trie = {}
    removed: Trie = {}
    _diff(old_body if old else MISSING, new, schema, changed, removed)
    changed, removed = _strip(changed), _strip(removed)
    mine = Entry(manager or "unknown", operation, api_version, subresource, now, {})
    if not entries and live and _update_stored(live, new, mine, changed, removed, now, cache):
        return
    if not entries:  # what the client sent back unchanged is decoded once, as the live ones
        try:
            entries = decode_managed_fields(live, cache)
        except ValueError:
            entries = []
    for entry in entries:
        if entry.identity() == mine.identity():
            mine.fields, mine.time, mine.raw = entry.fields, entry.time, entry.raw
    others = [e for e in entries if e.identity() != mine.identity()]
    for entry in others:
        entry.set_fields(fs.difference(fs.difference(entry.fields, changed), removed))
    if changed:
        mine.set_fields(fs.union(fs.difference(mine.fields, removed), changed))
        mine.time = now
    else:
        mine.set_fields(fs.difference(mine.fields, removed))
    _write(new, others + [mine])


_ENTRY_STRINGS = ("manager", "apiVersion", "time", "subresource")


def _update_stored(live: Any, new: dict, mine: Entry, changed: Trie, removed: Trie, now: str,
                   cache: fs.FieldSetCache | None) -> bool:
    """The common case of ``update_managed_fields``: the live entries (a stored object's,
    valid) change only where ``changed``/``removed`` reach them, so the other managers' sets
    stay encoded (``fs.raw_difference``) and only this manager's is decoded. False, with
    ``new`` untouched, when an entry is not shaped as stored ones are (the caller then
    decodes every entry and drops malformed ones as before)."""
    if not isinstance(live, list):
        return False
    kept: list[tuple[dict, dict]] = []  # (entry, its new fieldsV1)
    own: dict | None = None
    try:
        for item in live:
            if not isinstance(item, dict) or item.get("operation") not in ("Apply", "Update") \
                    or item.get("fieldsType", "FieldsV1") != "FieldsV1" \
                    or any(item.get(k) is not None and not isinstance(item[k], str) for k in _ENTRY_STRINGS):
                return False
            ident = Entry(item.get("manager") or "", item["operation"], item.get("apiVersion") or "",
                          item.get("subresource") or "", item.get("time"), {})
            raw = item.get("fieldsV1") or {}
            if ident.identity() == mine.identity():
                own = item
                continue
            kept.append((item, fs.raw_difference(fs.raw_difference(raw, changed), removed)))
        if own is not None:
            raw = own.get("fieldsV1") or {}
            mine.fields = cache.decode(raw) if cache is not None else fs.from_fields_v1(raw)
            mine.time, mine.raw = own.get("time"), raw
    except ValueError:
        return False
    if changed:
        mine.set_fields(fs.union(fs.difference(mine.fields, removed), changed))
        mine.time = now
    else:
        mine.set_fields(fs.difference(mine.fields, removed))
    out = []
    for item, raw in kept:
        if not raw:
            continue
        out.append(dict(item, fieldsV1=raw))
    if mine.fields:
        out.append(mine.encode())
    out.sort(key=lambda e: (e["operation"], e.get("time") or "", e.get("manager") or "",
                            e.get("apiVersion") or "", e.get("subresource") or ""))
    if out:
        new.setdefault("metadata", {})["managedFields"] = out
    return True


def _diff(old: Any, new: Any, schema: Schema | None, changed: Trie, removed: Trie) -> None:
    """Fill ``changed`` (added or modified members) and ``removed`` between two values."""
    if isinstance(new, dict) and isinstance(old, dict) and not fs.map_is_atomic(schema):
        for key, value in new.items():
            sub = fs.child_schema(schema, key)
            element = "f:" + key
            if key not in old:
                _added(value, sub, changed, element, declared=fs.is_struct_field(schema, key))
            elif old[key] is value or old[key] == value:
                continue
            else:
                c: Trie = {}
                r: Trie = {}
                _diff(old[key], value, sub, c, r)
                if c:
                    changed[element] = c
                if r:
                    removed[element] = r
        for key in old:
            if key not in new:
                _added(old[key], fs.child_schema(schema, key), removed, "f:" + key, declared=False)
        return
    if isinstance(new, list) and isinstance(old, list):
        kind, keys = fs.list_semantics(schema)
        if kind != "atomic":
            items_schema = schema.get("items") if schema else None
            old_items = {fs.item_key(x, kind, keys): x for x in old}
            new_items = {fs.item_key(x, kind, keys): x for x in new}
            for key, item in new_items.items():
                if key not in old_items:
                    node = changed.setdefault(key, {})
                    node[DOT] = {}
                    if kind == "map":
                        node.update(_contents(item, items_schema))
                elif kind == "map" and old_items[key] != item:
                    c, r = {}, {}
                    _diff(old_items[key], item, items_schema, c, r)
                    if c:
                        changed[key] = c
                    if r:
                        removed[key] = r
            for key in old_items:
                if key not in new_items:
                    removed[key] = {DOT: {}}
            return
    if old is MISSING:
        changed.update(_contents(new, schema))
        return
    if old != new:
        changed[DOT] = {}
        changed.update(_contents(new, schema))


def _added(value: Any, schema: Schema | None, into: Trie, element: str, *, declared: bool) -> None:
    """A field that appeared (or disappeared): its own membership plus what it contains."""
    node = _contents(value, schema)
    if _is_member(value, schema, declared):
        node[DOT] = {}
    if node:
        into[element] = node


def _is_member(value: Any, schema: Schema | None, declared: bool) -> bool:
    """For Update: map fields (labels, annotations), leaves, atomic and empty values are
    members themselves; structs and granular lists only through their contents."""
    if isinstance(value, list):
        return not value or fs.list_semantics(schema)[0] == "atomic"
    if isinstance(value, dict):
        is_struct = declared and schema is not None and bool(schema.get("properties"))
        return not value or fs.map_is_atomic(schema) or not is_struct
    return True


def _raw_contents(value: Any, schema: Schema | None) -> dict:
    """``to_fields_v1(_contents(value, schema))`` built in one pass, without the trie (a
    create's whole object is its manager's: on a 40-container pod the two passes were most
    of the write's managedFields cost)."""
    out: dict = {}
    if isinstance(value, dict):
        if fs.map_is_atomic(schema):
            return out
        props = (schema.get("properties") if schema else None) or {}
        extra = schema.get("additionalProperties") if schema else None
        if not isinstance(extra, dict):
            extra = None
        for key, child in value.items():
            if not isinstance(child, (dict, list)):  # a scalar is a member with no contents
                out["f:" + key] = {}
                continue
            declared = key in props
            sub = props[key] if declared else extra
            node = _raw_contents(child, sub)
            if _is_member(child, sub, declared):
                out["f:" + key] = {DOT: {}, **node} if node else {}
            elif node:
                out["f:" + key] = node
    elif isinstance(value, list):
        kind, keys = fs.list_semantics(schema)
        if kind != "atomic":
            items_schema = schema.get("items") if schema else None
            for item in value:
                element = fs.item_key(item, kind, keys)
                node = _raw_contents(item, items_schema) if kind == "map" else {}
                if out.get(element):  # a repeated key: one member with both items' contents
                    node = {k: v for k, v in sorted({**out[element], **node}.items()) if k != DOT}
                out[element] = {DOT: {}, **node} if node else {}
    return {k: out[k] for k in sorted(out)}  # ".", "f:", "k:", "v:" sort as Kubernetes orders them


def _strip_raw(raw: dict) -> dict:
    """``_strip`` for the FieldsV1 dict of a whole object (in place)."""
    for path in _STRIPPED:
        if len(path) == 1:
            raw.pop(path[0], None)
    meta = raw.get("f:metadata")
    if meta:  # a struct's fields (an empty metadata would be a member itself: kept)
        for path in _STRIPPED:
            if len(path) == 2:
                meta.pop(path[1], None)
        if not meta:
            del raw["f:metadata"]
    return raw


def _contents(value: Any, schema: Schema | None) -> Trie:
    out: Trie = {}
    if isinstance(value, dict) and not fs.map_is_atomic(schema):
        for key, child in value.items():
            if not isinstance(child, (dict, list)):  # a scalar is a member with no contents
                out["f:" + key] = {DOT: {}}
                continue
            _added(child, fs.child_schema(schema, key), out, "f:" + key,
                   declared=fs.is_struct_field(schema, key))
    elif isinstance(value, list):
        kind, keys = fs.list_semantics(schema)
        if kind != "atomic":
            items_schema = schema.get("items") if schema else None
            for item in value:
                node = out.setdefault(fs.item_key(item, kind, keys), {})
                node[DOT] = {}
                if kind == "map":
                    node.update(_contents(item, items_schema))
    return out
