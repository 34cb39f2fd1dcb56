from fractions import Fraction

import pytest

from vkube.api.quantity import QuantityError, canonical, parse_quantity


@pytest.mark.parametrize("text,value", [
    ("100m", Fraction(1, 10)), ("1.5", Fraction(3, 2)), ("2Gi", 2 * 1024**3), ("500M", 500_000_000),
    ("1e3", 1000), ("1E3", 1000), (".5", Fraction(1, 2)), ("-1k", -1000), (3, 3), ("0", 0),
])
def test_parse(text, value):
    assert parse_quantity(text).value == value


@pytest.mark.parametrize("text,expected", [
    ("1000m", "1"), ("1.5", "1500m"), ("2048Mi", "2Gi"), ("1536Mi", "1536Mi"), ("0.5Gi", "512Mi"),
    ("1500", "1500"), ("2000", "2k"), ("1e3", "1e3"), ("0.1", "100m"), ("0.0000000001", "1n"),
])
def test_canonical(text, expected):
    assert canonical(text) == expected


def test_compare_and_sum_exact():
    assert parse_quantity("100m") + parse_quantity("200m") == parse_quantity("300m")
    assert parse_quantity("1Gi") > parse_quantity("1G")
    assert parse_quantity("250m").milli_value() == 250
    assert parse_quantity("1.1").int_value() == 2


@pytest.mark.parametrize("bad", ["", "1Gb", "abc", "1.2.3", "--1", True])
def test_invalid(bad):
    with pytest.raises(QuantityError):
        parse_quantity(bad)
