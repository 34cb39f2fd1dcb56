"""StatefulSet: stable ordinal pods ``<set>-<i>`` with per-pod PVCs, ordered or parallel.

As pkg/controller/statefulset: ControllerRevisions record templates; each ordinal's pod is
built from the current or update revision (partition); claims from volumeClaimTemplates are
created before their pod; OrderedReady creates in order and waits for Running+Ready, deletes
from the highest ordinal; RollingUpdate replaces pods from the highest ordinal down to the
partition, one unhealthy pod at a time (maxUnavailable). Deterministic names make creation
idempotent: AlreadyExists just means the cache is behind.
"""

from __future__ import annotations

from datetime import datetime

from vkube.api.errors import AlreadyExists, Conflict, NotFound, StatusError
from vkube.client.resources import CONTROLLERREVISIONS, PODS, PVCS, STATEFULSETS
from vkube.controllers.runtime import Controller
from vkube.controllers.vanished import quiet_when_vanished
from vkube.controllers.workloads._common import (
    Obj,
    controller_ref,
    deep,
    int_or_percent,
    is_deleting,
    is_pod_available,
    is_pod_ready,
    next_available_in,
    owner_ref,
    pod_from_template,
    pod_phase,
    split_key,
    write_status,
)
from vkube.controllers.workloads.history import (
    CONTROLLER_REVISION_HASH,
    revision_template,
    sync_revisions,
    truncate_history,
)
from vkube.controllers.workloads.replicaset import claim_pods

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"


def ordinal_of(set_name: str, pod: Obj) -> int | None:
    name = pod["metadata"]["name"]
    prefix, _, num = name.rpartition("-")
    if prefix != set_name or not num.isdigit():
        return None
    return int(num)


def claim_name(template: Obj, set_name: str, ordinal: int) -> str:
    return f"{template['metadata']['name']}-{set_name}-{ordinal}"


def claims_for(sts: Obj, ordinal: int) -> list[Obj]:
    """The PVCs pod ``ordinal`` needs: template + selector labels, owned by the set only when
    persistentVolumeClaimRetentionPolicy.whenDeleted is Delete."""
    name = sts["metadata"]["name"]
    match = (sts["spec"].get("selector") or {}).get("matchLabels") or {}
    policy = sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
    out = []
    for t in sts["spec"].get("volumeClaimTemplates") or ():
        c = deep(t)
        m = c.setdefault("metadata", {})
        m["name"] = claim_name(t, name, ordinal)
        m["namespace"] = sts["metadata"].get("namespace")
        m["labels"] = {**(m.get("labels") or {}), **match}
        if policy.get("whenDeleted") == "Delete":
            m["ownerReferences"] = [owner_ref(sts)]
        c.pop("status", None)
        c.update(apiVersion="v1", kind="PersistentVolumeClaim")
        out.append(c)
    return out


def build_pod(sts: Obj, revision: Obj, ordinal: int) -> Obj:
    name = sts["metadata"]["name"]
    pod_name = f"{name}-{ordinal}"
    template = revision_template(revision) or sts["spec"]["template"]
    pod = pod_from_template(template, sts, name=pod_name)
    labels = pod["metadata"]["labels"]
    labels[POD_NAME_LABEL] = pod_name
    labels[POD_INDEX_LABEL] = str(ordinal)
    labels[CONTROLLER_REVISION_HASH] = revision["metadata"]["name"]
    spec = pod["spec"]
    spec["hostname"] = pod_name
    if sts["spec"].get("serviceName"):
        spec["subdomain"] = sts["spec"]["serviceName"]
    vols = [v for v in spec.get("volumes") or ()
            if v.get("name") not in {t["metadata"]["name"]
                                     for t in sts["spec"].get("volumeClaimTemplates") or ()}]
    for t in sts["spec"].get("volumeClaimTemplates") or ():
        vols.append({"name": t["metadata"]["name"], "persistentVolumeClaim": {
            "claimName": claim_name(t, name, ordinal)}})
    if vols:
        spec["volumes"] = vols
    return pod


def revision_for_ordinal(sts: Obj, ordinal: int, current: Obj, update: Obj) -> Obj:
    """newVersionedStatefulSetPod's choice: under RollingUpdate, ordinals below the partition
    keep the current revision (a missing rollingUpdate is the API default, partition 0)."""
    strategy = sts["spec"].get("updateStrategy") or {}
    if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
        return update
    partition = int((strategy.get("rollingUpdate") or {}).get("partition") or 0)
    return current if ordinal < _start(sts) + partition else update


def _start(sts: Obj) -> int:
    return int((sts["spec"].get("ordinals") or {}).get("start") or 0)


