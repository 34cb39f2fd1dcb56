"""The MutatingAdmissionPolicy plugin (k8s.io/apiserver ``plugin/policy/mutating``): the first
mutating plugin of the dynamic ones (before MutatingAdmissionWebhook). Each matching policy is
applied once per matching binding and parameter, its ``mutations`` in order:

* ``ApplyConfiguration``: the expression builds ``Object{…}``, merged into the object as
  server-side apply merges (maps field by field, ``listType: map`` lists by key, ``set`` lists
  as a union, other lists replaced), driven by the kind's OpenAPI schema;
* ``JSONPatch``: the expression yields ``[JSONPatch{op, path, value}, …]``, applied in order
  (a failed ``test`` leaves the object unchanged, as upstream).

Failures are kube-apiserver's ``policy 'P' with binding 'B' denied request: …`` (403), or
ignored under ``failurePolicy: Ignore``. ``reinvocationPolicy: IfNeeded`` policies run again
in the chain's second round when a later plugin changed the object (``req.reinvocation``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from vkube.api import errors
from vkube.api.admission_cel import (MUTATION_VARIABLES, CompileError, Program, activation,
                                     from_cel, is_bool, referenced, request_value, type_names, variables_map)
from vkube.api.admission_match import EXEMPT_RESOURCES
from vkube.api.fieldset import child_schema, list_semantics
from vkube.api.jsonvalue import clone
from vkube.api.kinds import ResourceSpec
from vkube.apiserver.admission.policies import ConfigError, PolicyMatching, _run, compile_common, compiler, evaluate_variables
from vkube.apiserver.admission.webhooks import lazy_labels, review_request, settle, versioned, with_authorizer
from vkube.apiserver.context import AdmissionRequest, Context

__all__ = ["MutatingPolicies", "apply_configuration"]

Schema = dict[str, Any]


@dataclass(slots=True)
class _Compiled:
    variables: list[tuple[str, Program | CompileError]] = field(default_factory=list)
    conditions: list[Program | CompileError] = field(default_factory=list)
    mutations: list[tuple[str, Program | CompileError]] = field(default_factory=list)
    uses: frozenset[str] = frozenset()


_compile = compiler(MUTATION_VARIABLES)


def _build(policy: dict[str, Any]) -> _Compiled:
    spec = policy.get("spec") or {}
    out = _Compiled()
    compile_common(spec, _compile, out)
    texts: list[Any] = [x.get("expression") for group in ("variables", "matchConditions")
                        for x in spec.get(group) or () if isinstance(x, dict)]
    for m in spec.get("mutations") or ():
        kind = str(m.get("patchType", ""))
        text = ((m.get("applyConfiguration") if kind == "ApplyConfiguration" else m.get("jsonPatch")) or {}).get("expression")
        out.mutations.append((kind, _compile(text)))
        texts.append(text)
    out.uses = referenced(texts)
    return out


def apply_configuration(obj: Any, config: Any, schema: Schema | None) -> Any:
    """``config`` merged into ``obj`` the way server-side apply merges (without ownership)."""
    if isinstance(obj, dict) and isinstance(config, dict):
        out = dict(obj)
        for key, value in config.items():
            out[key] = apply_configuration(obj.get(key), value, child_schema(schema, key)) if key in obj else value
        return out
    if isinstance(obj, list) and isinstance(config, list):
        kind, keys = list_semantics(schema)
        if kind == "set":
            return obj + [v for v in config if v not in obj]
        if kind == "map" and keys:
            items_schema = (schema or {}).get("items")
            out = list(obj)
            index = {tuple(o.get(k) for k in keys): i for i, o in enumerate(out) if isinstance(o, dict)}
            for item in config:
                at = index.get(tuple(item.get(k) for k in keys)) if isinstance(item, dict) else None
                if at is None:
                    out.append(item)
                else:
                    out[at] = apply_configuration(out[at], item, items_schema)
            return out
    return config


class MutatingPolicies(PolicyMatching):
    """The MutatingAdmissionPolicy plugin (``mutate`` phase only)."""

    async def mutate(self, ctx: Context, req: AdmissionRequest) -> None:
        """Every matching policy, binding and parameter; a change asks the chain for a second
        round, where only the IfNeeded invocations made before a change run again."""
        if req.obj is None or (req.spec.group, req.spec.plural) in EXEMPT_RESOURCES:
            return
        policies = self.source.objects("mutatingadmissionpolicies")
        if not policies:
            return
        bindings = self.source.objects("mutatingadmissionpolicybindings")
        ns_labels = lazy_labels(ctx, req)
        again = req.reinvocation
        rounds = again.begin("mutatingadmissionpolicies", req.obj)
        try:
            for policy, name, spec, matched in await self.matching_policies(ctx, req, policies, ns_labels):
                fail = spec.get("failurePolicy", "Fail") != "Ignore"
                compiled = self.source.compiled(policy, "map", lambda p=policy: _build(p))
                for bname, bspec in await self.matching_bindings(ctx, req, bindings, name, ns_labels):
                    try:
                        try:
                            params = await self.params(ctx, req, spec.get("paramKind"), bspec.get("paramRef"))
                        except ConfigError as exc:
                            raise ConfigError(f"failed to configure binding: {exc}") from None
                        for param in params:
                            key = (name, bname, orjson.dumps(param, option=orjson.OPT_SORT_KEYS) if param else b"")
                            if again.skip(rounds, key):
                                continue
                            before = clone(req.obj)
                            await self._apply(ctx, req, matched, compiled, param)
                            again.ran(rounds, key, changed=req.obj != before,
                                      if_needed=spec.get("reinvocationPolicy") == "IfNeeded")
                    except ConfigError as exc:
                        if fail:
                            raise errors.forbidden(req.spec.plural, req.name, f"policy '{name}' with binding "
                                                   f"'{bname}' denied request: {exc}", group=req.spec.group) from None
        finally:
            again.end(rounds, req.obj)

    async def _apply(self, ctx: Context, req: AdmissionRequest, matched: ResourceSpec, compiled: _Compiled,
                     param: Any) -> None:
        namespace = await self.namespace_object(ctx, req, compiled.uses)
        request = request_value(review_request(req, matched, None, None, "")) if "request" in compiled.uses else {}

        async def current() -> dict[str, Any]:
            act = activation(obj=await versioned(ctx, req.obj, matched), old=await versioned(ctx, req.old, matched),
                             request=request, params=param, namespace=namespace, names=compiled.uses)
            act.update(type_names())
            return with_authorizer(act, compiled.uses, self.authorize, req)

        act = await current()
        for prog in compiled.conditions:
            result = _run(prog, act)
            if is_bool(result) and not result:
                return
        values = evaluate_variables(compiled.variables, act)
        for kind, prog in compiled.mutations:
            result = from_cel(_run(prog, act))
            before = await versioned(ctx, req.obj, matched)
            if kind == "ApplyConfiguration":
                if not isinstance(result, dict):
                    raise ConfigError("type mismatch: ApplyConfiguration.expression should evaluate to an Object")
                patched = apply_configuration(before, result, ctx.schema_for(req.kind or matched))
            else:
                patched = _json_patch(before, result)
            if not isinstance(patched, dict):
                raise ConfigError("the patched object is not a JSON object")
            patched = await settle(ctx, req, patched, matched)
            if patched != req.obj:
                req.obj.clear()
                req.obj.update(patched)
            act = await current()  # the next mutation sees this one's result
            if values:
                act["variables"] = variables_map(values)


def _json_patch(obj: dict[str, Any], ops: Any) -> Any:
    if not isinstance(ops, list):
        raise ConfigError("type mismatch: JSONPatchType.expression should evaluate to array")
    if not all(isinstance(op, dict) for op in ops):
        raise ConfigError("type mismatch: JSONPatchType.expression should evaluate to array of JSONPatch")
    import jsonpatch  # only with JSONPatch mutations
    import jsonpointer

    try:
        return jsonpatch.JsonPatch(ops).apply(clone(obj), in_place=False)
    except jsonpatch.JsonPatchTestFailed:
        return obj  # a failed test: the patch is not applied, and that is not an error
    except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError, KeyError,
            IndexError, ValueError) as exc:
        raise ConfigError(f"JSON Patch: {exc}") from None
