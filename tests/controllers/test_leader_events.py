"""Leader election on a Lease (with an injected clock), the event recorder's aggregation,
and the manager running a controller end to end against the fake API server."""

from __future__ import annotations

import asyncio
import copy
import datetime as dt

import pytest

from tests.fakes import FakeAPIServer

from vkube.api.meta import parse_time
from vkube.client import Client
from vkube.client.resources import CONFIGMAPS, EVENTS, LEASES
from vkube.controllers.events import EventRecorder
from vkube.controllers.leader import LeaderElector
from vkube.controllers.runtime import Controller, ControllerManager

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
async def env():
    async with FakeAPIServer([LEASES, EVENTS, CONFIGMAPS]) as api:
        async with Client(api.url) as client:
            yield api, client


async def test_lease_acquire_block_expire_takeover(env) -> None:
    api, client = env
    clock = FakeClock()
    a = LeaderElector(client, namespace="kube-system", name="l", identity="a", clock=clock)
    b = LeaderElector(client, namespace="kube-system", name="l", identity="b", clock=clock)
    assert await a.try_acquire_or_renew()
    assert not await b.try_acquire_or_renew()
    clock.now += dt.timedelta(seconds=10)
    assert await a.try_acquire_or_renew()  # renew
    clock.now += dt.timedelta(seconds=14)
    assert not await b.try_acquire_or_renew()  # renewed 14s ago, lease is 15s
    clock.now += dt.timedelta(seconds=2)
    assert await b.try_acquire_or_renew()
    lease = await client.get(LEASES, "l", namespace="kube-system")
    spec = lease["spec"]
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert parse_time(spec["acquireTime"]) == clock.now == parse_time(spec["renewTime"])
    assert spec["leaseDurationSeconds"] == 15
    assert not await a.try_acquire_or_renew()
    await b.release()
    assert await a.try_acquire_or_renew()  # released: no need to wait for expiry


async def test_lead_stops_work_when_lease_is_taken(env) -> None:
    api, client = env
    clock = FakeClock()
    a = LeaderElector(client, namespace="ns", name="l", identity="a", clock=clock,
                      retry_period=0.01, renew_deadline=0.05)
    started = asyncio.Event()
    stopped = asyncio.Event()

    async def work() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    task = asyncio.create_task(a.lead(work))
    await asyncio.wait_for(started.wait(), 5)
    assert a.is_leader
    lease = await client.get(LEASES, "l", namespace="ns")
    lease["spec"]["holderIdentity"] = "intruder"
    lease["spec"]["renewTime"] = "2030-01-01T00:00:00.000000Z"
    await client.update(LEASES, lease)
    await asyncio.wait_for(task, 5)  # returns: leadership lost
    assert stopped.is_set() and not a.is_leader


async def test_event_recorder_aggregates(env) -> None:
    api, client = env
    clock = FakeClock()
    rec = EventRecorder(client, "my-controller", clock=clock)
    obj = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "cm", "namespace": "n", "uid": "u1"}}
    rec.event(obj, "Normal", "Synced", "all good")
    clock.now += dt.timedelta(seconds=5)
    rec.event(obj, "Normal", "Synced", "all good")
    rec.event(obj, "Warning", "Failed", "oops")
    await rec.flush()
    events = (await client.list(EVENTS, namespace="n"))["items"]
    assert len(events) == 2
    synced = next(e for e in events if e["reason"] == "Synced")
    assert synced["count"] == 2
    assert synced["firstTimestamp"] == "2026-01-01T00:00:00Z"
    assert synced["lastTimestamp"] == "2026-01-01T00:00:05Z"
    assert synced["involvedObject"] == {"kind": "ConfigMap", "apiVersion": "v1", "name": "cm",
                                        "namespace": "n", "uid": "u1", "resourceVersion": ""}
    assert synced["source"] == {"component": "my-controller"}
    assert synced["metadata"]["name"].startswith("cm.")
    api.fail_next(500)  # a failing write is logged, not raised
    rec.event(obj, "Normal", "Other", "x")
    await rec.flush()
    await rec.close()


