"""Fairness between the clusters of one shared process: the queue itself (round-robin between
clusters, per-cluster seat limit, bounded queues, waits that give up), and through HTTP: a
tenant flooding its cluster gets APF's 429 with Retry-After while another tenant's reads all
succeed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.conftest import kubectl
from vkube.cluster.config import ClusterConfig
from vkube.cluster.fairness import FairnessConfig, FairQueue, TooManyRequests
from vkube.cluster.shared import SharedServer

from .conftest import ClusterSession


async def test_round_robin_between_clusters() -> None:
    fq = FairQueue(FairnessConfig(seats=1, per_cluster=1, queue_length=100, max_wait=60))
    order: list[str] = []
    gate = asyncio.Event()

    async def req(cluster: str, i: int) -> None:
        async with fq.seat(cluster):
            order.append(f"{cluster}{i}")
            await gate.wait()

    first = asyncio.create_task(req("hog", 0))
    await asyncio.sleep(0)
    tasks = [asyncio.create_task(req("hog", i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    tasks += [asyncio.create_task(req("quiet", i)) for i in range(2)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *tasks)
    # the quiet cluster is served after at most one more of the hog's, not after all five
    assert order[:5] == ["hog0", "hog1", "quiet0", "hog2", "quiet1"], order
    assert fq.free == 1 and not fq.inflight


async def test_per_cluster_limit_leaves_seats_for_others() -> None:
    fq = FairQueue(FairnessConfig(seats=4, per_cluster=2, queue_length=10, max_wait=60))
    gate = asyncio.Event()
    running: set[str] = set()

    async def req(cluster: str, i: int) -> None:
        async with fq.seat(cluster):
            running.add(f"{cluster}{i}")
            await gate.wait()

    tasks = [asyncio.create_task(req("hog", i)) for i in range(6)]
    await asyncio.sleep(0.01)
    assert len(running) == 2  # the hog holds at most 2 of the 4 seats
    other = asyncio.create_task(req("other", 0))
    await asyncio.sleep(0.01)
    assert "other0" in running  # served at once from a free seat
    gate.set()
    await asyncio.gather(*tasks, other)
    assert fq.free == 4


async def test_full_queue_and_long_wait_are_refused() -> None:
    fq = FairQueue(FairnessConfig(seats=1, per_cluster=1, queue_length=2, max_wait=0.2,
                                  retry_after=3))
    gate = asyncio.Event()

    async def req(cluster: str) -> None:
        async with fq.seat(cluster):
            await gate.wait()

    holder = asyncio.create_task(req("a"))
    await asyncio.sleep(0)
    queued = [asyncio.create_task(req("a")) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(TooManyRequests) as exc:  # the queue of 2 is full
        await req("a")
    assert exc.value.retry_after == 3
    # the queued ones give up after max_wait
    results = await asyncio.gather(*queued, return_exceptions=True)
    assert all(isinstance(r, TooManyRequests) for r in results)
    assert fq.rejected["a"] == 3
    gate.set()
    await holder
    assert fq.free == 1 and not fq.inflight and not fq._queues  # nothing leaked


async def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    fq = FairQueue(FairnessConfig(seats=1, per_cluster=1, queue_length=10, max_wait=60))
    gate = asyncio.Event()

    async def req(cluster: str) -> str:
        async with fq.seat(cluster):
            await gate.wait()
        return cluster

    holder = asyncio.create_task(req("a"))
    await asyncio.sleep(0)
    gone = asyncio.create_task(req("b"))
    later = asyncio.create_task(req("c"))
    await asyncio.sleep(0)
    gone.cancel()
    gate.set()
    assert await later == "c"
    await holder
    assert fq.free == 1 and not fq.inflight


async def test_a_flooding_tenant_gets_429_and_the_other_is_served(tmp_path: Path) -> None:
    server = SharedServer(tmp_path / "shared",
                          fairness=FairnessConfig(seats=4, per_cluster=2, queue_length=4,
                                                  max_wait=30, retry_after=1))
    await server.start()
    try:
        for name in ("flood", "calm"):
            await server.add(ClusterConfig(name=name, data_dir=tmp_path / name, controllers=False))
        async with ClusterSession(server, "flood") as fs, ClusterSession(server, "calm") as cs:
            async def get(name: str) -> tuple[int, str, str | None]:
                s = fs if name == "flood" else cs
                async with s.get(f"/clusters/{name}/api/v1/namespaces") as r:
                    return r.status, await r.text(), r.headers.get("Retry-After")

            flood = [asyncio.create_task(get("flood")) for _ in range(60)]
            await asyncio.sleep(0)
            calm = await asyncio.gather(*(get("calm") for _ in range(6)))
            flooded = await asyncio.gather(*flood)
        assert [c for c, _, _ in calm] == [200] * 6
        refused = [(c, body, ra) for c, body, ra in flooded if c != 200]
        assert refused, "60 concurrent requests against 2 seats and a queue of 4: some refused"
        assert all(c == 429 for c, _, _ in refused)
        assert refused[0][1] == "Too many requests, please try again later.\n"
        assert refused[0][2] == "1"
        assert server.fair.rejected.get("flood", 0) == len(refused)
        assert "calm" not in server.fair.rejected
        # kubectl (client-go) retries a 429 after Retry-After: once the flood is over it works
        out = await asyncio.to_thread(kubectl, tmp_path / "flood" / "kubeconfig", "get", "ns")
        assert "default" in out.stdout
    finally:
        await server.stop()


async def test_apf_inside_each_cluster_composes_with_the_shared_seats(tmp_path: Path) -> None:
    """Each cluster's APF admits first, the process's per-cluster seat is taken after: requests
    queued in a cluster's priority level hold no shared seat, so that cluster's exempt admin
    still gets the seat left, and the level's own 429 is APF's."""
    from tests.webhooks.server import WebhookServer

    server = SharedServer(tmp_path / "shared",
                          fairness=FairnessConfig(seats=8, per_cluster=2, queue_length=8, max_wait=60))
    await server.start()
    try:
        # 200 seats: a level of 1 share out of the bootstrap's 245 + 1 gets exactly one
        await server.add(ClusterConfig(name="a", data_dir=tmp_path / "a", controllers=False,
                                       max_requests_inflight=100, max_mutating_requests_inflight=100))
        fc = server.members["a"].vc.control_plane.server.flowcontrol
        with WebhookServer() as hooks:
            # the webhook only holds a request here: let this cluster reach the test's server
            # (shared clusters reach no address of this machine: tests/webhooks/probes.py)
            from vkube.apiserver.dialpolicy import DialPolicy

            server.members["a"].vc.control_plane.ctx.dial_policy = DialPolicy(
                restricted=True, published=frozenset({("127.0.0.1", hooks.port)}))
            async with ClusterSession(server, "a") as admin, \
                    ClusterSession(server, "a", user=("slow", ("system:authenticated",))) as slow:
                for path, doc in _apf_setup(hooks):
                    async with admin.post(f"/clusters/a{path}", json=doc) as r:
                        assert r.status == 201, await r.text()
                await _eventually(lambda: "one" in fc.levels and any(s.name == "slow" for s in fc.schemas))
                assert fc.levels["one"].current_cl == 1
                cms = "/clusters/a/api/v1/namespaces/default/configmaps"

                async def call(s: ClusterSession, method: str, doc: dict | None = None) -> int:
                    async with s.session.request(method, s.server.base_url + cms, json=doc, **s._kw()) as r:
                        await r.read()
                        return r.status

                held = asyncio.create_task(call(slow, "POST", {"metadata": {"name": "h", "labels": {"hold": "y"}}}))
                await _eventually(lambda: hooks.paths().count("/hold") == 1)
                queued = [asyncio.create_task(call(slow, "GET")) for _ in range(3)]
                await _eventually(lambda: fc.levels["one"].waiting == 3)
                assert server.fair.inflight == {"a": 1}  # only the executing request holds a shared seat
                assert await call(admin, "GET") == 200  # exempt, and the cluster's 2nd seat is free
                hooks.release.set()
                assert await held == 201
                assert await asyncio.gather(*queued) == [200, 200, 200]
                assert server.fair.inflight == {} and fc.levels["one"].executing == 0
    finally:
        await server.stop()


def _apf_setup(hooks) -> list[tuple[str, dict]]:  # noqa: ANN001
    fc = "/apis/flowcontrol.apiserver.k8s.io/v1"
    return [
        ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings", {
            "metadata": {"name": "slow-admin"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                             "kind": "ClusterRole", "name": "cluster-admin"},
            "subjects": [{"kind": "User", "name": "slow", "apiGroup": "rbac.authorization.k8s.io"}]}),
        (f"{fc}/prioritylevelconfigurations", {"metadata": {"name": "one"}, "spec": {
            "type": "Limited", "limited": {"nominalConcurrencyShares": 1, "lendablePercent": 0,
                                           "borrowingLimitPercent": 0, "limitResponse": {
                                               "type": "Queue", "queuing": {"queues": 1, "handSize": 1,
                                                                            "queueLengthLimit": 10}}}}}),
        (f"{fc}/flowschemas", {"metadata": {"name": "slow"}, "spec": {
            "priorityLevelConfiguration": {"name": "one"}, "matchingPrecedence": 50,
            "rules": [{"subjects": [{"kind": "User", "user": {"name": "slow"}}],
                       "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                          "namespaces": ["*"], "clusterScope": True}]}]}}),
        ("/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations", {
            "metadata": {"name": "hold"}, "webhooks": [{
                "name": "hold.apf.test", "admissionReviewVersions": ["v1"], "sideEffects": "None",
                "timeoutSeconds": 30, "objectSelector": {"matchLabels": {"hold": "y"}},
                "clientConfig": {"url": hooks.url + "/hold", "caBundle": hooks.ca_bundle},
                "rules": [{"operations": ["CREATE"], "apiGroups": [""], "apiVersions": ["v1"],
                           "resources": ["configmaps"]}]}]}),
    ]


async def _eventually(pred, timeout: float = 60.0) -> None:  # noqa: ANN001
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not pred():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)
