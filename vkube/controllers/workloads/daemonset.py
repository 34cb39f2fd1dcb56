"""DaemonSet: one pod per eligible node, pinned by required node affinity, bound by the scheduler.

As pkg/controller/daemon: a node is eligible when it matches nodeSelector and required node
affinity and every NoSchedule/NoExecute taint is tolerated (with the tolerations DaemonSet pods
always get); an untolerated NoSchedule taint keeps existing pods, NoExecute evicts them.
RollingUpdate replaces old-revision pods within maxUnavailable, or surges new ones first with
maxSurge; OnDelete waits for the user.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from vkube.api.errors import StatusError
from vkube.client.resources import CONTROLLERREVISIONS, DAEMONSETS, NODES, PODS
from vkube.controllers.runtime import Controller
from vkube.controllers.vanished import quiet_when_vanished
from vkube.controllers.workloads._common import (
    Expectations,
    Obj,
    _expr_matches,
    controller_ref,
    deep,
    delete_expected,
    int_or_percent,
    is_deleting,
    is_pod_available,
    is_pod_ready,
    key_of,
    next_available_in,
    parse_time,
    pod_from_template,
    pod_phase,
    split_key,
    write_status,
)
from vkube.controllers.workloads.history import (
    CONTROLLER_REVISION_HASH,
    sync_revisions,
    truncate_history,
)
from vkube.controllers.workloads.replicaset import claim_pods

TEMPLATE_GENERATION = "pod-template-generation"

_ALWAYS = (("node.kubernetes.io/not-ready", "NoExecute"),
           ("node.kubernetes.io/unreachable", "NoExecute"),
           ("node.kubernetes.io/disk-pressure", "NoSchedule"),
           ("node.kubernetes.io/memory-pressure", "NoSchedule"),
           ("node.kubernetes.io/pid-pressure", "NoSchedule"),
           ("node.kubernetes.io/unschedulable", "NoSchedule"))


def daemon_tolerations(pod_spec: Obj) -> list[Obj]:
    """The pod's tolerations plus those every DaemonSet pod gets (AddOrUpdateDaemonPodTolerations)."""
    tols = [dict(t) for t in pod_spec.get("tolerations") or ()]
    extra = list(_ALWAYS)
    if pod_spec.get("hostNetwork"):
        extra.append(("node.kubernetes.io/network-unavailable", "NoSchedule"))
    for key, effect in extra:
        if not any(t.get("key") == key and t.get("effect") == effect for t in tols):
            tols.append({"key": key, "operator": "Exists", "effect": effect})
    return tols


