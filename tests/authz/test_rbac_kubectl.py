"""Issue 12 (authorization), through the real kubectl against a real control plane: a user with
only ``view`` in namespace ``a`` reads there and nowhere else, writes nowhere, reaches no
streaming subresource it lacks; denials are kube-apiserver's 403 text and leave the store as it
was. Other users are driven through impersonation (``--as``), as on a real cluster."""

from __future__ import annotations

import asyncio
import json

from tests.conftest import RunningControlPlane

VIEW_A = ("--as=alice",)


async def run(cp: RunningControlPlane, *args: str, input: str | None = None, check: bool = True):
    return await asyncio.to_thread(cp.kubectl, *args, input=input, check=check)


async def denied(cp: RunningControlPlane, *args: str, input: str | None = None) -> str:
    proc = await run(cp, *args, input=input, check=False)
    assert proc.returncode != 0, f"kubectl {' '.join(args)} was allowed:\n{proc.stdout}"
    assert "Forbidden" in proc.stderr or "forbidden" in proc.stderr, proc.stderr
    return proc.stderr.strip()


async def setup_view_in_a(cp: RunningControlPlane) -> None:
    for ns in ("a", "b"):
        await run(cp, "create", "ns", ns)
        await run(cp, "create", "configmap", "cfg", "-n", ns, f"--from-literal=secret-value=value-of-{ns}")
        await run(cp, "run", "p", "-n", ns, "--image=nginx")
    await run(cp, "create", "rolebinding", "alice-view", "-n", "a", "--clusterrole=view", "--user=alice")


def rv(cp_out: str) -> str:
    return json.loads(cp_out)["metadata"]["resourceVersion"]


async def test_view_in_a_reads_a_only(control_plane):
    cp = control_plane
    await setup_view_in_a(cp)
    got = json.loads((await run(cp, "get", "cm", "cfg", "-n", "a", "-o", "json", *VIEW_A)).stdout)
    assert got["data"] == {"secret-value": "value-of-a"}
    assert "cfg" in (await run(cp, "get", "cm", "-n", "a", *VIEW_A)).stdout
    assert "p" in (await run(cp, "get", "pods", "-n", "a", *VIEW_A)).stdout
    assert (await denied(cp, "get", "cm", "-n", "b", *VIEW_A)) == (
        'Error from server (Forbidden): configmaps is forbidden: User "alice" cannot list resource '
        '"configmaps" in API group "" in the namespace "b"')
    named = await denied(cp, "get", "cm", "cfg", "-n", "b", "-o", "json", *VIEW_A)
    assert named == ('Error from server (Forbidden): configmaps "cfg" is forbidden: User "alice" cannot get '
                     'resource "configmaps" in API group "" in the namespace "b"')
    assert "value-of-b" not in named
    assert (await denied(cp, "get", "pods", "-A", *VIEW_A)).endswith(
        'pods is forbidden: User "alice" cannot list resource "pods" in API group "" at the cluster scope')
    # view holds no secrets, no cluster-scoped reads
    assert 'cannot list resource "secrets"' in await denied(cp, "get", "secrets", "-n", "a", *VIEW_A)
    assert 'cannot list resource "nodes" in API group "" at the cluster scope' in await denied(
        cp, "get", "nodes", *VIEW_A)
    assert 'cannot list resource "namespaces"' in await denied(cp, "get", "ns", *VIEW_A)
    # a field selector naming one object is still a list of another namespace
    assert 'cannot list resource "configmaps"' in await denied(
        cp, "get", "cm", "-n", "b", "--field-selector=metadata.name=cfg", *VIEW_A)


