"""Order types and order rules (protocol §10.1-§10.3): TIFs, market orders, reduce-only,
self-trade prevention, price/size/notional rules, cancel/modify, agents, TP/SL.

Units (demo genesis): BTC (market 0) has sz_decimals 3, so a size is lots of
0.001 BTC and a price is units of 0.001 USDC (90,000 USDC = 90_000_000);
price x size is micro-USDC. ETH (market 1) has sz_decimals 2: lots of 0.01 ETH,
prices in 0.0001 USDC. Marks are pinned (tests/helpers.py) at the genesis
prices, 90,000 (BTC) and 3,200 (ETH), unless a test moves them.
"""

from __future__ import annotations

import pytest

from clearinghouse.spec.errors import InvalidPrice
from clearinghouse.spec.trading.order_rules import check_price, significant_figures, slippage_limit
from clearinghouse.tools.demo import demo_markets
from tests.helpers import ALO, BTC, BUY, ETH, FOK, GTC, IOC, SELL, USDC, Chain, px, sz
from tx import actions as A


@pytest.fixture
def c() -> Chain:
    c = Chain(pin_marks=True)
    c.fund(alice=100_000, bob=100_000, carol=100_000, dave=100_000)
    return c


# ---------------------------------------------------------------- time in force
def test_gtc_rests_without_touching_positions(c: Chain) -> None:
    cash = c.cash("alice")
    r = c.buy("alice", BTC, px(89_000), sz("0.1"), GTC)
    assert r.ok
    assert (r.status.status, r.status.remaining) == ("resting", 100)
    [order] = c.book(BTC, BUY)
    assert (order.oid, order.price, order.size, order.orig_size) == (r.oid, 89_000_000, 100, 100)
    assert c.size("alice", BTC) == 0 and c.cash("alice") == cash
    assert c.account("alice").open_orders == 1


def test_ioc_fills_what_it_can_and_cancels_the_rest(c: Chain) -> None:
    c.sell("bob", BTC, px(90_000), sz("0.05"))
    c.sell("bob", BTC, px(90_100), sz("0.05"))
    # Limit 90,050 reaches only the 90,000 ask: 0.05 of 0.2 fills, 0.15 (150 lots) is cancelled.
    r = c.buy("alice", BTC, px(90_050), sz("0.2"), IOC)
    assert r.ok
    assert [(f.price, f.size) for f in r.fills] == [(90_000_000, 50)]
    assert (r.status.status, r.status.reason, r.status.remaining) == ("canceled", "ioc_remainder", 150)
    assert c.book(BTC, BUY) == []  # nothing of an IOC ever rests
    assert [o.price for o in c.book(BTC, SELL)] == [90_100_000]
    assert c.size("alice", BTC) == 50 and c.size("bob", BTC) == -50

    r = c.buy("alice", BTC, px(90_000), sz("0.01"), IOC)  # nothing at or below 90,000 now
    assert r.ok and r.fills == []
    assert (r.status.status, r.status.reason) == ("canceled", "ioc_unfilled")
    assert c.book(BTC, BUY) == []
    c.check_invariants()


def test_fok_fills_completely_or_is_rejected_with_no_state_change(c: Chain) -> None:
    c.sell("bob", BTC, px(90_000), sz("0.05"))
    c.sell("carol", BTC, px(90_100), sz("0.05"))
    before = c.trading_snapshot()
    # 0.1 is available up to 90,100, not 0.2: the whole transaction is rejected.
    r = c.buy("alice", BTC, px(90_100), sz("0.2"), FOK)
    assert not r.ok and r.code == "FOK_NOT_FILLED" and r.events == []
    assert c.trading_snapshot() == before
    # Exactly the available 0.1: both asks fill, the order is "filled".
    r = c.buy("alice", BTC, px(90_100), sz("0.1"), FOK)
    assert r.ok
    assert [(f.maker_oid, f.price, f.size) for f in r.fills] == [(1, 90_000_000, 50), (2, 90_100_000, 50)]
    assert (r.status.status, r.status.remaining) == ("filled", 0)
    assert c.size("alice", BTC) == 100 and c.book(BTC, SELL) == []
    c.check_invariants()


