"""admissionregistration.k8s.io/v1: webhook configurations and admission policies, with the
defaults and validation of ``pkg/apis/admissionregistration`` (messages as kube-apiserver
writes them). CEL expressions are compiled on write, so a policy that does not compile is
refused with 422 and never stored."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from vkube.api.admission_cel import (MUTATION_VARIABLES, POLICY_VARIABLES, WEBHOOK_VARIABLES, CompileError,
                                     compile_expression)
from vkube.api.kinds import Column
from vkube.api.strategy import Obj, Strategy
from vkube.api.tables import age_column
from vkube.api.validation import (
    Causes, duplicate, forbidden, invalid_value, not_supported, qualified_name, required,
    validate_label_selector, validate_object_meta, validate_object_meta_update,
)

__all__ = ["STRATEGIES", "webhook_defaults", "validate_client_config"]

_OPERATIONS = ("*", "CONNECT", "CREATE", "DELETE", "UPDATE")
_SCOPES = ("*", "Cluster", "Namespaced")
_FAILURE = ("Fail", "Ignore")
_MATCH = ("Equivalent", "Exact")
_SIDE_EFFECTS = ("None", "NoneOnDryRun")
_REINVOCATION = ("IfNeeded", "Never")
_REVIEW_VERSIONS = ("v1", "v1beta1")
_ACTIONS = ("Audit", "Deny", "Warn")


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v if isinstance(v, dict) else {} for v in value] if isinstance(value, list) else []


# --- defaults ------------------------------------------------------------------------------


def _default_rules(rules: Any) -> None:
    for rule in _dicts(rules):
        rule.setdefault("scope", "*")


def webhook_defaults(hook: dict[str, Any], *, mutating: bool) -> None:
    """``SetDefaults_ValidatingWebhook``/``SetDefaults_MutatingWebhook``."""
    hook.setdefault("failurePolicy", "Fail")
    hook.setdefault("matchPolicy", "Equivalent")
    hook.setdefault("namespaceSelector", {})
    hook.setdefault("objectSelector", {})
    hook.setdefault("timeoutSeconds", 10)
    if mutating:
        hook.setdefault("reinvocationPolicy", "Never")
    service = (hook.get("clientConfig") or {}).get("service")
    if isinstance(service, dict):
        service.setdefault("port", 443)
    _default_rules(hook.get("rules"))


def _default_match_resources(match: Any) -> None:
    if not isinstance(match, dict):
        return
    match.setdefault("matchPolicy", "Equivalent")
    match.setdefault("namespaceSelector", {})
    match.setdefault("objectSelector", {})
    _default_rules(match.get("resourceRules"))
    _default_rules(match.get("excludeResourceRules"))


# --- validation ----------------------------------------------------------------------------


def _validate_rules(rules: Any, path: str, *, required_ops: bool = True) -> Causes:
    causes: Causes = []
    for i, rule in enumerate(_dicts(rules)):
        p = f"{path}[{i}]"
        ops = rule.get("operations") or []
        if not ops and required_ops:
            causes.append(required(f"{p}.operations"))
        for j, op in enumerate(ops):
            if op not in _OPERATIONS:
                causes.append(not_supported(f"{p}.operations[{j}]", op, _OPERATIONS))
        if "*" in ops and len(ops) > 1:
            causes.append(invalid_value(f"{p}.operations", ops, "if '*' is present, must not specify other operations"))
        for key in ("apiGroups", "apiVersions"):
            values = rule.get(key)
            if not values:
                causes.append(required(f"{p}.{key}"))
            elif "*" in values and len(values) > 1:
                causes.append(invalid_value(f"{p}.{key}", values, "if '*' is present, must not specify other API groups"
                                            if key == "apiGroups" else "if '*' is present, must not specify other API versions"))
        resources = rule.get("resources")
        if not resources:
            causes.append(required(f"{p}.resources"))
        for j, res in enumerate(resources or ()):
            if not isinstance(res, str) or not res:
                causes.append(required(f"{p}.resources[{j}]"))
            elif res.count("/") > 1 or res.startswith("/"):
                causes.append(invalid_value(f"{p}.resources[{j}]", res, "must be in the form of <resource> or "
                                            "<resource>/<subresource>"))
        scope = rule.get("scope")
        if scope is not None and scope not in _SCOPES:
            causes.append(not_supported(f"{p}.scope", scope, _SCOPES))
    return causes


def _validate_match_conditions(conditions: Any, path: str, allowed: frozenset[str]) -> Causes:
    causes: Causes = []
    names: set[str] = set()
    items = _dicts(conditions)
    if len(items) > 64:
        causes.append(field_too_many(path, len(items), 64))
    for i, cond in enumerate(items):
        p = f"{path}[{i}]"
        name = cond.get("name")
        if not name:
            causes.append(required(f"{p}.name"))
        else:
            for msg in qualified_name(str(name)):
                causes.append(invalid_value(f"{p}.name", name, msg))
            if name in names:
                causes.append(duplicate(f"{p}.name", name))
            names.add(str(name))
        causes += _expression(cond.get("expression"), f"{p}.expression", allowed)
    return causes


def field_too_many(path: str, have: int, limit: int) -> dict[str, str]:
    from vkube.api.errors import field_error

    return field_error(path, f"Too many: {have}: must have at most {limit} items", reason="FieldValueTooMany")


def _expression(text: Any, path: str, allowed: frozenset[str]) -> Causes:
    if not isinstance(text, str) or not text.strip():
        return [required(path)]
    try:
        compile_expression(text, allowed)
    except CompileError as exc:
        return [invalid_value(path, text, str(exc))]
    return []


def validate_client_config(cc: Any, path: str) -> Causes:
    if not isinstance(cc, dict):
        return [required(path)]
    url, service = cc.get("url"), cc.get("service")
    if bool(url) == bool(service):
        return [required(path, "exactly one of url or service is required")]
    causes: Causes = []
    if url:
        parts = urlsplit(str(url))
        if parts.scheme != "https":
            causes.append(invalid_value(f"{path}.url", url, "'https' is the only allowed URL scheme"))
        elif not parts.hostname:
            causes.append(invalid_value(f"{path}.url", url, "host must be specified"))
        elif parts.username or parts.password:
            causes.append(invalid_value(f"{path}.url", url, "user information is not permitted in the URL"))
        elif parts.fragment or "#" in str(url):
            causes.append(invalid_value(f"{path}.url", url, "fragments are not permitted in the URL"))
        elif parts.query:
            causes.append(invalid_value(f"{path}.url", url, "query parameters are not permitted in the URL"))
    else:
        svc = service if isinstance(service, dict) else {}
        for key in ("namespace", "name"):
            if not svc.get(key):
                causes.append(required(f"{path}.service.{key}", f"service {key} is required"))
        port = svc.get("port", 443)
        if not isinstance(port, int) or not 1 <= port <= 65535:
            causes.append(invalid_value(f"{path}.service.port", port, "port is not valid: must be between 1 and 65535, inclusive"))
        spath = svc.get("path")
        if spath is not None and not str(spath).startswith("/"):
            causes.append(invalid_value(f"{path}.service.path", spath, "must start with a '/'"))
    bundle = cc.get("caBundle")
    if bundle is not None and not isinstance(bundle, str):
        causes.append(invalid_value(f"{path}.caBundle", bundle, "must be base64-encoded PEM"))
    return causes


def _validate_webhook(hook: dict[str, Any], p: str, *, mutating: bool) -> Causes:
    causes: Causes = []
    name = hook.get("name")
    if not name:
        causes.append(required(f"{p}.name"))
    elif str(name).count(".") < 2:
        causes.append(invalid_value(f"{p}.name", name, "should be a domain with at least three segments separated by dots"))
    causes += _validate_rules(hook.get("rules"), f"{p}.rules")
    versions = hook.get("admissionReviewVersions")
    if not versions:
        causes.append(required(f"{p}.admissionReviewVersions",
                               "must specify one of " + ", ".join(_REVIEW_VERSIONS)))
    elif not any(v in _REVIEW_VERSIONS for v in versions):
        causes.append(invalid_value(f"{p}.admissionReviewVersions", versions,
                                    "must include at least one of " + ", ".join(_REVIEW_VERSIONS)))
    side = hook.get("sideEffects")
    if side is None:
        causes.append(required(f"{p}.sideEffects", "must specify one of " + ", ".join(_SIDE_EFFECTS)))
    elif side not in _SIDE_EFFECTS:
        causes.append(not_supported(f"{p}.sideEffects", side, _SIDE_EFFECTS))
    for key, allowed in (("failurePolicy", _FAILURE), ("matchPolicy", _MATCH)):
        if hook.get(key) is not None and hook[key] not in allowed:
            causes.append(not_supported(f"{p}.{key}", hook[key], allowed))
    if mutating and hook.get("reinvocationPolicy") not in (None, *_REINVOCATION):
        causes.append(not_supported(f"{p}.reinvocationPolicy", hook["reinvocationPolicy"], _REINVOCATION))
    timeout = hook.get("timeoutSeconds")
    if timeout is not None and (not isinstance(timeout, int) or not 1 <= timeout <= 30):
        causes.append(invalid_value(f"{p}.timeoutSeconds", timeout, "the timeout value must be between 1 and 30 seconds"))
    causes += validate_label_selector(hook.get("namespaceSelector"), f"{p}.namespaceSelector")
    causes += validate_label_selector(hook.get("objectSelector"), f"{p}.objectSelector")
    causes += validate_client_config(hook.get("clientConfig"), f"{p}.clientConfig")
    causes += _validate_match_conditions(hook.get("matchConditions"), f"{p}.matchConditions", WEBHOOK_VARIABLES)
    return causes


def _webhook_count(o: Obj) -> int:
    return len(o.get("webhooks") or ())


class _WebhookConfigurationStrategy(Strategy):
    has_generation = True
    mutating = False
    columns = (Column("Webhooks", _webhook_count, type="integer", description="Webhooks is a list of webhooks"),
               age_column())

    def default(self, obj: Obj) -> None:
        for hook in _dicts(obj.get("webhooks")):
            webhook_defaults(hook, mutating=self.mutating)

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        hooks = obj.get("webhooks")
        if hooks is not None and not isinstance(hooks, list):
            return causes + [invalid_value("webhooks", hooks, "must be a list")]
        names: set[str] = set()
        for i, hook in enumerate(_dicts(hooks)):
            causes += _validate_webhook(hook, f"webhooks[{i}]", mutating=self.mutating)
            name = hook.get("name")
            if name and name in names:
                causes.append(duplicate(f"webhooks[{i}].name", name))
            names.add(str(name))
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


class ValidatingWebhookConfigurationStrategy(_WebhookConfigurationStrategy):
    mutating = False


class MutatingWebhookConfigurationStrategy(_WebhookConfigurationStrategy):
    mutating = True


# --- ValidatingAdmissionPolicy, its binding, MutatingAdmissionPolicy -------------------------


def _validate_match_resources(match: Any, path: str, *, need_rules: bool) -> Causes:
    if not isinstance(match, dict):
        return [required(path)] if need_rules else []
    causes: Causes = []
    if need_rules and not match.get("resourceRules"):
        causes.append(required(f"{path}.resourceRules"))
    causes += _validate_rules(match.get("resourceRules"), f"{path}.resourceRules")
    causes += _validate_rules(match.get("excludeResourceRules"), f"{path}.excludeResourceRules")
    if match.get("matchPolicy") not in (None, *_MATCH):
        causes.append(not_supported(f"{path}.matchPolicy", match["matchPolicy"], _MATCH))
    causes += validate_label_selector(match.get("namespaceSelector"), f"{path}.namespaceSelector")
    causes += validate_label_selector(match.get("objectSelector"), f"{path}.objectSelector")
    return causes


def _validate_variables(variables: Any, path: str) -> tuple[Causes, frozenset[str]]:
    causes: Causes = []
    names: set[str] = set()
    for i, var in enumerate(_dicts(variables)):
        name = var.get("name")
        if not name:
            causes.append(required(f"{path}[{i}].name"))
        elif name in names:
            causes.append(duplicate(f"{path}[{i}].name", name))
        causes += _expression(var.get("expression"), f"{path}[{i}].expression", POLICY_VARIABLES)
        names.add(str(name))
    return causes, frozenset(names)


def _validate_policy_spec(spec: Any) -> Causes:
    if not isinstance(spec, dict):
        return [required("spec")]
    causes: Causes = []
    if spec.get("failurePolicy") not in (None, *_FAILURE):
        causes.append(not_supported("spec.failurePolicy", spec["failurePolicy"], _FAILURE))
    param_kind = spec.get("paramKind")
    if param_kind is not None:
        pk = param_kind if isinstance(param_kind, dict) else {}
        if not pk.get("apiVersion"):
            causes.append(required("spec.paramKind.apiVersion"))
        if not pk.get("kind"):
            causes.append(required("spec.paramKind.kind"))
    causes += _validate_match_resources(spec.get("matchConstraints"), "spec.matchConstraints", need_rules=True)
    var_causes, _ = _validate_variables(spec.get("variables"), "spec.variables")
    causes += var_causes
    causes += _validate_match_conditions(spec.get("matchConditions"), "spec.matchConditions", POLICY_VARIABLES)
    return causes


def _param_kind(o: Obj) -> str:
    pk = (o.get("spec") or {}).get("paramKind")
    return f"{pk.get('apiVersion', '')}/{pk.get('kind', '')}" if isinstance(pk, dict) else "<unset>"


def _param_ref(o: Obj) -> str:
    ref = (o.get("spec") or {}).get("paramRef")
    if not isinstance(ref, dict):
        return "<unset>"
    if ref.get("selector") is not None:
        return "*/*"  # a selector: any matching object
    return f"{ref['namespace']}/{ref.get('name', '')}" if ref.get("namespace") else f"*/{ref.get('name', '')}"


class ValidatingAdmissionPolicyStrategy(Strategy):
    status_subresource = True
    columns = (Column("Validations", lambda o: len((o.get("spec") or {}).get("validations") or ()), type="integer",
                      description="Validations contain CEL expressions which is used to apply the validation."),
               Column("ParamKind", _param_kind, description="ParamKind specifies the kind of resources used to "
                                                            "parameterize this policy"),
               age_column())

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.setdefault("failurePolicy", "Fail")
            _default_match_resources(spec.get("matchConstraints"))

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        spec = obj.get("spec")
        causes += _validate_policy_spec(spec)
        if not isinstance(spec, dict):
            return causes
        validations, audits = _dicts(spec.get("validations")), _dicts(spec.get("auditAnnotations"))
        if not validations and not audits:
            causes.append(required("spec.validations", "validations or auditAnnotations must contain at least one item"))
        for i, v in enumerate(validations):
            p = f"spec.validations[{i}]"
            causes += _expression(v.get("expression"), f"{p}.expression", POLICY_VARIABLES)
            if v.get("messageExpression"):
                causes += _expression(v["messageExpression"], f"{p}.messageExpression", POLICY_VARIABLES)
            message = v.get("message")
            if isinstance(message, str) and "\n" in message:
                causes.append(invalid_value(f"{p}.message", message, "message must not contain line breaks"))
            reason = v.get("reason")
            allowed = ("Unauthorized", "Forbidden", "Invalid", "RequestEntityTooLarge")
            if reason is not None and reason not in allowed:
                causes.append(not_supported(f"{p}.reason", reason, allowed))
        keys: set[str] = set()
        for i, a in enumerate(audits):
            p = f"spec.auditAnnotations[{i}]"
            key = a.get("key")
            if not key:
                causes.append(required(f"{p}.key"))
            elif key in keys:
                causes.append(duplicate(f"{p}.key", key))
            keys.add(str(key))
            causes += _expression(a.get("valueExpression"), f"{p}.valueExpression", POLICY_VARIABLES)
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


def _validate_param_ref(ref: Any, path: str) -> Causes:
    if ref is None:
        return []
    ref = ref if isinstance(ref, dict) else {}
    causes: Causes = []
    if ref.get("name") and ref.get("selector") is not None:
        causes.append(forbidden(f"{path}.name", "name and selector are mutually exclusive"))
    if not ref.get("name") and ref.get("selector") is None:
        causes.append(required(f"{path}", "one of name or selector must be specified"))
    causes += validate_label_selector(ref.get("selector"), f"{path}.selector")
    action = ref.get("parameterNotFoundAction")
    if action is None:
        causes.append(required(f"{path}.parameterNotFoundAction"))
    elif action not in ("Allow", "Deny"):
        causes.append(not_supported(f"{path}.parameterNotFoundAction", action, ("Allow", "Deny")))
    return causes


class ValidatingAdmissionPolicyBindingStrategy(Strategy):
    columns = (Column("PolicyName", lambda o: (o.get("spec") or {}).get("policyName", ""),
                      description="PolicyName references a ValidatingAdmissionPolicy name which the "
                                  "ValidatingAdmissionPolicyBinding binds to."),
               Column("ParamRef", _param_ref, description="paramRef specifies the parameter resource used to "
                                                          "configure the admission control policy."),
               age_column())
    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            _default_match_resources(spec.get("matchResources"))

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return causes + [required("spec")]
        if not spec.get("policyName"):
            causes.append(required("spec.policyName"))
        actions = spec.get("validationActions")
        if not actions:
            causes.append(required("spec.validationActions"))
        seen: set[str] = set()
        for i, action in enumerate(actions or ()):
            if action not in _ACTIONS:
                causes.append(not_supported(f"spec.validationActions[{i}]", action, _ACTIONS))
            if action in seen:
                causes.append(duplicate(f"spec.validationActions[{i}]", action))
            seen.add(action)
        if {"Deny", "Warn"} <= seen:
            causes.append(invalid_value("spec.validationActions", actions,
                                        "must not contain both Deny and Warn (repeating the same validation "
                                        "failure information in the API response and headers serves no purpose)"))
        causes += _validate_param_ref(spec.get("paramRef"), "spec.paramRef")
        causes += _validate_match_resources(spec.get("matchResources"), "spec.matchResources", need_rules=False)
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


_MUTATION_TYPES = ("ApplyConfiguration", "JSONPatch")
_MUTATING_OPERATIONS = ("*", "CREATE", "UPDATE")


def _mutating_operations(rules: Any, path: str) -> Causes:
    causes: Causes = []
    for i, rule in enumerate(_dicts(rules)):
        for j, op in enumerate(rule.get("operations") or ()):
            if op in _OPERATIONS and op not in _MUTATING_OPERATIONS:
                causes.append(not_supported(f"{path}[{i}].operations[{j}]", op, _MUTATING_OPERATIONS))
    return causes


class MutatingAdmissionPolicyStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.setdefault("failurePolicy", "Fail")
            spec.setdefault("reinvocationPolicy", "Never")
            _default_match_resources(spec.get("matchConstraints"))

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        spec = obj.get("spec")
        causes += _validate_policy_spec(spec)
        if not isinstance(spec, dict):
            return causes
        causes += _mutating_operations((spec.get("matchConstraints") or {}).get("resourceRules"),
                                       "spec.matchConstraints.resourceRules")
        if spec.get("reinvocationPolicy") not in (None, *_REINVOCATION):
            causes.append(not_supported("spec.reinvocationPolicy", spec["reinvocationPolicy"], _REINVOCATION))
        mutations = _dicts(spec.get("mutations"))
        if not mutations:
            causes.append(required("spec.mutations", "mutations must contain at least one item"))
        for i, m in enumerate(mutations):
            p = f"spec.mutations[{i}]"
            kind = m.get("patchType")
            if not kind:
                causes.append(required(f"{p}.patchType"))
                continue
            if kind not in _MUTATION_TYPES:
                causes.append(not_supported(f"{p}.patchType", kind, _MUTATION_TYPES))
                continue
            key = "applyConfiguration" if kind == "ApplyConfiguration" else "jsonPatch"
            body = m.get(key)
            if not isinstance(body, dict):
                causes.append(required(f"{p}.{key}", f"must be specified when patchType is {kind}"))
                continue
            causes += _expression(body.get("expression"), f"{p}.{key}.expression", MUTATION_VARIABLES)
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


class MutatingAdmissionPolicyBindingStrategy(Strategy):
    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            _default_match_resources(spec.get("matchResources"))

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return causes + [required("spec")]
        if not spec.get("policyName"):
            causes.append(required("spec.policyName"))
        causes += _validate_param_ref(spec.get("paramRef"), "spec.paramRef")
        causes += _validate_match_resources(spec.get("matchResources"), "spec.matchResources", need_rules=False)
        causes += _mutating_operations((spec.get("matchResources") or {}).get("resourceRules"),
                                       "spec.matchResources.resourceRules")
        return causes

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


_G = "admissionregistration.k8s.io"
STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    (_G, "MutatingAdmissionPolicy"): MutatingAdmissionPolicyStrategy,
    (_G, "MutatingAdmissionPolicyBinding"): MutatingAdmissionPolicyBindingStrategy,
    (_G, "MutatingWebhookConfiguration"): MutatingWebhookConfigurationStrategy,
    (_G, "ValidatingAdmissionPolicy"): ValidatingAdmissionPolicyStrategy,
    (_G, "ValidatingAdmissionPolicyBinding"): ValidatingAdmissionPolicyBindingStrategy,
    (_G, "ValidatingWebhookConfiguration"): ValidatingWebhookConfigurationStrategy,
}
