"""The stage engine on simulated time: pod in → status out at chosen instants."""

from __future__ import annotations

import random

from vkube.host.podruntime import new_runtime, pod_status
from vkube.host.stages import Context, KubeletConfig, advance

T0 = 1_000_000.0


def mkpod(containers, *, init=(), policy="Always", annotations=None, grace=None):
    spec = {"nodeName": "n1", "restartPolicy": policy, "containers": list(containers)}
    if init:
        spec["initContainers"] = list(init)
    if grace is not None:
        spec["terminationGracePeriodSeconds"] = grace
    return {"metadata": {"name": "p", "namespace": "default", "uid": "u1", "annotations": annotations or {}},
            "spec": spec}


class Sim:
    """Runs the engine at explicit instants and collects events."""

    def __init__(self, pod, cfg=KubeletConfig(stop_seconds=1.0, backoff_base=10, backoff_max=40)):
        self.pod = pod
        self.rt = new_runtime(pod, now=T0)
        self.cfg = cfg
        self.rng = random.Random(7)
        self.events = []
        self.pulled = set()

    def at(self, t):
        ctx = Context(now=T0 + t, cfg=self.cfg, rng=self.rng, allocate_ip=lambda rt: "10.244.1.2",
                      pulled=self.pulled)
        applied, nxt = advance(self.rt, ctx)
        for a in applied:
            self.events += [(e[1], a.container) for e in a.events]
        self.next = None if nxt is None else nxt - T0
        return pod_status(self.rt, self.pod, now=T0 + t)


def cstate(status, i=0, key="containerStatuses"):
    return status[key][i]["state"]


def cond(status, type_):
    return next(c["status"] for c in status["conditions"] if c["type"] == type_)


def test_nginx_runs_and_gets_ready_after_probe_delay():
    sim = Sim(mkpod([{"name": "web", "image": "nginx", "readinessProbe": {"initialDelaySeconds": 5}}]))
    st = sim.at(0)
    assert st["phase"] == "Pending" and "waiting" in cstate(st)
    st = sim.at(1)
    assert st["phase"] == "Running" and st["podIP"] == "10.244.1.2" and "running" in cstate(st)
    assert cond(st, "Ready") == "False" and cond(st, "PodReadyToStartContainers") == "True"
    assert [e for e, _ in sim.events] == ["Pulling", "Pulled", "Created", "Started"]
    cs = st["containerStatuses"][0]
    assert cs["image"] == "docker.io/library/nginx:latest"
    assert cs["imageID"].startswith("docker.io/library/nginx@sha256:")
    assert cs["containerID"].startswith("containerd://") and cs["started"] is True
    assert 4 < sim.next < 6
    st = sim.at(6)
    assert cond(st, "Ready") == "True" and cond(st, "ContainersReady") == "True"
    assert sim.next is None
    assert any("nginx" in line for _, line in sim.rt.containers[0].logs)


def test_never_sleep_completes_and_exit_code_fails():
    sim = Sim(mkpod([{"name": "c", "image": "busybox", "command": ["sleep", "1"]}], policy="Never"))
    sim.at(0.5)
    st = sim.at(2)
    assert st["phase"] == "Succeeded"
    assert cstate(st)["terminated"]["reason"] == "Completed" and cstate(st)["terminated"]["exitCode"] == 0
    sim = Sim(mkpod([{"name": "c", "image": "busybox", "command": ["sh", "-c", "exit 3"]}], policy="Never"))
    st = sim.at(1)
    assert st["phase"] == "Failed"
    assert cstate(st)["terminated"] == {**cstate(st)["terminated"], "reason": "Error", "exitCode": 3}


def test_always_restarts_with_crashloop_backoff():
    sim = Sim(mkpod([{"name": "c", "image": "busybox", "command": ["false"]}]))
    st = sim.at(1)  # start, exit, immediate restart, exit again → back-off 10s
    cs = st["containerStatuses"][0]
    assert cs["restartCount"] == 1
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert cs["lastState"]["terminated"]["exitCode"] == 1
    assert "BackOff" in [e for e, _ in sim.events]
    assert 10 < sim.next < 11.5
    st = sim.at(12)
    assert st["containerStatuses"][0]["restartCount"] == 2
    assert 30 < sim.next < 33.5  # 20s after the crash at ~12


