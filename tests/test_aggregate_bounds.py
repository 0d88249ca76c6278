"""Committed aggregates at their 64-bit bounds (protocol §2.3): typed outcomes, never exceptions.

Attack: open interest (u64, the sum of long sizes) was never bounded, although each
position is. On a price-1 market at 100x with zero fees, two long/short pairs of about
2^63 lots each bring open interest to about 2^64; the next opening fill made
``MarketState.open_interest`` exceed u64 and the block's change set failed to encode
(``OverflowError``): no receipt, and the producer could not build the block.

Also here: a resting order whose owner cannot take the fill (its own cash would leave
i64) is cancelled instead of rejecting every taker that reaches it (a book freeze), and
hypothesis drives trades, marks and transfers at the bounds, checking after every block
that nothing untyped escaped and that every committed record still decodes.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from helpers import BUY, GTC, IOC, SELL, Chain
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearinghouse.spec.errors import InvalidTransaction
from clearinghouse.spec.events import Receipt
from clearinghouse.spec.state import keys
from clearinghouse.tools.demo import demo_genesis, demo_markets
from tx import actions as A

I64_MAX = 2**63 - 1
U64_MAX = 2**64 - 1
MAX_NOTIONAL = 2**62
ONE = 0
"""The only market of the price-1 genesis."""

TYPED_CODES = {InvalidTransaction.code} | {cls.code for cls in InvalidTransaction.__subclasses__()}


def price_one_genesis(max_leverage: int = 100, initial_price: int = 1) -> Any:
    """A single market quoted at 1 price unit (or ``initial_price``), no fees, no minimum notional."""
    spec = msgspec.structs.replace(
        demo_markets()[0],
        name="ONE",
        sz_decimals=0,
        max_leverage=max_leverage,
        taker_fee_ppm=0,
        maker_fee_ppm=0,
        min_notional=0,
        impact_notional=1,
        initial_price=initial_price,
    )
    return msgspec.structs.replace(demo_genesis(), markets=[spec])


def deposit(c: Chain, name: str, micro: int, ref: int = 0) -> None:
    r = c.block(c.tx("bridge", A.Deposit(to=c.addr(name), amount=micro, ref=ref)))
    assert r.all_ok, r.codes()


def committed_records_decode(c: Chain) -> None:
    """Every committed value decodes under its record type (bounds included)."""
    for key, raw in c.p.engine.store.iter_all():
        msgspec.msgpack.decode(raw, type=keys.record_type(key))


# ---------------------------------------------------------------- attack 3: open interest
D = 2**63 // 100
"""Each trader's deposit: 1% of 2^63, the initial margin of a ~2^63-lot position at 100x."""
S = I64_MAX - D
"""Each position's size: the short's cash D + S is exactly i64's maximum."""


def open_pair(c: Chain, long: str, short: str) -> list[Any]:
    """``short`` rests and ``long`` takes, in two fills (one order's notional is at most 2^62)."""
    results = []
    for part in (MAX_NOTIONAL, S - MAX_NOTIONAL):
        r = c.block(c.order_tx(short, ONE, SELL, 1, part, GTC), c.order_tx(long, ONE, BUY, 1, part, IOC))
        results.append(r)
    return results


@pytest.fixture
def oi_chain() -> Chain:
    c = Chain(price_one_genesis(), pin_marks=True)
    for i in range(3):
        for side in ("long", "short"):
            name = f"{side}-{i}"
            deposit(c, name, D, ref=len(c.history))
            assert c.leverage(name, ONE, 100).ok
    return c


