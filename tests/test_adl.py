"""Auto-deleveraging (protocol §12.7-§12.10): bankruptcy prices, ranking, the greedy walk, shortfalls.

End-to-end chains are ``WChain`` (tests/waterfall_helpers.py): fee-free, marks
pinned, invariants checked after every block. BTC: lots of 0.001 BTC, price
units of 0.001 USDC, maintenance margin notional / 100; ETH: lots of 0.01 ETH,
price units of 0.0001 USDC, maintenance notional / 50. A lot x a price unit is
one micro-USDC in both.

Only the insurance fund reaches the ADL step with positions and a negative
value through the chain: a trader's unit below zero is always taken over by
the backstop in step 40, and no user fill may push a unit below zero. So the
end-to-end ADL tests make the fund underwater (a small fund, a gapped
position, an empty book); deleveraging of any other unit is tested on a
hand-made state (``run_adl`` on a view).
"""

from __future__ import annotations

from fractions import Fraction

import msgspec
import pytest

from clearinghouse.spec.constants import CROSS
from clearinghouse.spec.events import Fill, PositionTransfer
from clearinghouse.spec.math.liquidation import (
    bankruptcy_prices,
    round_bankruptcy_price,
    smallest_cover_qty,
)
from clearinghouse.spec.math.pnl import realized_pnl
from clearinghouse.spec.state.accounts import get_account
from clearinghouse.spec.state.keys import INSURANCE_FUND, NS_LIQ_REF, position_key
from clearinghouse.spec.waterfall.events import (
    AdlQueue,
    AdlShortfall,
    AdlStep,
    Backstop,
    DeficitCover,
    Haircut,
    InsuranceCover,
)
from clearinghouse.spec.waterfall.ranking import (
    Candidate,
    bitmex_index,
    hyperliquid_index,
    indicator,
    rank_candidates,
    ranking_hash,
)
from tests.helpers import BUY, GTC, SELL
from tests.waterfall_helpers import BTC, ETH, WChain, of_type, one, px, sz, usdc

M = 10**6  # micro-USDC per USDC


# ---------------------------------------------------------------- bankruptcy prices
@pytest.mark.parametrize("mark", [px(8_000), px(9_050), px(9_999)])
def test_bankruptcy_price_of_one_position_is_entry_minus_or_plus_margin_over_size(mark):
    # Isolated long 1 BTC at 10,000, margin 1,000: iso_cash = 1,000 - 10,000; bankruptcy 10,000 - 1,000 / 1 = 9,000,
    # whatever the mark: p = mark - value / size = mark - (-9,000 + mark) = 9,000.
    value = usdc(-9_000) + sz(1) * mark
    assert bankruptcy_prices(value, [(sz(1), mark, 1)]) == [Fraction(px(9_000))]
    # Isolated short 2 BTC at 10,000, margin 1,000: iso_cash = 1,000 + 20,000; bankruptcy 10,000 + 1,000 / 2 = 10,500.
    value = usdc(21_000) - sz(2) * mark
    assert bankruptcy_prices(value, [(-sz(2), mark, 1)]) == [Fraction(px(10_500))]
    # The article's example 1 (protocol §12.9; lots of 0.1 BTC, price units of 10^-5 USDC): 1 BTC long at 90,000,
    # 50x, iso_cash 1,800 - 90,000; at mark 88,500 the value is 300: 88,500 - 300 / 1 = 88,200 = 90,000 - 90,000 / 50.
    assert bankruptcy_prices(usdc(-88_200) + 10 * 8_850_000_000, [(10, 8_850_000_000, 1)]) == [Fraction(8_820_000_000)]


def test_bankruptcy_prices_of_several_positions_spread_by_maintenance_margin():
    # Cross value -400 with a BTC short of 1 (mark 8,000, MM 80) and an ETH long of 10 (mark 1,000, MM 200).
    # Shares by MM: BTC -400 x 80/280 = -800/7, ETH -400 x 200/280 = -2,000/7 (USDC).
    # p_BTC = 8,000 - (-800/7) / (-1) = 8,000 - 114.2857... = 55,200/7;  p_ETH = 1,000 + (2,000/7) / 10 = 7,200/7.
    positions = [(-sz(1), px(8_000), usdc(80)), (sz(10, ETH), px(1_000, ETH), usdc(200))]
    exact = bankruptcy_prices(usdc(-400), positions)
    assert exact == [Fraction(55_200_000, 7), Fraction(72_000_000, 7)]  # in price units
    # Closing every position at its price brings the unit to exactly zero: sum size x (p - mark) = -value.
    assert sum(s * (p - m) for (s, m, _mm), p in zip(positions, exact)) == usdc(400)
    # Rounded in the unit's favour: a short buys back at the lower unit, a long sells at the higher one.
    assert [round_bankruptcy_price(p, s) for (s, _m, _mm), p in zip(positions, exact)] == [7_885_714, 10_285_715]


