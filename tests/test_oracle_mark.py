"""Oracle medians, the OracleUpdate action, integer EMAs and the mark price (protocol §11).

Every expected number is worked out by hand in the comments
(docs/prices-and-funding.md gives the formulas).
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import msgspec
import pytest

from clearinghouse.chain.engine import Engine, replay_log
from clearinghouse.chain.producer import Producer
from clearinghouse.spec import errors
from clearinghouse.spec.block import apply_genesis
from clearinghouse.spec.events import PricesSet, Receipt
from clearinghouse.spec.prices import oracle
from clearinghouse.spec.prices.mark_price import (
    DECAY_SCALE,
    EMA30_TAU_MS,
    EMA150_TAU_MS,
    PRICE_CAP,
    decay_factor,
    ema_update,
    ema_value,
    lower_median,
    mark_from_sources,
)
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.state.keys import CHAIN_KEY, NS_ORACLE_SUB, market_state_key, oracle_sub_key, order_key
from clearinghouse.spec.state.records import OracleSubmission, Order
from clearinghouse.spec.state.working_state import KeyIndex, WorkingState
from clearinghouse.tools.demo import DEMO_GENESIS_TIME_MS, ORACLE_NAMES, demo_genesis
from state import MemoryStore
from tx.actions import OraclePrice, OracleUpdate
from tx.signing import Signer

T0 = DEMO_GENESIS_TIME_MS
BTC = 0
PUBS = sorted(Signer.from_name(n).address for n in ORACLE_NAMES)


# ---------------------------------------------------------------- helpers
def fresh() -> WorkingState:
    ws = WorkingState(MemoryStore(), KeyIndex())
    apply_genesis(ws, demo_genesis())
    return ws


def ctx_for(ws: WorkingState, signer: bytes) -> TxContext:
    return TxContext(ws=ws, chain=ws.get(CHAIN_KEY), tx_index=0, signer=signer, account=signer, time_ms=T0 + 1000)


def submit(ws: WorkingState, signer: bytes, *prices: tuple[int, int, int]) -> None:
    oracle.apply_oracle_update(
        ctx_for(ws, signer),
        OracleUpdate(prices=[OraclePrice(market=m, oracle_price=o, external_price=e) for m, o, e in prices]),
    )


def submit_all(ws: WorkingState, *prices: tuple[int, int, int]) -> None:
    """Every publisher posts the same prices (the oracle moves only with a fresh majority, protocol §11.2)."""
    for pub in PUBS:
        submit(ws, pub, *prices)


def rest(ws: WorkingState, oid: int, is_buy: bool, price: int, size: int) -> None:
    """A resting order put straight into the book (the matching engine is not under test)."""
    ws.put(
        order_key(BTC, is_buy, price, oid),
        Order(
            oid=oid,
            owner=b"\x77" * 20,
            is_buy=is_buy,
            price=price,
            size=size,
            orig_size=size,
            tif=0,
            reduce_only=False,
            cloid=0,
            time_ms=T0,
        ),
    )


def set_state(ws: WorkingState, market: int = BTC, **fields) -> None:
    key = market_state_key(market)
    ws.put(key, msgspec.structs.replace(ws.get(key), **fields))


def state(ws: WorkingState, market: int = BTC):
    return ws.get(market_state_key(market))


# ---------------------------------------------------------------- medians
def test_lower_median():
    assert lower_median([7]) == 7
    assert lower_median([9, 3]) == 3  # even count: the lower middle, no averaging
    assert lower_median([5, 1, 3]) == 3
    assert lower_median([4, 1, 3, 2]) == 2


def test_one_publisher_of_three_is_not_a_majority():
    ws = fresh()
    submit(ws, PUBS[1], (BTC, 91_000_000, 0))
    assert oracle.prices_step(ws, T0 + 1000) == []  # 1 of 3 fresh: the oracle holds, nothing moved
    assert state(ws).oracle_price == 90_000_000
    # A second publisher makes a fresh majority (2 of 3); the third slot keeps the held price:
    # lower median of 91_000_000, 91_000_000, 90_000_000 = 91_000_000.
    submit(ws, PUBS[2], (BTC, 91_000_000, 0))
    events = oracle.prices_step(ws, T0 + 1000)
    assert state(ws).oracle_price == 91_000_000
    assert state(ws).external_price == 0
    # Empty book, no external: the mark is source (a) = oracle + 0.
    assert events == [
        PricesSet(
            market=BTC,
            oracle_price=91_000_000,
            external_price=0,
            mark_price=91_000_000,
            publishers=2,
            source_a=91_000_000,
            source_b=0,
            ema30_b=0,
        )
    ]


def test_oracle_median_two_publishers_takes_lower_middle():
    ws = fresh()
    submit(ws, PUBS[0], (BTC, 90_500_000, 90_700_000))
    submit(ws, PUBS[2], (BTC, 90_400_000, 90_600_000))
    oracle.prices_step(ws, T0 + 1000)
    assert state(ws).oracle_price == 90_400_000  # lower of 90_400_000 / 90_500_000
    assert state(ws).external_price == 90_600_000  # lower of the two externals


def test_oracle_median_three_publishers_and_zero_externals_ignored():
    ws = fresh()
    submit(ws, PUBS[0], (BTC, 92_000_000, 0))
    submit(ws, PUBS[1], (BTC, 90_000_000, 93_000_000))
    submit(ws, PUBS[2], (BTC, 91_000_000, 0))
    oracle.prices_step(ws, T0 + 1000)
    assert state(ws).oracle_price == 91_000_000  # median of 90/91/92
    assert state(ws).external_price == 0  # one external of three publishers is a minority: none
    # Two externals (a majority); the third slot votes the new oracle (no external was held):
    # lower median of 93_000_000, 92_500_000, 91_000_000 = 92_500_000.
    submit(ws, PUBS[0], (BTC, 92_000_000, 92_500_000))
    oracle.prices_step(ws, T0 + 1000)
    assert state(ws).external_price == 92_500_000


def test_later_submission_replaces_earlier_and_the_latest_persists():
    ws = fresh()
    for pub in PUBS[:2]:
        submit(ws, pub, (BTC, 95_000_000, 0), (1, 33_000_000, 0))
        submit(ws, pub, (BTC, 91_500_000, 0))
    assert ws.get(oracle_sub_key(BTC, PUBS[0])) == OracleSubmission(
        oracle_price=91_500_000, external_price=0, time_ms=T0 + 1000
    )
    oracle.prices_step(ws, T0 + 1000)
    assert state(ws).oracle_price == 91_500_000
    assert state(ws, 1).oracle_price == 33_000_000  # the first update's ETH price still counts
    # Latest submissions are kept (with their block time): freshness is judged on them in later blocks.
    assert ws.get(oracle_sub_key(BTC, PUBS[0])) is not None
    assert sum(1 for k in ws.changes() if k[:1] == NS_ORACLE_SUB) == 4


def test_no_submission_keeps_oracle_and_no_event_when_nothing_moved():
    ws = fresh()
    assert oracle.prices_step(ws, T0 + 1000) == []
    assert state(ws).oracle_price == 90_000_000 and state(ws).mark_price == 90_000_000
    assert state(ws).ema_time_ms == T0 + 1000


@pytest.mark.parametrize(
    "prices, error",
    [
        ([(5, 1_000, 0)], errors.InvalidOracle),  # market 5 does not exist (2 markets)
        ([(BTC, 1_000, 0), (BTC, 2_000, 0)], errors.InvalidOracle),  # duplicate market
        ([(BTC, PRICE_CAP + 1, 0)], errors.InvalidOracle),
        ([(BTC, 1_000, PRICE_CAP + 1)], errors.InvalidOracle),
    ],
)
def test_invalid_oracle_updates(prices, error):
    ws = fresh()
    with pytest.raises(error):
        submit(ws, PUBS[0], *prices)


def test_non_publisher_rejected_in_handler():
    ws = fresh()
    with pytest.raises(errors.Unauthorized):
        submit(ws, Signer.from_name("alice").address, (BTC, 1_000, 0))


def test_unauthorized_publisher_rejected_in_signed_block(tmp_path):
    log = tmp_path / "oracle.log"
    p = Producer(demo_genesis(), log)
    o1, o2, o3 = (p.wallet(n) for n in ORACLE_NAMES)
    alice = p.wallet("alice")
    t = p.time_ms + 1000
    update = lambda px: OracleUpdate(prices=[OraclePrice(market=BTC, oracle_price=px, external_price=0)])  # noqa: E731
    ex = p.block([o1.sign(update(91_000_000), t), o2.sign(update(91_000_000), t), alice.sign(update(50_000_000), t)])
    receipts = [e for e in ex.events if isinstance(e, Receipt)]
    assert [(r.ok, r.code) for r in receipts] == [(True, "OK"), (True, "OK"), (False, "UNAUTHORIZED")]
    prices = [e for e in ex.events if isinstance(e, PricesSet)]
    assert [(e.market, e.oracle_price, e.mark_price, e.publishers) for e in prices] == [
        (BTC, 91_000_000, 91_000_000, 2)
    ]
    # Three publishers, one of them twice (the later replaces the earlier): median of 90, 91.5, 92.
    t = p.time_ms + 1000
    ex = p.block(
        [
            o1.sign(update(99_000_000), t),
            o2.sign(update(92_000_000), t),
            o3.sign(update(90_000_000), t),
            o1.sign(update(91_500_000), t),
        ]
    )
    prices = [e for e in ex.events if isinstance(e, PricesSet)]
    assert [(e.oracle_price, e.publishers) for e in prices] == [(91_500_000, 3)]
    assert len(list(p.engine.store.scan_prefix(NS_ORACLE_SUB))) == 3  # each publisher's latest, committed
    p.close()
    # The log replays to the same roots.
    stats = replay_log(Engine(MemoryStore()), str(log))
    assert stats["applied"] == 2 and stats["rejected"] == 1


# ---------------------------------------------------------------- integer EMA
def test_decay_factor_known_values():
    # floor(1e9 * exp(-1/150)) = floor(993_355_506.255...)
    assert decay_factor(1000, EMA150_TAU_MS) == 993_355_506
    # floor(1e9 * exp(-1/30)) = floor(967_216_100.48...)
    assert decay_factor(1000, EMA30_TAU_MS) == 967_216_100
    # floor(1e9 * exp(-2/150)) = floor(986_755_161.3...)
    assert decay_factor(2000, EMA150_TAU_MS) == 986_755_161
    assert decay_factor(0, EMA150_TAU_MS) == DECAY_SCALE
    assert decay_factor(21 * EMA150_TAU_MS, EMA150_TAU_MS) == 0  # 1e9 * exp(-21) = 0.758 < 1
    assert decay_factor(21 * EMA150_TAU_MS - 1, EMA150_TAU_MS) == 0


def test_decay_factor_matches_high_precision_reference():
    with localcontext() as c:
        c.prec = 60
        for tau in (EMA150_TAU_MS, EMA30_TAU_MS):
            for dt in list(range(0, 3000, 37)) + [4_999, 5_000, 60_000, 149_999, 1_000_003, 21 * tau - 7]:
                expected = int((Decimal(-dt) / Decimal(tau)).exp() * DECAY_SCALE)
                assert decay_factor(dt, tau) == expected, (dt, tau)


def test_ema_steps_hand_computed():
    tau = EMA150_TAU_MS
    # Step 1: empty EMA, sample 200 held 1000 ms: value = 200 (stored 200 * 10^6), weight 1000.
    v, w = ema_update(0, 0, 200, 1000, tau)
    assert (v, w, ema_value(v, w)) == (200_000_000, 1000, 200)
    # Step 2: D = 993_355_506, old weight W*D = 1000 * D = 993_355_506_000 (10^-9 ms).
    #   value_e6 = floor((200_000_000 * 993_355_506_000 - 100 * 10^6 * 1000 * 10^9)
    #                    / (993_355_506_000 + 1000 * 10^9))
    #            = floor(98_671_101_200_000_000_000 / 1_993_355_506_000) = floor(49_500_001.83) = 49_500_001
    #   weight = floor(993.355506) + 1000 = 1993; value = floor(49.500001) = 49.
    v, w = ema_update(v, w, -100, 1000, tau)
    assert (v, w, ema_value(v, w)) == (49_500_001, 1993, 49)
    # Step 3: 2000 ms with no sample: the value stays, the weight decays to
    #   floor(1993 * 986_755_161 / 10^9) = floor(1966.603) = 1966.
    v, w = ema_update(v, w, None, 2000, tau)
    assert (v, w) == (49_500_001, 1966)
    # Negative values floor toward minus infinity: -49.500001 -> -50.
    assert ema_value(-49_500_001, 1966) == -50
    # dt = 0 changes nothing (same block time), sample or not.
    assert ema_update(49_500_001, 1993, 5, 0, tau) == (49_500_001, 1993)


def test_ema_value_is_exact_weighted_average_rounded_down():
    # Independent check of step 2 with exact fractions: (200 * 1000 * D/1e9 - 100 * 1000) / (1000 * D/1e9 + 1000).
    d = Fraction(993_355_506, DECAY_SCALE)
    exact = (200 * 1000 * d - 100 * 1000) / (1000 * d + 1000)
    assert ema_update(200_000_000, 1000, -100, 1000, EMA150_TAU_MS)[0] == math.floor(exact * 10**6)


def test_ema_after_long_gap_is_the_new_sample_with_capped_weight():
    # dt >= 21 tau: decay 0, weight min(dt, 21 tau) = 3_150_000.
    v, w = ema_update(49_500_001, 1993, 7, 10**9, EMA150_TAU_MS)
    assert (v, w, ema_value(v, w)) == (7_000_000, 3_150_000, 7)


def test_ema_without_weight_has_no_value():
    assert ema_value(0, 0) is None
    # A stale EMA fades out: its weight floors to zero (floor(1 * 0.993) = 0) and the value is dropped.
    assert ema_update(500_000_000, 1, None, 1000, EMA150_TAU_MS) == (0, 0)


# ---------------------------------------------------------------- mark price
def test_mark_from_sources_rules():
    assert mark_from_sources(100, 90, 120, None) == 100  # three sources: plain median
    assert mark_from_sources(100, 120, None, 95) == 100  # two sources + EMA30 of (b): median(100, 120, 95)
    assert mark_from_sources(100, None, 120, None) == 100  # two sources, no EMA30: lower middle
    assert mark_from_sources(100, None, None, 95) == 100  # (a) alone: the EMA30 joins only with two sources
    assert mark_from_sources(-5, None, None, None) == 1  # the mark is clamped positive


def book_block_1(ws: WorkingState) -> None:
    """Bid 89_990_000, ask 90_020_000, last trade 90_010_000 (oracle 90_000_000)."""
    rest(ws, 1, True, 89_990_000, 10)
    rest(ws, 2, False, 90_020_000, 10)
    set_state(ws, last_trade_price=90_010_000)


def test_mark_three_sources():
    ws = fresh()
    book_block_1(ws)
    submit_all(ws, (BTC, 90_000_000, 90_050_000))
    events = oracle.prices_step(ws, T0 + 1000)
    # EMA150 sample: mid - oracle = (89_990_000 + 90_020_000) // 2 - 90_000_000 = 5_000, weight 1000.
    # (a) = 90_005_000; (b) = median(89_990_000, 90_020_000, 90_010_000) = 90_010_000; (c) = 90_050_000.
    s = state(ws)
    assert (s.ema150_e6, s.ema150_weight) == (5_000 * 10**6, 1000)
    assert s.mark_price == 90_010_000
    assert events == [
        PricesSet(
            market=BTC,
            oracle_price=90_000_000,
            external_price=90_050_000,
            mark_price=90_010_000,
            publishers=3,
            source_a=90_005_000,
            source_b=90_010_000,
            ema30_b=90_010_000,
        )
    ]


def test_mark_two_sources_uses_ema30_of_book_price():
    ws = fresh()
    book_block_1(ws)
    oracle.prices_step(ws, T0 + 1000)
    # No external: (a) 90_005_000, (b) 90_010_000, EMA30(b) 90_010_000 -> 90_010_000.
    assert state(ws).mark_price == 90_010_000
    # Block 2: the ask moves to 90_300_000 and a trade prints at 90_200_000.
    ws.delete(order_key(BTC, False, 90_020_000, 2))
    rest(ws, 3, False, 90_300_000, 10)
    set_state(ws, last_trade_price=90_200_000)
    events = oracle.prices_step(ws, T0 + 2000)
    s = state(ws)
    # EMA150: sample (89_990_000 + 90_300_000)//2 - 90_000_000 = 145_000, old weight 1000 * D150:
    #   value_e6 = floor((5_000e6 * 993_355_506_000 + 145_000e6 * 10^12) / (993_355_506_000 + 10^12))
    #            = floor(149_966_777_530_000_000_000_000 / 1_993_355_506_000) = 75_233_332_478
    #   basis = 75_233 -> (a) = 90_075_233; weight 993 + 1000 = 1993.
    assert (s.ema150_e6, s.ema150_weight) == (75_233_332_478, 1993)
    # (b) = median(89_990_000, 90_300_000, 90_200_000) = 90_200_000.
    # EMA30: old weight 1000 * 967_216_100 = 967_216_100_000:
    #   value_e6 = floor((90_010_000e6 * 967_216_100_000 + 90_200_000e6 * 10^12) / 1_967_216_100_000)
    #            = floor(177_259_121_161e15 / 1_967_216_100_000) = 90_106_583_186_768 -> 90_106_583.
    assert (s.ema30_e6, s.ema30_weight) == (90_106_583_186_768, 1967)
    # Mark = median(90_075_233, 90_200_000, 90_106_583) = 90_106_583: the EMA30 decides.
    assert s.mark_price == 90_106_583
    assert events == [
        PricesSet(
            market=BTC,
            oracle_price=90_000_000,
            external_price=0,
            mark_price=90_106_583,
            publishers=0,
            source_a=90_075_233,
            source_b=90_200_000,
            ema30_b=90_106_583,
        )
    ]


def test_mark_with_empty_book():
    ws = fresh()
    # No book, no trade, no external: mark = (a) = oracle.
    submit_all(ws, (BTC, 91_000_000, 0))
    oracle.prices_step(ws, T0 + 1000)
    assert state(ws).mark_price == 91_000_000
    assert (state(ws).ema150_weight, state(ws).ema30_weight) == (0, 0)  # nothing sampled
    # External 90_500_000 joins: two sources, no EMA30 of (b): lower middle = 90_500_000.
    submit_all(ws, (BTC, 91_000_000, 90_500_000))
    events = oracle.prices_step(ws, T0 + 2000)
    assert state(ws).mark_price == 90_500_000
    assert [e.source_b for e in events] == [0]
    # A lone bid at 90_800_000: (b) = 90_800_000 (no mid, so EMA150 gets no sample);
    # median(91_000_000, 90_800_000, 90_500_000) = 90_800_000.
    rest(ws, 1, True, 90_800_000, 10)
    oracle.prices_step(ws, T0 + 3000)
    assert state(ws).mark_price == 90_800_000
    assert state(ws).ema150_weight == 0


def test_emptied_book_keeps_decaying_ema30():
    ws = fresh()
    book_block_1(ws)
    oracle.prices_step(ws, T0 + 1000)
    ws.delete(order_key(BTC, True, 89_990_000, 1))
    ws.delete(order_key(BTC, False, 90_020_000, 2))
    set_state(ws, last_trade_price=0, external_price=90_500_000)
    oracle.prices_step(ws, T0 + 2000)
    s = state(ws)
    # Without samples the EMA values stay and only their weights decay:
    # EMA150 weight floor(1000 * 0.993355506) = 993, basis 5_000 -> (a) = 90_005_000;
    # EMA30 weight floor(1000 * 0.9672161) = 967, value 90_010_000.
    assert (s.ema150_e6, s.ema150_weight) == (5_000 * 10**6, 993)
    assert (s.ema30_e6, s.ema30_weight) == (90_010_000 * 10**6, 967)
    # Two sources (a), (c) plus EMA30(b): median(90_005_000, 90_500_000, 90_010_000) = 90_010_000.
    assert s.mark_price == 90_010_000
