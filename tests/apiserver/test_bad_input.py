"""Bad input gets the right Status and leaves the store unchanged."""

from __future__ import annotations

import aiohttp
import orjson
import pytest

CM = "/api/v1/namespaces/default/configmaps"
SSL: dict[str, object] = {}  # url → the admin's TLS context, set by the autouse fixture


@pytest.fixture(autouse=True)
def _admin_tls(control_plane):
    SSL[control_plane.url] = control_plane.ssl()
    yield
    SSL.pop(control_plane.url, None)


async def call(url: str, method: str, path: str, body: bytes | None = None,
               content_type: str = "application/json") -> tuple[int, dict]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=SSL[url])) as s:
        async with s.request(method, url + path, data=body, headers={"Content-Type": content_type}) as r:
            return r.status, await r.json(content_type=None)


def cm(name: str, **extra: object) -> bytes:
    return orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, **extra}, "data": {"a": "b"}})


async def revision(url: str) -> str:
    status, body = await call(url, "GET", CM)
    return body["metadata"]["resourceVersion"]


@pytest.mark.parametrize("body,code,reason,needle", [
    (cm("Bad_Name"), 422, "Invalid", "metadata.name"),
    # Go's regexp `$` is the end of the text; Python's also matches before a final newline
    (cm("name\n"), 422, "Invalid", "metadata.name"),
    (cm("n", labels={"k": "v\n"}), 422, "Invalid", "metadata.labels"),
    (cm("n", labels={"k\n": "v"}), 422, "Invalid", "metadata.labels"),
    (orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "n"}, "data": {"a\n": "b"}}),
     422, "Invalid", "data: Invalid value"),
    (b"{not json", 400, "BadRequest", "error decoding JSON"),
    (orjson.dumps({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}), 400, "BadRequest", "kind"),
    (orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "labels": {"bad key!": "v"}}}), 422, "Invalid", "metadata.labels"),
    (orjson.dumps([1, 2]), 400, "BadRequest", "ConfigMap"),
    (b"", 400, "BadRequest", "empty"),
    (orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "n"}, "data": {"a": 1}}), 400, "BadRequest",
     'ConfigMap in version "v1" cannot be handled as a ConfigMap: json: cannot unmarshal number into Go struct '
     "field ConfigMap.data of type string"),
    (orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "n", "creationTimestamp": "garbage"}}),
     400, "BadRequest", 'ConfigMap in version "v1" cannot be handled as a ConfigMap: parsing time "garbage" as '
     '"2006-01-02T15:04:05Z07:00": cannot parse "garbage" as "2006"'),
    (orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "n"}, "binaryData": {"b": "not base64!"}}),
     400, "BadRequest", 'ConfigMap in version "v1" cannot be handled as a ConfigMap: illegal base64 data at input byte 3'),
])
async def test_bad_create(control_plane, body, code, reason, needle):
    before = await revision(control_plane.url)
    status, st = await call(control_plane.url, "POST", CM, body)
    assert (status, st["kind"], st["code"], st["reason"]) == (code, "Status", code, reason), st
    assert needle in st["message"]
    assert await revision(control_plane.url) == before


async def test_oversize_body_is_413(control_plane):
    big = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "big"},
                        "data": {"a": "x" * (3 * 1024 * 1024 + 10)}})
    before = await revision(control_plane.url)
    status, st = await call(control_plane.url, "POST", CM, big)
    assert status == 413 and st["reason"] == "RequestEntityTooLarge"
    assert await revision(control_plane.url) == before


async def test_stale_resource_version_conflicts(control_plane):
    status, obj = await call(control_plane.url, "POST", CM, cm("c1"))
    assert status == 201
    stale = dict(obj)
    stale["metadata"] = dict(obj["metadata"], resourceVersion=str(int(obj["metadata"]["resourceVersion"]) - 1))
    stale["data"] = {"a": "changed"}
    status, st = await call(control_plane.url, "PUT", CM + "/c1", orjson.dumps(stale))
    assert status == 409 and st["reason"] == "Conflict" and "has been modified" in st["message"]
    status, now = await call(control_plane.url, "GET", CM + "/c1")
    assert now["data"] == {"a": "b"}


async def test_unknown_kind_and_missing_namespace(control_plane):
    status, st = await call(control_plane.url, "GET", "/apis/example.com/v1/widgets")
    assert status == 404 and st["reason"] == "NotFound"
    before = await revision(control_plane.url)
    status, st = await call(control_plane.url, "POST", "/api/v1/namespaces/nope/configmaps", cm("x"))
    assert status == 404 and 'namespaces "nope" not found' in st["message"]
    assert await revision(control_plane.url) == before


