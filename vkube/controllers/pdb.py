"""Disruption controller: PodDisruptionBudget status (expectedPods, currentHealthy,
desiredHealthy, disruptionsAllowed, DisruptionAllowed condition), which evictions consult."""

from __future__ import annotations

import copy
import math

from vkube.api import errors
from vkube.api.meta import rfc3339
from vkube.client.client import Resource
from vkube.client.resources import (
    PDBS,
    PODS,
    REPLICASETS,
    REPLICATIONCONTROLLERS,
    STATEFULSETS,
)
from vkube.controllers.podbatch import SyncThrottle
from vkube.controllers.runtime import Controller, Obj, obj_key
from vkube.controllers.vanished import quiet_when_vanished

_SCALABLE = {("apps/v1", "ReplicaSet"): REPLICASETS, ("apps/v1", "StatefulSet"): STATEFULSETS,
             ("v1", "ReplicationController"): REPLICATIONCONTROLLERS}


def _ready(pod: Obj) -> bool:
    if pod["metadata"].get("deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def scaled(value: int | str, total: int) -> int:
    """IntOrString against ``total``; percentages round up, as Kubernetes does for PDBs."""
    if isinstance(value, str) and value.endswith("%"):
        return math.ceil(int(value[:-1]) * total / 100)
    return int(value)


def _budget_view(pod: Obj | None) -> tuple[object, ...] | None:
    """What of a pod a budget counts (healthy or not, its controller): pod updates that leave
    this alone (most of a rollout's status changes) need no sync."""
    if pod is None:
        return None
    owner = next((r.get("uid") for r in pod["metadata"].get("ownerReferences") or []
                  if r.get("controller")), None)
    return (_ready(pod), owner)


class DisruptionController(Controller):
    name = "disruption-controller"
    #: a budget synced less than this long ago waits the rest of it for pod changes: each sync
    #: reads every pod of the namespace (see vkube.controllers.podbatch)
    pod_batch_seconds = 0.5

    def setup(self) -> None:
        self.pdbs = self.mgr.informer(PDBS)
        self.pods = self.mgr.informer(PODS)
        self.pdbs.add_handler(self._on_pdb)
        self.pods.add_handler(self._on_pod)
        self.throttle = SyncThrottle(self.queue, self.mgr.clock)

    def _on_pdb(self, typ: str, obj: Obj, old: Obj | None) -> None:
        key = obj_key(obj)
        if typ == "DELETED":
            self.throttle.forget(key)
        elif old is not None and old.get("spec") == obj.get("spec") and (
                old["metadata"].get("deletionTimestamp") == obj["metadata"].get(
                    "deletionTimestamp")):
            # mostly the echo of our own status write: it joins the pending pod batch
            self.throttle.add(key, self.pod_batch_seconds)
            return
        self.queue.add(key)

    def _on_pod(self, typ: str, obj: Obj, old: Obj | None) -> None:
        ns = obj["metadata"]["namespace"]
        labels = obj["metadata"].get("labels") or {}
        old_labels = ((old or {}).get("metadata") or {}).get("labels") or {}
        view = None if typ == "DELETED" else _budget_view(obj)
        old_view = _budget_view(obj if typ == "DELETED" else old)
        if typ == "DELETED":
            old, old_labels = obj, labels
        for pdb in self.pdbs.list(ns):
            sel = (pdb.get("spec") or {}).get("selector") or {}
            now = view if typ != "DELETED" and self._selects(sel, labels) else None
            before = old_view if old is not None and self._selects(sel, old_labels) else None
            if now != before:
                self.throttle.add(obj_key(pdb), self.pod_batch_seconds)

    @staticmethod
    def _selects(sel: Obj, labels: dict) -> bool:
        from vkube.controllers.labels import matches
        return matches(sel, labels)  # policy/v1: an empty selector selects every pod

    async def _expected(self, ns: str, pods: list[Obj]) -> int:
        """Sum of the scale of the pods' controllers; falls back to the pod count."""
        owners: dict[tuple[Resource, str], None] = {}
        for p in pods:
            for ref in p["metadata"].get("ownerReferences") or []:
                res = _SCALABLE.get((ref.get("apiVersion"), ref.get("kind")))
                if ref.get("controller") and res is not None:
                    owners[(res, ref["name"])] = None
        total = 0
        for res, name in owners:
            try:
                obj = await self.client.get(res, name, namespace=ns)
            except errors.NotFound:
                continue
            total += int((obj.get("spec") or {}).get("replicas", 1))
        orphans = sum(1 for p in pods if not any(
            r.get("controller") for r in p["metadata"].get("ownerReferences") or []))
        return max(total + orphans, 0) if owners else len(pods)

    @quiet_when_vanished("pdbs")
    async def reconcile(self, key: str) -> float | None:
        ns, _, name = key.partition("/")
        self.throttle.synced(key)
        pdb = self.pdbs.get(name, ns)
        if pdb is None or pdb["metadata"].get("deletionTimestamp"):
            return None
        spec = pdb.get("spec") or {}
        sel = spec.get("selector")
        pods = [] if sel is None else [
            p for p in self.pods.list(ns) if self._selects(sel, p["metadata"].get("labels"))]
        healthy = sum(1 for p in pods if _ready(p))
        if "maxUnavailable" in spec:
            expected = await self._expected(ns, pods)
            desired = max(0, expected - scaled(spec["maxUnavailable"], expected))
        elif isinstance(spec.get("minAvailable"), str):
            expected = await self._expected(ns, pods)
            desired = scaled(spec["minAvailable"], expected)
        else:
            expected = len(pods)
            desired = int(spec.get("minAvailable", 1))
        allowed = max(0, healthy - desired)
        old = pdb.get("status") or {}
        cond_ok = allowed > 0
        prev = next((c for c in old.get("conditions") or []
                     if c.get("type") == "DisruptionAllowed"), None)
        cond = {"type": "DisruptionAllowed", "status": "True" if cond_ok else "False",
                "reason": "SufficientPods" if cond_ok else "InsufficientPods", "message": "",
                "observedGeneration": pdb["metadata"].get("generation", 0)}
        cond["lastTransitionTime"] = (
            prev["lastTransitionTime"] if prev and prev.get("status") == cond["status"]
            and prev.get("lastTransitionTime") else
            rfc3339(self.mgr.clock()))
        status = {"observedGeneration": pdb["metadata"].get("generation", 0),
                  "disruptedPods": old.get("disruptedPods") or {},
                  "disruptionsAllowed": allowed, "currentHealthy": healthy,
                  "desiredHealthy": desired, "expectedPods": expected, "conditions": [cond]}
        if status == old:
            return None
        new = copy.deepcopy(pdb)
        new["status"] = status
        try:
            await self.client.update(PDBS, new, subresource="status")
        except errors.NotFound:
            pass
        return None
