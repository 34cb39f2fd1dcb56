"""API Priority and Fairness, piece by piece, against upstream's rules: FlowSchema matching
(``rule.go``) over the bootstrap configuration, shuffle sharding, seat division by shares and
the borrowing allocation, a level's Reject/queue behaviour, and Retry-After's growth. No server:
each piece is fed what upstream's would be fed."""

from __future__ import annotations

import asyncio

import pytest

from vkube.api.kinds_flowcontrol import mandatory_objects, suggested_objects
from vkube.api.user import UserInfo
from vkube.apiserver.apf import FlowControl, _tabwrite, _wait_limit
from vkube.apiserver.apfalloc import allocate
from vkube.apiserver.apfmatch import compile_schema
from vkube.apiserver.apfqueue import DroppedRequests, Level, Rejected, deal
from vkube.apiserver.request import RequestContext
from vkube.apiserver.requestinfo import parse

AUTH = "system:authenticated"


def rc(user: str, groups: tuple[str, ...], method: str, path: str, query: str = "") -> RequestContext:
    return RequestContext(user=UserInfo(user, groups=groups), info=parse(method, path, query), audit_id="x")


def bootstrap() -> FlowControl:
    fc = FlowControl(None)
    objs = mandatory_objects() + suggested_objects()
    fc._apply([o for o in objs if o["kind"] == "PriorityLevelConfiguration"],
              [o for o in objs if o["kind"] == "FlowSchema"])
    return fc


@pytest.mark.parametrize("user,groups,method,path,schema", [
    ("admin", ("system:masters", AUTH), "GET", "/api/v1/pods", "exempt"),
    ("system:anonymous", ("system:unauthenticated",), "GET", "/healthz", "probes"),
    ("system:anonymous", ("system:unauthenticated",), "GET", "/readyz/etcd", "probes"),  # "/readyz" covers /readyz/...
    ("system:anonymous", ("system:unauthenticated",), "GET", "/version", "global-default"),
    ("system:node:n1", ("system:nodes", AUTH), "PUT", "/api/v1/nodes/n1/status", "system-node-high"),
    ("system:node:n1", ("system:nodes", AUTH), "PUT",
     "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/n1", "system-node-high"),
    ("system:node:n1", ("system:nodes", AUTH), "GET", "/api/v1/namespaces/a/secrets/s", "system-nodes"),
    ("system:kube-controller-manager", (AUTH,), "PUT",
     "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/kcm", "system-leader-election"),
    ("system:kube-controller-manager", (AUTH,), "PUT",
     "/apis/coordination.k8s.io/v1/namespaces/other/leases/kcm", "kube-controller-manager"),
    ("system:kube-controller-manager", (AUTH,), "PUT", "/api/v1/namespaces/a/endpoints/e", "endpoint-controller"),
    ("system:serviceaccount:kube-system:foo", ("system:serviceaccounts", AUTH), "GET", "/api/v1/pods",
     "kube-system-service-accounts"),
    # a namespace that only starts like kube-system is another namespace
    ("system:serviceaccount:kube-systemx:foo", ("system:serviceaccounts", AUTH), "GET", "/api/v1/pods",
     "service-accounts"),
    ("alice", (AUTH,), "DELETE", "/apis/apps/v1/namespaces/a/deployments/d", "global-default"),
    ("nobody", (), "GET", "/api/v1/pods", "catch-all"),  # in neither group: the fallback
])
def test_bootstrap_schemas_classify_as_upstream(user, groups, method, path, schema) -> None:
    got, level = bootstrap().classify(rc(user, groups, method, path))
    assert got.name == schema
    assert level.name == got.level


