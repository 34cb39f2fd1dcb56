"""MutatingAdmissionWebhook and ValidatingAdmissionWebhook, as k8s.io/apiserver's
``plugin/webhook/{mutating,validating}`` dispatch them: the last mutating and the last
validating plugins of the chain (only ResourceQuota follows). Mutating webhooks run one after
another and may answer a JSON patch; validating webhooks run in parallel. Which webhooks apply
is ``namespaceSelector``, ``objectSelector``, ``rules`` (``matchPolicy: Equivalent`` also
matches the other served versions of the resource) and ``matchConditions``, in upstream's
order. ``failurePolicy`` decides what a failed call means; dryRun requests reach only webhooks
declaring ``sideEffects: None``/``NoneOnDryRun``. Every error is kube-apiserver's text."""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from dataclasses import dataclass
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from vkube.api import errors
from vkube.api.admission_cel import (WEBHOOK_VARIABLES, CompileError, activation, compile_expression, is_bool,
                                     referenced, request_value)
from vkube.api.admission_authz import Authorize, authorizer_value
from vkube.api.admission_match import EXEMPT_RESOURCES, Attributes, any_rule_matches, object_selector_matches, selector_matches
from vkube.api.jsonvalue import clone
from vkube.api.kinds import ResourceSpec
from vkube.api.kinds_admission import webhook_defaults
from vkube.api.typecheck import describe, type_errors
from vkube.apiserver.admission.configsource import ConfigSource
from vkube.apiserver.admission.webhookclient import CallError, WebhookClient
from vkube.apiserver.context import AdmissionRequest, Context
from vkube.apiserver.request import internal_context

__all__ = ["MutatingWebhooks", "ValidatingWebhooks", "namespace_labels", "review_request", "attributes_of", "versioned",
           "with_authorizer", "settle", "lazy_labels"]

log = logging.getLogger("vkube.apiserver.admission.webhooks")

_OPTIONS_KIND = {"CREATE": "CreateOptions", "UPDATE": "UpdateOptions", "DELETE": "DeleteOptions"}


@dataclass(slots=True)
class Invocation:
    hook: dict[str, Any]
    configuration: str
    spec: ResourceSpec  # the version the webhook is sent (Equivalent may pick another one)


def attributes_of(req: AdmissionRequest, spec: ResourceSpec | None = None) -> Attributes:
    spec = spec or req.spec
    namespace = req.namespace or ""
    if (req.spec.group, req.spec.plural) == ("", "namespaces"):
        namespace = req.name
    return Attributes(req.operation, spec.group, spec.version, spec.plural, req.subresource, namespace)


async def namespace_labels(ctx: Context, req: AdmissionRequest) -> dict[str, str] | None:
    """The labels a namespaceSelector is matched against; None for cluster-scoped objects
    (every selector matches them)."""
    if (req.spec.group, req.spec.plural) == ("", "namespaces"):
        obj = req.obj if req.obj is not None else req.old
        return dict(((obj or {}).get("metadata") or {}).get("labels") or {})
    if not req.namespace:
        return None
    storage = ctx.storage_for("", "Namespace")
    rc = internal_context("get", resource="namespaces", version="v1")
    ns = await storage.get_or_none(rc, None, req.namespace) if storage else None
    return dict(((ns or {}).get("metadata") or {}).get("labels") or {})


def lazy_labels(ctx: Context, req: AdmissionRequest) -> Callable[[], Awaitable[dict[str, str] | None]]:
    """``namespace_labels`` read at most once per request, and only if a selector needs them."""
    cache: list[dict[str, str] | None] = []

    async def labels() -> dict[str, str] | None:
        if not cache:
            cache.append(await namespace_labels(ctx, req))
        return cache[0]
    return labels


def _options(req: AdmissionRequest) -> dict[str, Any] | None:
    kind = _OPTIONS_KIND.get(req.operation)
    if kind is None:
        return None
    out: dict[str, Any] = {"kind": kind, "apiVersion": "meta.k8s.io/v1"}
    if req.dry_run:
        out["dryRun"] = ["All"]
    if req.request.field_manager and kind != "DeleteOptions":
        out["fieldManager"] = req.request.field_manager
    return out


