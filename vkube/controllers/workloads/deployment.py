"""Deployment: roll pods between ReplicaSets named ``<deployment>-<pod-template-hash>``.

As pkg/controller/deployment: claim ReplicaSets, find (or create) the one whose template equals
the Deployment's ignoring the hash label, then RollingUpdate (surge up the new, scale down the
old within maxUnavailable) or Recreate (old to zero, wait for their pods, then the new); keep
revision annotations so ``kubectl rollout history/undo`` work, trim history, and maintain the
Progressing/Available conditions and counters ``kubectl rollout status`` reads.
"""

from __future__ import annotations

from vkube.api.errors import AlreadyExists, NotFound
from vkube.client.resources import DEPLOYMENTS, PODS, REPLICASETS
from vkube.controllers.runtime import Controller
from vkube.controllers.vanished import quiet_when_vanished
from vkube.controllers.workloads._common import (
    Obj,
    controller_ref,
    deep,
    get_condition,
    is_deleting,
    is_owned_by,
    owner_ref,
    pod_phase,
    selector_matches,
    set_condition,
    split_key,
    write_status,
)
from vkube.controllers.workloads.history import (
    POD_TEMPLATE_HASH,
    equal_ignore_hash,
    pod_template_hash,
)
from vkube.controllers.workloads.replicaset import claim_pods
from vkube.controllers.workloads.rollout import (
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    REVISION,
    REVISION_HISTORY,
    SKIP_ANNOTATIONS,
    calculate_status,
    created,
    deployment_complete,
    deployment_progressing,
    deployment_timed_out,
    is_rolling,
    is_scaling_event,
    max_surge,
    new_rs_new_replicas,
    old_scale_down_plan,
    progress_deadline,
    proportional_sizes,
    revision_of,
    seconds_until_timeout,
    spec_replicas,
)


def replica_annotations(d: Obj) -> dict[str, str]:
    return {DESIRED_REPLICAS: str(spec_replicas(d)),
            MAX_REPLICAS: str(spec_replicas(d) + max_surge(d))}


def new_rs_annotations(d: Obj, rs_annotations: dict[str, str], new_revision: int,
                       *, exists: bool) -> dict[str, str]:
    """SetNewReplicaSetAnnotations: copy the Deployment's annotations, raise the revision
    (remembering the old one in revision-history), add replica annotations to a fresh RS."""
    out = dict(rs_annotations)
    for k, v in ((d["metadata"].get("annotations")) or {}).items():
        if k not in SKIP_ANNOTATIONS:
            out[k] = v
    old = out.get(REVISION)
    try:
        old_n = int(old) if old else 0
    except ValueError:
        old_n = 0
    if old_n < new_revision:
        out[REVISION] = str(new_revision)
        if old:
            hist = [h for h in (out.get(REVISION_HISTORY) or "").split(",") if h]
            out[REVISION_HISTORY] = ",".join(hist + [old])
    if not exists:
        out.update(replica_annotations(d))
    return out