def test_wildcards_only_alone_and_subresources_joined() -> None:
    fs = compile_schema({"metadata": {"name": "s"}, "spec": {"priorityLevelConfiguration": {"name": "x"}, "rules": [{
        "subjects": [{"kind": "ServiceAccount", "serviceAccount": {"namespace": "ns", "name": "*"}},
                     {"kind": "User", "user": {"name": "bob"}}],
        "resourceRules": [{"verbs": ["get", "*"], "apiGroups": [""], "resources": ["pods/status"],
                           "namespaces": ["*"]},
                          {"verbs": ["*"], "apiGroups": ["*"], "resources": ["nodes"], "clusterScope": True}],
        "nonResourceURLs": [],
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/metrics", "/debug/*"]}]}]}})
    sa = UserInfo("system:serviceaccount:ns:any")
    assert fs.match(sa, parse("GET", "/api/v1/namespaces/a/pods/p/status"))
    assert not fs.match(sa, parse("GET", "/api/v1/namespaces/a/pods/p"))  # pods is not pods/status
    assert not fs.match(sa, parse("PUT", "/api/v1/namespaces/a/pods/p/status"))  # "*" beside "get" is literal
    assert fs.match(UserInfo("bob"), parse("DELETE", "/api/v1/nodes/n"))
    assert not fs.match(UserInfo("bob"), parse("GET", "/api/v1/namespaces/a/nodes"))  # clusterScope only
    assert not fs.match(UserInfo("system:serviceaccount:nsx:any"), parse("GET", "/metrics"))
    assert fs.match(sa, parse("GET", "/metrics")) and fs.match(sa, parse("GET", "/metrics/slis"))
    assert fs.match(sa, parse("GET", "/debug/pprof")) and not fs.match(sa, parse("GET", "/debugger"))


def test_dangling_schemas_are_ignored_and_mandatory_ones_imagined() -> None:
    fc = FlowControl(None)
    fc._apply([], [{"metadata": {"name": "orphan", "uid": "u1"},
                    "spec": {"priorityLevelConfiguration": {"name": "missing"}, "matchingPrecedence": 5,
                             "rules": [{"subjects": [{"kind": "Group", "group": {"name": "*"}}],
                                        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}]}}])
    assert [s.name for s in fc.schemas] == ["exempt", "catch-all"]
    assert set(fc.levels) == {"exempt", "catch-all"}
    assert fc.classify(rc("a", (AUTH,), "GET", "/version"))[0].name == "catch-all"


def test_shares_become_seats() -> None:
    fc = bootstrap()  # 600 seats, shares 0+5+40+30+10+40+100+20 = 245
    nominal = {n: lv.nominal_cl for n, lv in fc.levels.items()}
    assert nominal == {"exempt": 0, "catch-all": 13, "node-high": 98, "system": 74, "leader-election": 25,
                       "workload-high": 98, "workload-low": 245, "global-default": 49}
    wl = fc.levels["workload-low"]
    assert (wl.min_cl, wl.max_cl) == (245 - 220, 245 + 600)  # lendable 90 %; no borrowing limit
    assert sum(lv.current_cl for n, lv in fc.levels.items() if n != "exempt") == pytest.approx(602, abs=8)


def test_deal_gives_distinct_cards_from_the_deck() -> None:
    for h in (0, 1, 2**63 + 12345, 2**64 - 1, 987654321):
        cards = deal(h, 128, 6)
        assert len(set(cards)) == 6 and all(0 <= c < 128 for c in cards)
        assert cards == deal(h, 128, 6)
    assert sorted(deal(7, 8, 8)) == list(range(8))  # a full hand is a permutation of the deck
    assert len({tuple(deal(h, 64, 8)) for h in range(200)}) == 200  # flows spread over hands


def test_allocation_is_fair_within_bounds() -> None:
    items = [(10.0, 2.0, 40.0), (30.0, 5.0, 12.0), (1.0, 1.0, 1.0)]
    got = allocate(40, items)
    assert sum(got) == pytest.approx(40)
    assert got[1] == pytest.approx(12) and got[2] == pytest.approx(1)  # capped
    assert got[0] == pytest.approx(27)
    assert allocate(100, items) == [40.0, 12.0, 1.0]  # more than the bounds allow: all at their maximum
    assert allocate(3, items) == [2.0, 5.0, 1.0]


async def test_reject_level_refuses_at_its_limit() -> None:
    lv = Level("tiny", current_cl=1)
    await lv.acquire(lambda: 0, lambda: 1.0)
    with pytest.raises(Rejected) as exc:
        await lv.acquire(lambda: 0, lambda: 1.0)
    assert exc.value.reason == "concurrency-limit" and lv.rejected == 1
    lv.release()
    await lv.acquire(lambda: 0, lambda: 1.0)
    assert lv.executing == 1


async def test_queues_take_turns_fifo_within_a_flow_and_bounded() -> None:
    lv = Level("q", current_cl=1)
    lv.set_queuing(queues=2, hand_size=1, queue_length_limit=2)
    a = next(h for h in range(100) if deal(h, 2, 1) == [0])
    b = next(h for h in range(100) if deal(h, 2, 1) == [1])
    await lv.acquire(lambda: a, lambda: 5.0)  # executing
    order: list[str] = []

    async def req(name: str, h: int) -> None:
        await lv.acquire(lambda: h, lambda: 30.0)
        order.append(name)

    tasks = [asyncio.create_task(req(n, h)) for n, h in (("a1", a), ("a2", a), ("b1", b))]
    await asyncio.sleep(0)
    assert lv.waiting == 3
    with pytest.raises(Rejected) as exc:  # a's queue holds 2 already
        await lv.acquire(lambda: a, lambda: 30.0)
    assert exc.value.reason == "queue-full"
    for _ in range(3):
        lv.release()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == ["a1", "b1", "a2"]  # b's one request is not behind both of a's


async def test_a_request_waits_at_most_its_wait_limit() -> None:
    lv = Level("q", current_cl=1)
    lv.set_queuing(queues=1, hand_size=1, queue_length_limit=5)
    await lv.acquire(lambda: 0, lambda: 1.0)
    with pytest.raises(Rejected) as exc:
        await lv.acquire(lambda: 0, lambda: 0.05)
    assert exc.value.reason == "time-out" and lv.waiting == 0 and lv.timed_out == 1
    lv.release()
    assert lv.executing == 0


def test_retry_after_grows_with_sustained_drops_and_shrinks_after() -> None:
    d = DroppedRequests()
    assert d.retry_after == 1
    for sec in range(1, 4):
        for _ in range(5):
            d.record(float(sec))
    assert d.retry_after == 2
    for sec in range(4, 40):
        for _ in range(20):
            d.record(float(sec))
    assert d.retry_after == 32
    for sec in range(100, 140):
        d.record(float(sec))
    assert d.retry_after < 32


def test_wait_limit_is_a_quarter_of_the_deadline() -> None:
    class Req:
        def __init__(self, q: dict[str, str]) -> None:
            self.query = q

    assert _wait_limit(Req({})) == 15.0
    assert _wait_limit(Req({"timeout": "32s"})) == 8.0
    assert _wait_limit(Req({"timeout": "10m"})) == 60.0
    assert _wait_limit(Req({"timeout": "junk"})) == 15.0


def test_dump_layout_is_tabwriters() -> None:
    text = _tabwrite([["PriorityLevelName", "ActiveQueues"], ["exempt", "0"]])
    assert text == "PriorityLevelName, ActiveQueues\nexempt,            0\n"


async def test_waiting_requests_get_borrowed_seats_without_new_arrivals() -> None:
    """A level with no seats of its own (0 shares) borrows what an idle level lends at the next
    adjustment; waiting requests get them even if no other request arrives to trigger it."""
    fc = FlowControl(None, server_cl=10)
    objs = mandatory_objects()
    zero = {"apiVersion": "flowcontrol.apiserver.k8s.io/v1", "kind": "PriorityLevelConfiguration",
            "metadata": {"name": "zero", "uid": "z"}, "spec": {"type": "Limited", "limited": {
                "nominalConcurrencyShares": 0, "lendablePercent": 0,
                "limitResponse": {"type": "Queue", "queuing": {"queues": 1, "handSize": 1, "queueLengthLimit": 5}}}}}
    fs = {"metadata": {"name": "z", "uid": "zf"}, "spec": {
        "priorityLevelConfiguration": {"name": "zero"}, "matchingPrecedence": 10,
        "rules": [{"subjects": [{"kind": "User", "user": {"name": "z"}}],
                   "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}]}}
    lender = {"metadata": {"name": "lender", "uid": "l"}, "spec": {"type": "Limited", "limited": {
        "nominalConcurrencyShares": 5, "lendablePercent": 100, "limitResponse": {"type": "Reject"}}}}
    fc._apply([o for o in objs if o["kind"] == "PriorityLevelConfiguration"] + [zero, lender],
              [o for o in objs if o["kind"] == "FlowSchema"] + [fs])
    lv = fc.levels["zero"]
    assert (lv.nominal_cl, lv.current_cl) == (0, 0)
    fc._next_adjust = fc._now() + 0.05  # the next adjustment is due soon
    await asyncio.wait_for(lv.acquire(lambda: 0, lambda: 30.0), 30)
    assert lv.current_cl >= 1 and lv.executing == 1


async def test_a_level_turned_to_reject_refuses_its_waiters() -> None:
    lv = Level("q", current_cl=1)
    lv.set_queuing(queues=1, hand_size=1, queue_length_limit=5)
    await lv.acquire(lambda: 0, lambda: 1.0)
    waiter = asyncio.create_task(lv.acquire(lambda: 0, lambda: 30.0))
    await asyncio.sleep(0)
    assert lv.waiting == 1
    lv.set_queuing(queues=0, hand_size=1, queue_length_limit=0)  # limitResponse: Reject now
    with pytest.raises(Rejected):
        await waiter
    assert (lv.waiting, lv.rejected, lv.executing) == (0, 1, 1)


async def test_millions_of_queues_cost_nothing_until_requests_wait() -> None:
    """Upstream accepts ``queues: 5000000``; the queues exist only while someone waits in them,
    so configuring (and reconfiguring) such a level allocates almost nothing, and it still
    queues, refuses when a queue is full and dispatches in turn."""
    import tracemalloc

    fc = FlowControl(None, server_cl=10)
    objs = mandatory_objects()

    def huge(queues: int, hand: int) -> dict:
        return {"metadata": {"name": "huge", "uid": "h"}, "spec": {"type": "Limited", "limited": {
            "nominalConcurrencyShares": 30, "lendablePercent": 0, "limitResponse": {"type": "Queue", "queuing": {
                "queues": queues, "handSize": hand, "queueLengthLimit": 1000000}}}}}

    pls = [o for o in objs if o["kind"] == "PriorityLevelConfiguration"]
    fss = [o for o in objs if o["kind"] == "FlowSchema"]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        fc._apply(pls + [huge(5_000_000, 1)], fss)
        fc._apply(pls + [huge(4_999_999, 1)], fss)  # replacing the configuration: nothing rebuilt
        assert tracemalloc.get_traced_memory()[0] - before < 1_000_000
    finally:
        tracemalloc.stop()
    lv = fc.levels["huge"]
    assert lv.queues == 4_999_999 and lv.active_queues() == 0
    lv.set_current_cl(1)
    await lv.acquire(lambda: 0, lambda: 5.0)
    lv.queue_length_limit = 1
    a, b = 12345, 67890
    qa = lv._pick(a)
    wa = asyncio.create_task(lv.acquire(lambda: a, lambda: 30.0))
    await asyncio.sleep(0)
    with pytest.raises(Rejected) as exc:
        await lv.acquire(lambda: a, lambda: 30.0)  # a's shortest queue holds 1 already
    assert exc.value.reason == "queue-full"
    wb = asyncio.create_task(lv.acquire(lambda: b, lambda: 30.0))
    await asyncio.sleep(0)
    assert lv.waiting == 2 and lv.active_queues() == 2 and lv.queue_lengths()[qa] == 1
    assert len(fc.dump("dump_queues").splitlines()) == 3  # header + the two non-empty queues
    lv.release()
    await asyncio.sleep(0)
    lv.release()
    await asyncio.gather(wa, wb)
    assert (lv.waiting, lv.executing, lv.active_queues()) == (0, 1, 0)


def test_edited_mandatory_objects_take_no_effect() -> None:
    """``exempt`` pointed at a 0-seat Reject level and ``catch-all`` made Reject: the defined
    specs still rule (the ensurer writes them back), so system:masters stays exempt."""
    fc = FlowControl(None, server_cl=10)
    objs = mandatory_objects()
    pls = [dict(o) for o in objs if o["kind"] == "PriorityLevelConfiguration"]
    fss = [dict(o) for o in objs if o["kind"] == "FlowSchema"]
    for o in pls + fss:
        o["metadata"] = {**o["metadata"], "uid": "u-" + o["metadata"]["name"]}
    nothing = {"metadata": {"name": "nothing", "uid": "n"}, "spec": {"type": "Limited", "limited": {
        "nominalConcurrencyShares": 0, "lendablePercent": 0, "limitResponse": {"type": "Reject"}}}}
    for o in fss:
        if o["metadata"]["name"] == "exempt":
            o["spec"] = {**o["spec"], "priorityLevelConfiguration": {"name": "nothing"}}
    for o in pls:
        if o["metadata"]["name"] == "catch-all":
            o["spec"] = nothing["spec"]
    fc._apply(pls + [nothing], fss)
    schema, level = fc.classify(rc("admin", ("system:masters", AUTH), "GET", "/api/v1/pods"))
    assert (schema.name, schema.uid, level.name, level.exempt) == ("exempt", "u-exempt", "exempt", True)
    schema, level = fc.classify(rc("nobody", (), "GET", "/api/v1/pods"))
    assert level.name == "catch-all" and level.uid == "u-catch-all" and level.queues == 0 and level.nominal_cl > 0
