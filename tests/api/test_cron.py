"""vkube.api.cron's walk to the next activation agrees with the definition: for random
standard schedules and start times, the first minute after the start whose fields all match
(robfig's day rule: day-of-month AND day-of-week when either is ``*``/``?``, else OR)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from vkube.api import cron

UTC = timezone.utc


def _field(rng: random.Random, lo: int, hi: int) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return "*"
    if kind == 1:
        return str(rng.randint(lo, hi))
    if kind == 2:
        a = rng.randint(lo, hi)
        return f"{a}-{rng.randint(a, hi)}"
    if kind == 3:
        return f"*/{rng.randint(1, max(1, hi - lo))}"
    return ",".join(str(rng.randint(lo, hi)) for _ in range(rng.randint(2, 3)))


def _matches(spec: cron.Spec, t: datetime) -> bool:
    return bool(1 << t.minute & spec.minute and 1 << t.hour & spec.hour
                and 1 << t.month & spec.month and spec._day_matches(t))  # noqa: SLF001


def test_next_matches_the_definition_on_random_schedules() -> None:
    rng = random.Random(7)
    checked = 0
    while checked < 150:
        expr = " ".join(_field(rng, lo, hi) for lo, hi in ((0, 59), (0, 23), (1, 28), (1, 12), (0, 6)))
        spec = cron.parse(expr)
        assert isinstance(spec, cron.Spec)
        start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=rng.randrange(600_000),
                                                             seconds=rng.randrange(60))
        got = spec.next(start)
        assert got is not None, expr
        t = start.replace(second=0) + timedelta(minutes=1)
        while not _matches(spec, t):  # skip whole months/days/hours that cannot match
            if not 1 << t.month & spec.month:
                t = (t.replace(day=28) + timedelta(days=4)).replace(day=1, hour=0, minute=0)
            elif not spec._day_matches(t):  # noqa: SLF001
                t = t.replace(hour=0, minute=0) + timedelta(days=1)
            elif not 1 << t.hour & spec.hour:
                t = t.replace(minute=0) + timedelta(hours=1)
            else:
                t += timedelta(minutes=1)
        assert got == t, (expr, start)
        checked += 1


def test_impossible_dates_never_fire() -> None:
    assert cron.parse("0 0 30 2 *").next(datetime(2026, 1, 1, tzinfo=UTC)) is None
    assert cron.validate("0 0 30 2 *") == []  # robfig accepts it; the controller never fires


def test_go_durations() -> None:
    d = cron.parse_duration
    assert d("1h30m") == timedelta(minutes=90)
    assert d("1.5h") == timedelta(minutes=90)
    assert d("300ms") == timedelta(milliseconds=300)
    assert d("2h45m30.5s") == timedelta(hours=2, minutes=45, seconds=30.5)
    assert d("0") == timedelta(0)
    assert d("-5m") == timedelta(minutes=-5)
    for bad, msg in (("", 'time: invalid duration ""'), ("5", 'time: missing unit in duration "5"'),
                     ("m", 'time: invalid duration "m"'), ("5d", 'time: unknown unit "d" in duration "5d"')):
        try:
            d(bad)
        except cron.CronError as e:
            assert str(e) == msg
        else:
            raise AssertionError(bad)
