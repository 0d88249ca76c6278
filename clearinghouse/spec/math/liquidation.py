"""Pure liquidation arithmetic (protocol §12): triggers, slices, bankruptcy prices.

No state here, only integers and exact fractions. Every rounding is named.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

from clearinghouse.spec.constants import (
    BACKSTOP_DEN,
    BACKSTOP_NUM,
    PARTIAL_LIQUIDATION_NOTIONAL,
    PARTIAL_LIQUIDATION_PERCENT,
)
from clearinghouse.spec.math.integers import ceil_div
from clearinghouse.spec.math.pnl import realized_pnl


def is_liquidatable(value: int, maintenance: int) -> bool:
    """Step 1: value below maintenance margin (both at mark; protocol §12.3)."""
    return value < maintenance


def below_backstop(value: int, maintenance: int) -> bool:
    """value < 2/3 x maintenance, compared exactly (3 x value < 2 x maintenance; protocol §12.6)."""
    return BACKSTOP_DEN * value < BACKSTOP_NUM * maintenance


class LiquidationSlice(NamedTuple):
    """Lots one liquidation order sends to the book, and whether that is a partial (20%) slice (protocol §12.4)."""

    lots: int
    partial: bool


def liquidation_slice(size_abs: int, notional: int, in_cooldown: bool) -> LiquidationSlice:
    """Lots to send to the book and whether it is a partial (20%) slice (protocol §12.4).

    Above 100,000 USDC notional and outside the cooldown, 20% of the position,
    rounded up to a whole lot (so it always makes progress); otherwise all of it.
    """
    if notional > PARTIAL_LIQUIDATION_NOTIONAL and not in_cooldown:
        part = ceil_div(size_abs * PARTIAL_LIQUIDATION_PERCENT, 100)
        if part < size_abs:
            return LiquidationSlice(part, True)
    return LiquidationSlice(size_abs, False)


class Exposure(NamedTuple):
    """What a bankruptcy price reads of one open position (protocol §12.8)."""

    size: int
    mark: int
    maintenance: int


def bankruptcy_prices(value: int, positions: Sequence[Exposure]) -> list[Fraction]:
    """Exact bankruptcy price of each position of a margin unit.

    ``positions`` are ``Exposure(size, mark, maintenance margin)``. The unit's value at mark
    is spread over its positions in proportion to maintenance margin (dYdX v4):
    closing position i at p_i = mark_i - value x MM_i / (sum MM x size_i) and
    every other at its own p_j brings the unit to exactly zero. For a single
    position this is entry -/+ margin / size (protocol §12.8).
    """
    total_mm = sum(mm for _s, _m, mm in positions)
    out = []
    for size, mark, mm in positions:
        share = Fraction(value * mm, total_mm) if total_mm else Fraction(value, len(positions))
        out.append(Fraction(mark) - share / size)
    return out


def round_bankruptcy_price(exact: Fraction, size: int) -> int:
    """Round a bankruptcy price in the underwater unit's favour (it must end >= 0; protocol §12.8).

    A long closes by selling: round up. A short closes by buying: round down.
    The excess this leaves (less than one price unit per lot) is swept to the
    insurance fund, so the unit ends at exactly zero. Never below 1.
    """
    if size > 0:
        p = -((-exact.numerator) // exact.denominator)
    else:
        p = exact.numerator // exact.denominator
    return max(1, p)


def fund_bounded_limit(is_long: int, value: int, qty: int, mark: int, fund: int) -> int:
    """The worst liquidation price whose deficit the insurance fund can still pay (protocol §12.4).

    Selling ``qty`` of a long at p changes the unit's value by qty x (p - mark);
    require value + qty x (p - mark) >= -fund. Long: p >= mark - (value + fund)/qty,
    rounded up; short (buying): p <= mark + (value + fund)/qty, rounded down.
    """
    slack = value + fund
    if is_long:
        return max(1, mark - slack // qty)
    return max(1, mark + slack // qty)


def slippage_bound(is_long: bool, mark: int, bps: int) -> int:
    """A long is sold down to mark x (1 - bps) (rounded up); a short bought up to mark x (1 + bps) (rounded down).

    See protocol §12.4.
    """
    if is_long:
        return max(1, ceil_div(mark * (10_000 - bps), 10_000))
    return mark * (10_000 + bps) // 10_000


def smallest_cover_qty(size: int, cost: int, price: int, deficit: int) -> int | None:
    """``seed`` rule: the fewest whole lots whose realized profit at ``price`` covers ``deficit`` (protocol §12.9).

    Returns None when even the whole position realizes no profit at that price;
    returns |size| when the whole position does not cover the deficit.
    """
    whole = abs(size)
    if realized_pnl(size, cost, whole, price) <= 0:
        return None
    if realized_pnl(size, cost, whole, price) < deficit:
        return whole
    lo, hi = 1, whole  # realized is non-decreasing in qty when the per-lot profit is positive
    while lo < hi:
        mid = (lo + hi) // 2
        if realized_pnl(size, cost, mid, price) >= deficit:
            hi = mid
        else:
            lo = mid + 1
    return lo