async def test_duplicate_create_and_bad_params(control_plane):
    assert (await call(control_plane.url, "POST", CM, cm("dup")))[0] == 201
    status, st = await call(control_plane.url, "POST", CM, cm("dup"))
    assert status == 409 and st["reason"] == "AlreadyExists"
    status, st = await call(control_plane.url, "GET", CM + "?labelSelector=a%20in%20(")
    assert status == 400
    status, st = await call(control_plane.url, "GET", CM + "?limit=abc")
    assert status == 400
    status, st = await call(control_plane.url, "GET", CM + "?continue=garbage!!")
    assert status == 400
    status, st = await call(control_plane.url, "POST", CM + "?dryRun=Maybe", cm("dr"))
    assert status == 400


async def test_strict_field_validation_names_the_field(control_plane):
    body = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "dataa": {"a": "b"}})
    status, st = await call(control_plane.url, "POST", CM + "?fieldValidation=Strict", body)
    assert status == 400 and 'unknown field "dataa"' in st["message"]


async def test_dry_run_is_not_persisted(control_plane):
    before = await revision(control_plane.url)
    status, obj = await call(control_plane.url, "POST", CM + "?dryRun=All", cm("dry"))
    assert status == 201 and obj["metadata"]["name"] == "dry"
    assert (await call(control_plane.url, "GET", CM + "/dry"))[0] == 404
    assert await revision(control_plane.url) == before


async def test_generate_name(control_plane):
    body = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "gen-"}})
    status, obj = await call(control_plane.url, "POST", CM, body)
    assert status == 201 and obj["metadata"]["name"].startswith("gen-") and len(obj["metadata"]["name"]) == 9


async def _deployment(url: str) -> dict:
    body = orjson.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
                         "spec": {"selector": {"matchLabels": {"a": "b"}},
                                  "template": {"metadata": {"labels": {"a": "b"}},
                                               "spec": {"containers": [{"name": "c", "image": "x"}]}}}})
    status, obj = await call(url, "POST", "/apis/apps/v1/namespaces/default/deployments", body)
    assert status == 201
    return obj


DEP = "/apis/apps/v1/namespaces/default/deployments/d"


@pytest.mark.parametrize("ctype,body,code,needle", [
    ("application/json-patch+json", [{"op": "test", "path": "/spec/replicas", "value": 5}], 422, "the server rejected our request"),
    # each copy doubles the annotations: bounded by kube-apiserver's JSONPatchMaxCopyBytes (3 MiB)
    ("application/json-patch+json", [{"op": "add", "path": "/metadata/annotations", "value": {"a": "x" * 1000}}]
     + [{"op": "copy", "from": "/metadata/annotations", "path": f"/metadata/annotations/c{i}"} for i in range(40)],
     422, "the server rejected our request"),
    ("application/merge-patch+json", {"spec": {"replicas": -1}}, 422, "spec.replicas"),
    ("application/merge-patch+json", [1, 2], 400, ""),
    ("application/apply-patch+yaml", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "d"}}, 400, "kind"),
    ("application/apply-patch+yaml", {"metadata": {"name": "d"}, "spec": {"replicas": 2}}, 400, "apiVersion"),
    ("application/strategic-merge-patch+json",
     {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": 5}]}}}}, 422,
     ": json: cannot unmarshal number into Go struct field Container.spec.template.spec.containers.image of type string"),
    # a patched object Go cannot decode: the patcher's 422 on the field "patch", not a body's 400
    ("application/merge-patch+json", {"spec": {"replicas": "two"}}, 422,
     ": json: cannot unmarshal string into Go struct field DeploymentSpec.spec.replicas of type int32"),
    ("application/vnd.unknown", {"a": 1}, 415, ""),
    # a patch that leaves no name (the whole object deleted or replaced, the name removed):
    # apiserver's checkName refuses it
    ("application/strategic-merge-patch+json", {"$patch": "delete"}, 400,
     "the name of the object (d based on URL) was undeterminable: name must be provided"),
    ("application/strategic-merge-patch+json", {"$patch": "replace", "spec": {"replicas": 1}}, 400, "undeterminable"),
    ("application/merge-patch+json", {"metadata": {"name": None}}, 400, "undeterminable"),
    ("application/json-patch+json", [{"op": "remove", "path": "/metadata/name"}], 400, "undeterminable"),
])
async def test_bad_patches_leave_object_unchanged(control_plane, ctype, body, code, needle):
    before = await _deployment(control_plane.url)
    url = DEP + ("?fieldManager=test" if "apply" in ctype else "")
    status, st = await call(control_plane.url, "PATCH", url, orjson.dumps(body), content_type=ctype)
    assert status == code and st["kind"] == "Status" and st["code"] == code, st
    assert needle in st["message"]
    status, after = await call(control_plane.url, "GET", DEP)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


