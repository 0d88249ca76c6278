"""Market integrity: the two price attacks of docs/security.md, through signed blocks.

1. **Mark pump by a tiny wash trade** (protocol §11.3, the mark band). ETH at 3,200; A is long and B
   short 20 ETH. C and D trade one lot with each other at 1.9x the mark in an otherwise empty book,
   every 10 s, while all three publishers post the honest 3,200 (no external price). Without a band,
   two of the mark's three inputs (the book source and its 30 s EMA) follow that last trade and the
   mark nearly doubles per wash: B is liquidated and the fund pays for A's paper profit.
2. **One publisher moves the oracle** (protocol §11.2, the fresh-majority oracle). One of three
   publishers alone posts 10x (oracle and external).

Each test prints the figures it measured (``pytest -s``) so the report can quote them.
"""

from __future__ import annotations

import pytest

from clearinghouse.demo import ORACLE_NAMES
from clearinghouse.events import PricesSet
from clearinghouse.margin import withdrawable
from tx import actions as A

from tests.helpers import BUY, ETH, GTC, IOC, SELL, USDC, Chain, px, sz

ORACLE_ETH = px(3_200, ETH)
FUND = 50_000 * USDC
"""demo_genesis()'s default insurance fund (tests.helpers.Chain uses it)."""


