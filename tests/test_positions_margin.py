"""Positions, PnL, fees and margin (protocol §10.4-§10.6), with hand-computed numbers.

Units: BTC prices are units of 0.001 USDC (90,000 USDC = 90_000_000), sizes lots
of 0.001 BTC, so price x lots = micro-USDC (1 USDC = 1_000_000). ETH prices are
units of 0.0001 USDC and sizes lots of 0.01 ETH. Fees: taker 4.5 bps (450 ppm),
maker 1.5 bps (150 ppm), rounded up. Default leverage 20 (BTC max 50, ETH max
25). Marks are pinned (tests/helpers.py) at BTC 90,000 and ETH 3,200 unless a
test moves them.
"""

from __future__ import annotations

import pytest

from clearinghouse.spec.trading.positions import entry_price
from tests.helpers import BTC, BUY, ETH, GTC, IOC, SELL, USDC, Chain, px, sz, usdc


@pytest.fixture
def c() -> Chain:
    c = Chain(pin_marks=True)
    c.fund(alice=1_000_000, bob=1_000_000, carol=1_000_000, dave=1_000_000)
    return c


def take(c: Chain, taker: str, maker: str, is_buy: bool, price: int, size: int, market: int = BTC):
    """``maker`` rests the opposite side, ``taker`` takes it with an IOC; the single Fill."""
    assert c.place(maker, market, not is_buy, price, size, GTC).ok
    r = c.place(taker, market, is_buy, price, size, IOC)
    assert r.ok, r
    [fill] = r.fills
    return fill


# ---------------------------------------------------------------- entry price and realized PnL
def test_entry_price_and_realized_pnl_through_increase_reduce_and_flip(c: Chain) -> None:
    start = c.cash("alice")
    # 1. Buy 0.1 at 90,000: cost = 100 lots x 90_000_000 = 9_000_000_000 (9,000 USDC); entry 90,000.
    take(c, "alice", "bob", BUY, px(90_000), sz("0.1"))
    assert (c.size("alice", BTC), c.cost("alice", BTC)) == (100, 9_000 * USDC)
    # 2. Buy 0.3 at 92,000: cost += 300 x 92_000_000 = 27,600 USDC -> 36,600 USDC for 0.4 BTC;
    #    entry = 36,600 / 0.4 = 91,500 (size-weighted: (0.1 x 90,000 + 0.3 x 92,000) / 0.4).
    take(c, "alice", "carol", BUY, px(92_000), sz("0.3"))
    pos = c.position("alice", BTC)
    assert (pos.size, pos.cost, entry_price(pos)) == (400, 36_600 * USDC, px(91_500))
    # 3. Sell 0.1 at 93,000 (bob, short 0.1 at 90,000, buys it back as maker).
    #    alice realized = (93,000 - 91,500) x 0.1 = +150 USDC; entry unchanged at 91,500
    #    (closed cost = 36,600 x 100/400 = 9,150 USDC; cost left 27,450 for 0.3 BTC).
    #    bob realized = (90,000 - 93,000) x 0.1 = -300 USDC.
    fill = take(c, "alice", "bob", SELL, px(93_000), sz("0.1"))
    assert (fill.taker_realized_pnl, fill.maker_realized_pnl) == (150 * USDC, -300 * USDC)
    pos = c.position("alice", BTC)
    assert (pos.size, pos.cost, entry_price(pos)) == (300, 27_450 * USDC, px(91_500))
    assert c.size("bob", BTC) == 0
    # 4. Sell 0.5 at 91,000 through zero: realized on the closed 0.3 = (91,000 - 91,500) x 0.3
    #    = -150 USDC; the remaining 0.2 opens a short at the fill price: cost = -200 x 91_000_000.
    fill = take(c, "alice", "dave", SELL, px(91_000), sz("0.5"))
    assert fill.taker_realized_pnl == -150 * USDC
    pos = c.position("alice", BTC)
    assert (pos.size, pos.cost, entry_price(pos)) == (-200, -18_200 * USDC, px(91_000))
    # 5. Buy back 0.1 of the short at 90,500: realized = (91,000 - 90,500) x 0.1 = +50 USDC.
    fill = take(c, "alice", "bob", BUY, px(90_500), sz("0.1"))
    assert fill.taker_realized_pnl == 50 * USDC
    pos = c.position("alice", BTC)
    assert (pos.size, pos.cost, entry_price(pos)) == (-100, -9_100 * USDC, px(91_000))
    # Cash moves at trade prices: -9,000 - 27,600 + 9,300 + 45,500 - 9,050 = +9,150 USDC,
    # minus taker fees 4.5 bps of 100,450 USDC traded = 45.2025 USDC.
    assert c.cash("alice") - start == usdc("9150") - usdc("45.2025")
    # Value at mark 90,000 = cash - 0.1 x 90,000; equals 1,000,000 + realized (150 - 150 + 50)
    # + unrealized (91,000 - 90,000) x 0.1 - fees = 1,000,104.7975 USDC.
    assert c.value("alice") == usdc("1000104.7975")
    # Fee pool: 6 bps (taker 4.5 + maker 1.5) of 100,450 USDC = 60.27 USDC.
    assert c.fee_pool() == usdc("60.27")
    c.check_invariants()


