"""Two real control planes (virtual + host) and a running Syncer between them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vkube.api import errors
from vkube.apiserver.server import ControlPlane
from vkube.client import Client
from vkube.client.resources import NAMESPACES, NODES
from vkube.syncer import Syncer, Values, load_values

VC = "vc1"
HOST_NS = "vkube-vc1"


async def eventually(check: Callable[[], Awaitable[Any]], *, attempts: int = 200,
                     delay: float = 0.05) -> Any:
    """Retry ``check`` (an async function that asserts and returns) until it passes."""
    for i in range(attempts):
        try:
            return await check()
        except (AssertionError, LookupError):
            if i == attempts - 1:
                raise
            await asyncio.sleep(delay)


@dataclass
class Pair:
    virtual: Client
    host: Client
    syncer: Syncer
    task: asyncio.Task[None]


@pytest.fixture
async def planes(tmp_path: Path) -> AsyncIterator[tuple[ControlPlane, ControlPlane]]:
    vcp = ControlPlane(data_dir=tmp_path / "virtual", name="virtual", allocate_service_ips=False)
    hcp = ControlPlane(data_dir=tmp_path / "host", name="host")
    await vcp.start()
    await hcp.start()
    # a host cluster runs kube-controller-manager: its quota controller fills in the status of
    # the quotas the syncer makes (ResourceQuota admission refuses while status is unknown)
    from vkube.controllers.resourcequota import ResourceQuotaController
    from vkube.controllers.runtime import ControllerManager

    host_client = Client(hcp.url, ssl=hcp.client_ssl())
    mgr = ControllerManager(host_client, identity="host-cm", leader_election=False)
    mgr.add(ResourceQuotaController)
    host_cm = asyncio.create_task(mgr.run())
    try:
        yield vcp, hcp
    finally:
        host_cm.cancel()
        await asyncio.gather(host_cm, return_exceptions=True)
        await host_client.close()
        await vcp.stop()
        await hcp.stop()


async def start_syncer(vcp: ControlPlane, hcp: ControlPlane, values: Values | None = None,
                       **kw: Any) -> Pair:
    virtual, host = Client(vcp.url, ssl=vcp.client_ssl()), Client(hcp.url, ssl=hcp.client_ssl())
    syncer = Syncer(name=VC, virtual=virtual, host=host, host_namespace=HOST_NS,
                    values=values or load_values(""), virtual_pki=vcp.pki, **kw)
    task = asyncio.create_task(syncer.run())
    await asyncio.wait_for(syncer.wait_ready(), 30)
    return Pair(virtual, host, syncer, task)


async def stop_syncer(pair: Pair) -> None:
    await pair.syncer.stop()
    await pair.virtual.close()
    await pair.host.close()


@pytest.fixture
async def synced(planes: tuple[ControlPlane, ControlPlane]) -> AsyncIterator[Pair]:
    vcp, hcp = planes
    async with Client(hcp.url, ssl=hcp.client_ssl()) as host:
        await host.create(NODES, {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": "node-1", "labels": {"kubernetes.io/os": "linux",
                                         "kubernetes.io/arch": "amd64", "disk": "ssd"}}})
    async with Client(vcp.url, ssl=vcp.client_ssl()) as virtual:
        await virtual.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                          "metadata": {"name": "demo", "labels": {"team": "a"}}})
    pair = await start_syncer(vcp, hcp)
    try:
        yield pair
    finally:
        await stop_syncer(pair)


def getter(client, res, name, ns=HOST_NS):
    """An ``eventually`` check: the object, once it exists (ns is ignored for cluster-scoped kinds)."""
    async def check():
        try:
            return await client.get(res, name, namespace=ns)
        except errors.NotFound as e:
            raise AssertionError(f"{name} not there yet") from e
    return check


def gone(client, res, name, ns=HOST_NS):
    """An ``eventually`` check: passes once the object is gone."""
    async def check():
        try:
            await client.get(res, name, namespace=ns)
        except errors.NotFound:
            return
        raise AssertionError(f"{name} still there")
    return check