def test_fok_rejection_undoes_self_trade_cancels(c: Chain) -> None:
    own = c.sell("alice", BTC, px(90_000), sz("0.05")).oid
    c.sell("bob", BTC, px(90_000), sz("0.05"))
    before = c.trading_snapshot()
    r = c.buy("alice", BTC, px(90_000), sz("0.1"), FOK)  # only bob's 0.05 is fillable
    assert r.code == "FOK_NOT_FILLED"
    assert c.trading_snapshot() == before and c.order(own) is not None


def test_alo_rests_or_is_rejected_if_it_would_take(c: Chain) -> None:
    c.sell("bob", BTC, px(90_000), sz("0.1"))
    r = c.buy("alice", BTC, px(89_999), sz("0.1"), ALO)  # below the best ask: rests
    assert r.ok and r.status.status == "resting"
    before = c.trading_snapshot()
    r = c.buy("alice", BTC, px(90_000), sz("0.1"), ALO)  # would take the 90,000 ask
    assert not r.ok and r.code == "ALO_WOULD_TAKE"
    assert c.trading_snapshot() == before
    r = c.sell("carol", BTC, px(89_999), sz("0.1"), ALO)  # would take alice's bid
    assert r.code == "ALO_WOULD_TAKE"
    assert c.size("alice", BTC) == 0 and c.size("carol", BTC) == 0


# ---------------------------------------------------------------- market orders
def test_market_order_fills_only_up_to_the_slippage_bound(c: Chain) -> None:
    for price in (90_000, 90_900, 91_000):
        c.sell("bob", BTC, px(price), sz("0.01"))
    # Buy limit = mark x (1 + 100 bps) = 90,000 x 1.01 = 90,900 USDC = 90_900_000 (exact).
    assert slippage_limit(90_000_000, True, 100) == 90_900_000
    r = c.market("alice", BTC, BUY, sz("0.05"), slippage_bps=100)
    assert r.ok
    assert [(f.price, f.size) for f in r.fills] == [(90_000_000, 10), (90_900_000, 10)]
    assert (r.status.status, r.status.reason, r.status.remaining) == ("canceled", "ioc_remainder", 30)
    assert [o.price for o in c.book(BTC, SELL)] == [91_000_000]
    assert c.book(BTC, BUY) == []  # a market order never rests

    # Sell limit = 90,000 x 0.99 = 89,100.
    c.buy("carol", BTC, px(89_100), sz("0.01"))
    c.buy("carol", BTC, px(89_099), sz("0.01"))
    r = c.market("dave", BTC, SELL, sz("0.02"), slippage_bps=100)
    assert [(f.price, f.size) for f in r.fills] == [(89_100_000, 10)]
    c.check_invariants()


def test_market_order_bound_rounds_toward_the_mark() -> None:
    # Mark 10.001 USDC = 10_001 price units (BTC: units of 0.001 USDC), slippage 1 bp.
    # Buy: 10_001 x 10_001 / 10_000 = 10_002.0001 -> rounded down to 10_002 (10.002 USDC).
    # Sell: 10_001 x 9_999 / 10_000 = 9_999.9999 -> rounded up to 10_000 (10.000 USDC).
    assert slippage_limit(10_001, True, 1) == 10_002
    assert slippage_limit(10_001, False, 1) == 10_000
    c = Chain(pin_marks=True)
    c.set_mark(BTC, 10_001)
    c.fund(alice=100_000, bob=100_000)
    # Both resting prices are valid 5-significant-figure prices; 1 BTC x 10.003 = 10.003 USDC >= 10.
    ask_in = c.sell("bob", BTC, 10_002, sz(1)).oid
    ask_out = c.sell("bob", BTC, 10_003, sz(1)).oid  # would fill had the bound been rounded up
    r = c.market("alice", BTC, BUY, sz(2), slippage_bps=1)
    assert [(f.maker_oid, f.price) for f in r.fills] == [(ask_in, 10_002)]
    assert c.order(ask_out) is not None
    bid_in = c.buy("bob", BTC, 10_000, sz(2)).oid
    bid_out = c.buy("bob", BTC, 9_999, sz(2)).oid  # would fill had the sell bound been rounded down
    r = c.market("alice", BTC, SELL, sz(4), slippage_bps=1)
    assert [(f.maker_oid, f.price) for f in r.fills] == [(bid_in, 10_000)]
    assert c.order(bid_out) is not None


