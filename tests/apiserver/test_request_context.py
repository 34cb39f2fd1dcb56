"""The per-request context reaches every storage verb and admission with the attributes of the
request that caused it (through real HTTP and the real kubectl), and the audit ID round-trips
as kube-apiserver's ``Audit-Id`` header."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import aiohttp
import pytest

from vkube.apiserver.context import AdmissionRequest
from vkube.apiserver.request import RequestContext
from vkube.apiserver.storage import ResourceStorage

ADMIN = ("kubernetes-admin", ("system:masters", "system:authenticated"))
POD = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "x"}},
       "spec": {"containers": [{"name": "c", "image": "nginx"}]}}
DEPLOY = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
          "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                   "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}


class Seen:
    """Records what storage and admission were handed, keyed by the request's audit ID."""

    def __init__(self) -> None:
        self.storage: list[tuple[str, str, RequestContext]] = []
        self.admission: list[AdmissionRequest] = []

    async def admit(self, ctx: Any, req: AdmissionRequest) -> None:
        self.admission.append(req)

    def storage_calls(self, audit_id: str) -> list[tuple[str, str, RequestContext]]:
        return [c for c in self.storage if c[2].audit_id == audit_id]

    def admitted(self, audit_id: str) -> list[AdmissionRequest]:
        return [a for a in self.admission if a.request.audit_id == audit_id]


@pytest.fixture
def seen(control_plane, monkeypatch) -> Seen:
    rec = Seen()
    control_plane.cp.ctx.admission.append(rec)
    for verb in ("get", "get_or_none", "list", "watch", "watch_cursor", "create", "update", "update_with", "delete",
                 "delete_collection"):
        original = getattr(ResourceStorage, verb)

        def spy(self: ResourceStorage, rc: RequestContext, *args: Any, _verb: str = verb, _orig: Any = original,
                **kw: Any) -> Any:
            assert isinstance(rc, RequestContext), f"{_verb} was called without a RequestContext"
            rec.storage.append((_verb, self.spec.plural, rc))
            return _orig(self, rc, *args, **kw)

        monkeypatch.setattr(ResourceStorage, verb, spy)
    return rec


def attrs(rc: RequestContext) -> tuple:
    i = rc.info
    return (i.verb, i.group, i.resource, i.subresource, i.namespace, i.name)


async def call(session: aiohttp.ClientSession, url: str, method: str, path: str, *, body: Any = None,
               ctype: str = "application/json", params: dict | None = None) -> tuple[str, int, Any]:
    audit_id = f"test-{uuid.uuid4()}"
    data = json.dumps(body) if body is not None else None
    async with session.request(method, url + path, data=data, params=params,
                               headers={"Audit-ID": audit_id, "Content-Type": ctype,
                                        "User-Agent": "ctx-tester/1.0"}) as r:
        text = await r.text()
        assert r.headers.get("Audit-Id") == audit_id
        return audit_id, r.status, (json.loads(text) if text.strip().startswith("{") else text)