def _revision_of(pod: Obj) -> str | None:
    return (pod["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH)


class StatefulSetController(Controller):
    name = "statefulset"
    workers = 2

    def setup(self) -> None:
        self.owners = self.mgr.informer(STATEFULSETS)
        self.pods = self.mgr.informer(PODS)
        self.revisions = self.mgr.informer(CONTROLLERREVISIONS)
        self.pvcs = self.mgr.informer(PVCS)
        self.owners.add_handler(lambda t, o, old: self.enqueue(o))
        self.pods.add_handler(lambda t, o, old: self.enqueue_owner(o, "StatefulSet"))
        self.revisions.add_handler(lambda t, o, old: self.enqueue_owner(o, "StatefulSet"))

    @quiet_when_vanished()
    async def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        sts = self.owners.get(name, ns)
        if sts is None:
            return None
        sts = deep(sts)
        now = self.mgr.clock()
        pods = [p for p in await claim_pods(self.client, sts, sts["spec"].get("selector") or {},
                                            self.pods.list(ns))
                if ordinal_of(name, p) is not None]
        revs = [r for r in self.revisions.list(ns) if (controller_ref(r) or {}).get(
            "uid") == sts["metadata"]["uid"]]
        current, update, collision, owned = await sync_revisions(self.client, sts, revs)
        requeue = None
        if not is_deleting(sts):
            requeue = await self._update(sts, pods, current, update, now)
            pods = [p for p in self.pods.list(ns)
                    if (controller_ref(p) or {}).get("uid") == sts["metadata"]["uid"]]
        status = self._status(sts, pods, current, update, collision, now)
        if status != (sts.get("status") or {}):
            await write_status(self.client, STATEFULSETS, sts, status)
        keep = {current["metadata"]["name"], update["metadata"]["name"]}
        keep.update(r for r in (_revision_of(p) for p in pods) if r)
        await truncate_history(self.client, owned, keep,
                               int(sts["spec"].get("revisionHistoryLimit", 10)))
        return requeue

    # ------------------------------------------------------------ pods

    async def _update(self, sts: Obj, pods: list[Obj], current: Obj, update: Obj,
                      now: datetime) -> float | None:
        name, spec = sts["metadata"]["name"], sts["spec"]
        start, replicas = _start(sts), int(spec.get("replicas", 1))
        monotonic = (spec.get("podManagementPolicy") or "OrderedReady") == "OrderedReady"
        min_ready = int(spec.get("minReadySeconds") or 0)
        by_ord: dict[int, Obj] = {}
        for p in pods:
            by_ord[ordinal_of(name, p)] = p  # type: ignore[index]
        condemned = sorted((o for o in by_ord if not start <= o < start + replicas), reverse=True)

        def healthy(p: Obj) -> bool:
            return (pod_phase(p) == "Running" and is_pod_ready(p) and not is_deleting(p))

        for o in range(start, start + replicas):
            pod = by_ord.get(o)
            if pod is not None and pod_phase(pod) in ("Failed", "Succeeded") and not is_deleting(pod):
                await self._delete(sts, pod, reason="recreating")
                if monotonic:
                    return None
                continue
            if pod is None:
                rev = revision_for_ordinal(sts, o, current, update)
                await self._create(sts, rev, o)
                if monotonic:
                    return None
                continue
            if monotonic and not healthy(pod):
                return None  # wait for Running and Ready before the next ordinal
            await self._ensure_identity(sts, pod, o)
        first_unhealthy = next((o for o in sorted(condemned) if not healthy(by_ord[o])), None)
        for o in condemned:  # highest ordinal first
            pod = by_ord[o]
            if is_deleting(pod):
                if monotonic:
                    return None
                continue
            if monotonic and not healthy(pod) and o != first_unhealthy:
                return None
            await self._delete(sts, pod)
            if monotonic:
                return None
        strategy = spec.get("updateStrategy") or {}
        if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
            return next_available_in(pods, min_ready, now)
        ru = strategy.get("rollingUpdate") or {}
        partition = int(ru.get("partition") or 0)
        max_unavail = max(int_or_percent(ru.get("maxUnavailable", 1), replicas, round_up=False), 1)
        live = [by_ord[o] for o in range(start, start + replicas) if o in by_ord]
        unhealthy = sum(1 for p in live if not healthy(p))
        if monotonic and unhealthy:
            return None
        upd = update["metadata"]["name"]
        for o in range(start + replicas - 1, start + partition - 1, -1):
            pod = by_ord.get(o)
            if pod is None or _revision_of(pod) == upd:
                continue
            if unhealthy >= max_unavail:
                break
            if not is_deleting(pod):
                await self._delete(sts, pod)
                unhealthy += 1
        return next_available_in(pods, min_ready, now)

    async def _create(self, sts: Obj, rev: Obj, ordinal: int) -> None:
        ns, name = sts["metadata"].get("namespace"), sts["metadata"]["name"]
        pod_name = f"{name}-{ordinal}"
        for claim in claims_for(sts, ordinal):
            if self.pvcs.get(claim["metadata"]["name"], ns) is not None:
                continue
            try:
                await self.client.create(PVCS, claim, namespace=ns)
            except AlreadyExists:
                continue
            except StatusError as e:
                self.recorder.event(sts, "Warning", "FailedCreate",
                                    f"create Claim {claim['metadata']['name']} for Pod {pod_name} "
                                    f"in StatefulSet {name} failed error: {e.message}")
                raise
            self.recorder.event(sts, "Normal", "SuccessfulCreate",
                                f"create Claim {claim['metadata']['name']} Pod {pod_name} "
                                f"in StatefulSet {name} success")
        try:
            await self.client.create(PODS, build_pod(sts, rev, ordinal), namespace=ns)
        except AlreadyExists:
            return
        except StatusError as e:
            self.recorder.event(sts, "Warning", "FailedCreate",
                                f"create Pod {pod_name} in StatefulSet {name} failed error: "
                                f"{e.message}")
            raise
        self.recorder.event(sts, "Normal", "SuccessfulCreate",
                            f"create Pod {pod_name} in StatefulSet {name} successful")

    async def _delete(self, sts: Obj, pod: Obj, *, reason: str = "") -> None:
        ns, pname = pod["metadata"].get("namespace"), pod["metadata"]["name"]
        policy = sts["spec"].get("persistentVolumeClaimRetentionPolicy") or {}
        o = ordinal_of(sts["metadata"]["name"], pod)
        replicas = int(sts["spec"].get("replicas", 1))
        if (not reason and policy.get("whenScaled") == "Delete" and o is not None
                and o >= _start(sts) + replicas):
            await self._own_claims_by_pod(sts, pod, o)
        try:
            await self.client.delete(PODS, pname, namespace=ns,
                                     preconditions={"uid": pod["metadata"].get("uid")})
        except (NotFound, Conflict):  # gone, or already replaced by a newer pod of that name
            return
        self.recorder.event(sts, "Normal", "SuccessfulDelete",
                            f"delete Pod {pname} in StatefulSet {sts['metadata']['name']} "
                            "successful")

    async def _own_claims_by_pod(self, sts: Obj, pod: Obj, ordinal: int) -> None:
        """whenScaled: Delete — the condemned pod owns its claims, so GC removes them after."""
        ns = sts["metadata"].get("namespace")
        ref = {"apiVersion": "v1", "kind": "Pod", "name": pod["metadata"]["name"],
               "uid": pod["metadata"]["uid"], "blockOwnerDeletion": True}
        for claim in claims_for(sts, ordinal):
            pvc = self.pvcs.get(claim["metadata"]["name"], ns)
            if pvc is None:
                continue
            refs = [r for r in pvc["metadata"].get("ownerReferences") or ()
                    if r.get("uid") != ref["uid"]]
            try:
                await self.client.patch(PVCS, claim["metadata"]["name"],
                                        {"metadata": {"ownerReferences": refs + [ref]}},
                                        namespace=ns)
            except NotFound:
                pass

    async def _ensure_identity(self, sts: Obj, pod: Obj, ordinal: int) -> None:
        labels = pod["metadata"].get("labels") or {}
        want = {POD_NAME_LABEL: pod["metadata"]["name"], POD_INDEX_LABEL: str(ordinal)}
        if all(labels.get(k) == v for k, v in want.items()):
            return
        try:
            await self.client.patch(PODS, pod["metadata"]["name"], {"metadata": {"labels": want}},
                                    namespace=pod["metadata"].get("namespace"))
        except NotFound:
            pass

    # ------------------------------------------------------------ status

    def _status(self, sts: Obj, pods: list[Obj], current: Obj, update: Obj, collision: int,
                now: datetime) -> Obj:
        min_ready = int(sts["spec"].get("minReadySeconds") or 0)
        cur, upd = current["metadata"]["name"], update["metadata"]["name"]
        live = [p for p in pods if not is_deleting(p) and pod_phase(p) not in ("Failed", "Succeeded")]
        prev = sts.get("status") or {}
        status: Obj = {
            "observedGeneration": sts["metadata"].get("generation", 0),
            "replicas": len(live),
            "readyReplicas": sum(1 for p in live if is_pod_ready(p)),
            "availableReplicas": sum(1 for p in live if is_pod_available(p, min_ready, now)),
            "currentReplicas": sum(1 for p in live if _revision_of(p) == cur),
            "updatedReplicas": sum(1 for p in live if _revision_of(p) == upd),
            "currentRevision": cur, "updateRevision": upd, "collisionCount": collision,
        }
        if prev.get("conditions"):
            status["conditions"] = prev["conditions"]
        replicas = int(sts["spec"].get("replicas", 1))
        if (status["updatedReplicas"] == status["replicas"] == replicas
                and status["readyReplicas"] == replicas):
            status["currentRevision"] = upd
            status["currentReplicas"] = status["updatedReplicas"]
        return status


__all__ = ["StatefulSetController", "build_pod", "claims_for", "revision_for_ordinal",
           "ordinal_of"]
