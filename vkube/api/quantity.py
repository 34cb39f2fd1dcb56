"""Kubernetes resource quantities ("100m", "1.5", "2Gi", "500M", "1e3"): exact values as
``Fraction`` (so 0.1 + 0.2 is 0.3), comparison, and Kubernetes' canonical form.

The scheduler and ResourceQuota need exact arithmetic; floats would drift.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

__all__ = ["Quantity", "parse_quantity", "format_quantity", "canonical", "QuantityError"]

Format = Literal["BinarySI", "DecimalSI", "DecimalExponent"]

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_BY_EXP = {v: k for k, v in _DECIMAL.items()}
_BINARY_FACTOR = {k: 1024**v for k, v in _BINARY.items()}
_RE = re.compile(r"^([+-]?)(\d+\.?\d*|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?\Z")


class QuantityError(ValueError):
    """Raised for strings that are not quantities; message as Kubernetes words it."""


@dataclass(frozen=True, slots=True)
class Quantity:
    """An exact amount plus the format it was written in (kept when re-formatting)."""

    value: Fraction
    format: Format = "DecimalSI"

    def __str__(self) -> str:
        return format_quantity(self.value, self.format)

    def milli_value(self) -> int:
        """Value × 1000 rounded up, as ``Quantity.MilliValue`` (CPU in millicores)."""
        return math.ceil(self.value * 1000)

    def int_value(self) -> int:
        """Value rounded up to an integer, as ``Quantity.Value`` (bytes)."""
        return math.ceil(self.value)

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.value + other.value, self.format)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.value - other.value, self.format)

    def __lt__(self, other: Quantity) -> bool:
        return self.value < other.value

    def __le__(self, other: Quantity) -> bool:
        return self.value <= other.value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Quantity) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


def parse_quantity(text: Any) -> Quantity:
    """Parse a quantity string (or a JSON number) exactly."""
    if isinstance(text, Quantity):
        return text
    if isinstance(text, bool):
        raise QuantityError("quantities must match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    if isinstance(text, int):
        return Quantity(Fraction(text), "DecimalSI")
    if isinstance(text, float):
        return Quantity(Fraction(str(text)), "DecimalSI")
    if not isinstance(text, str):
        raise QuantityError("quantities must match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    # Manifests repeat the same few strings ("100m", "64Mi") across containers, pods and the
    # scheduler's sums; the parse is pure and its Quantity immutable, so a bounded memo (shared
    # read-only, like canonical's) turns most parses into a lookup. Long strings skip it.
    return _parse_memo(text) if len(text) <= 40 else _parse_text(text)


def _parse_text(text: str) -> Quantity:
    match = _RE.match(text.strip())
    if not match:
        raise QuantityError("quantities must match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    sign, number, suffix = match.group(1), match.group(2), match.group(3) or ""
    # exact integer arithmetic, one Fraction at the end: Fraction's string parser and
    # operators cost ~10x more, and every pod's resources pass through here
    whole, _, frac = number.partition(".")
    num, den = int(whole + frac or "0"), 10 ** len(frac)
    if sign == "-":
        num = -num
    fmt: Format
    if suffix in _BINARY:
        num *= _BINARY_FACTOR[suffix]
        fmt = "BinarySI"
    else:
        if suffix in _DECIMAL:
            exp, fmt = _DECIMAL[suffix], "DecimalSI"
        else:
            exp, fmt = int(suffix[1:]), "DecimalExponent"
        if exp >= 0:
            num *= 10**exp
        else:
            den *= 10**-exp
    value = Fraction(num, den)
    return Quantity(value, fmt)


_parse_memo = functools.lru_cache(maxsize=4096)(_parse_text)


def format_quantity(value: Fraction | int, fmt: Format = "DecimalSI") -> str:
    """Canonical text: the largest suffix that keeps an integer mantissa (``1.5`` → ``1500m``,
    ``1536Mi`` → ``1536Mi``, ``2048Mi`` → ``2Gi``); below nano precision rounds up."""
    value = Fraction(value)
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    mag = -value if value < 0 else value
    if fmt == "BinarySI" and mag.denominator == 1 and mag >= 1024:
        n, power = mag.numerator, 0
        while power < 6 and n % 1024 == 0:
            n //= 1024
            power += 1
        if power:
            suffix = next(k for k, v in _BINARY.items() if v == power)
            return f"{sign}{n}{suffix}"
    if fmt == "BinarySI" and mag.denominator == 1:
        return f"{sign}{mag.numerator}"
    # decimal: integer mantissa × 10^exp, exp a multiple of 3 from -9 (up to 18 for the SI
    # suffixes; unbounded in exponent form, "1e21")
    nanos = math.ceil(mag * 10**9)
    exp = -9
    top = 18 if fmt != "DecimalExponent" else 1 << 30
    while exp < top and nanos % 1000 == 0:
        nanos //= 1000
        exp += 3
    if fmt == "DecimalExponent":
        return f"{sign}{nanos}" + (f"e{exp}" if exp else "")
    return f"{sign}{nanos}{_DECIMAL_BY_EXP[exp]}"


def canonical(text: Any) -> str:
    """A quantity string in Kubernetes' canonical form (what the API server stores back)."""
    q = parse_quantity(text)
    return format_quantity(q.value, q.format)
