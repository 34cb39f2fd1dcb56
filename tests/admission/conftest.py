"""A control plane with its controllers (the serviceaccount and quota controllers make
``default`` service accounts and quota status), driven by the real kubectl."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.conftest import RunningControlPlane
from vkube.controllers.registry import default_controllers
from vkube.controllers.runtime import ControllerManager


@pytest.fixture
async def cluster(control_plane: RunningControlPlane) -> AsyncIterator[RunningControlPlane]:
    client = control_plane.client()
    mgr = ControllerManager(client, identity="test-cm", leader_election=False, root_ca_pem="PEM")
    for cls in default_controllers():
        mgr.add(cls)
    task = asyncio.create_task(mgr.run())
    try:
        await asyncio.wait_for(mgr.started.wait(), 60)
        yield control_plane
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()


async def kubectl(cp: RunningControlPlane, *args: str, check: bool = True, input: str | None = None):
    """kubectl in a thread: the API server shares this event loop."""
    return await asyncio.to_thread(cp.kubectl, *args, check=check, input=input)


async def eventually(fn: Callable[[], Any], *, timeout: float = 60.0, interval: float = 0.2) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    while True:
        try:
            last = await fn()
            if last:
                return last
        except AssertionError as exc:
            last = exc
        if loop.time() > deadline:
            raise AssertionError(f"condition not met in {timeout}s; last value {last!r}")
        await asyncio.sleep(interval)


async def get_json(cp: RunningControlPlane, *args: str) -> dict:
    return json.loads((await kubectl(cp, "get", *args, "-o", "json")).stdout)