def test_multi_position_account_deleveraged_to_exactly_zero_with_residue_to_the_fund():
    # The fund (300) backstops two gapped isolated longs, one per market, and ends with both positions.
    c = WChain(fund=300)
    c.fund(L1=1_000, L2=1_000, S1=50_000, S2=50_000)
    c.isolated("L1", BTC, 10)  # long 1 BTC at 10,000, bucket 1,000
    c.isolated("L2", ETH, 10)  # long 10 ETH at 1,000, bucket 1,000
    c.trade("L1", "S1", BTC, px(10_000), sz(1))
    c.trade("L2", "S2", ETH, px(1_000, ETH), sz(10, ETH))
    # BTC 8,000, ETH 800, no bids: each long is at -1,000. The first (address order) gets the fund's 300;
    # the fund then takes both with -700 and -1,000: value 300 - 300 - 700 - 1,000 = -1,700.
    r = c.crash({BTC: px(8_000), ETH: px(800, ETH)})
    ev = r.end_events
    assert sorted(i.paid for i in of_type(ev, InsuranceCover)) == [0, usdc(300)]
    assert sorted(b.margin_taken for b in of_type(ev, Backstop)) == [usdc(-1_000), usdc(-700)]
    # Spread by maintenance margin: BTC 8,000 / 100 = 80, ETH 8,000 / 50 = 160 (sum 240).
    # BTC: -1,700 x 80/240 = -566.666..: 8,000 + 566.666.. -> 8,566.667 (a long sells: up).
    # ETH: -1,700 x 160/240 = -1,133.333.. over 10 ETH: 800 + 113.333.. -> 913.3334.
    exact = bankruptcy_prices(usdc(-1_700), [(sz(1), px(8_000), usdc(80)), (sz(10, ETH), px(800, ETH), usdc(160))])
    assert exact == [Fraction(25_700_000, 3), Fraction(27_400_000, 3)]
    queues = of_type(ev, AdlQueue)
    assert [(q.market, q.underwater, q.underwater_unit, q.underwater_size, q.bankruptcy_price) for q in queues] == [
        (BTC, INSURANCE_FUND, CROSS, sz(1), 8_566_667),
        (ETH, INSURANCE_FUND, CROSS, sz(10, ETH), 9_133_334),
    ]
    # S1 (short 1 BTC at 10,000) realizes 10,000 - 8,566.667 = 1,433.333; S2 (short 10 ETH at 1,000)
    # 10 x (1,000 - 913.3334) = 866.666. Both winners: index (1 + 0.2) x 8,000 / 52,000 = 12/65.
    assert [
        (s.counterparty, s.size, s.price, s.realized_pnl, s.index_num, s.index_den) for s in of_type(ev, AdlStep)
    ] == [
        (c.addr("S1"), sz(1), 8_566_667, 1_433_333_000, "12", "65"),
        (c.addr("S2"), sz(10, ETH), 9_133_334, 866_666_000, "12", "65"),
    ]
    # The fund's fills gain 1,000 x 566,667 + 1,000 x 1,133,334 = 1,700,001,000 micro: the deficit is
    # exactly cleared and the 1,000-micro rounding residue stays with the fund.
    assert c.fund_value() == c.fund_cash() == 1_000
    assert c.size(INSURANCE_FUND, BTC) == c.size(INSURANCE_FUND, ETH) == 0
    assert not of_type(ev, AdlShortfall)


