"""One table of CronJob schedules with the answers Kubernetes gives (robfig/cron v3
ParseStandard as kube-apiserver and kube-controller-manager use it), run against BOTH the API
server's validation (a real control plane, through the client and through kubectl) and the
CronJob controller (its parser, next-fire time, and the requeue a real reconcile asks for)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone

import pytest
from tests.fakes import FakeCluster

from vkube.api import errors
from vkube.client.resources import CRONJOBS
from vkube.controllers.workloads.cron import ScheduleError, parse_schedule, validate_schedule
from vkube.controllers.workloads.cronjob import CronJobController

UTC = timezone.utc
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)  # a Thursday; FakeCluster's clock starts here


def at(*a: int) -> datetime:
    return datetime(*a, tzinfo=UTC)


# (schedule, timeZone, first activation strictly after T0) — Kubernetes accepts these
VALID: list[tuple[str, str | None, datetime]] = [
    ("*/5 * * * *", None, at(2026, 1, 1, 12, 5)),
    ("0 * * * *", None, at(2026, 1, 1, 13)),
    ("0 12 * * *", None, at(2026, 1, 2, 12)),  # strictly after: 12:00 itself is not next
    (" 0  0 * * * ", None, at(2026, 1, 2)),  # any whitespace separates fields
    ("5/15 * * * *", None, at(2026, 1, 1, 12, 5)),  # N/step means N-max/step
    ("0 9 * * mon-fri", None, at(2026, 1, 2, 9)),
    ("0 0 ? * sun", None, at(2026, 1, 4)),  # ? is *
    ("30 6 1,15 jan,JUL *", None, at(2026, 1, 15, 6, 30)),
    ("0 0 1 * mon", None, at(2026, 1, 5)),  # day-of-month OR day-of-week when neither is *
    ("0 0 29 2 *", None, at(2028, 2, 29)),
    ("@hourly", None, at(2026, 1, 1, 13)),
    ("@daily", None, at(2026, 1, 2)),
    ("@midnight", None, at(2026, 1, 2)),
    ("@weekly", None, at(2026, 1, 4)),
    ("@monthly", None, at(2026, 2, 1)),
    ("@yearly", None, at(2027, 1, 1)),
    ("@annually", None, at(2027, 1, 1)),
    ("@every 5m", None, at(2026, 1, 1, 12, 5)),
    ("@every 1h30m", None, at(2026, 1, 1, 13, 30)),
    ("@every 90s", None, at(2026, 1, 1, 12, 1, 30)),
    ("@every 1.5h", None, at(2026, 1, 1, 13, 30)),
    ("@every 500ms", None, at(2026, 1, 1, 12, 0, 1)),  # robfig: at least one second
    ("15 10 * * *", "Asia/Tokyo", at(2026, 1, 2, 1, 15)),  # 10:15 JST
    ("0 0 * * *", "America/New_York", at(2026, 1, 2, 5)),
]

# (schedule, timeZone, field, Kubernetes' message) — Kubernetes refuses these
INVALID: list[tuple[str, str | None, str, str]] = [
    ("* * * * * *", None, "spec.schedule", "expected exactly 5 fields, found 6: [* * * * * *]"),
    ("* * * *", None, "spec.schedule", "expected exactly 5 fields, found 4: [* * * *]"),
    ("0 0 L * *", None, "spec.schedule",
     'failed to parse int from L: strconv.Atoi: parsing "L": invalid syntax'),
    ("0 0 * * 5#3", None, "spec.schedule",
     'failed to parse int from 5#3: strconv.Atoi: parsing "5#3": invalid syntax'),
    ("0 0 15W * *", None, "spec.schedule",
     'failed to parse int from 15W: strconv.Atoi: parsing "15W": invalid syntax'),
    ("60 * * * *", None, "spec.schedule", "end of range (60) above maximum (59): 60"),
    ("0 0 0 * *", None, "spec.schedule", "beginning of range (0) below minimum (1): 0"),
    ("0 0 * * 7", None, "spec.schedule", "end of range (7) above maximum (6): 7"),
    ("0 0 * 13 *", None, "spec.schedule", "end of range (13) above maximum (12): 13"),
    ("5-1 * * * *", None, "spec.schedule", "beginning of range (5) beyond end of range (1): 5-1"),
    ("*/0 * * * *", None, "spec.schedule", "step of range should be a positive number: */0"),
    ("1/2/3 * * * *", None, "spec.schedule", "too many slashes: 1/2/3"),
    ("@every 5", None, "spec.schedule",
     'failed to parse duration @every 5: time: missing unit in duration "5"'),
    ("@every 5y", None, "spec.schedule",
     'failed to parse duration @every 5y: time: unknown unit "y" in duration "5y"'),
    ("@every", None, "spec.schedule", "unrecognized descriptor: @every"),
    ("@reboot", None, "spec.schedule", "unrecognized descriptor: @reboot"),
    ("TZ=UTC 0 * * * *", None, "spec.schedule",
     "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
    ("CRON_TZ=Europe/Paris 0 * * * *", None, "spec.schedule",
     "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"),
    ("0 * * * *", "Mars/Olympus", "spec.timeZone", "unknown time zone Mars/Olympus"),
    ("0 * * * *", "../../etc/passwd", "spec.timeZone", "unknown time zone ../../etc/passwd"),
    ("0 * * * *", "Local", "spec.timeZone",
     "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"),
    ("0 * * * *", "", "spec.timeZone", "timeZone must be nil or non-empty string"),
]


def cronjob(name: str, schedule: str, tz: str | None) -> dict:
    spec: dict = {"schedule": schedule, "jobTemplate": {"spec": {"template": {"spec": {
        "restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}}}
    if tz is not None:
        spec["timeZone"] = tz
    return {"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": name, "namespace": "default"}, "spec": spec}


async def test_api_server_validation_gives_kubernetes_answers(control_plane) -> None:
    async with control_plane.client() as c:
        for i, (schedule, tz, _) in enumerate(VALID):
            created = await c.create(CRONJOBS, cronjob(f"ok-{i}", schedule, tz),
                                     namespace="default")
            assert created["spec"]["schedule"] == schedule
        for i, (schedule, tz, field, message) in enumerate(INVALID):
            with pytest.raises(errors.Invalid) as e:
                await c.create(CRONJOBS, cronjob(f"bad-{i}", schedule, tz), namespace="default")
            causes = (e.value.details or {}).get("causes") or []
            assert any(x.get("field") == field and x.get("message", "").endswith(": " + message)
                       for x in causes), (schedule, tz, causes)


async def test_kubectl_sees_the_same_answers(control_plane) -> None:
    def kubectl(*args: str, **kw: object):  # noqa: ANN202 - CompletedProcess
        return asyncio.to_thread(control_plane.kubectl, *args, **kw)

    ok = await kubectl("create", "-f", "-", input=json.dumps(
        cronjob("every", "@every 5m", None)))
    assert "cronjob.batch/every created" in ok.stdout
    bad = await kubectl("create", "-f", "-", check=False, input=json.dumps(
        cronjob("six", "* * * * * *", None)))
    assert bad.returncode != 0
    assert ('spec.schedule: Invalid value: "* * * * * *": expected exactly 5 fields, '
            "found 6: [* * * * * *]") in bad.stderr
    tz = await kubectl("create", "-f", "-", check=False, input=json.dumps(
        cronjob("tz", "0 * * * *", "Mars/Olympus")))
    assert 'spec.timeZone: Invalid value: "Mars/Olympus": unknown time zone Mars/Olympus' \
        in tz.stderr


@pytest.mark.parametrize(("schedule", "tz", "first"), VALID, ids=[v[0] + f" {v[1] or ''}" for v in VALID])
def test_controller_parser_fires_when_kubernetes_would(schedule: str, tz: str | None,
                                                       first: datetime) -> None:
    sched = parse_schedule(schedule, tz)
    assert sched.next(T0) == first
    nxt = sched.next(first)
    assert nxt is not None and nxt > first


@pytest.mark.parametrize(("schedule", "tz", "field", "message"), INVALID,
                         ids=[f"{v[0]} {v[1]}" for v in INVALID])
def test_controller_parser_refuses_what_kubernetes_refuses(schedule: str, tz: str | None,
                                                           field: str, message: str) -> None:
    with pytest.raises(ScheduleError):
        parse_schedule(schedule, tz)
    assert message in validate_schedule(schedule, tz)


async def test_controller_requeues_for_the_first_activation() -> None:
    c = FakeCluster()  # clock at T0
    c.add(CronJobController)
    for i, (schedule, tz, _) in enumerate(VALID):
        await c.client.create(CRONJOBS, cronjob(f"cj-{i}", schedule, tz))
    await c.settle()
    assert c.list("jobs") == []
    for i, (_, _, first) in enumerate(VALID):
        assert c.requeues[f"cronjob:default/cj-{i}"] == pytest.approx(
            (first - T0).total_seconds() + 0.1), VALID[i]


def test_daylight_saving_gap_is_skipped_like_robfig() -> None:
    # 02:30 does not exist in New York on 2026-03-08: robfig's walk skips that day
    s = parse_schedule("30 2 * * *", "America/New_York")
    t = s.next(datetime(2026, 3, 7, 12, tzinfo=UTC))
    assert t is not None and (t.month, t.day, t.hour, t.minute) == (3, 9, 2, 30)
    assert t.astimezone(UTC) == datetime(2026, 3, 9, 6, 30, tzinfo=UTC)  # EDT, UTC-4