def test_short_entry_and_increase(c: Chain) -> None:
    take(c, "alice", "bob", SELL, px(90_000), sz("0.2"))
    take(c, "alice", "carol", SELL, px(88_000), sz("0.2"))
    # entry = (0.2 x 90,000 + 0.2 x 88,000) / 0.4 = 89,000; cost = -35,600 USDC.
    pos = c.position("alice", BTC)
    assert (pos.size, pos.cost, entry_price(pos)) == (-400, -35_600 * USDC, px(89_000))
    fill = take(c, "alice", "dave", BUY, px(89_500), sz("0.4"))
    assert fill.taker_realized_pnl == -200 * USDC  # (89,000 - 89,500) x 0.4
    assert c.position("alice", BTC) is None  # flat with default settings: no record kept
    assert c.account("alice").open_markets == []
    c.check_invariants()


# ---------------------------------------------------------------- fees
def test_fees_taker_and_maker_paid_to_the_fee_pool(c: Chain) -> None:
    a, b = c.cash("alice"), c.cash("bob")
    fill = take(c, "alice", "bob", BUY, px(90_000), sz("0.1"))
    # Notional 100 x 90_000_000 = 9_000_000_000: taker 4.5 bps = 4,050,000; maker 1.5 bps = 1,350,000.
    assert (fill.taker_fee, fill.maker_fee) == (4_050_000, 1_350_000)
    assert c.cash("alice") == a - 9_000 * USDC - 4_050_000
    assert c.cash("bob") == b + 9_000 * USDC - 1_350_000
    assert c.fee_pool() == 5_400_000
    c.check_invariants()


def test_fees_round_up_on_an_odd_notional(c: Chain) -> None:
    a, b = c.cash("alice"), c.cash("bob")
    fill = take(c, "alice", "bob", BUY, px(90_001), sz("0.001"))
    # Notional 1 x 90_001_000 = 90_001_000 micro-USDC.
    # Taker: 90_001_000 x 450 / 10^6 = 40_500.45 -> 40_501. Maker: x 150 / 10^6 = 13_500.15 -> 13_501.
    assert (fill.taker_fee, fill.maker_fee) == (40_501, 13_501)
    assert c.cash("alice") == a - 90_001_000 - 40_501
    assert c.cash("bob") == b + 90_001_000 - 13_501
    assert c.fee_pool() == 54_002
    c.check_invariants()


# ---------------------------------------------------------------- cross margin
@pytest.fixture
def small(c: Chain) -> Chain:
    """``c`` plus dave2 and erin with 1,000 USDC each."""
    c.fund(dave2=1_000, erin=1_000)
    return c


def test_taker_fills_beyond_initial_margin_are_rejected(small: Chain) -> None:
    c = small
    c.sell("bob", BTC, px(90_000), sz("0.3"))
    before = c.trading_snapshot()
    # 0.3 BTC at 90,000 = 27,000 USDC at 20x: IM 1,350 > value 1,000 - fee 12.15.
    r = c.buy("dave2", BTC, px(90_000), sz("0.3"), IOC)
    assert r.code == "INSUFFICIENT_MARGIN"
    assert c.trading_snapshot() == before  # bob's ask intact, nothing moved
    assert c.market("dave2", BTC, BUY, sz("0.3")).code == "INSUFFICIENT_MARGIN"
    # 0.2 BTC: IM 18,000 / 20 = 900 <= 1,000 - 8.1 = 991.9.
    r = c.buy("dave2", BTC, px(90_000), sz("0.2"), IOC)
    assert r.ok and r.filled_size() == 200
    h = c.health("dave2")
    assert (h.value, h.initial, h.notional) == (usdc("991.9"), 900 * USDC, 18_000 * USDC)
    c.check_invariants()


