"""Liquidation waterfall steps 1-4 (protocol §12.3-§12.6): trigger, market liquidation, insurance fund, backstop.

Chains are ``WChain`` (tests/waterfall_helpers.py): fee-free BTC (max leverage
50, maintenance margin = notional / 100) and ETH markets, marks pinned by the
test, and the waterfall invariants checked after every block. Money is in
micro-USDC (``usdc``), BTC prices in units of 0.001 USDC (``px``), sizes in
lots of 0.001 BTC (``sz``). Cash model: the buyer pays price x size, so after
buying s BTC at e with deposit D, cash = D - s e and cross value = D + s (mark - e);
an isolated bucket holds margin - s e, its value is iso_cash + s x mark.
"""

from __future__ import annotations

import pytest

from clearinghouse.spec.constants import CROSS
from clearinghouse.spec.events import Fill, PositionTransfer
from clearinghouse.spec.math import liquidation as lm
from clearinghouse.spec.state.keys import INSURANCE_FUND
from clearinghouse.spec.waterfall.events import (
    AdlQueue,
    AdlStep,
    Backstop,
    InsuranceCover,
    LiquidationTriggered,
    MarketLiquidation,
)
from tests.helpers import BUY, GTC
from tests.waterfall_helpers import BTC, WChain, of_type, one, px, sz, usdc


def triggered(r) -> dict[bytes, LiquidationTriggered]:
    return {e.account: e for e in of_type(r.end_events, LiquidationTriggered)}


# ---------------------------------------------------------------- 1. trigger at maintenance margin
def test_trigger_exactly_at_maintenance_margin_cross_and_isolated():
    c = WChain()
    c.fund(alice=595, bob=700, mm=1_000_000)
    # alice: cross long 1 BTC at 10,000 (20x: initial margin 500 <= 595). cash = 595 - 10,000.
    c.trade("alice", "mm", BTC, px(10_000), sz(1))
    # bob: isolated long 1 BTC at 10,000, 20x: bucket 500 - 10,000 = -9,500; plus 95 added: -9,405.
    c.isolated("bob", BTC, 20)
    c.trade("bob", "mm", BTC, px(10_000), sz(1))
    assert c.iso_margin("bob", BTC, usdc(95)).ok
    assert c.iso_cash("bob", BTC) == usdc(-9_405)

    # Mark 9,500: alice value = 595 - 10,000 + 9,500 = 95, MM = 9,500 / 100 = 95: not below, no trigger.
    # bob: -9,405 + 9,500 = 95 = MM: no trigger either.
    r = c.crash({BTC: px(9_500)})
    assert not of_type(r.end_events, LiquidationTriggered)
    r = c.crash({BTC: px("9500.001")})
    assert not of_type(r.end_events, LiquidationTriggered)

    # One price unit lower, 9,499.999: value = 94.999 USDC, MM = ceil(9,499.999 x 1,000,000 / 100) micro
    # = 94.99999 USDC: both fall below by 990 micro-USDC and are triggered, alice as a cross unit.
    r = c.crash({BTC: px("9499.999")})
    t = triggered(r)
    assert set(t) == {c.addr("alice"), c.addr("bob")}
    a, b = t[c.addr("alice")], t[c.addr("bob")]
    assert (a.market, a.value, a.maintenance_margin) == (CROSS, 94_999_000, 94_999_990)
    assert (b.market, b.value, b.maintenance_margin) == (BTC, 94_999_000, 94_999_990)
    assert (
        a.positions[0].mark == px("9499.999") and a.positions[0].size == sz(1) and a.positions[0].cost == usdc(10_000)
    )
    assert a.method == "market"