def test_isolated_unit_rounding_residue_goes_to_the_fund_not_to_the_owner():
    """Regression (adl.deleverage_positions): an isolated unit's rounding residue was left in the
    owner's cross cash, where settle_fill returns a closed position's bucket; only a cross unit was
    swept. A trader's unit no longer reaches ADL through the chain (the backstop takes it first), so
    the underwater unit is made by hand on a view and ``run_adl`` is called directly."""
    from clearinghouse.spec.waterfall.adl import run_adl

    c = WChain()
    c.fund(Y=5_000, C=50_000)
    c.isolated("Y", BTC, 20)
    c.trade("C", "Y", BTC, px(10_000), sz("1.5"))  # Y: isolated short 1.5 BTC, bucket 750 + 15,000
    c.crash({BTC: px(8_000)})
    ws = c.view()
    y_cross, fund_before = c.cash("Y"), c.fund_cash()
    pos = ws.get(position_key(BTC, c.addr("Y")))
    # Value -1,000 at 8,000: iso_cash = -1,000 + 1.5 x 8,000 = 11,000.
    ws.put(position_key(BTC, c.addr("Y")), msgspec.structs.replace(pos, iso_cash=usdc(11_000)))
    events = run_adl(ws, c.p.time_ms)
    # Bankruptcy: 8,000 - 1,000 / 1.5 = 7,333.333.. -> 7,333.333 (a short buys back: down).
    q = one(events, AdlQueue)
    assert (q.underwater, q.underwater_unit, q.bankruptcy_price) == (c.addr("Y"), BTC, 7_333_333)
    step = one(events, AdlStep)
    # C (long 1.5 at 10,000) sells at 7,333.333: 1,500 x 7,333,333 - 15,000,000,000 = -4,000,000,500 micro.
    assert (step.counterparty, step.size, step.realized_pnl) == (c.addr("C"), sz("1.5"), -4_000_000_500)
    # Y's bucket: 11,000,000,000 - 1,500 x 7,333,333 = 500 micro, swept to the fund; Y's cross untouched.
    assert get_account(ws, INSURANCE_FUND).cash - fund_before == 500
    assert get_account(ws, c.addr("Y")).cash == y_cross
    assert ws.get(position_key(BTC, c.addr("Y"))).iso_cash == 0
    c.p.engine.reset_index()  # the view shared the engine's key index


# ---------------------------------------------------------------- ranking
def cand(
    account: bytes, size: int, cost: int, mark: int, value: int, mm: int = 1, unit_mm: int = 1, unit: int = CROSS
) -> Candidate:
    return Candidate(
        account=account,
        unit=unit,
        size=size,
        cost=cost,
        mark=mark,
        value=value,
        maintenance=mm,
        unit_maintenance=unit_mm,
    )


A1, A2, A3 = (bytes(19) + bytes([i]) for i in (0x31, 0x32, 0x33))


def test_ranking_indexes_long_and_short_winners_and_losers():
    # Long 10 at entry 10,000 (cost 100,000).
    long_win = cand(A1, 10, 100_000, 11_000, 20_000)
    long_lose = cand(A1, 10, 100_000, 9_000, 15_000)
    # hyperliquid: (mark / entry) x notional / value
    assert Fraction(*hyperliquid_index(long_win)) == Fraction(11, 10) * Fraction(110_000, 20_000) == Fraction(121, 20)
    assert Fraction(*hyperliquid_index(long_lose)) == Fraction(9, 10) * Fraction(90_000, 15_000) == Fraction(27, 5)
    # bitmex: PnL% x leverage when winning, PnL% / leverage when losing (leverage = notional / value here)
    assert (
        Fraction(*bitmex_index(long_win)) == Fraction(10_000, 100_000) * Fraction(110_000, 20_000) == Fraction(11, 20)
    )
    assert (
        Fraction(*bitmex_index(long_lose)) == Fraction(-10_000, 100_000) / Fraction(90_000, 15_000) == Fraction(-1, 60)
    )

    # Short 10 at entry 10,000 (cost -100,000): 1 + uPnL / |cost| = 2 - mark / entry.
    short_win = cand(A1, -10, -100_000, 9_000, 20_000)
    short_lose = cand(A1, -10, -100_000, 11_000, 15_000)
    assert Fraction(*hyperliquid_index(short_win)) == Fraction(11, 10) * Fraction(90_000, 20_000) == Fraction(99, 20)
    assert Fraction(*hyperliquid_index(short_lose)) == Fraction(9, 10) * Fraction(110_000, 15_000) == Fraction(33, 5)
    assert Fraction(*bitmex_index(short_win)) == Fraction(1, 10) * Fraction(9, 2) == Fraction(9, 20)
    assert Fraction(*bitmex_index(short_lose)) == Fraction(-1, 10) / Fraction(22, 3) == Fraction(-3, 220)

    # bitmex effective leverage with several positions: notional / (the position's share of value),
    # share = value x MM / unit MM. With MM 1,100 of a unit MM 2,200: leverage 2 x 110,000 / 20,000 = 11.
    two = cand(A1, 10, 100_000, 11_000, 20_000, mm=1_100, unit_mm=2_200)
    assert Fraction(*bitmex_index(two)) == Fraction(1, 10) * 11
    # hyperliquid uses the whole unit value (account value) whatever the other positions.
    assert Fraction(*hyperliquid_index(two)) == Fraction(121, 20)