# ---------------------------------------------------------------- reduce-only
def test_reduce_only_rejected_without_a_position_or_on_the_same_side(c: Chain) -> None:
    r = c.sell("alice", BTC, px(90_000), sz("0.1"), GTC, reduce_only=True)
    assert r.code == "REDUCE_ONLY"
    c.trade("alice", "bob", BTC, px(90_000), sz("0.1"))  # alice long 0.1
    assert c.buy("alice", BTC, px(90_000), sz("0.1"), IOC, reduce_only=True).code == "REDUCE_ONLY"
    assert c.market("alice", BTC, BUY, sz("0.1"), reduce_only=True).code == "REDUCE_ONLY"
    assert c.sell("bob", BTC, px(91_000), sz("0.1"), reduce_only=True).code == "REDUCE_ONLY"  # bob is short
    assert c.size("alice", BTC) == 100


def test_reduce_only_is_capped_at_the_position(c: Chain) -> None:
    c.trade("alice", "bob", BTC, px(90_000), sz("0.1"))  # alice long 100 lots
    c.buy("carol", BTC, px(90_000), sz("0.3"))
    r = c.sell("alice", BTC, px(90_000), sz("0.3"), IOC, reduce_only=True)
    assert r.ok and r.filled_size() == 100  # 0.1 of 0.3: the rest would open a short
    assert c.size("alice", BTC) == 0
    assert c.book(BTC, BUY)[0].size == 200  # carol's bid keeps 0.3 - 0.1
    # A resting reduce-only order is capped too: long 0.1, reduce-only ask of 0.3 rests as 0.1.
    c.trade("alice", "dave", BTC, px(91_000), sz("0.1"))  # above carol's bid: dave's ask rests
    r = c.sell("alice", BTC, px(92_000), sz("0.3"), GTC, reduce_only=True)
    assert (r.status.status, r.status.remaining) == ("resting", 100)
    assert c.order(r.oid).size == 100 and c.order(r.oid).orig_size == 300
    c.check_invariants()


def test_resting_reduce_only_is_cancelled_once_the_position_is_gone(c: Chain) -> None:
    c.trade("alice", "bob", BTC, px(90_000), sz("0.1"))  # alice long 0.1
    ro = c.sell("alice", BTC, px(91_000), sz("0.1"), GTC, reduce_only=True).oid
    other = c.sell("dave", BTC, px(91_000), sz("0.1")).oid  # same price, behind alice in time
    # alice closes her long elsewhere: sells 0.1 into carol's bid.
    c.buy("carol", BTC, px(90_000), sz("0.1"))
    assert c.sell("alice", BTC, px(90_000), sz("0.1"), IOC).filled_size() == 100
    assert c.size("alice", BTC) == 0
    # The next taker that reaches the reduce-only order finds it can no longer reduce:
    # it is cancelled (reason reduce_only) and the taker fills against dave's ask.
    r = c.buy("carol", BTC, px(91_000), sz("0.1"), IOC)
    assert [(s.oid, s.reason) for s in r.canceled("reduce_only")] == [(ro, "reduce_only")]
    assert [(f.maker_oid, f.size) for f in r.fills] == [(other, 100)]
    assert c.order(ro) is None and c.size("alice", BTC) == 0
    assert c.account("alice").open_orders == 0
    c.check_invariants()


# ---------------------------------------------------------------- self-trade prevention
def test_self_trade_cancels_the_resting_order_and_continues(c: Chain) -> None:
    own = c.sell("alice", BTC, px(90_000), sz("0.05")).oid
    bobs = c.sell("bob", BTC, px(90_000), sz("0.05")).oid
    r = c.buy("alice", BTC, px(90_000), sz("0.05"), IOC)
    assert [(s.oid, s.status, s.reason) for s in r.canceled("self_trade")] == [(own, "canceled", "self_trade")]
    assert [(f.maker_oid, f.taker, f.maker) for f in r.fills] == [(bobs, c.addr("alice"), c.addr("bob"))]
    assert c.order(own) is None and c.book(BTC, SELL) == []
    assert c.size("alice", BTC) == 50 and c.size("bob", BTC) == -50
    c.check_invariants()


