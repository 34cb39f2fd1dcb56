"""The RBAC authorizer: who may do what, decided from Roles, ClusterRoles and their bindings.

Follows ``plugin/pkg/auth/authorizer/rbac`` and ``pkg/registry/rbac/validation/rule.go``:
ClusterRoleBindings apply everywhere, RoleBindings only in their namespace (and may reference a
ClusterRole, whose rules then apply in that namespace only); subjects are Users, Groups and
ServiceAccounts (``system:serviceaccount:NS:NAME``; a RoleBinding's ServiceAccount subject without
a namespace means the binding's namespace). Anything not allowed is denied ("no opinion"); a missing
role is not an error for the request, but its NotFound text becomes the denial reason
(``RBAC: clusterrole.rbac.authorization.k8s.io "x" not found``: upstream's listers name the kind
in the singular). Members of ``system:masters`` are allowed everything, as kube-apiserver's privileged-group authorizer does.

A :class:`RBACAuthorizer` is an immutable snapshot with every binding resolved and indexed by
subject; rebuild it when RBAC objects change (40–120 ms for 2,000 objects, see bench_rbac.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vkube.api.errors import Forbidden
from vkube.api.forbidden import forbidden
from vkube.api.rbac.rules import Rule, compile_rule
from vkube.api.user import SYSTEM_MASTERS, UserInfo

__all__ = ["UserInfo", "Attributes", "Decision", "RBACAuthorizer", "forbidden_message",
           "SERVICE_ACCOUNT_PREFIX", "SYSTEM_MASTERS", "service_account_user"]

Obj = Mapping[str, Any]
SERVICE_ACCOUNT_PREFIX = "system:serviceaccount:"


def service_account_user(namespace: str, name: str, *, uid: str = "",
                         extra: Mapping[str, tuple[str, ...]] | None = None) -> UserInfo:
    """The identity a service-account token authenticates as, with Kubernetes' groups."""
    return UserInfo(f"{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}", uid,
                    ("system:serviceaccounts", f"system:serviceaccounts:{namespace}",
                     "system:authenticated"), dict(extra or {}))


@dataclass(frozen=True, slots=True)
class Attributes:
    """What a request wants (``authorizer.AttributesRecord``); ``path`` for non-resource requests."""

    verb: str
    resource_request: bool = True
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class _Grant:
    """One binding as seen from one subject key: its rules, or why its role is missing.

    ``reasons`` pairs each subject key with upstream's describer text, in subject order, so an
    allow decision names the binding's first subject that applies without formatting anything.
    """

    binding: Obj
    rules: tuple[Rule, ...]
    reasons: tuple[tuple[str, str], ...]
    error: str = ""

    def describe(self, keys: set[str]) -> str:
        return next((text for key, text in self.reasons if key in keys), "")


def _reasons(binding: Obj, namespace: str, subjects: list[Obj]) -> tuple[tuple[str, str], ...]:
    ref = binding.get("roleRef") or {}
    if namespace:
        head = f'RoleBinding "{_name(binding)}/{namespace}" of {ref.get("kind")} "{ref.get("name")}"'
    else:
        head = f'ClusterRoleBinding "{_name(binding)}" of {ref.get("kind")} "{ref.get("name")}"'
    out = []
    for subject in subjects:
        key = _subject_key(subject, namespace)
        if key is not None:
            out.append((key, f"RBAC: allowed by {head} to {_describe_subject(subject, namespace)}"))
    return tuple(out)


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def _namespace(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("namespace") or "")


def _describe_subject(subject: Obj, binding_namespace: str) -> str:
    kind, name = subject.get("kind", ""), subject.get("name", "")
    if kind == "ServiceAccount":
        return f'{kind} "{name}/{subject.get("namespace") or binding_namespace}"'
    return f'{kind} "{name}"'


def _subject_key(subject: Obj, binding_namespace: str) -> str | None:
    """The key a subject is indexed under: ``u:NAME`` (users and service accounts), ``g:NAME``."""
    kind, name = subject.get("kind"), str(subject.get("name") or "")
    if kind == "User":
        return "u:" + name
    if kind == "Group":
        return "g:" + name
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return f"u:{SERVICE_ACCOUNT_PREFIX}{namespace}:{name}" if namespace else None
    return None