def test_open_interest_overflow_is_a_typed_rejection(oi_chain: Chain) -> None:
    c = oi_chain
    for i in range(2):
        for r in open_pair(c, f"long-{i}", f"short-{i}"):
            assert r.all_ok, [(t.code, t.receipt.message) for t in r.txs]
            assert r.fills, "every fill of the first two pairs goes through"
    assert c.open_interest(ONE) == 2 * S > U64_MAX - MAX_NOTIONAL
    c.check_invariants()
    before = c.trading_snapshot()
    # The fifth fill: another 2^62 lots of longs would take open interest past u64.
    r = c.block(
        c.order_tx("short-2", ONE, SELL, 1, MAX_NOTIONAL, GTC), c.order_tx("long-2", ONE, BUY, 1, MAX_NOTIONAL, IOC)
    )
    rest, take = r[0], r[1]
    assert rest.ok and rest.status.status == "resting"
    assert take.code == "LIMIT_EXCEEDED", (take.code, take.receipt.message)
    assert "open interest" in take.receipt.message
    assert not r.fills
    assert c.open_interest(ONE) == 2 * S
    assert c.size("long-2", ONE) == 0 and c.size("short-2", ONE) == 0
    # The maker's order rests untouched; the taker's rejection changed nothing else.
    after = c.trading_snapshot()
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert changed <= {b"next_oid"} | {k for k in after if k[:1] in (keys.NS_ORDER, keys.NS_ORDER_LOC)} | {
        keys.account_key(c.addr("short-2"))
    }
    c.check_invariants()
    committed_records_decode(c)
    # Fills that do not grow open interest still trade at the bound: short-0 buys from the
    # resting ask (a short moves from short-0 to short-2), then long-0 sells to a bid.
    r = c.block(c.order_tx("short-0", ONE, BUY, 1, 5, IOC))
    assert r.all_ok and [(f.maker, f.size) for f in r.fills] == [(c.addr("short-2"), 5)]
    assert c.open_interest(ONE) == 2 * S and c.size("short-2", ONE) == -5
    assert c.cancel("short-2", ONE, rest.oid).ok
    r = c.block(c.order_tx("short-0", ONE, BUY, 1, 7, GTC), c.order_tx("long-0", ONE, SELL, 1, 7, IOC))
    assert r.all_ok and sum(f.size for f in r.fills) == 7
    assert c.open_interest(ONE) == 2 * S - 7
    c.check_invariants()
    committed_records_decode(c)


# ---------------------------------------------------------------- a maker that cannot take its own fill
def test_maker_whose_cash_would_overflow_is_cancelled_not_the_taker() -> None:
    """A short whose cash is at i64's maximum rests the best ask: the fill would overflow *its*
    cash. The taker is not rejected (that would freeze the book at that ask for everyone);
    the maker's order is cancelled and the taker trades with the next ask."""
    c = Chain(price_one_genesis(initial_price=10), pin_marks=True)
    deposit(c, "whale", I64_MAX - 10)
    deposit(c, "buyer", 1_000_000, ref=1)
    deposit(c, "seller", 1_000_000, ref=2)
    r = c.block(
        c.order_tx("whale", ONE, SELL, 10, 20, GTC),
        c.order_tx("seller", ONE, SELL, 11, 20, GTC),
        c.order_tx("buyer", ONE, BUY, 11, 20, IOC),
    )
    assert r[0].ok and r[1].ok
    assert r[2].ok, (r[2].code, r[2].receipt.message)
    assert [s.reason for s in r[2].canceled()] == ["invalid_amount"]
    assert [(f.maker, f.size, f.price) for f in r[2].fills] == [(c.addr("seller"), 20, 11)]
    assert c.book(ONE, SELL) == []
    assert c.size("whale", ONE) == 0 and c.cash("whale") == I64_MAX - 10
    c.check_invariants()