async def test_service_addresses_allocated_and_checked(control_plane):
    svc = lambda name, **spec: orjson.dumps({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},  # noqa: E731
                                             "spec": {"ports": [{"port": 80}], **spec}})
    path = "/api/v1/namespaces/default/services"
    status, a = await call(control_plane.url, "POST", path, svc("a", type="NodePort"))
    assert status == 201 and a["spec"]["clusterIP"].startswith("10.") and 30000 <= a["spec"]["ports"][0]["nodePort"] <= 32767
    status, st = await call(control_plane.url, "POST", path, svc("b", clusterIP=a["spec"]["clusterIP"]))
    assert status == 422 and "already allocated" in st["message"]
    status, st = await call(control_plane.url, "POST", path, svc("c", clusterIP="192.168.1.1"))
    assert status == 422 and "not in the valid range" in st["message"]
    status, st = await call(control_plane.url, "POST", path, svc("d", type="NodePort", ports=[{"port": 80, "nodePort": a["spec"]["ports"][0]["nodePort"]}]))
    taken = a["spec"]["ports"][0]["nodePort"]
    assert status == 422 and st["message"] == (  # named and worded as kube-apiserver does
        f'Service "d" is invalid: spec.ports[0].nodePort: Invalid value: {taken}: provided port '
        "is already allocated")
    assert st["details"]["causes"] == [{"reason": "FieldValueInvalid", "field": "spec.ports[0].nodePort",
                                        "message": f"Invalid value: {taken}: provided port is already allocated"}]
    status, h = await call(control_plane.url, "POST", path, svc("headless", clusterIP="None"))
    assert status == 201 and h["spec"]["clusterIP"] == "None"
    # an update keeps the addresses
    a["metadata"].pop("resourceVersion")
    a["spec"]["ports"][0]["port"] = 81
    status, a2 = await call(control_plane.url, "PUT", path + "/a", orjson.dumps(a))
    assert status == 200 and a2["spec"]["clusterIP"] == a["spec"]["clusterIP"]
    assert a2["spec"]["ports"][0]["nodePort"] == a["spec"]["ports"][0]["nodePort"]


async def test_malformed_yaml_is_400(control_plane):
    before = await revision(control_plane.url)
    status, st = await call(control_plane.url, "POST", CM, b"metadata: [unclosed\n  name: x", content_type="application/yaml")
    assert status == 400 and st["reason"] == "BadRequest" and "YAML" in st["message"]
    status, obj = await call(control_plane.url, "POST", CM,
                             b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n",
                             content_type="application/yaml")
    assert status == 201 and obj["data"] == {"a": "b"}
    assert int(await revision(control_plane.url)) == int(before) + 1


async def test_watch_from_a_compacted_revision_is_410(control_plane):
    from vkube.api import errors
    from vkube.client.resources import CONFIGMAPS

    async with control_plane.client() as c:
        first = await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "w0"}}, namespace="default")
        for i in range(1, 5):
            await c.create(CONFIGMAPS, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"w{i}"}}, namespace="default")
        store = control_plane.cp.ctx.store
        await store.compact(await store.current_revision())
        with pytest.raises(errors.Gone):
            async for _ in c.watch(CONFIGMAPS, namespace="default", resource_version=first["metadata"]["resourceVersion"]):
                pass
        # a list at the compacted revision is 410 too, and the latest state is intact
        with pytest.raises(errors.Gone):
            await c.request("GET", "/api/v1/namespaces/default/configmaps",
                            params={"resourceVersion": first["metadata"]["resourceVersion"], "resourceVersionMatch": "Exact"})
        assert len((await c.list(CONFIGMAPS, namespace="default"))["items"]) == 5


