"""Impersonation headers and the access-review APIs (what ``kubectl --as`` and ``auth can-i`` use)."""

from __future__ import annotations

import pytest

from vkube.api.errors import BadRequest, Forbidden, Invalid
from vkube.api.rbac import Attributes, RBACAuthorizer, UserInfo
from vkube.api.rbac.bootstrap import bootstrap_policy
from vkube.api.rbac.impersonation import impersonate, split_service_account_username
from vkube.api.rbac.reviews import (
    check_local_namespace, review, review_attributes, self_subject_review_status, subject_from_spec,
    validate_access_review_spec)

RBAC = "rbac.authorization.k8s.io"
ALICE = UserInfo("alice", groups=("system:authenticated",))
ADMIN = UserInfo("admin", groups=("system:masters", "system:authenticated"))


def authz(*extra_roles, bindings=()):
    policy = bootstrap_policy()
    return RBACAuthorizer(cluster_roles=policy["clusterRoles"] + list(extra_roles),
                          cluster_role_bindings=policy["clusterRoleBindings"] + list(bindings))


def crb(name, role, user):
    return {"metadata": {"name": name}, "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role},
            "subjects": [{"kind": "User", "apiGroup": RBAC, "name": user}]}


def test_split_service_account_username():
    assert split_service_account_username("system:serviceaccount:ns:builder") == ("ns", "builder")
    for bad in ("system:serviceaccount:ns", "system:serviceaccount:ns:a:b", "system:serviceaccount:NS:x",
                "system:serviceaccount::x", "alice"):
        assert split_service_account_username(bad) is None


def test_no_headers_means_no_impersonation():
    assert impersonate(authz(), ALICE, [("Accept", "application/json")]) is None


def test_admin_impersonates_user_and_groups():
    who = impersonate(authz(), ADMIN, [("Impersonate-User", "bob"), ("Impersonate-Group", "devs"),
                                       ("Impersonate-Group", "ops"), ("Impersonate-Extra-Scopes", "view"),
                                       ("Impersonate-Extra-acme.com%2fproject", "p1"), ("Impersonate-Uid", "u-1")])
    assert who == UserInfo("bob", "u-1", ("devs", "ops", "system:authenticated"),
                           {"scopes": ("view",), "acme.com/project": ("p1",)})


def test_service_account_and_anonymous_groups():
    sa = impersonate(authz(), ADMIN, [("Impersonate-User", "system:serviceaccount:ns:bot")])
    assert sa.groups == ("system:serviceaccounts", "system:serviceaccounts:ns", "system:authenticated")
    anon = impersonate(authz(), ADMIN, [("Impersonate-User", "system:anonymous")])
    assert anon.groups == ("system:unauthenticated",)
    explicit = impersonate(authz(), ADMIN, [("Impersonate-User", "x"), ("Impersonate-Group", "system:unauthenticated")])
    assert explicit.groups == ("system:unauthenticated",)


def test_impersonation_without_rights_is_forbidden():
    with pytest.raises(Forbidden) as info:
        impersonate(authz(), ALICE, [("Impersonate-User", "admin")])
    assert info.value.message == ('users "admin" is forbidden: User "alice" cannot impersonate resource "users" '
                                  'in API group "" at the cluster scope')
    with pytest.raises(Forbidden) as info:
        impersonate(authz(), ALICE, [("Impersonate-User", "system:serviceaccount:kube-system:default")])
    assert info.value.message == ('serviceaccounts "default" is forbidden: User "alice" cannot impersonate resource '
                                  '"serviceaccounts" in API group "" in the namespace "kube-system"')
    # allowed to impersonate the user, but not to add system:masters
    users_only = {"metadata": {"name": "imp-users"}, "rules": [
        {"verbs": ["impersonate"], "apiGroups": [""], "resources": ["users"]}]}
    a = authz(users_only, bindings=[crb("imp", "imp-users", "alice")])
    assert impersonate(a, ALICE, [("Impersonate-User", "bob")]).name == "bob"
    with pytest.raises(Forbidden) as info:
        impersonate(a, ALICE, [("Impersonate-User", "bob"), ("Impersonate-Group", "system:masters")])
    assert info.value.message.startswith('groups "system:masters" is forbidden: User "alice" cannot impersonate')


def test_groups_without_user_is_bad_request():
    with pytest.raises(BadRequest) as info:
        impersonate(authz(), ADMIN, [("Impersonate-Group", "devs")])
    assert info.value.message == "requested [{Group  devs    }] without impersonating a user"


def test_review_attributes_and_status():
    a = authz(bindings=[crb("v", "view", "alice")])
    spec = {"resourceAttributes": {"namespace": "a", "verb": "get", "resource": "pods", "subresource": "log"}}
    assert review_attributes(spec) == Attributes("get", namespace="a", api_version="*", resource="pods",
                                                 subresource="log")
    assert review(a, ALICE, spec) == {"allowed": True, "reason": 'RBAC: allowed by ClusterRoleBinding "v" of '
                                      'ClusterRole "view" to User "alice"'}
    assert review(a, ALICE, {"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "a"}}) == \
        {"allowed": False}
    assert review(a, ALICE, {"nonResourceAttributes": {"verb": "get", "path": "/healthz"}})["allowed"]
    sar = {"user": "alice", "groups": ["system:authenticated"], "extra": {"k": ["v"]}, **spec}
    assert review(a, subject_from_spec(sar), sar)["allowed"]


def test_review_validation():
    err = validate_access_review_spec("SubjectAccessReview", {}, needs_subject=True)
    assert isinstance(err, Invalid)
    assert err.message == (
        'SubjectAccessReview.authorization.k8s.io "" is invalid: [spec.resourceAttributes: Invalid value: "null": '
        "exactly one of nonResourceAttributes or resourceAttributes must be specified, spec.user: Invalid value: "
        '"": at least one of user or group must be specified]')
    assert validate_access_review_spec("SelfSubjectAccessReview", {"resourceAttributes": {}},
                                       needs_subject=False) is None
    both = validate_access_review_spec("SelfSubjectAccessReview", {"resourceAttributes": {}, "nonResourceAttributes": {}},
                                       needs_subject=False)
    assert "cannot be specified in combination with resourceAttributes" in both.message
    lsar = {"metadata": {"namespace": "a"}, "spec": {"resourceAttributes": {"namespace": "b", "verb": "get"}}}
    assert check_local_namespace(lsar, "a").message == "spec.resourceAttributes.namespace must match namespace: a"
    assert check_local_namespace({"metadata": {"namespace": "a"}, "spec": {"resourceAttributes": {"namespace": "a"}}},
                                 "a") is None


def test_self_subject_review():
    assert self_subject_review_status(ALICE) == {"userInfo": {"username": "alice", "groups": ["system:authenticated"]}}
    full = UserInfo("system:serviceaccount:a:b", "uid-1", ("system:serviceaccounts",),
                    {"authentication.kubernetes.io/pod-name": ("p",)})
    assert self_subject_review_status(full)["userInfo"] == {
        "username": "system:serviceaccount:a:b", "uid": "uid-1", "groups": ["system:serviceaccounts"],
        "extra": {"authentication.kubernetes.io/pod-name": ["p"]}}
