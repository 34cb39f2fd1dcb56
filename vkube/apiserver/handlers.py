"""Resource verbs over HTTP: get, list, watch, create, update, patch, delete,
deletecollection, and the generic subresources (status, scale). Parsing and encoding happen
here; the semantics live in ``storage.ResourceStorage``."""

from __future__ import annotations

import base64
import copy
from typing import Any

import orjson
from aiohttp import web

from vkube.api import errors
from vkube.api.kinds import ResourceSpec
from vkube.api.meta import Obj
from vkube.apiserver import http
from vkube.apiserver.context import Context
from vkube.apiserver.objects import parse_rv
from vkube.apiserver.request import RequestContext
from vkube.apiserver.requestinfo import RequestInfo
from vkube.apiserver.scale import SCALE, check_scale, scale_replicas, set_path, get_path, to_scale

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}


class Query:
    """Typed access to the query string with Kubernetes' validation messages."""

    def __init__(self, request: web.Request) -> None:
        self.q = request.query

    def str(self, key: str, default: str = "") -> str:
        return self.q.get(key, default)

    def bool(self, key: str) -> bool:
        return self.q.get(key, "").lower() in ("1", "true")

    def int(self, key: str, default: int = 0) -> int:
        raw = self.q.get(key)
        if raw in (None, ""):
            return default
        try:
            value = int(raw)
        except ValueError:
            raise errors.BadRequest(f'{key}: Invalid value: "{raw}": must be an integer') from None
        if not -(2**63) <= value < 2**63:
            raise errors.BadRequest(f'{key}: Invalid value: "{raw}": must fit in a 64-bit integer')
        return value

    def dry_run(self) -> bool:
        values = self.q.getall("dryRun", [])
        for v in values:
            if v != "All":
                raise errors.BadRequest(f'dryRun: Unsupported value: "{v}": supported values: "All"')
        return bool(values)

    def field_manager(self, default: str | None = None) -> str | None:
        fm = self.q.get("fieldManager")
        if fm is not None and len(fm) > 128:
            raise errors.BadRequest("fieldManager: Too long: may not be more than 128 bytes")
        return fm or default

    def field_validation(self) -> str:
        fv = self.q.get("fieldValidation", "Warn") or "Warn"
        if fv not in ("Strict", "Warn", "Ignore"):
            raise errors.BadRequest(
                f'fieldValidation: Unsupported value: "{fv}": supported values: "Ignore", "Strict", "Warn"'
            )
        return fv


def strict_error(spec: ResourceSpec, problems: list[str]) -> errors.StatusError:
    from vkube.api.fieldvalidation import strict_decoding_error

    return strict_decoding_error(spec.kind, spec.version, problems)


def default_manager(request: web.Request) -> str:
    """Kubernetes derives the manager from the User-Agent's first token (``kubectl-create``...)."""
    ua = request.headers.get("User-Agent", "unknown")
    return ua.split("/")[0][:128] or "unknown"


def namespace_of(spec: ResourceSpec, info: RequestInfo) -> str | None:
    """The namespace storage works in: the request's for a namespaced kind (None when all
    namespaces), None for a cluster-scoped one (whose RequestInfo may still carry a namespace:
    upstream sets it to the name on ``/api/v1/namespaces/NAME``)."""
    return (info.namespace or None) if spec.namespaced else None


def encode_continue(revision: int, key: str, prefix: str) -> str:
    payload = {"v": "meta.k8s.io/v1", "rv": revision, "start": key[len(prefix):]}
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode()


def decode_continue(token: str, prefix: str) -> tuple[int, str]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        rv, start = int(data["rv"]), str(data["start"])
    except Exception:
        raise errors.BadRequest("continue key is not valid: illegal base64 data or JSON") from None
    if not 0 < rv < 2**63 or ".." in start:
        raise errors.BadRequest("continue key is not valid: incorrect encoded start resourceVersion")
    return rv, prefix + start


