"""RBAC with Kubernetes' semantics: :mod:`.rules` (matching, covering), :mod:`.authorizer`
(decisions, rules of a user), :mod:`.escalation` (``escalate``/``bind``), :mod:`.aggregation`
(aggregated ClusterRoles), :mod:`.bootstrap` (the default roles and bindings),
:mod:`.impersonation` (``Impersonate-*`` headers) and :mod:`.reviews` (access/rules/self reviews)."""

from vkube.api.rbac.aggregation import aggregate_cluster_roles, aggregated_rules
from vkube.api.rbac.authorizer import (
    SYSTEM_MASTERS, Attributes, Decision, RBACAuthorizer, UserInfo, forbidden_message,
    service_account_user)
from vkube.api.rbac.bootstrap import bootstrap_policy
from vkube.api.rbac.escalation import check_binding_write, check_role_write, confirm_no_escalation
from vkube.api.rbac.impersonation import impersonate
from vkube.api.rbac.reviews import review, self_subject_review_status
from vkube.api.rbac.rules import compact_rules, compact_string, compile_rule, covers

__all__ = [
    "aggregate_cluster_roles", "aggregated_rules", "SYSTEM_MASTERS", "Attributes", "Decision",
    "RBACAuthorizer", "UserInfo", "forbidden_message", "service_account_user", "bootstrap_policy",
    "check_binding_write", "check_role_write", "confirm_no_escalation", "compact_rules",
    "compact_string", "compile_rule", "covers", "impersonate", "review", "self_subject_review_status",
]
