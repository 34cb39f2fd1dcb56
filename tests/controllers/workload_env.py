"""A fixture for workload integration tests: a real control plane, the embedded host (3 nodes,
scheduler, simulated kubelets) and the controller manager with every built-in controller,
its clock offset adjustable so CronJob tests need not wait for the minute."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from vkube.api.errors import StatusError
from vkube.controllers.registry import default_controllers
from vkube.controllers.runtime import ControllerManager
from vkube.host.runner import EmbeddedHost
from vkube.host.stages import KubeletConfig


class Clock:
    """Real time plus an offset the test can move forward."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset


@dataclass
class WorkloadEnv:
    cp: Any  # tests.conftest.RunningControlPlane
    client: Any
    clock: Clock = field(default_factory=Clock)
    mgr: Any = None  # the ControllerManager, for tests that tune a controller (backoff_base)

    async def kubectl(self, *args: str, input: str | None = None) -> str:
        proc = await asyncio.to_thread(self.cp.kubectl, *args, input=input)
        return proc.stdout


@contextlib.asynccontextmanager
async def running_workloads(control_plane: Any, *,
                            kubelet: KubeletConfig | None = None) -> AsyncIterator[WorkloadEnv]:
    """The control plane plus embedded host and every built-in controller, for a test body."""
    client = control_plane.client()
    host = EmbeddedHost(control_plane.url, pki=control_plane.cp.pki, nodes=3, seed=1,
                        kubelet=kubelet or KubeletConfig(stop_seconds=0.05))
    await host.start()
    env = WorkloadEnv(control_plane, client)
    mgr = ControllerManager(client, identity="test-cm", leader_election=False, clock=env.clock)
    env.mgr = mgr
    for cls in default_controllers():
        mgr.add(cls)
    task = asyncio.create_task(mgr.run())
    try:
        await asyncio.wait_for(mgr.started.wait(), 15)
        yield env
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await host.stop()
        await client.close()


@pytest.fixture
async def workloads(control_plane):
    async with running_workloads(control_plane) as env:
        yield env


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    """Retry ``check`` until it returns truthy without raising; the last error explains."""
    last: BaseException | None = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    got = await check()
                    if got:
                        return got
                    last = AssertionError(f"got {got!r}")
                except (AssertionError, StatusError) as e:
                    last = e
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out; last: {last!r}") from None
