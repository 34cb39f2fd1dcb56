"""Escalation prevention (escalate/bind), aggregation and the bootstrap policy."""

from __future__ import annotations

from vkube.api.errors import Forbidden, NotFound
from vkube.api.rbac import (
    RBACAuthorizer, UserInfo, aggregate_cluster_roles, aggregated_rules, check_binding_write,
    check_role_write, confirm_no_escalation)
from vkube.api.rbac.bootstrap import CONTROLLERS, bootstrap_policy, cluster_roles

ALICE = UserInfo("alice", groups=("system:authenticated",))
RBAC = "rbac.authorization.k8s.io"


def rb(name, ns, kind, role, subject_user):
    return {"metadata": {"name": name, "namespace": ns},
            "roleRef": {"apiGroup": RBAC, "kind": kind, "name": role},
            "subjects": [{"kind": "User", "apiGroup": RBAC, "name": subject_user}]}


def authz_with(*role_bindings, cluster_role_bindings=(), extra_cluster_roles=()):
    policy = bootstrap_policy()
    return RBACAuthorizer(cluster_roles=policy["clusterRoles"] + list(extra_cluster_roles),
                          cluster_role_bindings=policy["clusterRoleBindings"] + list(cluster_role_bindings),
                          role_bindings=list(role_bindings))


def new_role(name, ns, *rules):
    return {"metadata": {"name": name, "namespace": ns}, "rules": list(rules)}


def test_cannot_grant_what_you_do_not_hold():
    authz = authz_with(rb("v", "a", "ClusterRole", "view", "alice"))
    role = new_role("r", "a", {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]},
                    {"verbs": ["create", "delete"], "apiGroups": [""], "resources": ["pods"]},
                    {"verbs": ["get"], "apiGroups": [""], "resources": ["secrets"], "resourceNames": ["s"]})
    error = check_role_write(authz, ALICE, role, cluster=False)
    assert isinstance(error, Forbidden)
    assert error.message == (
        'roles.rbac.authorization.k8s.io "r" is forbidden: user "alice" (groups=["system:authenticated"]) is '
        "attempting to grant RBAC permissions not currently held:\n"
        '{APIGroups:[""], Resources:["pods"], Verbs:["create" "delete"]}\n'
        '{APIGroups:[""], Resources:["secrets"], ResourceNames:["s"], Verbs:["get"]}')
    # what alice holds she may grant
    ok = new_role("r", "a", {"verbs": ["get"], "apiGroups": [""], "resources": ["pods", "pods/log"]})
    assert check_role_write(authz, ALICE, ok, cluster=False) is None
    # ... but only in the namespace where she holds it
    elsewhere = new_role("r", "b", {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]})
    assert isinstance(check_role_write(authz, ALICE, elsewhere, cluster=False), Forbidden)


