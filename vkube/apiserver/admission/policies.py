"""The ValidatingAdmissionPolicy plugin (k8s.io/apiserver ``plugin/policy/validating``): each
policy whose ``matchConstraints`` match the request is evaluated once per binding that matches
it (and once per parameter object its ``paramRef`` selects), in the validating phase before
the validating webhooks. ``validationActions`` decide what a failed validation does — Deny
(the request gets kube-apiserver's 422/403 text), Warn (a Warning header), Audit (the
``validation.policy.admission.k8s.io/validation_failure`` audit annotation). CEL is compiled
once per policy version (``ConfigSource.compiled``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

import orjson

from vkube.api import errors
from vkube.api.admission_cel import (POLICY_VARIABLES, CompileError, Program, activation, compile_expression, is_bool,
                                     referenced, request_value, variables_map)
from vkube.api.admission_match import EXEMPT_RESOURCES, object_selector_matches, policy_rule_matches, selector_matches
from vkube.api.kinds import ResourceSpec
from vkube.apiserver.admission.configsource import ConfigSource
from vkube.api.admission_authz import Authorize
from vkube.apiserver.admission.webhooks import (_cel_error, attributes_of, lazy_labels, review_request, versioned,
                                                with_authorizer)
from vkube.apiserver.context import AdmissionRequest, Context
from vkube.apiserver.request import internal_context

__all__ = ["ValidatingPolicies", "PolicyMatching", "ConfigError", "compiler", "compile_common", "evaluate_variables"]

log = logging.getLogger("vkube.apiserver.admission.policies")

_CODES = {"Unauthorized": 401, "Forbidden": 403, "Invalid": 422, "RequestEntityTooLarge": 413}


class ConfigError(Exception):
    """A policy or binding that cannot be applied; its failurePolicy decides."""


@dataclass(slots=True)
class _Compiled:
    variables: list[tuple[str, Program | CompileError]] = field(default_factory=list)
    conditions: list[Program | CompileError] = field(default_factory=list)
    validations: list[tuple[dict[str, Any], Program | CompileError, Program | CompileError | None]] = field(default_factory=list)
    audits: list[tuple[str, Program | CompileError]] = field(default_factory=list)
    uses: frozenset[str] = frozenset()  # the variables the expressions refer to


def compiler(names: Any) -> Callable[[Any], Program | CompileError]:
    """Compiles one expression against ``names`` (a policy kind's variables); a compile error
    is kept, for failurePolicy to decide when the policy runs."""
    def compile_one(text: Any) -> Program | CompileError:
        try:
            return compile_expression(text, names)
        except CompileError as exc:
            return exc
    return compile_one


def compile_common(spec: dict[str, Any], compile_one: Callable[[Any], Program | CompileError], out: Any) -> None:
    """``variables`` and ``matchConditions``, which both policy kinds have, into ``out``."""
    for var in spec.get("variables") or ():
        out.variables.append((str(var.get("name", "")), compile_one(var.get("expression"))))
    for cond in spec.get("matchConditions") or ():
        out.conditions.append(compile_one(cond.get("expression")))


def evaluate_variables(variables: list[tuple[str, Program | CompileError]], act: dict[str, Any]) -> dict[str, Any]:
    """Each variable in order, each seeing the ones before it (``act["variables"]``); one that
    fails is left out, so an expression using it fails with "no such key"."""
    values: dict[str, Any] = {}
    for name, prog in variables:
        try:
            values[name] = _run(prog, act)
        except ConfigError:
            continue
        act["variables"] = variables_map(values)
    return values


_compile = compiler(POLICY_VARIABLES)


def _build(policy: dict[str, Any]) -> _Compiled:
    spec = policy.get("spec") or {}
    out = _Compiled()
    compile_common(spec, _compile, out)
    for v in spec.get("validations") or ():
        message = _compile(v["messageExpression"]) if v.get("messageExpression") else None
        out.validations.append((v, _compile(v.get("expression")), message))
    for a in spec.get("auditAnnotations") or ():
        out.audits.append((str(a.get("key", "")), _compile(a.get("valueExpression"))))
    texts = [x.get(k) for group, k in (("variables", "expression"), ("matchConditions", "expression"),
                                       ("validations", "expression"), ("validations", "messageExpression"),
                                       ("auditAnnotations", "valueExpression"))
             for x in spec.get(group) or () if isinstance(x, dict)]
    out.uses = referenced(texts)
    return out


@dataclass(slots=True)
class _Denial:
    policy: str
    binding: str | None
    message: str
    reason: str = "Invalid"


def _run(program: Program | CompileError, act: dict[str, Any]) -> Any:
    if isinstance(program, CompileError):
        raise ConfigError(str(program))
    try:
        return program.evaluate(act)
    except Exception as exc:  # celpy's evaluation errors
        raise ConfigError(f"expression '{program.text}' resulted in error: {_cel_error(exc)}") from None


class PolicyMatching:
    """What both policy plugins share: matchConstraints/matchResources and parameters."""

    def __init__(self, source: ConfigSource, authorize: Authorize | None = None) -> None:
        self.source = source
        self.authorize = authorize  # for the ``authorizer`` variable

    async def namespace_object(self, ctx: Context, req: AdmissionRequest, uses: frozenset[str]) -> Any:
        """The request's Namespace, when an expression uses ``namespaceObject``."""
        if "namespaceObject" in uses and req.namespace and (req.spec.group, req.spec.plural) != ("", "namespaces"):
            storage = ctx.storage_for("", "Namespace")
            rc = internal_context("get", resource="namespaces", version="v1")
            return await storage.get_or_none(rc, None, req.namespace) if storage else None
        return None

    async def matches(self, ctx: Context, req: AdmissionRequest, match: Any, ns_labels: Any, *,
                      need_rules: bool = True) -> ResourceSpec | None:
        """The resource version the request matches as (Equivalent may choose another), or None."""
        match = match if isinstance(match, dict) else {}
        if match.get("namespaceSelector"):
            labels = await ns_labels()
            if labels is not None and not selector_matches(match["namespaceSelector"], labels):
                return None
        if not object_selector_matches(match.get("objectSelector"), req.obj, req.old):
            return None
        attrs = attributes_of(req)
        if policy_rule_matches(match.get("excludeResourceRules"), attrs, req.name):
            return None
        rules = match.get("resourceRules")
        if not rules and not need_rules:
            return req.spec
        if policy_rule_matches(rules, attrs, req.name):
            return req.spec
        if match.get("matchPolicy", "Equivalent") == "Equivalent":
            for spec in ctx.registry.all():
                if (spec.group, spec.plural) == (req.spec.group, req.spec.plural) and spec.version != req.spec.version:
                    if policy_rule_matches(rules, attributes_of(req, spec), req.name):
                        return spec
        return None

    async def matching_policies(self, ctx: Context, req: AdmissionRequest, policies: list[dict[str, Any]],
                                ns_labels: Any) -> list[tuple[dict[str, Any], str, dict[str, Any], ResourceSpec]]:
        """(policy, name, spec, the version matched as) of each policy whose matchConstraints match."""
        out = []
        for policy in policies:
            spec = policy.get("spec") or {}
            matched = await self.matches(ctx, req, spec.get("matchConstraints"), ns_labels)
            if matched is not None:
                out.append((policy, str((policy.get("metadata") or {}).get("name", "")), spec, matched))
        return out

    async def matching_bindings(self, ctx: Context, req: AdmissionRequest, bindings: list[dict[str, Any]],
                                policy: str, ns_labels: Any) -> list[tuple[str, dict[str, Any]]]:
        """(name, spec) of the policy's bindings whose matchResources match."""
        out = []
        for binding in bindings:
            bspec = binding.get("spec") or {}
            if bspec.get("policyName") != policy:
                continue
            if bspec.get("matchResources") and await self.matches(
                    ctx, req, bspec["matchResources"], ns_labels, need_rules=False) is None:
                continue
            out.append((str((binding.get("metadata") or {}).get("name", "")), bspec))
        return out

    async def params(self, ctx: Context, req: AdmissionRequest, kind: Any, ref: Any) -> list[Any]:
        """``CollectParams``: ``[None]`` without params, else the selected objects."""
        if not kind or not ref:
            return [None]
        api_version, kind_name = str(kind.get("apiVersion", "")), str(kind.get("kind", ""))
        spec = ctx.registry.by_api_version_kind(api_version, kind_name)
        if spec is None:
            group, _, version = api_version.rpartition("/")
            raise ConfigError(f"paramKind kind `{group}/{version}, Kind={kind_name}` not known")
        namespace = None
        if spec.namespaced:
            namespace = ref.get("namespace") or req.namespace
            if not namespace:
                raise ConfigError("cannot use namespaced paramRef in policy binding that matches cluster-scoped resources")
        elif ref.get("namespace"):
            raise ConfigError("paramRef.namespace must not be provided for a cluster-scoped `paramKind`")
        storage = ctx.storage(spec)
        rc = internal_context("get", resource=spec.plural, group=spec.group, version=spec.version,
                              namespace=namespace or "")
        if ref.get("name"):
            found = await storage.get_or_none(rc, namespace, str(ref["name"]))
            params = [found] if found is not None else []
        else:
            listed = (await storage.list(rc, namespace)).items
            params = [p for p in listed if selector_matches(ref.get("selector") or {},
                                                            (p.get("metadata") or {}).get("labels"))]
        if not params and ref.get("parameterNotFoundAction") == "Deny":
            raise ConfigError("no params found for policy binding with `Deny` parameterNotFoundAction")
        return params


class ValidatingPolicies(PolicyMatching):
    """The ValidatingAdmissionPolicy plugin (``validate`` phase only)."""

    async def validate(self, ctx: Context, req: AdmissionRequest) -> None:
        if (req.spec.group, req.spec.plural) in EXEMPT_RESOURCES:
            return
        policies = self.source.objects("validatingadmissionpolicies")
        if not policies:
            return
        bindings = self.source.objects("validatingadmissionpolicybindings")
        denials: list[_Denial] = []
        failures: list[dict[str, Any]] = []
        ns_labels = lazy_labels(ctx, req)
        for policy, name, spec, matched in await self.matching_policies(ctx, req, policies, ns_labels):
            fail = spec.get("failurePolicy", "Fail") != "Ignore"
            compiled = self.source.compiled(policy, "vap", lambda p=policy: _build(p))
            for bname, bspec in await self.matching_bindings(ctx, req, bindings, name, ns_labels):
                try:
                    params = await self.params(ctx, req, spec.get("paramKind"), bspec.get("paramRef"))
                    for param in params:
                        for d in await self._evaluate(ctx, req, matched, compiled, param, name, bname, fail):
                            self._act(req, bspec.get("validationActions") or [], d, denials, failures)
                except ConfigError as exc:
                    if fail:
                        denials.append(_Denial(name, bname, f"failed to configure binding: {exc}"))
        if failures:
            req.request.audit_annotations["validation.policy.admission.k8s.io/validation_failure"] = \
                orjson.dumps(failures[:50]).decode()
        if denials:
            d = denials[0]
            head = (f"ValidatingAdmissionPolicy '{d.policy}' with binding '{d.binding}' denied request: {d.message}"
                    if d.binding is not None else f"ValidatingAdmissionPolicy '{d.policy}' denied request: {d.message}")
            err = errors.forbidden(req.spec.plural, req.name, head, group=req.spec.group)
            err.reason, err.code = d.reason or "Invalid", _CODES.get(d.reason or "Invalid", 422)
            err.details["causes"] = [*err.causes, {"message": head}]
            err.has_details = True
            raise err

    def _act(self, req: AdmissionRequest, actions: list[str], d: tuple[int, _Denial],
             denials: list[_Denial], failures: list[dict[str, Any]]) -> None:
        index, denial = d
        for action in actions:
            if action == "Deny":
                denials.append(denial)
            elif action == "Warn":
                req.request.warnings.append(f"Validation failed for ValidatingAdmissionPolicy '{denial.policy}' "
                                            f"with binding '{denial.binding}': {denial.message}")
            elif action == "Audit":
                failures.append({"message": denial.message, "policy": denial.policy, "binding": denial.binding,
                                 "expressionIndex": index, "validationActions": actions})

    async def _evaluate(self, ctx: Context, req: AdmissionRequest, matched: ResourceSpec, compiled: _Compiled,
                        param: Any, policy: str, binding: str, fail: bool) -> list[tuple[int, _Denial]]:
        namespace = await self.namespace_object(ctx, req, compiled.uses)
        request = request_value(review_request(req, matched, None, None, "")) if "request" in compiled.uses else {}
        act = with_authorizer(activation(obj=await versioned(ctx, req.obj, matched),
                                         old=await versioned(ctx, req.old, matched), request=request, params=param,
                                         namespace=namespace, variables={}, names=compiled.uses),
                              compiled.uses, self.authorize, req)
        out: list[tuple[int, _Denial]] = []

        def error(message: str) -> list[tuple[int, _Denial]]:
            return [(0, _Denial(policy, binding, message))] if fail else []

        for prog in compiled.conditions:
            try:
                result = _run(prog, act)
            except ConfigError as exc:
                return error(str(exc))
            if is_bool(result) and not result:
                return []
        evaluate_variables(compiled.variables, act)
        for index, (v, prog, message_prog) in enumerate(compiled.validations):
            try:
                result = _run(prog, act)
            except ConfigError as exc:
                if fail:
                    out.append((index, _Denial(policy, binding, str(exc))))
                continue
            if not is_bool(result):
                if fail:
                    out.append((index, _Denial(policy, binding, f"expression '{prog.text}' resulted in error: "
                                                                  "no such overload")))
                continue
            if result:
                continue
            message = ""
            if message_prog is not None and not isinstance(message_prog, CompileError):
                try:
                    text = message_prog.evaluate(act)
                    if isinstance(text, str) and "\n" not in text.strip():
                        message = text.strip()
                except Exception:
                    message = ""
            if not message and v.get("message"):
                message = str(v["message"]).strip()
            if not message:
                message = f"failed expression: {str(v.get('expression', '')).strip()}"
            out.append((index, _Denial(policy, binding, message, str(v.get("reason") or "Invalid"))))
        for key, prog in compiled.audits:
            try:
                value = _run(prog, act)
            except ConfigError as exc:
                if fail:
                    out.append((0, _Denial(policy, binding, str(exc))))
                continue
            if value is None or (isinstance(value, str) and not value):
                continue
            req.request.audit_annotations[f"{policy}/{key}"] = str(value)[:10240]
        return out
