"""Attacks and odd input against authorization: path traversal and odd encodings in paths and
names, cross-namespace objects in request bodies, selectors that try to narrow a forbidden list.
Each is refused (403, or 400/404 once authorized), nothing of namespace ``b`` leaks into an
answer, and the store is unchanged."""

from __future__ import annotations

import json

from tests.authz.test_rbac_kubectl import run, setup_view_in_a

ALICE = ("--as=alice",)
BOB = ("--as=bob",)  # edit in a


async def store_of_b(cp) -> str:
    return (await run(cp, "get", "cm,pods", "-n", "b", "-o", "json")).stdout


async def test_paths_and_encodings(control_plane):
    cp = control_plane
    await setup_view_in_a(cp)
    before = await store_of_b(cp)
    paths = [
        "/api/v1/namespaces/a/../b/configmaps",
        "/api/v1/namespaces/a/%2E%2E/b/configmaps",
        "/api/v1/namespaces/a%2F..%2Fb/configmaps",
        "/api/v1/namespaces/a/configmaps/..%2F..%2Fb%2Fconfigmaps%2Fcfg",
        "/api/v1/namespaces/b/configmaps/cfg%00",
        "/api/v1/namespaces/B/configmaps",
        "/api/v1/namespaces/b%20/configmaps",
        "/api/v1/namespaces//configmaps",
        "/api/v1/namespaces/b/configmaps?fieldSelector=metadata.namespace%3Da",
        "/api/v1/configmaps?fieldSelector=metadata.namespace%3Da",
        "/api/v1/configmaps?labelSelector=x",
        "/api/v1/watch/namespaces/b/configmaps/cfg",
        "/api/v1/namespaces/b/pods/p/log?container=../../etc/passwd",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/b/rolebindings",
    ]
    for path in paths:
        proc = await run(cp, "get", "--raw", path, *ALICE, check=False)
        assert proc.returncode != 0, (path, proc.stdout[:300])
        assert "value-of-b" not in proc.stdout + proc.stderr, path
        assert any(code in proc.stderr for code in ("(Forbidden)", "(NotFound)", "(BadRequest)")), (path, proc.stderr)
        assert "Traceback" not in proc.stderr and "InternalError" not in proc.stderr, (path, proc.stderr)
    # dot segments are resolved before routing and authorization: this is a's configmaps, which
    # alice may list, and nothing of b
    proc = await run(cp, "get", "--raw", "/api/v1/namespaces/b/secrets/../../a/configmaps", *ALICE)
    assert "value-of-a" in proc.stdout and "value-of-b" not in proc.stdout
    assert await store_of_b(cp) == before


async def test_bodies_that_aim_at_another_namespace(control_plane):
    cp = control_plane
    await setup_view_in_a(cp)
    await run(cp, "create", "rolebinding", "bob-edit", "-n", "a", "--clusterrole=edit", "--user=bob")
    before = await store_of_b(cp)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "planted", "namespace": "b"},
            "data": {"k": "v"}}
    proc = await run(cp, "create", "--raw", "/api/v1/namespaces/a/configmaps", "-f", "-", *BOB,
                     input=json.dumps(body), check=False)
    assert proc.returncode != 0 and "(BadRequest)" in proc.stderr, proc.stderr
    assert "does not match the namespace" in proc.stderr
    proc = await run(cp, "replace", "--raw", "/api/v1/namespaces/a/configmaps/cfg", "-f", "-", *BOB,
                     input=json.dumps({**body, "metadata": {"name": "cfg", "namespace": "b"}}), check=False)
    assert proc.returncode != 0 and "(BadRequest)" in proc.stderr, proc.stderr
    # edit in a is no right in b, whatever the verb
    for args in (("create", "cm", "planted", "-n", "b"), ("delete", "cm", "cfg", "-n", "b"),
                 ("label", "cm", "cfg", "-n", "b", "x=1"), ("delete", "pod", "p", "-n", "b")):
        proc = await run(cp, *args, *BOB, check=False)
        assert proc.returncode != 0 and 'User "bob" cannot' in proc.stderr and 'namespace "b"' in proc.stderr, (
            args, proc.stderr)
    await run(cp, "create", "cm", "mine", "-n", "a", *BOB)
    assert await store_of_b(cp) == before
    # bob may not grant himself more through a binding in a (edit holds no RBAC writes)
    proc = await run(cp, "create", "rolebinding", "more", "-n", "a", "--clusterrole=admin", "--user=bob", *BOB,
                     check=False)
    assert proc.returncode != 0 and 'User "bob" cannot create resource "rolebindings"' in proc.stderr