async def test_watch_everywhere_but_a_is_forbidden(control_plane):
    cp = control_plane
    await setup_view_in_a(cp)
    for path, where in (("/api/v1/namespaces/b/configmaps?watch=1", 'in the namespace "b"'),
                        ("/api/v1/configmaps?watch=true", "at the cluster scope"),
                        ("/api/v1/watch/namespaces/b/configmaps", 'in the namespace "b"'),
                        ("/api/v1/watch/pods", "at the cluster scope")):
        err = await denied(cp, "get", "--raw", path, *VIEW_A)
        assert f'User "alice" cannot watch resource' in err and where in err, (path, err)
    proc = await run(cp, "get", "cm", "-n", "b", "--watch", "--request-timeout=20s", *VIEW_A, check=False)
    assert proc.returncode != 0 and 'cannot list resource "configmaps"' in proc.stderr
    # a watch in a is allowed: it opens and the first event is the existing configmap
    proc = await run(cp, "get", "--raw", "/api/v1/namespaces/a/configmaps?watch=1&timeoutSeconds=1",
                     *VIEW_A)
    assert '"type":"ADDED"' in proc.stdout and "value-of-a" in proc.stdout


async def test_every_write_is_forbidden_and_the_store_unchanged(control_plane, tmp_path):
    cp = control_plane
    await setup_view_in_a(cp)
    await run(cp, "create", "deployment", "d", "-n", "a", "--image=nginx")
    before = {ns: (await run(cp, "get", "cm", "cfg", "-n", ns, "-o", "json")).stdout for ns in ("a", "b")}
    manifest = tmp_path / "cm.json"
    manifest.write_text(json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                                    "metadata": {"name": "cfg", "namespace": "a"}, "data": {"x": "y"}}))
    cases = [
        (("create", "cm", "new", "-n", "a", "--from-literal=k=v"), "create", "configmaps"),
        (("delete", "cm", "cfg", "-n", "a"), "delete", "configmaps"),
        (("patch", "cm", "cfg", "-n", "a", "-p", '{"data":{"k":"v"}}'), "patch", "configmaps"),
        (("label", "cm", "cfg", "-n", "a", "x=y"), "patch", "configmaps"),
        (("replace", "-f", str(manifest)), "update", "configmaps"),
        (("apply", "--server-side", "-f", str(manifest)), "patch", "configmaps"),
        (("delete", "--raw", "/api/v1/namespaces/a/configmaps"), "deletecollection", "configmaps"),
        (("delete", "--raw", "/api/v1/namespaces/b/configmaps"), "deletecollection", "configmaps"),
        (("delete", "cm", "cfg", "-n", "b"), "delete", "configmaps"),
        (("scale", "--replicas=0", "deploy/d", "-n", "a"), "patch", "deployments/scale"),
        (("create", "ns", "c"), "create", "namespaces"),
        (("delete", "ns", "b"), "delete", "namespaces"),
        (("create", "rolebinding", "mine", "-n", "a", "--clusterrole=admin", "--user=alice"), "create",
         "rolebindings"),
    ]
    for args, verb, resource in cases:
        err = await denied(cp, *args, *VIEW_A)
        assert f'User "alice" cannot {verb} resource "{resource}"' in err, (args, err)
    after = {ns: (await run(cp, "get", "cm", "cfg", "-n", ns, "-o", "json")).stdout for ns in ("a", "b")}
    assert after == before
    assert "new" not in (await run(cp, "get", "cm", "-n", "a", "-o", "name")).stdout
    assert (await run(cp, "get", "ns", "c", check=False)).returncode != 0


