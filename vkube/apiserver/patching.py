"""Glue between the HTTP verbs and the declarative API's pure functions (vkube.api.patch,
smp, ssa, fieldvalidation): which patch applies to which kind, and managedFields on every write."""

from __future__ import annotations

import json
from typing import Any

from vkube.api import errors
from vkube.api.kinds import ResourceSpec
from vkube.api.meta import Obj
from vkube.apiserver.context import Context

_JSON_PATCH_OPS = ("add", "remove", "replace", "move", "copy", "test")


def check_patch_shape(ptype: str, body: Any) -> None:
    """Refuse a decoded patch whose top-level shape its type does not allow, before any of it
    is applied, with the messages kube-apiserver's patch handler gives. Past this check a
    patch function may still refuse a value (a StatusError); any other exception is a server
    bug and surfaces as a 500 with its traceback logged, never as a client error.

    - JSON patch: a list of at most 10,000 objects, each with a known ``op`` and string
      ``path`` (and ``from`` for move/copy, ``value`` for add/replace/test);
    - merge and strategic merge patch: an object;
    - apply: an object naming ``apiVersion`` and ``kind`` (checked in ``apply``)."""
    from vkube.api.patch import MAX_JSON_PATCH_OPERATIONS

    if ptype == "json":
        if not isinstance(body, list):
            raise errors.BadRequest(f"json: cannot unmarshal {_go_type(body)} into Go value of type jsonpatch.Patch")
        if len(body) > MAX_JSON_PATCH_OPERATIONS:
            raise errors.request_entity_too_large(
                f"The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {len(body)}")
        for op in body:
            if not isinstance(op, dict):
                raise errors.BadRequest(
                    f"json: cannot unmarshal {_go_type(op)} into Go value of type jsonpatch.Operation")
            kind = op.get("op")
            if kind not in _JSON_PATCH_OPS:
                raise _unprocessable(f"Unexpected kind: {kind if isinstance(kind, str) else 'unknown'}")
            if not isinstance(op.get("path"), str):
                raise _unprocessable(f"{kind} operation failed to decode path: operation missing path field")
            if kind in ("move", "copy") and not isinstance(op.get("from"), str):
                raise _unprocessable(f"{kind} operation failed to decode from: operation missing from field")
            if kind in ("add", "replace", "test") and "value" not in op:
                raise _unprocessable(f"{kind} operation failed to decode value: operation missing value field")
    elif ptype == "merge":
        if not isinstance(body, dict):
            raise errors.BadRequest("Invalid JSON Patch")
    elif ptype == "strategic":
        if not isinstance(body, dict):
            raise errors.BadRequest(
                f"json: cannot unmarshal {_go_type(body)} into Go value of type map[string]interface {{}}")
    elif ptype == "apply":
        if not isinstance(body, dict):
            raise errors.BadRequest(
                f"error decoding patch: json: cannot unmarshal {_go_type(body)} into Go value of type "
                "map[string]interface {}")
    else:
        raise errors.UnsupportedMediaType(f"unsupported patch type {ptype}")


