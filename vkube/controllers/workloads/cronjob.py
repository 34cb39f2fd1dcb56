"""CronJob: create a Job per activation of ``spec.schedule`` (pkg/controller/cronjob, v2).

Reads time only from ``mgr.clock()`` so tests control it. Job names are derived from the
scheduled minute, which makes creation idempotent; ``status.active`` and
``lastScheduleTime`` record what was started, and finished jobs are trimmed to the history
limits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from vkube.api.errors import AlreadyExists, NotFound
from vkube.client.resources import CRONJOBS, JOBS
from vkube.controllers.runtime import Controller
from vkube.controllers.vanished import quiet_when_vanished
from vkube.controllers.workloads._common import (
    Obj,
    controller_ref,
    deep,
    fmt_time,
    is_deleting,
    owner_ref,
    parse_time,
    split_key,
    write_status,
)
from vkube.controllers.workloads.cron import (
    MAX_MISSED,
    ScheduleError,
    UnknownTimeZone,
    job_name,
    most_recent,
    parse_schedule,
    rfc3339_zoned,
)
from vkube.controllers.workloads.job_policy import finished_condition

SCHEDULED_TIMESTAMP = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def job_from_template(cj: Obj, scheduled: datetime) -> Obj:
    tmpl = cj["spec"].get("jobTemplate") or {}
    tmeta = tmpl.get("metadata") or {}
    annotations = dict(tmeta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP] = rfc3339_zoned(scheduled)
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": job_name(cj["metadata"]["name"], scheduled),
                     "namespace": cj["metadata"].get("namespace"),
                     "labels": dict(tmeta.get("labels") or {}), "annotations": annotations,
                     "ownerReferences": [owner_ref(cj)]},
        "spec": deep(tmpl.get("spec") or {}),
    }


def _job_ref(job: Obj) -> Obj:
    m = job["metadata"]
    return {"apiVersion": "batch/v1", "kind": "Job", "name": m["name"],
            "namespace": m.get("namespace"), "uid": m["uid"],
            "resourceVersion": m.get("resourceVersion")}


class CronJobController(Controller):
    name = "cronjob"
    workers = 2

    def setup(self) -> None:
        self.owners = self.mgr.informer(CRONJOBS)
        self.jobs = self.mgr.informer(JOBS)
        self.owners.add_handler(lambda t, o, old: self.enqueue(o))
        self.jobs.add_handler(self._on_job)

    def _on_job(self, type_: str, job: Obj, old: Obj | None) -> None:
        ref = controller_ref(job)
        if ref is not None and ref.get("kind") == "CronJob":
            self.queue.add(f"{job['metadata'].get('namespace')}/{ref['name']}")

    @quiet_when_vanished()
    async def reconcile(self, key: str) -> float | None:
        ns, name = split_key(key)
        cj = self.owners.get(name, ns)
        if cj is None:
            return None
        now = self.mgr.clock()
        uid = cj["metadata"]["uid"]
        children = [j for j in self.jobs.list(ns)
                    if (controller_ref(j) or {}).get("uid") == uid]
        status = deep(cj.get("status") or {})
        await self._track_children(cj, status, children)
        await self._cleanup_history(cj, children)
        requeue: float | None = None
        if not is_deleting(cj):
            requeue = await self._maybe_start(cj, status, now)
        if not status.get("active"):
            status.pop("active", None)
        if status != (cj.get("status") or {}):
            await write_status(self.client, CRONJOBS, cj, status)
        return requeue

    async def _track_children(self, cj: Obj, status: Obj, children: list[Obj]) -> None:
        active = list(status.get("active") or [])
        uids = {r.get("uid") for r in active}
        for j in children:
            juid, finished = j["metadata"]["uid"], finished_condition(j)
            if juid not in uids and finished is None:
                active.append(_job_ref(j))
                uids.add(juid)
            elif juid in uids and finished is not None:
                active = [r for r in active if r.get("uid") != juid]
                self.recorder.event(cj, "Normal", "SawCompletedJob",
                                    f"Saw completed job: {j['metadata']['name']}, "
                                    f"status: {finished['type']}")
            if finished is not None and finished["type"] == "Complete":
                done = parse_time((j.get("status") or {}).get("completionTime"))
                last = parse_time(status.get("lastSuccessfulTime"))
                if done is not None and (last is None or done > last):
                    status["lastSuccessfulTime"] = fmt_time(done)
        present = {j["metadata"]["uid"] for j in children}
        for ref in list(active):
            if ref.get("uid") in present:
                continue
            try:  # the cache may lag behind a job we just created
                j = await self.client.get(JOBS, ref["name"], namespace=cj["metadata"].get(
                    "namespace"))
                if j["metadata"]["uid"] == ref.get("uid"):
                    continue
            except NotFound:
                pass
            self.recorder.event(cj, "Normal", "MissingJob", f"Active job went missing: {ref['name']}")
            active = [r for r in active if r.get("uid") != ref.get("uid")]
        status["active"] = active

    async def _maybe_start(self, cj: Obj, status: Obj, now: datetime) -> float | None:
        spec = cj["spec"]
        try:
            sched = parse_schedule(spec.get("schedule", ""), spec.get("timeZone"))
        except ScheduleError as e:
            reason = "UnknownTimeZone" if isinstance(e, UnknownTimeZone) else "UnparseableSchedule"
            self.recorder.event(cj, "Warning", reason, str(e))
            return None
        if spec.get("suspend"):
            return None
        earliest = parse_time(status.get("lastScheduleTime")) or parse_time(
            cj["metadata"].get("creationTimestamp")) or now
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None:
            earliest = max(earliest, now - timedelta(seconds=int(deadline)))
        scheduled, missed = most_recent(sched, earliest, now)
        nxt = sched.next(now)
        requeue = None if nxt is None else max((nxt - now).total_seconds(), 0.0) + 0.1
        if missed > MAX_MISSED:
            self.recorder.event(cj, "Warning", "TooManyMissedTimes",
                                f"too many missed start times: {missed}. Set or decrease "
                                ".spec.startingDeadlineSeconds or check clock skew")
        if scheduled is None:
            return requeue
        if deadline is not None and scheduled + timedelta(seconds=int(deadline)) < now:
            self.recorder.event(cj, "Warning", "MissSchedule",
                                f"Missed scheduled time to start a job: {rfc3339_zoned(scheduled)}")
            return requeue
        name = job_name(cj["metadata"]["name"], scheduled)
        active = status.get("active") or []
        last = parse_time(status.get("lastScheduleTime"))
        if any(r.get("name") == name for r in active) or (last is not None and last == scheduled):
            return requeue
        policy = spec.get("concurrencyPolicy") or "Allow"
        if policy == "Forbid" and active:
            self.recorder.event(cj, "Normal", "JobAlreadyActive",
                                "Not starting job because prior execution is running and "
                                "concurrency policy is Forbid")
            return requeue
        if policy == "Replace":
            for ref in list(active):
                await self._delete_job(cj, ref["name"])
                active = [r for r in active if r.get("uid") != ref.get("uid")]
            status["active"] = active
        try:
            job = await self.client.create(JOBS, job_from_template(cj, scheduled),
                                           namespace=cj["metadata"].get("namespace"))
        except AlreadyExists:
            # Ours from an earlier attempt whose status write was lost (a conflict): record it
            # now, or lastScheduleTime would never name this run.
            job = await self._existing_child(cj, name)
            if job is None:
                return requeue
        else:
            self.recorder.event(cj, "Normal", "SuccessfulCreate",
                                f"Created job {job['metadata']['name']}")
        if finished_condition(job) is None and not any(
                r.get("uid") == job["metadata"]["uid"] for r in active):
            active = active + [_job_ref(job)]
        status["active"] = active
        status["lastScheduleTime"] = fmt_time(scheduled)
        return requeue

    async def _existing_child(self, cj: Obj, name: str) -> Obj | None:
        """The Job ``name`` if this CronJob controls it."""
        try:
            job = await self.client.get(JOBS, name, namespace=cj["metadata"].get("namespace"))
        except NotFound:
            return None
        ref = controller_ref(job) or {}
        return job if ref.get("uid") == cj["metadata"]["uid"] else None

    async def _delete_job(self, cj: Obj, name: str) -> None:
        try:
            await self.client.delete(JOBS, name, namespace=cj["metadata"].get("namespace"),
                                     propagation_policy="Background")
        except NotFound:
            return
        self.recorder.event(cj, "Normal", "SuccessfulDelete", f"Deleted job {name}")

    async def _cleanup_history(self, cj: Obj, children: list[Obj]) -> None:
        spec = cj["spec"]
        done: dict[str, list[Obj]] = {"Complete": [], "Failed": []}
        for j in children:
            c = finished_condition(j)
            if c is not None and not is_deleting(j):
                done[c["type"]].append(j)
        for kind, limit in (("Complete", spec.get("successfulJobsHistoryLimit", 3)),
                            ("Failed", spec.get("failedJobsHistoryLimit", 1))):
            if limit is None:
                continue
            jobs = sorted(done[kind], key=_start_key)
            for j in jobs[:max(len(jobs) - int(limit), 0)]:
                await self._delete_job(cj, j["metadata"]["name"])


def _start_key(job: Obj) -> tuple[str, str]:
    st = (job.get("status") or {}).get("startTime") or job["metadata"].get(
        "creationTimestamp") or ""
    return st, job["metadata"]["name"]


__all__ = ["CronJobController", "job_from_template", "SCHEDULED_TIMESTAMP"]
