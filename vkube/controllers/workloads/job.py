"""Job: run pods to ``completions`` (NonIndexed or Indexed), within ``parallelism``,
``backoffLimit`` (or ``backoffLimitPerIndex``), ``activeDeadlineSeconds``,
``podFailurePolicy`` and ``successPolicy``.

As pkg/controller/job: finished pods keep the ``batch.kubernetes.io/job-tracking`` finalizer
until they are recorded in ``status.uncountedTerminatedPods`` (flushed first, so a crash never
loses or double-counts a pod); then the finalizer goes and the pod moves into
succeeded/failed. Finishing is two-step as in 1.31+: SuccessCriteriaMet / FailureTarget first,
Complete / Failed once no pod is left running. The accounting rules live in job_policy.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from vkube.api.errors import Conflict, NotFound, StatusError
from vkube.client.resources import JOBS, PODS
from vkube.controllers.runtime import Controller
from vkube.controllers.vanished import quiet_when_vanished
from vkube.controllers.workloads._common import (
    BURST_REPLICAS,
    Expectations,
    Obj,
    controller_ref,
    deep,
    delete_expected,
    fmt_time,
    get_condition,
    is_deleting,
    is_pod_active,
    is_pod_ready,
    key_of,
    parse_time,
    pod_phase,
    pods_to_delete,
    restart_count,
    selector_matches,
    set_condition,
    slow_start,
    split_key,
    write_status,
)
from vkube.controllers.workloads.job_orphans import ORPHAN, release_orphan
from vkube.controllers.workloads.job_policy import (
    MANAGED_BY_US,
    TRACKING_FINALIZER,
    Tally,
    backoff_delay,
    finished_condition,
    first_pending_indexes,
    format_indexes,
    has_tracking_finalizer,
    index_failures,
    job_pod,
    pod_index,
    record_finished,
    replacement_policy,
    verdict,
    want_active,
)


class JobController(Controller):
    name = "job"
    workers = 4
    backoff_base: float = 10.0  # seconds; tests set 0 to re-create failed pods at once
    backoff_max: float = 360.0

    def setup(self) -> None:
        self.expectations = Expectations()
        self.backoffs: dict[str, tuple[int, datetime]] = {}  # key → (failures, last failure)
        # key → (uid, verdict) once FailureTarget / SuccessCriteriaMet was written: a verdict is
        # final, and an informer cache that has not yet seen our write must not undo it (it
        # did: a Failed OnFailure Job got a replacement pod the instant its last one died)
        self.verdicts: dict[str, tuple[str, tuple[str, str, bool]]] = {}
        self.owners = self.mgr.informer(JOBS)
        self.pods = self.mgr.informer(PODS)
        self.owners.add_handler(self._on_job)
        self.pods.add_handler(self._on_pod)

    def _on_job(self, type_: str, job: Obj, old: Obj | None) -> None:
        if type_ == "DELETED":
            self.expectations.forget(key_of(job))
            self.backoffs.pop(key_of(job), None)
            self.verdicts.pop(key_of(job), None)
        self.enqueue(job)

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        ref = controller_ref(pod)
        ns = pod["metadata"].get("namespace")
        job = None
        if ref is not None and ref.get("kind") == "Job":
            job = self.owners.get(ref["name"], ns)
        if ref is None or job is None or job["metadata"].get("uid") != ref.get("uid"):
            if type_ != "DELETED" and has_tracking_finalizer(pod):
                self.queue.add(ORPHAN + key_of(pod))  # its Job is gone: release the pod
            return
        key = f"{ns}/{ref['name']}"
        self.expectations.observe_pod(key, type_, pod, old)
        self.queue.add(key)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> float | None:
        if key.startswith(ORPHAN):
            await release_orphan(self, key[len(ORPHAN):])
            return None
        return await self._sync(key)

    @quiet_when_vanished()
    async def _sync(self, key: str) -> float | None:
        ns, name = split_key(key)
        job = self.owners.get(name, ns)
        if job is None:
            self.expectations.forget(key)
            self.verdicts.pop(key, None)
            return None
        managed_by = job["spec"].get("managedBy")
        if managed_by and managed_by != MANAGED_BY_US:
            return None  # another controller (e.g. MultiKueue) owns this Job's status
        now = self.mgr.clock()
        pods = self._owned_pods(job)
        if finished_condition(job) is not None:
            self.verdicts.pop(key, None)  # the cache has caught up: Complete/Failed are final
            # a finished Job runs nothing: stop what still runs, hold no pod by our finalizer
            await self._kill(key, job, [p for p in pods if is_pod_active(p)])
            await self._strip_finalizers([p for p in pods if has_tracking_finalizer(p)])
            return await self._ttl(job, now)
        spec = job["spec"]
        status = deep(job.get("status") or {})
        tally = Tally.from_status(spec, status)
        job = await self._track(key, job, status, tally, pods, now)
        if job is None:
            return None

        active = [p for p in pods if is_pod_active(p)]
        requeue: list[float] = []
        suspended = bool(spec.get("suspend"))
        if status.get("startTime") is None and not suspended:
            status["startTime"] = fmt_time(now)
        start = parse_time(status.get("startTime"))
        elapsed = None if suspended or start is None else (now - start).total_seconds()
        restarts = sum(restart_count(p) for p in active) if (
            (spec["template"].get("spec") or {}).get("restartPolicy") == "OnFailure") else 0
        result = verdict(spec, status, tally, active=len(active), restarts=restarts,
                         elapsed=elapsed)
        uid = job["metadata"]["uid"]
        known = self.verdicts.get(key)
        if known is not None and known[0] != uid:
            del self.verdicts[key]
        elif known is not None:
            result = known[1]  # our cache may lag behind the verdict we already wrote
        elif result is not None:
            self.verdicts[key] = (uid, result)
        settled = not tally.uncounted_succeeded and not tally.uncounted_failed
        if result is not None and not result[2]:
            reason, message, _ = result
            set_condition(status, "FailureTarget", "True", reason, message, now,
                          update_field="lastProbeTime")
            status["failed"] = int(status.get("failed") or 0) + await self._kill(key, job, active)
            active = []
            if settled and not any(is_deleting(p) and has_tracking_finalizer(p) for p in pods):
                set_condition(status, "Failed", "True", reason, message, now,
                              update_field="lastProbeTime")
                self.recorder.event(job, "Warning", reason, message)
        elif result is not None:
            reason, message, _ = result
            set_condition(status, "SuccessCriteriaMet", "True", reason, message, now,
                          update_field="lastProbeTime")
            await self._kill(key, job, active)
            active = []
            if settled:
                set_condition(status, "Complete", "True", reason, message, now,
                              update_field="lastProbeTime")
                status["completionTime"] = fmt_time(now)
                self.recorder.event(job, "Normal", "Completed", "Job completed")
        elif suspended:
            await self._kill(key, job, active)
            active = []
            if not _cond_true(status, "Suspended"):
                set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended", now,
                              update_field="lastProbeTime")
                self.recorder.event(job, "Normal", "Suspended", "Job suspended")
        else:
            if _cond_true(status, "Suspended"):
                set_condition(status, "Suspended", "False", "JobResumed", "Job resumed", now,
                              update_field="lastProbeTime")
                status["startTime"] = fmt_time(now)
                self.recorder.event(job, "Normal", "Resumed", "Job resumed")
            deadline = spec.get("activeDeadlineSeconds")
            if deadline is not None and elapsed is not None:
                requeue.append(max(int(deadline) - elapsed, 0.0))
            if self.expectations.satisfied(key) and not is_deleting(job):  # as manageJob
                wait = await self._manage(key, job, pods, active, status, tally, now)
                if wait:
                    requeue.append(wait)

        self._fill_counts(status, spec, pods, active, tally)
        if status != (job.get("status") or {}):
            job = await write_status(self.client, JOBS, job, status) or job
        if finished_condition(job) is not None:
            ttl = await self._ttl(job, now)
            if ttl is not None:
                requeue.append(ttl)
        return min(requeue) if requeue else None

    async def _track(self, key: str, job: Obj, status: Obj, tally: Tally, pods: list[Obj],
                     now: datetime) -> Obj | None:
        """Record finished pods as uncounted (flushed to the API first), drop their finalizers,
        then move them into succeeded/failed. Returns the Job as last written."""
        spec = job["spec"]
        before = (set(tally.uncounted_succeeded), set(tally.uncounted_failed))
        record_finished(spec, tally, pods)
        self._write_tally(status, spec, tally)
        if (tally.uncounted_succeeded, tally.uncounted_failed) != before:
            fresh = await write_status(self.client, JOBS, job, status)
            if fresh is None:
                return None
            job = fresh
        if tally.new_failures:
            n, _ = self.backoffs.get(key, (0, now))
            last = max((_finish_time(p) or now for p in tally.release if pod_phase(p) == "Failed"),
                       default=now)
            self.backoffs[key] = (n + tally.new_failures, last)
        counted = tally.uncounted_succeeded | tally.uncounted_failed
        freed = await self._strip_finalizers(
            [p for p in pods if has_tracking_finalizer(p) and p["metadata"]["uid"] in counted]
            + tally.release)
        by_uid = {p["metadata"]["uid"]: p for p in pods}
        for uids, field in ((tally.uncounted_succeeded, "succeeded"),
                            (tally.uncounted_failed, "failed")):
            for uid in list(uids):
                if uid in freed or uid not in by_uid or not has_tracking_finalizer(by_uid[uid]):
                    uids.discard(uid)
                    status[field] = int(status.get(field) or 0) + 1
                    if field == "succeeded":
                        self.backoffs.pop(key, None)
        self._write_tally(status, spec, tally)
        return job

    @staticmethod
    def _write_tally(status: Obj, spec: Obj, tally: Tally) -> None:
        status["uncountedTerminatedPods"] = {"succeeded": sorted(tally.uncounted_succeeded),
                                             "failed": sorted(tally.uncounted_failed)}
        if spec.get("completionMode") == "Indexed":
            status["completedIndexes"] = format_indexes(tally.done)
            status["succeeded"] = len(tally.done)
            if spec.get("backoffLimitPerIndex") is not None:
                status["failedIndexes"] = format_indexes(tally.failed_indexes)

    @staticmethod
    def _fill_counts(status: Obj, spec: Obj, pods: list[Obj], active: list[Obj],
                     tally: Tally) -> None:
        status["active"] = len([p for p in active if not is_deleting(p)])
        status["ready"] = sum(1 for p in active if is_pod_ready(p))
        status["terminating"] = sum(1 for p in pods if is_deleting(p)
                                    and pod_phase(p) not in ("Succeeded", "Failed"))
        for f in ("succeeded", "failed", "completedIndexes"):
            if not status.get(f):
                status.pop(f, None)

    # ------------------------------------------------------------ pods

    def _owned_pods(self, job: Obj) -> list[Obj]:
        uid = job["metadata"]["uid"]
        sel = job["spec"].get("selector")
        return [p for p in self.pods.list(job["metadata"].get("namespace"))
                if (controller_ref(p) or {}).get("uid") == uid
                and (sel is None or selector_matches(sel, p["metadata"].get("labels")))]

    async def _manage(self, key: str, job: Obj, pods: list[Obj], active: list[Obj],
                      status: Obj, tally: Tally, now: datetime) -> float | None:
        """Create or delete pods towards the wanted number of active ones."""
        spec = job["spec"]
        indexed = spec.get("completionMode") == "Indexed"
        skip = tally.done | tally.failed_indexes
        succeeded = int(status.get("succeeded") or 0) + (
            0 if indexed else len(tally.uncounted_succeeded))
        terminating = [p for p in pods if is_deleting(p)
                       and pod_phase(p) not in ("Succeeded", "Failed")]
        live = list(active)
        want = want_active(spec, succeeded, len(live))
        held: set[int | None] = set()
        if replacement_policy(spec) == "Failed":  # replace only once the old pod is terminal
            want = max(want - len(terminating), 0)
            held = {pod_index(p) for p in terminating}
        excess: list[Obj] = []
        if indexed:  # duplicates of an index, or indexes done, failed or out of range
            seen: set[int] = set()
            comp = spec.get("completions")
            for p in sorted(live, key=lambda p: (not is_pod_ready(p), p["metadata"]["name"])):
                idx = pod_index(p)
                if idx is None or idx in seen or idx in skip or (
                        comp is not None and idx >= int(comp)):
                    excess.append(p)
                else:
                    seen.add(idx)
            live = [p for p in live if p not in excess]
        if len(live) > want:
            excess += pods_to_delete(live, len(live) - want)
        if excess:
            await self._kill(key, job, excess)
            return None
        if len(live) >= want:
            return None
        n, last = self.backoffs.get(key, (0, now))
        left = (last + timedelta(seconds=backoff_delay(n, self.backoff_base, self.backoff_max))
                - now).total_seconds()
        if left > 0:
            return left
        count = min(want - len(live), BURST_REPLICAS)
        idxs: list[int | None]
        if indexed:
            busy = ({pod_index(p) for p in live} | held) - {None}
            idxs = list(first_pending_indexes(int(spec["completions"]), skip,
                                              busy, count))  # type: ignore[arg-type]
        else:
            idxs = [None] * count
        if not idxs:
            return None
        retries = index_failures(pods) if spec.get("backoffLimitPerIndex") is not None else {}
        await self._create(key, job, [job_pod(job, i, index_failures=retries.get(i, 0))
                                      if i is not None else job_pod(job, None) for i in idxs])
        return None

    async def _create(self, key: str, job: Obj, pods: list[Obj]) -> None:
        self.expectations.expect_creations(key, len(pods))
        ns = job["metadata"].get("namespace")

        async def one(i: int) -> None:
            try:
                made = await self.client.create(PODS, pods[i], namespace=ns)
            except StatusError as e:
                self.expectations.creation_observed(key)
                self.recorder.event(job, "Warning", "FailedCreate", f"Error creating: {e.message}")
                raise
            self.recorder.event(job, "Normal", "SuccessfulCreate",
                                f"Created pod: {made['metadata']['name']}")

        done, err = await slow_start(len(pods), one)
        if err is not None:
            skipped = len(pods) - done - 1
            if skipped > 0:
                self.expectations.creation_observed(key, skipped)
            raise err

    async def _kill(self, key: str, job: Obj, pods: list[Obj]) -> int:
        """Untrack (drop our finalizer) and delete pods; returns how many were deleted."""
        pods = [p for p in pods if not is_deleting(p)]
        if not pods:
            return 0
        await self._strip_finalizers([p for p in pods if has_tracking_finalizer(p)])
        self.expectations.expect_deletions(key, [p["metadata"]["name"] for p in pods])

        async def one(p: Obj) -> int:
            if not await delete_expected(self.client, self.expectations, key, p, uid_precondition=False):
                return 0
            self.recorder.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {p['metadata']['name']}")
            return 1
        return sum(await asyncio.gather(*(one(p) for p in pods)))

    async def _strip_finalizers(self, pods: list[Obj]) -> set[str]:
        """Remove the tracking finalizer; returns the UIDs now free of it (or gone)."""
        unique = {p["metadata"]["uid"]: p for p in pods}

        async def one(p: Obj) -> str:
            m = p["metadata"]
            fins = [f for f in m.get("finalizers") or () if f != TRACKING_FINALIZER]
            try:
                await self.client.patch(PODS, m["name"], {"metadata": {
                    "finalizers": fins or None, "uid": m["uid"]}}, namespace=m.get("namespace"))
            except (NotFound, Conflict):
                pass
            return m["uid"]
        return set(await asyncio.gather(*(one(p) for p in unique.values())))

    async def _ttl(self, job: Obj, now: datetime) -> float | None:
        """ttlSecondsAfterFinished: delete the finished Job (and, via GC, its pods)."""
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        cond = finished_condition(job)
        if ttl is None or cond is None:
            return None
        at = parse_time((job.get("status") or {}).get("completionTime")
                        or cond.get("lastTransitionTime")) or now
        left = (at + timedelta(seconds=int(ttl)) - now).total_seconds()
        if left > 0:
            return left
        m = job["metadata"]
        try:
            await self.client.delete(JOBS, m["name"], namespace=m.get("namespace"),
                                     propagation_policy="Background",
                                     preconditions={"uid": m["uid"]})
        except NotFound:
            pass
        return None


def _cond_true(status: Obj, ctype: str) -> bool:
    c = get_condition(status, ctype)
    return c is not None and c.get("status") == "True"


def _finish_time(pod: Obj) -> datetime | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or ():
        t = parse_time(((cs.get("state") or {}).get("terminated") or {}).get("finishedAt"))
        if t is not None:
            return t
    return None


__all__ = ["JobController", "job_pod", "finished_condition"]
