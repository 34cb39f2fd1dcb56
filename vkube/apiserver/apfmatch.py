"""Which FlowSchema a request falls in: the matching rules of kube-apiserver's APF
(``k8s.io/apiserver/pkg/util/flowcontrol/rule.go``), compiled once per configuration change
into sets and prefixes so classifying a request is a few set lookups.

Wildcards follow upstream exactly: ``"*"`` in verbs, apiGroups, resources and namespaces is a
wildcard only when it is the list's single entry; a ServiceAccount subject named ``"*"``
matches every account of its namespace; a nonResourceURL ``"*"`` matches every path and
``"/foo/*"`` (or ``"/foo"``) every path under ``/foo/``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vkube.api.user import UserInfo
from vkube.apiserver.requestinfo import RequestInfo

__all__ = ["CompiledSchema", "compile_schema", "distinguisher"]

SA_PREFIX = "system:serviceaccount:"
#: ``None`` stands for "every value" (the list was exactly the wildcard)
_Set = frozenset[str] | None


def _set(values: Any, wildcard: str = "*") -> _Set:
    vals = [v for v in (values or ()) if isinstance(v, str)]
    if len(vals) == 1 and vals[0] == wildcard:
        return None
    return frozenset(vals)


def _has(x: str, s: _Set) -> bool:
    return s is None or x in s


@dataclass(frozen=True, slots=True)
class _Subjects:
    users: _Set  # None: every user
    groups: _Set
    sa_names: frozenset[str]  # full usernames of named service accounts
    sa_prefixes: tuple[str, ...]  # "system:serviceaccount:NS:" of "*" accounts

    def match(self, user: UserInfo) -> bool:
        if self.users is None or user.name in self.users:
            return True
        if self.groups is None or (self.groups and not self.groups.isdisjoint(user.groups)):
            return True
        if user.name in self.sa_names:
            return True
        return bool(self.sa_prefixes) and user.name.startswith(self.sa_prefixes)


@dataclass(frozen=True, slots=True)
class _ResourceRule:
    verbs: _Set
    groups: _Set
    resources: _Set
    cluster_scope: bool
    namespaces: _Set

    def match(self, ri: RequestInfo) -> bool:
        if not _has(ri.verb, self.verbs):
            return False
        res = f"{ri.resource}/{ri.subresource}" if ri.subresource else ri.resource
        if not _has(res, self.resources) or not _has(ri.group, self.groups):
            return False
        if not ri.namespace:
            return self.cluster_scope
        return _has(ri.namespace, self.namespaces)


@dataclass(frozen=True, slots=True)
class _NonResourceRule:
    verbs: _Set
    every: bool
    exact: frozenset[str]
    prefixes: tuple[str, ...]

    def match(self, ri: RequestInfo) -> bool:
        if not _has(ri.verb, self.verbs):
            return False
        return self.every or ri.path in self.exact or ri.path.startswith(self.prefixes)


@dataclass(frozen=True, slots=True)
class _Rule:
    subjects: _Subjects
    resources: tuple[_ResourceRule, ...]
    non_resources: tuple[_NonResourceRule, ...]

    def match(self, user: UserInfo, ri: RequestInfo) -> bool:
        if not self.subjects.match(user):
            return False
        return self.match_resource(ri) if ri.is_resource else self.match_non_resource(ri)

    def match_resource(self, ri: RequestInfo) -> bool:
        return any(r.match(ri) for r in self.resources)

    def match_non_resource(self, ri: RequestInfo) -> bool:
        return any(r.match(ri) for r in self.non_resources)


@dataclass(frozen=True, slots=True)
class CompiledSchema:
    """One FlowSchema ready to match: its name, uid, level, precedence and distinguisher."""

    name: str
    uid: str
    level: str
    precedence: int
    distinguisher: str  # "", "ByUser" or "ByNamespace"
    rules: tuple[_Rule, ...]

    def match(self, user: UserInfo, ri: RequestInfo) -> bool:
        return any(r.match(user, ri) for r in self.rules)

    def rules_for(self, user: UserInfo) -> tuple[_Rule, ...]:
        """The rules whose subjects take ``user`` in (what is left to check per request)."""
        return tuple(r for r in self.rules if r.subjects.match(user))


def _subjects(subjects: list[dict[str, Any]]) -> _Subjects:
    users: list[str] = []
    groups: list[str] = []
    sa_names: set[str] = set()
    sa_prefixes: list[str] = []
    every_user = every_group = False
    for s in subjects or ():
        kind = (s or {}).get("kind")
        if kind == "User":
            name = ((s.get("user") or {}).get("name")) or ""
            every_user |= name == "*"
            users.append(name)
        elif kind == "Group":
            name = ((s.get("group") or {}).get("name")) or ""
            every_group |= name == "*"
            groups.append(name)
        elif kind == "ServiceAccount":
            sa = s.get("serviceAccount") or {}
            ns, name = sa.get("namespace") or "", sa.get("name") or ""
            if name == "*":
                sa_prefixes.append(f"{SA_PREFIX}{ns}:")
            else:
                sa_names.add(f"{SA_PREFIX}{ns}:{name}")
    return _Subjects(users=None if every_user else frozenset(users),
                     groups=None if every_group else frozenset(groups),
                     sa_names=frozenset(sa_names), sa_prefixes=tuple(sa_prefixes))


def _non_resource(rule: dict[str, Any]) -> _NonResourceRule:
    urls = [u for u in rule.get("nonResourceURLs") or () if isinstance(u, str)]
    prefixes = []
    for u in urls:
        p = u[:-1] if u.endswith("*") else u
        prefixes.append(p if p.endswith("/") else p + "/")
    return _NonResourceRule(verbs=_set(rule.get("verbs")), every="*" in urls, exact=frozenset(urls),
                            prefixes=tuple(prefixes))


def compile_schema(fs: dict[str, Any]) -> CompiledSchema:
    meta, spec = fs.get("metadata") or {}, fs.get("spec") or {}
    rules = []
    for r in spec.get("rules") or ():
        r = r or {}
        resources = tuple(_ResourceRule(verbs=_set(rr.get("verbs")), groups=_set(rr.get("apiGroups")),
                                        resources=_set(rr.get("resources")),
                                        cluster_scope=bool(rr.get("clusterScope")),
                                        namespaces=_set(rr.get("namespaces")))
                          for rr in r.get("resourceRules") or () if isinstance(rr, dict))
        non_resources = tuple(_non_resource(nr) for nr in r.get("nonResourceRules") or () if isinstance(nr, dict))
        rules.append(_Rule(_subjects(r.get("subjects") or []), resources, non_resources))
    return CompiledSchema(name=meta.get("name", ""), uid=meta.get("uid", ""),
                          level=(spec.get("priorityLevelConfiguration") or {}).get("name", ""),
                          precedence=int(spec.get("matchingPrecedence") or 1000),
                          distinguisher=(spec.get("distinguisherMethod") or {}).get("type") or "",
                          rules=tuple(rules))


def distinguisher(schema: CompiledSchema, user: UserInfo, ri: RequestInfo) -> str:
    """``computeFlowDistinguisher``: the user's name (ByUser), the request's namespace
    (ByNamespace), or nothing."""
    if schema.distinguisher == "ByUser":
        return user.name
    if schema.distinguisher == "ByNamespace":
        return ri.namespace
    return ""