def test_queue_order_ties_by_address_and_ineligible_units():
    # Same index for A3 and A1 (identical positions): ties by address ascending. A2 wins more.
    same = dict(size=-10, cost=-100_000, mark=9_000, value=20_000)
    c3, c1 = cand(A3, **same), cand(A1, **same)
    c2 = cand(A2, -10, -100_000, 9_000, 10_000)  # half the value: twice the leverage
    broke = cand(bytes(19) + b"\x30", -10, -100_000, 9_000, 0)  # value <= 0: not eligible
    negative = cand(bytes(19) + b"\x2f", -10, -100_000, 9_000, -5)
    q = rank_candidates([c3, broke, c1, negative, c2], "hyperliquid")
    assert [(r.rank, r.candidate.account, Fraction(r.num, r.den)) for r in q] == [
        (1, A2, Fraction(99, 10)),
        (2, A1, Fraction(99, 20)),
        (3, A3, Fraction(99, 20)),
    ]
    # The hash covers the whole ordered ranking: another order, another hash.
    assert ranking_hash(q) != ranking_hash(list(reversed(q)))
    assert ranking_hash(q) == ranking_hash(rank_candidates([c2, c1, c3], "hyperliquid"))
    # Queue indicator: rank, percentile (ceil(rank x 100 / n)) and quintile (5 = front fifth).
    assert indicator(q, A2, CROSS) == {"rank": 1, "queue_length": 3, "percentile": 34, "quintile": 5}
    assert indicator(q, A3, CROSS) == {"rank": 3, "queue_length": 3, "percentile": 100, "quintile": 2}
    assert indicator(q, bytes(19) + b"\x30", CROSS) is None


def test_hyperliquid_and_bitmex_order_a_pair_differently():
    # P: short 6 BTC at 9,700, value 9,400 (6x, +3.09%); Q: short 12 BTC at 10,000, value 28,200 (4x, +6%); mark 9,400.
    P = cand(A1, -6_000, -6_000 * 9_700_000, 9_400_000, 9_400 * M)
    Q = cand(A2, -12_000, -12_000 * 10_000_000, 9_400_000, 28_200 * M)
    # hyperliquid: P (1 + 1,800/58,200) x 56,400/9,400 = 600/97 > Q (1 + 7,200/120,000) x 4 = 106/25.
    assert (Fraction(*hyperliquid_index(P)), Fraction(*hyperliquid_index(Q))) == (Fraction(600, 97), Fraction(106, 25))
    # bitmex: P 1,800/58,200 x 6 = 18/97 < Q 0.06 x 4 = 6/25.
    assert (Fraction(*bitmex_index(P)), Fraction(*bitmex_index(Q))) == (Fraction(18, 97), Fraction(6, 25))
    assert [r.candidate.account for r in rank_candidates([P, Q], "hyperliquid")] == [A1, A2]
    assert [r.candidate.account for r in rank_candidates([P, Q], "bitmex")] == [A2, A1]


