"""A host event reaches the tenant even when it comes before its object: the event and the host
pod it is about arrive on two watches, and an event whose pod the cache did not show yet was
dropped, so a pod's first ``FailedScheduling`` was only seen once the scheduler retried."""

from __future__ import annotations

from vkube.client.resources import EVENTS, PODS

from .conftest import HOST_NS, VC, eventually, getter, start_syncer, stop_syncer
from .test_e2e_services_values import events_for


def _event(name: str, hpod: dict, reason: str, message: str) -> dict:
    m = hpod["metadata"]
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": name, "namespace": HOST_NS},
            "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": HOST_NS,
                               "name": m["name"], "uid": m["uid"]},
            "reason": reason, "message": message, "type": "Warning", "count": 1,
            "source": {"component": "default-scheduler"}}


async def test_an_event_before_its_pod_is_cached_still_reaches_the_tenant(planes, monkeypatch):
    vcp, hcp = planes
    pair = await start_syncer(vcp, hcp)
    v, h = pair.virtual, pair.host
    try:
        await v.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                              "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
                       namespace="default")
        hpod = await eventually(getter(h, PODS, f"p-x-default-x-{VC}"))
        syncer = pair.syncer.syncers["events"]
        # the host pods' watch lags behind the events' watch: the cache does not show the pod
        monkeypatch.setattr(syncer, "_host_object", lambda kind, name: None)
        await h.create(EVENTS, _event("p1.first", hpod, "FailedScheduling",
                                      f"0/3 nodes are available: pod {HOST_NS}/{hpod['metadata']['name']} "
                                      "has unbound immediate PersistentVolumeClaims"), namespace=HOST_NS)

        async def shown() -> dict:
            evs = [e for e in await events_for(v, "p") if e["reason"] == "FailedScheduling"]
            assert evs, "the first event was dropped"
            return evs[0]

        ev = await eventually(shown, attempts=1200)
        assert ev["type"] == "Warning" and ev["involvedObject"]["name"] == "p"
        assert ev["message"] == "0/3 nodes are available: pod default/p has unbound immediate PersistentVolumeClaims"

        # an event about a host pod that is not ours stays on the host (read once, remembered)
        foreign = await h.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "theirs"},
                                        "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
                                 namespace=HOST_NS)
        reads: list[str] = []
        real_get = h.get

        async def counting_get(res, name, **kw):  # type: ignore[no-untyped-def]
            reads.append(name)
            return await real_get(res, name, **kw)

        monkeypatch.setattr(h, "get", counting_get)
        await h.create(EVENTS, _event("theirs.0", foreign, "FailedScheduling", "no"), namespace=HOST_NS)

        async def read_once() -> None:
            assert reads.count("theirs") == 1, reads

        await eventually(read_once, attempts=1200)
        before = syncer.processed
        for i in (1, 2):
            await h.create(EVENTS, _event(f"theirs.{i}", foreign, "FailedScheduling", "no"), namespace=HOST_NS)
        await h.create(EVENTS, _event("p1.after", hpod, "Pulled", "marker"), namespace=HOST_NS)

        async def handled() -> None:
            assert [e for e in await events_for(v, "p") if e["reason"] == "Pulled"], "no marker yet"
            assert syncer.processed >= before + 3

        await eventually(handled, attempts=1200)
        assert await events_for(v, "theirs") == []
        assert reads.count("theirs") == 1, reads
    finally:
        await stop_syncer(pair)