# ---------------------------------------------------------------- price, size, notional rules
def test_significant_figures_rule() -> None:
    btc, eth = demo_markets()
    assert significant_figures(90_000_500) == 6
    with pytest.raises(InvalidPrice):
        check_price(btc, 90_000_500)  # 90,000.5 USDC: 6 significant figures, not an integer
    check_price(btc, 100_001_000)  # 100,001 USDC: 6 significant figures but a whole number of USDC
    check_price(eth, 32_005_000)  # 3,200.5 USDC: 5 significant figures
    with pytest.raises(InvalidPrice):
        check_price(eth, 32_005_500)  # 3,200.55 USDC: 6


def test_price_and_notional_rejections(c: Chain) -> None:
    # 90,000.5 USDC = 90_000_500 units: 6 significant figures and not a whole USDC.
    assert c.buy("alice", BTC, 90_000_500, sz("0.1")).code == "INVALID_PRICE"
    assert c.buy("alice", BTC, px("90000.5"), sz("0.1"), IOC).code == "INVALID_PRICE"
    # 100,001 USDC: 6 significant figures, but integer prices are always valid.
    r = c.sell("alice", BTC, px(100_001), sz("0.001"))
    assert r.ok and r.status.status == "resting"
    # 5 significant figures with decimals: 89,999 and 3,200.5 (ETH) are fine; 3,200.55 is not.
    assert c.buy("alice", BTC, px(89_999), sz("0.001")).ok
    assert c.buy("alice", ETH, px("3200.5", ETH), sz(1, ETH)).ok
    assert c.buy("alice", ETH, px("3200.55", ETH), sz(1, ETH)).code == "INVALID_PRICE"
    # Minimum notional 10 USDC: 0.01 ETH x 999.9 = 9.999 USDC (9_999_000 units x 1 lot = 9_999_000 micro).
    assert c.buy("alice", ETH, px("999.9", ETH), sz("0.01", ETH)).code == "MIN_NOTIONAL"
    assert c.buy("alice", ETH, px(1_000, ETH), sz("0.01", ETH)).ok  # exactly 10 USDC
    # BTC 0.001 x 9,999 = 9.999 USDC.
    assert c.buy("alice", BTC, px(9_999), sz("0.001")).code == "MIN_NOTIONAL"
    # Band: within 95% of the 90,000 mark means 4,500 .. 175,500 (90,000 x 5% and x 195%).
    assert c.buy("alice", BTC, px(4_499), sz("0.01")).code == "INVALID_PRICE"
    assert c.buy("alice", BTC, px(4_500), sz("0.01")).ok
    assert c.sell("alice", BTC, px(175_500), sz("0.001")).ok
    assert c.sell("alice", BTC, px(175_510), sz("0.001")).code == "INVALID_PRICE"
    assert c.size("alice", BTC) == 0


def test_reduce_only_may_close_below_min_notional(c: Chain) -> None:
    c.trade("alice", "bob", BTC, px(90_000), sz("0.1"))
    assert c.buy("carol", BTC, px(9_000), sz("0.01")).ok  # 90 USDC
    # 0.001 x 9,000 = 9 USDC: below the minimum, allowed only because it is reduce-only.
    assert c.sell("alice", BTC, px(9_000), sz("0.001"), IOC).code == "MIN_NOTIONAL"
    r = c.sell("alice", BTC, px(9_000), sz("0.001"), IOC, reduce_only=True)
    assert r.ok and r.filled_size() == 1