# ---------------------------------------------------------------- the walk
def test_greedy_walk_whole_positions_then_one_partial():
    c = WChain("hyperliquid", fund=300)
    c.fund(L=3_000, A=1_000, B=3_000, C=8_000, X=10_000)
    c.isolated("L", BTC, 10)  # L: isolated long 3 BTC at 10,000, bucket 3,000
    c.trade("L", "A", BTC, px(10_000), sz(1))
    c.trade("L", "B", BTC, px(10_000), sz("1.5"))
    c.trade("L", "C", BTC, px(10_000), sz("0.5"))
    c.trade("X", "C", BTC, px(10_000), sz("1.5"))  # shorts: A 1, B 1.5, C 2; longs: L 3, X 1.5
    # Mark 8,000, no bids: L's value -27,000 + 24,000 = -3,000. The fund pays its 300, takes the
    # position and -2,700 in the backstop: fund value -2,700 with a long of 3 BTC.
    r = c.crash({BTC: px(8_000)})
    ev = r.end_events
    assert one(ev, InsuranceCover).paid == usdc(300)
    assert one(ev, Backstop).margin_taken == usdc(-2_700)
    q = one(ev, AdlQueue)
    # Fund bankruptcy: 8,000 + 2,700 / 3 = 8,900.
    assert (q.underwater, q.underwater_size, q.bankruptcy_price, q.queue_length) == (
        INSURANCE_FUND,
        sz(3),
        px(8_900),
        3,
    )
    # Values at 8,000: A 1,000 + 2,000 = 3,000, B 3,000 + 3,000, C 8,000 + 4,000; 1 + uPnL/|cost| = 6/5 for all:
    # A 6/5 x 8,000/3,000 = 16/5, B 6/5 x 12,000/6,000 = 12/5, C 6/5 x 16,000/12,000 = 8/5.
    assert [(e.account, e.index_num, e.index_den) for e in q.top] == [
        (c.addr("A"), "16", "5"),
        (c.addr("B"), "12", "5"),
        (c.addr("C"), "8", "5"),
    ]
    steps = of_type(ev, AdlStep)
    # Whole A (1), whole B (1.5), then 0.5 of C's 2; each realizes (entry - price) x qty = 1,100 per BTC.
    assert [(s.counterparty, s.rank, s.size, s.price, s.realized_pnl, s.remaining_after) for s in steps] == [
        (c.addr("A"), 1, sz(1), px(8_900), usdc(1_100), sz(2)),
        (c.addr("B"), 2, sz("1.5"), px(8_900), usdc(1_650), sz("0.5")),
        (c.addr("C"), 3, sz("0.5"), px(8_900), usdc(550), 0),
    ]
    assert steps[0].neighbour_above == [] and steps[0].neighbour_below[0].account == c.addr("B")
    # Each step is one position transfer (no order, no fee), never a fill (the first transfer is
    # the backstop that handed the fund the position).
    moves = [t for t in of_type(ev, PositionTransfer) if t.reason == "adl"]
    assert [(t.reason, t.closing, t.counterparty, t.closing_is_buy, t.size, t.price) for t in moves] == [
        ("adl", INSURANCE_FUND, c.addr(n), False, s.size, px(8_900)) for n, s in zip("ABC", steps)
    ]
    assert [t.counterparty_realized_pnl for t in moves] == [s.realized_pnl for s in steps]
    assert not [f for f in of_type(ev, Fill) if f.taker == INSURANCE_FUND or f.maker == INSURANCE_FUND]
    assert (c.size("A", BTC), c.size("B", BTC), c.size("C", BTC), c.size("X", BTC)) == (0, 0, -sz("1.5"), sz("1.5"))
    # The fund ends flat at exactly 0: cash -26,700 + 3 x 8,900.
    assert c.size(INSURANCE_FUND, BTC) == 0 and c.fund_cash() == 0
    assert not of_type(ev, AdlShortfall)


def _thin_short_and_gapped_long(with_spare_short: bool) -> WChain:
    """The fund ends up long 3 BTC at value -2,700 (premium 900 per BTC over the 4,000 mark); the
    top of the queue, A, is short 1 BTC with only 500 of value (its ETH long lost the rest)."""
    c = WChain(fund=300)
    c.fund(L=15_000, A=1_000, B=10_000, S=50_000, X=50_000, C2=50_000)
    c.isolated("L", BTC, 2)  # L: isolated long 3 BTC at 10,000, 2x: bucket 15,000
    c.trade("L", "A", BTC, px(10_000), sz(1))  # A: cross short 1 BTC
    c.trade("L", "B", BTC, px(10_000), sz(2))  # B: cross short 2 BTC
    c.trade("A", "C2", ETH, px(1_000, ETH), sz(10, ETH))  # A: cross long 10 ETH (initial margin 500 + 500)
    if with_spare_short:
        c.trade("X", "S", BTC, px(10_000), sz(1))
    # BTC 4,000, ETH 350. L: 15,000 - 30,000 + 12,000 = -3,000; no bids: the fund pays its 300 and takes
    # the long with -2,700. A: 1,000 + 6,000 (BTC) - 6,500 (ETH) = 500 >= MM 40 + 70: not liquidated.
    return c