def test_next_order_id_and_withdrawal_totals_are_bounded() -> None:
    """The order-id counter and the withdrawal total are bounded like the deposit total."""
    from clearinghouse.spec.errors import LimitExceeded
    from clearinghouse.spec.trading.book import next_oid

    c = Chain(price_one_genesis())
    ws = c.view()
    ws.begin_tx()
    ws.put(keys.CHAIN_KEY, msgspec.structs.replace(ws.get(keys.CHAIN_KEY), next_oid=U64_MAX))
    with pytest.raises(LimitExceeded):
        next_oid(ws)
    ws.rollback_tx()

    deposit(c, "w", 1_000_000)
    ws = c.view()
    ws.begin_tx()
    ws.put(keys.CHAIN_KEY, msgspec.structs.replace(ws.get(keys.CHAIN_KEY), withdrawals=U64_MAX))
    from clearinghouse.spec.actions.collateral import apply_withdraw
    from clearinghouse.spec.errors import InvalidAmount
    from clearinghouse.spec.state.context import TxContext

    ctx = TxContext(
        ws=ws, chain=ws.get(keys.CHAIN_KEY), tx_index=0, signer=c.addr("w"), account=c.addr("w"), time_ms=c.p.time_ms
    )
    with pytest.raises(InvalidAmount, match="withdrawals"):
        apply_withdraw(ctx, A.Withdraw(amount=1, destination=c.addr("w")))
    ws.rollback_tx()