def review_request(req: AdmissionRequest, spec: ResourceSpec, obj: Any, old: Any, uid: str) -> dict[str, Any]:
    """``CreateV1AdmissionReview``'s request (``kind``/``resource`` as sent, ``request*`` as asked)."""
    kind = {"group": spec.group, "version": spec.version, "kind": spec.kind}
    request_kind = {"group": req.spec.group, "version": req.spec.version, "kind": spec.kind}
    if req.kind is not None:  # a subresource's own kind (autoscaling/v1 Scale)
        kind = request_kind = {"group": req.kind.group, "version": req.kind.version, "kind": req.kind.kind}
    elif req.operation == "CONNECT" and isinstance(req.obj, dict):  # the options object's kind
        kind["kind"] = request_kind["kind"] = str(req.obj.get("kind") or spec.kind)
    out: dict[str, Any] = {
        "uid": uid,
        "kind": kind,
        "resource": {"group": spec.group, "version": spec.version, "resource": spec.plural},
    }
    if req.subresource:
        out["subResource"] = req.subresource
    out["requestKind"] = request_kind
    out["requestResource"] = {"group": req.spec.group, "version": req.spec.version, "resource": req.spec.plural}
    if req.subresource:
        out["requestSubResource"] = req.subresource
    if req.name:
        out["name"] = req.name
    if req.namespace:
        out["namespace"] = req.namespace
    out["operation"] = req.operation
    out["userInfo"] = req.user.to_dict()
    out["object"] = obj
    out["oldObject"] = old
    out["dryRun"] = bool(req.dry_run)
    out["options"] = _options(req)
    return out


async def versioned(ctx: Context, obj: Any, spec: ResourceSpec) -> Any:
    """The object in the version a webhook or policy registered for (``matchPolicy:
    Equivalent``): a CRD converting by webhook asks its webhook; otherwise versions differ only
    in apiVersion (conversion ``None``; built-in kinds are served in one version)."""
    if not isinstance(obj, dict) or obj.get("apiVersion") == spec.api_version or obj.get("kind") != spec.kind:
        return obj  # already there, or another kind (a subresource's Scale)
    if getattr(spec.strategy, "conversion_webhook", None) is not None and ctx.convert is not None:
        return (await ctx.convert(spec.strategy, [obj], spec.api_version))[0]
    return {**obj, "apiVersion": spec.api_version}


def with_authorizer(act: dict[str, Any], uses: frozenset[str], authorize: Authorize | None,
                    req: AdmissionRequest) -> dict[str, Any]:
    """Adds ``authorizer`` (the request's user, ``requestResource`` = the request's resource)
    when an expression uses it."""
    if "authorizer" in uses and authorize is not None:
        act["authorizer"] = authorizer_value(authorize, req.user, {
            "group": req.spec.group, "resource": req.spec.plural, "subresource": req.subresource,
            "namespace": req.namespace or "", "name": req.name})
    return act


async def settle(ctx: Context, req: AdmissionRequest, patched: dict[str, Any], spec: ResourceSpec) -> dict[str, Any]:
    """A webhook's or policy's result back in the request's form: decoded as the version it
    was mutated in (a value of the wrong type is upstream's 500, a decode error), converted
    back and defaulted. A subresource's own kind (a Scale) is only decoded."""
    kind = req.kind or spec
    if not getattr(kind.strategy, "custom", False):
        problems = type_errors(patched, ctx.schema_for(kind))
        if problems:
            raise errors.internal_error(describe(problems))
    if req.kind is not None:
        patched["apiVersion"], patched["kind"] = req.kind.api_version, req.kind.kind
        return patched
    patched = await versioned(ctx, patched, req.spec)  # back to the request's version
    patched["apiVersion"], patched["kind"] = req.spec.api_version, req.spec.kind
    req.spec.strategy.default(patched)
    return patched