def test_adl_never_pushes_a_counterparty_below_zero():
    """Regression (adl.deleverage_positions): closing at the bankruptcy price costs a counterparty
    |price - mark| per lot; a thin one was closed whole and left below zero (and, once flat, out of
    sight of the next block's ADL). It now gives at most value // loss lots; the walk goes on."""
    c = _thin_short_and_gapped_long(True)
    r = c.crash({BTC: px(4_000), ETH: px(350, ETH)})
    ev = r.end_events
    q = one(ev, AdlQueue)
    # Fund bankruptcy 4,000 + 2,700 / 3 = 4,900. Indexes (1 + 6,000/10,000) x notional / value:
    # A 1.6 x 4,000/500 = 64/5, B 1.6 x 8,000/22,000 = 32/55, S 1.6 x 4,000/56,000 = 4/35.
    assert (q.underwater, q.bankruptcy_price) == (INSURANCE_FUND, px(4_900))
    assert [(e.account, e.index_num, e.index_den) for e in q.top] == [
        (c.addr("A"), "64", "5"),
        (c.addr("B"), "32", "55"),
        (c.addr("S"), "4", "35"),
    ]
    # A would lose 900 per BTC against its 500: it gives 500,000,000 // 900,000 = 555 lots;
    # B its whole 2 BTC; S the remaining 445 lots. Realized (10,000 - 4,900) x qty.
    steps = of_type(ev, AdlStep)
    assert [(s.counterparty, s.size, s.realized_pnl, s.remaining_after) for s in steps] == [
        (c.addr("A"), 555, 555 * 5_100_000, 2_445),
        (c.addr("B"), 2_000, 2_000 * 5_100_000, 445),
        (c.addr("S"), 445, 445 * 5_100_000, 0),
    ]
    assert c.value("A") == 500_000_000 - 555 * 900_000 == 500_000  # still >= 0
    assert c.fund_value() == 0 and not of_type(ev, AdlShortfall)


def test_adl_matches_the_rest_at_the_mark_and_haircuts_the_fund_deficit():
    """Regression (issue 14): without S the queue at the bankruptcy price (A capped at 555 lots, B
    2,000) could not match the fund's 3,000 lots: 445 lots stayed open and the fund ended the block
    at -400.5 (bad debt, an AdlShortfall). Now round 2 closes the 445 lots against A at the mark
    (costing A nothing) and the fund's remaining deficit is haircut from every unit that held a
    position, pro rata to value (protocol §12.7): nothing is left below zero."""
    c = _thin_short_and_gapped_long(False)
    r = c.crash({BTC: px(4_000), ETH: px(350, ETH)})
    ev = r.end_events
    assert [(s.counterparty, s.size, s.price, s.remaining_after) for s in of_type(ev, AdlStep)] == [
        (c.addr("A"), 555, px(4_900), 2_445),
        (c.addr("B"), 2_000, px(4_900), 445),
        (c.addr("A"), 445, px(4_000), 0),
    ]
    assert not of_type(ev, AdlShortfall)
    # Fund: flat, value -2,700 + 2,555 x 0.9 = -400.5. Pool (unit order): B 20,200 (22,000 - 2 x 900),
    # C2 56,500 (short 10 ETH from 1,000 to 350), A 0.5: 76,700.5. Shares ceil(400.5 x v / 76,700.5).
    cuts = of_type(ev, Haircut)
    assert [(h.account, h.value_before, h.amount, h.deficit_remaining) for h in cuts] == [
        (c.addr("B"), usdc(20_200), 105_476_497, 295_023_503),
        (c.addr("C2"), usdc(56_500), 295_020_893, 2_610),
        (c.addr("A"), 500_000, 2_610, 0),
    ]
    assert all((h.deficit, h.pool_value) == (usdc("400.5"), "76700500000") for h in cuts)
    assert c.fund_value() == 0 and c.size(INSURANCE_FUND, BTC) == 0
    assert c.value("A") == 500_000 - 2_610 and c.value("X") == usdc(50_000)  # X holds no position: untouched


# ---------------------------------------------------------------- seed deficit cover
def test_seed_cover_quantities():
    # Example 1's winner: short 20 lots (0.1 BTC) at 90,500, cost -181,000 USDC; reference 88,200
    # (price units of 10^-5 USDC): 0.1 x (90,500 - 88,200) = 230 USDC per lot.
    cost, ref = usdc(-181_000), 8_820_000_000
    assert realized_pnl(-20, cost, 3, ref) == usdc(690)
    assert smallest_cover_qty(-20, cost, ref, usdc(600)) == 3
    assert smallest_cover_qty(-20, cost, ref, usdc(690)) == 3
    assert smallest_cover_qty(-20, cost, ref, usdc(690) + 1) == 4
    assert smallest_cover_qty(-20, cost, ref, usdc(10_000)) == 20  # even the whole position (4,600) does not cover it
    assert smallest_cover_qty(-20, cost, 9_050_000_000, 1) is None  # no profit at the entry price