def test_escalate_verb_and_system_masters_bypass():
    escalator = {"metadata": {"name": "escalator"}, "rules": [
        {"verbs": ["escalate"], "apiGroups": [RBAC], "resources": ["roles"]}]}
    authz = authz_with(rb("e", "a", "ClusterRole", "escalator", "alice"), extra_cluster_roles=[escalator])
    big = new_role("r", "a", {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
    assert check_role_write(authz, ALICE, big, cluster=False) is None
    assert isinstance(check_role_write(authz, ALICE, {**big, "metadata": {"name": "r", "namespace": "b"}},
                                       cluster=False), Forbidden)
    root = UserInfo("root", groups=("system:masters",))
    assert check_role_write(authz_with(), root, big, cluster=True) is None


def test_aggregation_rule_needs_cluster_admin():
    admin_in_a = authz_with(rb("adm", "a", "ClusterRole", "admin", "alice"))
    role = {"metadata": {"name": "agg"}, "rules": [],
            "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}}
    error = check_role_write(admin_in_a, ALICE, role, cluster=True)
    assert error.message == ('clusterroles.rbac.authorization.k8s.io "agg" is forbidden: must have '
                             "cluster-admin privileges to use the aggregationRule")
    ops = authz_with(cluster_role_bindings=[
        {"metadata": {"name": "ops"}, "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "cluster-admin"},
         "subjects": [{"kind": "User", "apiGroup": RBAC, "name": "alice"}]}])
    assert check_role_write(ops, ALICE, role, cluster=True) is None


def test_gc_only_updates_are_not_checked():
    authz = authz_with()
    old = new_role("r", "a", {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})
    new = {**old, "metadata": {**old["metadata"], "finalizers": ["x"], "ownerReferences": [{"uid": "1"}]}}
    assert check_role_write(authz, ALICE, new, cluster=False, old=old) is None
    changed = {**new, "rules": [{"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}]}
    assert isinstance(check_role_write(authz, ALICE, changed, cluster=False, old=old), Forbidden)


def test_binding_needs_bind_or_the_roles_rules():
    authz = authz_with(rb("v", "a", "ClusterRole", "view", "alice"))
    view = rb("bob-view", "a", "ClusterRole", "view", "bob")
    assert check_binding_write(authz, ALICE, view, cluster=False) is None
    edit = rb("bob-edit", "a", "ClusterRole", "edit", "bob")
    error = check_binding_write(authz, ALICE, edit, cluster=False)
    assert isinstance(error, Forbidden)
    assert error.message.startswith('rolebindings.rbac.authorization.k8s.io "bob-edit" is forbidden: user "alice" '
                                    '(groups=["system:authenticated"]) is attempting to grant RBAC permissions '
                                    "not currently held:\n")
    assert '{APIGroups:["apps"], Resources:["deployments"], Verbs:["create" "delete" "deletecollection" "patch" ' \
           '"update"]}' in error.message
    missing = rb("x", "a", "ClusterRole", "no-such-role", "bob")
    not_found = check_binding_write(authz, ALICE, missing, cluster=False)
    assert isinstance(not_found, NotFound)
    assert not_found.message == 'clusterroles.rbac.authorization.k8s.io "no-such-role" not found'
    # the bind verb on that role (in that namespace) suffices
    binder = {"metadata": {"name": "binder"}, "rules": [
        {"verbs": ["bind"], "apiGroups": [RBAC], "resources": ["clusterroles"], "resourceNames": ["edit"]}]}
    authz = authz_with(rb("b", "a", "ClusterRole", "binder", "alice"), extra_cluster_roles=[binder])
    assert check_binding_write(authz, ALICE, edit, cluster=False) is None
    assert isinstance(check_binding_write(authz, ALICE, {**edit, "metadata": {"name": "e", "namespace": "b"}},
                                          cluster=False), Forbidden)
    crb = {**edit, "metadata": {"name": "cluster-edit"}}
    error = check_binding_write(authz, ALICE, crb, cluster=True)
    assert error.message.startswith('clusterrolebindings.rbac.authorization.k8s.io "cluster-edit" is forbidden')


def test_confirm_no_escalation_reports_resolution_errors():
    authz = authz_with(rb("x", "a", "Role", "gone", "alice"))
    message = confirm_no_escalation(authz, ALICE, "a", [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])
    assert message.endswith('; resolution errors: [role.rbac.authorization.k8s.io "gone" not found]')


def test_aggregation_merges_in_name_order_without_duplicates():
    def cr(name, labels, *rules):
        return {"metadata": {"name": name, "labels": labels}, "rules": list(rules)}
    r1 = {"verbs": ["get"], "apiGroups": [""], "resources": ["a"]}
    r2 = {"verbs": ["get"], "apiGroups": [""], "resources": ["b"]}
    parent = {"metadata": {"name": "parent"}, "aggregationRule": {"clusterRoleSelectors": [
        {"matchLabels": {"agg": "yes"}}, {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["x"]}]}]}}
    roles = [parent, cr("z", {"agg": "yes"}, r2), cr("b", {"agg": "yes"}, r1), cr("c", {"tier": "x"}, r1, r2),
             cr("nope", {"agg": "no"}, {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}),
             {**cr("parent-labelled", {"agg": "yes"}), "metadata": {"name": "parent", "labels": {"agg": "yes"}}}]
    assert aggregated_rules(parent, roles) == [r1, r2]
    assert aggregated_rules({"metadata": {"name": "plain"}}, roles) is None


def test_aggregation_is_transitive_like_the_controller():
    policy = aggregate_cluster_roles(cluster_roles())
    by_name = {r["metadata"]["name"]: r for r in policy}
    view, edit, admin = (by_name[n]["rules"] for n in ("view", "edit", "admin"))
    assert view == by_name["system:aggregate-to-view"]["rules"]
    assert all(rule in edit for rule in view)
    assert all(rule in admin for rule in edit)
    assert {"verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            "apiGroups": [RBAC], "resources": ["rolebindings", "roles"]} in admin
    # raw bootstrap objects keep rules unset, as upstream stores them before the controller runs
    raw = {r["metadata"]["name"]: r for r in cluster_roles()}
    assert raw["admin"]["rules"] is None and raw["admin"]["aggregationRule"]


def test_bootstrap_policy_shape():
    policy = bootstrap_policy()
    names = {r["metadata"]["name"] for r in policy["clusterRoles"]}
    for expected in ("cluster-admin", "admin", "edit", "view", "system:discovery", "system:basic-user",
                     "system:public-info-viewer", "system:aggregate-to-edit", "system:node",
                     "system:kube-scheduler", "system:controller:deployment-controller",
                     "system:controller:generic-garbage-collector", "system:controller:namespace-controller"):
        assert expected in names
    bindings = {b["metadata"]["name"]: b for b in policy["clusterRoleBindings"]}
    assert bindings["cluster-admin"]["subjects"] == [{"apiGroup": RBAC, "kind": "Group", "name": "system:masters"}]
    assert [s["name"] for s in bindings["system:public-info-viewer"]["subjects"]] == [
        "system:authenticated", "system:unauthenticated"]
    assert "subjects" not in bindings["system:node"]
    for name in CONTROLLERS:
        assert bindings[f"system:controller:{name}"]["subjects"] == [
            {"kind": "ServiceAccount", "name": name, "namespace": "kube-system"}]
    for obj in policy["clusterRoles"] + policy["clusterRoleBindings"]:
        assert obj["metadata"]["labels"]["kubernetes.io/bootstrapping"] == "rbac-defaults"
        assert obj["metadata"]["annotations"] == {"rbac.authorization.kubernetes.io/autoupdate": "true"}
    # rules are built like rbacv1helpers.NewRule: verbs and resources sorted
    for role in policy["clusterRoles"]:
        for rule in role["rules"]:
            assert rule["verbs"] == sorted(rule["verbs"])
            assert rule.get("resources", []) == sorted(rule.get("resources", []))
    # every controller can do its job: e.g. the deployment controller manages replicasets
    authz = RBACAuthorizer(cluster_roles=policy["clusterRoles"], cluster_role_bindings=policy["clusterRoleBindings"])
    from vkube.api.rbac import Attributes, service_account_user
    dc = service_account_user("kube-system", "deployment-controller")
    assert authz.authorize(dc, Attributes("create", api_group="apps", resource="replicasets", namespace="x")).allowed
    assert not authz.authorize(dc, Attributes("get", resource="secrets", namespace="x")).allowed


def test_cluster_role_names_match_upstreams_golden_list():
    """The names in upstream's testdata/cluster-roles.yaml (controller roles are separate)."""
    assert [r["metadata"]["name"] for r in cluster_roles()] == [
        "admin", "cluster-admin", "edit", "system:aggregate-to-admin", "system:aggregate-to-edit",
        "system:aggregate-to-view", "system:auth-delegator", "system:basic-user",
        "system:certificates.k8s.io:certificatesigningrequests:nodeclient",
        "system:certificates.k8s.io:certificatesigningrequests:selfnodeclient",
        "system:certificates.k8s.io:kube-apiserver-client-approver",
        "system:certificates.k8s.io:kube-apiserver-client-kubelet-approver",
        "system:certificates.k8s.io:kubelet-serving-approver",
        "system:certificates.k8s.io:legacy-unknown-approver", "system:discovery", "system:heapster",
        "system:kube-aggregator", "system:kube-controller-manager", "system:kube-dns", "system:kube-scheduler",
        "system:kubelet-api-admin", "system:monitoring", "system:node", "system:node-bootstrapper",
        "system:node-problem-detector", "system:node-proxier", "system:persistent-volume-provisioner",
        "system:public-info-viewer", "system:service-account-issuer-discovery", "system:volume-scheduler", "view"]


def test_namespace_roles_and_bindings():
    policy = bootstrap_policy()
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]): r for r in policy["roles"]}
    assert sorted(roles) == [
        ("kube-public", "system:controller:bootstrap-signer"),
        ("kube-system", "extension-apiserver-authentication-reader"),
        ("kube-system", "system::leader-locking-kube-controller-manager"),
        ("kube-system", "system::leader-locking-kube-scheduler"),
        ("kube-system", "system:controller:bootstrap-signer"),
        ("kube-system", "system:controller:cloud-provider"),
        ("kube-system", "system:controller:token-cleaner")]
    assert all(r["kind"] == "Role" for r in policy["roles"])
    assert roles[("kube-system", "system::leader-locking-kube-scheduler")]["rules"][0] == {
        "verbs": ["create", "get", "list", "update", "watch"], "apiGroups": ["coordination.k8s.io"],
        "resources": ["leases"]}
    from vkube.api.rbac import Attributes, UserInfo
    authz = RBACAuthorizer(roles=policy["roles"], role_bindings=policy["roleBindings"],
                           cluster_roles=policy["clusterRoles"], cluster_role_bindings=policy["clusterRoleBindings"])
    scheduler = UserInfo("system:kube-scheduler", groups=("system:authenticated",))
    decision = authz.authorize(scheduler, Attributes("list", api_group="coordination.k8s.io",
                                                     resource="leasecandidates", namespace="kube-system"))
    assert decision.reason == ('RBAC: allowed by RoleBinding "system::leader-locking-kube-scheduler/kube-system" '
                               'of Role "system::leader-locking-kube-scheduler" to User "system:kube-scheduler"')
    assert not authz.authorize(scheduler, Attributes("list", api_group="coordination.k8s.io",
                                                     resource="leasecandidates", namespace="default")).allowed