def test_isolated_trigger_ignores_cross_collateral():
    c = WChain()
    # carol has 100,000 in cross, but her isolated position is judged on its own bucket only.
    c.fund(carol=101_000, mm=1_000_000)
    c.isolated("carol", BTC, 50)  # bucket 10,000 / 50 = 200: iso_cash = 200 - 10,000
    c.trade("carol", "mm", BTC, px(10_000), sz(1))
    # Mark 9,899: iso value = -9,800 + 9,899 = 99 >= MM 98.99: not triggered.
    r = c.crash({BTC: px(9_899)})
    assert not triggered(r)
    # Mark 9,898: value 98 < MM 98.98: triggered though the account holds 100,800 in cross.
    r = c.crash({BTC: px(9_898)})
    t = triggered(r)[c.addr("carol")]
    assert (t.market, t.value, t.maintenance_margin) == (BTC, usdc(98), usdc("98.98"))
    assert c.cash("carol") == usdc(101_000 - 200)  # cross cash untouched (no bids: backstop of the bucket only)
    assert one(r.end_events, Backstop).unit == BTC


# ---------------------------------------------------------------- 2. partial liquidation and cooldown
def test_partial_twenty_percent_and_cooldown():
    c = WChain()
    c.fund(alice="12000.4", mm=10_000_000)
    c.cross_leverage("alice", BTC, 50)
    # alice: cross long 25.001 BTC at 10,000 (cost 250,010; initial margin 5,000.2).
    c.trade("alice", "mm", BTC, px(10_000), sz("25.001"))

    # Block A, mark 9,600: value = 12,000.4 - 250,010 + 25.001 x 9,600 = 2,000 < MM = 240,009.6 / 100 = 2,400.096.
    # Notional 240,009.6 > 100,000: 20% of 25,001 lots = 5,000.2, rounded up to 5,001 lots.
    r = c.crash({BTC: px(9_600)}, c.order_tx("mm", BTC, BUY, px(9_600), sz("5.001"), GTC))
    t_a = c.p.time_ms
    t = triggered(r)[c.addr("alice")]
    assert (t.value, t.maintenance_margin) == (usdc(2_000), usdc("2400.096"))
    ml = one(r.end_events, MarketLiquidation)
    # Limit: 10% below mark, rounded up: ceil(9,600 x 0.9) = 8,640 (the 50,000 fund bounds nothing here).
    assert (ml.ordered, ml.filled, ml.partial, ml.limit_price) == (5_001, 5_001, True, px(8_640))
    assert ml.cooldown_until_ms == t_a + 30_000
    assert c.size("alice", BTC) == 20_000 and c.position("alice", BTC).liq_cooldown_until_ms == t_a + 30_000
    # Sold at the mark: value still 2,000 >= MM 20 x 96 = 1,920: no backstop, the trader keeps the rest.
    assert not of_type(r.end_events, Backstop) and c.value("alice") == usdc(2_000)

    # Block B exactly when the cooldown ends (30 s later), mark 9,580:
    # value = 2,000 + 20 x (9,580 - 9,600) = 1,600 < MM 20 x 95.8 = 1,916: 20% again (4,000 lots).
    r = c.crash({BTC: px(9_580)}, c.order_tx("mm", BTC, BUY, px(9_580), sz(4), GTC), advance_ms=30_000)
    t_b = c.p.time_ms
    assert t_b == t_a + 30_000
    assert triggered(r)[c.addr("alice")].value == usdc(1_600)
    ml = one(r.end_events, MarketLiquidation)
    assert (ml.ordered, ml.filled, ml.partial, ml.cooldown_until_ms) == (4_000, 4_000, True, t_b + 30_000)
    assert c.size("alice", BTC) == 16_000

    # Block C one second later, inside the cooldown, mark 9,550: value = 1,600 + 16 x (-30) = 1,120
    # < MM 16 x 95.5 = 1,528. The notional (152,800) is still above 100,000, but inside the
    # cooldown the order is for the whole position.
    r = c.crash({BTC: px(9_550)}, c.order_tx("mm", BTC, BUY, px(9_550), sz(16), GTC), advance_ms=1_000)
    assert triggered(r)[c.addr("alice")].value == usdc(1_120)
    ml = one(r.end_events, MarketLiquidation)
    assert (ml.ordered, ml.filled, ml.partial, ml.cooldown_until_ms) == (16_000, 16_000, False, 0)
    # Whatever collateral remains stays with the trader: no fee, no clearance charge.
    assert c.size("alice", BTC) == 0 and c.cash("alice") == usdc(1_120)
    fills = [f for f in of_type(r.end_events, Fill) if f.liquidation]
    assert all(f.taker_fee == 0 for f in fills)


