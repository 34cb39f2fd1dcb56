"""Go's ``time.Parse(time.RFC3339, s)`` errors, word for word: a ``metav1.Time`` field
(``creationTimestamp``, a condition's ``lastTransitionTime``) that does not parse makes
kube-apiserver refuse the whole body with them (``parsing time "x" as
"2006-01-02T15:04:05Z07:00": cannot parse "x" as "2006"``)."""

from __future__ import annotations

import re


__all__ = ["rfc3339_error"]

LAYOUT = "2006-01-02T15:04:05Z07:00"
_USUAL = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.\d+)?(?:Z|[+-](?:[01]\d|2[0-4]):[0-5]\d)", re.ASCII)


def _quote(s: str) -> str:
    """time's ``quote``: ASCII as is (``"`` and ``\\`` escaped), every other byte as ``\\xNN``."""
    out = []
    for ch in s:
        if ch < " " or ord(ch) >= 0x80:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
        else:
            out.append("\\" + ch if ch in '"\\' else ch)
    return '"' + "".join(out) + '"'


class _Bad(Exception):
    def __init__(self, value: str, layout: str) -> None:
        self.value, self.layout = value, layout


class _Range(Exception):
    pass


def _num(v: str, fixed: bool, layout: str) -> tuple[int, str]:
    """time's ``getnum``: one or two digits (exactly two when ``fixed``)."""
    if not v[:1].isdigit() or not v[:1].isascii():
        raise _Bad(v, layout)
    if not (len(v) > 1 and v[1].isdigit() and v[1].isascii()):
        if fixed:
            raise _Bad(v, layout)
        return int(v[0]), v[1:]
    return int(v[:2]), v[2:]


def _skip(v: str, literal: str) -> str:
    for ch in literal:
        if not v or v[0] != ch:
            raise _Bad(v, literal)
        v = v[1:]
    return v


def _ranged(n: int, ok: bool, what: str) -> int:
    if not ok:
        raise _Range(what)
    return n


def _parse(v: str) -> tuple[int, int, int]:
    """Walk LAYOUT's elements as time.parse does; returns (year, month, day)."""
    if len(v) < 4 or not all(c.isdigit() and c.isascii() for c in v[:4]):
        raise _Bad(v, "2006")
    year, v = int(v[:4]), v[4:]
    v = _skip(v, "-")
    month, v = _num(v, True, "01")
    _ranged(month, 1 <= month <= 12, "month")
    v = _skip(v, "-")
    day, v = _num(v, True, "02")
    _ranged(day, day <= 31, "day")
    v = _skip(v, "T")
    hour, v = _num(v, False, "15")
    _ranged(hour, hour < 24, "hour")
    v = _skip(v, ":")
    minute, v = _num(v, True, "04")
    _ranged(minute, minute < 60, "minute")
    v = _skip(v, ":")
    second, v = _num(v, True, "05")
    _ranged(second, second < 60, "second")
    if len(v) >= 2 and v[0] in ".," and v[1].isdigit() and v[1].isascii():
        n = 2
        while n < len(v) and v[n].isdigit() and v[n].isascii():
            n += 1
        v = v[n:]
    if v[:1] == "Z":
        v = v[1:]
    else:
        hold = v
        if len(v) < 6 or v[3] != ":":
            raise _Bad(hold, "Z07:00")
        sign, hh, mm, v = v[0], v[1:3], v[4:6], v[6:]
        try:
            hr, _ = _num(hh, True, "Z07:00")
            mn, _ = _num(mm, True, "Z07:00")
        except _Bad:
            raise _Bad(hold, "Z07:00") from None
        if sign not in "+-":
            raise _Bad(hold, "Z07:00")
        _ranged(hr, hr <= 24, "time zone offset hour")
        _ranged(mn, mn <= 60, "time zone offset minute")
    if v:
        raise _Range(f"extra text: {_quote(v)}")  # worded like a range error: no layout
    return year, month, day


def _days_in(month: int, year: int) -> int:
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def rfc3339_error(text: str) -> str | None:
    """None when ``text`` parses as Go parses RFC 3339, else Go's error message."""
    m = _USUAL.fullmatch(text)  # what servers and clients write: one match, no walk
    if m is not None:
        year, month, day, hour, minute, second = map(int, m.groups())
        if 1 <= month <= 12 and 1 <= day <= _days_in(month, year) and hour < 24 and minute < 60 and second < 60:
            return None
    try:
        year, month, day = _parse(text)
    except _Bad as bad:
        head = f"parsing time {_quote(text)}"
        return f"{head} as {_quote(LAYOUT)}: cannot parse {_quote(bad.value)} as {_quote(bad.layout)}"
    except _Range as what:
        head = f"parsing time {_quote(text)}"
        text_ = str(what)
        return f"{head}: {text_}" if text_.startswith("extra text") else f"{head}: {text_} out of range"
    if day < 1 or day > _days_in(month, year):
        return f"parsing time {_quote(text)}: day out of range"
    return None
