"""Pod lifecycle as data, in the manner of KWOK's Stage: a selector over the pod (or one of
its containers), a delay with jitter, the transition to apply and the events to record. One
engine (``advance``) applies whatever is due; the kubelet only publishes the result.

Delays come from three places, added up: the stage's fixed ``delay`` (overridable per pod with
the annotation ``vkube.io/stage-delay.<stage>: "2s"``), a uniform ``jitter``, and
``delay_from``, a fact of the subject (the readiness probe's initialDelaySeconds, the run time
of ``sleep 5``, the CrashLoopBackOff back-off, the pod's stop time).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from vkube.host.podruntime import ContainerRT, PodRT, iso

Event = tuple[str, str, str]  # (type, reason, message)


@dataclass(frozen=True)
class KubeletConfig:
    """Timings of the simulation (seconds)."""

    stop_seconds: float = 1.0  # how long a container takes to stop on SIGTERM
    backoff_base: float = 10.0  # CrashLoopBackOff: base * 2**(n-1), capped
    backoff_max: float = 300.0
    pull_seconds: float = 0.2  # reported in the Pulled event
    #: a status whose next change is due within this many seconds is not written on its own
    #: (a starting pod's ContainerCreating moment, 0.05-0.25 s long, is folded into its
    #: Running status): a rollout's pods cost the API one status write each, not three
    coalesce_seconds: float = 0.3


@dataclass(frozen=True)
class Stage:
    name: str
    on: str  # "pod" or "container"
    when: dict[str, Any]  # fact -> required value, or a tuple of allowed values
    then: str  # transition name (see TRANSITIONS)
    delay: float = 0.0
    jitter: float = 0.0
    delay_from: str | None = None
    events: tuple[Event, ...] = ()

    def matches(self, facts: dict[str, Any]) -> bool:
        for k, want in self.when.items():
            have = facts.get(k)
            if isinstance(want, tuple):
                if have not in want:
                    return False
            elif have != want:
                return False
        return True


DEFAULT_STAGES: tuple[Stage, ...] = (
    Stage("pod-create-sandbox", "pod", {"phase": "Pending", "sandbox": False, "deleting": False},
          "create_sandbox", delay=0.05, jitter=0.1),
    Stage("container-start", "container", {"state": "waiting", "startable": True, "deleting": False},
          "start_container", delay=0.05, jitter=0.15, delay_from="backoff",
          events=(("Normal", "Pulling", "{pulling}"),
                  ("Normal", "Pulled", "{pulled}"),
                  ("Normal", "Created", "Created container: {container}"),
                  ("Normal", "Started", "Started container {container}"))),
    Stage("container-ready", "container", {"state": "running", "ready": False, "probed": True, "deleting": False},
          "mark_ready", delay_from="readyDelay"),
    Stage("container-exit", "container", {"state": "running", "exits": True, "deleting": False},
          "exit_container", delay_from="runSeconds"),
    Stage("pod-complete", "pod", {"phase": ("Pending", "Running"), "done": True, "deleting": False},
          "complete"),
    Stage("pod-kill", "pod", {"deleting": True, "killing": False}, "kill"),
    Stage("pod-remove", "pod", {"deleting": True, "killing": True, "removed": False}, "remove",
          delay_from="stopSeconds"),
)


# --- facts ------------------------------------------------------------------------------------

def _restarts(rt: PodRT, c: ContainerRT) -> bool:
    if c.ephemeral:
        return False
    if c.sidecar:
        return True
    if rt.restart_policy == "Always":
        return not c.init or c.exit_code != 0
    if rt.restart_policy == "OnFailure":
        return c.exit_code != 0
    return False


def _done(rt: PodRT) -> bool:
    if not rt.sandbox:
        return False
    for c in rt.init_containers:
        if c.state == "terminated" and c.exit_code != 0 and rt.restart_policy == "Never":
            return True
    apps = rt.app_containers
    return bool(apps) and all(c.state == "terminated" for c in apps)


def pod_facts(rt: PodRT, cfg: KubeletConfig) -> dict[str, Any]:
    running = any(c.state == "running" for c in rt.containers)
    return {"phase": rt.phase, "sandbox": rt.sandbox, "deleting": rt.deleting, "killing": rt.killing,
            "removed": rt.removed, "done": _done(rt),
            "stopSeconds": min(rt.grace_seconds, cfg.stop_seconds) if running else 0.0}


def container_facts(rt: PodRT, c: ContainerRT) -> dict[str, Any]:
    if c.init:
        idx = rt.containers.index(c)
        startable = rt.sandbox and all(p.succeeded or (p.sidecar and p.state == "running")
                                       for p in rt.containers[:idx] if p.init)
    elif c.ephemeral:  # kubelet starts them even before initialization completes
        startable = rt.sandbox and not c.ever_started
    else:
        startable = rt.sandbox and rt.initialized
    return {"state": c.state, "startable": startable and rt.phase in ("Pending", "Running"),
            "deleting": rt.deleting, "ready": c.ready,
            "probed": (not c.init or c.sidecar) and not c.ephemeral,
            "exits": c.plan.exits, "init": c.init,
            "readyDelay": c.ready_delay, "runSeconds": c.plan.run_seconds or 0.0, "backoff": c.backoff}


# --- transitions --------------------------------------------------------------------------------

@dataclass
class Context:
    """What a transition may use besides the pod: time, randomness, node-level facts."""

    now: float
    cfg: KubeletConfig
    rng: random.Random
    allocate_ip: Callable[[PodRT], str]
    pulled: set[str] = field(default_factory=set)  # images present on the node


def _create_sandbox(rt: PodRT, c: ContainerRT | None, ctx: Context, t: float) -> dict[str, str]:
    rt.sandbox = True
    rt.pod_ip = ctx.allocate_ip(rt)
    rt.start_time = t
    for x in rt.containers:
        x.since = t  # waiting for start counts from sandbox creation
    return {}


def _start_container(rt: PodRT, c: ContainerRT | None, ctx: Context, t: float) -> dict[str, str]:
    assert c is not None
    if c.ever_started:
        c.restart_count += 1
        c.previous_logs, c.logs = c.logs, []
    pulling = ""  # an image already on the node is not pulled: kubelet says only Pulled
    if c.image in ctx.pulled:
        pulled = f'Container image "{c.image}" already present on machine'
    else:
        pulling = f'Pulling image "{c.image}"'
        ctx.pulled.add(c.image)
        p = ctx.cfg.pull_seconds
        pulled = f'Successfully pulled image "{c.image}" in {p:.3g}s ({p:.3g}s including waiting). Image size: 72000000 bytes.'
    c.state, c.reason, c.message = "running", "", ""
    c.since = c.started_at = t
    c.ever_started = True
    c.container_id = "containerd://" + "%064x" % ctx.rng.getrandbits(256)
    c.ready = False
    c.logs.extend((t, line) for line in c.plan.output)
    if not c.init and not c.ephemeral and rt.phase == "Pending":
        rt.phase = "Running"
    return {"container": c.name, "image": c.image, "pulling": pulling, "pulled": pulled}


def _mark_ready(rt: PodRT, c: ContainerRT | None, ctx: Context, t: float) -> dict[str, str]:
    assert c is not None
    c.ready = True
    return {}


def _exit_container(rt: PodRT, c: ContainerRT | None, ctx: Context, t: float) -> dict[str, str]:
    assert c is not None
    c.state, c.exit_code = "terminated", c.plan.exit_code
    c.reason = "Completed" if c.exit_code == 0 else "Error"
    c.finished_at, c.since, c.ready = t, t, False
    if _restarts(rt, c):
        c.last = {"exitCode": c.exit_code, "reason": c.reason, "startedAt": iso(c.started_at),
                  "finishedAt": iso(c.finished_at), "containerID": c.container_id}
        # The first restart is immediate; after that the back-off doubles up to its cap.
        n = c.restart_count
        c.backoff = 0.0 if n == 0 else min(ctx.cfg.backoff_max, ctx.cfg.backoff_base * 2 ** (n - 1))
        c.state = "waiting"
        c.reason = "CrashLoopBackOff" if c.backoff else "ContainerCreating"
        c.message = (f"back-off {_dur(c.backoff)} restarting failed container={c.name} "
                     f"pod={rt.name}_{rt.namespace}({rt.uid})") if c.backoff else ""
        if c.backoff:
            return {"container": c.name, "backoff": "1", "message": c.message}
    return {"container": c.name}


def _complete(rt: PodRT, c: ContainerRT | None, ctx: Context, t: float) -> dict[str, str]:
    failed = any(x.state == "terminated" and x.exit_code != 0 for x in rt.containers
                 if not x.ephemeral and (not x.init or rt.restart_policy == "Never"))
    rt.phase = "Failed" if failed else "Succeeded"
    for x in rt.containers:
        if x.state == "waiting":  # init failure: the rest never ran
            x.reason = "PodInitializing" if not x.init else x.reason
    return {}


def _kill(rt: PodRT, c: ContainerRT | None, ctx: Context, t: float) -> dict[str, str]:
    rt.killing = True
    return {"killed": ",".join(x.name for x in rt.containers if x.state == "running")}


def _remove(rt: PodRT, c: ContainerRT | None, ctx: Context, t: float) -> dict[str, str]:
    for x in rt.containers:
        if x.state == "running":
            x.state, x.ready, x.finished_at = "terminated", False, t
            # Servers stop cleanly on SIGTERM; scripted commands (PID 1 ignores it) get killed.
            x.exit_code, x.reason = (137, "Error") if x.plan.exits else (0, "Completed")
        elif x.state == "waiting":
            x.reason = "ContainerStatusUnknown" if x.ever_started else x.reason
    rt.removed = True
    return {}


TRANSITIONS: dict[str, Callable[[PodRT, ContainerRT | None, Context, float], dict[str, str]]] = {
    "create_sandbox": _create_sandbox, "start_container": _start_container, "mark_ready": _mark_ready,
    "exit_container": _exit_container, "complete": _complete, "kill": _kill, "remove": _remove,
}


def _dur(seconds: float) -> str:
    """Go's time.Duration formatting for whole seconds: 10s, 1m20s, 5m0s."""
    s = int(seconds)
    return f"{s // 60}m{s % 60}s" if s >= 60 else f"{s}s"


