"""The HPA's CPU initialization period and initial readiness delay (``groupPods`` in
``replica_calculator.go``, kube-controller-manager's 5m and 30s defaults): which pods' CPU
samples count, with the cases of upstream's ``TestGroupPods``, and what that does to a scale-up."""

from __future__ import annotations

import datetime as dt

import pytest

from vkube.api.meta import rfc3339
from vkube.controllers.hpa_replicas import PodTiming, Sample, group_pods, replicas_for_utilization

NOW = dt.datetime(2026, 11, 30, 12, 0, tzinfo=dt.timezone.utc)
WINDOW = dt.timedelta(seconds=30)


def pod(name: str, *, started: dt.timedelta | None, ready: str | None = "True",
        changed: dt.timedelta | None = None, phase: str = "Running") -> dict:
    """A pod started ``started`` ago whose Ready condition last changed ``changed`` ago."""
    status: dict = {"phase": phase}
    if started is not None:
        status["startTime"] = rfc3339(NOW - started)
    if ready is not None:
        cond = {"type": "Ready", "status": ready}
        if changed is not None:
            cond["lastTransitionTime"] = rfc3339(NOW - changed)
        status["conditions"] = [cond]
    return {"metadata": {"name": name}, "status": status,
            "spec": {"containers": [{"name": "c", "resources": {"requests": {"cpu": "100m"}}}]}}


def timing(sampled: dt.timedelta = dt.timedelta(0), **kw: dt.timedelta) -> PodTiming:
    """Every pod's metric taken ``sampled`` ago over a 30 s window."""
    return PodTiming(NOW, {n: Sample(NOW - sampled, WINDOW) for n in ("p",)}, **kw)


M = dt.timedelta(minutes=1)
S = dt.timedelta(seconds=1)


@pytest.mark.parametrize("the_pod, counted", [
    # within the initialization period: Ready, and a full window sampled since it became Ready
    (pod("p", started=1 * M, changed=40 * S), True),
    # ... but a sample that began before it became Ready does not count
    (pod("p", started=1 * M, changed=10 * S), False),
    (pod("p", started=1 * M, ready="False", changed=50 * S), False),
    # after the period: a pod not Ready that never was (readiness last changed within 30 s of its start)
    (pod("p", started=10 * M, ready="False", changed=10 * M - 10 * S), False),
    # ... but one that was Ready and then stopped being so counts (its CPU is real)
    (pod("p", started=10 * M, ready="False", changed=5 * M), True),
    (pod("p", started=10 * M, changed=10 * S), True),
    (pod("p", started=None, changed=10 * M), False),  # no start time
    (pod("p", started=10 * M, ready=None), False),  # no Ready condition
    (pod("p", started=None, ready=None, phase="Pending"), False),
])
def test_which_cpu_samples_count(the_pod: dict, counted: bool):
    ready, unready, missing, ignored = group_pods([the_pod], {"p": 50}, "cpu", timing())
    assert (ready, unready) == ((1, set()) if counted else (0, {"p"}))
    assert not missing and not ignored


def test_memory_samples_always_count_and_periods_are_settings():
    starting = pod("p", started=1 * M, changed=10 * S)
    assert group_pods([starting], {"p": 50}, "memory", timing()) == (1, set(), set(), set())
    # --horizontal-pod-autoscaler-cpu-initialization-period=30s: the pod is past it
    assert group_pods([starting], {"p": 50}, "cpu", timing(cpu_initialization_period=30 * S))[0] == 1
    # --horizontal-pod-autoscaler-initial-readiness-delay=5m: a pod not Ready whose readiness
    # changed within 5 minutes of its start is taken as never ready
    dropped = pod("p", started=10 * M, ready="False", changed=6 * M)
    assert group_pods([dropped], {"p": 50}, "cpu", timing())[0] == 1
    assert group_pods([dropped], {"p": 50}, "cpu", timing(initial_readiness_delay=5 * M))[0] == 0


def test_a_starting_pod_counts_as_idle_when_scaling_up():
    """Two settled pods at 100 % of request against a 50 % target, and one that just became
    Ready at 100 %: its sample is left out, and for a scale-up an unready pod counts as using
    nothing, so the proposal is 4 (200m over 300m is 67 %, 1.33 × 3 pods), not 6."""
    pods = [pod("a", started=10 * M, changed=9 * M), pod("b", started=10 * M, changed=9 * M),
            pod("p", started=1 * M, changed=5 * S)]
    usage = {"a": 100, "b": 100, "p": 100}
    samples = {n: Sample(NOW, WINDOW) for n in usage}
    replicas, utilization, _ = replicas_for_utilization(3, 50, pods, usage, "cpu", timing=PodTiming(NOW, samples))
    assert (replicas, utilization) == (4, 100)  # utilization reported over the counted pods
    settled = PodTiming(NOW + 10 * M, {n: Sample(NOW + 10 * M, WINDOW) for n in usage})
    assert replicas_for_utilization(3, 50, pods, usage, "cpu", timing=settled)[0] == 6
