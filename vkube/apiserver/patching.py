"""Glue between the HTTP verbs and the declarative API's pure functions (vkube.api.patch,
smp, ssa, fieldvalidation): which patch applies to which kind, and managedFields on every write."""

from __future__ import annotations

from typing import Any

from vkube.api import errors
from vkube.api.kinds import ResourceSpec
from vkube.apiserver.context import Context

Obj = dict[str, Any]


def _shape_guard(what: str):  # noqa: ANN202 - a decorator
    """Patches are user input applied to user data: a value of the wrong shape deep inside
    (a string where the schema says object) is the client's error, never a 500."""
    def wrap(fn):  # noqa: ANN001, ANN202
        def inner(*args, **kw):  # noqa: ANN002, ANN003, ANN202
            try:
                return fn(*args, **kw)
            except errors.StatusError:
                raise
            except (TypeError, AttributeError, KeyError, IndexError, ValueError) as exc:
                raise errors.BadRequest(f"invalid {what}: a value has the wrong type or shape ({exc})") from None
        return inner
    return wrap


@_shape_guard("patch")
def patch(ptype: str, current: Obj, body: Any, *, schema: dict | None, spec: ResourceSpec | None) -> Obj:
    from vkube.api.patch import apply_json_patch, apply_merge_patch
    from vkube.api.smp import apply_strategic_merge_patch

    if ptype == "json":
        return apply_json_patch(current, body)
    if ptype == "merge":
        return apply_merge_patch(current, body)
    if ptype == "strategic":
        if spec is not None and schema is None:
            raise errors.UnsupportedMediaType(
                f'the body of the request was in an unknown format - accepted media types include: '
                f'application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml '
                f'(strategic merge patch is not supported for {spec.group_resource})'
            )
        return apply_strategic_merge_patch(current, body, schema)
    raise errors.UnsupportedMediaType(f"unsupported patch type {ptype}")


@_shape_guard("apply configuration")
def apply(ctx: Context, spec: ResourceSpec, current: Obj | None, body: Any, *, manager: str,
          force: bool, schema: dict | None, subresource: str = "") -> Obj:
    """Server-side apply of ``body`` (an object of the URL's kind) by ``manager``."""
    from vkube.api.ssa import server_side_apply
    from vkube.api.typecheck import type_errors
    from vkube.apiserver.objects import now_rfc3339

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
    problems = type_errors(body, schema)
    if problems:  # the apply configuration is a partial object: its types must be right first
        raise errors.BadRequest(
            f'{spec.kind} in version "{spec.version}" cannot be handled as a {spec.kind}: '
            + "; ".join(f"{p}: {m}" for p, m in problems),
            causes=[errors.field_error(p, m, reason="FieldValueTypeInvalid") for p, m in problems])
    return server_side_apply(current, body, manager=manager, force=force, schema=schema,
                             now=now_rfc3339(ctx.clock()))


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
                              schema=ctx.schema_for(spec), subresource=subresource)

    return track


def field_problems(ctx: Context, spec: ResourceSpec, obj: Obj, raw: bytes | None, content_type: str) -> list[str]:
    """Unknown and duplicate fields, in Kubernetes' wording, for fieldValidation."""
    try:
        from vkube.api.fieldvalidation import duplicate_fields, unknown_fields
    except ImportError:  # pragma: no cover - during bring-up
        return []
    problems: list[str] = []
    if raw is not None and "protobuf" not in content_type:  # protobuf cannot repeat a field name
        problems += duplicate_fields(raw, content_type)
    problems += unknown_fields(obj, ctx.schema_for(spec))
    return problems
