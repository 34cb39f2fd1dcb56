"""Strategic merge patch (``application/strategic-merge-patch+json``), applied server-side.

Driven by the schema extensions of built-in kinds: ``x-kubernetes-patch-strategy`` (``merge``,
``replace``, ``retainKeys``, comma separated) and ``x-kubernetes-patch-merge-key``. Directives:
``$patch: replace|delete|merge``, ``$retainKeys``, ``$deleteFromPrimitiveList/<field>``,
``$setElementOrder/<field>``; ``null`` deletes a field. List ordering follows apimachinery's
``normalizeElementOrder``: patch items in patch (or ``$setElementOrder``) order, server-only
items keep their relative positions — which is why a container added by a patch lands first.
"""

from __future__ import annotations

from typing import Any

from vkube.api import errors
from vkube.api.fieldset import child_schema
from vkube.api.jsonvalue import clone

__all__ = ["apply_strategic_merge_patch"]

Schema = dict[str, Any]
PATCH = "$patch"
RETAIN_KEYS = "$retainKeys"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"
SET_ORDER = "$setElementOrder/"
_CRD_MESSAGE = (
    "the body of the request was in an unknown format - accepted media types include: "
    "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
)


def apply_strategic_merge_patch(obj: dict, patch: Any, schema: Schema | None) -> dict:
    """Apply ``patch`` to a copy of ``obj``. ``schema`` is the resolved schema of the kind
    (``OpenAPI.schema_for``); None means a custom resource, which Kubernetes refuses with
    415 UnsupportedMediaType."""
    if schema is None:
        raise errors.UnsupportedMediaType(_CRD_MESSAGE)
    if not isinstance(patch, dict):
        raise errors.BadRequest("invalid JSON document: a strategic merge patch must be a JSON object")
    return _merge_map(clone(obj), clone(patch), schema)


def _strategy(schema: Schema | None) -> tuple[set[str], str]:
    if not schema:
        return set(), ""
    raw = schema.get("x-kubernetes-patch-strategy") or ""
    return set(filter(None, raw.split(","))), schema.get("x-kubernetes-patch-merge-key") or ""


def _merge_map(original: Any, patch: dict, schema: Schema | None) -> dict:
    if not isinstance(original, dict):
        original = {}
    directive = patch.pop(PATCH, None)
    if directive is not None:
        if directive == "replace":
            return _merge_map({}, patch, schema)  # strip nested directives and nulls
        if directive == "delete":
            return {}
        if directive != "merge":
            raise errors.BadRequest(f"Unknown patch type: {directive} in map: {patch}")
    if RETAIN_KEYS in patch:
        _retain_keys(original, patch)
    # deletions from primitive lists first, then ordered (parallel) lists, then the rest
    for key in [k for k in patch if k.startswith(DELETE_PRIMITIVE)]:
        field = key[len(DELETE_PRIMITIVE):]
        values = patch.pop(key)
        if not isinstance(values, list):
            raise errors.BadRequest("invalid patch: $deleteFromPrimitiveList must be a list")
        current = original.get(field)
        if isinstance(current, list):
            original[field] = [v for v in current if v not in values]
    for key in [k for k in patch if k.startswith(SET_ORDER)]:
        field = key[len(SET_ORDER):]
        order = patch.pop(key)
        if not isinstance(order, list):
            raise errors.BadRequest("invalid patch: $setElementOrder list must be a list")
        sub = child_schema(schema, field)
        _, merge_key = _strategy(sub)
        items = patch.pop(field, None)
        base = original.get(field)
        base = base if isinstance(base, list) else []
        merged = _merge_list(base, items if isinstance(items, list) else [], sub, order=order)
        if merged:
            original[field] = merged
        else:
            original.pop(field, None)
    for key, value in patch.items():
        if key.startswith("$"):
            raise errors.BadRequest(f"unknown directive {errors.go_value(key)} in strategic merge patch")
        if value is None:
            original.pop(key, None)
            continue
        sub = child_schema(schema, key)
        current = original.get(key)
        if isinstance(value, dict):
            original[key] = _merge_map(current if isinstance(current, dict) else {}, value, sub)
        elif isinstance(value, list):
            strategies, _ = _strategy(sub)
            base = current if isinstance(current, list) else []
            if "merge" in strategies:
                original[key] = _merge_list(base, value, sub)
            else:
                original[key] = _merge_list([], value, sub, replace=True)
        else:
            original[key] = value
    return original


