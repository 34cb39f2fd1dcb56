"""What an idle cluster asks its API (issue 18: idle clusters use no CPU): the control plane's
own Services are kept from the informer caches — no GET on a period, yet an edit or a deletion
is put right as soon as the cache shows it — and the garbage collector's rediscovery asks only
``/apis`` while no group version came or went."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.cluster.conftest import eventually
from vkube.api import errors
from vkube.client.resources import ENDPOINTS, SERVICES
from vkube.cluster.incluster import InClusterServices, api_backend
from vkube.controllers.gc import GarbageCollector
from vkube.controllers.informer import Informer


def _count_gets(client: Any) -> list[str]:
    seen: list[str] = []
    get = client.get

    async def counted(res: Any, name: str, **kw: Any) -> Any:
        seen.append(f"{res.plural}/{name}")
        return await get(res, name, **kw)

    client.get = counted
    return seen


async def test_control_plane_services_are_kept_from_the_cache(control_plane: Any) -> None:
    async with control_plane.client() as c, control_plane.client() as own:
        caches = {SERVICES: Informer(c, SERVICES), ENDPOINTS: Informer(c, ENDPOINTS)}
        tasks = [asyncio.create_task(i.run()) for i in caches.values()]
        backend = api_backend("127.0.0.1", 6443)
        try:
            await asyncio.wait_for(asyncio.gather(*(i.wait_synced() for i in caches.values())), 60)
            gets = _count_gets(own)  # the reconciler's client; the test reads with ``c``
            services = InClusterServices(own, [backend], informers=caches.__getitem__)
            run = asyncio.create_task(services.run())
            await asyncio.wait_for(services.synced.wait(), 60)

            async def api_port() -> None:
                ep = await c.get(ENDPOINTS, "kubernetes", namespace="default")
                assert ep["subsets"][0]["ports"][0]["port"] == 6443, ep

            await eventually(api_port, timeout=60)
            # a tenant points the Endpoints elsewhere: put right from the watch event
            ep = await c.get(ENDPOINTS, "kubernetes", namespace="default")
            ep["subsets"][0]["ports"][0]["port"] = 9999
            await c.update(ENDPOINTS, ep)
            await eventually(api_port, timeout=60)
            # and a deleted Service comes back
            await c.delete(SERVICES, "kubernetes", namespace="default")

            async def back() -> None:
                try:
                    await c.get(SERVICES, "kubernetes", namespace="default")
                except errors.NotFound:
                    raise AssertionError("not recreated yet") from None

            await eventually(back, timeout=60)
            assert services.period >= 300  # the period is only a safety net
            assert gets == [], "the reconciler read the API instead of its caches"
            run.cancel()
            await asyncio.gather(run, return_exceptions=True)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


class _FakeClient:
    """Discovery as a client sees it: ``/apis`` and what ``discover()`` finds."""

    def __init__(self, groups: list[tuple[str, str]]) -> None:
        self.groups = groups
        self.asked: list[str] = []

    async def request(self, method: str, path: str, **kw: Any) -> Any:
        self.asked.append(path)
        return {"groups": [{"name": g, "preferredVersion": {"version": v}, "versions": [{"version": v}]}
                           for g, v in self.groups]}


async def test_rediscovery_asks_apis_only_while_nothing_moved() -> None:
    gc = GarbageCollector.__new__(GarbageCollector)  # only the discovery bookkeeping
    client = _FakeClient([("apps", "v1"), ("metrics.k8s.io", "v1beta1")])
    gc.client = client  # type: ignore[assignment]
    gc._found_versions = {("", "v1"), ("apps", "v1"), ("metrics.k8s.io", "v1beta1")}
    gc._last_full = asyncio.get_running_loop().time()
    assert not await gc._discovery_moved()
    assert client.asked == ["/apis"]
    client.groups.append(("example.com", "v1"))  # an APIService added (or now available)
    assert await gc._discovery_moved()
    client.groups[:] = [("apps", "v1")]  # one deleted
    gc._found_versions = {("", "v1"), ("apps", "v1"), ("metrics.k8s.io", "v1beta1")}
    assert await gc._discovery_moved()
    client.groups[:] = [("apps", "v1"), ("metrics.k8s.io", "v1beta1")]
    gc._last_full -= gc.full_rediscover_seconds  # and a full pass every so often regardless
    assert await gc._discovery_moved()