# --- the engine ---------------------------------------------------------------------------------

@dataclass
class Applied:
    stage: Stage
    container: str | None
    events: list[Event]


def _due(stage: Stage, rt: PodRT, since: float, subject: str, facts: dict[str, Any], rng: random.Random) -> float:
    base = rt.overrides.get(stage.name, stage.delay)
    key = (stage.name, subject, since)
    j = rt.jitter.get(key)
    if j is None:
        j = rng.uniform(0, stage.jitter) if stage.jitter else 0.0
        if len(rt.jitter) > 64:
            rt.jitter.clear()
        rt.jitter[key] = j
    extra = float(facts.get(stage.delay_from, 0.0) or 0.0) if stage.delay_from else 0.0
    return since + base + j + extra


def pending(rt: PodRT, stages: tuple[Stage, ...], cfg: KubeletConfig, rng: random.Random,
            ) -> list[tuple[float, int, Stage, ContainerRT | None]]:
    """Every (due time, order, stage, container) whose selector matches right now."""
    out = []
    pf = pod_facts(rt, cfg)
    for order, st in enumerate(stages):
        if st.on == "pod":
            if st.matches(pf):
                out.append((_due(st, rt, rt.since, "", pf, rng), order, st, None))
            continue
        for c in rt.containers:
            cf = container_facts(rt, c)
            if st.matches(cf):
                out.append((_due(st, rt, c.since, c.name, cf, rng), order, st, c))
    out.sort(key=lambda x: (x[0], x[1]))
    return out


