"""OpenAPI documents: structure, caching by hash, CRD schemas, and the real kubectl reading them."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from vkube.api.kinds import Registry, ResourceSpec, ScaleSpec
from vkube.api.openapi import OpenAPI

KUBECTL = Path(__file__).resolve().parents[2] / ".venv" / "bin" / "kubectl"


def make_registry() -> Registry:
    reg = Registry()
    reg.add(ResourceSpec("", "v1", "Pod", "pods", "pod", True, short_names=("po",), status_subresource=True))
    reg.add(ResourceSpec("", "v1", "ConfigMap", "configmaps", "configmap", True, short_names=("cm",)))
    reg.add(ResourceSpec("", "v1", "Namespace", "namespaces", "namespace", False, short_names=("ns",)))
    reg.add(ResourceSpec("apps", "v1", "Deployment", "deployments", "deployment", True,
                         short_names=("deploy",), status_subresource=True, scale=ScaleSpec()))
    return reg


def test_index_lists_group_versions_with_hash() -> None:
    api = OpenAPI(make_registry())
    index = api.v3_index()["paths"]
    assert set(index) == {"api/v1", "apis/apps/v1"}
    url = index["apis/apps/v1"]["serverRelativeURL"]
    assert url == f"/openapi/v3/apis/apps/v1?hash={api.etag('apis/apps/v1')}"
    assert api.v3_document("apis/batch/v1") is None


def test_document_has_kind_schemas_and_patch_operations() -> None:
    api = OpenAPI(make_registry())
    doc = api.v3_document("apis/apps/v1")
    assert doc["openapi"].startswith("3.")
    schemas = doc["components"]["schemas"]
    dep = schemas["io.k8s.api.apps.v1.Deployment"]
    assert dep["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert dep["properties"]["apiVersion"]["type"] == "string"  # nullable list collapsed
    assert schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"]["x-kubernetes-int-or-string"] is True
    assert "io.k8s.api.core.v1.PodSpec" in schemas  # reachable definitions are included
    item = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]
    patch = item["patch"]
    assert patch["x-kubernetes-action"] == "patch"
    assert patch["x-kubernetes-group-version-kind"]["kind"] == "Deployment"
    assert "application/strategic-merge-patch+json" in patch["requestBody"]["content"]
    assert "application/apply-patch+yaml" in patch["requestBody"]["content"]
    assert "fieldValidation" in {p["name"] for p in patch["parameters"]}
    scale = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["put"]["x-kubernetes-group-version-kind"]["kind"] == "Scale"
    assert "io.k8s.api.autoscaling.v1.Scale" in schemas
    # every $ref points into the document
    refs: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    assert refs and all(r.removeprefix("#/components/schemas/") in schemas for r in refs)


def test_v2_document_uses_definitions() -> None:
    doc = OpenAPI(make_registry()).v2_document()
    assert doc["swagger"] == "2.0"
    spec = doc["definitions"]["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"]
    assert spec["$ref"] == "#/definitions/io.k8s.api.apps.v1.DeploymentSpec"
    assert "/api/v1/namespaces/{namespace}/pods/{name}" in doc["paths"]


def test_crd_schema_added_and_hash_changes() -> None:
    reg = make_registry()
    api = OpenAPI(reg)
    reg.add(ResourceSpec("stable.example.com", "v1", "CronTab", "crontabs", "crontab", True))
    api.add_schema("stable.example.com", "v1", "CronTab", {
        "type": "object",
        "properties": {"spec": {"type": "object", "properties": {"cronSpec": {"type": "string"}}}},
    })
    doc = api.v3_document("apis/stable.example.com/v1")
    schema = doc["components"]["schemas"]["com.example.stable.v1.CronTab"]
    assert schema["properties"]["spec"]["properties"]["cronSpec"]["type"] == "string"
    assert "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta" in doc["components"]["schemas"]
    resolved = api.schema_for("stable.example.com", "v1", "CronTab")
    assert "labels" in resolved["properties"]["metadata"]["properties"]
    before = api.etag("apis/stable.example.com/v1")
    api.add_schema("stable.example.com", "v1", "CronTab", {"type": "object", "properties": {}})
    assert api.etag("apis/stable.example.com/v1") != before


def test_schema_for_builtin_is_resolved() -> None:
    api = OpenAPI(make_registry())
    pod = api.schema_for("", "v1", "Pod")
    containers = pod["properties"]["spec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["items"]["properties"]["ports"]["x-kubernetes-list-map-keys"] == ["containerPort", "protocol"]
    assert api.schema_for("", "v1", "Nope") is None


# -- the real kubectl -----------------------------------------------------------------------

def _discovery_app(reg: Registry, api: OpenAPI) -> web.Application:
    def resource_list(group: str, version: str) -> dict:
        resources = []
        for spec in reg.all():
            if (spec.group, spec.version) != (group, version):
                continue
            resources.append({"name": spec.plural, "singularName": spec.singular, "namespaced": spec.namespaced,
                              "kind": spec.kind, "verbs": list(spec.verbs), "shortNames": list(spec.short_names)})
            for sub in spec.subresources:
                resources.append({"name": f"{spec.plural}/{sub}", "singularName": "", "namespaced": spec.namespaced,
                                  "kind": spec.kind, "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": f"{group}/{version}" if group else version, "resources": resources}

    async def json(data: object) -> web.Response:
        return web.Response(body=orjson.dumps(data), content_type="application/json")

    async def version(_: web.Request) -> web.Response:
        return await json({"major": "1", "minor": "37", "gitVersion": "v1.37.1"})

    async def core(_: web.Request) -> web.Response:
        return await json({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})

    async def groups(_: web.Request) -> web.Response:
        out = []
        for group, versions in reg.groups().items():
            if group:
                gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
                out.append({"name": group, "versions": gvs, "preferredVersion": gvs[0]})
        return await json({"kind": "APIGroupList", "apiVersion": "v1", "groups": out})

    async def core_v1(_: web.Request) -> web.Response:
        return await json(resource_list("", "v1"))

    async def group_version(req: web.Request) -> web.Response:
        return await json(resource_list(req.match_info["group"], req.match_info["version"]))

    async def v3_index(_: web.Request) -> web.Response:
        return await json(api.v3_index())

    async def v3_doc(req: web.Request) -> web.Response:
        raw = api.v3_bytes(req.match_info["path"])
        if raw is None:
            raise web.HTTPNotFound()
        return web.Response(body=raw, content_type="application/json", headers={"Etag": f'"{api.etag(req.match_info["path"])}"'})

    app = web.Application()
    app.router.add_get("/version", version)
    app.router.add_get("/api", core)
    app.router.add_get("/apis", groups)
    app.router.add_get("/api/v1", core_v1)
    app.router.add_get("/apis/{group}/{version}", group_version)
    app.router.add_get("/openapi/v3", v3_index)
    app.router.add_get("/openapi/v3/{path:.*}", v3_doc)
    return app


@pytest.fixture
async def server(tmp_path: Path):
    reg = make_registry()
    api = OpenAPI(reg)
    reg.add(ResourceSpec("stable.example.com", "v1", "CronTab", "crontabs", "crontab", True, short_names=("ct",)))
    api.add_schema("stable.example.com", "v1", "CronTab", {
        "type": "object", "description": "A cron job of the example CRD.",
        "properties": {"spec": {"type": "object", "properties": {
            "cronSpec": {"type": "string", "description": "The schedule, in cron format."},
            "replicas": {"type": "integer"}}}},
    })
    runner = web.AppRunner(_discovery_app(reg, api))
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    port = sock.getsockname()[1]
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: t\n"
        f"clusters: [{{name: t, cluster: {{server: 'http://127.0.0.1:{port}'}}}}]\n"
        "users: [{name: t, user: {}}]\ncontexts: [{name: t, context: {cluster: t, user: t}}]\n"
    )
    yield cfg
    await runner.cleanup()


async def _kubectl(cfg: Path, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "KUBECONFIG": str(cfg), "HOME": str(cfg.parent)}
    proc = await asyncio.create_subprocess_exec(
        str(KUBECTL), *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_kubectl_explain_nested_field(server: Path) -> None:
    code, out, err = await _kubectl(server, "explain", "deployment.spec.strategy.rollingUpdate")
    assert code == 0, err
    assert "GROUP:      apps" in out and "KIND:       Deployment" in out
    assert "FIELD: rollingUpdate <RollingUpdateDeployment>" in out
    assert "maxSurge\t<IntOrString>" in out
    assert "maxUnavailable" in out


async def test_kubectl_explain_recursive(server: Path) -> None:
    code, out, err = await _kubectl(server, "explain", "pod.spec.containers", "--recursive")
    assert code == 0, err
    assert "FIELD: containers <[]Container>" in out
    for field in ("image\t<string>", "livenessProbe\t<Probe>", "containerPort\t<integer> -required-", "name\t<string> -required-"):
        assert field in out


async def test_kubectl_explain_custom_resource(server: Path) -> None:
    code, out, err = await _kubectl(server, "explain", "crontab.spec")
    assert code == 0, err
    assert "GROUP:      stable.example.com" in out
    assert "cronSpec\t<string>" in out and "The schedule, in cron format." in out
