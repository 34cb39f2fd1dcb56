"""Bootstrap reconciliation (``kubectl auth reconcile``'s rules, run at every API server start
and every wake of a shared cluster): a stored policy that already holds what is expected is
left alone without a copy; anything missing — a rule, a label, a subject, a roleRef — is
still added."""

from __future__ import annotations

import copy

from vkube.api.rbac.bootstrap import bootstrap_policy
from vkube.api.rbac.reconcile import reconcile_binding, reconcile_role


def test_the_policy_as_written_needs_no_change_and_gaps_are_filled() -> None:
    policy = bootstrap_policy()
    role = next(r for r in policy["clusterRoles"] if r.get("rules") and not r.get("aggregationRule"))
    binding = next(b for b in policy["clusterRoleBindings"] if b.get("subjects"))
    stored_role = {**copy.deepcopy(role), "metadata": {**role["metadata"], "resourceVersion": "7"}}
    assert reconcile_role(stored_role, role) is None
    assert reconcile_binding(copy.deepcopy(binding), binding) == (None, False)
    # extra rules or labels of the tenant's stay, and need nothing either
    extra = copy.deepcopy(stored_role)
    extra["rules"].append({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]})
    extra["metadata"]["labels"] = {**extra["metadata"].get("labels", {}), "mine": "x"}
    assert reconcile_role(extra, role) is None

    missing_rule = copy.deepcopy(stored_role)
    missing_rule["rules"] = missing_rule["rules"][1:]
    updated = reconcile_role(missing_rule, role)
    assert updated is not None and role["rules"][0] in updated["rules"]
    missing_label = copy.deepcopy(stored_role)
    missing_label["metadata"]["labels"] = {}
    updated = reconcile_role(missing_label, role)
    assert updated is not None and updated["metadata"]["labels"] == role["metadata"]["labels"]

    no_subjects = {**copy.deepcopy(binding), "subjects": []}
    updated_b, recreate = reconcile_binding(no_subjects, binding)
    assert updated_b is not None and not recreate and updated_b["subjects"] == binding["subjects"]
    other_ref = copy.deepcopy(binding)
    other_ref["roleRef"] = {**other_ref["roleRef"], "name": "something-else"}
    updated_b, recreate = reconcile_binding(other_ref, binding)
    assert recreate and updated_b is not None and updated_b["roleRef"] == binding["roleRef"]