async def test_impersonation_header_abuse(control_plane):
    cp = control_plane
    await setup_view_in_a(cp)
    # alice cannot claim groups through kubectl either: she is impersonated by the admin, and
    # the admin's request for system:masters membership is what decides, not alice's
    proc = await run(cp, "get", "cm", "-n", "b", "--as=alice", "--as-group=system:authenticated", check=False)
    assert proc.returncode != 0 and "(Forbidden)" in proc.stderr and "value-of-b" not in proc.stdout
    # odd user names reach the forbidden text quoted as given, never interpreted
    for name in ('ali"ce', "system:serviceaccount:a:", "system:serviceaccount:../b:x", "alice\u202e"):
        proc = await run(cp, "get", "cm", "-n", "b", f"--as={name}", check=False)
        assert proc.returncode != 0 and "(Forbidden)" in proc.stderr, (name, proc.stderr)
        assert "value-of-b" not in proc.stdout + proc.stderr


async def test_impersonation_without_rights_over_the_wire(control_plane, tmp_path):
    """alice with her own client certificate (not the admin impersonating her): her
    Impersonate-User/-Group headers are refused with kube-apiserver's text until a ClusterRole
    grants `impersonate` on exactly that user; the store is unchanged."""
    import asyncio

    import yaml

    from tests.conftest import kubectl

    cp = control_plane
    await setup_view_in_a(cp)
    alice = tmp_path / "alice.kubeconfig"
    alice.write_text(yaml.safe_dump(cp.cp.pki.kubeconfig(cp.url, context="alice", user="alice", groups=())))

    async def as_alice(*args: str):
        return await asyncio.to_thread(kubectl, alice, *args, check=False)

    before = await store_of_b(cp)
    assert (await as_alice("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")).stdout == "alice"
    # `get --raw`: kubectl prints the Status message (its discovery step, like against
    # kube-apiserver, words any 403 there as "Forbidden: unknown")
    proc = await as_alice("get", "--raw", "/api/v1/namespaces/b/configmaps", "--as=bob")
    assert proc.returncode != 0
    assert ('users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" '
            'at the cluster scope') in proc.stderr, proc.stderr
    proc = await as_alice("get", "--raw", "/api/v1/namespaces/a/configmaps", "--as=alice",
                          "--as-group=system:masters")
    assert proc.returncode != 0
    # even as herself: the user is checked first, as upstream's impersonation filter does
    assert 'users "alice" is forbidden: User "alice" cannot impersonate resource "users"' in proc.stderr
    proc = await as_alice("create", "cm", "x", "-n", "b", "--as=system:admin")
    assert proc.returncode != 0 and 'users "system:admin" is forbidden' in proc.stderr
    # granted for bob only: bob works, carol does not
    await run(cp, "create", "clusterrole", "imp-bob", "--verb=impersonate", "--resource=users",
              "--resource-name=bob")
    await run(cp, "create", "clusterrolebinding", "alice-imp-bob", "--clusterrole=imp-bob", "--user=alice")

    async def granted():
        for _ in range(100):
            proc = await as_alice("auth", "whoami", "--as=bob", "-o", "jsonpath={.status.userInfo.username}")
            if proc.returncode == 0:
                return proc.stdout
            await asyncio.sleep(0.1)
        return proc.stderr

    assert await granted() == "bob"
    # bob, but not bob in system:masters: the group is checked on its own
    proc = await as_alice("get", "--raw", "/api/v1/namespaces/b/configmaps", "--as=bob",
                          "--as-group=system:masters")
    assert proc.returncode != 0
    assert 'groups "system:masters" is forbidden: User "alice" cannot impersonate resource "groups"' in proc.stderr
    proc = await as_alice("get", "--raw", "/api/v1/namespaces/a/configmaps", "--as=carol")
    assert proc.returncode != 0 and 'users "carol" is forbidden' in proc.stderr
    assert await store_of_b(cp) == before