def test_on_failure_succeeds_without_restart():
    sim = Sim(mkpod([{"name": "c", "image": "busybox", "command": ["true"]}], policy="OnFailure"))
    st = sim.at(1)
    assert st["phase"] == "Succeeded" and st["containerStatuses"][0]["restartCount"] == 0


def test_init_containers_run_in_order():
    init = [{"name": "i1", "image": "busybox", "command": ["sleep", "2"]},
            {"name": "i2", "image": "busybox", "command": ["echo", "done"]}]
    sim = Sim(mkpod([{"name": "app", "image": "nginx"}], init=init))
    st = sim.at(1)
    assert st["phase"] == "Pending" and cond(st, "Initialized") == "False"
    assert "running" in cstate(st, 0, "initContainerStatuses")
    assert cstate(st)["waiting"]["reason"] == "PodInitializing"
    st = sim.at(3)
    assert cond(st, "Initialized") == "True" and st["phase"] == "Running"
    assert cstate(st, 1, "initContainerStatuses")["terminated"]["reason"] == "Completed"
    assert sim.rt.container("i2").logs[0][1] == "done"
    starts = [c for e, c in sim.events if e == "Started"]
    assert starts == ["i1", "i2", "app"]


def test_failed_init_with_never_fails_pod():
    sim = Sim(mkpod([{"name": "app", "image": "nginx"}], init=[{"name": "i", "image": "busybox", "command": ["false"]}],
                    policy="Never"))
    st = sim.at(1)
    assert st["phase"] == "Failed" and "waiting" in cstate(st)


def test_graceful_deletion_then_removed():
    sim = Sim(mkpod([{"name": "web", "image": "nginx"}]))
    sim.at(1)
    sim.rt.mark_deleting(T0 + 1.05)
    sim.at(1.1)
    assert "Killing" in [e for e, _ in sim.events] and not sim.rt.removed
    st = sim.at(2.2)
    assert sim.rt.removed and cstate(st)["terminated"]["exitCode"] == 0


def test_deletion_respects_short_grace_period():
    sim = Sim(mkpod([{"name": "web", "image": "nginx"}], grace=0))
    sim.at(1)
    sim.rt.mark_deleting(T0 + 1.0)
    sim.at(1.01)
    assert sim.rt.removed


def test_annotation_overrides():
    pod = mkpod([{"name": "c", "image": "nginx"}], policy="Never",
                annotations={"vkube.io/run-seconds": "5", "vkube.io/exit-code": "2",
                             "vkube.io/stage-delay.container-start": "3s"})
    sim = Sim(pod)
    assert sim.at(2)["phase"] == "Pending"
    assert sim.at(4)["phase"] == "Running"
    st = sim.at(10)
    assert st["phase"] == "Failed" and cstate(st)["terminated"]["exitCode"] == 2


def test_ephemeral_containers_start_run_once_and_stay_out_of_phase_and_readiness():
    from vkube.host.podruntime import add_ephemeral

    pod = mkpod([{"name": "web", "image": "nginx"}])
    sim = Sim(pod)
    st = sim.at(1)
    assert st["phase"] == "Running" and "ephemeralContainerStatuses" not in st
    pod["spec"]["ephemeralContainers"] = [
        {"name": "dbg", "image": "busybox", "command": ["sh", "-c", "echo hi; exit 3"]},
        {"name": "sh", "image": "busybox", "stdin": True}]
    assert add_ephemeral(sim.rt, pod, now=T0 + 2) and not add_ephemeral(sim.rt, pod, now=T0 + 2)
    st = sim.at(3)
    dbg, sh = st["ephemeralContainerStatuses"]
    assert dbg["name"] == "dbg" and dbg["state"]["terminated"]["exitCode"] == 3
    assert "running" in sh["state"] and not sh["ready"]  # an open stdin keeps the shell up
    assert sim.rt.container("dbg").logs[0][1] == "hi"
    st = sim.at(60)  # a failed ephemeral container is never restarted nor fails the pod
    assert st["ephemeralContainerStatuses"][0]["restartCount"] == 0
    assert "terminated" in st["ephemeralContainerStatuses"][0]["state"]
    assert st["phase"] == "Running" and cond(st, "Ready") == "True"
    assert [c["name"] for c in st["containerStatuses"]] == ["web"]
    assert ("Started", "dbg") in sim.events and ("Started", "sh") in sim.events
