"""Virtual pods whose host pod is gone while no syncer watched (``vkube pause``/``resume``,
a shared cluster's sleep and wake): their status still says what the host said before, so
``kubectl get pods`` right after a resume showed them ``Running`` and Ready for seconds while
nothing ran, and Services kept routing to them.

Before the syncer reports ready, each such pod's status is made true of the host as found: its
containers are not running (``Pending``, Ready and ContainersReady ``False``, every container
waiting in ``ContainerCreating``, no pod IP), as a pod whose kubelet has not started it yet
shows. Then the usual reconcile makes the host pod again (a bare pod) or replaces the pod (its
controller makes a new one), and the host's own status takes over as soon as it reports.
``startTime`` and ``hostIP`` stay: they tell the syncer the pod had a host pod before.
"""

from __future__ import annotations

import asyncio
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
    for field in ("containerStatuses", "initContainerStatuses"):
        if field in status:
            new[field] = [_waiting(c) for c in status.get(field) or []]
    return new


def _waiting(cs: Obj) -> Obj:
    out = {k: v for k, v in cs.items() if k not in ("state", "ready", "started", "containerID")}
    out.update(state={"waiting": {"reason": "ContainerCreating"}}, ready=False, started=False)
    return out


async def mark_gone(virtual: Client, pods: Iterable[Obj]) -> int:
    """Write the not-running status of each pod (its uid a precondition); returns how many."""
    now = rfc3339(utcnow())
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def one(pod: Obj) -> int:
        meta = pod["metadata"]
        ops = [{"op": "test", "path": "/metadata/uid", "value": meta.get("uid")},
               {"op": "replace", "path": "/status", "value": not_running(pod.get("status") or {}, pod, now=now)}]
        async with gate:
            try:
                await virtual.patch(PODS, meta["name"], ops, type="json", namespace=meta["namespace"],
                                    subresource="status")
            except (errors.NotFound, errors.Invalid, errors.Conflict):
                return 0  # gone or replaced meanwhile: its own reconcile looks at it
        return 1

    done = sum(await asyncio.gather(*(one(p) for p in pods)))
    if done:
        log.info("%d pod%s shown not running: their host pods are gone", done, "" if done == 1 else "s")
    return done
