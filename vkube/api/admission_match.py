"""Which admission webhooks and policies apply to a request: ``rules`` (operations, groups,
versions, resources with subresources, scope), ``namespaceSelector`` and ``objectSelector``,
as k8s.io/apiserver's ``predicates/rules``, ``predicates/namespace`` and ``predicates/object``
decide it. Pure: the caller supplies the namespace's labels."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vkube.api.selectors import label_selector_from_dict

__all__ = ["Attributes", "rule_matches", "any_rule_matches", "policy_rule_matches", "selector_matches",
           "object_selector_matches",
           "EXEMPT_RESOURCES"]

#: never sent to webhooks or policies, so a bad configuration can always be repaired
#: (``IsExemptAdmissionConfigurationResource``)
EXEMPT_RESOURCES = frozenset({
    ("admissionregistration.k8s.io", "validatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "mutatingwebhookconfigurations"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicybindings"),
    ("admissionregistration.k8s.io", "mutatingadmissionpolicies"),
    ("admissionregistration.k8s.io", "mutatingadmissionpolicybindings"),
})


@dataclass(frozen=True, slots=True)
class Attributes:
    """The parts of an admission request rules look at."""

    operation: str
    group: str
    version: str
    resource: str
    subresource: str
    namespace: str  # "" for cluster-scoped objects; a Namespace's own name for a Namespace

    def with_version(self, version: str) -> "Attributes":
        return Attributes(self.operation, self.group, version, self.resource, self.subresource, self.namespace)


def _one_of(values: Iterable[str] | None, want: str) -> bool:
    values = list(values or ())
    return "*" in values or want in values


def _resource(patterns: Iterable[str] | None, resource: str, subresource: str) -> bool:
    """``res`` or ``res/sub``; ``*`` matches any resource, ``res/*`` also the resource itself."""
    for pattern in patterns or ():
        res, _, sub = str(pattern).partition("/")
        if (res == "*" or res == resource) and (sub == "*" or sub == subresource):
            return True
    return False


def _scope(scope: str | None, attrs: Attributes) -> bool:
    if scope in (None, "*"):
        return True
    is_namespace = attrs.group == "" and attrs.resource == "namespaces"
    if scope == "Namespaced":
        return not is_namespace and attrs.namespace != ""
    if scope == "Cluster":
        return is_namespace or attrs.namespace == ""
    return False


def rule_matches(rule: Mapping[str, Any], attrs: Attributes, *, check_operations: bool = True) -> bool:
    if check_operations and not _one_of(rule.get("operations"), attrs.operation):
        return False
    return (_one_of(rule.get("apiGroups"), attrs.group)
            and _one_of(rule.get("apiVersions"), attrs.version)
            and _resource(rule.get("resources"), attrs.resource, attrs.subresource)
            and _scope(rule.get("scope"), attrs))


def any_rule_matches(rules: Iterable[Mapping[str, Any]] | None, attrs: Attributes) -> bool:
    return any(rule_matches(r, attrs) for r in rules or () if isinstance(r, Mapping))


def _name_rule_matches(rule: Mapping[str, Any], name: str) -> bool:
    names = rule.get("resourceNames") or []
    return not names or name in names


def policy_rule_matches(rules: Iterable[Mapping[str, Any]] | None, attrs: Attributes, name: str) -> bool:
    """``resourceRules`` of a policy: also ``resourceNames``."""
    return any(rule_matches(r, attrs) and _name_rule_matches(r, name)
               for r in rules or () if isinstance(r, Mapping))


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str] | None) -> bool:
    """An absent or empty selector matches everything (the defaulted ``{}``)."""
    if not selector:
        return True
    return label_selector_from_dict(selector).matches(labels or {})


def object_selector_matches(selector: Mapping[str, Any] | None, obj: Any, old: Any) -> bool:
    """``object.Matcher``: the new object's or the old object's labels match."""
    if not selector:
        return True
    sel = label_selector_from_dict(selector)
    for o in (obj, old):
        if isinstance(o, dict) and sel.matches(((o.get("metadata") or {}).get("labels")) or {}):
            return True
    return False
