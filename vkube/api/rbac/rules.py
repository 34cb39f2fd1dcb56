"""PolicyRule semantics: matching a request, covering another rule, and the compact text form.

Rules are the plain dicts of ``rbac.authorization.k8s.io/v1`` (``verbs``, ``apiGroups``,
``resources``, ``resourceNames``, ``nonResourceURLs``). Matching follows
``pkg/apis/rbac/v1/evaluation_helpers.go`` (``*`` wildcards, ``pods/log`` subresources, ``*/scale``,
``resourceNames`` only for requests that name an object, ``/path*`` prefixes); covering follows
``component-helpers/auth/rbac/validation`` (``Covers``, ``BreakdownRule``) and compaction
``pkg/registry/rbac/validation/policy_compact.go``, because escalation errors must read the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

__all__ = ["Rule", "compile_rule", "covers", "breakdown", "compact_rules", "compact_string",
           "FULL_AUTHORITY"]

#: ``*`` on everything: what setting an aggregationRule requires.
FULL_AUTHORITY: tuple[Mapping[str, Any], ...] = (
    MappingProxyType({"verbs": ("*",), "apiGroups": ("*",), "resources": ("*",)}),
    MappingProxyType({"verbs": ("*",), "nonResourceURLs": ("*",)}),
)


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)):
        return ()
    out = tuple(value)  # the common case (validated lists of strings) without a per-item call
    return out if all(type(v) is str for v in out) else tuple(map(str, out))


@dataclass(frozen=True, slots=True)
class Rule:
    """A PolicyRule prepared for fast matching (frozensets; the original dict kept for output)."""

    verbs: frozenset[str]
    api_groups: frozenset[str]
    resources: frozenset[str]
    resource_names: frozenset[str]
    urls: tuple[str, ...]
    source: Mapping[str, Any]

    def allows_resource(self, verb: str, group: str, resource: str, subresource: str,
                        name: str) -> bool:
        """``RuleAllows`` for a resource request."""
        if not ("*" in self.verbs or verb in self.verbs):
            return False
        if not ("*" in self.api_groups or group in self.api_groups):
            return False
        combined = f"{resource}/{subresource}" if subresource else resource
        if not ("*" in self.resources or combined in self.resources
                or (subresource and f"*/{subresource}" in self.resources)):
            return False
        return not self.resource_names or name in self.resource_names

    def allows_path(self, verb: str, path: str) -> bool:
        """``RuleAllows`` for a non-resource request (``/healthz``, ``/apis/*``)."""
        if not ("*" in self.verbs or verb in self.verbs):
            return False
        for url in self.urls:
            if url == "*" or url == path or (url.endswith("*") and path.startswith(url.rstrip("*"))):
                return True
        return False


def compile_rule(rule: Mapping[str, Any]) -> Rule:
    return Rule(frozenset(_strings(rule.get("verbs"))), frozenset(_strings(rule.get("apiGroups"))),
                frozenset(_strings(rule.get("resources"))),
                frozenset(_strings(rule.get("resourceNames"))),
                _strings(rule.get("nonResourceURLs")), rule)


def breakdown(rule: Mapping[str, Any]) -> list[dict[str, list[str]]]:
    """One sub-rule per (group, resource, verb[, name]) and per (url, verb): ``BreakdownRule``."""
    out: list[dict[str, list[str]]] = []
    verbs, names = _strings(rule.get("verbs")), _strings(rule.get("resourceNames"))
    for group in _strings(rule.get("apiGroups")):
        for resource in _strings(rule.get("resources")):
            for verb in verbs:
                base = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                if names:
                    out.extend({**base, "resourceNames": [n]} for n in names)
                else:
                    out.append(base)
    for url in _strings(rule.get("nonResourceURLs")):
        out.extend({"nonResourceURLs": [url], "verbs": [verb]} for verb in verbs)
    return out


def _resources_cover(owner: frozenset[str], wanted: Sequence[str]) -> bool:
    if "*" in owner or all(r in owner for r in wanted):
        return True
    for path in wanted:
        if path in owner:
            continue
        if "/" not in path or "*/" + path.split("/", 1)[1] not in owner:
            return False
    return True


def _url_covers(owner: str, path: str) -> bool:
    return owner == path or (owner.endswith("*") and path.startswith(owner.rstrip("*")))


def _rule_covers(owner: Rule, sub: Mapping[str, Any]) -> bool:
    verbs, groups = _strings(sub.get("verbs")), _strings(sub.get("apiGroups"))
    names, urls = _strings(sub.get("resourceNames")), _strings(sub.get("nonResourceURLs"))
    if not ("*" in owner.verbs or all(v in owner.verbs for v in verbs)):
        return False
    if not ("*" in owner.api_groups or all(g in owner.api_groups for g in groups)):
        return False
    if not _resources_cover(owner.resources, _strings(sub.get("resources"))):
        return False
    if not all(any(_url_covers(o, u) for o in owner.urls) for u in urls):
        return False
    if not names:
        return not owner.resource_names
    return not owner.resource_names or all(n in owner.resource_names for n in names)


def covers(owner_rules: Iterable[Mapping[str, Any] | Rule],
           servant_rules: Iterable[Mapping[str, Any]]) -> tuple[bool, list[dict[str, list[str]]]]:
    """Whether ``owner_rules`` grant everything ``servant_rules`` do, and the uncovered sub-rules."""
    owners = [r if isinstance(r, Rule) else compile_rule(r) for r in owner_rules]
    missing = [sub for rule in servant_rules for sub in breakdown(rule)
               if not any(_rule_covers(o, sub) for o in owners)]
    return not missing, missing


def compact_rules(rules: Iterable[Mapping[str, Any]]) -> list[dict[str, list[str]]]:
    """Merge rules on one group/resource(/name) that differ only by verb (``CompactRules``).

    Upstream appends the merged rules after the others in map order; callers sort the text.
    """
    complex_: list[dict[str, list[str]]] = []
    simple: dict[tuple[str, str, str | None], dict[str, list[str]]] = {}
    allowed_keys = {"apiGroups", "resources", "verbs", "resourceNames"}
    for rule in rules:
        groups, resources = _strings(rule.get("apiGroups")), _strings(rule.get("resources"))
        names = _strings(rule.get("resourceNames"))
        is_simple = (len(names) <= 1 and not rule.get("nonResourceURLs") and len(groups) == 1
                     and len(resources) == 1 and set(k for k, v in rule.items() if v) <= allowed_keys)
        if not is_simple:
            complex_.append({k: list(v) for k, v in rule.items()})
            continue
        key = (groups[0], resources[0], names[0] if names else None)
        if key in simple:
            verbs = simple[key]["verbs"]
            verbs.extend(v for v in _strings(rule.get("verbs")) if v not in verbs)
        else:
            simple[key] = {k: list(_strings(v)) for k, v in rule.items() if v}
            simple[key].setdefault("verbs", [])
    return complex_ + list(simple.values())


def _go_list(values: Sequence[str]) -> str:
    """Go's ``%q`` of a ``[]string``: ``["a" "b"]``."""
    return "[" + " ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values) + "]"


def compact_string(rule: Mapping[str, Any]) -> str:
    """``{APIGroups:[""], Resources:["pods"], Verbs:["create"]}`` (``rbacv1helpers.CompactString``)."""
    parts = []
    for key, label in (("apiGroups", "APIGroups"), ("resources", "Resources"),
                       ("nonResourceURLs", "NonResourceURLs"), ("resourceNames", "ResourceNames"),
                       ("verbs", "Verbs")):
        values = _strings(rule.get(key))
        if values:
            parts.append(f"{label}:{_go_list(values)}")
    return "{" + ", ".join(parts) + "}"
