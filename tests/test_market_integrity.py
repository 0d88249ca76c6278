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

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearinghouse.chain.engine import Engine
from clearinghouse.spec.errors import InvalidBlock, InvalidGenesis
from clearinghouse.spec.events import FundingSettled, PricesSet
from clearinghouse.spec.prices.mark_price import PRICE_CAP, advance_mark, mark_band
from clearinghouse.spec.prices.oracle_quorum import aggregate, is_fresh
from clearinghouse.spec.state.records import OracleSubmission
from clearinghouse.spec.trading.margin import withdrawable
from clearinghouse.spec.trading.markets import initial_market_state
from clearinghouse.tools.demo import ORACLE_NAMES, demo_genesis
from state import MemoryStore
from tests.helpers import BUY, ETH, GTC, IOC, SELL, USDC, Chain, px, sz
from tx import actions as A
from tx.encoding import decode_genesis, encode
from tx.errors import DecodeError, NonCanonicalEncoding
from tx.messages import (
    DEFAULT_MARK_BAND_BPS,
    DEFAULT_ORACLE_FRESH_MS,
    MAX_MARK_BAND_BPS,
    MAX_ORACLE_FRESH_MS,
    MIN_MARK_BAND_BPS,
    MIN_ORACLE_FRESH_MS,
)

ORACLE_ETH = px(3_200, ETH)
FUND = 50_000 * USDC
"""demo_genesis()'s default insurance fund (tests.helpers.Chain uses it)."""


def band_of(c: Chain, market: int) -> tuple[int, int]:
    """The mark band around the current oracle (protocol §11.3): [lo, hi] in price units."""
    spec = c.get(b"M" + market.to_bytes(4, "big"))
    oracle = c.market_state(market).oracle_price
    bps = spec.mark_band_bps
    return -((-oracle * (10_000 - bps)) // 10_000), oracle * (10_000 + bps) // 10_000


def oracle_txs(c: Chain, prices: dict[int, tuple[int, int]], publishers=ORACLE_NAMES) -> list[bytes]:
    """One OracleUpdate per publisher: market -> (oracle, external) (external 0 = none)."""
    update = A.OracleUpdate(
        prices=[A.OraclePrice(market=m, oracle_price=o, external_price=e) for m, (o, e) in sorted(prices.items())]
    )
    return [c.tx(p, update) for p in publishers]


def opened(external: bool) -> Chain:
    """A long 20 ETH against B's short at 3,200 (each deposited 20,000); C and D hold 1,000 each."""
    c = Chain(advance_ms=10_000)
    c.fund(A=20_000, B=20_000, C=1_000, D=1_000)
    ext = ORACLE_ETH if external else 0
    r = c.block(
        oracle_txs(c, {ETH: (ORACLE_ETH, ext)})
        + [
            c.order_tx("B", ETH, SELL, ORACLE_ETH, sz(20, ETH), GTC),
            c.order_tx("A", ETH, BUY, ORACLE_ETH, sz(20, ETH), IOC),
        ]
    )
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
        r = c.block(
            oracle_txs(c, {ETH: (ORACLE_ETH, ext)})
            + [c.order_tx("C", ETH, SELL, price, 1, GTC), c.order_tx("D", ETH, BUY, price, 1, IOC)]
        )
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
        "mark_80s": mark_80s,
        "mark": c.mark(ETH),
        "oracle": c.market_state(ETH).oracle_price,
        "band_lo": lo,
        "band_hi": hi,
        "a_withdrew": free,
        "b_size": c.size("B", ETH),
        "fund": c.insurance(),
        "marks": marks,
    }


def usd(units: int) -> str:
    return f"{units / 10_000:,.2f}"


@pytest.mark.parametrize("external", [False, True], ids=["no-external", "external"])
def test_wash_trades_cannot_pump_the_mark(external: bool) -> None:
    out = run_pump(external)
    print(
        f"\n[attack 1, external={external}] marks after each wash: {[usd(m) for m in out['marks']]}; "
        f"mark after 80 s {usd(out['mark_80s'])}, after A's withdrawal {usd(out['mark'])} (oracle {usd(out['oracle'])}, band {usd(out['band_lo'])}..{usd(out['band_hi'])}); "
        f"A withdrew {out['a_withdrew'] / USDC:,.6f} USDC; B size {out['b_size']}; fund {out['fund'] / USDC:,.6f} USDC"
    )
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
    print(
        f"\n[attack 2] after oracle-1 alone posts {usd(ten_x)}: oracle {usd(ms.oracle_price)}, external {usd(ms.external_price)}, "
        f"mark {usd(ms.mark_price)}; B size {c.size('B', ETH)}; fund {c.insurance() / USDC:,.6f} USDC"
    )
    assert not [
        e for e in r.end_events if isinstance(e, PricesSet) and e.market == ETH and e.oracle_price != ORACLE_ETH
    ]
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


