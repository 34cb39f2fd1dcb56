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


# apimachinery's pkg/api/resource/quantity_test.go: TestQuantityString (canonical form and
# the alternates that must canonicalize to it) and TestQuantityParseEmit.
UPSTREAM = [
    ("1Gi", "1024Mi"), ("300Mi", "307200Ki"), ("6Ki", ""), ("1001Gi", "1025024Mi"),
    ("1Ti", "1024Gi"), ("5", "5000m"), ("500m", "0.5"), ("1G", "1000M"), ("1G", "0.001T"),
    ("1m", "1000u"), ("80m", ""), ("1080m", "1.08"), ("1080m", "1080000000n"), ("300M", ""),
    ("1T", ""), ("1234567M", ""), ("1234567m", ""), ("3k", ""), ("1025", ""), ("0", ""),
    ("1e9", ".001e12"), ("1e-3", "0.001e0"), ("1e-9", "1000e-12"), ("80e-3", ""),
    ("300e6", ""), ("1e12", ""), ("1e3", ""), ("3e3", ""), ("0", "00"), ("1n", ""),
    ("80n", ""), ("1080n", ""), ("1u", ""), ("80u", ""), ("1080u", ""),
    # TestQuantityParseEmit
    ("1Ki", "1Ki"), ("1Gi", "1024Mi"), ("1G", "1000M"), ("1024m", ".001Ki"),
    ("1024u", ".000001Ki"), ("1024n", ".000000001Ki"), ("2n", ".000000000001Ki"),
    # issue 11's examples
    ("100m", "0.1"), ("1536Mi", "1.5Gi"), ("1", "1000m"), ("2Gi", "2097152Ki"),
]


@pytest.mark.parametrize("expect,alternate", UPSTREAM)
def test_upstream_canonical_table(expect, alternate):
    assert canonical(expect) == expect
    if alternate:
        assert canonical(alternate) == expect
    if expect != "0":
        assert canonical("-" + expect) == "-" + expect
        if alternate:
            assert canonical("-" + alternate) == "-" + expect


def test_exponent_form_is_not_capped_and_si_is():
    assert canonical("1e21") == "1e21"
    assert canonical("1000E") == "1000E"
    assert canonical(1.5) == "1500m" and canonical(2048) == "2048"