# ---------------------------------------------------------------- cancel, modify, client ids
def test_cancel_by_oid_and_by_cloid(c: Chain) -> None:
    a = c.buy("alice", BTC, px(89_000), sz("0.1")).oid
    b = c.buy("alice", BTC, px(88_000), sz("0.1"), cloid=7).oid
    assert c.cancel("bob", BTC, a).code == "ORDER_NOT_FOUND"  # not bob's order
    assert c.cancel("alice", ETH, a).code == "ORDER_NOT_FOUND"  # wrong market
    r = c.cancel("alice", BTC, a)
    assert r.ok and (r.status.oid, r.status.status, r.status.reason) == (a, "canceled", "user")
    r = c.cancel_cloid("alice", BTC, 7)
    assert r.ok and r.status.oid == b
    assert c.book(BTC, BUY) == [] and c.account("alice").open_orders == 0
    assert c.cancel("alice", BTC, a).code == "ORDER_NOT_FOUND"
    assert c.cancel_cloid("alice", BTC, 7).code == "ORDER_NOT_FOUND"


def test_cancels_run_before_takers_in_a_block(c: Chain) -> None:
    ask = c.sell("bob", BTC, px(90_000), sz("0.1")).oid
    # Producer order: alice's IOC first, bob's cancel second; cancels execute first (protocol §6.4).
    r = c.block(c.order_tx("alice", BTC, BUY, px(90_000), sz("0.1"), IOC), c.cancel_tx("bob", BTC, ask))
    assert r.all_ok and r.fills == []
    assert c.size("alice", BTC) == 0


def test_duplicate_cloid_rejected_while_open(c: Chain) -> None:
    c.buy("alice", BTC, px(89_000), sz("0.1"), cloid=42)
    before = c.trading_snapshot()
    assert c.buy("alice", BTC, px(88_000), sz("0.1"), cloid=42).code == "DUPLICATE_CLOID"
    assert c.trading_snapshot() == before
    assert c.buy("bob", BTC, px(88_000), sz("0.1"), cloid=42).ok  # client ids are per account
    c.cancel_cloid("alice", BTC, 42)
    assert c.buy("alice", BTC, px(88_000), sz("0.1"), cloid=42).ok  # free again once closed


def test_modify_changes_price_and_size_and_loses_priority(c: Chain) -> None:
    a = c.buy("alice", BTC, px(89_000), sz("0.1"), cloid=5).oid
    b = c.buy("bob", BTC, px(89_000), sz("0.1")).oid
    assert [o.oid for o in c.book(BTC, BUY)] == [a, b]
    r = c.modify("alice", BTC, a, px(89_000), sz("0.2"))
    assert r.ok
    assert [(s.oid, s.reason) for s in r.canceled()] == [(a, "modified")]
    new = r.oid
    assert new > b and c.order(a) is None
    assert [(o.oid, o.size, o.cloid) for o in c.book(BTC, BUY)] == [(b, 100, 0), (new, 200, 5)]
    # carol sells 0.1 at 89,000: bob, now first in time, fills.
    r = c.sell("carol", BTC, px(89_000), sz("0.1"), IOC)
    assert [f.maker_oid for f in r.fills] == [b]
    # Modify to a crossing price: the replacement (GTC) takes like a new order.
    c.sell("dave", BTC, px(89_500), sz("0.05"))
    r = c.modify("alice", BTC, new, px(89_500), sz("0.2"))
    assert [(f.price, f.size) for f in r.fills] == [(89_500_000, 50)]
    assert (r.status.status, r.status.remaining) == ("resting", 150)
    assert c.cancel_cloid("alice", BTC, 5).ok  # the client id followed the order
    assert c.modify("bob", BTC, r.oid, px(89_000), sz("0.1")).code == "ORDER_NOT_FOUND"


# ---------------------------------------------------------------- agents
def test_agent_trades_for_its_owner_but_cannot_move_funds(c: Chain) -> None:
    agent = c.wallet("alice-agent")
    assert c.one("alice", A.ApproveAgent(agent=agent.address, approve=True)).ok
    c.sell("bob", BTC, px(90_000), sz("0.1"))
    r = c.one(
        "alice-agent",
        A.PlaceOrder(market=BTC, is_buy=True, price=px(90_000), size=sz("0.05"), tif=IOC, reduce_only=False, cloid=0),
    )
    assert r.ok and r.receipt.account == c.addr("alice") and r.receipt.signer == agent.address
    assert c.size("alice", BTC) == 50 and c.position("alice-agent", BTC) is None
    rest = c.one(
        "alice-agent",
        A.PlaceOrder(market=BTC, is_buy=True, price=px(89_000), size=sz("0.05"), tif=GTC, reduce_only=False, cloid=9),
    )
    assert c.order(rest.oid).owner == c.addr("alice")
    assert c.one("alice-agent", A.CancelByCloid(market=BTC, cloid=9)).ok
    assert c.order(rest.oid) is None
    before = c.trading_snapshot()
    assert c.one("alice-agent", A.Withdraw(amount=1 * USDC, destination=agent.address)).code == "UNAUTHORIZED"
    assert c.one("alice-agent", A.Transfer(to=agent.address, amount=1 * USDC)).code == "UNAUTHORIZED"
    assert c.one("alice-agent", A.UpdateLeverage(market=BTC, leverage=5, is_cross=True)).code == "UNAUTHORIZED"
    assert c.trading_snapshot() == before


