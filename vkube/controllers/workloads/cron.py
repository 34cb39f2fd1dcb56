"""Cron schedules as Kubernetes' CronJob controller reads them (robfig/cron ParseStandard):
five fields or a descriptor (``@hourly``, ``@every 90m`` …), evaluated in ``spec.timeZone``;
``TZ=``/``CRON_TZ=`` prefixes are refused. Pure functions over datetimes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from croniter.croniter import CroniterBadDateError

MAX_MISSED = 100  # more missed start times than this is "too many" (a clock skew hint)
_DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                "@hourly": "0 * * * *"}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(h|m|s|ms)")


class ScheduleError(ValueError):
    """An unparseable schedule or unknown time zone (message as Kubernetes words it)."""


class UnknownTimeZone(ScheduleError):
    pass


def _parse_duration(s: str) -> timedelta:
    total, pos = 0.0, 0
    unit = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    for m in _DURATION.finditer(s):
        if m.start() != pos:
            break
        total += float(m.group(1)) * unit[m.group(2)]
        pos = m.end()
    if pos != len(s) or total <= 0:
        raise ScheduleError(f"failed to parse duration @every {s}")
    return timedelta(seconds=max(int(total), 1))


@dataclass(frozen=True)
class Schedule:
    expr: str | None  # a 5-field cron expression, or None for a constant delay
    every: timedelta | None
    tz: tzinfo

    def next(self, t: datetime) -> datetime | None:
        """The first activation strictly after ``t`` (None if the schedule never fires)."""
        t = t.astimezone(self.tz)
        if self.every is not None:
            return t.replace(microsecond=0) + self.every
        try:
            return croniter(self.expr, t).get_next(datetime)
        except CroniterBadDateError:
            return None

    def prev_or_at(self, t: datetime) -> datetime | None:
        if self.every is not None:
            return None
        try:
            return croniter(self.expr, t.astimezone(self.tz) + timedelta(seconds=1)).get_prev(
                datetime)
        except CroniterBadDateError:
            return None


def time_zone(name: str | None) -> tzinfo:
    if not name:
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise UnknownTimeZone(f'invalid timeZone: "{name}": {e}') from None


def parse_schedule(schedule: str, tz_name: str | None = None) -> Schedule:
    s = (schedule or "").strip()
    if s.startswith(("TZ=", "CRON_TZ=")) or " TZ=" in s:
        raise ScheduleError(f'unparseable schedule: "{schedule}" : TZ and CRON_TZ are not '
                            "supported, use .spec.timeZone")
    tz = time_zone(tz_name)
    if s.startswith("@every "):
        return Schedule(None, _parse_duration(s[len("@every "):].strip()), tz)
    expr = _DESCRIPTORS.get(s, s)
    if expr.startswith("@") or len(expr.split()) != 5 or not croniter.is_valid(expr):
        raise ScheduleError(f'unparseable schedule: "{schedule}" : expected exactly 5 fields')
    return Schedule(expr, None, tz)


def validate_schedule(schedule: str, tz_name: str | None = None) -> list[str]:
    """Messages for an invalid spec.schedule / spec.timeZone (empty when valid); for the API
    server's CronJob validation as well as for the controller."""
    try:
        parse_schedule(schedule, tz_name)
    except ScheduleError as e:
        return [str(e)]
    return []


def most_recent(sched: Schedule, earliest: datetime, now: datetime
                ) -> tuple[datetime | None, int]:
    """The latest activation in (earliest, now] and how many were missed (capped just above
    MAX_MISSED), as mostRecentScheduleTime."""
    t = sched.next(earliest)
    last, count = None, 0
    while t is not None and t <= now:
        last, count = t, count + 1
        if count > MAX_MISSED:
            jump = sched.prev_or_at(now)
            if jump is not None:
                return jump, count
            while t is not None and t <= now:  # constant delay: arithmetic would do, this is rare
                last, t = t, sched.next(t)
            return last, count
        t = sched.next(t)
    return last, count


def job_name(cronjob_name: str, scheduled: datetime) -> str:
    """``<cronjob>-<minutes since the epoch>``: deterministic per activation, so a retry or a
    second controller can never start the same run twice."""
    return f"{cronjob_name}-{int(scheduled.timestamp()) // 60}"


def rfc3339(t: datetime) -> str:
    s = t.replace(microsecond=0).isoformat()
    return s[:-6] + "Z" if s.endswith("+00:00") else s