def test_seed_cross_deficit_is_covered():
    """Regression: a cross account liquidated beyond bankruptcy has no position left, so the ADL step
    (which listed only units with positions or flat isolated buckets) never saw its negative cash."""
    c = WChain("seed", fund=100)
    c.fund(L=600, W=10_000, mm=100_000)
    c.trade("L", "W", BTC, px(10_000), sz(1))  # L: cross long 1 at 10,000 (20x)
    assert c.place("mm", BTC, BUY, px(9_000), sz(1)).ok
    # Mark 9,450: value 600 - 550 = 50 < MM 94.5. Seed sells it all at 9,000 (>= 10% bound 8,505):
    # cash 600 - 10,000 + 9,000 = -400. The fund (100) pays nothing (all or nothing).
    r = c.crash({BTC: px(9_450)})
    ev = r.end_events
    assert one(ev, InsuranceCover).paid == 0
    q = one(ev, AdlQueue)
    # Reference: 9,450 - 50 / 1 = 9,400 (= entry 10,000 - 600 / 1). W realizes 600 per BTC:
    # 0.666 BTC give 399.6 < 400, 0.667 give 400.2: 667 lots.
    assert (q.underwater, q.underwater_unit, q.bankruptcy_price) == (c.addr("L"), CROSS, px(9_400))
    dc = one(ev, DeficitCover)
    assert (dc.counterparty, dc.size, dc.realized_pnl, dc.covered, dc.deficit_remaining) == (
        c.addr("W"),
        667,
        400_200_000,
        usdc(400),
        0,
    )
    assert c.cash("L") == 0
    assert c.size("W", BTC) == -333 and c.size(INSURANCE_FUND, BTC) == -667


# ---------------------------------------------------------------- regressions: no new bad debt, nothing silent
def test_fund_made_negative_by_deficit_cover_slices_is_deleveraged_in_the_same_block():
    """Regression: the fund (address 0x..01) was visited first, before the deficit cover whose slice it
    takes at the reference price; a loss on that slice left it negative until the next block.
    It is now visited last. Example 1 with a fund of 50 instead of 500."""
    from tests.test_seed_examples import seed_genesis

    p1 = lambda usd: usd * 100_000  # noqa: E731  (0.1-BTC lots, 10^-5 USDC price units)
    c = WChain(genesis_=seed_genesis("BTC", 1, 50, 50, 90_000), pin=False)
    c.fund(loser=10_000, winner=20_000, mm=1_000_000, wicker=200_000)
    c.isolated("loser", 0, 50)
    c.isolated("winner", 0, 25)
    c.trade("loser", "mm", 0, p1(90_000), 10)
    assert c.block(
        c.order_tx("mm", 0, BUY, p1(90_500), 20, GTC), c.order_tx("winner", 0, SELL, p1(90_500), 20, "IOC")
    ).all_ok
    r = c.block(c.order_tx("wicker", 0, BUY, p1(87_600), 10, GTC), *c.oracle_txs({0: p1(88_500)}))
    ev = r.end_events
    assert one(ev, DeficitCover).size == 3  # as in example 1
    # The fund sold 0.3 BTC at 88,200 marked at 88,500: cash 50 + 26,460 = 26,510, value 26,510 - 26,550 = -40.
    # Its bankruptcy price: 88,500 - 40 / 0.3 = 88,366.666.. -> 88,366.66666 (a short buys back: down).
    q = of_type(ev, AdlQueue)[-1]
    assert (q.underwater, q.underwater_size, q.bankruptcy_price) == (INSURANCE_FUND, -3, 8_836_666_666)
    step = one(ev, AdlStep)
    assert (step.underwater, step.counterparty, step.size) == (INSURANCE_FUND, c.addr("wicker"), 3)
    # 26,510,000,000 - 3 x 8,836,666,666 = 2 micro: the fund keeps its own rounding residue.
    assert c.fund_cash() == 2 and c.size(INSURANCE_FUND, 0) == 0


