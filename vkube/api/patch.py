"""The three client-computed patch types a PATCH request may carry (the fourth, apply, is
``vkube.api.ssa``). Pure functions: the input object is never mutated.

Errors follow the API server's patch handler: an undecodable patch is 400 BadRequest; a JSON
patch that decodes but cannot be applied (a failed ``test``, a missing path) is 422 Invalid,
more than 10,000 operations is 413.
"""

from __future__ import annotations

from typing import Any

import orjson

from vkube.api import errors
from vkube.api.jsonvalue import clone
from vkube.api.smp import apply_strategic_merge_patch

__all__ = ["apply_json_patch", "apply_merge_patch", "apply_strategic_merge_patch", "MAX_JSON_PATCH_OPERATIONS"]

MAX_JSON_PATCH_OPERATIONS = 10000
#: kube-apiserver's JSONPatchMaxCopyBytes: what all ``copy`` operations of one patch may add
MAX_COPY_BYTES = 3 * 1024 * 1024


def apply_json_patch(obj: dict, ops: Any) -> dict:
    """RFC 6902: add, remove, replace, move, copy, test — applied in order, all or nothing."""
    if not isinstance(ops, list) or not all(isinstance(op, dict) for op in ops):
        raise errors.BadRequest("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    if len(ops) > MAX_JSON_PATCH_OPERATIONS:
        raise errors.request_entity_too_large(
            f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {len(ops)}"
        )
    import jsonpatch  # only for JSON patches: kubectl's own are strategic-merge or apply
    import jsonpointer

    doc: Any = clone(obj)
    copied = 0
    for op in ops:
        try:
            if op.get("op") == "copy":  # copies can double a document per op: bound their sum
                copied += len(orjson.dumps(jsonpointer.resolve_pointer(doc, op.get("from"))))
                if copied > MAX_COPY_BYTES:
                    raise errors.server_rejected()
            if not _plain_op(doc, op):
                doc = jsonpatch.JsonPatch([op]).apply(doc, in_place=True)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError,
                KeyError, IndexError, ValueError):
            # kube-apiserver's words exactly: the library's message (a Python repr for a
            # failed ``test``) is not part of its answer
            raise errors.server_rejected() from None
    if not isinstance(doc, dict):
        raise errors.BadRequest("the patched object is not a JSON object")
    return doc


def _plain_op(doc: Any, op: dict) -> bool:
    """Apply ``op`` in place when it is an add, remove or replace of an object member, or a
    test of a string member, and its path names object members only (no list index, no
    escape) that exist down to the last; False, with ``doc`` untouched, for anything else or
    anything that fails, which the library then applies (or refuses) itself. A controller's
    status patch is a handful of such ops, and building the library's patch and pointer
    objects per op was ~5% of a virtual cluster's CPU in a rollout."""
    kind, path = op.get("op"), op.get("path")
    if kind not in _PLAIN_OPS or not isinstance(path, str) or path[:1] != "/" or "~" in path:
        return False
    parts = path[1:].split("/")
    parent = doc
    for part in parts[:-1]:
        parent = parent.get(part) if isinstance(parent, dict) else None
    if not isinstance(parent, dict):
        return False
    last = parts[-1]
    if kind == "add":
        if "value" not in op:
            return False
        parent[last] = _own(op["value"])
        return True
    if last not in parent:
        return False
    if kind == "remove":
        del parent[last]
    elif kind == "replace":
        if "value" not in op:
            return False
        parent[last] = _own(op["value"])
    else:  # test: only a string against a string, which equality alone decides
        value = op.get("value")
        return isinstance(value, str) and isinstance(parent[last], str) and parent[last] == value
    return True


_PLAIN_OPS = frozenset({"add", "remove", "replace", "test"})


def _own(value: Any) -> Any:
    """A value the patched document owns, as the library copies it: the patch's objects
    may be applied again (a retried write) or read after (the same value twice in one patch)."""
    return clone(value) if isinstance(value, (dict, list)) else value


def merge(target: Any, patch: Any) -> Any:
    """RFC 7386 merge: objects merge recursively, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return clone(patch) if isinstance(patch, list) else patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge(out.get(key), value)
    return out


def apply_merge_patch(obj: dict, patch: Any) -> dict:
    """JSON merge patch (``application/merge-patch+json``); the patch must be an object."""
    if not isinstance(patch, dict):
        raise errors.BadRequest("Invalid JSON Patch")
    return merge(clone(obj), patch)
