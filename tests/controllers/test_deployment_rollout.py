"""Pure Deployment arithmetic and template hashing (no API)."""

from __future__ import annotations

from vkube.controllers.workloads.history import (
    compute_hash, equal_ignore_hash, fnv32a, pod_template_hash, safe_encode,
)
from vkube.controllers.workloads.rollout import (
    MAX_REPLICAS, calculate_status, max_surge, max_unavailable, new_rs_new_replicas,
    old_scale_down_plan, proportional_sizes, resolve_fenceposts,
)
from tests.fakes import T0


def d(replicas: int, surge="25%", unavail="25%", strategy: str = "RollingUpdate") -> dict:
    s = {"type": strategy}
    if strategy == "RollingUpdate":
        s["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavail}
    return {"metadata": {"name": "d", "generation": 1}, "spec": {"replicas": replicas,
                                                                  "strategy": s}}


def rs(name: str, replicas: int, available: int = 0, created: str = "2026-01-01T00:00:00Z",
       max_replicas: int | None = None) -> dict:
    m = {"name": name, "creationTimestamp": created, "annotations": {}}
    if max_replicas is not None:
        m["annotations"][MAX_REPLICAS] = str(max_replicas)
    return {"metadata": m, "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "availableReplicas": available,
                       "readyReplicas": available}}


def test_fnv_and_safe_encoding() -> None:
    assert fnv32a(b"") == 0x811C9DC5 and fnv32a(b"a") == 0xE40C292C
    assert safe_encode("0123456789") == "456789bcdf"  # as Kubernetes hashes look
    h = compute_hash({"a": 1})
    assert h == compute_hash({"a": 1}) and h != compute_hash({"a": 1}, 1)
    assert all(ch in "bcdfghjklmnpqrstvwxz2456789" for ch in h)


def test_hash_ignores_its_own_label() -> None:
    t = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": []}}
    with_hash = {"metadata": {"labels": {"app": "x", "pod-template-hash": "abc"}},
                 "spec": {"containers": []}}
    assert equal_ignore_hash(t, with_hash)
    assert pod_template_hash(t) == pod_template_hash(with_hash)


def test_fenceposts_round_surge_up_unavailable_down() -> None:
    assert resolve_fenceposts("25%", "25%", 10) == (3, 2)
    assert resolve_fenceposts(0, 0, 10) == (0, 1)
    assert resolve_fenceposts("0%", "0%", 3) == (0, 1)
    assert max_surge(d(3)) == 1 and max_unavailable(d(3)) == 0
    assert max_unavailable(d(3, unavail=10)) == 3  # capped at replicas
    assert max_surge(d(3, strategy="Recreate")) == 0


def test_new_rs_growth_limited_by_surge() -> None:
    dep = d(10, surge=3, unavail=2)
    old = rs("old", 10, 10)
    new = rs("new", 0)
    assert new_rs_new_replicas(dep, [old, new], new) == 3
    assert new_rs_new_replicas(dep, [rs("old", 8, 8), rs("new", 3)], rs("new", 3)) == 5
    assert new_rs_new_replicas(d(4, strategy="Recreate"), [], None) == 4


def test_old_scale_down_respects_min_available() -> None:
    dep = d(10, surge=3, unavail=2)
    old, new = rs("old", 10, 10), rs("new", 3, 0)
    # 13 pods, min available 8, 3 new unavailable → may drop 2 old
    assert old_scale_down_plan(dep, [old, new], [old], new) == {"old": 8}
    # unhealthy old replicas go first, beyond the healthy budget
    sick = rs("old", 10, 6)
    assert old_scale_down_plan(dep, [sick, rs("new", 3, 3)], [sick], rs("new", 3, 3)) \
        == {"old": 5}


def test_proportional_scaling() -> None:
    dep = d(15, surge=3, unavail=2)
    a = rs("a", 7, created="2026-01-01T00:00:00Z", max_replicas=13)
    b = rs("b", 6, created="2026-01-02T00:00:00Z", max_replicas=13)
    sizes = proportional_sizes(dep, [a, b])
    assert sum(sizes.values()) == 18
    assert sizes == {"a": 10, "b": 8}


def test_status_counts_and_available_condition() -> None:
    dep = d(3, surge=1, unavail=0)
    st = calculate_status(dep, [rs("a", 1, 1), rs("b", 3, 2)], rs("b", 3, 2), T0)
    assert (st["replicas"], st["updatedReplicas"], st["availableReplicas"],
            st["unavailableReplicas"]) == (4, 3, 3, 1)
    assert st["conditions"][0]["reason"] == "MinimumReplicasAvailable"
