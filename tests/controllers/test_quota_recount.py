"""The quota controller never hands quota that admission charged back before the charged
object shows in its caches (two pods past ``count/pods: 1`` was the host's refusal lost)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from vkube.api import errors
from vkube.apiserver.server import ControlPlane
from vkube.client import Client
from vkube.client.resources import NAMESPACES, PODS, RESOURCEQUOTAS
from vkube.controllers.informer import Informer
from vkube.controllers.resourcequota import ResourceQuotaController
from vkube.controllers.runtime import ControllerManager

from tests.syncer.conftest import eventually


def _pod(name: str) -> dict:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "i"}]}}


async def test_recount_behind_the_pod_cache_keeps_the_charge(tmp_path: Path, monkeypatch):
    # the controller's pod cache runs 1.5 s behind (as on a loaded machine)
    apply = Informer._apply

    def lagging(self, typ, obj):
        if self.res is PODS and typ == "ADDED":
            asyncio.get_running_loop().call_later(1.5, apply, self, typ, obj)
            return
        apply(self, typ, obj)
    monkeypatch.setattr(Informer, "_apply", lagging)

    cp = ControlPlane(data_dir=tmp_path / "cp", name="cp")
    await cp.start()
    c = Client(cp.url, ssl=cp.client_ssl())
    mgr = ControllerManager(Client(cp.url, ssl=cp.client_ssl()), identity="cm",
                            leader_election=False)
    ctrl = mgr.add(ResourceQuotaController)
    task = asyncio.create_task(mgr.run())
    try:
        await c.create(NAMESPACES, {"metadata": {"name": "t"}})
        await c.create(RESOURCEQUOTAS, {"metadata": {"name": "q"},
                                        "spec": {"hard": {"count/pods": "1"}}}, namespace="t")

        async def known() -> None:
            q = await c.get(RESOURCEQUOTAS, "q", namespace="t")
            assert (q.get("status") or {}).get("used") == {"count/pods": "0"}
        await eventually(known, attempts=600)
        await c.create(PODS, _pod("one"), namespace="t")  # admission charges used=1
        # a recount (as the periodic resync makes) while the cache does not show "one" yet
        await ctrl.reconcile("t/q")
        q = await c.get(RESOURCEQUOTAS, "q", namespace="t")
        assert q["status"]["used"] == {"count/pods": "1"}
        with pytest.raises(errors.Forbidden, match="exceeded quota: q"):
            await c.create(PODS, _pod("two"), namespace="t")

        # a deletion is still given back at once (once the cache has caught up)
        async def cached() -> None:
            assert ctrl.watched[("", "pods")].get("one", "t") is not None  # type: ignore[attr-defined]
        await eventually(cached, attempts=600)
        await c.delete(PODS, "one", namespace="t", grace_period_seconds=0)

        async def freed() -> None:
            q = await c.get(RESOURCEQUOTAS, "q", namespace="t")
            assert q["status"]["used"] == {"count/pods": "0"}
        await eventually(freed, attempts=600)
        await c.create(PODS, _pod("three"), namespace="t")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await mgr.client.close()
        await c.close()
        await cp.stop()
