"""spec.math.margin beside its rule (protocol §10.6): requirements round up, against the account (§2.4)."""

from __future__ import annotations

import pytest

from clearinghouse.spec.math.margin import (
    initial_margin,
    maintenance_margin,
    notional,
    unrealized_pnl,
    withdrawal_floor,
)

# protocol §2.1 example: 0.5 BTC (500 lots, sz_decimals 3) at 90,000 USDC (90,000,000 price units).
BTC_LOTS, BTC_PX = 500, 90_000_000

NOTIONAL = [
    (BTC_LOTS, BTC_PX, 45_000_000_000, "protocol 2.1 0.5 BTC at 90,000 is 45,000 USDC, exact"),
    (-BTC_LOTS, BTC_PX, 45_000_000_000, "protocol 2.1 a short's notional is positive"),
    (0, BTC_PX, 0, "protocol 2.1 flat"),
]


@pytest.mark.parametrize(("size", "price", "expected"), [c[:3] for c in NOTIONAL], ids=[c[3] for c in NOTIONAL])
def test_notional(size: int, price: int, expected: int) -> None:
    assert notional(size, price) == expected


MARGINS = [
    # (size, price, leverage, max_leverage, initial, maintenance, id)
    (BTC_LOTS, BTC_PX, 20, 40, 2_250_000_000, 562_500_000, "protocol 10.6 exact at 20x, max 40x"),
    (1, 1, 20, 40, 1, 1, "protocol 10.6 one micro-USDC of notional still needs 1 of each (up)"),
    (3, 7, 2, 3, 11, 4, "protocol 10.6 inexact: 21/2 -> 11, 21/6 -> 4"),
    (-3, 7, 2, 3, 11, 4, "protocol 10.6 shorts alike"),
]


@pytest.mark.parametrize(
    ("size", "price", "leverage", "max_leverage", "im", "mm"), [c[:6] for c in MARGINS], ids=[c[6] for c in MARGINS]
)
def test_margins_round_up(size: int, price: int, leverage: int, max_leverage: int, im: int, mm: int) -> None:
    assert initial_margin(size, price, leverage) == im
    assert maintenance_margin(size, price, max_leverage) == mm


FLOORS = [
    (1_000, 50, 100, "protocol 10.6 10% of notional above initial margin"),
    (1_000, 150, 150, "protocol 10.6 initial margin above 10% of notional"),
    (1_001, 0, 101, "protocol 10.6 10% of notional rounds up"),
]


@pytest.mark.parametrize(("total_notional", "im", "expected"), [c[:3] for c in FLOORS], ids=[c[3] for c in FLOORS])
def test_withdrawal_floor(total_notional: int, im: int, expected: int) -> None:
    assert withdrawal_floor(total_notional, im) == expected


PNL = [
    (3, 96_005_000, 33_000_000, 2_995_000, "protocol 10.4 long above entry"),
    (-2, -20_000, 9_000, 2_000, "protocol 10.4 short below entry"),
    (-2, -20_000, 11_000, -2_000, "protocol 10.4 short above entry"),
]


@pytest.mark.parametrize(("size", "cost", "price", "expected"), [c[:4] for c in PNL], ids=[c[4] for c in PNL])
def test_unrealized_pnl(size: int, cost: int, price: int, expected: int) -> None:
    assert unrealized_pnl(size, cost, price) == expected
