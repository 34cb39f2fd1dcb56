"""Access reviews and impersonation as a real cluster answers them: ``kubectl auth can-i``
(SelfSubjectAccessReview), ``can-i --list`` (SelfSubjectRulesReview), ``auth whoami``
(SelfSubjectReview), SubjectAccessReview/LocalSubjectAccessReview objects, discovery of the
review APIs, and the ``Impersonate-*`` headers sent by the official Python client."""

from __future__ import annotations

import asyncio
import json

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from tests.authz.test_rbac_kubectl import denied, run, setup_view_in_a

ALICE = ("--as=alice",)


async def can_i(cp, *args: str) -> tuple[int, str]:
    proc = await run(cp, "auth", "can-i", *args, check=False)
    return proc.returncode, proc.stdout.strip()


async def test_can_i_answers(control_plane):
    cp = control_plane
    await setup_view_in_a(cp)
    assert await can_i(cp, "list", "pods", "-n", "a", *ALICE) == (0, "yes")
    assert await can_i(cp, "watch", "configmaps", "-n", "a", *ALICE) == (0, "yes")
    assert await can_i(cp, "get", "pods", "--subresource=log", "-n", "a", *ALICE) == (0, "yes")
    assert await can_i(cp, "create", "pods", "--subresource=exec", "-n", "a", *ALICE) == (1, "no")
    assert await can_i(cp, "create", "pods", *ALICE) == (1, "no")
    assert await can_i(cp, "create", "pods", "-n", "a", *ALICE) == (1, "no")
    assert await can_i(cp, "list", "pods", "-n", "b", *ALICE) == (1, "no")
    assert await can_i(cp, "list", "pods", "-A", *ALICE) == (1, "no")
    assert await can_i(cp, "get", "secrets", "-n", "a", *ALICE) == (1, "no")
    assert await can_i(cp, "get", "/healthz", *ALICE) == (0, "yes")
    assert await can_i(cp, "get", "/metrics", *ALICE) == (1, "no")
    # the admin (system:masters) may do anything
    assert await can_i(cp, "*", "*") == (0, "yes")
    assert await can_i(cp, "create", "pods", "-A") == (0, "yes")
    # a group brings its bindings' rights
    await run(cp, "create", "clusterrolebinding", "ops-edit", "--clusterrole=edit", "--group=ops")
    assert await can_i(cp, "create", "deployments.apps", "-n", "b", "--as=carol", "--as-group=ops") == (0, "yes")
    assert await can_i(cp, "create", "deployments.apps", "-n", "b", "--as=carol") == (1, "no")


