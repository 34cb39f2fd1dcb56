"""Informer against the fake API server: initial list, watch, relist diff after 410,
reconnect after the stream closes, indexes and selector queries."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from tests.fakes import FakeAPIServer

from vkube.client import Client
from vkube.client.resources import CONFIGMAPS, PODS
from vkube.controllers.informer import Informer


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.01)


def pod(name: str, ns: str = "n", **labels: str) -> dict:
    return {"metadata": {"name": name, "namespace": ns, "labels": labels}}


@pytest.fixture
async def env():
    async with FakeAPIServer([PODS, CONFIGMAPS]) as api:
        async with Client(api.url) as client:
            yield api, client


async def test_list_then_watch_with_handlers(env) -> None:
    api, client = env
    for i in range(5):
        api.put(PODS, pod(f"p{i}", app="a" if i % 2 else "b"))
    inf = Informer(client, PODS)
    inf.add_index("app", lambda o: [o["metadata"].get("labels", {}).get("app", "")])
    seen: list[tuple[str, str, bool]] = []
    inf.add_handler(lambda t, o, old: seen.append((t, o["metadata"]["name"], old is not None)))
    task = asyncio.create_task(inf.run())
    try:
        await asyncio.wait_for(inf.wait_synced(), 5)
        assert inf.synced
        assert sorted(s[1] for s in seen) == [f"p{i}" for i in range(5)]
        assert inf.get("p1", "n")["kind"] == "Pod"
        assert {o["metadata"]["name"] for o in inf.by_index("app", "a")} == {"p1", "p3"}
        assert {o["metadata"]["name"] for o in inf.list("n", {"app": "b"})} == {"p0", "p2", "p4"}
        assert {o["metadata"]["name"] for o in inf.list(selector={
            "matchExpressions": [{"key": "app", "operator": "In", "values": ["a"]}]})} == {"p1", "p3"}
        assert inf.list("other") == []
        seen.clear()
        api.put(PODS, pod("p1", app="b"))
        api.remove(PODS, "p0", "n")
        api.put(PODS, pod("new", "other"))
        await until(lambda: len(seen) == 3)
        assert seen == [("MODIFIED", "p1", True), ("DELETED", "p0", True), ("ADDED", "new", False)]
        assert {o["metadata"]["name"] for o in inf.by_index("app", "a")} == {"p3"}
        assert inf.get("p0", "n") is None
        assert inf.resource_version == str(api.rv)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_relist_after_gone_replays_diff(env) -> None:
    api, client = env
    api.put(PODS, pod("keep"))
    api.put(PODS, pod("change"))
    api.put(PODS, pod("drop"))
    inf = Informer(client, PODS, namespace="n")
    seen: list[tuple[str, str]] = []
    inf.add_handler(lambda t, o, old: seen.append((t, o["metadata"]["name"])))
    task = asyncio.create_task(inf.run())
    try:
        await asyncio.wait_for(inf.wait_synced(), 5)
        await until(lambda: any(r["query"].get("watch") for r in api.requests))
        seen.clear()
        # changes the informer cannot see as events: history is compacted away
        api.close_watches()
        api._watchers.clear()
        api.put(PODS, pod("change", x="1"))
        api.remove(PODS, "drop", "n")
        api.put(PODS, pod("added"))
        api.compact()
        await until(lambda: len(seen) == 3)
        assert sorted(seen) == [("ADDED", "added"), ("DELETED", "drop"), ("MODIFIED", "change")]
        lists = [r for r in api.requests if not r["query"].get("watch")
                 and r["path"] == "/api/v1/namespaces/n/pods"]
        assert len(lists) == 2  # initial list + relist after 410
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_rewatch_from_last_version_after_stream_ends_and_errors(env) -> None:
    api, client = env
    inf = Informer(client, CONFIGMAPS)
    inf.backoff = (0.01,)
    names: list[str] = []
    inf.add_handler(lambda t, o, old: names.append(o["metadata"]["name"]))
    task = asyncio.create_task(inf.run())
    try:
        await asyncio.wait_for(inf.wait_synced(), 5)
        api.put(CONFIGMAPS, pod("a"))
        await until(lambda: names == ["a"])
        rv = inf.resource_version
        api.fail_next(500)  # the next watch attempt fails once
        api.close_watches()
        api.put(CONFIGMAPS, pod("b"))
        await until(lambda: names[-1:] == ["b"])
        watches = [r["query"] for r in api.requests if r["query"].get("watch")]
        assert len(watches) >= 2
        assert all(q["allowWatchBookmarks"] == "true" for q in watches)
        assert names.count("a") >= 1 and inf.get("b", "n") is not None
        assert int(inf.resource_version) > int(rv)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_resync_redelivers_modified(env) -> None:
    api, client = env
    api.put(PODS, pod("a"))
    inf = Informer(client, PODS, resync_seconds=0.02)
    seen: list[tuple[str, bool]] = []
    inf.add_handler(lambda t, o, old: seen.append((t, old is o)))
    task = asyncio.create_task(inf.run())
    try:
        await until(lambda: ("MODIFIED", True) in seen)
        assert seen[0] == ("ADDED", False)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_late_handler_gets_cache_replayed(env) -> None:
    api, client = env
    api.put(PODS, pod("a"))
    inf = Informer(client, PODS)
    task = asyncio.create_task(inf.run())
    try:
        await asyncio.wait_for(inf.wait_synced(), 5)
        seen = []
        inf.add_handler(lambda t, o, old: seen.append(t))
        inf.add_index("ns", lambda o: [o["metadata"]["namespace"]])
        assert seen == ["ADDED"] and len(inf.by_index("ns", "n")) == 1
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
