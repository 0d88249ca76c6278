"""The article's worked examples (protocol §12.9) end to end under policy ``seed``.

Both run through the Producer with real oracle updates: oracle-1..3 publish
the oracle and the external price, so the mark (median of oracle + basis EMA,
book median, external) is that price. Isolated margin, no fees. The
insurance fund is too small for the deficit (``seed`` pays only in full), so
the deficit-cover rule walks the ranked queue of winners and closes the fewest
whole lots whose realized profit at the reference (bankruptcy) price covers it;
the insurance fund takes the other side of each slice at that price.

Every block is checked for the waterfall invariants (tests/waterfall_helpers).
"""

from __future__ import annotations

from fractions import Fraction

from clearinghouse.spec.events import Fill, PositionTransfer
from clearinghouse.spec.state.keys import INSURANCE_FUND
from clearinghouse.spec.waterfall.events import (
    AdlQueue,
    AdlShortfall,
    AdlStep,
    Backstop,
    DeficitCover,
    InsuranceCover,
    LiquidationTriggered,
    MarketLiquidation,
)
from clearinghouse.tools.demo import ORACLE_NAMES
from tests.helpers import BUY, GTC, IOC, SELL
from tests.waterfall_helpers import WChain, of_type, one
from tx.messages import Genesis, MarketSpec
from tx.signing import Signer

USDC = 10**6


def seed_genesis(name: str, sz_decimals: int, max_leverage: int, fund_usdc: int, initial_usdc: int) -> Genesis:
    unit = 10 ** (6 - sz_decimals)  # price units per USDC
    return Genesis(
        chain_id=7,
        time_ms=1_767_225_600_000,
        bridge=Signer.from_name("bridge").address,
        oracle_publishers=sorted(Signer.from_name(n).address for n in ORACLE_NAMES),
        insurance_fund=fund_usdc * USDC,
        policy="seed",
        markets=[
            MarketSpec(
                name=name,
                sz_decimals=sz_decimals,
                max_leverage=max_leverage,
                taker_fee_ppm=0,
                maker_fee_ppm=0,
                impact_notional=1_000 * USDC,
                min_notional=10 * USDC,
                initial_price=initial_usdc * unit,
            )
        ],
    )


def oracle_block(c: WChain, price: int, *txs: bytes):
    """A block with ``txs`` in which oracle-1..3 publish ``price`` as oracle and external price."""
    return c.block(*txs, *c.oracle_txs({0: price}))


