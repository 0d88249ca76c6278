"""spec.math.liquidation beside its rules (protocol §12.3-§12.9): triggers, slices, bankruptcy prices."""

from __future__ import annotations

from fractions import Fraction

import pytest

from clearinghouse.spec.constants import USDC
from clearinghouse.spec.math.liquidation import (
    bankruptcy_prices,
    below_backstop,
    fund_bounded_limit,
    is_liquidatable,
    liquidation_slice,
    round_bankruptcy_price,
    slippage_bound,
    smallest_cover_qty,
)

TRIGGERS = [
    # (value, maintenance, liquidatable, below backstop, id)
    (100, 100, False, False, "protocol 12.3 at maintenance: not liquidatable"),
    (99, 100, True, False, "protocol 12.3 just below maintenance"),
    (66, 99, True, False, "protocol 12.6 exactly 2/3: not below the backstop line"),
    (65, 99, True, True, "protocol 12.6 below 2/3 of maintenance"),
    (-1, 0, True, True, "protocol 12.3 negative value, no positions' margin"),
]


@pytest.mark.parametrize(("value", "mm", "liq", "backstop"), [c[:4] for c in TRIGGERS], ids=[c[4] for c in TRIGGERS])
def test_triggers(value: int, mm: int, liq: bool, backstop: bool) -> None:
    assert is_liquidatable(value, mm) is liq
    assert below_backstop(value, mm) is backstop


SLICES = [
    # (|size|, notional, in cooldown, expected, id)
    (1_000, 100_000 * USDC, False, (1_000, False), "protocol 12.4 at 100,000 USDC: whole position"),
    (1_000, 100_000 * USDC + 1, False, (200, True), "protocol 12.4 above 100,000 USDC: 20%"),
    (1_001, 200_000 * USDC, False, (201, True), "protocol 12.4 20% rounds up to a whole lot"),
    (1_000, 200_000 * USDC, True, (1_000, False), "protocol 12.4 in cooldown: whole position"),
    (1, 200_000 * USDC, False, (1, False), "protocol 12.4 one lot: the slice would be the whole"),
]


@pytest.mark.parametrize(
    ("size_abs", "notional", "cooldown", "expected"), [c[:4] for c in SLICES], ids=[c[4] for c in SLICES]
)
def test_liquidation_slice(size_abs: int, notional: int, cooldown: bool, expected: tuple[int, bool]) -> None:
    assert liquidation_slice(size_abs, notional, cooldown) == expected


def test_bankruptcy_price_of_the_demo_fund() -> None:
    """protocol §12.8 worked example: the fund's 2,400-lot long, V = -12,166,499,999 at mark 80,000,000."""
    (exact,) = bankruptcy_prices(-12_166_499_999, [(2_400, 80_000_000, 1)])
    assert exact == Fraction(80_000_000) + Fraction(12_166_499_999, 2_400)
    assert round_bankruptcy_price(exact, 2_400) == 85_069_375


def test_bankruptcy_prices_zero_the_unit() -> None:
    """protocol §12.8: closing every position at its (exact) bankruptcy price leaves the unit at zero."""
    value = -1_000
    positions = [(10, 500, 30), (-4, 200, 10)]
    prices = bankruptcy_prices(value, positions)
    assert value + sum(size * (p - mark) for (size, mark, _), p in zip(positions, prices)) == 0


ROUNDING = [
    (Fraction(101, 2), 5, 51, "protocol 12.8 long closes by selling: up"),
    (Fraction(101, 2), -5, 50, "protocol 12.8 short closes by buying: down"),
    (Fraction(-3, 2), -5, 1, "protocol 12.8 never below 1"),
]


@pytest.mark.parametrize(("exact", "size", "expected"), [c[:3] for c in ROUNDING], ids=[c[3] for c in ROUNDING])
def test_round_bankruptcy_price(exact: Fraction, size: int, expected: int) -> None:
    assert round_bankruptcy_price(exact, size) == expected


BOUNDS = [
    # (is_long, value, qty, mark, fund, expected, id)
    (True, -100, 10, 1_000, 50, 1_005, "protocol 12.4 long: the fund pays at most 50, p >= mark - (V + F)/q"),
    (False, -100, 10, 1_000, 50, 995, "protocol 12.4 short: p <= mark + (V + F)/q"),
    (True, 10**9, 1, 1_000, 0, 1, "protocol 12.4 never below 1"),
]


@pytest.mark.parametrize(
    ("is_long", "value", "qty", "mark", "fund", "expected"), [c[:6] for c in BOUNDS], ids=[c[6] for c in BOUNDS]
)
def test_fund_bounded_limit(is_long: bool, value: int, qty: int, mark: int, fund: int, expected: int) -> None:
    limit = fund_bounded_limit(is_long, value, qty, mark, fund)
    assert limit == expected
    # the deficit at the limit is one the fund can pay
    assert value + qty * ((limit - mark) if is_long else (mark - limit)) >= -fund or limit == 1


SLIPPAGE = [
    (True, 1_001, 1_000, 901, "protocol 12.4 long sold down to mark x 0.9, rounded up"),
    (False, 1_001, 1_000, 1_101, "protocol 12.4 short bought up to mark x 1.1, rounded down"),
]


@pytest.mark.parametrize(
    ("is_long", "mark", "bps", "expected"), [c[:4] for c in SLIPPAGE], ids=[c[4] for c in SLIPPAGE]
)
def test_slippage_bound(is_long: bool, mark: int, bps: int, expected: int) -> None:
    assert slippage_bound(is_long, mark, bps) == expected


COVER = [
    # (size, cost, price, deficit, expected, id)
    (10, 10 * 100, 90, 5, None, "protocol 12.9 no profit at the price: None"),
    (10, 10 * 100, 110, 1_000, 10, "protocol 12.9 whole position does not cover: all of it"),
    (10, 10 * 100, 110, 25, 3, "protocol 12.9 fewest lots whose profit covers the deficit"),
    (-10, -10 * 100, 90, 20, 2, "protocol 12.9 a short profits below entry"),
]


@pytest.mark.parametrize(
    ("size", "cost", "price", "deficit", "expected"), [c[:5] for c in COVER], ids=[c[5] for c in COVER]
)
def test_smallest_cover_qty(size: int, cost: int, price: int, deficit: int, expected: int | None) -> None:
    assert smallest_cover_qty(size, cost, price, deficit) == expected