class _Webhooks:
    """Shared by both dispatchers: which webhooks apply, and calling one."""

    plural = ""
    mutating = False

    def __init__(self, source: ConfigSource, client: WebhookClient, authorize: Authorize | None = None) -> None:
        self.source = source
        self.client = client
        self.authorize = authorize

    def hooks(self) -> list[tuple[dict[str, Any], str]]:
        out = []
        for cfg in self.source.objects(self.plural):
            name = str((cfg.get("metadata") or {}).get("name", ""))
            for hook in cfg.get("webhooks") or ():
                if isinstance(hook, dict):
                    webhook_defaults(hook, mutating=self.mutating)  # stored before defaulting existed
                    out.append((hook, name))
        return out

    async def should_call(self, ctx: Context, req: AdmissionRequest, hook: dict[str, Any], configuration: str,
                          labels: Any) -> Invocation | None:
        if hook.get("namespaceSelector"):
            ns_labels = await labels()
            if ns_labels is not None and not selector_matches(hook["namespaceSelector"], ns_labels):
                return None
        if not object_selector_matches(hook.get("objectSelector"), req.obj, req.old):
            return None
        attrs = attributes_of(req)
        invocation = None
        if any_rule_matches(hook.get("rules"), attrs):
            invocation = Invocation(hook, configuration, req.spec)
        elif hook.get("matchPolicy", "Equivalent") == "Equivalent":
            for spec in ctx.registry.all():
                if (spec.group, spec.plural) == (req.spec.group, req.spec.plural) and spec.version != req.spec.version:
                    if any_rule_matches(hook.get("rules"), attributes_of(req, spec).with_version(spec.version)):
                        invocation = Invocation(hook, configuration, spec)
                        break
        if invocation is None:
            return None
        if hook.get("matchConditions") and not await self._conditions_match(ctx, req, invocation):
            return None
        return invocation

    async def _conditions_match(self, ctx: Context, req: AdmissionRequest, inv: Invocation) -> bool:
        hook = inv.hook
        cfg = next((c for c in self.source.objects(self.plural)
                    if (c.get("metadata") or {}).get("name") == inv.configuration), {})

        def build() -> list[tuple[str, Any]]:
            out = []
            for cond in hook.get("matchConditions") or ():
                try:
                    out.append((str(cond.get("name", "")), compile_expression(cond.get("expression"), WEBHOOK_VARIABLES)))
                except CompileError as exc:
                    out.append((str(cond.get("name", "")), exc))
            return out

        programs = self.source.compiled(cfg, f"{hook.get('name')}/matchConditions", build)
        uses = self.source.compiled(cfg, f"{hook.get('name')}/uses", lambda: referenced(
            c.get("expression") for c in hook.get("matchConditions") or () if isinstance(c, dict)))
        request = request_value(review_request(req, inv.spec, None, None, "")) if "request" in uses else {}
        act = with_authorizer(activation(obj=await versioned(ctx, req.obj, inv.spec),
                                         old=await versioned(ctx, req.old, inv.spec), request=request, names=uses),
                              uses, self.authorize, req)
        failures: list[str] = []
        for _name, program in programs:
            if isinstance(program, CompileError):
                failures.append(f"compilation failed: {program}")
                continue
            try:
                result = program.evaluate(act)
            except Exception as exc:  # celpy's evaluation errors
                failures.append(f"expression '{program.text}' resulted in error: {_cel_error(exc)}")
                continue
            if not is_bool(result):
                failures.append(f"expression '{program.text}' resulted in error: no such overload")
            elif not result:
                return False
        if failures:
            if hook.get("failurePolicy", "Fail") == "Ignore":
                return False
            message = failures[0] if len(failures) == 1 else "[" + ", ".join(failures) + "]"
            raise errors.forbidden(req.spec.plural, req.name, message, group=req.spec.group)
        return True

    async def matching(self, ctx: Context, req: AdmissionRequest) -> list[Invocation]:
        if (req.spec.group, req.spec.plural) in EXEMPT_RESOURCES:
            return []
        hooks = self.hooks()
        if not hooks:
            return []
        labels = lazy_labels(ctx, req)

        out = []
        for hook, configuration in hooks:
            inv = await self.should_call(ctx, req, hook, configuration, labels)
            if inv is not None:
                out.append(inv)
        return out

    async def call(self, ctx: Context, req: AdmissionRequest, inv: Invocation, obj: Any) -> dict[str, Any]:
        """One webhook call; the verified response. Raises CallError (the call failed) or a
        StatusError (dry run refused)."""
        hook = inv.hook
        name = str(hook.get("name", ""))
        if req.dry_run and hook.get("sideEffects") not in ("None", "NoneOnDryRun"):
            if hook.get("sideEffects") is None:
                raise errors.BadRequest("Webhook SideEffects is nil")
            raise errors.BadRequest(f'admission webhook "{name}" does not support dry run')
        versions = hook.get("admissionReviewVersions") or []
        if "v1" not in versions:
            raise CallError("could not create admission objects: webhook does not accept known AdmissionReview "
                            "versions (v1, v1beta1)" if "v1beta1" not in versions else
                            "could not create admission objects: vkube sends AdmissionReview v1 only")
        uid = str(uuid.uuid4())
        body = {"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1",
                "request": review_request(req, inv.spec, await versioned(ctx, obj, inv.spec),
                                          await versioned(ctx, req.old, inv.spec), uid)}
        try:
            doc = await self.client.post(hook.get("clientConfig") or {}, body,
                                         timeout=int(hook.get("timeoutSeconds") or 10))
        except CallError as exc:
            if str(exc).startswith("could not get REST client"):
                raise
            raise CallError(f"failed to call webhook: {exc}") from None
        try:
            return _verify(doc, uid, mutating=self.mutating)
        except ValueError as exc:
            raise CallError(f"received invalid webhook response: {exc}") from None

    async def invoke(self, ctx: Context, req: AdmissionRequest, inv: Invocation, failed_key: str) -> dict[str, Any] | None:
        """Call one webhook and interpret its answer: its warnings and audit annotations kept,
        a refusal raised, a failed call decided by failurePolicy (None: failed open)."""
        try:
            response = await self.call(ctx, req, inv, req.obj)
        except CallError as exc:
            self.failed(req, inv.hook, exc, failed_key)
            return None
        self.record(req, inv.hook, response)
        if not response.get("allowed"):
            # AdmissionResponse.Result is serialized as ``status`` (json:"status,omitempty")
            raise denied(str(inv.hook.get("name", "")), response.get("status"))
        return response

    def record(self, req: AdmissionRequest, hook: dict[str, Any], response: dict[str, Any]) -> None:
        for key, value in (response.get("auditAnnotations") or {}).items():
            req.request.audit_annotations[f"{hook.get('name')}/{key}"] = str(value)
        req.request.warnings.extend(str(w) for w in response.get("warnings") or ())

    def failed(self, req: AdmissionRequest, hook: dict[str, Any], exc: CallError, key: str) -> None:
        """A failed call: failing open records it; failing closed raises upstream's 500."""
        name = str(hook.get("name", ""))
        if hook.get("failurePolicy", "Fail") == "Ignore":
            log.warning("Failed calling webhook, failing open %s: %s", name, exc)
            req.request.audit_annotations[key] = name
            return
        raise errors.internal_error(f'failed calling webhook "{name}": {exc}')


