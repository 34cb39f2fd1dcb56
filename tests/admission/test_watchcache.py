"""Admission reads namespaces, quotas, limit ranges and service accounts from watch-kept
caches (``vkube.apiserver.watchcache``). These tests pin what that must not change: a write
is seen by the very next request (no waiting for the cache), a miss falls back to the store
(an object another API server wrote on the same store), and a quota charged from a stale copy
is re-read and charged once, correctly."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conftest import RunningControlPlane
from vkube.api import errors
from vkube.apiserver.request import internal_context
from vkube.apiserver.server import ControlPlane
from vkube.client.resources import CONFIGMAPS, LIMITRANGES, NAMESPACES, PODS, RESOURCEQUOTAS


def cm(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}}


def ns(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


async def wait_synced(cp: ControlPlane, kind: str) -> None:
    """The cache lists in the background; these tests want it serving (not falling back)."""
    assert cp.ctx is not None
    cache = cp.ctx.cache_for("", kind)
    assert cache is not None
    for _ in range(6000):
        if cache.synced:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the {kind} cache never listed")


async def test_namespace_create_and_terminate_are_seen_by_the_next_request(control_plane: RunningControlPlane):
    await wait_synced(control_plane.cp, "Namespace")
    async with control_plane.client() as c:
        for i in range(15):
            await c.create(NAMESPACES, ns(f"n{i}"))
            made = await c.create(CONFIGMAPS, cm("x"), namespace=f"n{i}")  # no wait in between
            assert made["metadata"]["namespace"] == f"n{i}"
        for i in range(15):
            await c.delete(NAMESPACES, f"n{i}")  # Terminating: nothing empties it without controllers
            with pytest.raises(errors.Forbidden) as refused:
                await c.create(CONFIGMAPS, cm("y"), namespace=f"n{i}")
            assert f"unable to create new content in namespace n{i} because it is being terminated" in str(
                refused.value)
        with pytest.raises(errors.NotFound) as missing:
            await c.create(CONFIGMAPS, cm("z"), namespace="never-made")
        assert 'namespaces "never-made" not found' in str(missing.value)


async def test_creates_read_no_namespace_from_the_store(control_plane: RunningControlPlane, monkeypatch):
    """What the cache is for: a create in an existing namespace costs no store read."""
    store = control_plane.cp.ctx.store  # type: ignore[union-attr]
    await wait_synced(control_plane.cp, "Namespace")
    await wait_synced(control_plane.cp, "ResourceQuota")
    reads: list[str] = []
    real_get, real_range = store.get, store.range

    async def get(key: str, **kw):  # noqa: ANN202
        reads.append(key)
        return await real_get(key, **kw)

    async def range_(prefix: str, **kw):  # noqa: ANN202
        reads.append(prefix)
        return await real_range(prefix, **kw)

    async with control_plane.client() as c:
        # the first create in a namespace without quotas looks them up live once (upstream's
        # quota accessor; the empty answer then stands 30 s)
        await c.create(CONFIGMAPS, cm("warm"), namespace="default")
    monkeypatch.setattr(store, "get", get)
    monkeypatch.setattr(store, "range", range_)
    async with control_plane.client() as c:
        for i in range(5):
            await c.create(CONFIGMAPS, cm(f"r{i}"), namespace="default")
    assert reads == []


async def test_another_api_servers_namespace_is_found_by_a_live_read(control_plane: RunningControlPlane):
    """A second API server on the same SQLite file: its commits reach this server's watches
    only when this server's own next write reveals them, so its namespace is a cache miss."""
    await wait_synced(control_plane.cp, "Namespace")
    other = ControlPlane(data_dir=control_plane.cp.data_dir)
    await other.start()
    try:
        assert other.ctx is not None
        storage = other.ctx.storage_for("", "Namespace")
        assert storage is not None
        await storage.create(internal_context("create", resource="namespaces", version="v1"), None, ns("elsewhere"))
        async with control_plane.client() as c:
            made = await c.create(CONFIGMAPS, cm("here"), namespace="elsewhere")
            assert made["metadata"]["namespace"] == "elsewhere"
    finally:
        await other.stop()


async def test_quota_charged_from_a_stale_copy_is_reread(control_plane: RunningControlPlane, tmp_path: Path):
    """The quota's status is bumped behind this server's back (another API server): the charge
    from the cached copy loses its compare-and-swap, and the retry reads the store."""
    cp = control_plane.cp
    async with control_plane.client() as c:
        await c.create(NAMESPACES, ns("q"))
        q = await c.create(RESOURCEQUOTAS, {"apiVersion": "v1", "kind": "ResourceQuota",
                                            "metadata": {"name": "cms"}, "spec": {"hard": {"configmaps": "3"}}},
                           namespace="q")
        q["status"] = {"hard": {"configmaps": "3"}, "used": {"configmaps": "0"}}
        await c.update(RESOURCEQUOTAS, q, subresource="status")
        await wait_synced(cp, "ResourceQuota")
        await c.create(CONFIGMAPS, cm("a"), namespace="q")
        assert (await c.get(RESOURCEQUOTAS, "cms", namespace="q"))["status"]["used"]["configmaps"] == "1"

        other = ControlPlane(data_dir=cp.data_dir)
        await other.start()
        try:
            assert other.ctx is not None
            storage = other.ctx.storage_for("", "ResourceQuota")
            assert storage is not None
            rc = internal_context("update", resource="resourcequotas", version="v1", namespace="q",
                                  name="cms", subresource="status")
            live = await storage.get(rc, "q", "cms")
            live["status"]["used"]["configmaps"] = "2"  # as if a configmap was made through `other`
            await storage.update(rc, "q", "cms", live, subresource="status")
        finally:
            await other.stop()

        await c.create(CONFIGMAPS, cm("b"), namespace="q")  # charged on the store's "2": now 3
        assert (await c.get(RESOURCEQUOTAS, "cms", namespace="q"))["status"]["used"]["configmaps"] == "3"
        with pytest.raises(errors.Forbidden) as refused:
            await c.create(CONFIGMAPS, cm("c"), namespace="q")
        assert "exceeded quota: cms, requested: configmaps=1, used: configmaps=3, limited: configmaps=3" in str(
            refused.value)


async def test_limit_range_applies_to_the_next_pod(control_plane: RunningControlPlane):
    async with control_plane.client() as c:
        await c.create(NAMESPACES, ns("lr"))
        for i in range(3):
            await c.create(LIMITRANGES, {
                "apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": f"l{i}"},
                "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": f"{i + 1}00m"}}]}},
                namespace="lr")
            pod = await c.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}"},
                                        "spec": {"containers": [{"name": "c", "image": "nginx"}]}}, namespace="lr")
            assert pod["spec"]["containers"][0]["resources"]["requests"]["cpu"] == f"{i + 1}00m"
            await c.delete(LIMITRANGES, f"l{i}", namespace="lr")
        pod = await c.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "bare"},
                                    "spec": {"containers": [{"name": "c", "image": "nginx"}]}}, namespace="lr")
        assert "resources" not in pod["spec"]["containers"][0] or not pod["spec"]["containers"][0]["resources"]


async def test_caches_stop_with_the_control_plane(tmp_path: Path):
    cp = ControlPlane(data_dir=tmp_path / "d")
    await cp.start()
    assert cp.ctx is not None
    cache = cp.ctx.cache_for("", "Namespace")
    assert cache is not None and cache._task is not None
    await wait_synced(cp, "Namespace")
    task = cache._task
    await cp.stop()
    await asyncio.gather(task, return_exceptions=True)
    assert task.done() and not cache.synced
