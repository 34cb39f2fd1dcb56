"""The embedded scheduler's device allocator keeps an allocation it wrote as "assumed" until
its claims informer shows that write (kube-scheduler's assume cache): a pod scheduled in
between must not get the same device. Deterministic: fake informers, no server."""

from __future__ import annotations

import asyncio
from typing import Any

from vkube.host.dra import DeviceAllocator


class _Cache:
    def __init__(self, *objs: dict[str, Any]) -> None:
        self.objs: dict[tuple[str | None, str], dict[str, Any]] = {}
        for o in objs:
            self.put(o)

    def put(self, o: dict[str, Any]) -> None:
        self.objs[(o["metadata"].get("namespace"), o["metadata"]["name"])] = o

    def get(self, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.objs.get((namespace, name))

    def list(self, namespace: str | None = None) -> list[dict[str, Any]]:
        return list(self.objs.values())


class _Client:
    """Answers a status write with the next resourceVersion, as the API server does."""

    def __init__(self) -> None:
        self.rv = 100
        self.written: list[dict[str, Any]] = []

    async def update(self, res: Any, obj: dict[str, Any], **kw: Any) -> dict[str, Any]:
        self.rv += 1
        out = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
        self.written.append(out)
        return out


def _claim(name: str, rv: str = "5") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "resourceVersion": rv},
            "spec": {"devices": {"requests": [{"name": "gpu", "exactly": {"deviceClassName": "gpu"}}]}}}


def _pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "default", "uid": f"u-{name}"},
            "spec": {"resourceClaims": [{"name": "gpu", "resourceClaimName": f"{name}-gpu"}]}}


def test_a_written_allocation_stays_assumed_until_the_informer_shows_it() -> None:
    slice_ = {"metadata": {"name": "n1-gpu", "resourceVersion": "1"},
              "spec": {"nodeName": "n1", "driver": "gpu.example.com", "pool": {"name": "n1"},
                       "devices": [{"name": "gpu-0"}]}}
    claims = _Cache(_claim("a-gpu"), _claim("b-gpu"))
    client = _Client()
    alloc = DeviceAllocator(client, claims, _Cache(slice_),  # type: ignore[arg-type]
                            _Cache({"metadata": {"name": "gpu"}, "spec": {}}))

    why, a = alloc.prefilter(_pod("a"))
    assert why is None and a is not None
    asyncio.run(alloc.prebind(_pod("a"), "n1", a))
    assert client.written[0]["status"]["allocation"]["devices"]["results"][0]["device"] == "gpu-0"

    # the informer has not seen a's write yet: b must not be given gpu-0 as well
    why, b = alloc.prefilter(_pod("b"))
    assert why is None and b is not None
    assert alloc.allocate(b, "n1") is None

    # once the informer shows the write, the device counts from it (and the assumption goes)
    claims.put(client.written[0])
    b.in_use = None  # as PreBind does: what is in use now
    assert alloc.allocate(b, "n1") is None
    assert alloc._assumed == {}
    # a deallocates (its pod is gone): the device is free for b again
    claims.put({**_claim("a-gpu", rv="200")})
    assert alloc.allocate(b, "n1") == {"default/b-gpu": [
        {"request": "gpu", "driver": "gpu.example.com", "pool": "n1", "device": "gpu-0"}]}


def test_a_pod_waiting_for_its_template_claim_is_retried_when_the_claim_is_recorded() -> None:
    """kube-scheduler's DynamicResources queueing hint: the pod's resourceClaimStatuses
    changing makes an unschedulable pod worth another try at once, not at the next flush."""
    from vkube.host.scheduler import Scheduler

    class Inf:
        def add_handler(self, fn: Any) -> None:
            pass

    sched = Scheduler(None, Inf(), Inf())  # type: ignore[arg-type]
    waiting = {"metadata": {"name": "p", "namespace": "default", "resourceVersion": "1"},
               "spec": {"resourceClaims": [{"name": "gpu", "resourceClaimTemplateName": "t"}]}, "status": {}}
    sched.unschedulable.add("default/p")
    touched = {**waiting, "metadata": {**waiting["metadata"], "resourceVersion": "2", "labels": {"a": "b"}}}
    sched._on_pod("MODIFIED", touched, waiting)
    assert len(sched.queue) == 0 and "default/p" in sched.unschedulable  # nothing that could help
    recorded = {**waiting, "status": {"resourceClaimStatuses": [{"name": "gpu", "resourceClaimName": "p-gpu-x"}]}}
    sched._on_pod("MODIFIED", recorded, waiting)
    assert len(sched.queue) == 1 and "default/p" not in sched.unschedulable
