"""The authorizer snapshot: rebuilt from the store's watch after any RBAC change, reusing the
compiled rules of roles whose resourceVersion did not change."""

from __future__ import annotations

from vkube.api.rbac import Attributes, RBACAuthorizer
from vkube.api.user import UserInfo

ALICE = UserInfo("alice", groups=("system:authenticated",))


def role(rv: str, verbs: list[str]) -> dict:
    return {"kind": "Role", "metadata": {"name": "r", "namespace": "a", "resourceVersion": rv},
            "rules": [{"verbs": verbs, "apiGroups": [""], "resources": ["pods"]}]}


BINDING = {"kind": "RoleBinding", "metadata": {"name": "b", "namespace": "a"},
           "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "r"},
           "subjects": [{"kind": "User", "name": "alice"}]}


def test_compiled_rules_carry_over_by_resource_version():
    first = RBACAuthorizer(roles=[role("5", ["get"])], role_bindings=[BINDING])
    same = RBACAuthorizer(roles=[role("5", ["get"])], role_bindings=[BINDING], compiled=first.compiled)
    assert same.compiled[("Role", "a", "r", "5")] is first.compiled[("Role", "a", "r", "5")]
    changed = RBACAuthorizer(roles=[role("6", ["list"])], role_bindings=[BINDING], compiled=same.compiled)
    assert list(changed.compiled) == [("Role", "a", "r", "6")]  # the old version is pruned
    assert changed.authorize(ALICE, Attributes("list", namespace="a", resource="pods")).allowed
    assert not changed.authorize(ALICE, Attributes("get", namespace="a", resource="pods")).allowed


async def test_server_snapshot_follows_role_updates(control_plane):
    from tests.authz.test_rbac_kubectl import run

    cp = control_plane
    await run(cp, "create", "ns", "a")
    await run(cp, "create", "role", "r", "-n", "a", "--verb=get", "--resource=pods")
    await run(cp, "create", "rolebinding", "b", "-n", "a", "--role=r", "--user=alice")
    can = await run(cp, "auth", "can-i", "list", "pods", "-n", "a", "--as=alice", check=False)
    assert can.stdout.strip() == "no"
    await run(cp, "patch", "role", "r", "-n", "a", "--type=json",
              "-p", '[{"op":"add","path":"/rules/0/verbs/-","value":"list"}]')
    can = await run(cp, "auth", "can-i", "list", "pods", "-n", "a", "--as=alice", check=False)
    assert can.stdout.strip() == "yes"
    authorization = cp.cp.server.authorization
    builds = authorization.rebuilds
    for _ in range(3):  # no change, no rebuild
        await run(cp, "get", "pods", "-n", "a", "--as=alice")
    assert authorization.rebuilds == builds
    await run(cp, "delete", "role", "r", "-n", "a")
    can = await run(cp, "auth", "can-i", "get", "pods", "-n", "a", "--as=alice", check=False)
    assert can.stdout.strip() == 'no - RBAC: role.rbac.authorization.k8s.io "r" not found'