_Index = dict[str, list[_Grant]]


class RBACAuthorizer:
    """Authorize requests and list a user's rules against one snapshot of RBAC objects.

    Every binding is resolved once, at construction, into grants indexed by subject key, so a
    decision only looks at the bindings naming the user or one of its groups.
    """

    def __init__(self, *, roles: Iterable[Obj] = (), cluster_roles: Iterable[Obj] = (),
                 role_bindings: Iterable[Obj] = (), cluster_role_bindings: Iterable[Obj] = (),
                 superuser_groups: Iterable[str] = (SYSTEM_MASTERS,),
                 compiled: dict[tuple[str, str, str, str], tuple[Rule, ...]] | None = None) -> None:
        """``compiled`` carries compiled rules from one snapshot to the next, keyed by role and
        resourceVersion (stored objects change their resourceVersion on every write); it is
        pruned to the roles of this snapshot."""
        previous = compiled if compiled is not None else {}
        self.compiled: dict[tuple[str, str, str, str], tuple[Rule, ...]] = {}
        self._roles = {(_namespace(r), _name(r)): self._compile(r, previous) for r in roles}
        self._cluster_roles = {_name(r): self._compile(r, previous) for r in cluster_roles}
        self._cluster: _Index = {}
        self._namespaced: dict[str, _Index] = {}
        for b in sorted(cluster_role_bindings, key=_name):
            self._index(self._cluster, b, "")
        for b in sorted(role_bindings, key=lambda b: (_namespace(b), _name(b))):
            self._index(self._namespaced.setdefault(_namespace(b), {}), b, _namespace(b))
        self._superusers = frozenset(superuser_groups)

    def _compile(self, role: Obj, previous: dict[tuple[str, str, str, str], tuple[Rule, ...]]
                 ) -> tuple[Rule, ...]:
        meta = role.get("metadata") or {}
        version = str(meta.get("resourceVersion") or "")
        if not version:
            return tuple(map(compile_rule, role.get("rules") or ()))
        key = (str(role.get("kind") or ""), _namespace(role), _name(role), version)
        rules = previous.get(key)
        if rules is None:
            rules = tuple(map(compile_rule, role.get("rules") or ()))
        self.compiled[key] = rules
        return rules

    def _index(self, index: _Index, binding: Obj, namespace: str) -> None:
        rules = self._role_rules(binding.get("roleRef") or {}, namespace)
        subjects = [s for s in binding.get("subjects") or () if isinstance(s, Mapping)]
        reasons = _reasons(binding, namespace, subjects)
        grant = (_Grant(binding, (), reasons, rules) if isinstance(rules, str)
                 else _Grant(binding, rules, reasons))
        for key in {_subject_key(s, namespace) for s in subjects} - {None}:
            index.setdefault(key, []).append(grant)  # type: ignore[index]

    # -- resolving ---------------------------------------------------------------------------

    def _role_rules(self, ref: Obj, namespace: str) -> tuple[Rule, ...] | str:
        kind, name = ref.get("kind"), str(ref.get("name") or "")
        if kind == "ClusterRole":
            rules = self._cluster_roles.get(name)
            return rules if rules is not None else (
                f'clusterrole.rbac.authorization.k8s.io "{name}" not found')
        if kind == "Role":
            rules = self._roles.get((namespace, name))
            return rules if rules is not None else f'role.rbac.authorization.k8s.io "{name}" not found'
        return f'unsupported role reference kind: "{kind}"'

    def role_rules(self, ref: Obj, namespace: str) -> list[Obj] | str:
        """The rule dicts a roleRef points at (``GetRoleReferenceRules``), or why it cannot."""
        rules = self._role_rules(ref, namespace)
        return rules if isinstance(rules, str) else [r.source for r in rules]

    def _grants(self, user: UserInfo, namespace: str) -> list[_Grant]:
        """Cluster-wide grants, then the namespace's; each binding once, in binding-name order."""
        keys = ["u:" + user.name, *("g:" + g for g in user.groups)]
        out: list[_Grant] = []
        for index in (self._cluster, self._namespaced.get(namespace) if namespace else None):
            if not index:
                continue
            found = [g for key in keys for g in index.get(key, ())]
            if len(keys) > 1:
                found = sorted({id(g): g for g in found}.values(), key=lambda g: _name(g.binding))
            out.extend(found)
        return out

    # -- the authorizer interface ------------------------------------------------------------

    def authorize(self, user: UserInfo, attrs: Attributes) -> Decision:
        """Allow with ``RBAC: allowed by ...``, or deny (reason only when a role was missing)."""
        if self._superusers and not self._superusers.isdisjoint(user.groups):
            return Decision(True)
        errors: list[str] = []
        keys = ["u:" + user.name, *("g:" + g for g in user.groups)]
        indexes = [self._cluster]
        if attrs.namespace and attrs.namespace in self._namespaced:
            indexes.append(self._namespaced[attrs.namespace])
        for index in indexes:
            for key in keys:
                for grant in index.get(key, ()):
                    if grant.error:
                        if grant.error not in errors:
                            errors.append(grant.error)
                        continue
                    for rule in grant.rules:
                        if (rule.allows_resource(attrs.verb, attrs.api_group, attrs.resource,
                                                 attrs.subresource, attrs.name)
                                if attrs.resource_request else rule.allows_path(attrs.verb, attrs.path)):
                            return Decision(True, grant.describe(set(keys)))
        if not errors:
            return Decision(False)
        text = errors[0] if len(errors) == 1 else "[" + ", ".join(sorted(errors)) + "]"
        return Decision(False, f"RBAC: {text}")

    def compiled_rules_for(self, user: UserInfo, namespace: str) -> tuple[list[Rule], list[str]]:
        grants = self._grants(user, namespace)
        return ([rule for g in grants for rule in g.rules],
                [g.error for g in grants if g.error])

    def rules_for(self, user: UserInfo, namespace: str) -> tuple[list[Obj], list[str]]:
        """Every rule that applies to ``user`` in ``namespace`` (cluster-wide ones included)."""
        rules, errors = self.compiled_rules_for(user, namespace)
        return [rule.source for rule in rules], errors

    def subject_rules_review_status(self, user: UserInfo, namespace: str) -> dict[str, Any]:
        """``SelfSubjectRulesReview.status`` as kube-apiserver fills it from RBAC."""
        rules, errors = self.rules_for(user, namespace)
        status: dict[str, Any] = {
            "resourceRules": [
                {k: list(r.get(k) or []) for k in ("verbs", "apiGroups", "resources", "resourceNames")
                 if r.get(k) is not None or k == "verbs"}
                for r in rules if r.get("resources")],
            "nonResourceRules": [{"verbs": list(r.get("verbs") or []),
                                  "nonResourceURLs": list(r.get("nonResourceURLs") or [])}
                                 for r in rules if r.get("nonResourceURLs")],
            "incomplete": False,
        }
        if errors:
            status["evaluationError"] = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
        return status

    def forbidden(self, user: UserInfo, attrs: Attributes, decision: Decision) -> Forbidden:
        """The 403 kube-apiserver returns for a denied request."""
        message = forbidden_message(user, attrs)
        if decision.reason:
            message = f"{message}: {decision.reason}"
        if not attrs.resource_request:
            return forbidden("", "", message)
        return forbidden(attrs.resource, attrs.name, message, group=attrs.api_group)


def forbidden_message(user: UserInfo, attrs: Attributes) -> str:
    """``User "alice" cannot list resource "pods" in API group "" in the namespace "a"``."""
    if not attrs.resource_request:
        return f'User "{user.name}" cannot {attrs.verb} path "{attrs.path}"'
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    where = (f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope")
    return (f'User "{user.name}" cannot {attrs.verb} resource "{resource}" in API group '
            f'"{attrs.api_group}" {where}')