def advance(rt: PodRT, ctx: Context, stages: tuple[Stage, ...] = DEFAULT_STAGES,
            ) -> tuple[list[Applied], float | None]:
    """Apply every stage due at ``ctx.now`` (repeatedly, as one transition can make the next
    one due); returns what was applied and when the next stage falls due (None: nothing)."""
    applied: list[Applied] = []
    for _ in range(200):  # a bound, not a limit anyone should reach
        todo = pending(rt, stages, ctx.cfg, ctx.rng)
        if not todo or todo[0][0] > ctx.now:
            return applied, (todo[0][0] if todo else None)
        due, _, st, c = todo[0]
        # A transition happens at its due time even if processed late, so chains of stages
        # keep their simulated timing.
        fields = TRANSITIONS[st.then](rt, c, ctx, due)
        if st.on == "pod":
            rt.since = due
        rt.version += 1
        # an event whose message comes out empty did not happen (no pull of a present image)
        events = [(typ, r, msg) for typ, r, m in st.events if (msg := m.format(**fields))]
        if fields.get("backoff"):
            events.append(("Warning", "BackOff", "Back-off restarting failed container "
                           f"{c.name if c else ''} in pod {rt.name}_{rt.namespace}({rt.uid})"))
        if "killed" in fields:
            events += [("Normal", "Killing", f"Stopping container {n}") for n in fields["killed"].split(",") if n]
        applied.append(Applied(st, c.name if c else None, events))
    raise RuntimeError(f"stages of pod {rt.namespace}/{rt.name} do not settle")