def _retain_keys(original: dict, patch: dict) -> None:
    keys = patch.pop(RETAIN_KEYS)
    if not isinstance(keys, list):
        raise errors.BadRequest("invalid patch: $retainKeys must be a list")
    for key, value in patch.items():
        if not key.startswith("$") and value is not None and key not in keys:
            raise errors.Invalid(
                "the server rejected our request due to an error in our request: "
                "patch content doesn't match retainKeys list",
                causes=[{"reason": "UnexpectedServerResponse", "message": "patch content doesn't match retainKeys list"}],
            )
    for key in [k for k in original if k not in keys]:
        del original[key]


def _key_of(item: Any, merge_key: str) -> Any:
    if merge_key and isinstance(item, dict):
        return item.get(merge_key, _MISSING)
    return _MISSING


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()


def _merge_list(original: list, patch: list, schema: Schema | None, *, order: list | None = None,
                replace: bool = False) -> list:
    """Merge ``patch`` into ``original`` (a list with the ``merge`` strategy, or a replaced list
    when ``replace``), then order the result the way apimachinery does."""
    item_schema = schema.get("items") if schema else None
    _, merge_key = _strategy(schema)
    is_maps = any(isinstance(x, dict) for x in patch) or any(isinstance(x, dict) for x in original)
    if is_maps and any(isinstance(x, list) for x in patch):
        raise errors.BadRequest("lists of lists are not supported in strategic merge patch")
    # special elements: {"$patch": "delete", key: v}, {"$patch": "replace"}, {"$patch": "merge"}
    plain: list = []
    for item in patch:
        if isinstance(item, dict) and PATCH in item:
            directive = item[PATCH]
            if directive == "replace":
                replace = True
            elif directive == "delete":
                key = _key_of(item, merge_key)
                if key is _MISSING:
                    raise errors.BadRequest(f"delete patch element does not contain the merge key {errors.go_value(merge_key)}")
                original = [x for x in original if _key_of(x, merge_key) != key]
            elif directive != "merge":
                raise errors.BadRequest(f"Unknown patch type: {directive} in list item: {item}")
            continue
        plain.append(item)
    if replace:
        original = []
        if not is_maps:
            return plain
    if not is_maps or not merge_key:
        if is_maps and not replace and original and plain:
            raise errors.BadRequest("cannot merge lists of objects without a merge key")
        if is_maps:
            merged = [_merge_map({}, x, item_schema) if isinstance(x, dict) else x for x in plain]
            return merged if replace or not original else original + merged
        merged = _dedupe(original + plain)
        patch_items = [x for x in merged if x in plain or (order is not None and x in order)]
        server_only = [x for x in merged if x not in patch_items]
        return _normalize(patch_items, server_only, order if order is not None else plain, original, "")
    merged = list(original)
    for item in plain:
        key = _key_of(item, merge_key)
        if key is _MISSING:
            raise errors.BadRequest(
                f"map: {errors.go_v(item)} does not contain declared merge key: {merge_key}")
        for i, existing in enumerate(merged):
            if _key_of(existing, merge_key) == key:
                merged[i] = _merge_map(existing, item, item_schema)
                break
        else:
            merged.append(_merge_map({}, item, item_schema))
    wanted = order if order is not None else plain
    wanted_keys = [_key_of(x, merge_key) for x in wanted]
    patch_items = [x for x in merged if _key_of(x, merge_key) in wanted_keys]
    server_only = [x for x in merged if _key_of(x, merge_key) not in wanted_keys]
    return _normalize(patch_items, server_only, wanted, original, merge_key)


def _dedupe(items: list) -> list:
    out: list = []
    for x in items:
        if x not in out:
            out.append(x)
    return out


def _index(items: list, item: Any, merge_key: str) -> int:
    if merge_key:
        key = _key_of(item, merge_key)
        for i, x in enumerate(items):
            if _key_of(x, merge_key) == key:
                return i
        return -1
    for i, x in enumerate(items):
        if x == item:
            return i
    return -1


def _normalize(patch_items: list, server_only: list, patch_order: list, server_order: list,
               merge_key: str) -> list:
    """apimachinery's ``normalizeElementOrder`` + ``mergeSortedSlice``: sort each side by its
    own order, then interleave, server-only items first only where both sides are known to
    the server and the server-only item came earlier."""
    def by(order: list):
        def key(item: Any) -> int:
            i = _index(order, item, merge_key)
            return i if i >= 0 else len(order)
        return key

    left = sorted(server_only, key=by(server_order))
    right = sorted(patch_items, key=by(patch_order))
    out: list = []
    i = j = 0
    while i < len(left) or j < len(right):
        if j >= len(right):
            out.append(left[i]); i += 1
        elif i >= len(left):
            out.append(right[j]); j += 1
        else:
            li, ri = _index(server_order, left[i], merge_key), _index(server_order, right[j], merge_key)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(left[i]); i += 1
            else:
                out.append(right[j]); j += 1
    return out