def band_of(c: Chain, market: int) -> tuple[int, int]:
    """The mark band around the current oracle (protocol §11.3): [lo, hi] in price units."""
    spec = c.get(b"M" + market.to_bytes(4, "big"))
    oracle = c.market_state(market).oracle_price
    bps = getattr(spec, "mark_band_bps", 0)  # 0 before the band existed: the figures still print
    return -((-oracle * (10_000 - bps)) // 10_000), oracle * (10_000 + bps) // 10_000


def oracle_txs(c: Chain, prices: dict[int, tuple[int, int]], publishers=ORACLE_NAMES) -> list[bytes]:
    """One OracleUpdate per publisher: market -> (oracle, external) (external 0 = none)."""
    update = A.OracleUpdate(prices=[A.OraclePrice(market=m, oracle_price=o, external_price=e) for m, (o, e) in sorted(prices.items())])
    return [c.tx(p, update) for p in publishers]


def opened(external: bool) -> Chain:
    """A long 20 ETH against B's short at 3,200 (each deposited 20,000); C and D hold 1,000 each."""
    c = Chain(advance_ms=10_000)
    c.fund(A=20_000, B=20_000, C=1_000, D=1_000)
    ext = ORACLE_ETH if external else 0
    r = c.block(oracle_txs(c, {ETH: (ORACLE_ETH, ext)}) + [
        c.order_tx("B", ETH, SELL, ORACLE_ETH, sz(20, ETH), GTC), c.order_tx("A", ETH, BUY, ORACLE_ETH, sz(20, ETH), IOC)])
    assert r.all_ok, r.codes()
    assert c.size("A", ETH) == sz(20, ETH) and c.size("B", ETH) == -sz(20, ETH)
    return c


def wash_price(mark: int) -> int:
    """1.9x the mark, rounded down to whole USDC (a valid ETH price, inside the 95% order band)."""
    return mark * 19 // 10 // 10_000 * 10_000


def run_pump(external: bool) -> dict[str, int]:
    """Six washes, 10 s apart, then blocks until 80 s have passed; A withdraws all it may."""
    c = opened(external)
    start_ms = c.p.time_ms
    ext = ORACLE_ETH if external else 0
    marks = []
    for _ in range(6):
        price = wash_price(c.mark(ETH))
        r = c.block(oracle_txs(c, {ETH: (ORACLE_ETH, ext)}) + [
            c.order_tx("C", ETH, SELL, price, 1, GTC), c.order_tx("D", ETH, BUY, price, 1, IOC)])
        marks.append(c.mark(ETH))
        c.check_invariants()
    while c.p.time_ms - start_ms < 80_000:
        c.block(oracle_txs(c, {ETH: (ORACLE_ETH, ext)}))
        c.check_invariants()
    mark_80s = c.mark(ETH)
    free = withdrawable(c.view(), c.addr("A"))
    if free > 0:
        r = c.withdraw("A", free)
        assert r.ok, r
    c.check_invariants()
    lo, hi = band_of(c, ETH)
    return {
        "mark_80s": mark_80s, "mark": c.mark(ETH), "oracle": c.market_state(ETH).oracle_price, "band_lo": lo, "band_hi": hi,
        "a_withdrew": free, "b_size": c.size("B", ETH), "fund": c.insurance(), "marks": marks,
    }


def usd(units: int) -> str:
    return f"{units / 10_000:,.2f}"


@pytest.mark.parametrize("external", [False, True], ids=["no-external", "external"])
def test_wash_trades_cannot_pump_the_mark(external: bool) -> None:
    out = run_pump(external)
    print(f"\n[attack 1, external={external}] marks after each wash: {[usd(m) for m in out['marks']]}; "
          f"mark after 80 s {usd(out['mark_80s'])}, after A's withdrawal {usd(out['mark'])} (oracle {usd(out['oracle'])}, band {usd(out['band_lo'])}..{usd(out['band_hi'])}); "
          f"A withdrew {out['a_withdrew'] / USDC:,.6f} USDC; B size {out['b_size']}; fund {out['fund'] / USDC:,.6f} USDC")
    assert out["oracle"] == ORACLE_ETH
    assert all(out["band_lo"] <= m <= out["band_hi"] for m in out["marks"])
    assert out["band_lo"] <= out["mark_80s"] <= out["band_hi"] and out["band_lo"] <= out["mark"] <= out["band_hi"]
    assert out["b_size"] == -sz(20, ETH), "B keeps its position"
    assert out["fund"] == FUND, "the insurance fund is untouched"
    # A cannot take out more than its own deposit plus a band's worth of paper profit.
    assert out["a_withdrew"] <= 20_000 * USDC + sz(20, ETH) * (out["band_hi"] - ORACLE_ETH)
    if external:
        assert out["mark"] == ORACLE_ETH


def test_one_publisher_cannot_move_the_oracle() -> None:
    """All three post 3,200; then oracle-1 alone posts 10x (oracle and external): nothing moves."""
    c = opened(external=True)
    c.block(oracle_txs(c, {ETH: (ORACLE_ETH, ORACLE_ETH)}))
    ten_x = 10 * ORACLE_ETH
    r = c.block(oracle_txs(c, {ETH: (ten_x, ten_x)}, publishers=("oracle-1",)))
    c.block()
    ms = c.market_state(ETH)
    print(f"\n[attack 2] after oracle-1 alone posts {usd(ten_x)}: oracle {usd(ms.oracle_price)}, external {usd(ms.external_price)}, "
          f"mark {usd(ms.mark_price)}; B size {c.size('B', ETH)}; fund {c.insurance() / USDC:,.6f} USDC")
    assert not [e for e in r.end_events if isinstance(e, PricesSet) and e.market == ETH and e.oracle_price != ORACLE_ETH]
    assert (ms.oracle_price, ms.external_price, ms.mark_price) == (ORACLE_ETH, ORACLE_ETH, ORACLE_ETH)
    assert c.size("B", ETH) == -sz(20, ETH)
    assert c.insurance() == FUND
    c.check_invariants()


def test_a_stale_majority_holds_the_oracle() -> None:
    """Two publishers go silent past the freshness window: the third alone cannot move the oracle."""
    c = opened(external=True)
    window = c.chain().oracle_fresh_ms
    c.block(advance_ms=window + 1)  # everyone's last word is now stale
    r = c.block(oracle_txs(c, {ETH: (10 * ORACLE_ETH, 10 * ORACLE_ETH)}, publishers=("oracle-2",)))
    assert r.all_ok
    ms = c.market_state(ETH)
    assert (ms.oracle_price, ms.external_price) == (ORACLE_ETH, ORACLE_ETH)
    # A majority (two of three) moves it, to the median of the fresh slots.
    r = c.block(oracle_txs(c, {ETH: (px(3_300, ETH), px(3_300, ETH))}, publishers=("oracle-1", "oracle-3")))
    ms = c.market_state(ETH)
    assert ms.oracle_price == px(3_300, ETH)
    assert c.size("B", ETH) == -sz(20, ETH) and c.insurance() == FUND


@pytest.mark.parametrize("factor_num, factor_den", [(1, 10), (10, 1)], ids=["low", "high"])
def test_a_minority_cannot_move_the_oracle_with_one_honest_publisher_stale(factor_num: int, factor_den: int) -> None:
    """Three publishers, one honest one stale: the attacker plus one honest publisher are a fresh majority,
    yet the attacker alone still cannot move the oracle either way (the stale slot keeps the held price)."""
    c = opened(external=True)
    window = c.chain().oracle_fresh_ms
    c.block(advance_ms=window + 1)
    c.block(oracle_txs(c, {ETH: (ORACLE_ETH, ORACLE_ETH)}, publishers=("oracle-3",)))  # honest and fresh
    bad = ORACLE_ETH * factor_num // factor_den
    c.block(oracle_txs(c, {ETH: (bad, bad)}, publishers=("oracle-1",)))
    ms = c.market_state(ETH)
    assert (ms.oracle_price, ms.external_price, ms.mark_price) == (ORACLE_ETH, ORACLE_ETH, ORACLE_ETH)
    assert c.size("B", ETH) == -sz(20, ETH) and c.insurance() == FUND