async def test_subresources_need_their_own_rules(control_plane):
    cp = control_plane
    await setup_view_in_a(cp)
    # pods/log is in view: authorization passes in a (the pod has no kubelet here), not in b
    assert await denied(cp, "get", "--raw", "/api/v1/namespaces/b/pods/p/log", *VIEW_A) == (
        'Error from server (Forbidden): pods "p" is forbidden: User "alice" cannot get resource "pods/log" '
        'in API group "" in the namespace "b"')
    own = await run(cp, "get", "--raw", "/api/v1/namespaces/a/pods/p/log", *VIEW_A, check=False)
    assert "forbidden" not in own.stderr.lower(), own.stderr
    # exec/attach/portforward need create on the subresource, which view never grants
    err = await denied(cp, "exec", "p", "-n", "a", *VIEW_A, "--", "ls")
    assert 'pods "p" is forbidden: User "alice" cannot' in err and 'resource "pods/exec" in API group "" in the namespace "a"' in err
    for sub in ("exec", "attach", "portforward"):
        err = await denied(cp, "create", "--raw", f"/api/v1/namespaces/a/pods/p/{sub}", "-f", "-", *VIEW_A,
                           input="{}")
        assert f'cannot create resource "pods/{sub}" in API group "" in the namespace "a"' in err, err
        err = await denied(cp, "get", "--raw", f"/api/v1/namespaces/a/pods/p/{sub}?command=ls", *VIEW_A)
        assert f'resource "pods/{sub}"' in err, err
    # status and eviction are separate resources too
    err = await denied(cp, "create", "--raw", "/api/v1/namespaces/a/pods/p/eviction", "-f", "-", *VIEW_A,
                       input='{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"p"}}')
    assert 'cannot create resource "pods/eviction"' in err
    assert (await run(cp, "get", "pod", "p", "-n", "a", "-o", "name")).stdout.strip() == "pod/p"


async def test_grants_and_revocations_apply_at_once(control_plane):
    cp = control_plane
    await run(cp, "create", "ns", "a")
    await denied(cp, "get", "cm", "-n", "a", *VIEW_A)
    await run(cp, "create", "role", "cm-reader", "-n", "a", "--verb=get,list", "--resource=configmaps",
              "--resource-name=only")
    await run(cp, "create", "rolebinding", "r", "-n", "a", "--role=cm-reader", "--user=alice")
    await run(cp, "create", "cm", "only", "-n", "a")
    await run(cp, "create", "cm", "other", "-n", "a")
    # resourceNames: the named object only, and never a list of the collection
    assert (await run(cp, "get", "cm", "only", "-n", "a", "-o", "name", *VIEW_A)).stdout.strip() == "configmap/only"
    assert 'configmaps "other" is forbidden' in await denied(cp, "get", "cm", "other", "-n", "a", *VIEW_A)
    assert "cannot list resource" in await denied(cp, "get", "cm", "-n", "a", *VIEW_A)
    # group bindings count; deleting the binding takes the right away
    await run(cp, "create", "clusterrolebinding", "devs-view", "--clusterrole=view", "--group=devs")
    assert (await run(cp, "get", "cm", "-A", "-o", "name", "--as=carol", "--as-group=devs")).returncode == 0
    await run(cp, "delete", "rolebinding", "r", "-n", "a")
    assert 'configmaps "only" is forbidden' in await denied(cp, "get", "cm", "only", "-n", "a", *VIEW_A)
    await run(cp, "delete", "clusterrolebinding", "devs-view")
    await denied(cp, "get", "cm", "-A", "--as=carol", "--as-group=devs")
    # a binding to a missing role: the reason names it, as upstream does
    await run(cp, "create", "rolebinding", "ghost", "-n", "a", "--role=missing", "--user=alice")
    assert (await denied(cp, "get", "cm", "-n", "a", *VIEW_A)).endswith(
        'in the namespace "a": RBAC: role.rbac.authorization.k8s.io "missing" not found')


async def test_non_resource_urls(control_plane):
    cp = control_plane
    assert (await run(cp, "get", "--raw", "/healthz", *VIEW_A)).stdout == "ok"
    assert (await run(cp, "get", "--raw", "/version", *VIEW_A)).returncode == 0
    assert (await run(cp, "api-resources", "--api-group=apps", *VIEW_A)).returncode == 0
    assert (await denied(cp, "get", "--raw", "/metrics", *VIEW_A)) == (
        'Error from server (Forbidden): forbidden: User "alice" cannot get path "/metrics"')
    await run(cp, "create", "clusterrole", "metrics", "--verb=get", "--non-resource-url=/metrics")
    await run(cp, "create", "clusterrolebinding", "alice-metrics", "--clusterrole=metrics", "--user=alice")
    assert "apiserver_request_total" in (await run(cp, "get", "--raw", "/metrics", *VIEW_A)).stdout
