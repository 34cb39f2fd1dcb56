"""Fixtures for the composition root: an embedded host started through ``EmbeddedHostCluster``
and virtual clusters started through ``VirtualCluster``, all in the test's own event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import User, cleanup, make_user
from vkube.cluster import (ClusterConfig, EmbeddedHostCluster, HostConfig, HostConnection,
                           VirtualCluster)
from vkube.syncer.values import Values


async def eventually(check: Callable[[], Awaitable[Any]], *, timeout: float = 120.0,
                     delay: float = 0.25) -> Any:
    """Retry the async ``check`` until it stops raising AssertionError/LookupError. Generous:
    the machine's CPU is shared, so convergence time is not what these tests measure."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await check()
        except (AssertionError, LookupError):
            if loop.time() > deadline:
                raise
            await asyncio.sleep(delay)


@pytest.fixture
async def embedded_host(tmp_path: Path) -> AsyncIterator[EmbeddedHostCluster]:
    host = EmbeddedHostCluster(HostConfig(data_dir=tmp_path / "host", nodes=2, node_cpu="32",
                                          node_memory="64Gi"))
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


ClusterFactory = Callable[..., Awaitable[VirtualCluster]]


@pytest.fixture
async def virtual_cluster(tmp_path: Path,
                          embedded_host: EmbeddedHostCluster) -> AsyncIterator[ClusterFactory]:
    """``await virtual_cluster("name", values=...)``: a started VirtualCluster synced to the
    embedded host; every one still running is stopped at the end."""
    made: list[VirtualCluster] = []

    async def make(name: str, *, values: Values | None = None, **kw: Any) -> VirtualCluster:
        vc = VirtualCluster(ClusterConfig(
            name=name, data_dir=tmp_path / "vc" / name, values=values,
            host=HostConnection(str(embedded_host.kubeconfig)), leader_election=False, **kw))
        made.append(vc)
        await vc.start()
        return vc

    try:
        yield make
    finally:
        await asyncio.gather(*(vc.stop() for vc in made))


@pytest.fixture
def cli_user(tmp_path: Path) -> Iterator[User]:
    """A user of the ``vkube`` command with their own VKUBE_HOME and kubeconfig."""
    u = make_user(tmp_path / "user")
    yield u
    cleanup(u)
