"""admissionregistration.k8s.io/v1 admission policies: ValidatingAdmissionPolicy,
MutatingAdmissionPolicy and their bindings, with upstream's defaults and validation. Every CEL
expression is compiled on write, so a policy that does not compile is refused with 422 and
never stored (the shared rule and expression checks live in ``kinds_admission``)."""

from __future__ import annotations

from typing import Any

from vkube.api.admission_cel import MUTATION_VARIABLES, POLICY_VARIABLES
from vkube.api.kinds import Column
from vkube.api.kinds_admission import (ACTIONS, FAILURE, MATCH, OPERATIONS, REINVOCATION, default_match_resources,
                                       dicts, expression_causes, validate_match_conditions, validate_rules)
from vkube.api.strategy import Obj, Strategy
from vkube.api.tables import age_column
from vkube.api.validation import (Causes, duplicate, forbidden, invalid_value, not_supported, required,
                                  validate_label_selector, validate_object_meta, validate_object_meta_update)

__all__ = ["STRATEGIES"]

def _validate_match_resources(match: Any, path: str, *, need_rules: bool) -> Causes:
    if not isinstance(match, dict):
        return [required(path)] if need_rules else []
    causes: Causes = []
    if need_rules and not match.get("resourceRules"):
        causes.append(required(f"{path}.resourceRules"))
    causes += validate_rules(match.get("resourceRules"), f"{path}.resourceRules")
    causes += validate_rules(match.get("excludeResourceRules"), f"{path}.excludeResourceRules")
    if match.get("matchPolicy") not in (None, *MATCH):
        causes.append(not_supported(f"{path}.matchPolicy", match["matchPolicy"], MATCH))
    causes += validate_label_selector(match.get("namespaceSelector"), f"{path}.namespaceSelector")
    causes += validate_label_selector(match.get("objectSelector"), f"{path}.objectSelector")
    return causes


def _validate_variables(variables: Any, path: str) -> tuple[Causes, frozenset[str]]:
    causes: Causes = []
    names: set[str] = set()
    for i, var in enumerate(dicts(variables)):
        name = var.get("name")
        if not name:
            causes.append(required(f"{path}[{i}].name"))
        elif name in names:
            causes.append(duplicate(f"{path}[{i}].name", name))
        causes += expression_causes(var.get("expression"), f"{path}[{i}].expression", POLICY_VARIABLES)
        names.add(str(name))
    return causes, frozenset(names)


def _validate_policy_spec(spec: Any) -> Causes:
    if not isinstance(spec, dict):
        return [required("spec")]
    causes: Causes = []
    if spec.get("failurePolicy") not in (None, *FAILURE):
        causes.append(not_supported("spec.failurePolicy", spec["failurePolicy"], FAILURE))
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
    causes += validate_match_conditions(spec.get("matchConditions"), "spec.matchConditions", POLICY_VARIABLES)
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


class _PolicyStrategy(Strategy):
    """What Validating- and MutatingAdmissionPolicy share: defaults, the object's metadata,
    ``_validate_policy_spec``; ``_validate_kind`` adds each kind's own fields."""

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            spec.setdefault("failurePolicy", "Fail")
            self._default_kind(spec)
            default_match_resources(spec.get("matchConstraints"))

    def _default_kind(self, spec: Obj) -> None:
        pass

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        spec = obj.get("spec")
        causes += _validate_policy_spec(spec)
        return causes + self._validate_kind(spec) if isinstance(spec, dict) else causes

    def _validate_kind(self, spec: Obj) -> Causes:
        raise NotImplementedError

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


class _BindingStrategy(Strategy):
    """What both policy bindings share: policyName, paramRef and matchResources."""

    def default(self, obj: Obj) -> None:
        spec = obj.get("spec")
        if isinstance(spec, dict):
            default_match_resources(spec.get("matchResources"))

    def validate(self, obj: Obj) -> Causes:
        causes = validate_object_meta(obj, namespaced=False)
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return causes + [required("spec")]
        if not spec.get("policyName"):
            causes.append(required("spec.policyName"))
        causes += self._validate_kind(spec)
        causes += _validate_param_ref(spec.get("paramRef"), "spec.paramRef")
        causes += _validate_match_resources(spec.get("matchResources"), "spec.matchResources", need_rules=False)
        return causes + self._validate_rules(spec)

    def _validate_kind(self, spec: Obj) -> Causes:
        return []

    def _validate_rules(self, spec: Obj) -> Causes:
        return []

    def validate_update(self, new: Obj, old: Obj) -> Causes:
        return validate_object_meta_update(new, old)