def test_example_1_btc_deficit_covered_by_three_lots_of_the_top_short():
    # BTC with sz_decimals 1: a lot is 0.1 BTC, a price unit 10^-5 USDC.
    px = lambda usd: usd * 100_000  # noqa: E731
    c = WChain(genesis_=seed_genesis("BTC", 1, 50, 500, 90_000), pin=False)
    c.fund(loser=10_000, winner=20_000, mm=1_000_000, wicker=200_000)
    c.isolated("loser", 0, 50)
    c.isolated("winner", 0, 25)
    # Losing long 1.00 BTC at 90,000, 50x: margin 90,000 / 50 = 1,800.
    c.trade("loser", "mm", 0, px(90_000), 10)
    # Winning short 2.00 BTC at 90,500, 25x: margin 181,000 / 25 = 7,240.
    r = c.block(c.order_tx("mm", 0, BUY, px(90_500), 20, GTC), c.order_tx("winner", 0, SELL, px(90_500), 20, IOC))
    assert r.all_ok and sum(f.size for f in r.fills) == 20
    assert c.iso_cash("loser", 0) == (1_800 - 90_000) * USDC
    assert c.iso_cash("winner", 0) == (7_240 + 181_000) * USDC

    # The mark falls to 88,500 while the book's only bid wicks to 87,600.
    r = oracle_block(c, px(88_500), c.order_tx("wicker", 0, BUY, px(87_600), 10, GTC))
    ev = r.end_events
    trig = one(ev, LiquidationTriggered)
    # Trigger: isolated value = iso_cash + size x mark = -88,200 + 88,500 = 300 < MM = 88,500 / (2 x 50) = 885.
    assert (trig.account, trig.market) == (c.addr("loser"), 0)
    assert (trig.value, trig.maintenance_margin) == (300 * USDC, 885 * USDC)
    assert trig.positions[0].mark == px(88_500)

    # Market liquidation: the whole position (seed) fills at the wick, 87,600.
    ml = one(ev, MarketLiquidation)
    assert (ml.ordered, ml.filled, ml.partial) == (10, 10, False)
    liq = [f for f in of_type(ev, Fill) if f.liquidation]
    assert [(f.price, f.size) for f in liq] == [(px(87_600), 10)]
    # Deficit: -88,200 + 87,600 = -600; the fund (500) cannot pay all of it, so (seed) pays nothing.
    cover = one(ev, InsuranceCover)
    assert (cover.deficit, cover.paid, cover.fund_before, cover.fund_after) == (600 * USDC, 0, 500 * USDC, 500 * USDC)
    assert not of_type(ev, Backstop)

    # The ranked queue: one short, the winner. Bankruptcy = 90,000 - 1,800 / 1 = 88,200.
    q = one(ev, AdlQueue)
    assert q.bankruptcy_price == px(88_200)
    assert (q.policy, q.queue_length, q.underwater) == ("seed", 1, c.addr("loser"))
    # Index (1 + uPnL / |cost|) x notional / value: uPnL = 181,000 - 177,000 = 4,000,
    # value = 188,240 - 177,000 = 11,240: (185,000 / 181,000) x (177,000 / 11,240) = 818,625 / 50,861.
    assert Fraction(int(q.top[0].index_num), int(q.top[0].index_den)) == Fraction(185_000, 181_000) * Fraction(
        177_000, 11_240
    )
    assert (q.top[0].index_num, q.top[0].index_den) == ("818625", "50861")

    # Deficit cover: realized per 0.1 BTC at 88,200 = 0.1 x (90,500 - 88,200) = 230; 2 lots give 460 < 600,
    # 3 lots 690 >= 600: the short is reduced by 0.30 BTC (15%) realizing +690.
    dc = one(ev, DeficitCover)
    assert dc.counterparty == c.addr("winner") and dc.rank == 1
    assert (dc.size, dc.reference_price) == (3, px(88_200))
    assert (dc.realized_pnl, dc.covered, dc.deficit_remaining) == (690 * USDC, 600 * USDC, 0)
    # The slice is a position transfer, not a fill: only the liquidation order's fill is a Fill.
    assert [f.liquidation for f in of_type(ev, Fill)] == [True]
    f = one(of_type(ev, PositionTransfer), PositionTransfer)
    assert f.reason == "deficit_cover"
    assert (f.closing, f.counterparty, f.closing_is_buy, f.size, f.price, f.closing_realized_pnl) == (
        c.addr("winner"),
        INSURANCE_FUND,
        True,
        3,
        px(88_200),
        690 * USDC,
    )
    assert not of_type(ev, AdlShortfall) and not of_type(ev, AdlStep)

    # Loser: -1,800 (its margin), nothing else; no position, no bucket left.
    assert c.cash("loser") == 10_000 * USDC - 1_800 * USDC
    assert c.size("loser", 0) == 0 and c.iso_cash("loser", 0) == 0
    # Winner: short 1.7 BTC; its bucket paid 0.3 x 88,200 = 26,460 for the slice and the 600 covered.
    assert c.size("winner", 0) == -17
    assert c.iso_cash("winner", 0) == (188_240 - 26_460 - 600) * USDC
    # The fund took the slice: short 0.3 BTC at 88,200, cash 500 + 26,460.
    assert c.size(INSURANCE_FUND, 0) == -3 and c.cost(INSURANCE_FUND, 0) == -26_460 * USDC
    assert c.fund_cash() == (500 + 26_460) * USDC


