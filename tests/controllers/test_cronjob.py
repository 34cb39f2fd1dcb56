"""CronJob controller (with an injected clock) and the cron schedule helpers."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from tests.fakes import FakeCluster

from vkube.client.resources import CRONJOBS, JOBS
from vkube.controllers.workloads.cron import (
    ScheduleError, job_name, most_recent, parse_schedule, validate_schedule,
)
from vkube.controllers.workloads.cronjob import SCHEDULED_TIMESTAMP, CronJobController

UTC = timezone.utc


def cronjob(name: str = "tick", schedule: str = "*/5 * * * *", **spec) -> dict:
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"schedule": schedule, "jobTemplate": {
                "metadata": {"labels": {"app": name}},
                "spec": {"template": {"spec": {"restartPolicy": "Never",
                                               "containers": [{"name": "c", "image": "busybox"}]}}}},
                **spec}}


async def finish(c: FakeCluster, name: str, ctype: str = "Complete") -> None:
    j = c.get("jobs", name)
    j["status"] = {"conditions": [{"type": ctype, "status": "True"}],
                   "startTime": j["metadata"]["creationTimestamp"],
                   "completionTime": "2026-01-01T12:06:00Z" if ctype == "Complete" else None}
    if ctype != "Complete":
        j["status"].pop("completionTime")
    await c.client.update(JOBS, j, subresource="status")


async def test_creates_job_per_activation() -> None:
    c = FakeCluster()  # clock at 12:00:00 exactly
    c.add(CronJobController)
    await c.client.create(CRONJOBS, cronjob())
    await c.settle()
    assert c.list("jobs") == []  # created at 12:00 — first activation is 12:05
    assert c.requeues["cronjob:default/tick"] == pytest.approx(300.1)
    c.advance(300)
    c.kick()
    await c.settle()
    [j] = c.list("jobs")
    sched = datetime(2026, 1, 1, 12, 5, tzinfo=UTC)
    assert j["metadata"]["name"] == f"tick-{int(sched.timestamp()) // 60}"
    assert j["metadata"]["annotations"][SCHEDULED_TIMESTAMP] == "2026-01-01T12:05:00Z"
    assert j["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
    st = c.get("cronjobs", "tick")["status"]
    assert st["lastScheduleTime"] == "2026-01-01T12:05:00Z"
    assert [r["name"] for r in st["active"]] == [j["metadata"]["name"]]
    # idempotent: running again in the same minute creates nothing
    c.kick()
    await c.settle()
    assert len(c.list("jobs")) == 1
    await finish(c, j["metadata"]["name"])
    await c.settle()
    st = c.get("cronjobs", "tick")["status"]
    assert "active" not in st and st["lastSuccessfulTime"] == "2026-01-01T12:06:00Z"
    assert "SawCompletedJob" in c.recorder.reasons()


async def test_forbid_and_replace() -> None:
    c = FakeCluster()
    c.add(CronJobController)
    await c.client.create(CRONJOBS, cronjob(concurrencyPolicy="Forbid"))
    c.advance(300)
    await c.settle()
    assert len(c.list("jobs")) == 1
    c.advance(300)
    c.kick()
    await c.settle()
    assert len(c.list("jobs")) == 1 and "JobAlreadyActive" in c.recorder.reasons()
    await c.client.patch(CRONJOBS, "tick", {"spec": {"concurrencyPolicy": "Replace"}},
                         namespace="default")
    c.advance(300)
    await c.settle()
    jobs = c.list("jobs")
    assert len(jobs) == 1 and jobs[0]["metadata"]["annotations"][SCHEDULED_TIMESTAMP] \
        == "2026-01-01T12:15:00Z"
    assert "SuccessfulDelete" in c.recorder.reasons()


async def test_starting_deadline_and_suspend() -> None:
    c = FakeCluster()
    c.add(CronJobController)
    await c.client.create(CRONJOBS, cronjob(startingDeadlineSeconds=10, suspend=True))
    c.advance(301)
    await c.settle()
    assert c.list("jobs") == []
    await c.client.patch(CRONJOBS, "tick", {"spec": {"suspend": False}}, namespace="default")
    c.advance(100)  # 12:06:41: the 12:05 activation is past its 10s deadline
    await c.settle()
    assert c.list("jobs") == []
    c.advance(200)  # 12:10:01: within the deadline
    c.kick()
    await c.settle()
    assert len(c.list("jobs")) == 1


async def test_history_limits() -> None:
    c = FakeCluster()
    c.add(CronJobController)
    await c.client.create(CRONJOBS, cronjob(successfulJobsHistoryLimit=1,
                                            failedJobsHistoryLimit=0))
    names = []
    for i in range(3):
        c.advance(300)
        c.kick()
        await c.settle()
        name = sorted(j["metadata"]["name"] for j in c.list("jobs"))[-1]
        names.append(name)
        await finish(c, name, "Complete" if i < 2 else "Failed")
        await c.settle()
    left = [j["metadata"]["name"] for j in c.list("jobs")]
    assert left == [names[1]]


async def test_unparseable_schedule_event() -> None:
    c = FakeCluster()
    c.add(CronJobController)
    await c.client.create(CRONJOBS, cronjob(schedule="TZ=UTC * * * * *"))
    await c.settle()
    assert "UnparseableSchedule" in c.recorder.reasons()
    await c.client.create(CRONJOBS, cronjob(name="tz", timeZone="Mars/Olympus"))
    await c.settle()
    assert "UnknownTimeZone" in c.recorder.reasons()


def test_schedule_parsing() -> None:
    assert validate_schedule("*/5 * * * *") == []
    assert validate_schedule("@hourly") == []
    assert validate_schedule("@every 1h30m") == []
    assert validate_schedule("* * * * * *")  # six fields are not standard cron
    assert validate_schedule("TZ=Europe/Paris 0 * * * *")
    assert validate_schedule("CRON_TZ=UTC 0 * * * *")
    with pytest.raises(ScheduleError):
        parse_schedule("0 * * * *", "No/Such_Zone")


def test_time_zone_and_missed() -> None:
    s = parse_schedule("0 9 * * *", "Asia/Tokyo")
    t = s.next(datetime(2026, 1, 1, 0, 0, tzinfo=UTC))
    assert t.astimezone(UTC) == datetime(2026, 1, 1, 0, 0, tzinfo=UTC) + timedelta(days=1) \
        or t.hour == 9
    assert t.utcoffset() == timedelta(hours=9)
    m = parse_schedule("* * * * *")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    last, n = most_recent(m, start, start + timedelta(minutes=3))
    assert n == 3 and last == start + timedelta(minutes=3)
    last, n = most_recent(m, start, start + timedelta(days=1))
    assert n > 100 and last == start + timedelta(days=1)
    e = parse_schedule("@every 90m")
    assert e.next(start) == start + timedelta(minutes=90)
    assert job_name("x", start) == f"x-{int(start.timestamp()) // 60}"


async def test_resync_writes_nothing_between_activations() -> None:
    c = FakeCluster()
    c.add(CronJobController)
    await c.client.create(CRONJOBS, cronjob())
    c.advance(300)
    await c.settle()
    c.advance(30)
    c.client.calls.clear()
    c.kick()
    await c.settle()
    assert c.client.calls == []


async def test_stale_cache_does_not_lose_last_schedule_time() -> None:
    """The Job's ADDED event can reach the controller before its own status write does; the
    reconcile that follows sees a CronJob without lastScheduleTime. Its status write must fail
    (a Conflict, retried from fresh state) rather than overwrite the fresh status."""
    c = FakeCluster()
    c.add(CronJobController)
    await c.client.create(CRONJOBS, cronjob())
    await c.settle()
    c.freeze("cronjobs")
    c.advance(300)
    c.kick()
    await c.settle()
    assert len(c.list("jobs")) == 1
    c.thaw("cronjobs")
    await c.settle()
    [j] = c.list("jobs")
    st = c.get("cronjobs", "tick")["status"]
    assert st["lastScheduleTime"] == "2026-01-01T12:05:00Z"
    assert [r["name"] for r in st["active"]] == [j["metadata"]["name"]]


async def test_job_left_by_a_lost_status_write_is_recorded() -> None:
    """A Job created by an earlier attempt whose status write was lost: creating it again
    answers AlreadyExists, and the controller records the run instead of forgetting it."""
    c = FakeCluster()
    c.add(CronJobController)
    await c.client.create(CRONJOBS, cronjob())
    c.freeze("jobs")  # the cache will not have seen the Job
    c.advance(300)
    await c.settle()
    [j] = c.list("jobs")
    cj = c.get("cronjobs", "tick")
    await c.client.update(CRONJOBS, dict(cj, status={}), subresource="status")
    await c.settle()
    st = c.get("cronjobs", "tick")["status"]
    assert st["lastScheduleTime"] == "2026-01-01T12:05:00Z"
    assert [r["uid"] for r in st["active"]] == [j["metadata"]["uid"]]
    assert c.recorder.reasons().count("SuccessfulCreate") == 1
    assert len(c.list("jobs")) == 1
