"""admissionregistration.k8s.io/v1 webhook configurations, with the defaults and validation
of ``pkg/apis/admissionregistration`` (messages as kube-apiserver writes them), and the rule,
selector and CEL-expression checks the admission policies (``kinds_policies``) share.
matchConditions are compiled on write, so one that does not compile is never stored."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from vkube.api.admission_cel import WEBHOOK_VARIABLES, CompileError, compile_expression
from vkube.api.kinds import Column
from vkube.api.strategy import Obj, Strategy
from vkube.api.tables import age_column
from vkube.api.validation import (
    Causes, duplicate, invalid_value, not_supported, qualified_name, required,
    validate_label_selector, validate_object_meta, validate_object_meta_update,
)

__all__ = ["STRATEGIES", "webhook_defaults", "validate_client_config", "validate_rules", "validate_match_conditions",
           "expression_causes", "default_match_resources", "dicts", "OPERATIONS", "FAILURE", "MATCH",
           "REINVOCATION", "ACTIONS"]

OPERATIONS = ("*", "CONNECT", "CREATE", "DELETE", "UPDATE")
_SCOPES = ("*", "Cluster", "Namespaced")
FAILURE = ("Fail", "Ignore")
MATCH = ("Equivalent", "Exact")
_SIDE_EFFECTS = ("None", "NoneOnDryRun")
REINVOCATION = ("IfNeeded", "Never")
_REVIEW_VERSIONS = ("v1", "v1beta1")
ACTIONS = ("Audit", "Deny", "Warn")


def dicts(value: Any) -> list[dict[str, Any]]:
    return [v if isinstance(v, dict) else {} for v in value] if isinstance(value, list) else []


# --- defaults ------------------------------------------------------------------------------


def _default_rules(rules: Any) -> None:
    for rule in dicts(rules):
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


def default_match_resources(match: Any) -> None:
    if not isinstance(match, dict):
        return
    match.setdefault("matchPolicy", "Equivalent")
    match.setdefault("namespaceSelector", {})
    match.setdefault("objectSelector", {})
    _default_rules(match.get("resourceRules"))
    _default_rules(match.get("excludeResourceRules"))


# --- validation ----------------------------------------------------------------------------


def validate_rules(rules: Any, path: str, *, required_ops: bool = True) -> Causes:
    causes: Causes = []
    for i, rule in enumerate(dicts(rules)):
        p = f"{path}[{i}]"
        ops = rule.get("operations") or []
        if not ops and required_ops:
            causes.append(required(f"{p}.operations"))
        for j, op in enumerate(ops):
            if op not in OPERATIONS:
                causes.append(not_supported(f"{p}.operations[{j}]", op, OPERATIONS))
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


def validate_match_conditions(conditions: Any, path: str, allowed: frozenset[str]) -> Causes:
    causes: Causes = []
    names: set[str] = set()
    items = dicts(conditions)
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
        causes += expression_causes(cond.get("expression"), f"{p}.expression", allowed)
    return causes


def field_too_many(path: str, have: int, limit: int) -> dict[str, str]:
    from vkube.api.errors import field_error

    return field_error(path, f"Too many: {have}: must have at most {limit} items", reason="FieldValueTooMany")


def expression_causes(text: Any, path: str, allowed: frozenset[str]) -> Causes:
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
    causes += validate_rules(hook.get("rules"), f"{p}.rules")
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
    for key, allowed in (("failurePolicy", FAILURE), ("matchPolicy", MATCH)):
        if hook.get(key) is not None and hook[key] not in allowed:
            causes.append(not_supported(f"{p}.{key}", hook[key], allowed))
    if mutating and hook.get("reinvocationPolicy") not in (None, *REINVOCATION):
        causes.append(not_supported(f"{p}.reinvocationPolicy", hook["reinvocationPolicy"], REINVOCATION))
    timeout = hook.get("timeoutSeconds")
    if timeout is not None and (not isinstance(timeout, int) or not 1 <= timeout <= 30):
        causes.append(invalid_value(f"{p}.timeoutSeconds", timeout, "the timeout value must be between 1 and 30 seconds"))
    causes += validate_label_selector(hook.get("namespaceSelector"), f"{p}.namespaceSelector")
    causes += validate_label_selector(hook.get("objectSelector"), f"{p}.objectSelector")
    causes += validate_client_config(hook.get("clientConfig"), f"{p}.clientConfig")
    causes += validate_match_conditions(hook.get("matchConditions"), f"{p}.matchConditions", WEBHOOK_VARIABLES)
    return causes


def _webhook_count(o: Obj) -> int:
    return len(o.get("webhooks") or ())


class _WebhookConfigurationStrategy(Strategy):
    has_generation = True
    mutating = False
    columns = (Column("Webhooks", _webhook_count, type="integer", description="Webhooks is a list of webhooks"),
               age_column())

    def default(self, obj: Obj) -> None:
        for hook in dicts(obj.get("webhooks")):
            webhook_defaults(hook, mutating=self.mutating)

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        hooks = obj.get("webhooks")
        if hooks is not None and not isinstance(hooks, list):
            return causes + [invalid_value("webhooks", hooks, "must be a list")]
        names: set[str] = set()
        for i, hook in enumerate(dicts(hooks)):
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


_G = "admissionregistration.k8s.io"
STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    (_G, "MutatingWebhookConfiguration"): MutatingWebhookConfigurationStrategy,
    (_G, "ValidatingWebhookConfiguration"): ValidatingWebhookConfigurationStrategy,
}