def test_small_position_is_liquidated_whole_and_seed_never_slices():
    assert lm.liquidation_slice(25_001, 240_009_600_000, False) == (5_001, True)
    assert lm.liquidation_slice(25_001, 240_009_600_000, True) == (25_001, False)
    # Exactly 100,000 is not above the threshold.
    assert lm.liquidation_slice(10_000, 100_000 * 10**6, False) == (10_000, False)
    assert lm.liquidation_slice(10_000, 100_000 * 10**6 + 1, False) == (2_000, True)
    # A one-lot position cannot be split: the whole lot.
    assert lm.liquidation_slice(1, 200_000 * 10**6, False) == (1, False)


# ---------------------------------------------------------------- 3. insurance fund
def _gapped_long(policy: str, fund: int, bid: int | None) -> tuple[WChain, object]:
    """L: isolated long 1 BTC at 10,000, 10x (bucket 1,000 - 10,000 = -9,000; bankruptcy 9,000).
    The mark falls to 9,050 (value 50 < MM 90.5), with an optional bid below bankruptcy."""
    c = WChain(policy, fund=fund)
    c.fund(L=2_000, mm=1_000_000, bidder=100_000)
    c.isolated("L", BTC, 10)
    c.trade("L", "mm", BTC, px(10_000), sz(1))
    txs = [c.order_tx("bidder", BTC, BUY, px(bid), sz(1), GTC)] if bid else []
    return c, c.crash({BTC: px(9_050)}, *txs)


@pytest.mark.parametrize("policy", ["hyperliquid", "seed"])
def test_fund_pays_a_deficit_in_full(policy):
    # The fill at 8,900 is 100 below bankruptcy: deficit = -9,000 + 8,900 = -100; the fund (50,000) pays it.
    c, r = _gapped_long(policy, 50_000, 8_900)
    ml = one(r.end_events, MarketLiquidation)
    assert ml.filled == 1_000 and ml.limit_price == px(8_145)  # ceil(9,050 x 0.9)
    ic = one(r.end_events, InsuranceCover)
    assert (ic.deficit, ic.paid, ic.fund_before, ic.fund_after) == (usdc(100), usdc(100), usdc(50_000), usdc(49_900))
    assert c.fund_cash() == usdc(49_900)
    # The trader loses exactly its margin; nothing is left in the bucket, nothing goes to ADL.
    assert c.cash("L") == usdc(1_000) and c.iso_cash("L", BTC) == 0
    assert not of_type(r.end_events, AdlQueue)


def test_seed_fund_pays_all_or_nothing():
    # Same fill, fund 99 < 100: seed pays nothing, the deficit goes to the winners (deficit cover).
    c, r = _gapped_long("seed", 99, 8_900)
    ic = one(r.end_events, InsuranceCover)
    assert (ic.deficit, ic.paid, ic.fund_before, ic.fund_after) == (usdc(100), 0, usdc(99), usdc(99))
    q = one(r.end_events, AdlQueue)
    assert q.bankruptcy_price == px(9_000) and q.top[0].account == c.addr("mm")
    assert c.cash("L") == usdc(1_000) and c.iso_cash("L", BTC) == 0


