"""ReplicaSet and ReplicationController: keep ``spec.replicas`` active pods matching the selector.

As pkg/controller/replicaset: claim pods (adopt matching orphans, release owned pods that no
longer match), create or delete the difference in slow-start batches, and trust the
expectations of in-flight creates/deletes over a cache that may lag behind them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from vkube.api.errors import Conflict, NotFound, StatusError
from vkube.client.client import Resource
from vkube.client.resources import PODS, REPLICASETS, REPLICATIONCONTROLLERS
from vkube.controllers.podbatch import add_soon
from vkube.controllers.runtime import Controller
from vkube.controllers.vanished import quiet_when_vanished
from vkube.controllers.workloads._common import (
    BURST_REPLICAS,
    Expectations,
    Obj,
    controller_ref,
    delete_expected,
    fmt_time,
    is_deleting,
    is_pod_active,
    is_pod_available,
    is_pod_ready,
    key_of,
    next_available_in,
    owner_ref,
    pod_from_template,
    pods_to_delete,
    selector_matcher,
    selector_matches,
    slow_start,
    split_key,
    write_status,
)


async def claim_pods(client: Any, owner: Obj, selector: Obj, pods: list[Obj], *,
                     res: Resource = PODS) -> list[Obj]:
    """ControllerRefManager.ClaimPods (or ClaimReplicaSets with ``res``): owned objects that
    still match, plus adopted orphans; owned ones that stopped matching are released (our
    ownerReference removed)."""
    claimed: list[Obj] = []
    uid = owner["metadata"]["uid"]
    match = selector_matcher(selector)
    seen: dict[tuple[tuple[str, str], ...], bool] = {}  # a template's pods share their labels
    for pod in pods:
        ref = controller_ref(pod)
        if ref is not None and ref.get("uid") != uid:
            continue  # another controller's (most pods of a busy namespace): no match needed
        labels = (pod.get("metadata") or {}).get("labels") or {}
        lk = tuple(labels.items())
        matches = seen.get(lk)
        if matches is None:
            matches = seen[lk] = match(labels)
        if ref is not None:
            if matches:
                claimed.append(pod)
            elif not is_deleting(pod):
                await _set_owner_refs(client, res, pod, [
                    r for r in pod["metadata"]["ownerReferences"] if r.get("uid") != uid])
            continue
        if not matches or is_deleting(pod) or is_deleting(owner):
            continue
        refs = list(pod["metadata"].get("ownerReferences") or []) + [owner_ref(owner)]
        adopted = await _set_owner_refs(client, res, pod, refs)
        if adopted is not None:
            claimed.append(adopted)
    return claimed


async def _set_owner_refs(client: Any, res: Resource, obj: Obj, refs: list[Obj]) -> Obj | None:
    m = obj["metadata"]
    try:
        return await client.patch(res, m["name"], {"metadata": {"ownerReferences": refs,
                                                                  "uid": m.get("uid")}},
                                  namespace=m.get("namespace"))
    except (NotFound, Conflict):
        return None


def _status_only(old: Obj, new: Obj) -> bool:
    """Did only the status (and resourceVersion, managedFields) change?"""
    om, nm = old.get("metadata") or {}, new.get("metadata") or {}
    return old.get("spec") == new.get("spec") and all(
        om.get(k) == nm.get(k) for k in ("generation", "labels", "annotations", "ownerReferences",
                                         "deletionTimestamp", "finalizers", "uid"))


def _labels(pod: Obj) -> Obj:
    return (pod.get("metadata") or {}).get("labels") or {}


def replica_status(owner: Obj, pods: list[Obj], min_ready: int, now: Any) -> Obj:
    """replicas / fullyLabeledReplicas / readyReplicas / availableReplicas of active pods."""
    tlabels = ((owner["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
    full = ready = available = 0
    for p in pods:  # one pass: this runs over every pod at each sync
        labels = p["metadata"].get("labels") or {}
        if all(labels.get(k) == v for k, v in tlabels.items()):
            full += 1
        if is_pod_ready(p):
            ready += 1
            if is_pod_available(p, min_ready, now):
                available += 1
    return {
        "replicas": len(pods),
        "fullyLabeledReplicas": full,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": owner["metadata"].get("generation", 0),
    }


class ReplicaSetController(Controller):
    name = "replicaset"
    workers = 4
    resource = REPLICASETS
    #: pod changes that settle nothing the controller waits for (a status moving to Running or
    #: Ready, a creation or deletion while more of the same are still expected) reach the
    #: owner's sync at most this often: each sync reads every pod of the namespace, so a sync
    #: per pod update made a 1,000-pod rollout's ~5,000 updates cost O(N²). As the Job and
    #: EndpointSlice controllers batch pod updates (syncJobBatchPeriod,
    #: endpointUpdatesBatchPeriod); the last awaited creation or deletion syncs at once.
    pod_batch_seconds = 0.5

    def setup(self) -> None:
        self.expectations = Expectations()
        self.owners = self.mgr.informer(self.resource)
        self.pods = self.mgr.informer(PODS)
        self.owners.add_handler(self._on_owner)
        self.pods.add_handler(self._on_pod)

    # ------------------------------------------------------------ event handlers

    def selector(self, owner: Obj) -> Obj:
        return owner["spec"].get("selector") or {}

    def _kind(self) -> str:
        return self.resource.kind

    def _on_owner(self, type_: str, obj: Obj, old: Obj | None) -> None:
        if type_ == "DELETED":
            self.expectations.forget(key_of(obj))
        if old is not None and _status_only(old, obj):
            # mostly the echo of our own status write: it joins the pending pod batch
            self._add_after(key_of(obj), self.pod_batch_seconds)
            return
        self.enqueue(obj)

    def _owner_of(self, pod: Obj) -> Obj | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != self._kind():
            return None
        owner = self.owners.get(ref["name"], pod["metadata"].get("namespace"))
        if owner is None or owner["metadata"].get("uid") != ref.get("uid"):
            return None
        return owner

    def _enqueue_matching(self, pod: Obj) -> None:
        labels = pod["metadata"].get("labels") or {}
        for owner in self.owners.list(pod["metadata"].get("namespace")):
            if selector_matches(self.selector(owner), labels):
                self.enqueue(owner)

    def _enqueue_batched(self, owner: Obj) -> None:
        """Sync ``owner`` at once when its expectations are met (the controller may act),
        else within ``pod_batch_seconds`` (only its status can change)."""
        key = key_of(owner)
        if self.expectations.satisfied(key):
            self.queue.add(key)
        else:
            self._add_after(key, self.pod_batch_seconds)

    def _add_after(self, key: str, delay: float) -> None:
        add_soon(self.queue, key, delay)

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        owner = self._owner_of(pod)
        if type_ == "ADDED":
            if owner is not None:
                key = key_of(owner)
                self.expectations.creation_observed(key)
                if is_deleting(pod):
                    self.expectations.deletion_observed(key, pod["metadata"]["name"])
                self._enqueue_batched(owner)
            elif controller_ref(pod) is None:
                self._enqueue_matching(pod)
            return
        if type_ == "DELETED":
            if owner is not None:
                self.expectations.deletion_observed(key_of(owner), pod["metadata"]["name"])
                self._enqueue_batched(owner)
            return
        # MODIFIED
        if old is not None and controller_ref(old) != controller_ref(pod):
            prev = self._owner_of(old)
            if prev is not None:
                self.enqueue(prev)
        if owner is not None:
            if is_deleting(pod) and not (old and is_deleting(old)):
                self.expectations.deletion_observed(key_of(owner), pod["metadata"]["name"])
                self._enqueue_batched(owner)
            elif old is not None and (_labels(old) != _labels(pod) or
                                      controller_ref(old) != controller_ref(pod) or
                                      is_pod_active(old) != is_pod_active(pod)):
                self.enqueue(owner)  # claimed, released, or one fewer active: act now
            else:
                self._add_after(key_of(owner), self.pod_batch_seconds)
        elif controller_ref(pod) is None:
            self._enqueue_matching(pod)

    # ------------------------------------------------------------ reconcile

    @quiet_when_vanished()
    async def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        owner = self.owners.get(name, ns)
        if owner is None:
            self.expectations.forget(key)
            return None
        now = self.mgr.clock()
        selector = self.selector(owner)
        candidates = [p for p in self.pods.list(ns)]
        claimed = await claim_pods(self.client, owner, selector, candidates)
        active = [p for p in claimed if is_pod_active(p)]
        failure: tuple[str, StatusError] | None = None
        if self.expectations.satisfied(key) and not is_deleting(owner):
            failure = await self._manage(key, owner, active)
        min_ready = int(owner["spec"].get("minReadySeconds") or 0)
        status = dict(owner.get("status") or {})
        status.update(replica_status(owner, active, min_ready, now))
        conds = [c for c in status.get("conditions") or () if c.get("type") != "ReplicaFailure"]
        if failure is not None:
            conds.append({"type": "ReplicaFailure", "status": "True", "reason": failure[0],
                          "message": failure[1].message,
                          "lastTransitionTime": fmt_time(now)})
        if conds:
            status["conditions"] = conds
        else:
            status.pop("conditions", None)
        if status != (owner.get("status") or {}):
            await write_status(self.client, self.resource, owner, status)
        if failure is not None:
            raise failure[1]
        spec_replicas = int(owner["spec"].get("replicas", 1))
        if (min_ready > 0 and status["readyReplicas"] == spec_replicas
                and status["availableReplicas"] != spec_replicas):
            return next_available_in(active, min_ready, now)
        return None

    async def _manage(self, key: str, owner: Obj, active: list[Obj]
                      ) -> tuple[str, StatusError] | None:
        """Create or delete the difference; returns (condition reason, error) on failure."""
        want = int(owner["spec"].get("replicas", 1))
        diff = len(active) - want
        ns = owner["metadata"].get("namespace")
        if diff < 0:
            n = min(-diff, BURST_REPLICAS)
            self.expectations.expect_creations(key, n)
            template = owner["spec"].get("template") or {}

            async def create(_: int) -> None:
                pod = pod_from_template(template, owner)
                try:
                    made = await self.client.create(PODS, pod, namespace=ns)
                except StatusError as e:
                    self.expectations.creation_observed(key)
                    self.recorder.event(owner, "Warning", "FailedCreate",
                                        f"Error creating: {e.message}")
                    raise
                self.recorder.event(owner, "Normal", "SuccessfulCreate",
                                    f"Created pod: {made['metadata']['name']}")

            done, err = await slow_start(n, create)
            if err is not None:
                skipped = n - done - 1
                if skipped > 0:
                    self.expectations.creation_observed(key, skipped)
                if isinstance(err, StatusError):
                    return "FailedCreate", err
                raise err
            return None
        if diff > 0:
            victims = pods_to_delete(active, min(diff, BURST_REPLICAS))
            self.expectations.expect_deletions(key, [p["metadata"]["name"] for p in victims])
            results = await asyncio.gather(*(self._delete_pod(key, owner, p) for p in victims),
                                           return_exceptions=True)
            for r in results:
                if isinstance(r, asyncio.CancelledError):
                    raise r
            errs = [r for r in results if isinstance(r, StatusError)]
            if errs:
                return "FailedDelete", errs[0]
            for r in results:
                if isinstance(r, BaseException):
                    raise r
        return None

    async def _delete_pod(self, key: str, owner: Obj, pod: Obj) -> None:
        try:
            deleted = await delete_expected(self.client, self.expectations, key, pod)
        except StatusError as e:
            self.recorder.event(owner, "Warning", "FailedDelete", f"Error deleting: {e.message}")
            raise
        if deleted:
            self.recorder.event(owner, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")


class ReplicationControllerController(ReplicaSetController):
    """The v1 ReplicationController: the same loop with a map-shaped selector."""

    name = "replicationcontroller"
    resource = REPLICATIONCONTROLLERS

    def selector(self, owner: Obj) -> Obj:
        sel = owner["spec"].get("selector")
        if not sel:
            sel = ((owner["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
        return {"matchLabels": dict(sel)}


__all__ = ["ReplicaSetController", "ReplicationControllerController", "claim_pods",
           "replica_status"]