def test_example_2_eth_deficit_covered_by_55_eth_of_the_second_ranked_short():
    # ETH with sz_decimals 0: a lot is 1 ETH, a price unit 10^-6 USDC.
    px = lambda usd: usd * USDC  # noqa: E731
    c = WChain(genesis_=seed_genesis("ETH", 0, 20, 5_000, 3_200), pin=False)
    c.fund(loser=20_000, winner=70_000, rank1=4_000, mm=2_000_000, wicker=500_000)
    c.isolated("loser", 0, 20)
    c.isolated("winner", 0, 10)
    # Losing long 100 ETH at 3,200, 20x: margin 16,000. Winning short 200 ETH at 3,150, 10x: margin 63,000.
    # Every set-up block also publishes 3,200, so the trades below 3,200 do not drag the mark.
    r = oracle_block(
        c, px(3_200), c.order_tx("mm", 0, SELL, px(3_200), 100, GTC), c.order_tx("loser", 0, BUY, px(3_200), 100, IOC)
    )
    assert r.all_ok and sum(f.size for f in r.fills) == 100
    r = oracle_block(
        c, px(3_200), c.order_tx("mm", 0, BUY, px(3_150), 200, GTC), c.order_tx("winner", 0, SELL, px(3_150), 200, IOC)
    )
    assert r.all_ok
    # A cross short of 10 ETH at 3,000 with more leverage ranks first but has no profit at 3,040.
    r = oracle_block(
        c, px(3_200), c.order_tx("mm", 0, BUY, px(3_000), 10, GTC), c.order_tx("rank1", 0, SELL, px(3_000), 10, IOC)
    )
    assert r.all_ok and not of_type(r.end_events, LiquidationTriggered)

    # Trigger at mark 3,060; the only bid is at 2,980.
    r = oracle_block(c, px(3_060), c.order_tx("wicker", 0, BUY, px(2_980), 100, GTC))
    ev = r.end_events
    trig = one(ev, LiquidationTriggered)
    # value = (16,000 - 320,000) + 100 x 3,060 = 2,000 < MM = 306,000 / 40 = 7,650.
    assert (trig.value, trig.maintenance_margin) == (2_000 * USDC, 7_650 * USDC)
    liq = [f for f in of_type(ev, Fill) if f.liquidation]
    assert [(f.price, f.size) for f in liq] == [(px(2_980), 100)]
    # Deficit: 2,000 + 100 x (2,980 - 3,060) = -6,000; the fund (5,000) pays nothing (seed: all or nothing).
    cover = one(ev, InsuranceCover)
    assert (cover.deficit, cover.paid, cover.fund_before, cover.fund_after) == (
        6_000 * USDC,
        0,
        5_000 * USDC,
        5_000 * USDC,
    )

    # Bankruptcy 3,200 - 16,000 / 100 = 3,040.
    q = one(ev, AdlQueue)
    assert q.bankruptcy_price == px(3_040) and q.queue_length == 2
    # rank1: value 34,000 - 30,600 = 3,400, (1 - 600/30,000) x 30,600/3,400 = 49/50 x 9 = 441/50;
    # winner: value 693,000 - 612,000 = 81,000, (1 + 18,000/630,000) x 612,000/81,000 = 36/35 x 68/9 = 272/35.
    assert [(e.account, e.index_num, e.index_den) for e in q.top] == [
        (c.addr("rank1"), "441", "50"),
        (c.addr("winner"), "272", "35"),
    ]

    # rank1 (entry 3,000) would lose at 3,040 and is skipped; the winner (rank 2) realizes 110 per ETH:
    # 54 ETH give 5,940 < 6,000, 55 ETH give 6,050 >= 6,000.
    dc = one(ev, DeficitCover)
    assert (dc.counterparty, dc.rank, dc.size, dc.reference_price) == (c.addr("winner"), 2, 55, px(3_040))
    assert (dc.realized_pnl, dc.covered, dc.deficit_remaining) == (6_050 * USDC, 6_000 * USDC, 0)
    f = one([f for f in of_type(ev, PositionTransfer) if f.reason == "deficit_cover"], PositionTransfer)
    assert (f.closing, f.counterparty, f.size, f.price, f.closing_realized_pnl) == (
        c.addr("winner"),
        INSURANCE_FUND,
        55,
        px(3_040),
        6_050 * USDC,
    )

    assert c.cash("loser") == 20_000 * USDC - 16_000 * USDC  # loser: -16,000
    assert c.size("winner", 0) == -145  # reduced by 55 ETH (27.5%)
    assert c.size("rank1", 0) == -10  # untouched
    assert c.size(INSURANCE_FUND, 0) == -55 and c.fund_cash() == (5_000 + 55 * 3_040) * USDC
