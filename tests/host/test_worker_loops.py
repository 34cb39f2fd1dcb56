"""The embedded host's loops run on the shared worker loop: the taint evictor and the
scheduler survive non-API exceptions (retried with back-off) and forget the back-off after a
success. They run unchanged on the test double's informers and client; the failures are
injected into that double exactly a few times."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from tests.fakes import FakeCluster

from vkube.api.meta import Obj
from vkube.client.resources import NODES, PODS
from vkube.host.lifecycle import TaintEvictor
from vkube.host.nodes import build_node
from vkube.host.scheduler import Scheduler

NODE = "vkube-host-node-1"


async def _until(cond: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + 60.0
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


def _pod(name: str, node: str = "") -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": "default", "name": name},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
            "status": {}}


def _break(obj: Any, method: str, times: int, exc: BaseException) -> list[int]:
    """Make ``obj.method`` raise ``exc`` on its next ``times`` calls; returns the count left."""
    left = [times]
    real = getattr(obj, method)

    def broken(*a: Any, **kw: Any) -> Any:
        if left[0] > 0:
            left[0] -= 1
            raise exc
        return real(*a, **kw)

    setattr(obj, method, broken)
    return left


async def _cluster(*pods: Obj, taint: bool) -> FakeCluster:
    c = FakeCluster()
    node = build_node(1, cpu="4", memory="8Gi", kubelet_port=10250)
    if taint:
        node["spec"]["taints"] = [{"key": "dedicated", "value": "x", "effect": "NoExecute"}]
    await c.client.create(NODES, node)
    for p in pods:
        await c.client.create(PODS, p)
    return c


async def test_taint_evictor_survives_non_api_errors_and_forgets() -> None:
    c = await _cluster(_pod("p", NODE), _pod("q", NODE), taint=True)
    ev = TaintEvictor(c.client, c.informer(PODS), c.informer(NODES))  # type: ignore[arg-type]
    ev.queue.base_delay = 0.001
    reads = _break(c.informer(PODS), "get", 1, KeyError("metadata"))  # a malformed cache entry
    writes = _break(c.client, "patch", 3, RuntimeError("connection reset by a buggy proxy"))
    task = asyncio.create_task(ev.run())
    try:
        ev.queue.add("default/p")
        await _until(lambda: ev.evicted == 1, "the eviction")
        assert reads == [0] and writes == [0]  # four failures, each retried
        assert c.get("pods", "p") is None
        assert ev.queue.num_requeues("default/p") == 0  # forgotten after the success
        assert not task.done()  # the loop lived through them all, and still works:
        ev.queue.add("default/q")
        await _until(lambda: ev.evicted == 2, "the second eviction")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_scheduler_survives_non_api_errors_and_forgets() -> None:
    c = await _cluster(_pod("p"), taint=False)
    sched = Scheduler(c.client, c.informer(PODS), c.informer(NODES))  # type: ignore[arg-type]
    sched.queue.base_delay = 0.001
    sched._on_node("ADDED", c.get("nodes", NODE, None), None)  # noqa: SLF001 - informer replay
    reads = _break(c.informer(PODS), "get", 3, KeyError("spec"))
    task = asyncio.create_task(sched.run())
    try:
        sched.queue.add("default/p")
        await _until(lambda: sched.scheduled == 1, "the binding")
        assert reads == [0]
        assert ("bind", "pods", "p") in c.client.calls
        assert c.get("pods", "p")["spec"]["nodeName"] == NODE
        assert sched.queue.num_requeues("default/p") == 0
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_kubelet_folds_a_short_lived_status_into_the_next_one() -> None:
    """A starting pod's ContainerCreating moment (its next change due within
    ``coalesce_seconds``) is not written on its own: a rollout's pod costs one status write,
    not three. A state that lasts (here a container start delayed 3 s) is still written."""
    from vkube.host.kubelet import Kubelet

    c = await _cluster(taint=False)
    writes: list[tuple[str, str]] = []
    real = c.client.patch

    async def patch(res: Any, name: str, body: Any, **kw: Any) -> Any:
        if kw.get("subresource") == "status":
            writes.append((name, body["status"].get("phase")))
        return await real(res, name, body, **kw)

    c.client.patch = patch  # type: ignore[method-assign]
    kubelet = Kubelet(c.client, c.informer(PODS), c.informer(NODES), owns=lambda n: True)
    task = asyncio.create_task(kubelet.run())
    try:
        slow = _pod("slow", NODE)
        slow["metadata"]["annotations"] = {"vkube.io/stage-delay.container-start": "3s"}
        await c.client.create(PODS, _pod("fast", NODE))
        await c.client.create(PODS, slow)
        await _until(lambda: ("slow", "Running") in writes and ("fast", "Running") in writes,
                     "both pods Running")
        await asyncio.sleep(0.5)  # nothing else is due: no more writes
        assert [w for w in writes if w[0] == "fast"] == [("fast", "Running")]
        assert [w for w in writes if w[0] == "slow"] == [("slow", "Pending"), ("slow", "Running")]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
