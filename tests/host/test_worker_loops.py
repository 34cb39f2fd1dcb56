"""The embedded host's loops run on the shared worker loop: the taint evictor and the
scheduler survive a non-API exception (retried with back-off) and forget the back-off after a
success. The informers and the API client are small stand-ins here so that the failure can be
injected exactly once; the real loops run unchanged."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from vkube.host.lifecycle import TaintEvictor
from vkube.host.nodes import build_node
from vkube.host.scheduler import Scheduler

Obj = dict[str, Any]


async def _until(cond: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + 60.0
    while not cond():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


class Cache:
    """An informer's read side: get, list, by_index, handlers; ``broken`` gets raise once."""

    def __init__(self, *objs: Obj) -> None:
        self.objs = {(o["metadata"].get("namespace"), o["metadata"]["name"]): o for o in objs}
        self.handlers: list[Any] = []
        self.broken = 0

    def add_handler(self, h: Any) -> None:
        self.handlers.append(h)

    def add_index(self, name: str, fn: Any) -> None:
        pass

    def get(self, name: str, namespace: str | None = None) -> Obj | None:
        if self.broken:
            self.broken -= 1
            raise KeyError("metadata")  # a malformed cached object, say
        return self.objs.get((namespace, name))

    def list(self, namespace: str | None = None, selector: Any = None) -> list[Obj]:
        return list(self.objs.values())

    def by_index(self, name: str, value: str) -> list[Obj]:
        return [o for o in self.objs.values() if o.get("spec", {}).get("nodeName") == value]


class Client:
    """Records writes; the first ``fail`` writes raise a non-API exception."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.writes: list[tuple[str, str, str | None]] = []

    async def _write(self, verb: str, res: Any, name: str, sub: str | None) -> Obj:
        if res.plural != "events" and self.fail:
            self.fail -= 1
            raise RuntimeError("connection reset by a buggy proxy")
        self.writes.append((verb, name, sub))
        return {}

    async def patch(self, res: Any, name: str, body: Obj, *, subresource: str | None = None,
                    **_: Any) -> Obj:
        return await self._write("patch", res, name, subresource)

    async def delete(self, res: Any, name: str, **_: Any) -> Obj:
        return await self._write("delete", res, name, None)

    async def create(self, res: Any, body: Obj, *, subresource: str | None = None,
                     name: str | None = None, **_: Any) -> Obj:
        return await self._write("create", res, name or body["metadata"].get("name", ""),
                                 subresource)

    async def close(self) -> None:
        pass


NODE = "vkube-host-node-1"


def _node() -> Obj:
    return build_node(1, cpu="4", memory="8Gi", kubelet_port=10250)


def _pod(name: str, node: str = "") -> Obj:
    return {"metadata": {"namespace": "default", "name": name, "uid": f"uid-{name}"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]},
            "status": {}}


async def test_taint_evictor_survives_non_api_errors_and_forgets() -> None:
    node = _node()
    node["spec"]["taints"] = [{"key": "dedicated", "value": "x", "effect": "NoExecute"}]
    pods, nodes = Cache(_pod("p", NODE)), Cache(node)
    client = Client(fail=3)
    ev = TaintEvictor(client, pods, nodes)  # type: ignore[arg-type]
    ev.queue.base_delay = 0.001
    pods.broken = 1  # first: a KeyError in the cache read, then three RuntimeErrors
    task = asyncio.create_task(ev.run())
    try:
        ev.queue.add("default/p")
        await _until(lambda: ev.evicted == 1, "the eviction")
        assert ("delete", "p", None) in client.writes
        assert ev.queue.num_requeues("default/p") == 0  # forgotten after the success
        assert not task.done()  # the loop lived through four failures
        # and it still works for the next pod
        pods.objs[("default", "q")] = _pod("q", NODE)
        ev.queue.add("default/q")
        await _until(lambda: ev.evicted == 2, "the second eviction")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_scheduler_survives_non_api_errors_and_forgets() -> None:
    pods, nodes = Cache(_pod("p")), Cache(_node())
    client = Client()
    sched = Scheduler(client, pods, nodes)  # type: ignore[arg-type]
    sched.queue.base_delay = 0.001
    for h in nodes.handlers:
        h("ADDED", nodes.objs[(None, NODE)], None)
    pods.broken = 3
    task = asyncio.create_task(sched.run())
    try:
        sched.queue.add("default/p")
        await _until(lambda: sched.scheduled == 1, "the binding")
        assert ("create", "p", "binding") in client.writes
        assert sched.queue.num_requeues("default/p") == 0
        assert not task.done()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