def test_resting_order_needs_margin_at_placement(small: Chain) -> None:
    c = small
    # Bid 0.3 at 89,000: 26,700 / 20 = 1,335 USDC > 1,000.
    assert c.buy("dave2", BTC, px(89_000), sz("0.3")).code == "INSUFFICIENT_MARGIN"
    # Bid 0.2 at 89,000: 17,800 / 20 = 890 USDC <= 1,000: rests.
    r = c.buy("dave2", BTC, px(89_000), sz("0.2"))
    assert r.ok and r.status.status == "resting"


def test_maker_that_cannot_afford_the_fill_is_cancelled_and_taker_moves_on(small: Chain) -> None:
    c = small
    d = c.buy("dave2", BTC, px(89_000), sz("0.2")).oid  # IM 890 <= 1,000 at placement
    e = c.buy("erin", BTC, px(89_000), sz("0.1")).oid  # behind dave2 in time
    assert c.withdraw("dave2", 500 * USDC).ok  # no position: all 1,000 is withdrawable
    # bob sells 0.2: dave2's fill would leave value 500 - 17,800 + 0.2 x 90,000 (mark)
    # - maker fee 2.67 = 697.33 USDC < IM 0.2 x 90,000 / 20 = 900: cancelled (reason margin);
    # bob fills 0.1 against erin and the IOC remainder is cancelled.
    r = c.sell("bob", BTC, px(89_000), sz("0.2"), IOC)
    assert r.ok
    assert [(s.oid, s.reason) for s in r.canceled("margin")] == [(d, "margin")]
    assert [(f.maker_oid, f.size) for f in r.fills] == [(e, 100)]
    assert c.size("dave2", BTC) == 0 and c.order(d) is None and c.cash("dave2") == 500 * USDC
    assert c.size("erin", BTC) == 100
    c.check_invariants()


def test_closing_a_long_is_allowed_below_initial_margin(small: Chain) -> None:
    """Regression: a taker fill that closed a long exactly to zero was treated as an increase,
    so an account below initial margin (because of another position) could not close it."""
    c = small
    c.fund(gina=1_100)
    take(c, "gina", "bob", BUY, px(90_000), sz("0.1"))  # IM 450, fee 4.05
    take(c, "gina", "bob", BUY, px(3_200, ETH), sz(3, ETH), ETH)  # 9,600 USDC at 20x: IM 480, fee 4.32
    c.set_mark(BTC, px(86_000))
    c.set_mark(ETH, px(3_100, ETH))
    c.block()
    # Value = 1,100 - 8.37 - 0.1 x 4,000 - 3 x 100 = 391.63; IM = 8,600/20 + 9,300/20 = 895;
    # maintenance = 8,600/100 + 9,300/50 = 272: below initial, above maintenance.
    h = c.health("gina")
    assert (h.value, h.initial, h.maintenance) == (usdc("391.63"), 895 * USDC, 272 * USDC)
    c.sell("bob", BTC, px(86_100), sz("0.01"))
    assert c.buy("gina", BTC, px(86_100), sz("0.01"), IOC).code == "INSUFFICIENT_MARGIN"  # growing: refused
    c.buy("carol", BTC, px(86_000), sz("0.1"))
    r = c.sell("gina", BTC, px(86_000), sz("0.1"), IOC)  # closing: allowed
    assert r.ok and r.filled_size() == 100 and c.size("gina", BTC) == 0
    assert c.health("gina").value == usdc("391.63") - usdc("3.87")  # fee 8,600 x 4.5 bps
    c.check_invariants()


def test_closing_a_short_is_allowed_below_initial_margin(small: Chain) -> None:
    c = small
    c.fund(hank=1_100)
    take(c, "hank", "bob", SELL, px(90_000), sz("0.1"))
    take(c, "hank", "bob", SELL, px(3_200, ETH), sz(3, ETH), ETH)
    c.set_mark(BTC, px(94_000))
    c.set_mark(ETH, px(3_300, ETH))
    c.block()
    # Value = 1,100 - 8.37 - 400 - 300 = 391.63 < IM 9,400/20 + 9,900/20 = 965.
    assert c.health("hank").value < c.health("hank").initial
    c.sell("carol", BTC, px(94_000), sz("0.1"))
    assert c.buy("hank", BTC, px(94_000), sz("0.1"), IOC).ok
    assert c.size("hank", BTC) == 0


