"""The RBAC authorizer: bindings, subjects, reasons, kube-apiserver's Forbidden text, rules of a user."""

from __future__ import annotations

from vkube.api.rbac import Attributes, RBACAuthorizer, UserInfo, service_account_user
from vkube.api.rbac.bootstrap import bootstrap_policy

AUTHENTICATED = ("system:authenticated",)


def meta(name, namespace=None, labels=None):
    m = {"name": name}
    if namespace:
        m["namespace"] = namespace
    if labels:
        m["labels"] = labels
    return m


def role(name, namespace, *rules):
    return {"kind": "Role", "metadata": meta(name, namespace), "rules": list(rules)}


def cluster_role(name, *rules):
    return {"kind": "ClusterRole", "metadata": meta(name), "rules": list(rules)}


def binding(name, namespace, kind, role_name, *subjects):
    b = {"metadata": meta(name, namespace), "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                         "kind": kind, "name": role_name},
         "subjects": list(subjects)}
    return b


def user(name):
    return {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def group(name):
    return {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": name}


def sa(name, namespace=None):
    s = {"kind": "ServiceAccount", "name": name}
    if namespace:
        s["namespace"] = namespace
    return s


def with_bootstrap(**kw) -> RBACAuthorizer:
    policy = bootstrap_policy()
    return RBACAuthorizer(cluster_roles=policy["clusterRoles"] + kw.pop("cluster_roles", []),
                          cluster_role_bindings=policy["clusterRoleBindings"] + kw.pop("cluster_role_bindings", []),
                          **kw)


ALICE = UserInfo("alice", groups=AUTHENTICATED)


def test_view_in_one_namespace_only():
    authz = with_bootstrap(role_bindings=[binding("alice-view", "a", "ClusterRole", "view", user("alice"))])
    get_a = Attributes("get", namespace="a", resource="pods", name="p")
    decision = authz.authorize(ALICE, get_a)
    assert decision.allowed
    assert decision.reason == ('RBAC: allowed by RoleBinding "alice-view/a" of ClusterRole "view" '
                               'to User "alice"')
    assert authz.authorize(ALICE, Attributes("list", namespace="a", resource="pods")).allowed
    assert authz.authorize(ALICE, Attributes("get", namespace="a", resource="pods", subresource="log")).allowed
    for attrs in (Attributes("get", namespace="b", resource="pods", name="p"),
                  Attributes("create", namespace="a", resource="pods"),
                  Attributes("get", namespace="a", resource="secrets", name="s"),
                  Attributes("create", namespace="a", resource="pods", subresource="exec", name="p"),
                  Attributes("list", resource="pods"),  # all namespaces
                  Attributes("watch", resource="pods")):
        assert not authz.authorize(ALICE, attrs).allowed, attrs


def test_forbidden_messages_as_kube_apiserver_writes_them():
    authz = with_bootstrap()
    attrs = Attributes("list", namespace="b", resource="pods")
    error = authz.forbidden(ALICE, attrs, authz.authorize(ALICE, attrs))
    assert error.code == 403
    assert error.message == ('pods is forbidden: User "alice" cannot list resource "pods" in API group "" '
                             'in the namespace "b"')
    attrs = Attributes("get", api_group="apps", resource="deployments", subresource="scale", name="web",
                       namespace="b")
    assert authz.forbidden(ALICE, attrs, authz.authorize(ALICE, attrs)).message == (
        'deployments.apps "web" is forbidden: User "alice" cannot get resource "deployments/scale" in API '
        'group "apps" in the namespace "b"')
    attrs = Attributes("list", resource="nodes")
    assert authz.forbidden(ALICE, attrs, authz.authorize(ALICE, attrs)).message == (
        'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope')
    attrs = Attributes("get", resource_request=False, path="/metrics")
    assert authz.forbidden(ALICE, attrs, authz.authorize(ALICE, attrs)).message == (
        'forbidden: User "alice" cannot get path "/metrics"')


def test_missing_role_is_the_denial_reason():
    authz = with_bootstrap(role_bindings=[binding("b", "a", "Role", "gone", user("alice"))],
                           cluster_role_bindings=[binding("c", None, "ClusterRole", "nope", user("alice"))])
    attrs = Attributes("get", namespace="a", resource="pods", name="p")
    decision = authz.authorize(ALICE, attrs)
    assert not decision.allowed
    assert decision.reason == ('RBAC: [clusterrole.rbac.authorization.k8s.io "nope" not found, '
                               'role.rbac.authorization.k8s.io "gone" not found]')
    assert authz.forbidden(ALICE, attrs, decision).message.endswith(': ' + decision.reason)


def test_bootstrap_discovery_and_public_info():
    authz = with_bootstrap()
    anonymous = UserInfo("system:anonymous", groups=("system:unauthenticated",))
    for path, anon_ok in (("/healthz", True), ("/livez", True), ("/readyz", True), ("/version", True),
                          ("/api", False), ("/apis/apps/v1", False), ("/openapi/v2", False), ("/metrics", False)):
        attrs = Attributes("get", resource_request=False, path=path)
        assert authz.authorize(anonymous, attrs).allowed is anon_ok, path
        assert authz.authorize(ALICE, attrs).allowed is (path != "/metrics"), path
    ssar = Attributes("create", api_group="authorization.k8s.io", resource="selfsubjectaccessreviews")
    assert authz.authorize(ALICE, ssar).allowed
    assert not authz.authorize(anonymous, ssar).allowed
    assert authz.authorize(ALICE, Attributes("create", api_group="authentication.k8s.io",
                                             resource="selfsubjectreviews")).allowed


def test_system_masters_and_cluster_admin():
    authz = with_bootstrap()
    admin = UserInfo("kubernetes-admin", groups=("system:masters", "system:authenticated"))
    assert authz.authorize(admin, Attributes("delete", resource="nodes", name="n")).allowed
    assert authz.authorize(admin, Attributes("get", resource_request=False, path="/metrics")).allowed
    ops = UserInfo("ops", groups=AUTHENTICATED)
    authz = with_bootstrap(cluster_role_bindings=[binding("ops", None, "ClusterRole", "cluster-admin", user("ops"))])
    decision = authz.authorize(ops, Attributes("escalate", api_group="rbac.authorization.k8s.io",
                                               resource="clusterroles", name="x"))
    assert decision.reason == 'RBAC: allowed by ClusterRoleBinding "ops" of ClusterRole "cluster-admin" to User "ops"'


def test_service_account_subjects():
    authz = RBACAuthorizer(
        roles=[role("reader", "a", {"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]})],
        cluster_roles=[cluster_role("lister", {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]})],
        role_bindings=[binding("implicit-ns", "a", "Role", "reader", sa("bot"))],
        cluster_role_bindings=[binding("no-ns", None, "ClusterRole", "lister", sa("bot")),
                               binding("with-ns", None, "ClusterRole", "lister", sa("bot", "b"))])
    bot_a, bot_b = service_account_user("a", "bot"), service_account_user("b", "bot")
    assert bot_a.name == "system:serviceaccount:a:bot"
    assert bot_a.groups == ("system:serviceaccounts", "system:serviceaccounts:a", "system:authenticated")
    decision = authz.authorize(bot_a, Attributes("get", namespace="a", resource="configmaps", name="c"))
    assert decision.reason == ('RBAC: allowed by RoleBinding "implicit-ns/a" of Role "reader" to '
                               'ServiceAccount "bot/a"')
    # a ClusterRoleBinding's ServiceAccount subject without a namespace matches nobody
    assert not authz.authorize(bot_a, Attributes("list", resource="pods")).allowed
    assert authz.authorize(bot_b, Attributes("list", resource="pods")).reason == (
        'RBAC: allowed by ClusterRoleBinding "with-ns" of ClusterRole "lister" to ServiceAccount "bot/b"')
    assert not authz.authorize(bot_b, Attributes("get", namespace="a", resource="configmaps", name="c")).allowed


def test_groups_and_first_matching_subject_describes_the_binding():
    authz = RBACAuthorizer(
        cluster_roles=[cluster_role("reader", {"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]})],
        cluster_role_bindings=[binding("devs", None, "ClusterRole", "reader", user("zed"), group("devs"),
                                       user("bob"))])
    bob = UserInfo("bob", groups=("devs",))
    assert authz.authorize(bob, Attributes("get", resource="nodes", name="n")).reason == (
        'RBAC: allowed by ClusterRoleBinding "devs" of ClusterRole "reader" to Group "devs"')
    assert not authz.authorize(UserInfo("carol", groups=("ops",)), Attributes("get", resource="nodes")).allowed


def test_role_binding_to_cluster_role_applies_only_in_its_namespace():
    authz = with_bootstrap(role_bindings=[binding("e", "team", "ClusterRole", "edit", group("team"))])
    member = UserInfo("dan", groups=("team", "system:authenticated"))
    assert authz.authorize(member, Attributes("create", api_group="apps", resource="deployments",
                                              namespace="team")).allowed
    assert not authz.authorize(member, Attributes("create", api_group="apps", resource="deployments",
                                                  namespace="other")).allowed
    assert not authz.authorize(member, Attributes("create", api_group="apps", resource="deployments")).allowed
    # edit does not grant RBAC writes nor resource quotas writes; admin does grant RBAC writes
    assert not authz.authorize(member, Attributes("create", api_group="rbac.authorization.k8s.io",
                                                  resource="roles", namespace="team")).allowed
    assert not authz.authorize(member, Attributes("update", resource="resourcequotas", namespace="team")).allowed


def test_rules_for_and_subject_rules_review():
    authz = with_bootstrap(role_bindings=[binding("v", "a", "ClusterRole", "view", user("alice")),
                                          binding("x", "a", "Role", "missing", user("alice"))])
    rules, errors = authz.rules_for(ALICE, "a")
    assert errors == ['role.rbac.authorization.k8s.io "missing" not found']
    status = authz.subject_rules_review_status(ALICE, "a")
    assert status["incomplete"] is False
    assert status["evaluationError"] == 'role.rbac.authorization.k8s.io "missing" not found'
    assert {"verbs": ["create"], "apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]} in status["resourceRules"]
    assert {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/livez", "/readyz", "/version", "/version/"]} \
        in status["nonResourceRules"]
    assert any("pods" in r["resources"] and r["verbs"] == ["get", "list", "watch"] for r in status["resourceRules"])
    elsewhere = authz.subject_rules_review_status(ALICE, "b")
    assert not any("pods" in r["resources"] for r in elsewhere["resourceRules"])


def test_a_binding_naming_the_user_twice_counts_once():
    authz = with_bootstrap(role_bindings=[binding("v", "a", "ClusterRole", "view", user("alice"), group("x"))])
    twice = UserInfo("alice", groups=("x", "system:authenticated"))
    rules, _ = authz.rules_for(twice, "a")
    once, _ = authz.rules_for(ALICE, "a")
    assert len(rules) == len(once)
    assert authz.authorize(twice, Attributes("get", namespace="a", resource="pods")).reason == (
        'RBAC: allowed by RoleBinding "v/a" of ClusterRole "view" to User "alice"')