class ResourceHandlers:
    def __init__(self, ctx: Context, *, to_table: Any, selectors: Any, patches: Any) -> None:
        self.ctx = ctx
        self.to_table = to_table
        self.selectors = selectors
        self.patches = patches

    # ------------------------------------------------------------------ encoding
    def render(self, request: web.Request, spec: ResourceSpec, obj: Obj, status: int = 200,
               *, warnings: list[str] | None = None) -> web.Response:
        accept = http.parse_accept(request.headers.get("Accept"))
        headers = _warning_headers(warnings)
        if http.wants(accept, "Table"):
            table = self.to_table(spec, [obj], now=self.ctx.clock(), wide=True,
                                  include_object=request.query.get("includeObject", "Metadata"))
            return http.json_response(table, status, headers=headers)
        if http.wants(accept, "PartialObjectMetadata"):
            return http.json_response(_partial(obj), status, headers=headers)
        return http.json_response(obj, status, headers=headers)

    def selectors_for(self, spec: ResourceSpec, q: Query) -> tuple[Any, Any]:
        ls = q.str("labelSelector")
        fs = q.str("fieldSelector")
        label = self.selectors.parse_label_selector(ls) if ls else None
        field = None
        if fs:
            field = self.selectors.parse_field_selector(fs)
            supported = set(spec.strategy.field_attrs({"metadata": {}, "spec": {}, "status": {}}))
            for key in field.fields:
                if key not in supported:
                    raise errors.BadRequest(f'field label not supported: {key}')
        return label, field

    # ------------------------------------------------------------------ read
    async def get(self, request: web.Request, spec: ResourceSpec, rc: RequestContext) -> web.StreamResponse:
        info = rc.info
        q = Query(request)
        rv = parse_rv(q.str("resourceVersion"))
        obj = await self.ctx.storage(spec).get(rc, namespace_of(spec, info), info.name,
                                               revision=rv if rv and q.str("resourceVersionMatch") == "Exact" else 0)
        return self.render(request, spec, obj)

    async def list(self, request: web.Request, spec: ResourceSpec, rc: RequestContext) -> web.StreamResponse:
        info = rc.info
        q = Query(request)
        storage = self.ctx.storage(spec)
        label, field = self.selectors_for(spec, q)
        limit = q.int("limit")
        if limit < 0:
            raise errors.BadRequest("limit: Invalid value: must be non-negative")
        rv_str, match = q.str("resourceVersion"), q.str("resourceVersionMatch")
        token = q.str("continue")
        _check_list_options(rv_str, match, token)
        rv = parse_rv(rv_str)
        prefix = spec.key_prefix(namespace_of(spec, info))
        start_after, revision = "", 0
        if token:
            if rv_str not in ("", "0") and rv_str:
                raise errors.BadRequest("specifying resource version is not allowed when using continue")
            revision, start_after = decode_continue(token, prefix)
        elif match == "Exact":
            revision = rv
        try:
            result = await storage.list(rc, namespace_of(spec, info), label_selector=label, field_selector=field,
                                        limit=limit, start_after=start_after, revision=revision)
        except errors.Gone:
            if token:
                raise errors.Gone(
                    "The provided continue parameter is too old to display a consistent list result. "
                    "You can start a new list without the continue parameter, or use the continue "
                    "token in this response to retrieve the remainder of the results."
                ) from None
            raise
        if rv and match != "Exact" and not token and result.resource_version < rv:
            raise errors.too_large_resource_version(rv, result.resource_version)
        metadata: Obj = {"resourceVersion": str(result.resource_version)}
        if result.continue_key is not None:
            metadata["continue"] = encode_continue(result.resource_version, result.continue_key, prefix)
            if result.remaining is not None:
                metadata["remainingItemCount"] = result.remaining
        accept = http.parse_accept(request.headers.get("Accept"))
        if http.wants(accept, "Table"):
            table = self.to_table(spec, result.items, now=self.ctx.clock(), wide=True,
                                  include_object=q.str("includeObject", "Metadata"))
            table["metadata"] = metadata
            return http.json_response(table)
        items = result.items
        kind = spec.list_kind
        api_version = spec.api_version
        if http.wants(accept, "PartialObjectMetadataList"):
            items = [_partial(o) for o in items]
            kind, api_version = "PartialObjectMetadataList", "meta.k8s.io/v1"
        return http.json_response({"kind": kind, "apiVersion": api_version,
                                   "metadata": metadata, "items": items})

    # ------------------------------------------------------------------ write
    async def decode(self, request: web.Request, spec: ResourceSpec, q: Query) -> tuple[Any, list[str]]:
        """Body + field-validation warnings (Strict raises)."""
        raw = await http.read_body(request)
        ct = request.headers.get("Content-Type", http.JSON)
        body, parsed = await http.decode_body_async(raw, ct)
        problems: list[str] = []
        mode = q.field_validation()
        if isinstance(body, dict):  # every mode: unknown fields are dropped (Warn also reports them)
            problems = self.patches.field_problems(self.ctx, spec, body, raw, ct,
                                                   parsed.nodes if parsed is not None else None, mode=mode)
            if problems and mode == "Strict":
                raise strict_error(spec, problems)
        return body, problems

    async def create(self, request: web.Request, spec: ResourceSpec, rc: RequestContext) -> web.StreamResponse:
        info = rc.info
        q = Query(request)
        if "create" not in spec.verbs:
            raise errors.method_not_allowed()
        body, warnings = await self.decode(request, spec, q)
        obj = await self.ctx.storage(spec).create(rc, namespace_of(spec, info), body)
        return self.render(request, spec, obj, 201, warnings=warnings)

    async def update(self, request: web.Request, spec: ResourceSpec, rc: RequestContext,
                     subresource: str = "") -> web.StreamResponse:
        info = rc.info
        q = Query(request)
        body, warnings = await self.decode(request, spec, q)
        obj = await self.ctx.storage(spec).update(rc, namespace_of(spec, info), info.name, body,
                                                  subresource=subresource)
        return self.render(request, spec, obj, warnings=warnings)

    async def patch(self, request: web.Request, spec: ResourceSpec, rc: RequestContext,
                    subresource: str = "") -> web.StreamResponse:
        info = rc.info
        q = Query(request)
        ct = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        ptype = PATCH_TYPES.get(ct)
        if ptype is None:
            raise errors.UnsupportedMediaType(
                f'the body of the request was in an unknown format - accepted media types include: '
                f'{", ".join(PATCH_TYPES)}'
            )
        raw = await http.read_body(request)
        patch, parsed = await http.decode_body_async(raw, ct)
        self.patches.check_patch_shape(ptype, patch)
        manager = rc.field_manager
        if ptype == "apply" and not manager:
            raise errors.BadRequest("PATCH of type apply requires fieldManager: the fieldManager query parameter is required")
        force = q.bool("force")
        if force and ptype != "apply":
            raise errors.BadRequest("force: Invalid value: true: may not be specified for non-apply patch")
        mode = q.field_validation()
        warnings: list[str] = []
        storage = self.ctx.storage(spec)
        schema = self.ctx.schema_for(spec)
        custom = getattr(spec.strategy, "custom", False)
        clean = self.patches.body_is_clean(ptype, patch, schema, custom=custom)

        def apply(current: Obj) -> Obj:
            if ptype == "apply":
                result = self.patches.apply(self.ctx, spec, current or None, patch, manager=manager,
                                            force=force, schema=schema, subresource=subresource)
            else:
                result = self.patches.patch(ptype, current, patch, schema=schema, spec=spec)
                if not clean:
                    self.patches.check_decodes(ptype, patch, result, schema, custom=custom)
                meta = result.get("metadata") if isinstance(result, dict) else None
                if meta is None or isinstance(meta, dict) and not meta.get("name"):  # {"$patch": "delete"}
                    raise errors.BadRequest(f"the name of the object ({info.name} based on URL) was "
                                            "undeterminable: name must be provided")  # checkName
            if isinstance(result, dict) and not clean:  # unknown fields dropped under every mode, as on create
                problems = self.patches.field_problems(
                    self.ctx, spec, result, raw if ptype == "apply" else None, ct,
                    parsed.nodes if parsed is not None else None, mode=mode)
                if problems and mode == "Strict":
                    if ptype != "apply":
                        raise self.patches.strict_patch_error(ptype, patch, result, problems)
                    raise strict_error(spec, problems)
                warnings[:] = problems
            return result

        obj, created = await storage.update_with(
            rc, namespace_of(spec, info), info.name, apply, subresource=subresource,
            operation="Apply" if ptype == "apply" else "Update",
            create_if_missing=ptype == "apply" and not subresource,
            fn_copies=True,  # each patch type and apply copies what it is given
            typed=ptype != "apply",  # check_decodes type-checked the patched object
        )
        return self.render(request, spec, obj, 201 if created else 200, warnings=warnings)

    async def delete(self, request: web.Request, spec: ResourceSpec, rc: RequestContext) -> web.StreamResponse:
        info = rc.info
        q = Query(request)
        options = await _delete_options(request, q)
        if options.get("dryRun"):
            rc = rc.replace(dry_run=True)
        obj, removed = await self.ctx.storage(spec).delete(rc, namespace_of(spec, info), info.name, options=options)
        return self.render(request, spec, obj, 200)

    async def deletecollection(self, request: web.Request, spec: ResourceSpec, rc: RequestContext) -> web.StreamResponse:
        info = rc.info
        q = Query(request)
        if "deletecollection" not in spec.verbs:
            raise errors.method_not_allowed()
        options = await _delete_options(request, q)
        label, field = self.selectors_for(spec, q)
        storage = self.ctx.storage(spec)
        if options.get("dryRun"):
            rc = rc.replace(dry_run=True)
        deleted, revision = await storage.delete_collection(rc, namespace_of(spec, info), options=options,
                                                            label_selector=label, field_selector=field)
        return http.json_response({"kind": spec.list_kind, "apiVersion": spec.api_version,
                                   "metadata": {"resourceVersion": str(revision)},
                                   "items": deleted})

    # ------------------------------------------------------------------ scale
    async def scale(self, request: web.Request, spec: ResourceSpec, rc: RequestContext) -> web.StreamResponse:
        info = rc.info
        assert spec.scale is not None
        storage = self.ctx.storage(spec)
        if request.method == "GET":
            return http.json_response(to_scale(spec, await storage.get(rc, namespace_of(spec, info), info.name)))
        if request.method not in ("PUT", "PATCH"):
            raise errors.method_not_allowed()
        raw = await http.read_body(request)
        ct = request.headers.get("Content-Type", http.JSON)
        body = http.decode_body(raw, ct)
        ptype = PATCH_TYPES.get(ct.split(";")[0].strip().lower()) if request.method == "PATCH" else None
        if ptype is not None:
            self.patches.check_patch_shape(ptype, body)
        elif not isinstance(body, dict):
            raise errors.BadRequest("the body of the request must be a Scale object")

        def apply(current: Obj) -> Obj:
            scale = to_scale(spec, current)
            if ptype is None:
                new_scale = body
                want_rv = get_path(body, "metadata.resourceVersion")
                if want_rv and want_rv != current["metadata"]["resourceVersion"]:
                    raise errors.conflict(spec.plural, info.name, group=spec.group)
            elif ptype == "apply":
                raise errors.UnsupportedMediaType("apply patches are not supported on the scale subresource")
            else:
                new_scale = self.patches.patch(ptype, scale, body, schema={"type": "object"}, spec=None)
                self.patches.check_decodes(ptype, body, new_scale, self.ctx.schema_for(SCALE))
            check_scale(new_scale, info.name, namespace_of(spec, info) if spec.namespaced else None,
                        self.ctx.schema_for(SCALE))
            set_path(current, spec.scale.spec_replicas_path, scale_replicas(new_scale, info.name))
            current["metadata"].pop("resourceVersion", None)
            return current

        # admission sees Scales (storage's _admit_scale), as upstream's scale REST hands them over
        obj, _ = await storage.update_with(rc, namespace_of(spec, info), info.name, apply, subresource="scale")
        return http.json_response(to_scale(spec, obj))