class ValidatingAdmissionPolicyStrategy(_PolicyStrategy):
    status_subresource = True
    columns = (Column("Validations", lambda o: len((o.get("spec") or {}).get("validations") or ()), type="integer",
                      description="Validations contain CEL expressions which is used to apply the validation."),
               Column("ParamKind", _param_kind, description="ParamKind specifies the kind of resources used to "
                                                            "parameterize this policy"),
               age_column())

    def _validate_kind(self, spec: Obj) -> Causes:
        causes: Causes = []
        validations, audits = dicts(spec.get("validations")), dicts(spec.get("auditAnnotations"))
        if not validations and not audits:
            causes.append(required("spec.validations", "validations or auditAnnotations must contain at least one item"))
        for i, v in enumerate(validations):
            p = f"spec.validations[{i}]"
            causes += expression_causes(v.get("expression"), f"{p}.expression", POLICY_VARIABLES)
            if v.get("messageExpression"):
                causes += expression_causes(v["messageExpression"], f"{p}.messageExpression", POLICY_VARIABLES)
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
            causes += expression_causes(a.get("valueExpression"), f"{p}.valueExpression", POLICY_VARIABLES)
        return causes


class ValidatingAdmissionPolicyBindingStrategy(_BindingStrategy):
    columns = (Column("PolicyName", lambda o: (o.get("spec") or {}).get("policyName", ""),
                      description="PolicyName references a ValidatingAdmissionPolicy name which the "
                                  "ValidatingAdmissionPolicyBinding binds to."),
               Column("ParamRef", _param_ref, description="paramRef specifies the parameter resource used to "
                                                          "configure the admission control policy."),
               age_column())

    def _validate_kind(self, spec: Obj) -> Causes:
        causes: Causes = []
        actions = spec.get("validationActions")
        if not actions:
            causes.append(required("spec.validationActions"))
        seen: set[str] = set()
        for i, action in enumerate(actions or ()):
            if action not in ACTIONS:
                causes.append(not_supported(f"spec.validationActions[{i}]", action, ACTIONS))
            if action in seen:
                causes.append(duplicate(f"spec.validationActions[{i}]", action))
            seen.add(action)
        if {"Deny", "Warn"} <= seen:
            causes.append(invalid_value("spec.validationActions", actions,
                                        "must not contain both Deny and Warn (repeating the same validation "
                                        "failure information in the API response and headers serves no purpose)"))
        return causes


_MUTATION_TYPES = ("ApplyConfiguration", "JSONPatch")
_MUTATINGOPERATIONS = ("*", "CREATE", "UPDATE")


def _mutating_operations(rules: Any, path: str) -> Causes:
    causes: Causes = []
    for i, rule in enumerate(dicts(rules)):
        for j, op in enumerate(rule.get("operations") or ()):
            if op in OPERATIONS and op not in _MUTATINGOPERATIONS:
                causes.append(not_supported(f"{path}[{i}].operations[{j}]", op, _MUTATINGOPERATIONS))
    return causes


class MutatingAdmissionPolicyStrategy(_PolicyStrategy):
    def _default_kind(self, spec: Obj) -> None:
        spec.setdefault("reinvocationPolicy", "Never")

    def _validate_kind(self, spec: Obj) -> Causes:
        causes = _mutating_operations((spec.get("matchConstraints") or {}).get("resourceRules"),
                                      "spec.matchConstraints.resourceRules")
        if spec.get("reinvocationPolicy") not in (None, *REINVOCATION):
            causes.append(not_supported("spec.reinvocationPolicy", spec["reinvocationPolicy"], REINVOCATION))
        mutations = dicts(spec.get("mutations"))
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
            causes += expression_causes(body.get("expression"), f"{p}.{key}.expression", MUTATION_VARIABLES)
        return causes


class MutatingAdmissionPolicyBindingStrategy(_BindingStrategy):
    def _validate_rules(self, spec: Obj) -> Causes:
        return _mutating_operations((spec.get("matchResources") or {}).get("resourceRules"),
                                    "spec.matchResources.resourceRules")


_G = "admissionregistration.k8s.io"
STRATEGIES: dict[tuple[str, str], type[Strategy]] = {
    (_G, "MutatingAdmissionPolicy"): MutatingAdmissionPolicyStrategy,
    (_G, "MutatingAdmissionPolicyBinding"): MutatingAdmissionPolicyBindingStrategy,
    (_G, "ValidatingAdmissionPolicy"): ValidatingAdmissionPolicyStrategy,
    (_G, "ValidatingAdmissionPolicyBinding"): ValidatingAdmissionPolicyBindingStrategy,
}