# ---------------------------------------------------------------- property: trading at the bounds
BIG = st.one_of(
    st.integers(1, 10),
    st.integers(2**62 - 4, 2**62),
    st.integers(I64_MAX // 100 - 2, I64_MAX // 100 + 2),
    st.integers(2**61, 2**62),
)
NAMES = ("a", "b", "c")
op = st.one_of(
    st.tuples(
        st.just("order"),
        st.sampled_from(NAMES),
        st.booleans(),
        st.sampled_from([1, 2, 3]),
        BIG,
        st.sampled_from([GTC, IOC]),
    ),
    st.tuples(st.just("mark"), st.sampled_from([1, 2, 3, 19])),
    st.tuples(st.just("transfer"), st.sampled_from(NAMES), st.sampled_from(NAMES), BIG),
    st.tuples(st.just("withdraw"), st.sampled_from(NAMES), BIG),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    deposits=st.lists(st.sampled_from([D, I64_MAX - 10, I64_MAX // 3, 10**6]), min_size=3, max_size=3),
    ops=st.lists(op, min_size=1, max_size=10),
)
def test_trading_at_the_64_bit_bounds_never_raises(deposits: list[int], ops: list[tuple]) -> None:
    c = Chain(price_one_genesis(), pin_marks=True)
    for i, (name, amount) in enumerate(zip(NAMES, deposits)):
        r = c.block(c.tx("bridge", A.Deposit(to=c.addr(name), amount=amount, ref=i)))
        assert r.all_ok or r.codes() == ["INVALID_AMOUNT"]
        c.leverage(name, ONE, 100)
    for item in ops:
        if item[0] == "order":
            _, name, is_buy, price, size, tif = item
            r = c.block(c.order_tx(name, ONE, is_buy, price, size, tif))
        elif item[0] == "mark":
            c.set_mark(ONE, item[1])
            r = c.block()
        elif item[0] == "transfer":
            _, src, dst, amount = item
            if src == dst:
                continue
            r = c.block(c.tx(src, A.Transfer(to=c.addr(dst), amount=amount)))
        else:
            _, name, amount = item
            r = c.block(c.tx(name, A.Withdraw(amount=amount, destination=c.addr(name))))
        for ev in r.events:
            if isinstance(ev, Receipt) and not ev.ok:
                assert ev.code in TYPED_CODES, ev
        c.check_invariants()
    committed_records_decode(c)
    assert c.open_interest(ONE) <= U64_MAX


# ---------------------------------------------------------------- end of block: values beyond 64 bits
def test_unit_whose_value_leaves_i64_is_skipped_not_a_halt() -> None:
    """A short of 2^62 lots opened at price 1 whose mark then rises to 19 is worth about
    -17 x 2^62 < -2^63: its liquidation cannot be written in 64-bit fields (the backstop would
    take its cash below i64). The step reports ``WaterfallSkipped`` with a typed code, ADL then
    closes the short at its bankruptcy price, and nothing raises."""
    c = Chain(price_one_genesis(), pin_marks=True)
    deposit(c, "bear", D)
    deposit(c, "bull", D, ref=1)
    for name in ("bear", "bull"):
        assert c.leverage(name, ONE, 100).ok
    r = c.block(c.order_tx("bear", ONE, SELL, 1, MAX_NOTIONAL, GTC), c.order_tx("bull", ONE, BUY, 1, MAX_NOTIONAL, IOC))
    assert r.all_ok and r.fills
    r = c.move_mark(ONE, 19)
    skipped = [e for e in r.events if type(e).__name__ == "WaterfallSkipped"]
    assert [(e.step, e.code) for e in skipped] == [("liquidation", "INVALID_AMOUNT")]
    assert c.size("bear", ONE) == 0 and c.size("bull", ONE) == 0  # closed by ADL at bankruptcy price
    c.check_invariants()
    committed_records_decode(c)


def test_funding_beyond_u64_in_total_is_one_index_step() -> None:
    """Three shorts of 2^62 lots at price 1, the oracle at 70 and a resting ask at 1: the
    premium is about -99%, the hourly rate -4%, and each short owes about 2^62 x 70 x 4%,
    together more than 2^64 - 1. With lazy funding (protocol §11.6) the hour is one index
    step of 70 x -4% per lot: nothing is paid at the hour, and each short's value counts
    what it owes (which makes it liquidatable). Settling it would take the market's funding
    pool (an i64 aggregate, protocol §11.6) past its bound, so the waterfall steps that would
    settle it are skipped (``WaterfallSkipped``, typed), not a halt; the pool identity holds."""
    c = Chain(price_one_genesis(), pin_marks=True)
    for i in range(3):
        for side in ("long", "short"):
            deposit(c, f"{side}-{i}", D, ref=len(c.history))
            assert c.leverage(f"{side}-{i}", ONE, 100).ok
    deposit(c, "asker", 10**9, ref=99)
    for i in range(3):
        r = c.block(
            c.order_tx(f"short-{i}", ONE, SELL, 1, MAX_NOTIONAL, GTC),
            c.order_tx(f"long-{i}", ONE, BUY, 1, MAX_NOTIONAL, IOC),
        )
        assert r.all_ok and r.fills
    assert c.place("asker", ONE, SELL, 1, 1).ok
    prices = A.OracleUpdate(prices=[A.OraclePrice(market=ONE, oracle_price=70, external_price=0)])
    assert c.block(*(c.tx(f"oracle-{k}", prices) for k in (1, 2, 3))).all_ok
    assert c.market_state(ONE).oracle_price == 70
    for _ in range(40):  # premium samples at about -99%
        c.block(advance_ms=5_000)
    cash_before = [c.cash(f"short-{i}") for i in range(3)]
    hour_end = c.market_state(ONE).last_funding_ms + 3_600_000
    r = c.block(advance_ms=hour_end - c.p.time_ms)
    skipped = [e for e in r.events if type(e).__name__ == "WaterfallSkipped"]
    assert skipped and all(e.code == "INVALID_AMOUNT" and "funding pool" in e.message for e in skipped), skipped
    (settled,) = [e for e in r.events if type(e).__name__ == "FundingSettled" and e.market == ONE]
    assert settled.rate_ppb == -40_000_000 and settled.index_step == 70 * -40_000_000
    assert [c.cash(f"short-{i}") for i in range(3)] == cash_before  # nothing paid at the hour
    from clearinghouse.spec.trading.positions import unsettled_funding

    ms = c.market_state(ONE)
    short = c.view().get(keys.position_key(ONE, c.addr("short-0")))
    owed = unsettled_funding(short, ms)
    assert owed == -(short.size * 70 * 40_000_000 // 10**9) and owed > 2**63 // 3  # > 2^64 over the three
    c.check_invariants()
    committed_records_decode(c)
