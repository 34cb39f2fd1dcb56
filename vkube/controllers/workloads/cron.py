"""What the CronJob controller computes from a schedule: the schedule itself (parsed by
``vkube.api.cron`` — the same parser the API server validates with, so the two can never
disagree), the most recent missed activation, and the deterministic Job name."""

from __future__ import annotations

from datetime import datetime, timedelta

from vkube.api import cron
from vkube.api.cron import CronError as ScheduleError
from vkube.api.cron import Schedule

__all__ = ["MAX_MISSED", "Schedule", "ScheduleError", "UnknownTimeZone", "job_name",
           "most_recent", "parse_schedule", "rfc3339_zoned", "validate_schedule"]

MAX_MISSED = 100  # more missed start times than this is "too many" (a clock skew hint)


class UnknownTimeZone(ScheduleError):
    """``spec.timeZone`` names no zone this process knows."""


def parse_schedule(schedule: str, tz_name: str | None = None) -> Schedule:
    """The schedule of a CronJob (``formatSchedule`` + ``cron.ParseStandard`` upstream): the
    zone comes from ``spec.timeZone``; a ``TZ=`` prefix is refused as validation refuses it."""
    problems = cron.validate(schedule or "")
    if problems:
        raise ScheduleError(f'unparseable schedule: "{schedule}" : {problems[0]}')
    try:
        tz = cron.load_time_zone(tz_name)
    except ScheduleError as e:
        raise UnknownTimeZone(f'invalid timeZone: "{tz_name}": {e}') from None
    return cron.parse(schedule, tz)


def validate_schedule(schedule: str, tz_name: str | None = None) -> list[str]:
    """Kubernetes' messages for ``spec.schedule`` and ``spec.timeZone``; empty when valid."""
    out = cron.validate(schedule or "")
    tz_problem = cron.validate_time_zone(tz_name)
    return out + ([tz_problem] if tz_problem else [])


def most_recent(sched: Schedule, earliest: datetime, now: datetime
                ) -> tuple[datetime | None, int]:
    """The latest activation in (earliest, now] and how many were missed (counted up to just
    above MAX_MISSED), as ``mostRecentScheduleTime`` upstream."""
    t = sched.next(earliest)
    last, count = None, 0
    while t is not None and t <= now:
        last, count = t, count + 1
        if count > MAX_MISSED:
            return _latest_before(sched, last, now), count
        t = sched.next(t)
    return last, count


def _latest_before(sched: Schedule, known: datetime, now: datetime) -> datetime:
    """The last activation at or before ``now``, given one (``known``) that is: look back a
    window that doubles until it holds an activation, so this costs O(log) windows and not
    one step per missed activation (years of them after a clock jump)."""
    window = timedelta(minutes=1)
    while True:
        start = max(known, now - window)
        last, t = None, sched.next(start - timedelta(seconds=1))
        while t is not None and t <= now:
            last, t = t, sched.next(t)
        if last is not None:
            return last
        window *= 2


def job_name(cronjob_name: str, scheduled: datetime) -> str:
    """``<cronjob>-<minutes since the epoch>``: deterministic per activation, so a retry or a
    second controller can never start the same run twice."""
    return f"{cronjob_name}-{int(scheduled.timestamp()) // 60}"


def rfc3339_zoned(t: datetime) -> str:
    """Go's ``Format(time.RFC3339)`` of a time in its own zone (``Z`` for UTC, else the offset):
    the scheduled-timestamp annotation is written in the CronJob's ``timeZone``."""
    s = t.replace(microsecond=0).isoformat()
    return s[:-6] + "Z" if s.endswith("+00:00") else s
