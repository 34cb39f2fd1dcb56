"""Job: run pods to ``completions`` (NonIndexed or Indexed), within ``parallelism``,
``backoffLimit``, ``activeDeadlineSeconds`` and ``podFailurePolicy``.

As pkg/controller/job: finished pods keep the ``batch.kubernetes.io/job-tracking`` finalizer
until they are recorded in ``status.uncountedTerminatedPods`` (flushed first, so a crash never
loses or double-counts a pod), then the finalizer goes and the pod moves into
succeeded/failed. Finishing is two-step as in 1.31+: SuccessCriteriaMet / FailureTarget first,
Complete / Failed once no pod is left running.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from vkube.api.errors import Conflict, NotFound, StatusError
from vkube.client.resources import JOBS, PODS
from vkube.controllers.runtime import Controller
from vkube.controllers.workloads._common import (
    BURST_REPLICAS, Expectations, Obj, controller_ref, deep, fmt_time, get_condition,
    is_deleting, is_pod_active, is_pod_ready, key_of, parse_time, pod_from_template, pod_phase,
    pods_to_delete, restart_count, selector_matches, set_condition, slow_start, split_key,
    write_status,
)
from vkube.controllers.workloads.job_policy import (
    COMPLETION_INDEX, CONTROLLER_UID_LABEL, JOB_NAME_LABEL, TRACKING_FINALIZER, backoff_delay,
    first_pending_indexes, format_indexes, match_failure_policy, parse_indexes, pod_index,
    want_active,
)

MSG_BACKOFF = "Job has reached the specified backoff limit"
MSG_DEADLINE = "Job was active longer than specified deadline"
MSG_COMPLETE = "Reached expected number of succeeded pods"


def finished_condition(job: Obj) -> Obj | None:
    for c in (job.get("status") or {}).get("conditions") or ():
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return c
    return None


def job_pod(job: Obj, index: int | None) -> Obj:
    """A pod for the Job (and completion index): tracking finalizer, job labels, and for
    Indexed jobs the index annotation/label, hostname and JOB_COMPLETION_INDEX env."""
    name = job["metadata"]["name"]
    gen = f"{name}-" if index is None else f"{name}-{index}-"
    pod = pod_from_template(job["spec"]["template"], job, generate_name=gen)
    m = pod["metadata"]
    m.setdefault("finalizers", []).append(TRACKING_FINALIZER)
    m["labels"].setdefault(JOB_NAME_LABEL, name)
    m["labels"].setdefault(CONTROLLER_UID_LABEL, job["metadata"]["uid"])
    if index is not None:
        m.setdefault("annotations", {})[COMPLETION_INDEX] = str(index)
        m["labels"][COMPLETION_INDEX] = str(index)
        spec = pod["spec"]
        spec.setdefault("hostname", f"{name}-{index}")
        env = {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
            "fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}}
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in c.get("env") or ()):
                c.setdefault("env", []).append(dict(env))
    return pod


class JobController(Controller):
    name = "job"
    workers = 4
    backoff_base: float = 10.0  # seconds; tests set 0 to re-create failed pods at once
    backoff_max: float = 360.0

    def setup(self) -> None:
        self.expectations = Expectations()
        self.backoffs: dict[str, tuple[int, datetime]] = {}
        self.owners = self.mgr.informer(JOBS)
        self.pods = self.mgr.informer(PODS)
        self.owners.add_handler(self._on_job)
        self.pods.add_handler(self._on_pod)

    def _on_job(self, type_: str, job: Obj, old: Obj | None) -> None:
        if type_ == "DELETED":
            self.expectations.forget(key_of(job))
            self.backoffs.pop(key_of(job), None)
        self.enqueue(job)

    def _owner_key(self, pod: Obj) -> str | None:
        ref = controller_ref(pod)
        if ref is None or ref.get("kind") != "Job":
            return None
        ns = pod["metadata"].get("namespace")
        job = self.owners.get(ref["name"], ns)
        if job is None or job["metadata"].get("uid") != ref.get("uid"):
            return None
        return f"{ns}/{ref['name']}"

    def _on_pod(self, type_: str, pod: Obj, old: Obj | None) -> None:
        key = self._owner_key(pod)
        if key is None:
            return
        name = pod["metadata"]["name"]
        if type_ == "ADDED":
            self.expectations.creation_observed(key)
        if type_ == "DELETED" or (is_deleting(pod) and not (old and is_deleting(old))):
            self.expectations.deletion_observed(key, name)
        self.queue.add(key)

    # ------------------------------------------------------------ reconcile

    async def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        job = self.owners.get(name, ns)
        if job is None:
            self.expectations.forget(key)
            return None
        now = self.mgr.clock()
        pods = self._owned_pods(job)
        if finished_condition(job) is not None:
            await self._strip_finalizers([p for p in pods if _has_finalizer(p)])
            return await self._ttl(job, now)
        spec = job["spec"]
        status = deep(job.get("status") or {})
        uncounted = status.setdefault("uncountedTerminatedPods", {})
        unc_s, unc_f = set(uncounted.get("succeeded") or ()), set(uncounted.get("failed") or ())
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        done_idx = parse_indexes(status.get("completedIndexes"), completions) if indexed else set()
        failure: tuple[str, str] | None = None
        cond = get_condition(status, "FailureTarget")
        if cond is not None and cond.get("status") == "True":
            failure = (cond.get("reason") or "", cond.get("message") or "")

        # 1. record newly finished pods (still holding our finalizer) as uncounted, flush
        strip: list[Obj] = []
        new_failed_times: list[datetime] = []
        for p in pods:
            uid = p["metadata"]["uid"]
            if not _has_finalizer(p) or uid in unc_s or uid in unc_f:
                continue
            phase = pod_phase(p)
            if phase == "Succeeded":
                unc_s.add(uid)
                idx = pod_index(p)
                if indexed and idx is not None and (completions is None or idx < completions):
                    done_idx.add(idx)
            elif phase == "Failed" or is_deleting(p):
                if phase != "Failed" and spec.get("podFailurePolicy"):
                    continue  # with a policy, wait for the pod to be terminal
                action = match_failure_policy(spec.get("podFailurePolicy"), p)
                if action is not None and action[0] == "Ignore":
                    strip.append(p)
                    continue
                if action is not None and action[0] == "FailJob" and failure is None:
                    failure = ("PodFailurePolicy", action[1])
                unc_f.add(uid)
                new_failed_times.append(_finish_time(p) or now)
            else:
                continue
            strip.append(p)
        added = (unc_s != set(uncounted.get("succeeded") or ())
                 or unc_f != set(uncounted.get("failed") or ()))
        uncounted["succeeded"], uncounted["failed"] = sorted(unc_s), sorted(unc_f)
        if indexed:
            status["completedIndexes"] = format_indexes(done_idx)
        if added:
            fresh = await write_status(self.client, JOBS, job, status)
            if fresh is None:
                return None
            job = fresh
        if new_failed_times:
            n, _ = self.backoffs.get(key, (0, now))
            self.backoffs[key] = (n + len(new_failed_times), max(new_failed_times))

        # 2. drop the finalizers of recorded pods, 3. move them into the counters
        gone = await self._strip_finalizers([p for p in pods if _has_finalizer(p) and (
            p["metadata"]["uid"] in unc_s or p["metadata"]["uid"] in unc_f)] + strip)
        by_uid = {p["metadata"]["uid"]: p for p in pods}
        for uid in list(unc_s):
            if uid in gone or uid not in by_uid or not _has_finalizer(by_uid[uid]):
                unc_s.discard(uid)
                status["succeeded"] = int(status.get("succeeded") or 0) + 1
                self.backoffs.pop(key, None)
        for uid in list(unc_f):
            if uid in gone or uid not in by_uid or not _has_finalizer(by_uid[uid]):
                unc_f.discard(uid)
                status["failed"] = int(status.get("failed") or 0) + 1
        uncounted["succeeded"], uncounted["failed"] = sorted(unc_s), sorted(unc_f)
        if indexed:
            status["succeeded"] = len(done_idx)

        active = [p for p in pods if is_pod_active(p)]
        requeue: list[float] = []
        suspended = bool(spec.get("suspend"))
        if status.get("startTime") is None and not suspended:
            status["startTime"] = fmt_time(now)

        # failure and success criteria
        succeeded = int(status.get("succeeded") or 0) + (0 if indexed else len(unc_s))
        failed_total = int(status.get("failed") or 0) + len(unc_f)
        if failure is None:
            restarts = sum(restart_count(p) for p in active) if (
                (spec["template"].get("spec") or {}).get("restartPolicy") == "OnFailure") else 0
            if failed_total + restarts > int(spec.get("backoffLimit", 6)):
                failure = ("BackoffLimitExceeded", MSG_BACKOFF)
            elif spec.get("activeDeadlineSeconds") is not None and status.get("startTime") \
                    and not suspended:
                start = parse_time(status["startTime"]) or now
                left = (start + timedelta(seconds=int(spec["activeDeadlineSeconds"])) - now)
                if left.total_seconds() <= 0:
                    failure = ("DeadlineExceeded", MSG_DEADLINE)
                else:
                    requeue.append(left.total_seconds())
        success = False
        if failure is None:
            if indexed:
                success = completions is not None and len(done_idx) >= int(completions)
            elif completions is not None:
                success = succeeded >= int(completions)
            else:
                success = succeeded > 0 and not active

        if failure is not None:
            set_condition(status, "FailureTarget", "True", failure[0], failure[1], now,
                          update_field="lastProbeTime")
            killed = await self._kill(key, job, active)
            status["failed"] = int(status.get("failed") or 0) + killed
            active = []
            if not unc_s and not unc_f and not any(is_deleting(p) and _has_finalizer(p)
                                                   for p in pods):
                set_condition(status, "Failed", "True", failure[0], failure[1], now,
                              update_field="lastProbeTime")
                self.recorder.event(job, "Warning", failure[0], failure[1])
        elif success:
            set_condition(status, "SuccessCriteriaMet", "True", "CompletionsReached",
                          MSG_COMPLETE, now, update_field="lastProbeTime")
            if active:
                await self._kill(key, job, active)
                active = []
            if not unc_s and not unc_f:
                set_condition(status, "Complete", "True", "CompletionsReached", MSG_COMPLETE,
                              now, update_field="lastProbeTime")
                status["completionTime"] = fmt_time(now)
                self.recorder.event(job, "Normal", "Completed", "Job completed")
        elif suspended:
            if active:
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
            if self.expectations.satisfied(key):
                wait = await self._manage(key, job, active, succeeded, done_idx, now)
                if wait:
                    requeue.append(wait)

        status["active"] = len([p for p in active if not is_deleting(p)])
        status["ready"] = sum(1 for p in active if is_pod_ready(p))
        status["terminating"] = sum(1 for p in pods if is_deleting(p)
                                    and pod_phase(p) not in ("Succeeded", "Failed"))
        for f in ("succeeded", "failed"):
            if not status.get(f):
                status.pop(f, None)
        if indexed and not status.get("completedIndexes"):
            status.pop("completedIndexes", None)
        if status != (job.get("status") or {}):
            job = await write_status(self.client, JOBS, job, status) or job
        if finished_condition(job) is not None:
            ttl = await self._ttl(job, now)
            if ttl is not None:
                requeue.append(ttl)
        return min(requeue) if requeue else None

    # ------------------------------------------------------------ pods

    def _owned_pods(self, job: Obj) -> list[Obj]:
        uid = job["metadata"]["uid"]
        sel = job["spec"].get("selector")
        out = []
        for p in self.pods.list(job["metadata"].get("namespace")):
            ref = controller_ref(p)
            if ref is not None and ref.get("uid") == uid:
                if sel is None or selector_matches(sel, p["metadata"].get("labels")):
                    out.append(p)
        return out

    async def _manage(self, key: str, job: Obj, active: list[Obj], succeeded: int,
                      done_idx: set[int], now: datetime) -> float | None:
        spec = job["spec"]
        live = [p for p in active if not is_deleting(p)]
        want = want_active(spec, succeeded, len(live))
        indexed = spec.get("completionMode") == "Indexed"
        excess: list[Obj] = []
        if indexed:  # duplicates of an index, or indexes already done / out of range
            seen: set[int] = set()
            for p in sorted(live, key=lambda p: (not is_pod_ready(p), p["metadata"]["name"])):
                idx = pod_index(p)
                comp = spec.get("completions")
                if idx is None or idx in seen or idx in done_idx or (
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
        delay = backoff_delay(n, self.backoff_base, self.backoff_max)
        left = (last + timedelta(seconds=delay) - now).total_seconds()
        if left > 0:
            return left
        count = min(want - len(live), BURST_REPLICAS)
        if indexed:
            idxs: list[int | None] = list(first_pending_indexes(
                int(spec["completions"]), done_idx, {pod_index(p) for p in live} - {None},
                count))
        else:
            idxs = [None] * count
        if not idxs:
            return None
        self.expectations.expect_creations(key, len(idxs))
        ns = job["metadata"].get("namespace")

        async def create(i: int) -> None:
            try:
                made = await self.client.create(PODS, job_pod(job, idxs[i]), namespace=ns)
            except StatusError as e:
                self.expectations.creation_observed(key)
                self.recorder.event(job, "Warning", "FailedCreate", f"Error creating: {e.message}")
                raise
            self.recorder.event(job, "Normal", "SuccessfulCreate",
                                f"Created pod: {made['metadata']['name']}")

        done, err = await slow_start(len(idxs), create)
        if err is not None:
            skipped = len(idxs) - done - 1
            if skipped > 0:
                self.expectations.creation_observed(key, skipped)
            raise err
        return None

    async def _kill(self, key: str, job: Obj, pods: list[Obj]) -> int:
        """Untrack (drop our finalizer) and delete pods; returns how many were deleted."""
        pods = [p for p in pods if not is_deleting(p)]
        if not pods:
            return 0
        await self._strip_finalizers([p for p in pods if _has_finalizer(p)])
        self.expectations.expect_deletions(key, [p["metadata"]["name"] for p in pods])

        async def one(p: Obj) -> int:
            name = p["metadata"]["name"]
            try:
                await self.client.delete(PODS, name, namespace=p["metadata"].get("namespace"))
            except NotFound:
                self.expectations.deletion_observed(key, name)
                return 0
            except StatusError:
                self.expectations.deletion_observed(key, name)
                raise
            self.recorder.event(job, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")
            return 1
        return sum(await asyncio.gather(*(one(p) for p in pods)))

    async def _strip_finalizers(self, pods: list[Obj]) -> set[str]:
        """Remove the tracking finalizer; returns the UIDs now free of it (or gone)."""
        freed: set[str] = set()
        seen: set[str] = set()

        async def one(p: Obj) -> None:
            m = p["metadata"]
            if m["uid"] in seen:
                return
            seen.add(m["uid"])
            fins = [f for f in m.get("finalizers") or () if f != TRACKING_FINALIZER]
            try:
                await self.client.patch(PODS, m["name"], {"metadata": {
                    "finalizers": fins or None, "uid": m["uid"]}}, namespace=m.get("namespace"))
            except (NotFound, Conflict):
                pass
            freed.add(m["uid"])
        await asyncio.gather(*(one(p) for p in pods))
        return freed

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


def _has_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in ((pod.get("metadata") or {}).get("finalizers") or ())


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