class DeploymentController(Controller):
    name = "deployment"
    workers = 4

    def setup(self) -> None:
        self.deployments = self.mgr.informer(DEPLOYMENTS)
        self.owners = self.deployments
        self.rsets = self.mgr.informer(REPLICASETS)
        self.pods = self.mgr.informer(PODS)
        self.deployments.add_handler(lambda t, o, old: self.enqueue(o))
        self.rsets.add_handler(self._on_rs)
        self.pods.add_handler(self._on_pod)

    # ------------------------------------------------------------ handlers

    def _deployment_of(self, rs: Obj) -> Obj | None:
        ref = controller_ref(rs)
        if ref is None or ref.get("kind") != "Deployment":
            return None
        d = self.deployments.get(ref["name"], rs["metadata"].get("namespace"))
        return d if d is not None and d["metadata"].get("uid") == ref.get("uid") else None

    def _on_rs(self, type_: str, rs: Obj, old: Obj | None) -> None:
        d = self._deployment_of(rs)
        if d is not None:
            self.enqueue(d)
        elif controller_ref(rs) is None:
            labels = rs["metadata"].get("labels") or {}
            for d in self.deployments.list(rs["metadata"].get("namespace")):
                if selector_matches(d["spec"].get("selector"), labels):
                    self.enqueue(d)
        if old is not None and controller_ref(old) != controller_ref(rs):
            prev = self._deployment_of(old)
            if prev is not None:
                self.enqueue(prev)

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        """Recreate waits for old pods to be gone: wake it when one goes."""
        if type_ != "DELETED" and pod_phase(pod) not in ("Succeeded", "Failed"):
            return
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rsets.get(ref["name"], pod["metadata"].get("namespace"))
        d = self._deployment_of(rs) if rs else None
        if d is not None and not is_rolling(d):
            self.enqueue(d)

    # ------------------------------------------------------------ reconcile

    @quiet_when_vanished()
    async def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        d = self.deployments.get(name, ns)
        if d is None:
            return None
        selector = d["spec"].get("selector")
        if not selector or (not selector.get("matchLabels") and not selector.get("matchExpressions")):
            self.recorder.event(d, "Warning", "SelectingAll",
                                "This deployment is selecting all pods. A non-empty selector is "
                                "required.")
            return None
        d = deep(d)  # informer objects are shared: never mutate them
        rs_list = [deep(rs) for rs in await claim_pods(self.client, d, selector,
                                                        self.rsets.list(ns), res=REPLICASETS)]
        if is_deleting(d):
            await self._sync_status(d, rs_list, self._split(d, rs_list)[0])
            return None
        await self._check_paused(d)
        active = [rs for rs in rs_list if spec_replicas(rs) > 0]
        if d["spec"].get("paused") or is_scaling_event(d, active):
            return await self._sync(d, rs_list)
        if is_rolling(d):
            return await self._rollout_rolling(d, rs_list)
        return await self._rollout_recreate(d, rs_list)

    def _split(self, d: Obj, rs_list: list[Obj]) -> tuple[Obj | None, list[Obj]]:
        template = d["spec"].get("template") or {}
        new_rs = next((rs for rs in sorted(rs_list, key=created)
                       if equal_ignore_hash(rs["spec"].get("template") or {}, template)), None)
        old = [rs for rs in rs_list if new_rs is None or rs["metadata"]["uid"] != new_rs["metadata"]["uid"]]
        return new_rs, old

    async def _check_paused(self, d: Obj) -> None:
        if progress_deadline(d) is None:
            return
        status = deep(d.get("status") or {})
        cond = get_condition(status, "Progressing")
        paused = bool(d["spec"].get("paused"))
        now = self.mgr.clock()
        if paused and (cond is None or cond.get("reason") != "DeploymentPaused"):
            set_condition(status, "Progressing", "Unknown", "DeploymentPaused",
                          "Deployment is paused", now, update_field="lastUpdateTime")
        elif not paused and cond is not None and cond.get("reason") == "DeploymentPaused":
            set_condition(status, "Progressing", "Unknown", "DeploymentResumed",
                          "Deployment is resumed", now, update_field="lastUpdateTime")
        else:
            return
        fresh = await write_status(self.client, DEPLOYMENTS, d, status)
        if fresh is not None:
            d["metadata"], d["status"] = fresh["metadata"], fresh.get("status") or {}

    # ------------------------------------------------------------ new ReplicaSet

    async def _get_new_rs(self, d: Obj, rs_list: list[Obj], *, create: bool) -> Obj | None:
        new_rs, old = self._split(d, rs_list)
        new_revision = max((revision_of(rs) for rs in old), default=0) + 1
        ns = d["metadata"].get("namespace")
        if new_rs is not None:
            anns = new_rs["metadata"].get("annotations") or {}
            want = new_rs_annotations(d, anns, new_revision, exists=True)
            min_ready = d["spec"].get("minReadySeconds", 0)
            if want != anns or new_rs["spec"].get("minReadySeconds", 0) != min_ready:
                new_rs = await self.client.patch(
                    REPLICASETS, new_rs["metadata"]["name"],
                    {"metadata": {"annotations": want}, "spec": {"minReadySeconds": min_ready}},
                    namespace=ns)
            await self._sync_deployment_revision(d, new_rs, found=True)
            return new_rs
        if not create:
            return None
        collision = (d.get("status") or {}).get("collisionCount")
        h = pod_template_hash(d["spec"]["template"], collision)
        template = deep(d["spec"]["template"])
        template.setdefault("metadata", {}).setdefault("labels", {})[POD_TEMPLATE_HASH] = h
        selector = deep(d["spec"]["selector"])
        selector.setdefault("matchLabels", {})[POD_TEMPLATE_HASH] = h
        rs: Obj = {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{d['metadata']['name']}-{h}", "namespace": ns,
                         "labels": dict(template["metadata"]["labels"]),
                         "ownerReferences": [owner_ref(d)]},
            "spec": {"replicas": 0, "minReadySeconds": d["spec"].get("minReadySeconds", 0),
                     "selector": selector, "template": template},
        }
        rs["spec"]["replicas"] = new_rs_new_replicas(d, old + [rs], rs)
        rs["metadata"]["annotations"] = new_rs_annotations(d, {}, new_revision, exists=False)
        try:
            made = await self.client.create(REPLICASETS, rs, namespace=ns)
        except AlreadyExists:
            try:
                have = await self.client.get(REPLICASETS, rs["metadata"]["name"], namespace=ns)
            except NotFound:
                raise
            if is_owned_by(have, d) and equal_ignore_hash(have["spec"]["template"],
                                                          d["spec"]["template"]):
                return have
            status = deep(d.get("status") or {})
            status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
            await write_status(self.client, DEPLOYMENTS, d, status)
            raise
        n = spec_replicas(made)
        if n > 0:
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled up replica set {made['metadata']['name']} from 0 to {n}")
        await self._sync_deployment_revision(d, made, found=False)
        return made

    async def _sync_deployment_revision(self, d: Obj, rs: Obj, *, found: bool) -> None:
        """Mirror the new RS's revision onto the Deployment and note the new RS in the
        Progressing condition."""
        ns, name = d["metadata"].get("namespace"), d["metadata"]["name"]
        rev = (rs["metadata"].get("annotations") or {}).get(REVISION)
        if rev and (d["metadata"].get("annotations") or {}).get(REVISION) != rev:
            fresh = await self.client.patch(DEPLOYMENTS, name,
                                            {"metadata": {"annotations": {REVISION: rev}}},
                                            namespace=ns)
            d["metadata"] = fresh["metadata"]
        if progress_deadline(d) is None:
            return
        status = deep(d.get("status") or {})
        cond = get_condition(status, "Progressing")
        rs_name = rs["metadata"]["name"]
        if not found:
            set_condition(status, "Progressing", "True", "NewReplicaSetCreated",
                          f'Created new replica set "{rs_name}"', self.mgr.clock(),
                          update_field="lastUpdateTime", force=True)
        elif cond is None:
            set_condition(status, "Progressing", "True", "FoundNewReplicaSet",
                          f'Found new replica set "{rs_name}"', self.mgr.clock(),
                          update_field="lastUpdateTime")
        else:
            return
        fresh = await write_status(self.client, DEPLOYMENTS, d, status)
        if fresh is not None:
            d["metadata"], d["status"] = fresh["metadata"], fresh.get("status") or {}

    # ------------------------------------------------------------ scaling

    async def _scale(self, d: Obj, rs: Obj, size: int) -> Obj:
        cur = spec_replicas(rs)
        anns = dict(rs["metadata"].get("annotations") or {})
        want = dict(anns, **replica_annotations(d))
        if cur == size and want == anns:
            return rs
        patch: Obj = {"metadata": {"annotations": want}}
        if cur != size:
            patch["spec"] = {"replicas": size}
        made = await self.client.patch(REPLICASETS, rs["metadata"]["name"], patch,
                                       namespace=rs["metadata"].get("namespace"))
        if cur != size:
            verb = "up" if size > cur else "down"
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled {verb} replica set {rs['metadata']['name']} "
                                f"from {cur} to {size}")
        rs.clear()
        rs.update(made)
        return made

    async def _sync(self, d: Obj, rs_list: list[Obj]) -> float | None:
        """Scale only (paused, or spec.replicas changed mid-rollout)."""
        new_rs = await self._get_new_rs(d, rs_list, create=False)
        _, old = self._split(d, rs_list)
        all_rs = old + ([new_rs] if new_rs else [])
        await self._scale_all(d, new_rs, old)
        if new_rs is not None and deployment_complete(d, calculate_status(
                d, all_rs, new_rs, self.mgr.clock())):
            await self._cleanup(d, old)
        return await self._sync_status(d, all_rs, new_rs)

    async def _scale_all(self, d: Obj, new_rs: Obj | None, old: list[Obj]) -> None:
        candidates = ([new_rs] if new_rs else []) + old
        active = [rs for rs in candidates if spec_replicas(rs) > 0]
        if len(active) == 1 or (not active and candidates):
            target = active[0] if active else (new_rs or max(old, key=created))
            await self._scale(d, target, spec_replicas(d))
            return
        if not active:
            return
        if new_rs is not None and spec_replicas(new_rs) == spec_replicas(d) \
                and int((new_rs.get("status") or {}).get("availableReplicas") or 0) == spec_replicas(d):
            for rs in old:  # saturated: the old ones can go
                if spec_replicas(rs):
                    await self._scale(d, rs, 0)
            return
        if is_rolling(d):
            sizes = proportional_sizes(d, active)
            for rs in active:
                await self._scale(d, rs, sizes[rs["metadata"]["name"]])

    async def _rollout_rolling(self, d: Obj, rs_list: list[Obj]) -> float | None:
        new_rs = await self._get_new_rs(d, rs_list, create=True)
        _, old = self._split(d, rs_list)
        all_rs = old + ([new_rs] if new_rs else [])
        if new_rs is not None:  # reconcileNewReplicaSet
            want = spec_replicas(d)
            cur = spec_replicas(new_rs)
            target = want if cur > want else new_rs_new_replicas(d, all_rs, new_rs)
            if target != cur:
                await self._scale(d, new_rs, target)
                if target > cur:
                    return await self._sync_status(d, all_rs, new_rs)
        plan = old_scale_down_plan(d, all_rs, old, new_rs)
        scaled = False
        for rs in old:
            size = plan.get(rs["metadata"]["name"])
            if size is not None and size != spec_replicas(rs):
                await self._scale(d, rs, size)
                scaled = True
        if not scaled and new_rs is not None and deployment_complete(
                d, calculate_status(d, all_rs, new_rs, self.mgr.clock())):
            await self._cleanup(d, old)
        return await self._sync_status(d, all_rs, new_rs)

    async def _rollout_recreate(self, d: Obj, rs_list: list[Obj]) -> float | None:
        new_rs = await self._get_new_rs(d, rs_list, create=False)
        _, old = self._split(d, rs_list)
        scaled = False
        for rs in old:
            if spec_replicas(rs) > 0:
                await self._scale(d, rs, 0)
                scaled = True
        if scaled or self._old_pods_running(old):
            return await self._sync_status(d, old + ([new_rs] if new_rs else []), new_rs)
        if new_rs is None:
            new_rs = await self._get_new_rs(d, rs_list, create=True)
        all_rs = old + ([new_rs] if new_rs else [])
        if new_rs is not None:
            await self._scale(d, new_rs, spec_replicas(d))
            if deployment_complete(d, calculate_status(d, all_rs, new_rs, self.mgr.clock())):
                await self._cleanup(d, old)
        return await self._sync_status(d, all_rs, new_rs)

    def _old_pods_running(self, old: list[Obj]) -> bool:
        uids = {rs["metadata"]["uid"] for rs in old}
        if any(int((rs.get("status") or {}).get("replicas") or 0) > 0 for rs in old):
            return True
        ns = old[0]["metadata"].get("namespace") if old else None
        for pod in self.pods.list(ns) if old else ():
            ref = controller_ref(pod)
            if ref and ref.get("uid") in uids and pod_phase(pod) not in ("Failed", "Succeeded"):
                return True
        return False

    async def _cleanup(self, d: Obj, old: list[Obj]) -> None:
        """Delete the oldest fully scaled-down ReplicaSets beyond revisionHistoryLimit."""
        limit = d["spec"].get("revisionHistoryLimit", 10)
        if limit is None:
            return
        alive = sorted((rs for rs in old if not is_deleting(rs)), key=revision_of)
        for rs in alive[:max(len(alive) - int(limit), 0)]:
            rs_st = rs.get("status") or {}
            if (int(rs_st.get("replicas") or 0) != 0 or spec_replicas(rs) != 0
                    or rs["metadata"].get("generation", 0) > int(rs_st.get("observedGeneration") or 0)):
                continue
            try:
                await self.client.delete(REPLICASETS, rs["metadata"]["name"],
                                         namespace=rs["metadata"].get("namespace"))
            except NotFound:
                pass

    # ------------------------------------------------------------ status

    async def _sync_status(self, d: Obj, all_rs: list[Obj], new_rs: Obj | None) -> float | None:
        now = self.mgr.clock()
        status = calculate_status(d, all_rs, new_rs, now)
        deadline = progress_deadline(d)
        if deadline is None:
            status["conditions"] = [c for c in status["conditions"] if c["type"] != "Progressing"]
        cond = get_condition(status, "Progressing")
        complete_already = (status["replicas"] == status["updatedReplicas"] and cond is not None
                            and cond.get("reason") == "NewReplicaSetAvailable")
        paused = bool(d["spec"].get("paused"))
        if deadline is not None and not complete_already and not paused and new_rs is not None:
            rs_name = new_rs["metadata"]["name"]
            if deployment_complete(d, status):
                set_condition(status, "Progressing", "True", "NewReplicaSetAvailable",
                              f'ReplicaSet "{rs_name}" has successfully progressed.', now,
                              update_field="lastUpdateTime")
            elif deployment_progressing(d, status):
                set_condition(status, "Progressing", "True", "ReplicaSetUpdated",
                              f'ReplicaSet "{rs_name}" is progressing.', now,
                              update_field="lastUpdateTime", force=True)
            elif deployment_timed_out(d, status, now):
                set_condition(status, "Progressing", "False", "ProgressDeadlineExceeded",
                              f'ReplicaSet "{rs_name}" has timed out progressing.', now,
                              update_field="lastUpdateTime")
                prev = get_condition(d.get("status") or {}, "Progressing")
                if prev is None or prev.get("reason") != "ProgressDeadlineExceeded":
                    self.recorder.event(d, "Warning", "ProgressDeadlineExceeded",
                                        f'ReplicaSet "{rs_name}" has timed out progressing.')
        if not status["conditions"]:
            status.pop("conditions")
        if status != (d.get("status") or {}):
            await write_status(self.client, DEPLOYMENTS, d, status)
        if paused or deployment_complete(d, status):
            return None
        return seconds_until_timeout(d, status, now)


__all__ = ["DeploymentController", "new_rs_annotations", "replica_annotations"]