def _alias_bomb() -> bytes:
    """~400 bytes that expand to 9**8 strings (CVE-2019-11253's shape)."""
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata: {name: bomb}", "data:",
             '  a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefg", "bcdefgh"):
        lines.append(f"  {name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    return "\n".join(lines).encode()


async def test_yaml_aliases_are_bounded(control_plane):
    """Aliases that would expand past go-yaml's ratio or the size limit are refused (as
    kube-apiserver refuses them) before anything is built or stored; a few small aliases and
    a merge key still decode."""
    url = control_plane.url
    before = await revision(url)
    status, st = await call(url, "POST", CM, _alias_bomb(), content_type="application/yaml")
    assert (status, st["reason"]) == (400, "BadRequest"), st
    assert st["message"] == "error converting YAML to JSON: yaml: document contains excessive aliasing"
    # the same bomb as an apply patch and as a strategic merge patch body
    status, st = await call(url, "PATCH", CM + "/bomb?fieldManager=t", _alias_bomb(),
                            content_type="application/apply-patch+yaml")
    assert status == 400 and "excessive aliasing" in st["message"], st
    # few aliases of a big value: within the ratio, but the decoded body is over the limit
    big = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big}\ndata:\n  a: &s " + b"y" * 900_000
    big += b"\n  b: *s\n  c: *s\n  d: *s\n"
    status, st = await call(url, "POST", CM, big, content_type="application/yaml")
    assert (status, st["reason"]) == (413, "RequestEntityTooLarge"), st
    status, st = await call(url, "POST", CM, b"metadata: &m {name: loop, labels: {a: *m}}\n",
                            content_type="application/yaml")
    assert status == 400 and "contains itself" in st["message"], st
    assert await revision(url) == before
    ok = (b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: anchored}\n"
          b"base: &b {a: x}\ndata:\n  <<: *b\n  c: y\n")
    status, obj = await call(url, "POST", CM + "?fieldValidation=Ignore", ok, content_type="application/yaml")
    assert status == 201 and obj["data"] == {"a": "x", "c": "y"}, obj


async def test_no_write_stores_an_object_over_the_request_limit(control_plane):
    """A patch can grow an object past what any request may carry: the write is refused
    with a 413 and the stored object is unchanged."""
    url = control_plane.url
    dep = orjson.dumps({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "fat"},
                        "spec": {"selector": {"matchLabels": {"a": "b"}},
                                 "template": {"metadata": {"labels": {"a": "b"}},
                                              "spec": {"containers": [{"name": "c", "image": "x",
                                                                       "args": ["z" * 1_100_000]}]}}}})
    status, obj = await call(url, "POST", "/apis/apps/v1/namespaces/default/deployments", dep)
    assert status == 201
    args = "/spec/template/spec/containers/0/args"
    grow = [{"op": "copy", "from": f"{args}/0", "path": f"{args}/-"}] * 2
    path = "/apis/apps/v1/namespaces/default/deployments/fat"
    status, st = await call(url, "PATCH", path, orjson.dumps(grow), content_type="application/json-patch+json")
    assert (status, st["reason"]) == (413, "RequestEntityTooLarge"), st
    status, after = await call(url, "GET", path)
    assert after["metadata"]["resourceVersion"] == obj["metadata"]["resourceVersion"]
    assert len(after["spec"]["template"]["spec"]["containers"][0]["args"]) == 1


async def test_list_and_watch_options_as_upstream_refuses_them(control_plane):
    url = control_plane.url
    status, st = await call(url, "GET", CM + "?resourceVersion=0&resourceVersionMatch=Exact")
    assert (status, st["reason"]) == (422, "Invalid"), st
    assert st["message"] == ('ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
                             'resourceVersionMatch "exact" is forbidden for resourceVersion "0"')
    status, st = await call(url, "GET", CM + "?resourceVersionMatch=Sometimes&resourceVersion=1")
    assert status == 422 and 'Unsupported value: "Sometimes"' in st["message"], st
    current = int(await revision(url))
    status, st = await call(url, "GET", CM + "?watch=1&resourceVersion=99999999999")
    assert (status, st["reason"]) == (504, "Timeout"), st
    assert st["message"] == f"Timeout: Too large resource version: 99999999999, current: {current}"


async def test_create_ignores_server_owned_metadata(control_plane):
    """deletionTimestamp, creationTimestamp, uid and generation sent on create are the server's
    to set: dropped or overwritten, and managedFields are still recorded."""
    body = orjson.dumps({"apiVersion": "v1", "kind": "ConfigMap", "data": {"k": "v"},
                         "metadata": {"name": "owned", "deletionTimestamp": "2020-01-01T00:00:00Z",
                                      "deletionGracePeriodSeconds": 5, "uid": "x",
                                      "creationTimestamp": "2020-01-01T00:00:00Z"}})
    status, obj = await call(control_plane.url, "POST", CM, body)
    assert status == 201, obj
    m = obj["metadata"]
    assert "deletionTimestamp" not in m and "deletionGracePeriodSeconds" not in m and m["uid"] != "x"
    assert m["creationTimestamp"] != "2020-01-01T00:00:00Z"
    assert m["managedFields"][0]["fieldsV1"] == {"f:data": {".": {}, "f:k": {}}}
