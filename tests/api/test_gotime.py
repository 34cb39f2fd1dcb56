"""metav1.Time values are parsed as Go's time.Parse(RFC3339) parses them, and refused in its words."""

from __future__ import annotations

import pytest

from vkube.api.gotime import rfc3339_error

AS = 'as "2006-01-02T15:04:05Z07:00": '


@pytest.mark.parametrize("text,error", [
    ("2026-11-30T09:15:03Z", None), ("2026-11-30T09:15:03.123456Z", None), ("2020-02-29T00:00:00Z", None),
    ("2026-11-30T09:15:03+01:00", None), ("2020-01-01T1:00:00Z", None),  # Go takes a one-digit hour
    ("garbage", f'parsing time "garbage" {AS}cannot parse "garbage" as "2006"'),
    ("", f'parsing time "" {AS}cannot parse "" as "2006"'),
    ("2020-1-01T00:00:00Z", f'parsing time "2020-1-01T00:00:00Z" {AS}cannot parse "1-01T00:00:00Z" as "01"'),
    ("2020-01-01 00:00:00Z", f'parsing time "2020-01-01 00:00:00Z" {AS}cannot parse " 00:00:00Z" as "T"'),
    ("2020-01-01T00:00:00", f'parsing time "2020-01-01T00:00:00" {AS}cannot parse "" as "Z07:00"'),
    ("2020-01-01T00:00:00+0100", f'parsing time "2020-01-01T00:00:00+0100" {AS}cannot parse "+0100" as "Z07:00"'),
    ("2020-13-01T00:00:00Z", 'parsing time "2020-13-01T00:00:00Z": month out of range'),
    ("2021-02-29T00:00:00Z", 'parsing time "2021-02-29T00:00:00Z": day out of range'),
    ("2020-01-01T24:00:00Z", 'parsing time "2020-01-01T24:00:00Z": hour out of range'),
    ("2020-01-01T00:00:00Zjunk", 'parsing time "2020-01-01T00:00:00Zjunk": extra text: "junk"'),
])
def test_rfc3339_as_go_parses_it(text: str, error: str | None) -> None:
    assert rfc3339_error(text) == error
