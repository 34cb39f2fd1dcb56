"""Virtual pods whose host pod is gone while no syncer watched (``vkube pause``/``resume``,
a shared cluster's sleep and wake): their status still says what the host said before, so
``kubectl get pods`` right after a resume showed them ``Running`` and Ready for seconds while
nothing ran, and Services kept routing to them.

Before the syncer reports ready, each such pod's status is made true of the host as found: its
containers are not running (``Pending``, Ready and ContainersReady ``False``, every container
waiting in ``ContainerCreating``, no pod IP), as a pod whose kubelet has not started it yet
shows. Then the usual reconcile makes the host pod again (a bare pod, or an owned one whose
containers always restart) or deletes the pod (a Job's: the Job makes a new one), and the
host's own status takes over as soon as it reports.
``startTime`` and ``hostIP`` stay: they tell the syncer the pod had a host pod before.
``vkube serve`` reports a cluster whose host is already named (resume, restart) ready only
after this, so the first request after ``vkube resume`` already reads it.

Such a pod keeps its uid across the gap, as a pod does across its node's reboot, and so its
history: a container that ran shows that run as its ``lastState`` (terminated, ``Unknown``,
exit code 255), and its ``restartCount`` grows by one once it runs again (``as_shown``).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable

from vkube.api import errors
from vkube.api.meta import Obj, rfc3339, utcnow
from vkube.client.client import Client
from vkube.client.resources import PODS

log = logging.getLogger(__name__)

TERMINAL = ("Succeeded", "Failed")
#: at most this many status writes at once (a resume of a large cluster)
_CONCURRENCY = 16


def claims_to_run(pod: Obj) -> bool:
    """Does the pod's status say that it runs (a phase or a container the host reported)?"""
    status = pod.get("status") or {}
    if status.get("phase") in TERMINAL or (pod.get("metadata") or {}).get("deletionTimestamp"):
        return False
    if status.get("phase") == "Running":
        return True
    return any(c.get("ready") or "running" in (c.get("state") or {})
               for c in status.get("containerStatuses") or [])


def not_running(status: Obj, pod: Obj, *, now: str) -> Obj:
    """``status`` as a pod shows it whose containers have not been started (again) yet."""
    names = [c.get("name", "") for c in (pod.get("spec") or {}).get("containers") or []]
    message = f"containers with unready status: [{' '.join(names)}]"
    new = {k: v for k, v in status.items() if k not in ("podIP", "podIPs")}
    new["phase"] = "Pending"
    conditions = []
    for c in status.get("conditions") or []:
        if c.get("type") in ("Ready", "ContainersReady"):
            c = {**c, "status": "False", "reason": "ContainersNotReady", "message": message,
                 "lastTransitionTime": now if c.get("status") != "False" else c.get("lastTransitionTime", now)}
        conditions.append(c)
    new["conditions"] = conditions
    for field in ("containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses"):
        if field in status:
            new[field] = [_waiting(c, now) for c in status.get(field) or []]
    return new


def _waiting(cs: Obj, now: str) -> Obj:
    """A container whose host pod went: waiting to be made again. One that ran shows its
    last run as a kubelet shows a container lost with its node (terminated, reason
    ``Unknown``, exit code 255); its restartCount grows once it runs again (``as_shown``)."""
    out = {k: v for k, v in cs.items() if k not in ("state", "ready", "started", "containerID")}
    state = cs.get("state") or {}
    if "running" in state or "terminated" in state:
        last = dict(state.get("terminated") or {"exitCode": 255, "reason": "Unknown", "finishedAt": now})
        if "running" in state:
            last["startedAt"] = state["running"].get("startedAt")
        if cs.get("containerID"):
            last["containerID"] = cs["containerID"]
        out["lastState"] = {"terminated": {k: v for k, v in last.items() if v is not None}}
    out.update(state={"waiting": {"reason": "ContainerCreating"}}, ready=False, started=False)
    return out


#: on a host pod made again for a bare pod: per container, the restarts its virtual pod had
#: counted and whether the container had run (JSON ``{name: [count, ran]}``)
ANN_RESTARTS = "vkube.io/restarts-before"


