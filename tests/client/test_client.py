"""The client against an in-memory fake API server: URLs, bodies, content types, error mapping,
paging and watch streaming."""

from __future__ import annotations

import asyncio
import socket

import orjson
import pytest

from tests.fakes import FakeAPIServer

from vkube.api import errors
from vkube.client import Client, Resource
from vkube.client.resources import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, PODS


def test_paths() -> None:
    assert PODS.path("ns", "p", "status") == "/api/v1/namespaces/ns/pods/p/status"
    assert PODS.path() == "/api/v1/pods"
    assert DEPLOYMENTS.path("ns") == "/apis/apps/v1/namespaces/ns/deployments"
    assert NAMESPACES.path("ignored", "a", "finalize") == "/api/v1/namespaces/a/finalize"
    assert Resource("x.io", "v1", "foos", False).path(name="f") == "/apis/x.io/v1/foos/f"


@pytest.fixture
async def api():
    async with FakeAPIServer([PODS, CONFIGMAPS, DEPLOYMENTS, NAMESPACES]) as srv:
        yield srv


@pytest.fixture
async def client(api):
    async with Client(api.url) as c:
        yield c


async def test_crud_roundtrip(api, client) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap",
          "metadata": {"name": "a", "namespace": "ns"}, "data": {"k": "v"}}
    created = await client.create(CONFIGMAPS, cm)
    assert created["metadata"]["resourceVersion"]
    assert api.requests[-1]["path"] == "/api/v1/namespaces/ns/configmaps"
    got = await client.get(CONFIGMAPS, "a", namespace="ns")
    assert got["data"] == {"k": "v"}
    got["data"]["k"] = "w"
    updated = await client.update(CONFIGMAPS, got)
    assert updated["data"]["k"] == "w"
    stale = dict(got, metadata=dict(got["metadata"], resourceVersion="1"))
    with pytest.raises(errors.Conflict):
        await client.update(CONFIGMAPS, stale)
    patched = await client.patch(CONFIGMAPS, "a", {"data": {"x": "y"}}, namespace="ns")
    assert patched["data"] == {"k": "w", "x": "y"}
    assert api.requests[-1]["content_type"] == "application/merge-patch+json"
    await client.delete(CONFIGMAPS, "a", namespace="ns", propagation_policy="Foreground",
                        grace_period_seconds=0)
    body = orjson.loads(api.requests[-1]["body"])
    assert body["propagationPolicy"] == "Foreground" and body["gracePeriodSeconds"] == 0
    with pytest.raises(errors.NotFound) as ei:
        await client.get(CONFIGMAPS, "a", namespace="ns")
    assert ei.value.code == 404
    with pytest.raises(errors.AlreadyExists):
        await client.create(CONFIGMAPS, cm)
        await client.create(CONFIGMAPS, cm)


@pytest.mark.parametrize("kind,ctype", [
    ("strategic", "application/strategic-merge-patch+json"),
    ("json", "application/json-patch+json"),
    ("apply", "application/apply-patch+yaml"),
])
async def test_patch_content_types(api, client, kind, ctype) -> None:
    api.fail_next(404, "NotFound", "nope")  # we only look at the request
    with pytest.raises(errors.NotFound):
        await client.patch(DEPLOYMENTS, "d", [] if kind == "json" else {}, namespace="n",
                           type=kind, force=True, field_manager="fm" if kind != "apply" else None)
    req = api.requests[-1]
    assert req["content_type"] == ctype
    assert req["path"] == "/apis/apps/v1/namespaces/n/deployments/d"
    if kind == "apply":
        assert req["query"] == {"fieldManager": "vkube", "force": "true"}
    else:
        assert req["query"] == {"fieldManager": "fm"}


async def test_errors_are_mapped(api, client) -> None:
    api.fail_next(422, "Invalid", "bad field")
    with pytest.raises(errors.Invalid) as ei:
        await client.get(PODS, "x", namespace="n")
    assert ei.value.message == "bad field"
    api.fail_next(502, body=b"<html>bad gateway</html>")
    with pytest.raises(errors.StatusError) as ei2:
        await client.get(PODS, "x", namespace="n")
    assert ei2.value.code == 502 and "bad gateway" in ei2.value.message
    api.fail_next(503, body=b"")
    with pytest.raises(errors.ServiceUnavailable):
        await client.list(PODS)


async def test_connection_errors_become_service_unavailable() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        async with Client(f"http://127.0.0.1:{port}") as c:
            with pytest.raises(errors.ServiceUnavailable):
                await c.get(PODS, "x", namespace="n")
            with pytest.raises(errors.ServiceUnavailable):
                async for _ in c.watch(PODS):
                    pass


async def test_list_all_follows_continue(api, client) -> None:
    for i in range(7):
        api.put(PODS, {"metadata": {"name": f"p{i}", "namespace": "n", "labels": {"i": str(i % 2)}}})
    out = await client.list_all(PODS, limit=3)
    assert [p["metadata"]["name"] for p in out["items"]] == [f"p{i}" for i in range(7)]
    assert "continue" not in out["metadata"] and out["metadata"]["resourceVersion"]
    assert sum(1 for r in api.requests if r["path"] == "/api/v1/pods") == 3
    odd = await client.list(PODS, namespace="n", label_selector="i=1")
    assert len(odd["items"]) == 3
    assert api.requests[-1]["query"]["labelSelector"] == "i=1"


async def test_watch_streams_events_and_bookmarks(api, client) -> None:
    api.bookmark_every = 0.02
    start = api.rv
    seen: list[tuple[str, str]] = []

    async def consume() -> None:
        async for ev in client.watch(PODS, namespace="n", resource_version=str(start)):
            seen.append((ev.type, ev.object["metadata"].get("name", "")))
            if ev.type == "DELETED":
                return

    task = asyncio.create_task(consume())
    big = "x" * 300_000  # longer than aiohttp's default line limit
    api.put(PODS, {"metadata": {"name": "a", "namespace": "n"}, "spec": {"big": big}})
    api.put(PODS, {"metadata": {"name": "b", "namespace": "other"}})
    api.put(PODS, {"metadata": {"name": "a", "namespace": "n"}})
    await asyncio.sleep(0.1)
    api.remove(PODS, "a", "n")
    await asyncio.wait_for(task, 5)
    events = [e for e in seen if e[0] != "BOOKMARK"]
    assert events == [("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert ("BOOKMARK", "") in seen
    q = [r for r in api.requests if r["query"].get("watch")][0]["query"]
    assert q["allowWatchBookmarks"] == "true" and q["resourceVersion"] == str(start)


async def test_watch_gone_raises(api, client) -> None:
    api.put(PODS, {"metadata": {"name": "a", "namespace": "n"}})
    api.compact()
    with pytest.raises(errors.Gone):
        async for _ in client.watch(PODS, resource_version="1"):
            pass


async def test_discover(api, client) -> None:
    found = {(r.resource.group, r.resource.plural): r for r in await client.discover()}
    assert set(found) == {("", "pods"), ("", "configmaps"), ("", "namespaces"),
                          ("apps", "deployments")}
    assert found[("", "namespaces")].resource.namespaced is False
    assert "watch" in found[("apps", "deployments")].verbs


async def test_token_and_user_agent(api) -> None:
    async with Client(api.url, token="sekret", user_agent="me/1") as c:
        await c.list(PODS)
    h = api.requests[-1]["headers"]
    assert h["Authorization"] == "Bearer sekret" and h["User-Agent"] == "me/1"