# ---------------------------------------------------------------- TP/SL triggers
def test_stop_loss_fires_when_the_mark_falls_and_closes_against_bids(c: Chain) -> None:
    c.trade("alice", "bob", BTC, px(90_000), sz("0.1"))  # alice long 0.1 at 90,000
    r = c.trigger("alice", BTC, SELL, sz("0.1"), px(85_000), tp=False)  # market stop, reduce-only
    assert r.ok and r.status.status == "trigger_pending"
    sl = r.oid
    c.buy("carol", BTC, px(84_000), sz("0.1"))
    assert c.move_mark(BTC, px(85_001)).fills == []  # above the trigger: nothing
    assert c.order(sl) is not None and c.size("alice", BTC) == 100
    blk = c.move_mark(BTC, px(85_000))  # mark <= trigger: fires as a market sell (bound 76,500)
    st = [(s.oid, s.status) for s in blk.statuses if s.oid == sl]
    assert st == [(sl, "triggered"), (sl, "filled")]
    [fill] = blk.fills
    # Realized = (84,000 - 90,000) x 0.1 = -600 USDC.
    assert (fill.taker, fill.price, fill.size, fill.taker_realized_pnl) == (
        c.addr("alice"),
        84_000_000,
        100,
        -600 * USDC,
    )
    assert c.size("alice", BTC) == 0 and c.order(sl) is None
    assert c.account("alice").open_orders == 0
    c.check_invariants()


def test_take_profit_fires_when_the_mark_rises(c: Chain) -> None:
    c.trade("alice", "bob", BTC, px(90_000), sz("0.1"))
    tp = c.trigger("alice", BTC, SELL, sz("0.1"), px(95_000), tp=True, limit_price=px(94_000)).oid
    c.buy("carol", BTC, px(94_000), sz("0.1"))
    assert c.move_mark(BTC, px(94_999)).fills == []
    blk = c.move_mark(BTC, px(95_000))
    [fill] = blk.fills
    # Realized = (94,000 - 90,000) x 0.1 = +400 USDC.
    assert (fill.taker_oid, fill.price, fill.taker_realized_pnl) == (tp, 94_000_000, 400 * USDC)
    assert c.size("alice", BTC) == 0
    c.check_invariants()


def test_short_stop_loss_fires_on_a_rise(c: Chain) -> None:
    c.trade("bob", "alice", BTC, px(90_000), sz("0.1"))  # alice short 0.1
    c.trigger("alice", BTC, BUY, sz("0.1"), px(92_000), tp=False)
    c.sell("carol", BTC, px(92_500), sz("0.1"))
    assert c.move_mark(BTC, px(91_999)).fills == []
    [fill] = c.move_mark(BTC, px(92_000)).fills
    # Realized on a short = (entry - exit) x 0.1 = (90,000 - 92,500) x 0.1 = -250 USDC.
    assert (fill.price, fill.taker_realized_pnl) == (92_500_000, -250 * USDC)
    assert c.size("alice", BTC) == 0