async def test_context_reaches_storage_and_admission_for_every_verb(control_plane, seen):
    base = control_plane.url
    ns = "/api/v1/namespaces/default"
    async with control_plane.session() as s:
        # create
        aid, code, _ = await call(s, base, "POST", f"{ns}/pods", body=POD)
        assert code == 201
        (verb, plural, rc), *_ = [c for c in seen.storage_calls(aid) if c[0] == "create"]
        assert (verb, plural) == ("create", "pods")
        assert attrs(rc) == ("create", "", "pods", "", "default", "")
        assert (rc.user.name, rc.user.groups) == ADMIN
        assert rc.field_manager == "ctx-tester" and rc.dry_run is False
        adm = [a for a in seen.admitted(aid) if a.spec.plural == "pods"]
        assert [(a.operation, a.namespace, a.name, a.user.name, a.dry_run) for a in adm] == [
            ("CREATE", "default", "p", "kubernetes-admin", False)]

        # get, list (one namespace and all), get by field selector name
        aid, code, _ = await call(s, base, "GET", f"{ns}/pods/p")
        assert code == 200 and [(v, attrs(rc)) for v, _, rc in seen.storage_calls(aid)] == [
            ("get", ("get", "", "pods", "", "default", "p"))]
        aid, code, _ = await call(s, base, "GET", f"{ns}/pods")
        assert [(v, attrs(rc)) for v, _, rc in seen.storage_calls(aid)] == [("list", ("list", "", "pods", "", "default", ""))]
        aid, code, _ = await call(s, base, "GET", "/api/v1/pods", params={"fieldSelector": "metadata.name=p"})
        assert code == 200
        assert [(v, attrs(rc)) for v, _, rc in seen.storage_calls(aid)] == [("list", ("list", "", "pods", "", "", "p"))]

        # watch (a bounded stream)
        aid, code, _ = await call(s, base, "GET", f"{ns}/pods", params={"watch": "1", "timeoutSeconds": "1"})
        assert code == 200
        verbs = [(v, attrs(rc)) for v, _, rc in seen.storage_calls(aid)]
        assert ("watch_cursor", ("watch", "", "pods", "", "default", "")) in verbs

        # update, then a dry-run merge patch with an explicit field manager
        aid, code, pod = await call(s, base, "GET", f"{ns}/pods/p")
        pod["metadata"]["labels"]["v"] = "2"
        aid, code, _ = await call(s, base, "PUT", f"{ns}/pods/p", body=pod)
        assert code == 200
        assert ("update", ("update", "", "pods", "", "default", "p")) in [(v, attrs(rc)) for v, _, rc in seen.storage_calls(aid)]
        assert [(a.operation, a.name, a.subresource) for a in seen.admitted(aid)] == [("UPDATE", "p", "")]
        aid, code, _ = await call(s, base, "PATCH", f"{ns}/pods/p", body={"metadata": {"labels": {"v": "3"}}},
                                  ctype="application/merge-patch+json",
                                  params={"dryRun": "All", "fieldManager": "mgr"})
        assert code == 200
        (verb, _, rc), = [c for c in seen.storage_calls(aid) if c[0] == "update_with"]
        assert attrs(rc) == ("patch", "", "pods", "", "default", "p") and rc.dry_run and rc.field_manager == "mgr"
        assert [(a.operation, a.dry_run) for a in seen.admitted(aid)] == [("UPDATE", True)]

        # the status subresource
        aid, code, pod = await call(s, base, "GET", f"{ns}/pods/p/status")
        assert [attrs(rc) for _, _, rc in seen.storage_calls(aid)] == [("get", "", "pods", "status", "default", "p")]
        pod["status"] = {"phase": "Running"}
        aid, code, _ = await call(s, base, "PUT", f"{ns}/pods/p/status", body=pod)
        assert code == 200
        assert [(a.operation, a.subresource) for a in seen.admitted(aid)] == [("UPDATE", "status")]

        # server-side apply: the manager is the query's
        aid, code, _ = await call(s, base, "PATCH", f"{ns}/configmaps/cm",
                                  body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"}, "data": {"a": "b"}},
                                  ctype="application/apply-patch+yaml", params={"fieldManager": "applier"})
        assert code == 201
        rcs = [rc for v, _, rc in seen.storage_calls(aid) if v in ("update_with", "create")]
        assert rcs and all(rc.field_manager == "applier" and rc.verb == "patch" for rc in rcs)
        assert [a.operation for a in seen.admitted(aid)] == ["CREATE"]

        # scale of a deployment
        aid, code, _ = await call(s, base, "POST", "/apis/apps/v1/namespaces/default/deployments", body=DEPLOY)
        assert code == 201
        aid, code, _ = await call(s, base, "GET", "/apis/apps/v1/namespaces/default/deployments/d/scale")
        assert [attrs(rc) for _, _, rc in seen.storage_calls(aid)] == [("get", "apps", "deployments", "scale", "default", "d")]
        aid, code, _ = await call(s, base, "PATCH", "/apis/apps/v1/namespaces/default/deployments/d/scale",
                                  body={"spec": {"replicas": 3}}, ctype="application/merge-patch+json")
        assert code == 200
        assert [(a.operation, a.spec.plural, a.request.info.subresource) for a in seen.admitted(aid)] == [
            ("UPDATE", "deployments", "scale")]

        # a namespace's own path: namespace == name, as upstream
        aid, code, _ = await call(s, base, "GET", "/api/v1/namespaces/default")
        assert [attrs(rc) for _, _, rc in seen.storage_calls(aid)] == [("get", "", "namespaces", "", "default", "default")]
        aid, code, _ = await call(s, base, "GET", "/api/v1/nodes")
        assert [attrs(rc) for _, _, rc in seen.storage_calls(aid)] == [("list", "", "nodes", "", "", "")]

        # eviction: the pod's delete carries the eviction request's context
        aid, code, _ = await call(s, base, "POST", f"{ns}/pods/p/eviction",
                                  body={"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "p"}})
        assert code == 201, _
        deletes = [(v, attrs(rc)) for v, plural, rc in seen.storage_calls(aid) if v == "delete"]
        assert deletes == [("delete", ("create", "", "pods", "eviction", "default", "p"))]
        assert [(a.operation, a.name, a.user.name) for a in seen.admitted(aid)] == [("DELETE", "p", "kubernetes-admin")]

        # delete and deletecollection
        await call(s, base, "POST", f"{ns}/configmaps", body={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c2"}})
        aid, code, _ = await call(s, base, "DELETE", f"{ns}/configmaps/c2")
        assert code == 200
        assert [(v, attrs(rc)) for v, _, rc in seen.storage_calls(aid) if v == "delete"] == [
            ("delete", ("delete", "", "configmaps", "", "default", "c2"))]
        aid, code, _ = await call(s, base, "DELETE", f"{ns}/configmaps", params={"dryRun": "All"})
        assert code == 200
        calls = seen.storage_calls(aid)
        assert {v for v, _, _ in calls} == {"delete_collection", "list", "get", "delete"}  # delete reads first
        assert all(attrs(rc) == ("deletecollection", "", "configmaps", "", "default", "") and rc.dry_run for _, _, rc in calls)
        assert [(a.operation, a.name, a.dry_run) for a in seen.admitted(aid)] == [("DELETE", "cm", True)]


async def test_audit_id_round_trips_on_every_kind_of_response(control_plane):
    async with control_plane.session() as s:
        for method, path, params in [("GET", "/version", None), ("GET", "/api/v1/namespaces/default/pods", None),
                                     ("GET", "/api/v1/namespaces/default/pods/missing", None),  # 404
                                     ("POST", "/api/v1/namespaces/default/pods", {"dryRun": "Some"}),  # 400
                                     ("GET", "/api/v1/pods", {"watch": "true", "timeoutSeconds": "1"}),  # a stream
                                     ("GET", "/healthz", None), ("GET", "/apis/nope/v1/things", None)]:
            sent = f"client-{uuid.uuid4()}"
            async with s.request(method, control_plane.url + path, params=params, data=b"{}" if method == "POST" else None,
                                 headers={"Audit-ID": sent}) as r:
                await r.read()
                assert r.headers["Audit-Id"] == sent, (method, path, r.status)
        ids = set()
        for _ in range(3):  # none sent: a fresh UUID each time
            async with s.get(control_plane.url + "/api/v1/namespaces") as r:
                ids.add(str(uuid.UUID(r.headers["Audit-Id"])))
        assert len(ids) == 3


async def test_kubectl_requests_carry_dry_run_manager_and_user(control_plane, seen):
    def kubectl(*args: str, input: str | None = None, check: bool = True) -> Any:
        return asyncio.to_thread(control_plane.kubectl, *args, input=input, check=check)

    manifest = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "k", "namespace": "default"},
                           "data": {"a": "1"}})
    await kubectl("create", "--dry-run=server", "-f", "-", input=manifest)
    creates = [a for a in seen.admission if a.spec.plural == "configmaps" and a.operation == "CREATE"]
    assert [(a.dry_run, a.user.name, a.request.field_manager, a.request.verb) for a in creates] == [
        (True, "kubernetes-admin", "kubectl-create", "create")]
    assert (await kubectl("get", "configmap", "k", check=False)).returncode != 0  # nothing was stored
    await kubectl("apply", "--server-side", "-f", "-", input=manifest)
    applied = [a for a in seen.admission if a.spec.plural == "configmaps" and not a.dry_run]
    assert [(a.operation, a.request.field_manager, a.request.info.name) for a in applied] == [("CREATE", "kubectl", "k")]


async def test_discovery_paths_are_not_resource_requests(control_plane):
    """/api/v1, /apis/apps and /apis/apps/v1 have too few segments to be resource requests;
    they are discovery documents. Empty segments and unserved resource paths are 404s."""
    async with control_plane.session() as s:
        for path, kind in [("/api/v1", "APIResourceList"), ("/apis/apps", "APIGroup"),
                           ("/apis/apps/v1", "APIResourceList"), ("/apis/apps/v1/", "APIResourceList")]:
            async with s.get(control_plane.url + path) as r:
                assert r.status == 200 and (await r.json())["kind"] == kind, path
        for path in ["/apis//v1", "/api/v1/namespaces//pods", "/api/v1/pods/x", "/api/v1/namespaces/default/nodes",
                     "/api/v1/namespaces/default/namespaces/default", "/api/v1/namespaces/default/pods/p/log/extra",
                     "/api/v1/proxy/namespaces/default/pods/p", "/api/v1/watch", "/apis/apps/v1/nope"]:
            async with s.get(control_plane.url + path) as r:
                assert r.status == 404, (path, r.status, await r.text())


async def test_context_reaches_storage_for_kind_specific_subresources(control_plane, seen):
    """binding, namespaces/finalize and serviceaccounts/token: each storage call carries the
    subresource request's own attributes."""
    base = control_plane.url
    async with control_plane.session() as s:
        pod = {**POD, "metadata": {"name": "b"}}
        aid, code, _ = await call(s, base, "POST", "/api/v1/namespaces/default/pods", body=pod)
        assert code == 201
        aid, code, _ = await call(s, base, "POST", "/api/v1/namespaces/default/pods/b/binding",
                                  body={"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "b"},
                                        "target": {"kind": "Node", "name": "n1"}})
        assert code == 201
        assert {(v, attrs(rc)) for v, _, rc in seen.storage_calls(aid)} >= {
            ("update_with", ("create", "", "pods", "binding", "default", "b"))}
        assert [(a.operation, a.subresource, a.name) for a in seen.admitted(aid)] == [("UPDATE", "binding", "b")]

        aid, code, _ = await call(s, base, "POST", "/api/v1/namespaces", body={"apiVersion": "v1", "kind": "Namespace",
                                                                              "metadata": {"name": "fin"}})
        assert code == 201
        aid, code, _ = await call(s, base, "PUT", "/api/v1/namespaces/fin/finalize",
                                  body={"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "fin"},
                                        "spec": {"finalizers": ["example.com/x"]}})
        assert code == 200
        assert [(v, attrs(rc)) for v, _, rc in seen.storage_calls(aid) if v == "update_with"] == [
            ("update_with", ("update", "", "namespaces", "finalize", "fin", "fin"))]
        assert [(a.operation, a.subresource) for a in seen.admitted(aid)] == [("UPDATE", "finalize")]

        aid, code, _ = await call(s, base, "POST", "/api/v1/namespaces/default/serviceaccounts",
                                  body={"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa"}})
        aid, code, _ = await call(s, base, "POST", "/api/v1/namespaces/default/serviceaccounts/sa/token",
                                  body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}})
        assert code == 201
        assert [(v, attrs(rc)) for v, _, rc in seen.storage_calls(aid)] == [
            ("get", ("create", "", "serviceaccounts", "token", "default", "sa"))]



