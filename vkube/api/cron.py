"""Cron schedules exactly as Kubernetes reads them: robfig/cron v3's ``ParseStandard`` (what
kube-apiserver validates ``spec.schedule`` with and kube-controller-manager fires on), plus the
CronJob rules around it (``spec.timeZone``; ``TZ=``/``CRON_TZ=`` refused in the schedule).

Five fields (minute hour day-of-month month day-of-week; ``*``/``?``, ``a-b``, ``/step``, lists,
``jan``-``dec`` and ``sun``-``sat``), or a descriptor (``@yearly`` … ``@hourly``,
``@every DURATION`` in Go's duration syntax). ``L``, ``#``, ``W`` and a seconds field are
refused, as upstream refuses them. Error messages are robfig's, word for word, because
``kubectl`` users see them in the Invalid status. Pure: no I/O, no clocks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["CronError", "Every", "Schedule", "Spec", "parse", "parse_duration", "validate",
           "validate_time_zone", "load_time_zone"]

UTC = timezone.utc
_STAR = 1 << 63  # robfig's starBit: the field was ``*`` or ``?`` (day matching depends on it)
_MONTHS = {m: i + 1 for i, m in enumerate(
    "jan feb mar apr may jun jul aug sep oct nov dec".split())}
_DAYS = {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}
# (min, max, names) per field, in spec order
_BOUNDS = ((0, 59, None), (0, 23, None), (1, 31, None), (1, 12, _MONTHS), (0, 6, _DAYS))
_DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
                "@hourly": "0 * * * *"}
_TZ_CHARS = re.compile(r"^[A-Za-z.\-_0-9+]{1,14}\Z")  # Kubernetes' validTimeZoneCharacters


class CronError(ValueError):
    """A schedule robfig/cron refuses; the message is robfig's."""


# -- parsing -------------------------------------------------------------------------------------

def _atoi(expr: str) -> int:
    """Go's ``strconv.Atoi`` as robfig's ``mustParseInt`` uses it."""
    if not re.fullmatch(r"[+-]?[0-9]+", expr):
        raise CronError(f'failed to parse int from {expr}: strconv.Atoi: parsing "{expr}": '
                        "invalid syntax")
    num = int(expr)
    if num < 0:
        raise CronError(f"negative number ({num}) not allowed: {expr}")
    return num


def _int_or_name(expr: str, names: dict[str, int] | None) -> int:
    if names is not None and expr.lower() in names:
        return names[expr.lower()]
    return _atoi(expr)


def _range_bits(expr: str, lo: int, hi: int, names: dict[str, int] | None) -> int:
    """robfig's ``getRange``: ``*``/``?``, ``N``, ``N-M``, each optionally ``/STEP``."""
    range_and_step = expr.split("/")
    low_high = range_and_step[0].split("-")
    extra = 0
    if low_high[0] in ("*", "?"):
        start, end, extra = lo, hi, _STAR
    else:
        start = _int_or_name(low_high[0], names)
        if len(low_high) == 1:
            end = start
        elif len(low_high) == 2:
            end = _int_or_name(low_high[1], names)
        else:
            raise CronError(f"too many hyphens: {expr}")
    if len(range_and_step) == 1:
        step = 1
    elif len(range_and_step) == 2:
        step = _atoi(range_and_step[1])
        if len(low_high) == 1:
            end = hi  # "N/step" means "N-max/step"
        if step > 1:
            extra = 0
    else:
        raise CronError(f"too many slashes: {expr}")
    if start < lo:
        raise CronError(f"beginning of range ({start}) below minimum ({lo}): {expr}")
    if end > hi:
        raise CronError(f"end of range ({end}) above maximum ({hi}): {expr}")
    if start > end:
        raise CronError(f"beginning of range ({start}) beyond end of range ({end}): {expr}")
    if step == 0:
        raise CronError(f"step of range should be a positive number: {expr}")
    bits = 0
    for i in range(start, end + 1, step):
        bits |= 1 << i
    return bits | extra