async def test_event_recorder_combines_similar_events_and_filters_spam(env) -> None:
    """client-go's correlator: 10 distinct messages per object/reason within 10 minutes, then
    one combined Event; 25 events per object in a burst, then one per 5 minutes."""
    api, client = env
    clock = FakeClock()
    rec = EventRecorder(client, "replicaset-controller", clock=clock)
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": {"name": "web", "namespace": "n", "uid": "u2"}}
    for i in range(30):
        rec.event(rs, "Normal", "SuccessfulCreate", f"Created pod: web-{i}")
    await rec.flush()
    events = (await client.list(EVENTS, namespace="n"))["items"]
    plain = [e for e in events if not e["message"].startswith("(combined")]
    (combined,) = [e for e in events if e["message"].startswith("(combined")]
    assert len(plain) == 9 and all(e["count"] == 1 for e in plain)
    # events 10..25 go into the combined Event; 26..30 exceed the burst and are dropped
    assert combined["count"] == 16
    assert combined["message"] == "(combined from similar events): Created pod: web-24"
    clock.now += dt.timedelta(minutes=5)  # one token back
    rec.event(rs, "Normal", "SuccessfulCreate", "Created pod: web-30")
    rec.event(rs, "Normal", "SuccessfulCreate", "Created pod: web-31")
    await rec.flush()
    events = (await client.list(EVENTS, namespace="n"))["items"]
    assert len(events) == 10
    assert max(e["count"] for e in events) == 17
    other = {"apiVersion": "v1", "kind": "Pod",
             "metadata": {"name": "p", "namespace": "n", "uid": "u3"}}
    rec.event(other, "Normal", "Scheduled", "elsewhere")  # another object: its own budget
    await rec.flush()
    assert len((await client.list(EVENTS, namespace="n"))["items"]) == 11
    await rec.close()


class CopyController(Controller):
    """Test controller: mirrors ConfigMap data into a `-copy` ConfigMap."""

    name = "copy"

    def setup(self) -> None:
        self.cms = self.mgr.informer(CONFIGMAPS)
        self.cms.add_handler(self.handler)
        self.fail_once = True

    async def reconcile(self, key: str) -> float | None:
        ns, name = key.split("/")
        if name.endswith("-copy"):
            return None
        if self.fail_once:
            self.fail_once = False
            raise RuntimeError("transient")
        src = self.cms.get(name, ns)
        if src is None:
            return None
        copy = {"metadata": {"name": f"{name}-copy", "namespace": ns}, "data": src.get("data")}
        if self.cms.get(f"{name}-copy", ns) is None:
            await self.client.create(CONFIGMAPS, copy)
            self.recorder.event(src, "Normal", "Copied", f"copied to {name}-copy")
        return None


async def test_manager_runs_controllers_with_leader_election(env) -> None:
    api, client = env
    api.put(CONFIGMAPS, {"metadata": {"name": "a", "namespace": "n"}, "data": {"k": "v"}})
    mgr = ControllerManager(client, identity="m1", retry_period=0.01, renew_deadline=1)
    ctrl = mgr.add(CopyController)
    assert mgr.informer(CONFIGMAPS) is ctrl.cms
    task = asyncio.create_task(mgr.run())
    try:
        # deadlines generous for a loaded machine: they only bound a failing run
        await asyncio.wait_for(mgr.started.wait(), 60)
        async with asyncio.timeout(60):
            while api.get(CONFIGMAPS, "a-copy", "n") is None:
                await asyncio.sleep(0.01)
        assert api.get(CONFIGMAPS, "a-copy", "n")["data"] == {"k": "v"}
        assert api.get(LEASES, "vkube-controller-manager", "kube-system") is not None
        async with asyncio.timeout(60):  # the controller records the event after its create returns
            while not any(k[0] == "events" for k in api.store.objs):
                await ctrl.recorder.flush()
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    lease = api.get(LEASES, "vkube-controller-manager", "kube-system")
    assert lease["spec"]["holderIdentity"] == ""  # released on shutdown


