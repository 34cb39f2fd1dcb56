"""After pods were shown not running (``vkube.syncer.podgone``), their controllers' status
must say so too before the cluster is reported back: ``kubectl rollout status`` reads only a
Deployment's (StatefulSet's, DaemonSet's) status, and one still counting the pods from before
a pause passed at once while no pod ran. So the syncer waits, bounded, until no such status
counts more ready (or available) pods than are ready now; the controllers write those counts
from the pods as usual, this only waits for them to have done so.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Callable, Iterable

from vkube.api import errors
from vkube.api.meta import Obj
from vkube.client.client import Client, Resource
from vkube.client.resources import DAEMONSETS, DEPLOYMENTS, REPLICASETS, STATEFULSETS

log = logging.getLogger(__name__)

#: pod owner kind → its resource and the status fields that count the pods that are ready
OWNERS: dict[str, tuple[Resource, tuple[str, ...]]] = {
    "ReplicaSet": (REPLICASETS, ("readyReplicas", "availableReplicas")),
    "StatefulSet": (STATEFULSETS, ("readyReplicas", "availableReplicas")),
    "DaemonSet": (DAEMONSETS, ("numberReady", "numberAvailable")),
}
DEPLOYMENT_FIELDS = ("readyReplicas", "availableReplicas")


def controller_of(pod: Obj) -> tuple[str, str] | None:
    """The (kind, name) of the pod's managing controller, if one."""
    for ref in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref.get("kind", ""), ref.get("name", "")
    return None


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def ready_counts(pods: Iterable[Obj], not_ready: set[str]) -> Counter[tuple[str, str, str]]:
    """Per (namespace, owner kind, owner name): its pods that are ready, those in
    ``not_ready`` (uids) counted as not, whatever the cache shows yet."""
    out: Counter[tuple[str, str, str]] = Counter()
    for pod in pods:
        meta = pod.get("metadata") or {}
        owner = controller_of(pod)
        if owner is None or meta.get("deletionTimestamp") or meta.get("uid") in not_ready:
            continue
        if is_ready(pod):
            out[(meta.get("namespace", ""), *owner)] += 1
    return out


def overcounts(status: Obj, fields: tuple[str, ...], ready: int) -> bool:
    return any(int(status.get(f) or 0) > ready for f in fields)


async def stale_owners(virtual: Client, owners: set[tuple[str, str, str]],
                       counts: Counter[tuple[str, str, str]]) -> list[str]:
    """The owners (and the Deployments of ReplicaSets among them) whose status still counts
    more ready pods than ``counts`` says there are; gone ones are not stale."""
    stale: list[str] = []
    deployments: set[tuple[str, str]] = set()
    for ns, kind, name in sorted(owners):
        res, fields = OWNERS[kind]
        try:
            obj = await virtual.get(res, name, namespace=ns)
        except errors.NotFound:
            continue
        if overcounts(obj.get("status") or {}, fields, counts[(ns, kind, name)]):
            stale.append(f"{kind} {ns}/{name}")
        if kind == "ReplicaSet" and (ref := controller_of(obj)) and ref[0] == "Deployment":
            deployments.add((ns, ref[1]))
    for ns, name in sorted(deployments):
        try:
            dep = await virtual.get(DEPLOYMENTS, name, namespace=ns)
        except errors.NotFound:
            continue
        uid = dep["metadata"].get("uid")
        sets = (await virtual.list(REPLICASETS, namespace=ns))["items"]
        ready = sum(counts[(ns, "ReplicaSet", rs["metadata"]["name"])] for rs in sets
                    if any(r.get("uid") == uid and r.get("controller")
                           for r in rs["metadata"].get("ownerReferences") or []))
        if overcounts(dep.get("status") or {}, DEPLOYMENT_FIELDS, ready):
            stale.append(f"Deployment {ns}/{name}")
    return stale


async def wait_owners(virtual: Client, marked: list[Obj], all_pods: Callable[[], Iterable[Obj]],
                      *, timeout: float = 30.0, interval: float = 0.1) -> bool:
    """Until the controllers of ``marked`` (pods just shown not running) count them as not
    ready; True when they do, False when ``timeout`` passed first (then logged). ``all_pods``:
    the virtual pods as cached now."""
    owners = {(p["metadata"].get("namespace", ""), *o) for p in marked
              if (o := controller_of(p)) is not None and o[0] in OWNERS}
    if not owners:
        return True
    not_ready = {p["metadata"].get("uid", "") for p in marked}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        stale = await stale_owners(virtual, owners, ready_counts(all_pods(), not_ready))
        if not stale:
            return True
        if loop.time() >= deadline:
            log.warning("status of %s still counts pods whose host pods are gone after %.0f s",
                        ", ".join(stale), timeout)
            return False
        await asyncio.sleep(interval)