def _field_bits(field: str, bounds: tuple[int, int, dict[str, int] | None]) -> int:
    bits = 0
    for expr in (e for e in field.split(",") if e):  # Go's FieldsFunc drops empty parts
        bits |= _range_bits(expr, *bounds)
    return bits


_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
          "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_DUR_PART = re.compile(r"([0-9]*)(\.[0-9]*)?([^0-9.]*)")


def parse_duration(s: str) -> timedelta:
    """Go's ``time.ParseDuration`` (``1h30m``, ``1.5h``, ``90s``, ``-2m``, ``0``)."""
    rest = s[1:] if s[:1] in ("+", "-") else s
    if rest == "0":
        return timedelta(0)
    if not rest:
        raise CronError(f'time: invalid duration "{s}"')
    total = 0.0
    while rest:
        m = _DUR_PART.match(rest)
        assert m is not None  # every group may be empty
        whole, frac, unit = m.group(1), (m.group(2) or "")[1:], m.group(3)
        if not whole and not frac:
            raise CronError(f'time: invalid duration "{s}"')
        if not unit:
            raise CronError(f'time: missing unit in duration "{s}"')
        if unit not in _UNITS:
            raise CronError(f'time: unknown unit "{unit}" in duration "{s}"')
        scale = _UNITS[unit]
        total += int(whole or "0") * scale + (float("0." + frac) * scale if frac else 0.0)
        rest = rest[m.end():]
    ns = -int(total) if s[:1] == "-" else int(total)
    return timedelta(microseconds=ns / 1000)


@dataclass(frozen=True)
class Spec:
    """A five-field schedule as bit sets (robfig's SpecSchedule; seconds fixed at 0)."""

    minute: int
    hour: int
    dom: int
    month: int
    dow: int
    tz: tzinfo = UTC

    def _day_matches(self, t: datetime) -> bool:
        dom_ok = bool(1 << t.day & self.dom)
        dow_ok = bool(1 << ((t.weekday() + 1) % 7) & self.dow)
        if self.dom & _STAR or self.dow & _STAR:
            return dom_ok and dow_ok
        return dom_ok or dow_ok

    def next(self, after: datetime) -> datetime | None:
        """The first activation strictly after ``after`` (robfig's ``Next``, walking wall-clock
        time in the schedule's zone); None if there is none within five years."""
        loc = self.tz
        # one stage per field, coarsest first: does t match, t cut down to the field's start,
        # t one step on, and whether that step wrapped into the next larger unit
        stages: tuple[tuple[Callable[[datetime], object], ...], ...] = (
            (lambda t: 1 << t.month & self.month, lambda t: datetime(t.year, t.month, 1, tzinfo=loc),
             lambda t: _add_month(t, loc), lambda t: t.month == 1),
            (self._day_matches, lambda t: datetime(t.year, t.month, t.day, tzinfo=loc),
             lambda t: _next_midnight(t, loc), lambda t: t.day == 1),
            (lambda t: 1 << t.hour & self.hour,
             lambda t: datetime(t.year, t.month, t.day, t.hour, tzinfo=loc),
             lambda t: _add(t, timedelta(hours=1)), lambda t: t.hour == 0),
            (lambda t: 1 << t.minute & self.minute, lambda t: t.replace(second=0),
             lambda t: _add(t, timedelta(minutes=1)), lambda t: t.minute == 0),
            (lambda t: t.second == 0, lambda t: t,  # the standard parser's seconds are "0"
             lambda t: _add(t, timedelta(seconds=1)), lambda t: t.second == 0),
        )
        t = _add(after.astimezone(loc).replace(microsecond=0), timedelta(seconds=1))
        added = False  # robfig's flag: cut t down only on the first step of all
        year_limit = t.year + 5
        while t.year <= year_limit:  # each pass is robfig's "WRAP:"
            for matches, truncate, step, wrapped in stages:
                while not matches(t):
                    if not added:
                        added = True
                        t = truncate(t)  # type: ignore[assignment]
                    t = step(t)  # type: ignore[assignment]
                    if wrapped(t):
                        break
                else:
                    continue  # this field matches: on to the next
                break  # wrapped: start over from the month
            else:
                return t
        return None