# ---------------------------------------------------------------- the rules, unit by unit
def sub(price: int, external: int = 0, time_ms: int = 0) -> OracleSubmission:
    return OracleSubmission(oracle_price=price, external_price=external, time_ms=time_ms)


def test_aggregate_rules_by_hand() -> None:
    # 1 of 3 fresh: held (oracle and external).
    assert aggregate([sub(500)], 3, 100, 90) == (100, 90, 1)
    # 2 of 3: the stale slot votes the held price: lmedian(500, 120, 100) = 120.
    assert aggregate([sub(500), sub(120)], 3, 100, 0) == (120, 0, 2)
    assert aggregate([sub(1), sub(120)], 3, 100, 0) == (100, 0, 2)  # a low outlier cannot pull it down either
    # Externals: one of three offers one -> none; two -> lmedian(E + [held external or new oracle]).
    assert aggregate([sub(100, 95), sub(100), sub(100)], 3, 100, 0).external == 0
    assert aggregate([sub(100, 95), sub(100, 97), sub(100)], 3, 100, 0).external == 97  # lmedian(95, 97, 100)
    assert aggregate([sub(100, 95), sub(100, 97), sub(100)], 3, 100, 96).external == 96  # lmedian(95, 97, 96)
    # Four publishers: 2 fresh is not a majority; 3 is.
    assert aggregate([sub(200), sub(200)], 4, 100, 0).oracle == 100
    assert aggregate([sub(200), sub(200), sub(300)], 4, 100, 0).oracle == 200  # lmedian(200, 200, 300, 100)
    # One publisher: its own fresh word is the majority.
    assert aggregate([sub(77)], 1, 100, 0).oracle == 77


def test_freshness_window_is_strict() -> None:
    window = DEFAULT_ORACLE_FRESH_MS
    assert is_fresh(sub(1, time_ms=1_000), 1_000 + window - 1, window)
    assert not is_fresh(sub(1, time_ms=1_000), 1_000 + window, window)


