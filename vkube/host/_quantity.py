"""A small resource.Quantity parser for the scheduler and nodes.

Private on purpose: ``vkube/api/quantity.py`` (another layer's module) is the general one; the
host only needs cpu in millicores and everything else as an integer count of units.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
            "k": Decimal(10**3), "M": Decimal(10**6), "G": Decimal(10**9),
            "T": Decimal(10**12), "P": Decimal(10**15), "E": Decimal(10**18)}


def parse(value: Any) -> Decimal:
    """``"100m"`` → 0.1, ``"1Gi"`` → 1073741824, ``"1e3"`` → 1000; ValueError if malformed."""
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    s = str(value).strip()
    if not s:
        raise ValueError("empty quantity")
    for suffix in (s[-2:], s[-1:]):
        if suffix in _BINARY:
            return _number(s[: -len(suffix)]) * _BINARY[suffix]
    if s[-1] in _DECIMAL and not s[-1].isdigit():
        # "1E" would be ambiguous with an exponent; Kubernetes treats "E" alone as exa.
        return _number(s[:-1]) * _DECIMAL[s[-1]]
    return _number(s)


def _number(s: str) -> Decimal:
    try:
        d = Decimal(s)
    except InvalidOperation:
        raise ValueError(f"invalid quantity number {s!r}") from None
    if not d.is_finite():
        raise ValueError(f"invalid quantity number {s!r}")
    return d


def milli(value: Any) -> int:
    """CPU-style: quantity in thousandths, rounded up (``"0.5"`` → 500, ``"1n"`` → 1)."""
    d = parse(value) * 1000
    i = int(d)
    return i + 1 if d > i else i


def units(value: Any) -> int:
    """Memory/pods-style: whole units, rounded up (``"1Ki"`` → 1024)."""
    d = parse(value)
    i = int(d)
    return i + 1 if d > i else i


def resource_value(name: str, value: Any) -> int:
    """The integer the scheduler compares: millicores for cpu, units for everything else."""
    return milli(value) if name == "cpu" else units(value)
