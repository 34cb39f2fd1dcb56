"""The simulated container runtime's view of one pod, and the PodStatus a kubelet derives
from it. A real kubelet also computes status from runtime state rather than the other way
round; keeping that split makes the stages (stages.py) small transitions on this state."""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

from vkube.api.meta import Obj, UTC, parse_time, rfc3339
from vkube.host.commands import ExitPlan, container_env, plan_for


def iso(t: float) -> str:
    """A Unix time as ``metav1.Time``."""
    return rfc3339(dt.datetime.fromtimestamp(t, UTC))


def full_image(image: str) -> str:
    """What containerd reports: ``nginx`` → ``docker.io/library/nginx:latest``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    if ":" not in last:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = "docker.io/library/" + name
    elif "." not in first and ":" not in first and first != "localhost":
        name = "docker.io/" + name
    return name


def image_id(image: str) -> str:
    repo = full_image(image).rsplit(":", 1)[0]
    return f"{repo}@sha256:{hashlib.sha256(repo.encode()).hexdigest()}"


@dataclass
class ContainerRT:
    name: str
    image: str
    init: bool
    sidecar: bool  # an init container with restartPolicy Always
    plan: ExitPlan
    ready_delay: float  # seconds after start until the readiness probe passes
    state: str = "waiting"  # waiting | running | terminated
    reason: str = "ContainerCreating"
    message: str = ""
    since: float = 0.0  # when the current state was entered
    started_at: float = 0.0
    finished_at: float = 0.0
    exit_code: int = 0
    restart_count: int = 0
    ready: bool = False
    ever_started: bool = False
    backoff: float = 0.0  # seconds to wait in CrashLoopBackOff before the next start
    last: Obj | None = None  # lastState.terminated
    container_id: str = ""
    logs: list[tuple[float, str]] = field(default_factory=list)
    previous_logs: list[tuple[float, str]] = field(default_factory=list)
    #: added through pods/ephemeralcontainers (kubectl debug): started once the sandbox is
    #: up, never restarted, no part of the pod's phase or readiness
    ephemeral: bool = False

    @property
    def succeeded(self) -> bool:
        return self.state == "terminated" and self.exit_code == 0


@dataclass
class PodRT:
    uid: str
    namespace: str
    name: str
    node: str
    restart_policy: str
    grace_seconds: float
    containers: list[ContainerRT]
    pod_ip: str = ""
    host_ip: str = "127.0.0.1"
    sandbox: bool = False
    start_time: float = 0.0
    since: float = 0.0  # when the pod-level state last changed
    phase: str = "Pending"
    deleting: bool = False
    killing: bool = False
    removed: bool = False
    overrides: dict[str, float] = field(default_factory=dict)  # stage name -> delay seconds
    jitter: dict[tuple[str, str, float], float] = field(default_factory=dict)
    version: int = 0  # bumped on every transition; the kubelet publishes when it changes

    @property
    def init_containers(self) -> list[ContainerRT]:
        return [c for c in self.containers if c.init]

    @property
    def app_containers(self) -> list[ContainerRT]:
        return [c for c in self.containers if not c.init and not c.ephemeral]

    @property
    def ephemeral_containers(self) -> list[ContainerRT]:
        return [c for c in self.containers if c.ephemeral]

    def mark_deleting(self, now: float, grace: float | None = None) -> None:
        """The API server set deletionTimestamp: stopping starts now."""
        if not self.deleting:
            self.deleting, self.since = True, now
        if grace is not None:
            self.grace_seconds = min(self.grace_seconds, grace)

    def container(self, name: str) -> ContainerRT | None:
        return next((c for c in self.containers if c.name == name), None)

    @property
    def initialized(self) -> bool:
        return all(c.succeeded or (c.sidecar and c.state == "running") for c in self.init_containers)


def _seconds(value: str) -> float | None:
    try:
        v = value.strip()
        if v.endswith("ms"):
            return float(v[:-2]) / 1000
        return float(v[:-1]) if v.endswith("s") else float(v)
    except (ValueError, AttributeError):
        return None


def new_runtime(pod: Obj, *, now: float) -> PodRT:
    """Runtime state for a pod the kubelet has just been given."""
    meta, spec = pod["metadata"], pod.get("spec", {})
    ann = meta.get("annotations") or {}
    run_override = _seconds(ann.get("vkube.io/run-seconds", "")) if "vkube.io/run-seconds" in ann else None
    code_override = ann.get("vkube.io/exit-code")
    containers = []
    for init, items in ((True, spec.get("initContainers") or []), (False, spec.get("containers") or [])):
        for c in items:
            plan = plan_for(c, env=container_env(pod, c.get("name", "")))
            if run_override is not None:
                plan = ExitPlan(run_override, plan.exit_code, plan.output)
            if code_override is not None and code_override.lstrip("-").isdigit():
                plan = ExitPlan(plan.run_seconds if plan.run_seconds is not None else 0.0,
                                int(code_override) % 256, plan.output)
            probe = c.get("readinessProbe")
            ready_delay = float(probe.get("initialDelaySeconds", 0) or 0) if probe else 0.0
            containers.append(ContainerRT(
                name=c.get("name", ""), image=c.get("image", ""), init=init,
                sidecar=init and c.get("restartPolicy") == "Always", plan=plan,
                ready_delay=ready_delay, reason="PodInitializing" if (not init and spec.get("initContainers")) else "ContainerCreating",
                since=now))
    overrides = {}
    for k, v in ann.items():
        if k.startswith("vkube.io/stage-delay."):
            secs = _seconds(v)
            if secs is not None:
                overrides[k.split(".", 2)[2]] = secs
    containers += _ephemeral(pod, spec.get("ephemeralContainers") or [], now)
    grace = spec.get("terminationGracePeriodSeconds")
    return PodRT(uid=meta.get("uid", ""), namespace=meta.get("namespace", ""), name=meta["name"],
                 node=spec.get("nodeName", ""), restart_policy=spec.get("restartPolicy") or "Always",
                 grace_seconds=float(30 if grace is None else grace), containers=containers,
                 since=now, overrides=overrides)


def _ephemeral(pod: Obj, items: list[Obj], now: float) -> list[ContainerRT]:
    return [ContainerRT(name=c.get("name", ""), image=c.get("image", ""), init=False, sidecar=False,
                        plan=plan_for(c, env=container_env(pod, c.get("name", ""))), ready_delay=0.0,
                        since=now, ephemeral=True) for c in items]


def add_ephemeral(rt: PodRT, pod: Obj, *, now: float) -> bool:
    """Ephemeral containers the pod gained since the kubelet last looked (they are only ever
    added); True when there were any."""
    have = {c.name for c in rt.containers}
    new = [c for c in (pod.get("spec") or {}).get("ephemeralContainers") or []
           if c.get("name") not in have]
    rt.containers += _ephemeral(pod, new, now)
    return bool(new)


def _parse_iso(text: str | None, default: float) -> float:
    t = parse_time(text)
    return default if t is None else t.timestamp()


def adopt_runtime(pod: Obj, *, now: float) -> PodRT:
    """Runtime state rebuilt from a pod's published status, for pods that were already
    running before the host process restarted: running containers keep running (their
    timers start again now), finished ones stay finished."""
    rt = new_runtime(pod, now=now)
    status = pod.get("status", {})
    rt.sandbox = True
    rt.pod_ip = status.get("podIP", "")
    rt.start_time = _parse_iso(status.get("startTime"), now)
    rt.phase = status.get("phase") or "Pending"
    by_name = {s.get("name"): s for s in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses") or [])
               + (status.get("ephemeralContainerStatuses") or [])}
    for c in rt.containers:
        st = by_name.get(c.name) or {}
        state = st.get("state") or {}
        c.restart_count = int(st.get("restartCount", 0))
        c.container_id = st.get("containerID", "")
        c.last = (st.get("lastState") or {}).get("terminated")
        if "running" in state:
            c.state, c.reason, c.ever_started = "running", "", True
            c.started_at = _parse_iso(state["running"].get("startedAt"), now)
            c.ready = bool(st.get("ready"))
            c.logs = [(c.started_at, line) for line in c.plan.output]  # what it printed at start
        elif "terminated" in state:
            t = state["terminated"]
            c.state, c.ever_started = "terminated", True
            c.exit_code, c.reason = int(t.get("exitCode", 0)), t.get("reason", "Completed")
            c.started_at = _parse_iso(t.get("startedAt"), now)
            c.finished_at = _parse_iso(t.get("finishedAt"), now)
        elif c.init and rt.phase in ("Running", "Succeeded"):
            c.state, c.exit_code, c.reason, c.ever_started = "terminated", 0, "Completed", True
    return rt


def _container_status(c: ContainerRT) -> Obj:
    st: Obj = {"name": c.name, "image": full_image(c.image), "imageID": image_id(c.image) if c.ever_started else "",
               "ready": c.ready, "restartCount": c.restart_count, "started": c.state == "running"}
    if c.container_id:
        st["containerID"] = c.container_id
    if c.state == "running":
        st["state"] = {"running": {"startedAt": iso(c.started_at)}}
    elif c.state == "terminated":
        st["state"] = {"terminated": _terminated(c)}
    else:
        waiting: Obj = {"reason": c.reason}
        if c.message:
            waiting["message"] = c.message
        st["state"] = {"waiting": waiting}
    st["lastState"] = {"terminated": c.last} if c.last else {}
    return st


def _terminated(c: ContainerRT) -> Obj:
    return {"exitCode": c.exit_code, "reason": c.reason, "startedAt": iso(c.started_at),
            "finishedAt": iso(c.finished_at), "containerID": c.container_id}


def pod_status(rt: PodRT, pod: Obj, *, now: float) -> Obj:
    """The status a kubelet would post; conditions owned by others (e.g. DisruptionTarget)
    are kept, and lastTransitionTime only moves when a condition's status changes."""
    old = {c.get("type"): c for c in pod.get("status", {}).get("conditions") or []}
    apps, inits = rt.app_containers, rt.init_containers
    ready = bool(apps) and all(c.ready for c in apps) and rt.phase not in ("Succeeded", "Failed")
    unready = [c.name for c in apps if not c.ready]

    def cond(type_: str, ok: bool, reason: str = "", message: str = "") -> Obj:
        status = "True" if ok else "False"
        prev = old.get(type_) or {}
        c: Obj = {"type": type_, "status": status, "lastProbeTime": None,
                  "lastTransitionTime": prev.get("lastTransitionTime") if prev.get("status") == status
                  and prev.get("lastTransitionTime") else iso(now)}
        if not ok and reason:
            c["reason"], c["message"] = reason, message
        return c

    pending_init = [c.name for c in inits if not c.succeeded and not c.sidecar]
    done = rt.phase in ("Succeeded", "Failed")
    conds = [
        cond("PodReadyToStartContainers", rt.sandbox and not (done and rt.removed)),
        cond("Initialized", rt.initialized, "ContainersNotInitialized",
             f"containers with incomplete status: [{' '.join(pending_init)}]"),
        cond("Ready", ready, "PodCompleted" if done else "ContainersNotReady",
             "" if done else f"containers with unready status: [{' '.join(unready)}]"),
        cond("ContainersReady", ready, "PodCompleted" if done else "ContainersNotReady",
             "" if done else f"containers with unready status: [{' '.join(unready)}]"),
        cond("PodScheduled", True),
    ]
    ours = {c["type"] for c in conds}
    conds += [c for t, c in old.items() if t not in ours]
    status: Obj = {"phase": rt.phase, "conditions": conds, "hostIP": rt.host_ip,
                   "hostIPs": [{"ip": rt.host_ip}], "qosClass": _qos(pod)}
    if rt.pod_ip:
        status["podIP"], status["podIPs"] = rt.pod_ip, [{"ip": rt.pod_ip}]
    if rt.start_time:
        status["startTime"] = iso(rt.start_time)
    status["containerStatuses"] = [_container_status(c) for c in apps]
    if inits:
        status["initContainerStatuses"] = [_container_status(c) for c in inits]
    if rt.ephemeral_containers:
        status["ephemeralContainerStatuses"] = [_container_status(c) for c in rt.ephemeral_containers]
    return status


def _qos(pod: Obj) -> str:
    """BestEffort / Guaranteed / Burstable, as the API server computes it."""
    containers = (pod.get("spec", {}).get("containers") or []) + (pod.get("spec", {}).get("initContainers") or [])
    any_set, guaranteed = False, True
    for c in containers:
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if req or lim:
            any_set = True
        for r in ("cpu", "memory"):
            if r not in lim or (r in req and req[r] != lim[r]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