def _verify(doc: dict[str, Any], uid: str, *, mutating: bool) -> dict[str, Any]:
    """``VerifyAdmissionResponse`` for v1."""
    response = doc.get("response")
    if not isinstance(response, dict):
        raise ValueError("webhook response was absent")
    if response.get("uid") != uid:
        raise ValueError(f'expected response.uid="{uid}", got "{response.get("uid", "")}"')
    if doc.get("apiVersion") != "admission.k8s.io/v1" or doc.get("kind") != "AdmissionReview":
        group_version = str(doc.get("apiVersion", ""))
        shown = group_version if "/" in group_version else f"/{group_version}"
        raise ValueError(f"expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, got "
                         f"{shown}, Kind={doc.get('kind', '')}")
    patch, patch_type = response.get("patch"), response.get("patchType")
    if mutating:
        if patch and patch_type is None:
            raise ValueError("webhook returned response.patch but not response.patchType")
        if not patch and patch_type is not None:
            raise ValueError("webhook returned response.patchType but not response.patch")
        if patch_type is not None and not patch_type:
            raise ValueError(f'webhook returned invalid response.patchType of "{patch_type}"')
    else:
        if patch:
            raise ValueError("validating webhook may not return response.patch")
        if patch_type is not None:
            raise ValueError("validating webhook may not return response.patchType")
    return response


def denied(name: str, result: Any) -> errors.StatusError:
    """``ToStatusErr``: the webhook's own Status, worded with its name, never below 400."""
    result = result if isinstance(result, dict) else {}
    code = int(result.get("code") or 0)
    if code < 400:
        code = 400
    denied_by = f'admission webhook "{name}" denied the request'
    if result.get("message"):
        message = f"{denied_by}: {result['message']}"
    elif result.get("reason"):
        message = f"{denied_by}: {result['reason']}"
    else:
        message = f"{denied_by} without explanation"
    details = result.get("details") if isinstance(result.get("details"), dict) else None
    err = errors.StatusError(message, details=details, reason=str(result.get("reason") or ""))
    err.code = code
    err.reason = str(result.get("reason") or "")
    return err


def _cel_error(exc: Exception) -> str:
    text = str(exc.args[0]) if getattr(exc, "args", None) and isinstance(exc.args[0], str) else str(exc)
    text = text.split(" (in activation ", 1)[0]  # celpy appends its whole activation
    if text.startswith("no such member in mapping: "):
        return "no such key: " + text.split(": ", 1)[1].strip("'")
    return text


