"""Escalation prevention through kubectl (Kubernetes' ``policybased`` RBAC storages): a user may
create or change a role or binding only within what it already holds, unless granted ``escalate``
(roles) or ``bind`` (bindings); refusals carry kube-apiserver's text and store nothing."""

from __future__ import annotations

from tests.authz.test_rbac_kubectl import denied, run

ALICE = ("--as=alice",)
HELD = 'user "alice" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not currently held:'


async def admin_in_a(cp) -> None:
    await run(cp, "create", "ns", "a")
    await run(cp, "create", "rolebinding", "alice-admin", "-n", "a", "--clusterrole=admin", "--user=alice")


async def test_roles_within_what_one_holds(control_plane):
    cp = control_plane
    await admin_in_a(cp)
    # inside admin's rules: allowed
    await run(cp, "create", "role", "pod-reader", "-n", "a", "--verb=get,list", "--resource=pods", *ALICE)
    # nodes, and a verb admin lacks: refused with the missing rules, compacted and sorted
    err = await denied(cp, "create", "role", "too-much", "-n", "a", "--verb=get,list",
                       "--resource=nodes,pods,persistentvolumes", *ALICE)
    assert err == ('Error from server (Forbidden): roles.rbac.authorization.k8s.io "too-much" is forbidden: '
                   f'{HELD}\n'
                   '{APIGroups:[""], Resources:["nodes"], Verbs:["get" "list"]}\n'
                   '{APIGroups:[""], Resources:["persistentvolumes"], Verbs:["get" "list"]}'), err
    # updating an allowed role to grant more is refused too, and the stored role is unchanged
    before = (await run(cp, "get", "role", "pod-reader", "-n", "a", "-o", "json")).stdout
    err = await denied(cp, "patch", "role", "pod-reader", "-n", "a", "--type=json", "-p",
                       '[{"op":"add","path":"/rules/-","value":{"apiGroups":[""],"resources":["secrets"],'
                       '"verbs":["deletecollection","escalate"]}}]', *ALICE)
    assert err.endswith(HELD + '\n{APIGroups:[""], Resources:["secrets"], Verbs:["escalate"]}'), err
    assert (await run(cp, "get", "role", "pod-reader", "-n", "a", "-o", "json")).stdout == before
    assert (await run(cp, "get", "role", "too-much", "-n", "a", check=False)).returncode != 0
    # ... until alice may escalate roles in a
    await run(cp, "create", "role", "escalator", "-n", "a", "--verb=escalate", "--resource=roles")
    await run(cp, "create", "rolebinding", "alice-escalate", "-n", "a", "--role=escalator", "--user=alice")
    await run(cp, "create", "role", "too-much", "-n", "a", "--verb=get", "--resource=nodes", *ALICE)
    # a cluster role needs cluster-wide rights: admin in a is not enough
    err = await denied(cp, "create", "clusterrole", "mine", "--verb=get", "--resource=pods", *ALICE)
    assert 'cannot create resource "clusterroles"' in err


async def test_bindings_need_bind_or_the_roles_rules(control_plane):
    cp = control_plane
    await admin_in_a(cp)
    # binding view (covered by admin in a) to someone else: allowed
    await run(cp, "create", "rolebinding", "bob-view", "-n", "a", "--clusterrole=view", "--user=bob", *ALICE)
    # binding cluster-admin: alice does not hold it
    err = await denied(cp, "create", "rolebinding", "root", "-n", "a", "--clusterrole=cluster-admin",
                       "--user=alice", *ALICE)
    assert 'rolebindings.rbac.authorization.k8s.io "root" is forbidden: ' + HELD in err, err
    assert "{NonResourceURLs:[\"*\"], Verbs:[\"*\"]}" in err or '{APIGroups:["*"]' in err, err
    assert (await run(cp, "get", "rolebinding", "root", "-n", "a", check=False)).returncode != 0
    # with bind on that one cluster role, in a: allowed there, still refused elsewhere
    await run(cp, "create", "role", "binder", "-n", "a", "--verb=bind", "--resource=clusterroles",
              "--resource-name=cluster-admin")
    await run(cp, "create", "rolebinding", "alice-binder", "-n", "a", "--role=binder", "--user=alice")
    await run(cp, "create", "rolebinding", "root", "-n", "a", "--clusterrole=cluster-admin", "--user=bob", *ALICE)
    await run(cp, "create", "ns", "b")
    err = await denied(cp, "create", "rolebinding", "root", "-n", "b", "--clusterrole=cluster-admin",
                       "--user=bob", *ALICE)
    assert 'rolebindings.rbac.authorization.k8s.io is forbidden: User "alice" cannot create resource' in err
    # a binding to a role that does not exist cannot be checked: NotFound, nothing stored
    err = (await run(cp, "create", "rolebinding", "ghost", "-n", "a", "--role=nope", "--user=bob", *ALICE,
                     check=False)).stderr
    assert 'roles.rbac.authorization.k8s.io "nope" not found' in err, err


async def test_aggregation_rule_needs_cluster_admin(control_plane, tmp_path):
    cp = control_plane
    await run(cp, "create", "clusterrolebinding", "alice-rbac", "--clusterrole=rbac-writer", "--user=alice")
    await run(cp, "create", "clusterrole", "rbac-writer", "--verb=create,get,update",
              "--resource=clusterroles.rbac.authorization.k8s.io")  # no escalate: that would bypass the check
    manifest = tmp_path / "agg.yaml"
    manifest.write_text("apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: agg}\n"
                        "aggregationRule:\n  clusterRoleSelectors: [{matchLabels: {team: ops}}]\nrules: []\n")
    err = await denied(cp, "create", "-f", str(manifest), *ALICE)
    assert 'clusterroles.rbac.authorization.k8s.io "agg" is forbidden: must have cluster-admin privileges to use the aggregationRule' in err
    await run(cp, "create", "-f", str(manifest))  # the admin may
