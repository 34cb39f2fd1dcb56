"""A CRD deleted while the garbage collector watches its resource: the collector stops that
informer at once (no list/watch retried against a 404 forever), and when the CRD comes back
it watches it again and collects dependents of its objects (kubectl drives the cluster)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from vkube.api import errors
from vkube.client.resources import CONFIGMAPS
from vkube.controllers.gc import GarbageCollector
from vkube.controllers.runtime import ControllerManager

from .test_integration import eventually

CRD = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
       "metadata": {"name": "widgets.example.com"},
       "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
                "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
                    "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}]}}


@pytest.fixture
async def gc(control_plane):
    client = control_plane.client()
    mgr = ControllerManager(client, identity="test-cm", leader_election=False)
    collector = mgr.add(GarbageCollector)
    task = asyncio.create_task(mgr.run())
    try:
        await asyncio.wait_for(mgr.started.wait(), 60)
        yield control_plane, client, collector
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


def watched(collector: GarbageCollector) -> set[str]:
    return {r.plural for r in collector.informers}


async def test_deleted_crd_is_no_longer_watched_and_comes_back(gc, caplog) -> None:
    rcp, client, collector = gc
    caplog.set_level(logging.WARNING, logger="vkube.controllers.informer")

    async def kubectl(*args: str, input: str | None = None) -> str:
        return (await asyncio.to_thread(rcp.kubectl, *args, input=input)).stdout

    async def collected(widget: str) -> None:
        """A ConfigMap owned by a new Widget goes with it."""
        w = json.loads(await kubectl("create", "-o", "json", "-f", "-", input=json.dumps(
            {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": widget, "namespace": "default"}})))
        await client.create(CONFIGMAPS, {"metadata": {"name": f"of-{widget}", "namespace": "default", "ownerReferences": [
            {"apiVersion": "example.com/v1", "kind": "Widget", "name": widget, "uid": w["metadata"]["uid"]}]}},
            namespace="default")
        await kubectl("delete", "widget", widget)

        async def gone() -> bool:
            try:
                await client.get(CONFIGMAPS, f"of-{widget}", namespace="default")
            except errors.NotFound:
                return True
            return False
        await eventually(gone, timeout=90)

    await kubectl("create", "-f", "-", input=json.dumps(CRD))
    await eventually(lambda: asyncio.sleep(0, "widgets" in watched(collector)), timeout=90)
    await collected("w1")

    await kubectl("delete", "crd", "widgets.example.com")
    await eventually(lambda: asyncio.sleep(0, "widgets" not in watched(collector)), timeout=90)
    before = [r for r in caplog.records if "informer widgets" in r.getMessage()]
    await asyncio.sleep(4)  # the informer's retries come every 0.05…2 s over this span
    after = [r for r in caplog.records if "informer widgets" in r.getMessage()]
    assert after == before, [r.getMessage() for r in after]
    assert len(before) <= 3, [r.getMessage() for r in before]  # at most a retry or two while it left

    await kubectl("create", "-f", "-", input=json.dumps(CRD))
    await eventually(lambda: asyncio.sleep(0, "widgets" in watched(collector)), timeout=90)
    await collected("w2")