async def test_manager_caches_run_while_another_leads(env) -> None:
    """A manager that does not lead keeps its informers running (the cluster's syncer,
    scheduler and DNS read them), and its controllers wait; a cache asked for later runs at
    once too."""
    api, client = env
    api.put(CONFIGMAPS, {"metadata": {"name": "a", "namespace": "n"}, "data": {"k": "v"}})
    other = LeaderElector(client, namespace="kube-system", name="vkube-controller-manager", identity="other",
                          lease_duration=3600)  # never expires during the test, however loaded
    assert await other.try_acquire_or_renew()
    mgr = ControllerManager(client, identity="m1", retry_period=0.01, renew_deadline=1)
    ctrl = mgr.add(CopyController)
    task = asyncio.create_task(mgr.run())
    try:
        await asyncio.wait_for(ctrl.cms.wait_synced(), 60)
        assert ctrl.cms.get("a", "n") is not None
        late = mgr.informer(LEASES)
        await asyncio.wait_for(late.wait_synced(), 60)
        api.put(CONFIGMAPS, {"metadata": {"name": "b", "namespace": "n"}, "data": {}})
        async with asyncio.timeout(60):
            while ctrl.cms.get("b", "n") is None:
                await asyncio.sleep(0.01)
        assert not mgr.started.is_set() and api.get(CONFIGMAPS, "a-copy", "n") is None
        await other.release()  # now it leads, with the caches it already had
        await asyncio.wait_for(mgr.started.wait(), 60)
        async with asyncio.timeout(60):
            while api.get(CONFIGMAPS, "a-copy", "n") is None:
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class _SlowLeaseWrites(Client):
    """A loaded machine: each Lease write takes ``delay`` seconds; ``land_first`` more of our
    own renewals (sent before a cancel) land just before the next write (a conflict)."""

    def __init__(self, url: str, api: FakeAPIServer) -> None:
        super().__init__(url)
        self.api = api
        self.delay = 0.0
        self.land_first = 0

    async def update(self, res, obj, **kw):  # noqa: ANN001, ANN003
        if res is LEASES:
            await asyncio.sleep(self.delay)
            if self.land_first:
                self.land_first -= 1
                cur = copy.deepcopy(self.api.get(LEASES, obj["metadata"]["name"],
                                                 obj["metadata"]["namespace"]))
                self.api.put(LEASES, cur)  # a late renewal: the lease's resourceVersion moves
        return await super().update(res, obj, **kw)


@pytest.mark.parametrize("delay,conflicts", [(1.5, 0), (0.0, 2)])
async def test_cancelled_leader_releases_on_a_slow_or_racing_api(env, delay, conflicts) -> None:
    """Cancelled, a leader gives its lease up even when each write takes longer than its renew
    rhythm (it used to wait only retry_period + 1 s), and when renewals it sent before the
    cancel land between its read and its write (it used to give up on the conflict)."""
    api, _ = env
    async with _SlowLeaseWrites(api.url, api) as client:
        a = LeaderElector(client, namespace="ns", name="l", identity="a", retry_period=0.01,
                          renew_deadline=5)
        started = asyncio.Event()

        async def work() -> None:
            started.set()
            await asyncio.Event().wait()
        task = asyncio.create_task(a.lead(work))
        await asyncio.wait_for(started.wait(), 60)
        client.delay, client.land_first = delay, conflicts
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert api.get(LEASES, "l", "ns")["spec"]["holderIdentity"] == ""


class SlowSink:
    """Stands in for the API: each write takes a while; records order and overlap."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def _call(self, verb: str, name: str) -> dict:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.005)
            self.calls.append((verb, name))
            return {}
        finally:
            self.in_flight -= 1

    async def create(self, res, body: dict, *, namespace: str | None = None) -> dict:  # noqa: ANN001
        return await self._call("create", body["involvedObject"]["name"])

    async def patch(self, res, name: str, patch: dict, *, namespace: str | None = None) -> dict:  # noqa: ANN001
        return await self._call("patch", name.rsplit(".", 1)[0])


async def test_event_recorder_writes_objects_in_parallel_and_each_in_order() -> None:
    """A burst (a kubelet starting 40 pods) is written by several writers at once; one
    object's events keep their order, so a repeat's count patch follows its create."""
    sink = SlowSink()
    rec = EventRecorder(sink, "kubelet")  # type: ignore[arg-type]
    pods = [{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p{i}", "namespace": "n", "uid": f"u{i}"}}
            for i in range(40)]
    for pod in pods:
        rec.event(pod, "Normal", "Pulling", "Pulling image nginx")
    for pod in pods:
        rec.event(pod, "Normal", "Pulling", "Pulling image nginx")  # a repeat: count 2
    await rec.flush()
    assert 1 < sink.max_in_flight <= 8
    assert len(sink.calls) == 80
    for pod in pods:
        name = pod["metadata"]["name"]
        assert [v for v, n in sink.calls if n == name] == ["create", "patch"]
    await rec.close()
    rec.event(pods[0], "Normal", "Started", "Started container c")  # usable after close
    await rec.flush()
    assert sink.calls[-1] == ("create", "p0")
