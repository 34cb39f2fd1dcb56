"""The pod syncer's host writes run concurrently (a rollout's creates wait on round trips to
the host), bounded by its workers, never two at once for one pod, and a create whose reply was
lost (a timeout) and is retried never makes a second host pod."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from vkube.api import errors
from vkube.apiserver.server import ControlPlane
from vkube.client import Client
from vkube.client.resources import EVENTS, NAMESPACES, NODES, PODS
from vkube.syncer import Syncer, load_values
from vkube.syncer.pods import PodSyncer

from .conftest import HOST_NS, VC, Pair, eventually, stop_syncer

N = 24


class SlowHost(Client):
    """A host client whose pod creates take 50 ms on the wire (a loaded host), counting how
    many are in flight; ``lose`` names pods whose first create reaches the host but whose
    reply is lost, as on a timeout."""

    def __init__(self, server: str, **kw: Any) -> None:
        super().__init__(server, **kw)
        self.in_flight: dict[str, int] = {}
        self.most = 0
        self.overlapped: list[str] = []  # pods with two creates in flight at once
        self.posts: dict[str, int] = {}
        self.lose: set[str] = set()
        self.gate: asyncio.Event | None = None  # while set and not open, creates wait on it

    async def create(self, res: Any, obj: Any, **kw: Any) -> Any:
        if res != PODS or kw.get("subresource"):
            return await super().create(res, obj, **kw)
        name = obj["metadata"]["name"]
        if self.in_flight.get(name):
            self.overlapped.append(name)
        self.in_flight[name] = self.in_flight.get(name, 0) + 1
        self.posts[name] = self.posts.get(name, 0) + 1
        self.most = max(self.most, sum(self.in_flight.values()))
        try:
            await asyncio.sleep(0.05)
            if self.gate is not None:
                await self.gate.wait()
            made = await super().create(res, obj, **kw)
            if name in self.lose:
                self.lose.discard(name)
                raise errors.ServiceUnavailable(f"POST pods/{name}: TimeoutError")
            return made
        finally:
            self.in_flight[name] -= 1


@pytest.fixture
async def slow(planes: tuple[ControlPlane, ControlPlane]) -> AsyncIterator[Pair]:
    vcp, hcp = planes
    async with Client(hcp.url, ssl=hcp.client_ssl()) as host:
        await host.create(NODES, {"metadata": {"name": "node-1"}})
    async with Client(vcp.url, ssl=vcp.client_ssl()) as virtual:
        await virtual.create(NAMESPACES, {"metadata": {"name": "demo"}})
    virtual, host = Client(vcp.url, ssl=vcp.client_ssl()), SlowHost(hcp.url, ssl=hcp.client_ssl())
    syncer = Syncer(name=VC, virtual=virtual, host=host, host_namespace=HOST_NS,
                    values=load_values(""), virtual_pki=vcp.pki)
    task = asyncio.create_task(syncer.run())
    await asyncio.wait_for(syncer.wait_ready(), 30)
    pair = Pair(virtual, host, syncer, task)
    try:
        yield pair
    finally:
        await stop_syncer(pair)


def pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "demo", "labels": {"app": "burst"}},
            "spec": {"containers": [{"name": "c", "image": "nginx"}],
                     "automountServiceAccountToken": False}}


async def test_host_creates_run_concurrently_within_the_worker_bound_and_once_each(slow: Pair):
    host = slow.host
    assert isinstance(host, SlowHost)
    workers = PodSyncer.workers
    lost = "p-3-x-demo-x-vc1"
    host.lose.add(lost)  # its create lands, its reply does not: the retry must not duplicate
    await asyncio.gather(*(slow.virtual.create(PODS, pod(f"p-{i}"), namespace="demo")
                           for i in range(N)))

    async def host_pods() -> list[dict]:
        items = (await host.list(PODS, namespace=HOST_NS))["items"]
        assert len(items) == N, f"{len(items)} host pods of {N}"
        return items

    items = await eventually(host_pods, attempts=1200)
    assert len({p["metadata"]["name"] for p in items}) == N
    assert 1 < host.most <= min(workers, PodSyncer.max_creates), host.most  # concurrent, bounded
    assert host.overlapped == []  # one pod's create never runs twice at once
    assert lost not in host.lose  # its reply was lost; retried (or found by the watch) …
    await asyncio.sleep(0.5)
    assert len((await host.list(PODS, namespace=HOST_NS))["items"]) == N  # … and made once
    assert len((await slow.virtual.list(PODS, namespace="demo"))["items"]) == N
    # the retry met AlreadyExists: that is not a refusal the tenant is told about
    events = (await slow.virtual.list(EVENTS, namespace="demo"))["items"]
    assert [e for e in events if e.get("reason") == "HostRefused"] == []


async def test_pods_running_on_the_host_go_up_while_creates_wait(slow: Pair):
    """A rollout queues many creates at once: while the host holds every create in flight
    (``max_creates``), pods the host already runs are still bound and shown Running in the
    virtual cluster: creates never take every worker. The held creates then all complete."""
    host = slow.host
    assert isinstance(host, SlowHost)
    hname = "early-x-demo-x-vc1"
    await slow.virtual.create(PODS, pod("early"), namespace="demo")

    async def made() -> None:
        assert [p for p in (await host.list(PODS, namespace=HOST_NS))["items"]
                if p["metadata"]["name"] == hname]
    await eventually(made, attempts=1200)
    host.gate = asyncio.Event()  # the host now holds every create
    n = PodSyncer.max_creates + 8
    await asyncio.gather(*(slow.virtual.create(PODS, pod(f"q-{i}"), namespace="demo") for i in range(n)))

    async def held() -> None:
        assert sum(host.in_flight.values()) == PodSyncer.max_creates
    await eventually(held, attempts=1200)
    # the host schedules and runs the early pod meanwhile
    await host.create(PODS, {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": hname},
                             "target": {"apiVersion": "v1", "kind": "Node", "name": "node-1"}},
                      namespace=HOST_NS, subresource="binding", name=hname)
    await host.patch(PODS, hname, {"status": {"phase": "Running"}}, namespace=HOST_NS,
                     subresource="status")

    async def early_up() -> None:
        vpod = await slow.virtual.get(PODS, "early", namespace="demo")
        assert vpod["spec"].get("nodeName") == "node-1"
        assert vpod["status"]["phase"] == "Running"
    await eventually(early_up, attempts=1200)
    assert sum(host.in_flight.values()) == PodSyncer.max_creates  # still held: no worker was free otherwise
    host.gate.set()

    async def all_made() -> None:
        items = (await host.list(PODS, namespace=HOST_NS))["items"]
        assert len(items) == n + 1, f"{len(items)} host pods of {n + 1}"
    await eventually(all_made, attempts=1200)
    assert host.most <= PodSyncer.max_creates
    assert host.overlapped == []