@given(n=st.integers(1, 16), data=st.data())
def test_no_minority_moves_the_oracle_beyond_the_others(n: int, data: st.DataObject) -> None:
    """Any minority (fewer than half of the n publishers), fresh or not, posting anything: the new oracle
    and external price lie within the range of the other slots (the others' fresh words and the held price)."""
    prices = st.integers(1, PRICE_CAP)
    held_o, held_x = data.draw(prices), data.draw(st.one_of(st.just(0), prices))
    m = data.draw(st.integers(0, (n - 1) // 2))  # attackers: 2m < n
    honest_fresh = data.draw(st.lists(st.tuples(prices, st.one_of(st.just(0), prices)), min_size=0, max_size=n - m))
    attackers = data.draw(st.lists(st.tuples(prices, st.one_of(st.just(0), prices)), min_size=m, max_size=m))
    fresh = [sub(o, x) for o, x in honest_fresh + attackers]
    got = aggregate(fresh, n, held_o, held_x)
    if 2 * len(fresh) <= n:
        assert (got.oracle, got.external) == (held_o, held_x)
        return
    others = [o for o, _ in honest_fresh] + [held_o]
    assert min(others) <= got.oracle <= max(others)
    if got.external:
        fill = held_x if held_x else got.oracle
        ext = [x for _, x in honest_fresh if x] + [fill]
        assert min(ext) <= got.external <= max(ext)


def test_mark_band_rounds_toward_the_oracle() -> None:
    assert mark_band(32_000_000, 500) == (30_400_000, 33_600_000)
    assert mark_band(101, 500) == (96, 106)  # 95.95 up to 96, 106.05 down to 106
    assert mark_band(1, 900) == (1, 1)
    assert mark_band(PRICE_CAP, 900)[1] == PRICE_CAP  # capped


def test_every_mark_input_is_banded() -> None:
    """A far bid, ask and trade: (a) (through the basis EMA), (b), the EMA30 and the mark all stay in the band."""
    state = msgspec.structs.replace(initial_market_state(32_000_000, 0), last_trade_price=90_000_000)
    for t in range(1_000, 200_001, 1_000):
        state, inputs = advance_mark(state, t, 80_000_000, 95_000_000, 500)
        for v in (inputs.a, inputs.b, inputs.ema30_b, state.mark_price):
            assert v is None or 30_400_000 <= v <= 33_600_000
    assert inputs.a == inputs.b == state.mark_price == 33_600_000  # the basis EMA now sits at the band's edge


# ---------------------------------------------------------------- genesis parameters
def test_demo_genesis_carries_the_defaults() -> None:
    g = demo_genesis()
    assert g.oracle_fresh_ms == DEFAULT_ORACLE_FRESH_MS == 60_000
    assert [m.mark_band_bps for m in g.markets] == [DEFAULT_MARK_BAND_BPS] * 2 == [500, 500]
    assert decode_genesis(encode(g)) == g


@pytest.mark.parametrize(
    "fresh_ms, band",
    [
        (MIN_ORACLE_FRESH_MS - 1, 500),
        (MAX_ORACLE_FRESH_MS + 1, 500),
        (60_000, MIN_MARK_BAND_BPS - 1),
        (60_000, MAX_MARK_BAND_BPS + 1),
    ],
)
def test_out_of_bounds_price_parameters_are_refused(fresh_ms: int, band: int) -> None:
    g = demo_genesis()
    bad = msgspec.structs.replace(
        g, oracle_fresh_ms=fresh_ms, markets=[msgspec.structs.replace(m, mark_band_bps=band) for m in g.markets]
    )
    with pytest.raises(InvalidGenesis) as err:
        Engine(MemoryStore()).init_genesis(bad)
    assert isinstance(err.value, InvalidBlock) and err.value.code == "INVALID_BLOCK"
    with pytest.raises(DecodeError):
        decode_genesis(encode(bad))  # the wire type carries the same bounds


def test_bounds_themselves_are_accepted() -> None:
    g = demo_genesis()
    for fresh_ms, band in ((MIN_ORACLE_FRESH_MS, MIN_MARK_BAND_BPS), (MAX_ORACLE_FRESH_MS, MAX_MARK_BAND_BPS)):
        ok = msgspec.structs.replace(
            g, oracle_fresh_ms=fresh_ms, markets=[msgspec.structs.replace(m, mark_band_bps=band) for m in g.markets]
        )
        Engine(MemoryStore()).init_genesis(ok)
        assert decode_genesis(encode(ok)) == ok


def test_genesis_without_the_price_parameters_is_not_canonical() -> None:
    """The old wire format (no trailing band/freshness fields) decodes to the defaults but re-encodes longer."""
    g = demo_genesis()
    old = msgspec.msgpack.encode(
        [
            g.chain_id,
            g.time_ms,
            g.bridge,
            g.oracle_publishers,
            g.insurance_fund,
            g.policy,
            [
                [
                    m.name,
                    m.sz_decimals,
                    m.max_leverage,
                    m.taker_fee_ppm,
                    m.maker_fee_ppm,
                    m.impact_notional,
                    m.min_notional,
                    m.initial_price,
                ]
                for m in g.markets
            ],
        ]
    )
    with pytest.raises(NonCanonicalEncoding):
        decode_genesis(old)


# ---------------------------------------------------------------- while the oracle holds
def test_funding_takes_no_sample_while_the_oracle_is_held() -> None:
    """Publishers silent past the window: the oracle holds and no premium is sampled; settlement still
    comes on the hour (interest only); the first live block samples again."""
    c = opened(external=True)
    samples = c.market_state(ETH).premium_samples
    window = c.chain().oracle_fresh_ms
    c.block(advance_ms=window + 1)
    c.block(advance_ms=10_000)
    assert c.market_state(ETH).premium_samples == samples
    c.block(oracle_txs(c, {ETH: (ORACLE_ETH, ORACLE_ETH)}), advance_ms=10_000)
    assert c.market_state(ETH).premium_samples == samples + 1
    c.block(advance_ms=window + 1)
    r = c.block(advance_ms=3_600_000)  # the hour ends while the oracle is held
    settled = [e for e in r.end_events if isinstance(e, FundingSettled) and e.market == ETH]
    assert settled and settled[0].samples == samples + 1 and settled[0].oracle_price == ORACLE_ETH
    assert c.market_state(ETH).premium_samples == 0  # nothing sampled in the settling block either
    c.check_invariants()