def _check_list_options(rv: str, match: str, token: str) -> None:
    """ListOptions validation as kube-apiserver words it: a 422 on ``ListOptions.meta.k8s.io``."""
    causes = []
    forbidden = "FieldValueForbidden"
    if match:
        if not rv:
            causes.append(errors.field_error("resourceVersionMatch", "Forbidden: resourceVersionMatch is "
                                             "forbidden unless resourceVersion is provided", reason=forbidden))
        if token:
            causes.append(errors.field_error("resourceVersionMatch", "Forbidden: resourceVersionMatch is "
                                             "forbidden when continue is provided", reason=forbidden))
        if match not in ("Exact", "NotOlderThan"):
            causes.append(errors.field_error(
                "resourceVersionMatch", f'Unsupported value: {errors.go_value(match)}: supported values: '
                '"Exact", "NotOlderThan", ""', reason="FieldValueNotSupported"))
        if match == "Exact" and rv == "0":
            causes.append(errors.field_error("resourceVersionMatch", 'Forbidden: resourceVersionMatch "exact" '
                                             'is forbidden for resourceVersion "0"', reason=forbidden))
    if causes:
        raise errors.invalid("ListOptions", "", causes, group="meta.k8s.io")


def _partial(obj: Obj) -> Obj:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": copy.deepcopy(obj.get("metadata") or {})}


