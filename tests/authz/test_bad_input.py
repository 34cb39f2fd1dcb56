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