def test_hyperliquid_fund_pays_what_it_can_then_backstop():
    # No bids; mark 8,000 gaps the long to -9,000 + 8,000 = -1,000. The fund holds 300: it pays 300
    # (all it can), the rest (-700) goes with the position to the fund in the backstop.
    c = WChain("hyperliquid", fund=300)
    c.fund(L=2_000, mm=1_000_000)
    c.isolated("L", BTC, 10)
    c.trade("L", "mm", BTC, px(10_000), sz(1))
    r = c.crash({BTC: px(8_000)})
    ml = one(r.end_events, MarketLiquidation)
    # Fund-bounded limit: 8,000 - (-1,000 + 300) / 1 = 8,700 (a long may not sell below it).
    assert (ml.filled, ml.limit_price) == (0, px(8_700))
    ic = one(r.end_events, InsuranceCover)
    assert (ic.deficit, ic.paid, ic.fund_before, ic.fund_after) == (usdc(1_000), usdc(300), usdc(300), 0)
    b = one(r.end_events, Backstop)
    assert (b.reason, b.value, b.margin_taken) == ("below_two_thirds", usdc(-700), usdc(-700))
    # Fund: pays 300, buys 1 BTC at 8,000 and absorbs -700: cash 300 - 300 - 8,000 - 700 = -8,700,
    # value (the balance events report) -8,700 + 8,000 = -700 < 0: ADL closes the fund's long
    # against the only short, mm, at the fund's bankruptcy price 8,000 + 700 / 1 = 8,700.
    assert b.fund_before == 0 and b.fund_after == usdc(-700)
    step = one(r.end_events, AdlStep)
    assert (step.counterparty, step.size, step.price) == (c.addr("mm"), 1_000, px(8_700))
    assert c.fund_value() == 0 and c.size(INSURANCE_FUND, BTC) == 0


def test_hyperliquid_liquidation_never_fills_beyond_what_the_fund_can_pay():
    # Fund 60: the limit is 9,050 - (50 + 60) / 1 = 8,940 > the 8,900 bid, so no fill (a fill at 8,900
    # would leave a 100 deficit the fund cannot pay). The book cannot absorb: backstop at the mark.
    c, r = _gapped_long("hyperliquid", 60, 8_900)
    ml = one(r.end_events, MarketLiquidation)
    assert (ml.limit_price, ml.filled) == (px(8_940), 0)
    assert not of_type(r.end_events, InsuranceCover)
    b = one(r.end_events, Backstop)
    # value 50 < 2/3 x 90.5: reason below_two_thirds wins over the unabsorbed order.
    # The fund's balance (its value at mark) grows by the margin taken: 60 + 50.
    assert (b.reason, b.value, b.fund_before, b.fund_after) == ("below_two_thirds", usdc(50), usdc(60), usdc(110))
    assert c.fund_cash() == usdc(60 - 9_050 + 50) and c.size(INSURANCE_FUND, BTC) == sz(1)
    assert c.book(BTC, BUY)[0].price == px(8_900)  # the bid is still there


def test_fund_bounded_limit_math():
    # long: p >= mark - (value + fund) / qty, rounded up (floor of the slack per lot).
    assert lm.fund_bounded_limit(True, 50_000_000, 1_000, 9_050_000, 60_000_000) == 8_940_000
    assert lm.fund_bounded_limit(True, 50_000_000, 3_000, 9_050_000, 60_000_000) == 9_050_000 - 36_666
    # short: p <= mark + (value + fund) / qty, rounded down.
    assert lm.fund_bounded_limit(False, 50_000_000, 3_000, 9_050_000, 60_000_000) == 9_050_000 + 36_666
    assert lm.slippage_bound(True, 9_050_000, 1_000) == 8_145_000
    assert lm.slippage_bound(False, 9_050_001, 1_000) == 9_955_001  # floor(9,955,001.1)