def test_seed_uncovered_deficit_is_paid_by_the_fund_and_haircut_in_the_same_block():
    """Regression (issue 14): a deficit no winner could cover in its block was kept (LiquidationRef)
    and retried next block, leaving the account below zero at the end of the block. Now the fund
    pays what the deficit cover left (InsuranceCover, paid in full, even past its balance) and its
    own resulting deficit is haircut from the units holding positions (protocol §12.7)."""
    c = WChain("seed", fund=100)
    c.fund(L=600, S1=10_000, S2=10_000, mm=100_000, N=10_000, B2=20_000)
    c.trade("L", "S1", BTC, px(10_000), sz(1))  # L: cross long 1 at 10,000
    c.trade("S1", "S2", BTC, px(9_000), sz(1))  # S1 closes; the only short is now S2, entry 9,000
    assert c.place("mm", BTC, BUY, px(9_000), sz(1)).ok
    # Mark 9,450: L (value 50 < MM 94.5) is sold at 9,000: cash -400; the fund (100) pays nothing.
    # Reference 9,400: S2 (entry 9,000) would lose there, so no winner covers the deficit.
    r = c.crash({BTC: px(9_450)})
    ev = r.end_events
    assert one(ev, AdlQueue).bankruptcy_price == px(9_400)
    assert not of_type(ev, DeficitCover) and not of_type(ev, AdlShortfall)
    covers = of_type(ev, InsuranceCover)
    assert [(i.deficit, i.paid, i.fund_after) for i in covers] == [
        (usdc(400), 0, usdc(100)),
        (usdc(400), usdc(400), usdc(-300)),
    ]
    # The fund's 300: mm (long 1 from 9,000: 100,450) and S2 (short 1 from 9,000: 9,550) pay pro rata.
    assert [(h.account, h.amount) for h in of_type(ev, Haircut)] == [
        (c.addr("mm"), 273_954_546),
        (c.addr("S2"), 26_045_454),
    ]
    assert c.cash("L") == 0 and c.fund_value() == 0 and not c.scan(NS_LIQ_REF)
    assert c.value("N") == usdc(10_000)  # no position: untouched


def test_a_deficit_beyond_what_closing_can_recover_is_paid_by_the_fund_and_haircut():
    """A short whose deficit exceeds its notional has a bankruptcy price below one price unit: closing
    it at 1 cannot bring the unit to zero. Policy seed: the book absorbs 0.97 of a 1 ETH short far
    above the mark, the fund refuses the deficit (all or nothing), there is no backstop, so ADL closes
    the last 0.03 ETH at the clamped price; the remainder is paid by the fund and haircut (it used to
    stay below zero until the next block's deficit cover)."""
    c = WChain("seed", fund=50)
    c.fund(T=100, B=10_000, mm=100_000)
    c.trade("B", "T", ETH, px(1_000, ETH), sz(1, ETH))  # T: cross short 1 ETH at 1,000 (20x: IM 50)
    assert c.place("mm", ETH, SELL, px(1_190, ETH), sz("0.97", ETH)).ok
    # Mark 1,085: T's value 100 + 1,000 - 1,085 = 15 < MM 21.7. It buys 0.97 at 1,190: cash 1,100 - 1,154.3 = -54.3,
    # value -54.3 - 0.03 x 1,085 = -86.85. The fund (50) pays nothing (seed: all or nothing); no backstop.
    # T's 0.03 ETH short: bankruptcy 1,085 - 86.85 / 0.03 < 0, clamped to 1 unit (0.0001 USDC).
    r = c.crash({ETH: px(1_085, ETH)})
    ev = r.end_events
    assert not of_type(ev, Backstop)
    q = one(ev, AdlQueue)
    assert (q.underwater, q.bankruptcy_price) == (c.addr("T"), 1)
    # Buying 3 lots back at 1 unit recovers 3 x (10,850,000 - 1) = 32,549,997 micro of the 86,850,000;
    # the fund pays the other 54,300,003 (50 -> -4.300003) and haircuts mm and B for it.
    covers = of_type(ev, InsuranceCover)
    assert [(i.deficit, i.paid) for i in covers] == [(86_850_000, 0), (54_300_003, 54_300_003)]
    assert [(h.account, h.amount) for h in of_type(ev, Haircut)] == [(c.addr("mm"), 3_907_594), (c.addr("B"), 392_409)]
    assert not of_type(ev, AdlShortfall)
    assert c.value("T") == 0 and c.fund_value() == 0