def test_user_info_shapes():
    """The admin every kubeconfig holder is until authentication lands, the server's own
    loopback user, and the authentication.k8s.io UserInfo shape they serialise to."""
    from vkube.apiserver.request import UserInfo, cluster_admin, internal_context

    assert cluster_admin().to_dict() == {"username": "kubernetes-admin",
                                         "groups": ["system:masters", "system:authenticated"]}
    rc = internal_context("create", resource="namespaces", version="v1", field_manager="vkube-apiserver")
    assert (rc.user.name, rc.info.verb, rc.info.resource, rc.field_manager, rc.dry_run) == (
        "system:apiserver", "create", "namespaces", "vkube-apiserver", False)
    assert str(uuid.UUID(rc.audit_id)) == rc.audit_id
    user = UserInfo("alice", uid="u1", groups=("g",), extra={"scopes": ("a", "b")})
    assert user.to_dict() == {"username": "alice", "uid": "u1", "groups": ["g"], "extra": {"scopes": ["a", "b"]}}
    assert rc.replace(dry_run=True).dry_run and not rc.dry_run  # frozen: replace derives a copy


def _official_client_scenario(url: str) -> tuple[Any, Any]:
    import kubernetes

    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(url), client_configuration=cfg)
    with kubernetes.client.ApiClient(cfg) as api:
        core = kubernetes.client.CoreV1Api(api)
        listed = core.list_namespaced_config_map_with_http_info("default", _headers={"Audit-ID": "python-client-1"})
        body = kubernetes.client.V1ConfigMap(metadata=kubernetes.client.V1ObjectMeta(name="py"), data={"k": "v"})
        created = core.create_namespaced_config_map_with_http_info("default", body, dry_run="All", field_manager="py-mgr")
        return listed, created


async def test_official_client_sees_audit_id_and_its_options_reach_admission(control_plane, seen):
    listed, created = await asyncio.to_thread(_official_client_scenario, control_plane.kubeconfig)
    _, _, headers = listed  # (data, status, headers): urllib3's case-insensitive headers
    assert headers["Audit-Id"] == "python-client-1"
    audit_id = created[2]["Audit-Id"]
    assert str(uuid.UUID(audit_id)) == audit_id
    assert [(a.operation, a.dry_run, a.request.field_manager, a.user.name) for a in seen.admitted(audit_id)
            if a.spec.plural == "configmaps"] == [("CREATE", True, "py-mgr", "kubernetes-admin")]