async def test_can_i_list(control_plane):
    cp = control_plane
    await setup_view_in_a(cp)
    out = (await run(cp, "auth", "can-i", "--list", "-n", "a", *ALICE)).stdout.splitlines()
    rows = {" ".join(line.split()) for line in out}
    assert out[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"]
    assert "configmaps [] [] [get list watch]" in rows
    assert "pods/log [] [] [get list watch]" in rows
    assert "selfsubjectaccessreviews.authorization.k8s.io [] [] [create]" in rows
    assert "selfsubjectreviews.authentication.k8s.io [] [] [create]" in rows
    assert "[/healthz] [] [get]" in rows
    assert not any(r.startswith("secrets") for r in rows)
    elsewhere = (await run(cp, "auth", "can-i", "--list", "-n", "b", *ALICE)).stdout
    assert "configmaps" not in elsewhere and "selfsubjectaccessreviews" in elsewhere
    admin = (await run(cp, "auth", "can-i", "--list")).stdout.splitlines()
    assert admin[1].split() == ["*.*", "[]", "[]", "[*]"]


async def test_whoami(control_plane):
    cp = control_plane
    out = (await run(cp, "auth", "whoami", "-o", "json")).stdout
    assert json.loads(out)["status"]["userInfo"] == {
        "username": "kubernetes-admin", "groups": ["system:masters", "system:authenticated"]}
    table = (await run(cp, "auth", "whoami", "--as=alice", "--as-group=devs")).stdout.splitlines()
    assert [line.split() for line in table] == [["ATTRIBUTE", "VALUE"], ["Username", "alice"],
                                               ["Groups", "[devs", "system:authenticated]"]]
    sa = json.loads((await run(cp, "auth", "whoami", "-o", "json",
                               "--as=system:serviceaccount:a:builder")).stdout)["status"]["userInfo"]
    assert sa == {"username": "system:serviceaccount:a:builder",
                  "groups": ["system:serviceaccounts", "system:serviceaccounts:a", "system:authenticated"]}


SAR_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
LSAR_PATH = "/apis/authorization.k8s.io/v1/namespaces/a/localsubjectaccessreviews"


async def test_review_objects_and_discovery(control_plane, tmp_path):
    """Posted raw: ``kubectl create -f`` would first validate client-side against /openapi/v2 in
    protobuf, which vkube does not serve (a separate gap, not the reviews')."""
    cp = control_plane
    await setup_view_in_a(cp)
    resources = (await run(cp, "api-resources", "--api-group=authorization.k8s.io", "-o", "name")).stdout.split()
    assert sorted(resources) == sorted([
        "localsubjectaccessreviews.authorization.k8s.io", "selfsubjectaccessreviews.authorization.k8s.io",
        "selfsubjectrulesreviews.authorization.k8s.io", "subjectaccessreviews.authorization.k8s.io"])
    assert "selfsubjectreviews.authentication.k8s.io" in (await run(
        cp, "api-resources", "--api-group=authentication.k8s.io", "-o", "name")).stdout
    sar = {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
           "spec": {"user": "alice", "resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "a"}}}
    got = json.loads((await run(cp, "create", "--raw", SAR_PATH, "-f", "-", input=json.dumps(sar))).stdout)
    assert got["status"] == {"allowed": True, "reason": 'RBAC: allowed by RoleBinding "alice-view/a" of ClusterRole "view" to User "alice"'}
    sar["spec"]["resourceAttributes"]["namespace"] = "b"
    got = json.loads((await run(cp, "create", "--raw", SAR_PATH, "-f", "-", input=json.dumps(sar))).stdout)
    assert got["status"] == {"allowed": False}
    # asking about others needs create on subjectaccessreviews: alice lacks it
    err = await denied(cp, "create", "--raw", SAR_PATH, "-f", "-", *ALICE, input=json.dumps(sar))
    assert 'cannot create resource "subjectaccessreviews" in API group "authorization.k8s.io" at the cluster scope' in err
    # a review that asks nothing, or about nobody, is Invalid
    bad = await run(cp, "create", "--raw", SAR_PATH, "-f", "-", input=json.dumps({**sar, "spec": {"user": "alice"}}),
                    check=False)
    assert bad.returncode != 0 and "exactly one of nonResourceAttributes or resourceAttributes must be specified" in bad.stderr
    bad = await run(cp, "create", "--raw", SAR_PATH, "-f", "-", check=False, input=json.dumps(
        {**sar, "spec": {"resourceAttributes": {"verb": "get", "resource": "pods"}}}))
    assert bad.returncode != 0 and "at least one of user or group must be specified" in bad.stderr
    # a LocalSubjectAccessReview must ask about its own namespace
    lsar = {"apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
            "metadata": {"namespace": "a"},
            "spec": {"user": "alice", "resourceAttributes": {"verb": "list", "resource": "configmaps", "namespace": "a"}}}
    got = json.loads((await run(cp, "create", "--raw", LSAR_PATH, "-f", "-", input=json.dumps(lsar))).stdout)
    assert got["status"]["allowed"] is True
    lsar["spec"]["resourceAttributes"]["namespace"] = "b"
    bad = await run(cp, "create", "--raw", LSAR_PATH, "-f", "-", input=json.dumps(lsar), check=False)
    assert bad.returncode != 0 and "spec.resourceAttributes.namespace must match namespace: a" in bad.stderr
    # reviews are answered, never stored: there is nothing to get
    assert (await run(cp, "get", "subjectaccessreviews", check=False)).returncode != 0


@pytest.fixture
def api(control_plane):
    """The official client on the control plane's kubeconfig (default headers per test)."""
    configuration = k8s.Configuration()
    k8s_config.load_kube_config(config_file=str(control_plane.kubeconfig), client_configuration=configuration)
    api_client = k8s.ApiClient(configuration)
    yield api_client
    api_client.close()


def _whoami(api_client: k8s.ApiClient) -> dict:
    review = k8s.AuthenticationV1Api(api_client).create_self_subject_review(
        k8s.V1SelfSubjectReview(api_version="authentication.k8s.io/v1", kind="SelfSubjectReview"))
    return review.status.user_info.to_dict()


async def test_impersonation_headers(control_plane, api):
    cp = control_plane
    await setup_view_in_a(cp)
    api.set_default_header("Impersonate-User", "bob")
    api.set_default_header("Impersonate-Group", "devs")
    api.set_default_header("Impersonate-Uid", "u-1")
    api.set_default_header("Impersonate-Extra-Scopes", "view")
    info = await asyncio.to_thread(_whoami, api)
    assert info["username"] == "bob" and info["uid"] == "u-1"
    assert info["groups"] == ["devs", "system:authenticated"] and info["extra"] == {"scopes": ["view"]}
    # a group without a user is a BadRequest naming what was asked
    for header in ("Impersonate-User", "Impersonate-Uid", "Impersonate-Extra-Scopes"):
        api.default_headers.pop(header)
    with pytest.raises(k8s.ApiException) as exc:
        await asyncio.to_thread(_whoami, api)
    assert exc.value.status == 400
    assert json.loads(exc.value.body)["message"] == (
        "requested [{Group  devs    }] without impersonating a user")


async def test_impersonation_needs_the_impersonate_verb(control_plane):
    """Impersonation is authorized as the *requester*: alice (view in a) may not act as anyone
    until a role grants ``impersonate``. Until authentication gives non-admin credentials
    (helper "authn"), the requester alice is set on the request context the server builds."""
    from vkube.api.errors import Forbidden
    from vkube.api.user import UserInfo
    from vkube.apiserver.requestinfo import parse
    from vkube.apiserver.request import RequestContext

    cp = control_plane
    await setup_view_in_a(cp)
    authz = cp.cp.server.authorization
    alice = UserInfo("alice", groups=("system:authenticated",))
    rc = RequestContext(user=alice, info=parse("GET", "/api/v1/namespaces/a/configmaps"), audit_id="t")
    assert authz.check(rc, []).user == alice
    for headers, text in (
            ([("Impersonate-User", "bob")],
             'users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the cluster scope'),
            ([("Impersonate-User", "system:serviceaccount:a:default")],
             'serviceaccounts "default" is forbidden: User "alice" cannot impersonate resource "serviceaccounts" '
             'in API group "" in the namespace "a"'),
            # even naming oneself needs the verb, as upstream's filter checks every piece
            ([("Impersonate-User", "alice"), ("Impersonate-Group", "system:masters")],
             'users "alice" is forbidden: User "alice" cannot impersonate resource "users" in API group "" '
             'at the cluster scope')):
        with pytest.raises(Forbidden) as exc:
            authz.check(rc, headers)
        assert exc.value.message == text
    # grant impersonation of bob only: bob then is who the request runs as, and bob has no rights
    await run(cp, "create", "clusterrole", "be-bob", "--verb=impersonate", "--resource=users", "--resource-name=bob")
    await run(cp, "create", "clusterrolebinding", "alice-be-bob", "--clusterrole=be-bob", "--user=alice")
    with pytest.raises(Forbidden) as exc:
        authz.check(rc, [("Impersonate-User", "bob")])
    assert exc.value.message == ('configmaps is forbidden: User "bob" cannot list resource "configmaps" in API '
                                 'group "" in the namespace "a"')
    with pytest.raises(Forbidden):
        authz.check(rc, [("Impersonate-User", "carol")])
    with pytest.raises(Forbidden) as exc:  # bob yes, but not bob in system:masters
        authz.check(rc, [("Impersonate-User", "bob"), ("Impersonate-Group", "system:masters")])
    assert exc.value.message.startswith('groups "system:masters" is forbidden: User "alice" cannot impersonate')
