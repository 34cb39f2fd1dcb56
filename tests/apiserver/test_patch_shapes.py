"""Patch bodies are checked for shape per patch type before anything is applied, with
kube-apiserver's codes and messages; a genuine server bug while applying one is a 500 with a
logged traceback, not a client error."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import orjson
import pytest

CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}
JSON, MERGE, SMP, APPLY = ("application/json-patch+json", "application/merge-patch+json",
                           "application/strategic-merge-patch+json", "application/apply-patch+yaml")

# A JSON patch that decodes but cannot be applied: kube-apiserver's NewGenericServerResponse(422)
# keeps the patch library's words out of the body (kubectl prints "The request is invalid: …").
REJECTED = "the server rejected our request due to an error in our request"

# content type, body, code, reason, message (a substring)
CASES: list[tuple[str, Any, int, str, str]] = [
    (JSON, {"op": "add"}, 400, "BadRequest", "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
    (JSON, "add", 400, "BadRequest", "json: cannot unmarshal string into Go value of type jsonpatch.Patch"),
    (JSON, ["add"], 400, "BadRequest", "json: cannot unmarshal string into Go value of type jsonpatch.Operation"),
    (JSON, [None], 400, "BadRequest", "json: cannot unmarshal null into Go value of type jsonpatch.Operation"),
    (JSON, [{"op": "frobnicate", "path": "/data"}], 422, "Invalid", REJECTED),
    (JSON, [{"path": "/data"}], 422, "Invalid", REJECTED),
    (JSON, [{"op": 7, "path": "/data"}], 422, "Invalid", REJECTED),
    (JSON, [{"op": "add", "value": 1}], 422, "Invalid", REJECTED),
    (JSON, [{"op": "remove", "path": ["data"]}], 422, "Invalid", REJECTED),
    (JSON, [{"op": "move", "path": "/data/b"}], 422, "Invalid", REJECTED),
    (JSON, [{"op": "copy", "path": "/data/b", "from": 3}], 422, "Invalid", REJECTED),
    (JSON, [{"op": "replace", "path": "/data/a"}], 422, "Invalid", REJECTED),
    (JSON, [{"op": "test", "path": "/data/a", "value": "2"}], 422, "Invalid", REJECTED),
    (JSON, [{"op": "remove", "path": "/data/zz"}], 422, "Invalid", REJECTED),
    (JSON, [{"op": "test", "path": "/data/a", "value": "1"}] * 10001, 413, "RequestEntityTooLarge",
     "The allowed maximum operations in a JSON patch is 10000, got 10001"),
    (MERGE, [{"op": "add"}], 400, "BadRequest", "Invalid JSON Patch"),
    (MERGE, "x", 400, "BadRequest", "Invalid JSON Patch"),
    (MERGE, None, 400, "BadRequest", "Invalid JSON Patch"),
    (SMP, [1], 400, "BadRequest", "json: cannot unmarshal array into Go value of type map[string]interface {}"),
    (SMP, 5, 400, "BadRequest", "json: cannot unmarshal number into Go value of type map[string]interface {}"),
    (APPLY, ["a"], 400, "BadRequest", "error decoding patch: json: cannot unmarshal array"),
    (APPLY, {"metadata": {"name": "c"}}, 400, "BadRequest", "apiVersion"),
    (APPLY, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "c"}}, 400, "BadRequest",
     "does not match the URL's kind"),
]


@pytest.mark.parametrize("ctype,body,code,reason,message", CASES,
                         ids=[f"{c[0].split('/')[1]}-{i}" for i, c in enumerate(CASES)])
async def test_patch_shape_is_checked_up_front(control_plane, ctype, body, code, reason, message):
    url = control_plane.url + "/api/v1/namespaces/default/configmaps"
    async with control_plane.session() as s:
        async with s.post(url, json=CM) as r:
            assert r.status == 201
        params = {"fieldManager": "m"} if ctype == APPLY else None
        raw = orjson.dumps(body)
        async with s.patch(url + "/c", data=raw, params=params, headers={"Content-Type": ctype}) as r:
            status = await r.json()
            assert (r.status, status["reason"]) == (code, reason), status
            assert message in status["message"], status
        async with s.get(url + "/c") as r:  # nothing was written
            assert (await r.json())["data"] == {"a": "1"}


async def test_scale_patch_shapes_too(control_plane):
    url = control_plane.url + "/apis/apps/v1/namespaces/default/deployments"
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"a": "b"}},
                    "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    async with control_plane.session() as s:
        async with s.post(url, json=dep) as r:
            assert r.status == 201
        for ctype, body, code in [(JSON, {"spec": 1}, 400), (MERGE, [1], 400), ("application/json", [1], 400),
                                  # a PUT body Go cannot decode into a Scale: transformDecodeError's 400
                                  ("application/json", {"spec": "x"}, 400), (MERGE, {"spec": {"replicas": 2}}, 200)]:
            method = "PUT" if ctype == "application/json" else "PATCH"
            async with s.request(method, url + "/d/scale", data=orjson.dumps(body), headers={"Content-Type": ctype}) as r:
                assert r.status == code, (ctype, body, await r.text())


async def test_a_bug_while_patching_is_a_500_with_a_traceback(control_plane, monkeypatch, caplog):
    """The old blanket ``except (TypeError, KeyError, ...)`` turned this into a 400 and hid it."""
    import vkube.api.patch

    def broken(obj: dict, patch: Any) -> dict:
        return obj["no-such-key"]  # a KeyError: the server's bug, not the client's

    monkeypatch.setattr(vkube.api.patch, "apply_merge_patch", broken)
    url = control_plane.url + "/api/v1/namespaces/default/configmaps"
    caplog.set_level(logging.ERROR, logger="vkube.apiserver")
    async with control_plane.session() as s:
        async with s.post(url, json=CM) as r:
            assert r.status == 201
        async with s.patch(url + "/c", json={"data": {"a": "2"}}, headers={"Content-Type": MERGE}) as r:
            status = await r.json()
            assert (r.status, status["reason"]) == (500, "InternalError")
    logged = [rec for rec in caplog.records if rec.name == "vkube.apiserver" and rec.exc_info]
    assert logged and logged[0].exc_info[0] is KeyError