def tolerates(tols: list[Obj], taint: Obj) -> bool:
    for t in tols:
        if t.get("effect") and t["effect"] != taint.get("effect"):
            continue
        op = t.get("operator") or "Equal"
        if not t.get("key"):
            if op == "Exists":
                return True
            continue
        if t["key"] != taint.get("key"):
            continue
        if op == "Exists" or (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _term_matches(term: Obj, node: Obj) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    exprs, mf = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not mf:
        return False
    return (all(_expr_matches(labels, e) for e in exprs)
            and all(_expr_matches(fields, e) for e in mf))


def node_matches(pod_spec: Obj, node: Obj) -> bool:
    """nodeSelector and required node affinity (terms ORed, requirements ANDed)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    req = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if req is None:
        return True
    return any(_term_matches(t, node) for t in req.get("nodeSelectorTerms") or ())


def should_run(pod_spec: Obj, node: Obj) -> tuple[bool, bool]:
    """(should run, should continue running) as NodeShouldRunDaemonPod."""
    if not node_matches(pod_spec, node):
        return False, False
    tols = daemon_tolerations(pod_spec)
    run = cont = True
    for taint in (node.get("spec") or {}).get("taints") or ():
        if taint.get("effect") not in ("NoSchedule", "NoExecute") or tolerates(tols, taint):
            continue
        run = False
        if taint["effect"] == "NoExecute":
            cont = False
    return run, cont


def pin_to_node(pod_spec: Obj, node_name: str) -> None:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: one required term naming the node by field."""
    aff = pod_spec.setdefault("affinity", {}).setdefault("nodeAffinity", {})
    aff["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node_name]}]}]}


def target_node(pod: Obj) -> str | None:
    spec = pod.get("spec") or {}
    if spec.get("nodeName"):
        return spec["nodeName"]
    req = (((spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    for term in req.get("nodeSelectorTerms") or ():
        for f in term.get("matchFields") or ():
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and \
                    len(f.get("values") or ()) == 1:
                return f["values"][0]
    return None


def _hash(pod: Obj) -> str | None:
    return (pod["metadata"].get("labels") or {}).get(CONTROLLER_REVISION_HASH)


def _age(pod: Obj) -> tuple[Any, ...]:
    t = parse_time(pod["metadata"].get("creationTimestamp"))
    return (t.timestamp() if t else 0.0, pod["metadata"]["name"])


class DaemonSetController(Controller):
    name = "daemonset"
    workers = 2

    def setup(self) -> None:
        self.expectations = Expectations()
        self.failed_backoff: dict[tuple[str, str], tuple[int, datetime]] = {}  # (key, node)
        self.owners = self.mgr.informer(DAEMONSETS)
        self.pods = self.mgr.informer(PODS)
        self.nodes = self.mgr.informer(NODES)
        self.revisions = self.mgr.informer(CONTROLLERREVISIONS)
        self.owners.add_handler(self._on_ds)
        self.pods.add_handler(self._on_pod)
        self.nodes.add_handler(self._on_node)
        self.revisions.add_handler(lambda t, o, old: self.enqueue_owner(o, "DaemonSet"))

    def _on_ds(self, type_: str, ds: Obj, old: Obj | None) -> None:
        if type_ == "DELETED":
            self.expectations.forget(key_of(ds))
        self.enqueue(ds)

    def _on_node(self, type_: str, node: Obj, old: Obj | None) -> None:
        if old is not None and (old.get("spec") == node.get("spec") and
                                (old["metadata"].get("labels") == node["metadata"].get("labels"))):
            return
        for ds in self.owners.list():
            self.enqueue(ds)

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "DaemonSet":
            return
        key = f"{pod['metadata'].get('namespace')}/{ref['name']}"
        self.expectations.observe_pod(key, type_, pod, old)
        self.queue.add(key)

    # ------------------------------------------------------------ reconcile

    @quiet_when_vanished()
    async def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        ds = self.owners.get(name, ns)
        if ds is None:
            self.expectations.forget(key)
            return None
        ds = deep(ds)
        now = self.mgr.clock()
        pods = await claim_pods(self.client, ds, ds["spec"].get("selector") or {},
                                self.pods.list(ns))
        revs = [r for r in self.revisions.list(ns)
                if (controller_ref(r) or {}).get("uid") == ds["metadata"]["uid"]]
        _, update, collision, owned = await sync_revisions(self.client, ds, revs)
        cur_hash = update["metadata"]["labels"][CONTROLLER_REVISION_HASH]
        nodes = self.nodes.list()
        by_node: dict[str, list[Obj]] = {}
        for p in pods:
            n = target_node(p)
            if n is not None and not is_deleting(p):
                by_node.setdefault(n, []).append(p)
        template_spec = (ds["spec"].get("template") or {}).get("spec") or {}
        eligible = {n["metadata"]["name"]: should_run(template_spec, n) for n in nodes}
        if not is_deleting(ds) and self.expectations.satisfied(key):
            wait = await self._manage(key, ds, eligible, by_node, cur_hash, now)
        else:
            wait = None
        status = self._status(ds, eligible, by_node, cur_hash, collision, now)
        if status != (ds.get("status") or {}):
            await write_status(self.client, DAEMONSETS, ds, status)
        keep = {update["metadata"]["name"]}
        keep.update(r["metadata"]["name"] for r in owned
                    if r["metadata"]["labels"].get(CONTROLLER_REVISION_HASH)
                    in {_hash(p) for p in pods})
        await truncate_history(self.client, owned, keep,
                               int(ds["spec"].get("revisionHistoryLimit", 10)))
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        waits = [w for w in (wait, next_available_in(pods, min_ready, now)) if w]
        return min(waits) if waits else None

    async def _manage(self, key: str, ds: Obj, eligible: dict[str, tuple[bool, bool]],
                      by_node: dict[str, list[Obj]], cur_hash: str, now: datetime
                      ) -> float | None:
        """Create/delete pods per node; returns seconds until a failed-pod backoff ends."""
        create: list[str] = []
        delete: list[Obj] = []
        retry: float | None = None
        surging = ((ds["spec"].get("updateStrategy") or {}).get("type") or "RollingUpdate") \
            == "RollingUpdate" and _max_surge(ds, len(eligible)) > 0
        for node, (run, cont) in eligible.items():
            pods = sorted(by_node.get(node, []), key=_age)
            if run and not pods:
                create.append(node)
            elif cont:
                failed = [p for p in pods if pod_phase(p) == "Failed"]
                if failed:
                    hold = self._failed_pod_backoff(key, node, now)
                    if hold:
                        retry = min(retry or hold, hold)
                    else:
                        delete += failed
                alive = [p for p in pods if p not in failed]
                if surging:  # old and new may stand side by side; trim same-hash duplicates
                    seen: set[str | None] = set()
                    for p in alive:
                        if _hash(p) in seen:
                            delete.append(p)
                        seen.add(_hash(p))
                elif len(alive) > 1:  # keep the oldest
                    delete += alive[1:]
            else:
                delete += pods
        for node, pods in by_node.items():  # pods on nodes that no longer exist
            if node not in eligible:
                delete += pods
        if not create and not delete:
            create, delete = await self._rolling(ds, eligible, by_node, cur_hash, now)
        await self._sync_pods(key, ds, create, delete, cur_hash)
        return retry

    def _failed_pod_backoff(self, key: str, node: str, now: datetime) -> float | None:
        """Failed daemon pods are replaced after 1s, 2s, 4s … (max 15 min) per node, so a pod
        the kubelet keeps failing does not spin. Returns seconds still to wait, or None."""
        n, until = self.failed_backoff.get((key, node), (0, now))
        if now < until:
            return (until - now).total_seconds()
        self.failed_backoff[(key, node)] = (n + 1, now + timedelta(seconds=min(2 ** n, 900)))
        return None

    async def _rolling(self, ds: Obj, eligible: dict[str, tuple[bool, bool]],
                       by_node: dict[str, list[Obj]], cur_hash: str, now: datetime
                       ) -> tuple[list[str], list[Obj]]:
        strategy = ds["spec"].get("updateStrategy") or {}
        if (strategy.get("type") or "RollingUpdate") != "RollingUpdate":
            return [], []
        desired = sum(1 for run, _ in eligible.values() if run)
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        surge = _max_surge(ds, desired)
        ru = strategy.get("rollingUpdate") or {}
        unavail = int_or_percent(ru.get("maxUnavailable", 1), desired, round_up=False)
        if surge == 0 and unavail == 0:
            unavail = 1
        create: list[str] = []
        delete: list[Obj] = []
        if surge == 0:
            unavailable, candidates = 0, []
            for node, (run, _) in eligible.items():
                if not run:
                    continue
                pods = by_node.get(node, [])
                new = [p for p in pods if _hash(p) == cur_hash]
                old = [p for p in pods if _hash(p) != cur_hash]
                if not pods or (new and not is_pod_available(new[0], min_ready, now)):
                    unavailable += 1
                for p in old:
                    if not is_pod_available(p, min_ready, now):
                        delete.append(p)  # already unavailable: replace it at once
                    else:
                        candidates.append(p)
            allowed = max(unavail - unavailable - len(delete), 0)
            delete += sorted(candidates, key=lambda p: target_node(p) or "")[:allowed]
            return create, delete
        surging = 0
        for node, (run, _) in sorted(eligible.items()):
            pods = by_node.get(node, [])
            new = [p for p in pods if _hash(p) == cur_hash]
            old = [p for p in pods if _hash(p) != cur_hash]
            if not run or not old:
                continue
            if new:
                if is_pod_available(new[0], min_ready, now):
                    delete += old
                else:
                    surging += 1
            elif not any(is_pod_available(p, min_ready, now) for p in old):
                delete += old
            else:
                create.append(node)
        return create[:max(surge - surging, 0)], delete

    async def _sync_pods(self, key: str, ds: Obj, create: list[str], delete: list[Obj],
                         cur_hash: str) -> None:
        ns = ds["metadata"].get("namespace")
        if delete:
            self.expectations.expect_deletions(key, [p["metadata"]["name"] for p in delete])
            results = await asyncio.gather(*(self._delete(key, ds, p) for p in delete),
                                           return_exceptions=True)
            for r in results:
                if isinstance(r, BaseException):
                    raise r
        if not create:
            return
        self.expectations.expect_creations(key, len(create))
        template = ds["spec"]["template"]

        async def one(node: str) -> None:
            pod = pod_from_template(template, ds)
            pod["metadata"]["labels"][CONTROLLER_REVISION_HASH] = cur_hash
            pod["metadata"]["labels"][TEMPLATE_GENERATION] = str(ds["metadata"].get("generation", 1))
            pin_to_node(pod["spec"], node)
            pod["spec"]["tolerations"] = daemon_tolerations(pod["spec"])
            try:
                made = await self.client.create(PODS, pod, namespace=ns)
            except StatusError as e:
                self.expectations.creation_observed(key)
                self.recorder.event(ds, "Warning", "FailedCreate", f"Error creating: {e.message}")
                raise
            self.recorder.event(ds, "Normal", "SuccessfulCreate",
                                f"Created pod: {made['metadata']['name']}")
        results = await asyncio.gather(*(one(n) for n in create), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    async def _delete(self, key: str, ds: Obj, pod: Obj) -> None:
        if await delete_expected(self.client, self.expectations, key, pod):
            self.recorder.event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")

    def _status(self, ds: Obj, eligible: dict[str, tuple[bool, bool]],
                by_node: dict[str, list[Obj]], cur_hash: str, collision: int,
                now: datetime) -> Obj:
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        desired = current = mis = ready = updated = available = 0
        for node, pods in by_node.items():
            run = eligible.get(node, (False, False))[0]
            if pods and not run:
                mis += 1
        for node, (run, _) in eligible.items():
            if not run:
                continue
            desired += 1
            pods = sorted(by_node.get(node, []), key=_age)
            if not pods:
                continue
            current += 1
            p = pods[0]
            if is_pod_ready(p):
                ready += 1
                if is_pod_available(p, min_ready, now):
                    available += 1
            if any(_hash(x) == cur_hash for x in pods):
                updated += 1
        status: Obj = {
            "currentNumberScheduled": current, "numberMisscheduled": mis,
            "desiredNumberScheduled": desired, "numberReady": ready,
            "observedGeneration": ds["metadata"].get("generation", 0),
            "updatedNumberScheduled": updated, "numberAvailable": available,
        }
        if desired - available > 0:
            status["numberUnavailable"] = desired - available
        if collision:
            status["collisionCount"] = collision
        if (ds.get("status") or {}).get("conditions"):
            status["conditions"] = ds["status"]["conditions"]
        return status


def _max_surge(ds: Obj, desired: int) -> int:
    strategy = ds["spec"].get("updateStrategy") or {}
    ru = strategy.get("rollingUpdate") or {}
    return int_or_percent(ru.get("maxSurge", 0), desired, round_up=True)


__all__ = ["DaemonSetController", "should_run", "daemon_tolerations", "tolerates",
           "node_matches", "pin_to_node", "target_node"]