def _go_type(value: Any) -> str:
    """How encoding/json names a JSON value's type in an unmarshal error."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _unprocessable(message: str) -> errors.StatusError:
    """A JSON patch that decodes but cannot be applied: 422, as kube-apiserver answers
    (``NewGenericServerResponse(StatusUnprocessableEntity, ...)`` keeps the patch library's
    ``message`` out of the body: the generic text, empty details)."""
    return errors.server_rejected()


def patch(ptype: str, current: Obj, body: Any, *, schema: dict | None, spec: ResourceSpec | None) -> Obj:
    from vkube.api.patch import apply_json_patch, apply_merge_patch
    from vkube.api.smp import apply_strategic_merge_patch

    if ptype == "json":
        return apply_json_patch(current, body)
    if ptype == "merge":
        return apply_merge_patch(current, body)
    if ptype == "strategic":
        if spec is not None and (schema is None or getattr(spec.strategy, "custom", False)):
            # kube-apiserver's words: a custom resource's PATCH route does not list SMP
            raise errors.UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types "
                "include: application/json-patch+json, application/merge-patch+json, "
                "application/apply-patch+yaml")
        return apply_strategic_merge_patch(current, body, schema)
    raise errors.UnsupportedMediaType(f"unsupported patch type {ptype}")


def check_decodes(ptype: str, body: Any, result: Any, schema: dict | None, *, custom: bool = False) -> None:
    """Refuse a JSON, merge or strategic merge patch whose result its Go type cannot decode
    (``replicas: "two"``, a number past an int32) as kube-apiserver's patcher does: 422 Invalid
    on the field ``patch`` (``jsonPatcher.applyPatchToCurrentObject``/``applyPatchToObject``),
    not the 400 a create body gets. Custom resources decode into unstructured objects, whose
    schema errors come later as 422s of their own."""
    from vkube.api.typecheck import TypeIndex, describe, type_errors

    if custom or not isinstance(result, dict):
        return
    problems = type_errors(result, schema, TypeIndex.shared(schema) if schema else None)
    if problems:
        raise patch_invalid(ptype, body, result, describe(problems))


def body_is_clean(ptype: str, body: Any, schema: dict | None, *, custom: bool = False) -> bool:
    """Whether a patch can only give its target values that its Go type decodes and that its
    schema knows. A merge or strategic merge patch adds the values of its body to the stored
    object, which was type-checked and pruned of unknown fields when written; a JSON patch of
    ``test``, ``remove``, ``add`` and ``replace`` operations on object paths adds each
    operation's value at its path. When those values alone (each where it lands) have no type
    error and no unknown field, neither has the result, and the walks of the whole patched
    object (``check_decodes``, ``field_problems``) are skipped; a body with either (or with SMP
    directives, which look unknown, or JSON patch operations this cannot place) takes those
    walks for the exact errors. A status patch then costs a walk of the status, not of the pod."""
    if custom or not schema:
        return False
    if ptype in ("merge", "strategic"):
        return isinstance(body, dict) and _values_clean(body, schema)
    if ptype != "json" or not isinstance(body, list):
        return False
    for op in body:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            return False
        kind = op.get("op")
        if kind in ("test", "remove"):
            continue  # nothing lands in the object
        if kind not in ("add", "replace") or "value" not in op:
            return False
        parts = op["path"].split("/")[1:]
        if not parts or op["path"][:1] != "/" or any(
                not p or p.isdigit() or p == "-" or "~" in p for p in parts):
            return False  # the root, list items, escaped keys: not placed here
        landed: Any = op["value"]
        for p in reversed(parts):
            landed = {p: landed}
        if not _values_clean(landed, schema):
            return False
    return True


def _values_clean(obj: dict, schema: dict) -> bool:
    from vkube.api.fieldvalidation import unknown_fields
    from vkube.api.typecheck import TypeIndex, type_errors

    return not type_errors(obj, schema, TypeIndex.shared(schema)) and not unknown_fields(obj, schema)


def patch_invalid(ptype: str, body: Any, result: Any, detail: str) -> errors.Invalid:
    """``errors.NewInvalid(schema.GroupKind{}, "", field.Invalid(field.NewPath("patch"), V, detail))``:
    V is the patched object's JSON for JSON and merge patches and the patch as Go's ``%+v``
    prints the decoded map for a strategic merge patch, so the message reads
    `` "" is invalid: patch: Invalid value: "{...}": json: cannot unmarshal ...``."""
    if ptype == "strategic":
        value = errors.go_v(body)
    else:  # encoding/json's Marshal: compact, HTML characters escaped
        value = (json.dumps(result, separators=(",", ":"), ensure_ascii=False)
                 .replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))
    quoted = json.dumps(value, ensure_ascii=False)  # Go's %q of the value
    return errors.invalid("", "", [errors.field_error("patch", f"Invalid value: {quoted}: {detail}")])


def strict_patch_error(ptype: str, body: Any, result: Any, problems: list[str]) -> errors.Invalid:
    """Unknown fields in a patched object under ``fieldValidation=Strict``: the patcher's
    422 (``strict decoding error: unknown field "spec.replica"``), not a create's 400."""
    return patch_invalid(ptype, body, result, "strict decoding error: " + ", ".join(problems))


