"""One crash, three policies (protocol §12.2): hyperliquid, bitmex and seed differ where documented.

The situation (fee-free BTC, marks pinned, insurance fund 1,000):

* L: isolated long 12 BTC at 10,000, 20x: bucket 6,000, iso_cash 6,000 - 120,000 = -114,000.
* Q: cross short 12 BTC at 10,000 (L's counterparty), deposit 21,000.
* P: cross short 6 BTC at 9,700 (sold to X while the mark was 9,700), deposit 7,600.
* mm bids 12 BTC at 9,300.

The mark falls to 9,400: L's value is -114,000 + 112,800 = -1,200 < MM 1,128, bankruptcy
9,400 + 1,200 / 12 = 9,500 (= 10,000 - 6,000 / 12). At 9,400:

* P: uPnL 6 x 300 = 1,800 on |cost| 58,200, value 7,600 + 1,800 = 9,400, leverage 56,400 / 9,400 = 6;
* Q: uPnL 12 x 600 = 7,200 on 120,000, value 21,000 + 7,200 = 28,200, leverage 112,800 / 28,200 = 4.

hyperliquid ranks P first ((1 + 3.09%) x 6 = 600/97 > 1.06 x 4 = 106/25), bitmex Q first
(3.09% x 6 = 18/97 < 6% x 4 = 6/25).
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

from clearinghouse.spec.state.keys import INSURANCE_FUND
from clearinghouse.spec.waterfall.events import (
    AdlQueue,
    AdlShortfall,
    AdlStep,
    Backstop,
    DeficitCover,
    InsuranceCover,
    MarketLiquidation,
)
from clearinghouse.spec.waterfall.policies import POLICIES, policy_of
from tests.helpers import BUY
from tests.waterfall_helpers import BTC, WChain, of_type, one, px, sz, usdc


def crash(policy: str):
    c = WChain(policy, fund=1_000)
    c.fund(L=6_100, Q=21_000, P=7_600, X=100_000, mm=100_000)
    c.isolated("L", BTC, 20)
    c.trade("L", "Q", BTC, px(10_000), sz(12))
    c.set_mark(BTC, px(9_700))
    c.trade("X", "P", BTC, px(9_700), sz(6))
    assert c.place("mm", BTC, BUY, px(9_300), sz(12)).ok
    r = c.crash({BTC: px(9_400)})
    return c, r.end_events


def test_policy_table():
    assert sorted(POLICIES) == ["bitmex", "clawback", "hyperliquid", "pro-rata", "risk-water-filling", "seed"]
    assert [policy_of(n).adl for n in ("hyperliquid", "bitmex", "seed")] == ["queue"] * 3
    for name, adl in (("pro-rata", "pro_rata"), ("risk-water-filling", "water_filling"), ("clawback", "clawback")):
        # Liquidation exactly as hyperliquid; only step 50 differs.
        assert dataclasses.replace(policy_of(name), name="hyperliquid", adl="queue") == policy_of("hyperliquid")
        assert policy_of(name).adl == adl
    hl, bm, seed = policy_of("hyperliquid"), policy_of("bitmex"), policy_of("seed")
    assert (hl.ranking, bm.ranking, seed.ranking) == ("hyperliquid", "bitmex", "hyperliquid")
    assert hl.partial_liquidation and bm.partial_liquidation and not seed.partial_liquidation
    assert hl.fund_bounded_liquidation and bm.fund_bounded_liquidation and not seed.fund_bounded_liquidation
    assert not hl.fund_all_or_nothing and not bm.fund_all_or_nothing and seed.fund_all_or_nothing
    assert not hl.deficit_cover and not bm.deficit_cover and seed.deficit_cover


@pytest.mark.parametrize("policy", ["hyperliquid", "bitmex"])
def test_hyperliquid_and_bitmex_slice_bound_cover_and_backstop_alike(policy):
    c, ev = crash(policy)
    # Notional 112,800 > 100,000: a 20% slice of 12,000 lots = 2,400. Its limit is bounded by what the
    # fund can pay: 9,400 - (-1,200 + 1,000) / 2.4 = 9,400 + 83.333.. -> 9,483.334 (floor of the slack
    # per lot, -83.3334), above the 9,300 bid: no fill, the book cannot absorb.
    ml = one(ev, MarketLiquidation)
    assert (ml.ordered, ml.filled, ml.partial, ml.limit_price) == (2_400, 0, True, 9_483_334)
    # The fund pays what it can (1,000 of 1,200), then takes the position and the -200 at the mark.
    ic = one(ev, InsuranceCover)
    assert (ic.deficit, ic.paid, ic.fund_before, ic.fund_after) == (usdc(1_200), usdc(1_000), usdc(1_000), 0)
    b = one(ev, Backstop)
    assert (b.reason, b.margin_taken, b.fund_after) == ("below_two_thirds", usdc(-200), usdc(-200))
    # The fund (value -200, long 12) is deleveraged at 9,400 + 200 / 12 = 9,416.666.. -> 9,416.667 (up).
    q = one(ev, AdlQueue)
    assert (q.underwater, q.policy, q.bankruptcy_price, q.queue_length) == (INSURANCE_FUND, policy, 9_416_667, 2)
    assert not of_type(ev, DeficitCover) and not of_type(ev, AdlShortfall)
    # Rounding left the fund 12,000 x (9,416,667 - 9,400,000) - 200,000,000 = 4,000 micro above zero.
    assert c.fund_value() == 4_000 and c.size(INSURANCE_FUND, BTC) == 0
    assert c.book(BTC, BUY)[0].size == sz(12)  # mm's bid untouched


def test_ranking_order_differs_between_hyperliquid_and_bitmex():
    c, ev = crash("hyperliquid")
    P, Q = c.addr("P"), c.addr("Q")
    q = one(ev, AdlQueue)
    assert [(e.account, Fraction(int(e.index_num), int(e.index_den))) for e in q.top] == [
        (P, Fraction(600, 97)),
        (Q, Fraction(106, 25)),
    ]
    # P whole (6), then 6 of Q's 12; realized = (entry - 9,416.667) x qty.
    steps = of_type(ev, AdlStep)
    assert [(s.counterparty, s.rank, s.size, s.realized_pnl) for s in steps] == [
        (P, 1, sz(6), 6_000 * (9_700_000 - 9_416_667)),  # 1,699.998
        (Q, 2, sz(6), 6_000 * (10_000_000 - 9_416_667)),  # 3,499.998
    ]
    assert (c.size("P", BTC), c.size("Q", BTC)) == (0, -sz(6))

    c, ev = crash("bitmex")
    q = one(ev, AdlQueue)
    assert [(e.account, Fraction(int(e.index_num), int(e.index_den))) for e in q.top] == [
        (Q, Fraction(6, 25)),
        (P, Fraction(18, 97)),
    ]
    steps = of_type(ev, AdlStep)
    assert [(s.counterparty, s.rank, s.size, s.realized_pnl) for s in steps] == [
        (Q, 1, sz(12), 12_000 * (10_000_000 - 9_416_667))
    ]
    assert (c.size("P", BTC), c.size("Q", BTC)) == (-sz(6), 0)


def test_seed_liquidates_the_whole_position_and_covers_the_deficit_from_winners():
    c, ev = crash("seed")
    # Whole position, bounded only by 10% slippage: ceil(9,400 x 0.9) = 8,460; fills 12 BTC at 9,300.
    ml = one(ev, MarketLiquidation)
    assert (ml.ordered, ml.filled, ml.partial, ml.limit_price) == (sz(12), sz(12), False, px(8_460))
    # Deficit -1,200 - 12 x 100 = -2,400; the fund (1,000) pays all or nothing: nothing.
    ic = one(ev, InsuranceCover)
    assert (ic.deficit, ic.paid) == (usdc(2_400), 0)
    assert not of_type(ev, Backstop) and not of_type(ev, AdlStep)
    # Deficit cover at the reference (bankruptcy) price 9,500, queue ranked as hyperliquid: P first.
    # P (entry 9,700) realizes 200 per BTC: even all 6 BTC (1,200) do not cover 2,400: whole position.
    # Q (entry 10,000) realizes 500 per BTC: 2.4 BTC cover the remaining 1,200 exactly.
    q = one(ev, AdlQueue)
    assert (q.underwater, q.bankruptcy_price, q.underwater_size) == (c.addr("L"), px(9_500), 0)
    covers = of_type(ev, DeficitCover)
    assert [(d.counterparty, d.rank, d.size, d.realized_pnl, d.covered, d.deficit_remaining) for d in covers] == [
        (c.addr("P"), 1, sz(6), usdc(1_200), usdc(1_200), usdc(1_200)),
        (c.addr("Q"), 2, sz("2.4"), usdc(1_200), usdc(1_200), 0),
    ]
    # L loses exactly its margin (6,000 of the 6,100 deposited); the fund holds the covered slices.
    assert c.cash("L") == usdc(100) and c.iso_cash("L", BTC) == 0
    assert c.size(INSURANCE_FUND, BTC) == -sz("8.4") and c.fund_cash() == usdc(
        1_000 + 57_000 + 22_800
    )  # 1,000 + 6 x 9,500 + 2.4 x 9,500


# ---------------------------------------------------------------- the allocation policies (issue 13)
# The same crash: the fund backstops L (long 12 BTC, value -200 USDC at the mark 9,400) and step 50
# must pass 200 USDC on. Its bankruptcy price is 9,416.667 (rounded up for a long), a loss of 16,667
# micro-USDC per lot (0.001 BTC) to a short closed there. Winners (shorts): P 6 BTC from 9,700
# (uPnL 1,800, value 9,400, leverage 6) and Q 12 BTC from 10,000 (uPnL 7,200, value 28,200, leverage 4).
ALLOCATED = [
    # pro-rata (§12.13): capacities 1,800 : 7,200 = 1 : 4 of 12,000 lots, exact: 2,400 and 9,600.
    ("pro-rata", {"P": 2_400, "Q": 9_600}),
    # risk-water-filling (§12.14): P keeps floor(1,000 l), Q floor(3,000 l) lots at level l; l = 1.5 is
    # the smallest level (in millionths) where 6,000 - 1,500 + 12,000 - 4,500 <= 12,000: 4,500 and 7,500.
    ("risk-water-filling", {"P": 4_500, "Q": 7_500}),
]


@pytest.mark.parametrize("policy,lots", ALLOCATED, ids=[p for p, _l in ALLOCATED])
def test_allocation_policies_close_the_fund_over_every_winner(policy, lots):
    c, ev = crash(policy)
    assert one(ev, Backstop).fund_after == usdc(-200)
    q = one(ev, AdlQueue)
    assert (q.underwater, q.policy, q.bankruptcy_price) == (INSURANCE_FUND, policy, 9_416_667)
    steps = of_type(ev, AdlStep)
    got = {s.counterparty: (s.size, s.price, s.realized_pnl) for s in steps}
    entry = {"P": 9_700_000, "Q": 10_000_000}
    assert got == {c.addr(n): (q_, 9_416_667, q_ * (entry[n] - 9_416_667)) for n, q_ in lots.items()}
    assert (c.size("P", BTC), c.size("Q", BTC)) == (-sz(6) + lots["P"], -sz(12) + lots["Q"])
    # Every lot at the bankruptcy price: 12,000 x 16,667 = 200.004 USDC passed on; the fund keeps the 0.004.
    assert c.fund_value() == 4_000 and c.size(INSURANCE_FUND, BTC) == 0
    assert not of_type(ev, AdlShortfall)


def test_clawback_takes_profit_in_proportion_and_leaves_positions_open():
    from clearinghouse.spec.waterfall.events import Clawback

    c, ev = crash("clawback")
    assert one(ev, Backstop).fund_after == usdc(-200)
    assert not of_type(ev, AdlStep) and not of_type(ev, AdlQueue)
    claws = of_type(ev, Clawback)
    # Profit capacities min(uPnL, value): P 1,800, Q 7,200 (pool 9,000); 200 x 1/5 and 200 x 4/5.
    assert sorted((x.account, x.amount, x.capacity, x.deficit) for x in claws) == sorted(
        [(c.addr("P"), usdc(40), usdc(1_800), usdc(200)), (c.addr("Q"), usdc(160), usdc(7_200), usdc(200))]
    )
    assert all(x.pool == str(usdc(9_000)) for x in claws) and claws[-1].deficit_remaining == 0
    # No position moved; the fund is at exactly zero and keeps the long it took over.
    assert (c.size("P", BTC), c.size("Q", BTC), c.size(INSURANCE_FUND, BTC)) == (-sz(6), -sz(12), sz(12))
    assert c.fund_value() == 0
    assert (c.cash("P"), c.cash("Q")) == (usdc(7_600 + 58_200 - 40), usdc(21_000 + 120_000 - 160))


def crash3(policy: str):
    """``crash`` with a third winner: S sells 3 BTC to Y at 9,800 before the fall (S: uPnL 1,200 at
    9,400, value 5,000 + 1,200 = 6,200, leverage 28,200 / 6,200 = 4.55)."""
    c = WChain(policy, fund=1_000)
    c.fund(L=6_100, Q=21_000, P=7_600, X=100_000, S=5_000, Y=100_000, mm=100_000)
    c.isolated("L", BTC, 20)
    c.trade("L", "Q", BTC, px(10_000), sz(12))
    c.set_mark(BTC, px(9_800))
    c.trade("Y", "S", BTC, px(9_800), sz(3))
    c.set_mark(BTC, px(9_700))
    c.trade("X", "P", BTC, px(9_700), sz(6))
    assert c.place("mm", BTC, BUY, px(9_300), sz(12)).ok
    r = c.crash({BTC: px(9_400)})
    return c, r.end_events


THREE_WINNERS = [
    # pro-rata: capacities P 1,800, Q 7,200, S 1,200 USDC (pool 10,200); 12,000 lots x (18, 72, 12) / 102 =
    # 2,117.65, 8,470.59, 1,411.76: floors 2,117 + 8,470 + 1,411 = 11,998; the 2 lots left go to the
    # largest remainders, S (0.76) then P (0.65).
    ("pro-rata", {"P": 2_118, "Q": 8_470, "S": 1_412}),
    # risk-water-filling: at level l P keeps floor(1,000 l), Q floor(3,000 l), S floor(l x 6,200 / 9.4) lots.
    # l = 1.931667: 1,931 + 5,795 + 1,274 = 9,000 kept, 12,000 given; at 1.931666 Q keeps 5,794 (12,001 given).
    ("risk-water-filling", {"P": 4_069, "Q": 6_205, "S": 1_726}),
]


@pytest.mark.parametrize("policy,lots", THREE_WINNERS, ids=[p for p, _l in THREE_WINNERS])
def test_allocation_policies_with_three_winners(policy, lots):
    c, ev = crash3(policy)
    assert one(ev, Backstop).fund_after == usdc(-200)
    got = {s.counterparty: s.size for s in of_type(ev, AdlStep)}
    assert got == {c.addr(n): q for n, q in lots.items()}
    assert all(s.price == 9_416_667 for s in of_type(ev, AdlStep))
    assert c.fund_value() == 4_000 and c.size(INSURANCE_FUND, BTC) == 0


def test_clawback_with_three_winners():
    from clearinghouse.spec.waterfall.events import Clawback

    c, ev = crash3("clawback")
    # 200 USDC x (1,800, 7,200, 1,200) / 10,200 = 35.294117.., 141.176470.., 23.529411.. USDC: floors in
    # micro-USDC leave 2 over, to the largest remainders S (0.76) then P (0.6).
    got = {x.account: x.amount for x in of_type(ev, Clawback)}
    assert got == {c.addr("P"): 35_294_118, c.addr("Q"): 141_176_470, c.addr("S"): 23_529_412}
    assert c.fund_value() == 0 and c.size("S", BTC) == -sz(3)