# ---------------------------------------------------------------- 4. backstop
def test_backstop_below_two_thirds_after_market_slice():
    c = WChain()
    c.fund(alice=4_000, mm=10_000_000)
    c.cross_leverage("alice", BTC, 50)
    c.trade("alice", "mm", BTC, px(10_000), sz(20))  # cross long 20 BTC at 10,000; initial margin 4,000
    # Mark 9,890: value = 4,000 + 20 x (-110) = 1,800 < MM 20 x 98.9 = 1,978. Notional 197,800: a 20% slice
    # of 4 BTC fills at the only bid, 9,700: value = 1,800 - 4 x 190 = 1,040 < 2/3 x (16 x 98.9) = 1,054.93.
    r = c.crash({BTC: px(9_890)}, c.order_tx("mm", BTC, BUY, px(9_700), sz(4), GTC))
    ml = one(r.end_events, MarketLiquidation)
    assert (ml.ordered, ml.filled, ml.partial) == (4_000, 4_000, True)
    b = one(r.end_events, Backstop)
    assert (b.account, b.unit, b.reason) == (c.addr("alice"), CROSS, "below_two_thirds")
    assert (b.value, b.maintenance_margin, b.margin_taken) == (usdc(1_040), usdc("1582.4"), usdc(1_040))
    assert lm.below_backstop(b.value, b.maintenance_margin)
    # The fund holds the 16 BTC at the mark and the margin; the trader's unit ends at 0.
    assert c.size(INSURANCE_FUND, BTC) == sz(16) and c.cost(INSURANCE_FUND, BTC) == usdc(16 * 9_890)
    # Fund balance (value at mark): 50,000 + 1,040; its cash paid the notional: 50,000 - 158,240 + 1,040.
    assert (b.fund_before, b.fund_after) == (usdc(50_000), usdc(51_040))
    assert c.fund_cash() == usdc(50_000 - 158_240 + 1_040) and c.fund_value() == usdc(51_040)
    assert c.size("alice", BTC) == 0 and c.cash("alice") == 0
    moves = of_type(r.end_events, PositionTransfer)
    assert [(t.reason, t.closing, t.counterparty, t.closing_is_buy, t.price, t.size) for t in moves] == [
        ("backstop", c.addr("alice"), INSURANCE_FUND, False, px(9_890), sz(16))
    ]


def test_backstop_when_the_book_cannot_absorb():
    c = WChain()
    c.fund(bob=300, carol=1_000, mm=10_000_000)
    c.cross_leverage("bob", BTC, 50)
    c.trade("bob", "mm", BTC, px(10_000), sz(1))  # cross long 1 BTC, initial margin 200 <= 300
    c.isolated("carol", BTC, 50)
    c.trade("carol", "mm", BTC, px(10_000), sz(1))  # isolated long 1 BTC, bucket 200
    # Mark 9,790, no bids at all.
    # bob: value = 300 - 210 = 90 < MM 97.9 but >= 2/3 MM = 65.27: backstop only because the book is empty.
    # carol: value = 200 - 210 = -10: the fund pays 10, then value 0 < 2/3 MM: backstop.
    r = c.crash({BTC: px(9_790)})
    b = {e.account: e for e in of_type(r.end_events, Backstop)}
    assert (b[c.addr("bob")].reason, b[c.addr("bob")].unit, b[c.addr("bob")].value) == (
        "book_could_not_absorb",
        CROSS,
        usdc(90),
    )
    assert (b[c.addr("carol")].reason, b[c.addr("carol")].unit, b[c.addr("carol")].value) == (
        "below_two_thirds",
        BTC,
        0,
    )
    assert one(r.end_events, InsuranceCover).paid == usdc(10)
    # Maintenance margin is not returned: bob ends at 0; carol's bucket ends at 0 and her cross cash
    # (1,000 - 200) is untouched.
    assert c.cash("bob") == 0 and c.size("bob", BTC) == 0
    assert c.cash("carol") == usdc(800) and c.iso_cash("carol", BTC) == 0 and c.size("carol", BTC) == 0
    # Fund: 50,000 - 10 (cover) - 2 x 9,790 + 90 (bob's margin) + 0 (carol's) = 30,500 cash, long 2 BTC.
    assert c.fund_cash() == usdc(50_000 - 10 - 19_580 + 90)
    assert c.size(INSURANCE_FUND, BTC) == sz(2) and c.fund_value() == usdc(50_080)