# ---------------------------------------------------------------- leverage
def test_leverage_bounds_and_mode_switch(small: Chain) -> None:
    c = small
    assert c.leverage("dave2", BTC, 51).code == "INVALID_LEVERAGE"  # BTC max 50
    assert c.leverage("dave2", ETH, 26).code == "INVALID_LEVERAGE"  # ETH max 25
    assert c.leverage("dave2", BTC, 0).code == "DECODE"  # the action's schema says 1..
    assert c.leverage("dave2", ETH, 25).ok and c.leverage("dave2", BTC, 1).ok and c.leverage("dave2", BTC, 50).ok
    assert c.position("dave2", BTC).leverage == 50  # kept while flat
    c.leverage("dave2", BTC, 20)
    take(c, "dave2", "bob", BUY, px(90_000), sz("0.2"))  # 18,000 at 20x: IM 900, value 991.9
    assert c.leverage("dave2", BTC, 20, cross=False).code == "INVALID_MARGIN_MODE"
    # Decrease to 10x: IM 1,800 > 991.9: refused, nothing changes.
    assert c.leverage("dave2", BTC, 10).code == "INVALID_LEVERAGE"
    assert c.position("dave2", BTC).leverage == 20
    # 19x: ceil(18,000 / 19) = 947.368422 <= 991.9: allowed. 18x: 1,000 > 991.9: refused.
    assert c.leverage("dave2", BTC, 19).ok
    assert c.leverage("dave2", BTC, 18).code == "INVALID_LEVERAGE"
    assert c.leverage("dave2", BTC, 50).ok  # an increase is always fine
    assert c.health("dave2").initial == 360 * USDC  # 18,000 / 50
    # Flat again: the mode may change.
    take(c, "dave2", "bob", SELL, px(90_000), sz("0.2"))
    assert c.leverage("dave2", BTC, 10, cross=False).ok
    assert not c.position("dave2", BTC).is_cross


# ---------------------------------------------------------------- isolated margin
def test_isolated_position_lifecycle(c: Chain) -> None:
    c.fund(erin2=10_000)
    assert c.leverage("erin2", BTC, 7, cross=False).ok
    take(c, "erin2", "bob", BUY, px(90_000), sz("0.1"))
    # Margin moved from cross: 9,000,000,000 / 7 = 1,285,714,285.71... -> rounded up 1,285,714,286.
    margin = 1_285_714_286
    assert c.cash("erin2") == 10_000 * USDC - margin  # 8,714,285,714
    # Bucket: margin - notional - taker fee = 1,285,714,286 - 9,000,000,000 - 4,050,000.
    assert c.iso_cash("erin2", BTC) == margin - 9_000 * USDC - 4_050_000 == -7_718_335_714
    # Isolated value at mark 90,000 = bucket + 100 x 90_000_000 = margin - fee = 1,281,664,286.
    assert c.health("erin2").initial == 0  # isolated positions are not in cross margin
    c.check_invariants()

    # Add 100 USDC.
    assert c.iso_margin("erin2", BTC, 100 * USDC).ok
    assert c.iso_cash("erin2", BTC) == -7_618_335_714
    assert c.cash("erin2") == 8_614_285_714
    # More than cross could withdraw is refused.
    assert c.iso_margin("erin2", BTC, 8_614_285_715).code == "INSUFFICIENT_BALANCE"
    # Remove: value 1,381,664,286 must stay >= IM ceil(9,000 / 7 USDC) = 1,285,714,286:
    # at most 95,950,000 can come out.
    assert c.iso_margin("erin2", BTC, -95_950_001).code == "INSUFFICIENT_MARGIN"
    assert c.iso_margin("erin2", BTC, -95_950_000).ok
    assert c.iso_cash("erin2", BTC) + 100 * 90_000_000 == margin
    assert c.iso_margin("erin2", BTC, 0).code == "INVALID_AMOUNT"
    assert c.iso_margin("erin2", ETH, 1).code == "INVALID_MARGIN_MODE"  # no isolated ETH position
    c.check_invariants()

    # Close: the bucket (proceeds 9,000 USDC - fee 4.05 included) returns to cross.
    take(c, "erin2", "carol", SELL, px(90_000), sz("0.1"))
    pos = c.position("erin2", BTC)
    assert (pos.size, pos.iso_cash, pos.is_cross, pos.leverage) == (0, 0, False, 7)
    # 10,000 USDC less two taker fees of 4.05.
    assert c.cash("erin2") == usdc("9991.9")
    assert c.iso_margin("erin2", BTC, 1).code == "INVALID_MARGIN_MODE"  # flat: no bucket
    c.check_invariants()