def restarts_before(vpod: Obj) -> str:
    """``ANN_RESTARTS`` for the host pod that is made again for ``vpod``."""
    status = vpod.get("status") or {}
    out = {c.get("name", ""): [int(c.get("restartCount") or 0), "terminated" in (c.get("lastState") or {})]
           for field in ("initContainerStatuses", "containerStatuses") for c in status.get(field) or []}
    return json.dumps(out, sort_keys=True, separators=(",", ":"))


def as_shown(hpod: Obj, vstatus: Obj) -> Obj:
    """The host pod's status as its virtual pod shows it. A host pod made again for a bare pod
    (``ANN_RESTARTS``) continues the pod's history, as a pod does whose node restarted: each
    container that runs again counts one restart more than it had, and the last run stays its
    ``lastState`` until the host has one. Until the host's kubelet reports containers, the
    virtual pod keeps showing them waiting (and keeps its own conditions the host has not
    set, such as PodScheduled), rather than none at all."""
    hstatus = hpod.get("status") or {}
    raw = ((hpod.get("metadata") or {}).get("annotations") or {}).get(ANN_RESTARTS)
    if raw:
        try:
            before = json.loads(raw)
        except ValueError:
            before = {}
        if isinstance(before, dict) and before:
            hstatus = dict(hstatus)
            for field in ("initContainerStatuses", "containerStatuses"):
                if field in hstatus:
                    old = {c.get("name"): c for c in vstatus.get(field) or []}
                    hstatus[field] = [_continued(c, before.get(c.get("name")), old.get(c.get("name")))
                                      for c in hstatus[field]]
    if "containerStatuses" in hstatus or hstatus.get("phase") not in (None, "Pending"):
        return hstatus
    kept = [c for f in ("initContainerStatuses", "containerStatuses") for c in vstatus.get(f) or []]
    if not kept or any(set(c.get("state") or {}) != {"waiting"} for c in kept):
        return hstatus
    out = dict(hstatus)
    for field in ("initContainerStatuses", "containerStatuses"):
        if field in vstatus:
            out[field] = vstatus[field]
    own = {c.get("type") for c in hstatus.get("conditions") or []}
    extra = [c for c in vstatus.get("conditions") or [] if c.get("type") not in own]
    if extra:
        out["conditions"] = [*(hstatus.get("conditions") or []), *extra]
    return out


def _continued(cs: Obj, before: object, old: Obj | None) -> Obj:
    if not (isinstance(before, list) and len(before) == 2):
        return cs
    count, ran = int(before[0] or 0), bool(before[1])
    state = cs.get("state") or {}
    host_count = int(cs.get("restartCount") or 0)
    started = host_count > 0 or "running" in state or "terminated" in state
    out = dict(cs)
    out["restartCount"] = count + host_count + (1 if ran and started else 0)
    if not (cs.get("lastState") or {}) and old is not None and (old.get("lastState") or {}):
        out["lastState"] = old["lastState"]
    return out


async def mark_gone(virtual: Client, pods: Iterable[Obj]) -> list[Obj]:
    """Write the not-running status of each pod (its uid a precondition); returns the pods
    so written."""
    now = rfc3339(utcnow())
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def one(pod: Obj) -> Obj | None:
        meta = pod["metadata"]
        ops = [{"op": "test", "path": "/metadata/uid", "value": meta.get("uid")},
               {"op": "replace", "path": "/status", "value": not_running(pod.get("status") or {}, pod, now=now)}]
        async with gate:
            try:
                await virtual.patch(PODS, meta["name"], ops, type="json", namespace=meta["namespace"],
                                    subresource="status")
            except (errors.NotFound, errors.Invalid, errors.Conflict):
                return None  # gone or replaced meanwhile: its own reconcile looks at it
        return pod

    done = [p for p in await asyncio.gather(*(one(p) for p in pods)) if p is not None]
    if done:
        log.info("%d pod%s shown not running: their host pods are gone", len(done), "" if len(done) == 1 else "s")
    return done