def apply(ctx: Context, spec: ResourceSpec, current: Obj | None, body: Any, *, manager: str,
          force: bool, schema: dict | None, subresource: str = "") -> Obj:
    """Server-side apply of ``body`` (an object of the URL's kind) by ``manager``."""
    from vkube.api.ssa import server_side_apply
    from vkube.api.typecheck import describe, type_errors
    from vkube.api.meta import rfc3339

    if not isinstance(body, dict):
        raise errors.BadRequest("the body of an apply patch must be an object")
    if not body.get("apiVersion") or not body.get("kind"):
        raise errors.BadRequest("apply patches must set apiVersion and kind: "
                                "Object 'Kind' is missing or 'apiVersion' is missing in the applied object")
    if body.get("kind") != spec.kind or body.get("apiVersion") != spec.api_version:
        raise errors.BadRequest(
            f'the kind in the apply patch ({body.get("apiVersion")}, Kind={body.get("kind")}) does not '
            f"match the URL's kind ({spec.api_version}, Kind={spec.kind})"
        )
    problems = [] if getattr(spec.strategy, "custom", False) else type_errors(body, schema)
    if problems:  # the apply configuration is a partial object: its types must be right first
        raise errors.BadRequest(
            f'{spec.kind} in version "{spec.version}" cannot be handled as a {spec.kind}: '
            + describe(problems),
            causes=[errors.field_error(p, m, reason="FieldValueTypeInvalid") for p, m in problems])
    return server_side_apply(current, body, manager=manager, force=force, schema=schema,
                             now=rfc3339(ctx.clock()), cache=ctx.field_sets)


def field_tracker(ctx: Context) -> Any:
    """The ``Context.track_fields`` callback: records managedFields for updates."""

    def track(spec: ResourceSpec, old: Obj | None, new: Obj, *, manager: str, operation: str,
              subresource: str, now: str) -> None:
        if operation == "Apply":
            return  # server_side_apply maintains managedFields itself
        try:
            from vkube.api.ssa import update_managed_fields
        except ImportError:  # pragma: no cover - during bring-up
            return
        update_managed_fields(old, new, manager=manager, operation=operation,
                              api_version=spec.api_version, now=now,
                              schema=ctx.schema_for(spec), subresource=subresource,
                              cache=ctx.field_sets)

    return track


def field_problems(ctx: Context, spec: ResourceSpec, obj: Obj, raw: bytes | None, content_type: str,
                   yaml_nodes: list[Any] | None = None, *, mode: str = "Warn") -> list[str]:
    """Unknown and duplicate fields, in Kubernetes' wording, for fieldValidation ``mode``
    (``yaml_nodes``: the YAML body as the decoder composed it, not parsed again). Unknown
    fields are dropped from ``obj`` under every mode, as decoding into Kubernetes' typed
    structs drops them: Warn reports them, Ignore does not, Strict refuses (the caller)."""
    try:
        from vkube.api.fieldvalidation import duplicate_fields, unknown_fields
    except ImportError:  # pragma: no cover - during bring-up
        return []
    problems: list[str] = []
    if mode != "Ignore" and raw is not None and "protobuf" not in content_type:  # protobuf cannot repeat a field name
        problems += duplicate_fields(raw, content_type, yaml_nodes, decoded=obj)  # not yet pruned
    unknown = unknown_fields(obj, ctx.schema_for(spec), prune=mode != "Strict")
    return problems + unknown if mode != "Ignore" else []
