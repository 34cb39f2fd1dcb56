"""Escalation prevention for writes of Roles, ClusterRoles and their bindings.

Follows ``pkg/registry/rbac`` (the ``policybased`` storages, ``escalation_check.go`` and
``validation.ConfirmNoEscalation``):

- a Role/ClusterRole may be created or updated only if its rules are covered by the writer's own
  rules in that namespace, unless the writer is in ``system:masters`` or is allowed the
  ``escalate`` verb on that role; setting or changing an ``aggregationRule`` needs ``*`` on
  everything ("must have cluster-admin privileges to use the aggregationRule");
- a (Cluster)RoleBinding may be created or updated only if the writer is allowed the ``bind``
  verb on the referenced role (in the binding's namespace; cluster scope for
  ClusterRoleBindings) or already holds every rule of that role;
- updates that change only ``metadata.ownerReferences``/``finalizers`` are not checked, as upstream.

Refusals are ``Forbidden`` with kube-apiserver's text, e.g. ``roles.rbac.authorization.k8s.io "r"
is forbidden: user "alice" (groups=["system:authenticated"]) is attempting to grant RBAC
permissions not currently held:\\n{APIGroups:[""], Resources:["pods"], Verbs:["create"]}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vkube.api.errors import BadRequest, Forbidden, NotFound, not_found
from vkube.api.forbidden import forbidden
from vkube.api.rbac.authorizer import SYSTEM_MASTERS, Attributes, RBACAuthorizer, UserInfo
from vkube.api.rbac.rules import FULL_AUTHORITY, compact_rules, compact_string, covers

__all__ = ["confirm_no_escalation", "check_role_write", "check_binding_write", "RBAC_GROUP"]

Obj = Mapping[str, Any]
RBAC_GROUP = "rbac.authorization.k8s.io"


def _go_strings(values: Sequence[str]) -> str:
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def confirm_no_escalation(authz: RBACAuthorizer, user: UserInfo, namespace: str,
                          rules: Sequence[Obj]) -> str | None:
    """None when ``user``'s rules in ``namespace`` cover ``rules``; else upstream's error text."""
    owner_rules, errors = authz.compiled_rules_for(user, namespace)
    ok, missing = covers(owner_rules, rules)
    if ok:
        return None
    lines = sorted({compact_string(r) for r in compact_rules(missing)})
    message = (f'user "{user.name}" (groups={_go_strings(user.groups)}) is attempting to grant RBAC '
               "permissions not currently held:\n" + "\n".join(lines))
    if errors:
        message += f"; resolution errors: [{', '.join(errors)}]"
    return message


def _escalation_allowed(user: UserInfo) -> bool:
    return SYSTEM_MASTERS in user.groups


def _gc_only_change(obj: Obj, old: Obj | None) -> bool:
    """``IsOnlyMutatingGCFields``: only ownerReferences/finalizers differ."""
    if old is None:
        return False

    def strip(o: Obj) -> Obj:
        meta = {k: v for k, v in (o.get("metadata") or {}).items()
                if k not in ("ownerReferences", "finalizers", "resourceVersion", "managedFields",
                             "generation")}
        return {**o, "metadata": meta}
    return strip(obj) == strip(old)


def check_role_write(authz: RBACAuthorizer, user: UserInfo, role: Obj, *, cluster: bool,
                     old: Obj | None = None) -> Forbidden | None:
    """The error for creating/updating ``role`` (a Role, or a ClusterRole when ``cluster``)."""
    if _escalation_allowed(user) or _gc_only_change(role, old):
        return None
    meta = role.get("metadata") or {}
    name, namespace = str(meta.get("name") or ""), "" if cluster else str(meta.get("namespace") or "")
    resource = "clusterroles" if cluster else "roles"
    if authz.authorize(user, Attributes("escalate", api_group=RBAC_GROUP, api_version="*",
                                        resource=resource, name=name, namespace=namespace)).allowed:
        return None
    problem = confirm_no_escalation(authz, user, namespace, role.get("rules") or [])
    if problem:
        return forbidden(resource, name, problem, group=RBAC_GROUP)
    aggregation = role.get("aggregationRule")
    changed = aggregation is not None and (old is None or aggregation != old.get("aggregationRule"))
    if cluster and changed and confirm_no_escalation(authz, user, "", FULL_AUTHORITY):
        return forbidden(resource, name, "must have cluster-admin privileges to use the aggregationRule",
                         group=RBAC_GROUP)
    return None


def check_binding_write(authz: RBACAuthorizer, user: UserInfo, binding: Obj, *, cluster: bool,
                        old: Obj | None = None) -> Forbidden | NotFound | BadRequest | None:
    """The error for creating/updating a (Cluster)RoleBinding: ``bind`` or hold the role's rules."""
    if _escalation_allowed(user) or _gc_only_change(binding, old):
        return None
    meta = binding.get("metadata") or {}
    name, namespace = str(meta.get("name") or ""), "" if cluster else str(meta.get("namespace") or "")
    ref = binding.get("roleRef") or {}
    kind, role_name = ref.get("kind"), str(ref.get("name") or "")
    if kind in ("ClusterRole", "Role"):
        attrs = Attributes("bind", api_group=str(ref.get("apiGroup") or ""), resource=(
            "clusterroles" if kind == "ClusterRole" else "roles"), name=role_name, namespace=namespace)
        if authz.authorize(user, attrs).allowed:
            return None
    rules = authz.role_rules(ref, namespace)
    if isinstance(rules, str):
        if kind in ("ClusterRole", "Role"):
            return not_found("clusterroles" if kind == "ClusterRole" else "roles", role_name,
                             group=RBAC_GROUP)
        return BadRequest(rules)
    problem = confirm_no_escalation(authz, user, namespace, rules)
    if problem:
        return forbidden("clusterrolebindings" if cluster else "rolebindings", name, problem,
                         group=RBAC_GROUP)
    return None