def test_triggers_cancel_by_oid_and_by_cloid(c: Chain) -> None:
    c.trade("alice", "bob", BTC, px(90_000), sz("0.1"))
    sl = c.trigger("alice", BTC, SELL, sz("0.1"), px(85_000), tp=False).oid
    c.trigger("alice", BTC, SELL, sz("0.1"), px(95_000), tp=True, cloid=77)
    assert len(c.triggers(BTC)) == 2 and c.account("alice").open_orders == 2
    r = c.cancel("alice", BTC, sl)
    assert r.ok and (r.status.oid, r.status.reason) == (sl, "user")
    assert c.cancel_cloid("alice", BTC, 77).ok
    assert c.triggers(BTC) == [] and c.account("alice").open_orders == 0
    c.buy("carol", BTC, px(84_000), sz("0.1"))
    blk = c.move_mark(BTC, px(80_000))
    assert blk.fills == [] and c.size("alice", BTC) == 100


def test_reduce_only_trigger_without_position_is_cancelled_when_it_fires(c: Chain) -> None:
    sl = c.trigger("alice", BTC, SELL, sz("0.1"), px(85_000), tp=False).oid
    blk = c.move_mark(BTC, px(85_000))
    assert [(s.status, s.reason) for s in blk.statuses if s.oid == sl] == [
        ("triggered", ""),
        ("canceled", "reduce_only"),
    ]
    assert c.order(sl) is None and c.account("alice").open_orders == 0


def test_stop_loss_fires_from_an_oracle_update() -> None:
    """The same stop-loss with real marks: the price step, not a pin, moves the mark."""
    c = Chain()
    c.fund(alice=100_000, bob=100_000, carol=100_000)
    c.trade("alice", "bob", BTC, px(90_000), sz("0.1"))  # last trade 90,000; the book is empty again
    sl = c.trigger("alice", BTC, SELL, sz("0.1"), px(85_000), tp=False).oid
    assert c.mark(BTC) == px(90_000)
    # One block: the oracle publishes 84,000 and carol bids 84,000. The mark's sources are
    # (a) oracle 84,000 (no basis EMA yet: the book never had both sides) and
    # (b) lower median(best bid 84,000, last 90,000) = 84,000: two of three agree, so the
    # mark is 84,000 <= 85,000 and the stop fires in the same block, after the prices step.
    oracle = A.OracleUpdate(prices=[A.OraclePrice(market=BTC, oracle_price=px(84_000), external_price=0)])
    blk = c.block(
        [c.tx(o, oracle) for o in ("oracle-1", "oracle-2", "oracle-3")]
        + [c.order_tx("carol", BTC, BUY, px(84_000), sz("0.1"))]
    )
    assert blk.all_ok and c.mark(BTC) == px(84_000)
    [fill] = blk.fills
    assert (fill.taker_oid, fill.price, fill.taker_realized_pnl) == (sl, px(84_000), -600 * USDC)
    assert c.size("alice", BTC) == 0
    c.check_invariants()


def test_failed_trigger_leaves_no_events_of_its_undone_fills(c: Chain) -> None:
    """Regression: when a fired trigger's order raised part-way (here a cash overflow on its
    second fill), its state was undone but the Fill events of its first fill were kept."""
    # erin's cash starts 500 USDC below the i64 maximum (2^63 - 1 micro-USDC).
    big = 2**63 - 1 - 500 * USDC
    assert c.block(c.tx("bridge", A.Deposit(to=c.addr("erin"), amount=big, ref=9)))[0].ok
    c.trade("erin", "bob", BTC, px(90_000), sz("0.1"))  # cash -9,004.05 USDC
    tp = c.trigger("erin", BTC, SELL, sz("0.1"), px(95_000), tp=True).oid
    carol = c.buy("carol", BTC, px(100_000), sz("0.05")).oid
    dave = c.buy("dave", BTC, px(100_000), sz("0.05")).oid
    before = c.trading_snapshot()
    # Fill 1: +5,000 - 2.25 fee -> 4,006.3 USDC below the max; fill 2 would end 991.45 above it.
    blk = c.move_mark(BTC, px(100_000))
    assert blk.fills == []
    assert [(s.status, s.reason) for s in blk.statuses if s.oid == tp][-1] == ("canceled", "invalid_amount")
    after = c.trading_snapshot()
    assert c.order(tp) is None and c.order(carol) is not None and c.order(dave) is not None
    assert c.size("erin", BTC) == 100
    # Only the trigger itself (and erin's open-order count) changed.
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert all(k[:1] in (b"T", b"I", b"A") for k in changed), changed
    c.check_invariants()
