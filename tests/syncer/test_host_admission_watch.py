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