class MutatingWebhooks(_Webhooks):
    """The MutatingAdmissionWebhook plugin (``mutate`` phase only)."""

    plural = "mutatingwebhookconfigurations"
    mutating = True

    async def mutate(self, ctx: Context, req: AdmissionRequest) -> None:
        """Each webhook in turn; whether it applies is decided on the object as the webhooks
        before it left it (upstream's ShouldCallHook inside the loop). A change asks the chain
        for a second round, where only the IfNeeded webhooks called before a change run again
        (``req.reinvocation``)."""
        if (req.spec.group, req.spec.plural) in EXEMPT_RESOURCES:
            return
        hooks = self.hooks()
        if not hooks:
            return
        labels = lazy_labels(ctx, req)

        again = req.reinvocation
        rounds = again.begin(self.plural, req.obj)
        try:
            for index, (hook, configuration) in enumerate(hooks):
                inv = await self.should_call(ctx, req, hook, configuration, labels)
                key = (configuration, str(hook.get("name", "")))
                if inv is None or again.skip(rounds, key):
                    continue
                changed = await self._one(ctx, req, inv, round_=again.round, index=index)
                again.ran(rounds, key, changed=changed, if_needed=hook.get("reinvocationPolicy") == "IfNeeded")
        finally:
            again.end(rounds, req.obj)

    async def _one(self, ctx: Context, req: AdmissionRequest, inv: Invocation, *, round_: int, index: int) -> bool:
        key = f"failed-open.mutation.webhook.admission.k8s.io/round_{round_}_index_{index}"
        response = await self.invoke(ctx, req, inv, key)
        if response is None or not response.get("patch"):
            return False
        return await self._apply(ctx, req, inv, response, round_=round_, index=index)

    async def _apply(self, ctx: Context, req: AdmissionRequest, inv: Invocation, response: dict[str, Any], *,
               round_: int, index: int) -> bool:
        name = str(inv.hook.get("name", ""))
        failed_open = f"failed-open.mutation.webhook.admission.k8s.io/round_{round_}_index_{index}"
        patch_type = response.get("patchType")
        if patch_type != "JSONPatch":
            self.failed(req, inv.hook, CallError(f'unsupported patch type "{patch_type}"'), failed_open)
            return False
        import jsonpatch  # only once a mutating webhook answers with a patch
        import jsonpointer

        try:
            ops = orjson.loads(base64.b64decode(str(response.get("patch")), validate=True))
            if not isinstance(ops, list):
                raise ValueError("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
            patch = jsonpatch.JsonPatch(ops)
        except (ValueError, TypeError, jsonpatch.InvalidJsonPatch) as exc:
            self.failed(req, inv.hook, CallError(f"received undecodable patch in webhook response: {exc}"),
                        failed_open)
            return False
        if not ops:
            return False
        if req.obj is None:
            raise errors.internal_error(f'admission webhook "{name}" attempted to modify the object, which is not '
                                        "supported for this operation")
        before = await versioned(ctx, req.obj, inv.spec)
        try:
            patched = patch.apply(clone(before), in_place=False)
        except (jsonpatch.JsonPatchException, jsonpointer.JsonPointerException, TypeError, KeyError,
                IndexError, ValueError) as exc:
            raise errors.internal_error(str(exc)) from None
        if not isinstance(patched, dict):
            raise errors.internal_error("the patched object is not a JSON object")
        patched = await settle(ctx, req, patched, inv.spec)
        changed = patched != req.obj
        req.request.audit_annotations[f"patch.webhook.admission.k8s.io/round_{round_}_index_{index}"] = orjson.dumps(
            {"configuration": inv.configuration, "webhook": name, "patch": ops, "patchType": "JSONPatch"}).decode()
        req.request.audit_annotations[f"mutation.webhook.admission.k8s.io/round_{round_}_index_{index}"] = orjson.dumps(
            {"configuration": inv.configuration, "webhook": name, "mutated": changed}).decode()
        if changed:
            req.obj.clear()
            req.obj.update(patched)
        return changed


class ValidatingWebhooks(_Webhooks):
    """The ValidatingAdmissionWebhook plugin (``validate`` phase; calls run in parallel)."""

    plural = "validatingwebhookconfigurations"
    mutating = False

    async def validate(self, ctx: Context, req: AdmissionRequest) -> None:
        invocations = await self.matching(ctx, req)
        if not invocations:
            return
        key = "failed-open.validating.webhook.admission.k8s.io/round_0_index_{}"
        results = await asyncio.gather(*(self.invoke(ctx, req, inv, key.format(i)) for i, inv in enumerate(invocations)),
                                       return_exceptions=True)
        for result in results:  # upstream returns the first error only
            if isinstance(result, BaseException):
                raise result
