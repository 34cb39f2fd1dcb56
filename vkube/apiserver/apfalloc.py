"""How many seats each priority level has: nominal limits from concurrency shares, and the
periodic borrowing adjustment (``apf_controller.go`` ``finishQueueSetReconfigsLocked`` and
``updateBorrowingLocked``, ``conc_alloc.go``).

The server's total (``--max-requests-inflight`` + ``--max-mutating-requests-inflight``) is split
by ``nominalConcurrencyShares``: ``nominalCL = ceil(total * shares / sum(shares))``. A level may
lend ``lendablePercent`` of it and borrow up to ``borrowingLimitPercent`` (unlimited when unset);
every adjustment period the seats are re-divided by each level's recent seat demand, within
[nominal - lendable, nominal + borrowable]."""

from __future__ import annotations

import math
from typing import Any

from vkube.apiserver.apfqueue import Level

__all__ = ["ADJUSTMENT_PERIOD", "configure_limits", "adjust_borrowing", "allocate"]

#: ``borrowingAdjustmentPeriod``
ADJUSTMENT_PERIOD = 10.0
#: ``seatDemandSmoothingCoefficient``
SMOOTHING = 0.977
MIN_TARGET = 0.001


def _commons(spec: dict[str, Any]) -> tuple[int, int, int | None]:
    """(nominalConcurrencyShares, lendablePercent, borrowingLimitPercent) of a level's spec."""
    body = spec.get("limited") if spec.get("type") == "Limited" else spec.get("exempt")
    body = body or {}
    default_shares = 30 if spec.get("type") == "Limited" else 0
    shares = body.get("nominalConcurrencyShares")
    return (default_shares if shares is None else int(shares), int(body.get("lendablePercent") or 0),
            body.get("borrowingLimitPercent"))


def configure_limits(levels: dict[str, Level], specs: dict[str, dict[str, Any]], server_cl: int) -> int:
    """Set each level's nominal, min and max limits; returns the sum of the nominal limits."""
    share_sum = sum(_commons(s)[0] for s in specs.values()) or 1
    total = 0
    for name, spec in specs.items():
        shares, lendable_pct, borrowing_pct = _commons(spec)
        nominal = math.ceil(server_cl * shares / share_sum)
        lendable = round(nominal * lendable_pct / 100)
        borrowing = server_cl if borrowing_pct is None else round(nominal * int(borrowing_pct) / 100)
        lv = levels[name]
        fresh = lv.demand is None
        lv.nominal_cl, lv.min_cl, lv.max_cl = nominal, nominal - lendable, nominal + borrowing
        if fresh:
            lv.current_cl = nominal - lendable // 2
        total += nominal
    return total


def adjust_borrowing(levels: dict[str, Level], nominal_sum: int, now: float) -> None:
    """Re-divide the seats by recent demand (``updateBorrowingLocked``)."""
    items: list[tuple[str, float, float, float]] = []  # name, target, lower, upper
    exempt_cl: dict[str, int] = {}
    remaining = nominal_sum
    min_sum = min_current_sum = 0
    for name, lv in levels.items():
        if lv.demand is None:
            continue
        duration, avg, dev, high = lv.demand.reset(now)
        lv.demand_high = round(high)
        if duration > 0:
            envelope = avg + dev
            lv.demand_smoothed = max(envelope, SMOOTHING * lv.demand_smoothed + (1 - SMOOTHING) * envelope)
        if lv.exempt:
            ccl = max(lv.min_cl, lv.demand_high)
            exempt_cl[name] = ccl
            remaining -= ccl
            continue
        min_current = max(lv.min_cl, min(lv.nominal_cl, lv.demand_high))
        items.append((name, max(float(min_current), lv.demand_smoothed), float(lv.min_cl), float(lv.max_cl)))
        min_sum += lv.min_cl
        min_current_sum += min_current
    for name, ccl in exempt_cl.items():
        levels[name].set_current_cl(ccl)
    if not items:
        return
    if remaining <= min_sum:
        for name, *_ in items:
            levels[name].set_current_cl(levels[name].min_cl)
        return
    if remaining <= min_current_sum:
        frac = (remaining - min_sum) / (min_current_sum - min_sum)
        for name, *_ in items:
            lv = levels[name]
            min_current = max(lv.min_cl, min(lv.nominal_cl, lv.demand_high))
            lv.set_current_cl(lv.min_cl + round((min_current - lv.min_cl) * frac))
        return
    allocs = allocate(nominal_sum, [(t, lo, hi) for _, t, lo, hi in items])
    for (name, *_), a in zip(items, allocs):
        levels[name].set_current_cl(round(a))


def allocate(required: float, items: list[tuple[float, float, float]]) -> list[float]:
    """``computeConcurrencyAllocation``: the shares ``clamp(p * target, lower, upper)`` summing
    to ``required``, for the one fair proportion ``p`` (found by bisection; the sum grows with
    ``p``). When the bounds cannot meet the sum, every item is at its nearer bound."""
    targets = [max(t, MIN_TARGET) for t, _, _ in items]

    def total(p: float) -> float:
        return sum(max(lo, min(hi, p * t)) for t, (_, lo, hi) in zip(targets, items))

    if required <= sum(lo for _, lo, _ in items):
        return [lo for _, lo, _ in items]
    if required >= sum(hi for _, _, hi in items):
        return [hi for _, _, hi in items]
    lo_p, hi_p = 0.0, 1.0
    while total(hi_p) < required:
        hi_p *= 2
    for _ in range(60):
        mid = (lo_p + hi_p) / 2
        if total(mid) < required:
            lo_p = mid
        else:
            hi_p = mid
    return [max(lo, min(hi, hi_p * t)) for t, (_, lo, hi) in zip(targets, items)]