def _add(t: datetime, d: timedelta) -> datetime:
    """Absolute-time addition (Go's ``Time.Add``), staying in ``t``'s zone."""
    tz = t.tzinfo
    assert tz is not None
    return (t.astimezone(UTC) + d).astimezone(tz)


def _next_midnight(t: datetime, loc: tzinfo) -> datetime:
    """Midnight of the next calendar day (Go's ``AddDate(0, 0, 1)`` plus robfig's DST fix)."""
    d = t.date() + timedelta(days=1)
    return datetime(d.year, d.month, d.day, tzinfo=loc)


def _add_month(t: datetime, loc: tzinfo) -> datetime:
    y, m = (t.year + 1, 1) if t.month == 12 else (t.year, t.month + 1)
    return datetime(y, m, 1, tzinfo=loc)


@dataclass(frozen=True)
class Every:
    """``@every DURATION``: a constant delay, at least a second, whole seconds (robfig)."""

    delay: timedelta

    def next(self, after: datetime) -> datetime | None:
        return after.replace(microsecond=0) + self.delay


Schedule = Spec | Every


def load_time_zone(name: str | None) -> tzinfo:
    """A ``spec.timeZone`` as a zone (UTC when unset, as kube-controller-manager runs)."""
    if name is None:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise CronError(f"unknown time zone {name}") from None


def parse(schedule: str, tz: tzinfo = UTC) -> Schedule:
    """robfig/cron v3 ``ParseStandard``. A ``TZ=``/``CRON_TZ=`` prefix is parsed as robfig does
    (CronJob validation refuses it separately); ``tz`` is the zone otherwise."""
    if not schedule:
        raise CronError("empty spec string")
    if schedule.startswith(("TZ=", "CRON_TZ=")):
        name, _, schedule = schedule[schedule.index("=") + 1:].partition(" ")
        try:
            tz = load_time_zone(name)
        except CronError as e:
            raise CronError(f"provided bad location {name}: {e}") from None
        schedule = schedule.strip()
    if schedule.startswith("@"):
        if schedule in _DESCRIPTORS:
            return parse(_DESCRIPTORS[schedule], tz)
        if schedule.startswith("@every "):
            try:
                d = parse_duration(schedule[len("@every "):])
            except CronError as e:
                raise CronError(f"failed to parse duration {schedule}: {e}") from None
            if d < timedelta(seconds=1):
                d = timedelta(seconds=1)
            return Every(timedelta(seconds=int(d.total_seconds())))
        raise CronError(f"unrecognized descriptor: {schedule}")
    fields = schedule.split()
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: [{' '.join(fields)}]")
    bits = [_field_bits(f, b) for f, b in zip(fields, _BOUNDS)]
    return Spec(*bits, tz=tz)


def validate_time_zone(tz: object) -> str | None:
    """Kubernetes' ``validateTimeZone`` message for ``spec.timeZone``, or None when valid."""
    if tz is None:
        return None
    if not isinstance(tz, str) or not tz:
        return "timeZone must be nil or non-empty string"
    for part in tz.split("/"):
        if part in (".", "..") or part.startswith("-") or not _TZ_CHARS.match(part):
            return f"unknown time zone {tz}"
    if tz.lower() == "local":
        return "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones"
    try:
        load_time_zone(tz)
    except CronError as e:
        return str(e)
    return None


def validate(schedule: str) -> list[str]:
    """Kubernetes' messages for an invalid ``spec.schedule`` (``validateScheduleFormat``: the
    robfig parse error, then the TZ rule); empty when valid."""
    out = []
    try:
        parse(schedule)
    except CronError as e:
        out.append(str(e))
    if "TZ" in schedule:
        out.append("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")
    return out