def test_isolated_flip_returns_the_bucket_and_funds_the_new_side(c: Chain) -> None:
    c.fund(erin3=10_000)
    c.leverage("erin3", BTC, 10, cross=False)
    take(c, "erin3", "bob", BUY, px(90_000), sz("0.1"))
    # Margin 9,000 / 10 = 900 to the bucket: bucket = 900 - 9,000 - 4.05 = -8,104.05; cross 9,100.
    assert (c.iso_cash("erin3", BTC), c.cash("erin3")) == (usdc("-8104.05"), 9_100 * USDC)
    # Decreasing leverage to 5x would need IM 1,800 > value 895.95: refused.
    assert c.leverage("erin3", BTC, 5, cross=False).code == "INVALID_LEVERAGE"
    fill = take(c, "erin3", "carol", SELL, px(90_000), sz("0.3"))
    # Close 0.1: bucket + 9,000 - taker fee on the whole 27,000 (12.15) = 883.8 back to cross
    # -> 9,983.8; open short 0.2: margin 18,000 / 10 = 1,800 moves out -> cross 8,183.8;
    # new bucket = 1,800 + 18,000 proceeds = 19,800, worth 19,800 - 0.2 x 90,000 = 1,800.
    assert fill.taker_fee == usdc("12.15") and fill.taker_realized_pnl == 0
    pos = c.position("erin3", BTC)
    assert (pos.size, pos.cost, pos.iso_cash, pos.is_cross) == (-200, -18_000 * USDC, 19_800 * USDC, False)
    assert c.cash("erin3") == usdc("8183.8")
    assert c.account("erin3").open_markets == [BTC]
    c.check_invariants()


def test_isolated_taker_needs_the_margin_in_cross(small: Chain) -> None:
    c = small
    c.leverage("erin", BTC, 10, cross=False)
    c.sell("bob", BTC, px(90_000), sz("0.2"))
    # 18,000 / 10 = 1,800 USDC of margin but only 1,000 in cross.
    assert c.buy("erin", BTC, px(90_000), sz("0.2"), IOC).code == "INSUFFICIENT_MARGIN"
    r = c.buy("erin", BTC, px(90_000), sz("0.1"), IOC)  # 900 USDC
    assert r.ok and c.cash("erin") == 100 * USDC
    c.check_invariants()


def test_isolated_loss_stays_in_the_bucket(c: Chain) -> None:
    c.fund(ivy=10_000)
    c.leverage("ivy", BTC, 10, cross=False)
    take(c, "ivy", "bob", BUY, px(90_000), sz("0.1"))  # margin 900, fee 4.05
    take(c, "ivy", "carol", SELL, px(89_000), sz("0.1"))  # loss 100, fee 4.005
    # Bucket back in cross: 10,000 - 100 - 4.05 - 4.005 = 9,891.945.
    assert c.cash("ivy") == usdc("9891.945")
    c.check_invariants()


# ---------------------------------------------------------------- withdrawals
def test_withdrawal_keeps_value_above_ten_percent_of_notional(small: Chain) -> None:
    """Regression: withdrawable was capped at cross cash, which is negative for any leveraged
    long (cash pays the notional), so a long could never withdraw while a short could."""
    c = small
    c.fund(frank=2_000)
    take(c, "frank", "bob", BUY, px(90_000), sz("0.1"))
    # Value 2,000 - 4.05 = 1,995.95; notional 9,000: IM (20x) 450, 10% = 900 -> floor 900.
    assert c.cash("frank") < 0
    assert c.withdraw("frank", usdc("1095.950001")).code == "INSUFFICIENT_BALANCE"
    assert c.transfer("frank", "alice", usdc("1095.950001")).code == "INSUFFICIENT_BALANCE"
    assert c.withdraw("frank", usdc("1095.95")).ok
    assert c.value("frank") == 900 * USDC
    assert c.transfer("frank", "alice", 1).code == "INSUFFICIENT_BALANCE"
    c.check_invariants()


def test_withdrawal_keeps_value_above_initial_margin(small: Chain) -> None:
    c = small
    c.fund(gus=2_000, hal=2_000)
    c.leverage("gus", BTC, 5)
    take(c, "gus", "bob", BUY, px(90_000), sz("0.1"))
    # 5x: IM 9,000 / 5 = 1,800 > 10% (900): withdrawable = 1,995.95 - 1,800 = 195.95.
    assert c.withdraw("gus", usdc("195.950001")).code == "INSUFFICIENT_BALANCE"
    assert c.withdraw("gus", usdc("195.95")).ok
    # A short has the same limit: 1,995.95 - 900 (its cash is 10,995.95 but value counts).
    take(c, "hal", "bob", SELL, px(90_000), sz("0.1"))
    assert c.withdraw("hal", usdc("1095.950001")).code == "INSUFFICIENT_BALANCE"
    assert c.withdraw("hal", usdc("1095.95")).ok
    c.check_invariants()
