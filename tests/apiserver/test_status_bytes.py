"""Error answers byte for byte as kube-apiserver writes them: Go's key order (kind, apiVersion,
metadata, status, message, reason, details, code), ``details.group`` absent for the core group,
``details.kind`` as Kubernetes puts it (the resource plural; the Kind for Invalid), causes whose
message leaves the path to ``field``, and the trailing newline of Go's JSON encoder."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import orjson
import pytest

from vkube.client.resources import CONFIGMAPS

CM = "/api/v1/namespaces/default/configmaps"
SUBDOMAIN = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
             "'-' or '.', and must start and end with an alphanumeric character (e.g. "
             "'example.com', regex used for validation is "
             "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')")


SSL: dict[str, object] = {}  # url → the admin's TLS context, set by the autouse fixture


@pytest.fixture(autouse=True)
def _admin_tls(control_plane):
    SSL[control_plane.url] = control_plane.ssl()
    yield
    SSL.pop(control_plane.url, None)


async def raw(url: str, method: str, path: str, body: object = None,
              content_type: str = "application/json") -> tuple[int, bytes]:
    data = body if isinstance(body, bytes) or body is None else orjson.dumps(body)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=SSL[url])) as s:
        async with s.request(method, url + path, data=data,
                             headers={"Content-Type": content_type}) as r:
            return r.status, await r.read()


def cm(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}}


def status(message: str, reason: str, code: int, details: str | None = None) -> bytes:
    """The expected body, spelled out as bytes (not built with our own encoder)."""
    d = f',"details":{details}' if details is not None else ""
    return (f'{{"kind":"Status","apiVersion":"v1","metadata":{{}},"status":"Failure",'
            f'"message":{json.dumps(message)},"reason":"{reason}"{d},"code":{code}}}\n').encode()


async def test_already_exists_is_byte_for_byte(control_plane):
    url = control_plane.url
    assert (await raw(url, "POST", CM, cm("dup")))[0] == 201
    code, body = await raw(url, "POST", CM, cm("dup"))
    assert code == 409
    assert body == (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure",'
                    b'"message":"configmaps \\"dup\\" already exists","reason":"AlreadyExists",'
                    b'"details":{"name":"dup","kind":"configmaps"},"code":409}\n')


async def test_not_found_core_and_grouped(control_plane):
    url = control_plane.url
    code, body = await raw(url, "GET", CM + "/nope")
    assert (code, body) == (404, status('configmaps "nope" not found', "NotFound", 404,
                                        '{"name":"nope","kind":"configmaps"}'))
    code, body = await raw(url, "GET", "/apis/apps/v1/namespaces/default/deployments/nope")
    assert (code, body) == (404, status('deployments.apps "nope" not found', "NotFound", 404,
                                        '{"name":"nope","group":"apps","kind":"deployments"}'))
    # a path no resource serves: kube-apiserver's generic answer with empty details
    code, body = await raw(url, "GET", "/api/v1/namespaces/default/widgets")
    assert (code, body) == (404, status("the server could not find the requested resource",
                                        "NotFound", 404, "{}"))


async def test_invalid_core_kind_keeps_the_path_in_field_only(control_plane):
    code, body = await raw(control_plane.url, "POST", CM, cm("Bad_Name"))
    detail = f'Invalid value: "Bad_Name": {SUBDOMAIN}'
    cause = ('{"reason":"FieldValueInvalid","message":' + json.dumps(detail)
             + ',"field":"metadata.name"}')
    assert code == 422
    assert body == status(f'ConfigMap "Bad_Name" is invalid: metadata.name: {detail}', "Invalid",
                          422, '{"name":"Bad_Name","kind":"ConfigMap","causes":[' + cause + "]}")


async def test_invalid_grouped_kind_with_several_causes(control_plane):
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"replicas": -1, "minReadySeconds": -2, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}},
                                 "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    code, body = await raw(control_plane.url, "POST",
                           "/apis/apps/v1/namespaces/default/deployments", dep)
    assert code == 422
    msgs = ["Invalid value: -1: must be greater than or equal to 0",
            "Invalid value: -2: must be greater than or equal to 0"]
    causes = ",".join(
        '{"reason":"FieldValueInvalid","message":"%s","field":"%s"}' % (m, f)
        for m, f in zip(msgs, ("spec.replicas", "spec.minReadySeconds")))
    assert body == status(
        f'Deployment.apps "d" is invalid: [spec.replicas: {msgs[0]}, '
        f"spec.minReadySeconds: {msgs[1]}]", "Invalid", 422,
        '{"name":"d","group":"apps","kind":"Deployment","causes":[' + causes + "]}")


async def test_conflict_forbidden_method_not_allowed(control_plane):
    url = control_plane.url
    code, made = await raw(url, "POST", CM, cm("c1"))
    obj = orjson.loads(made)
    obj["metadata"]["resourceVersion"] = str(int(obj["metadata"]["resourceVersion"]) - 1)
    code, body = await raw(url, "PUT", CM + "/c1", obj)
    assert (code, body) == (409, status(
        'Operation cannot be fulfilled on configmaps "c1": the object has been modified; please '
        "apply your changes to the latest version and try again", "Conflict", 409,
        '{"name":"c1","kind":"configmaps"}'))
    code, body = await raw(url, "DELETE", "/api/v1/namespaces/default")
    assert (code, body) == (403, status(
        'namespaces "default" is forbidden: this namespace may not be deleted', "Forbidden", 403,
        '{"name":"default","kind":"namespaces"}'))
    code, body = await raw(url, "POST", CM + "/c1", cm("c1"))
    assert (code, body) == (405, status(
        "the server does not allow this method on the requested resource", "MethodNotAllowed",
        405, "{}"))


async def test_too_large_and_failed_json_patch_test(control_plane):
    url = control_plane.url
    big = cm("big")
    big["data"] = {"a": "x" * (3 * 1024 * 1024 + 10)}
    code, body = await raw(url, "POST", CM, big)
    assert (code, body) == (413, status("Request entity too large: limit is 3145728",
                                        "RequestEntityTooLarge", 413))
    assert (await raw(url, "POST", CM, cm("p")))[0] == 201
    ops = [{"op": "test", "path": "/data/a", "value": "not-b"},
           {"op": "replace", "path": "/data/a", "value": "c"}]
    code, body = await raw(url, "PATCH", CM + "/p", ops, "application/json-patch+json")
    assert (code, body) == (422, status(
        "the server rejected our request due to an error in our request", "Invalid", 422, "{}"))
    assert b"class" not in body and b"<" not in body
    # a path that is not there is the same kind of failure, with the same answer
    code, body2 = await raw(url, "PATCH", CM + "/p", [{"op": "remove", "path": "/data/zz"}],
                            "application/json-patch+json")
    assert (code, body2) == (422, body)
    code, obj = await raw(url, "GET", CM + "/p")
    assert orjson.loads(obj)["data"] == {"a": "b"}


async def test_watch_from_a_compacted_revision_ends_with_an_error_event(control_plane):
    async with control_plane.client() as c:
        first = await c.create(CONFIGMAPS, cm("w0"), namespace="default")
        await c.create(CONFIGMAPS, cm("w1"), namespace="default")
    store = control_plane.cp.ctx.store
    current = await store.current_revision()
    await store.compact(current)
    rv = first["metadata"]["resourceVersion"]
    async with control_plane.session() as s:
        async with s.get(f"{control_plane.url}{CM}?watch=1&resourceVersion={rv}") as r:
            assert r.status == 200
            line = await asyncio.wait_for(r.content.readline(), 30)
    expired = status(f"too old resource version: {rv} ({current})", "Expired", 410)
    assert line == b'{"type":"ERROR","object":' + expired[:-1] + b"}\n"


@pytest.mark.parametrize("kind", ["name", "several"])
async def test_kubectl_prints_each_cause_path_once(control_plane, kind):
    if kind == "name":
        proc = await asyncio.to_thread(control_plane.kubectl, "run", "bad_name", "--image=x",
                                       check=False)
        assert proc.returncode != 0
        assert 'The Pod "bad_name" is invalid' in proc.stderr
        assert "metadata.name: Invalid value: \"bad_name\"" in proc.stderr
        assert "metadata.name: metadata.name" not in proc.stderr
    else:
        manifest = json.dumps({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"restartPolicy": "Sometimes",
                     "containers": [{"name": "C", "image": "x"}]}})
        proc = await asyncio.to_thread(control_plane.kubectl, "create", "-f", "-",
                                       input=manifest, check=False)
        assert proc.returncode != 0
        assert "* spec.restartPolicy: Unsupported value: \"Sometimes\"" in proc.stderr
        assert "* spec.containers[0].name: Invalid value: \"C\"" in proc.stderr
        assert "spec.restartPolicy: spec.restartPolicy" not in proc.stderr


def _create_twice_with_the_official_client(kubeconfig: object) -> str:
    """The official client's e2e check: ``create_from_dict`` of an existing Deployment and a
    ConfigMap; its FailToCreateError quotes each body as received."""
    import kubernetes

    cfg = kubernetes.client.Configuration()
    kubernetes.config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    docs = {"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "triple-nginx"},
         "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "nginx"}},
                  "template": {"metadata": {"labels": {"app": "nginx"}},
                               "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}}},
        cm("also-there")]}
    with kubernetes.client.ApiClient(cfg) as api:
        kubernetes.utils.create_from_dict(api, docs, namespace="default")
        try:
            kubernetes.utils.create_from_dict(api, docs, namespace="default")
        except kubernetes.utils.FailToCreateError as e:
            return str(e)
    raise AssertionError("the second create did not fail")


async def test_official_client_sees_kube_apiserver_bytes(control_plane):
    got = await asyncio.to_thread(_create_twice_with_the_official_client, control_plane.kubeconfig)
    assert got == (
        'Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},'
        '"status":"Failure","message":"deployments.apps \\"triple-nginx\\" already exists",'
        '"reason":"AlreadyExists","details":{"name":"triple-nginx","group":"apps",'
        '"kind":"deployments"},"code":409}\n'
        'Error from server (Conflict): {"kind":"Status","apiVersion":"v1","metadata":{},'
        '"status":"Failure","message":"configmaps \\"also-there\\" already exists",'
        '"reason":"AlreadyExists","details":{"name":"also-there","kind":"configmaps"},'
        '"code":409}\n')


async def test_unsupported_media_types_and_bad_request(control_plane):
    url = control_plane.url
    assert (await raw(url, "POST", CM, cm("m")))[0] == 201
    code, body = await raw(url, "PATCH", CM + "/m", b"{}", "text/plain")
    assert (code, body) == (415, status(
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json, application/apply-patch+yaml",
        "UnsupportedMediaType", 415))
    code, body = await raw(url, "POST", CM, b"{}", "application/cbor")
    assert (code, body) == (415, status(
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json, application/yaml, application/vnd.kubernetes.protobuf",
        "UnsupportedMediaType", 415))
    code, body = await raw(url, "POST", CM, b"{not json")
    st = orjson.loads(body)
    assert code == 400 and list(st) == ["kind", "apiVersion", "metadata", "status", "message",
                                        "reason", "code"]
    assert st["reason"] == "BadRequest" and body.endswith(b"}\n")


async def test_too_long_whole_object_names_it_as_go_does(control_plane):
    big = cm("huge")
    big["data"] = {"a": "x" * (1024 * 1024 + 1)}
    code, body = await raw(control_plane.url, "POST", CM, big)
    assert (code, body) == (422, status(
        'ConfigMap "huge" is invalid: []: Too long: may not be more than 1048576 bytes',
        "Invalid", 422,
        '{"name":"huge","kind":"ConfigMap","causes":[{"reason":"FieldValueTooLong",'
        '"message":"Too long: may not be more than 1048576 bytes","field":"[]"}]}'))


async def test_resource_version_from_the_future_is_a_timeout_to_retry(control_plane):
    async with control_plane.session() as s:
        async with s.get(f"{control_plane.url}{CM}?resourceVersion=99999999"
                         "&resourceVersionMatch=NotOlderThan") as r:
            code, body, retry = r.status, await r.read(), r.headers.get("Retry-After")
    current = orjson.loads(body)["message"].rsplit(" ", 1)[1]
    assert (code, retry) == (504, "1")
    assert body == status(
        f"Timeout: Too large resource version: 99999999, current: {current}", "Timeout", 504,
        '{"causes":[{"reason":"ResourceVersionTooLarge","message":"Too large resource version"}],'
        '"retryAfterSeconds":1}')
