"""Which changes of a host ResourceQuota may admit what it refused (then refused objects are
tried again at once); more usage or lower limits never do, so a rollout's own admissions do
not set off retries."""

from __future__ import annotations

import pytest

from vkube.syncer.refusals import loosened


def quota(hard: dict | None = None, used: dict | None = None, status_hard: bool = True) -> dict:
    q: dict = {"spec": {"hard": hard or {}}}
    if status_hard:
        q["status"] = {"hard": hard or {}, "used": used or {}}
    return q


@pytest.mark.parametrize("old,new,want", [
    (quota({"cpu": "1"}), quota({"cpu": "2"}), True),            # raised
    (quota({"cpu": "1", "pods": "2"}), quota({"pods": "2"}), True),  # a limit dropped
    (quota({"cpu": "1"}, {"cpu": "900m"}), quota({"cpu": "1"}, {"cpu": "400m"}), True),  # freed up
    (quota({"cpu": "1"}, status_hard=False), quota({"cpu": "1"}), True),  # first recount
    (quota({"cpu": "1"}, {"cpu": "400m"}), quota({"cpu": "1"}, {"cpu": "900m"}), False),  # used more
    (quota({"cpu": "2"}), quota({"cpu": "1000m"}), False),       # lowered
    (quota({"cpu": "1"}), quota({"cpu": "1000m"}), False),       # the same amount, written anew
    (quota({"count/pods": "1"}, {"count/pods": "1"}), quota({"count/pods": "1"}, {"count/pods": "1"}), False),
])
def test_loosened(old, new, want):
    assert loosened(old, new) is want


def test_the_quota_controllers_copy_of_a_raised_limit_is_loosening_too():
    """Admission reads ``status.hard``; the quota controller copies ``spec.hard`` there in a
    later write. A retry on the user's spec change can be refused by the old status, so the
    controller's write must bring the refused object back again (it did not: a pod stayed
    refused after its quota was raised)."""
    before = {"spec": {"hard": {"count/pods": "1"}},
              "status": {"hard": {"count/pods": "1"}, "used": {"count/pods": "1"}}}
    spec_raised = {"spec": {"hard": {"count/pods": "2"}}, "status": before["status"]}
    status_raised = {"spec": spec_raised["spec"],
                     "status": {"hard": {"count/pods": "2"}, "used": {"count/pods": "1"}}}
    assert loosened(before, spec_raised)
    assert loosened(spec_raised, status_raised)
    dropped = {"spec": {"hard": {}}, "status": {"hard": {"count/pods": "1"}}}
    assert loosened(dropped, {"spec": {"hard": {}}, "status": {"hard": {}}})
    # the controller's recount of usage alone (more used) still is not
    more = {"spec": status_raised["spec"],
            "status": {"hard": {"count/pods": "2"}, "used": {"count/pods": "2"}}}
    assert not loosened(status_raised, more)


async def test_a_change_is_acted_on_at_once_and_again_when_the_host_has_settled():
    """The host's admission judges by its cached quotas, which may see a change after this
    watch does: a retry refused by the stale copy is tried once more ``settle`` seconds after
    the last change (one more retry for a burst of changes, none for a tightening)."""
    import asyncio

    from vkube.syncer.refusals import HostAdmissionWatch

    calls: list[str] = []
    watch = HostAdmissionWatch(None, "ns", lambda: calls.append("retry"))  # type: ignore[arg-type]
    watch.settle = 0.3
    low, high = quota({"count/pods": "1"}), quota({"count/pods": "2"})
    watch._on_quota("MODIFIED", high, low)
    assert calls == ["retry"]
    watch._on_quota("MODIFIED", quota({"count/pods": "3"}), high)  # a burst: one later retry
    watch._on_quota("MODIFIED", low, high)  # tightened: nothing
    assert calls == ["retry"] * 2
    for _ in range(200):
        if len(calls) == 3:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)  # and no more than one
    assert calls == ["retry"] * 3
    await watch.stop()