def _warning_headers(warnings: list[str] | None) -> dict[str, str] | None:
    if not warnings:
        return None
    # aiohttp takes one value per header name here; Kubernetes sends one header per warning,
    # and clients accept a comma-separated list as the same thing (RFC 7234 warn-value list).
    text = ", ".join('299 - "' + w.replace("\\", "\\\\").replace('"', '\\"') + '"' for w in warnings)
    return {"Warning": text}


async def _delete_options(request: web.Request, q: Query) -> Obj:
    options: Obj = {}
    if request.can_read_body:
        raw = await http.read_body(request)
        if raw.strip():
            body = http.decode_body(raw, request.headers.get("Content-Type", http.JSON))
            if not isinstance(body, dict):
                raise errors.BadRequest("the body of a delete request must be a DeleteOptions object")
            options.update(body)
    if "gracePeriodSeconds" in request.query:
        options["gracePeriodSeconds"] = q.int("gracePeriodSeconds")
    if "propagationPolicy" in request.query:
        options["propagationPolicy"] = q.str("propagationPolicy")
    if "orphanDependents" in request.query:
        options["orphanDependents"] = q.bool("orphanDependents")
    if options.get("dryRun"):
        if options["dryRun"] != ["All"]:
            raise errors.BadRequest(f'dryRun: Unsupported value: {errors.go_value(options["dryRun"])}: supported values: "All"')
    gp = options.get("gracePeriodSeconds")
    if gp is not None and (not isinstance(gp, int) or isinstance(gp, bool)):
        raise errors.BadRequest(f'gracePeriodSeconds: Invalid value: {errors.go_value(gp)}: must be an integer')
    return options
