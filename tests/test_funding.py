"""Funding (protocol §11.5-§11.6): impact prices, premium samples, the hourly rate and settlement.

All expected numbers are worked out by hand in the comments; the formulas are
in docs/prices-and-funding.md. Rates and premiums are parts per billion (ppb).
"""

from __future__ import annotations

import pytest

import clearinghouse.chain.engine  # noqa: F401  (registers every handler and end-of-block step)
from clearinghouse.chain.engine import Engine, replay_log
from clearinghouse.chain.producer import Producer
from clearinghouse.spec.block import apply_block, apply_genesis
from clearinghouse.spec.events import FundingPaid, FundingSettled, Receipt
from clearinghouse.spec.prices import funding
from clearinghouse.spec.state.keys import (
    CHAIN_KEY,
    FEE_POOL,
    INSURANCE_FUND,
    NS_ACCOUNT,
    account_key,
    market_state_key,
    order_key,
    position_key,
)
from clearinghouse.spec.state.records import Account, Order, Position
from clearinghouse.spec.state.working_state import KeyIndex, WorkingState
from clearinghouse.tools.demo import DEMO_CHAIN_ID, DEMO_GENESIS_TIME_MS, ORACLE_NAMES, USDC, demo_genesis
from state import MemoryStore
from tx.actions import TIF_GTC, TIF_IOC, Deposit, OraclePrice, OracleUpdate, PlaceOrder
from tx.builder import Wallet
from tx.signing import Signer

T0 = DEMO_GENESIS_TIME_MS
HOUR = 3_600_000
BTC, ETH = 0, 1
ETH_ORACLE = 32_000_000
"""ETH's genesis price (3,200 USDC)."""
N = 1_000 * USDC  # the demo markets' impact notional
ALICE, BOB, CAROL = (Signer.from_name(n).address for n in ("alice", "bob", "carol"))
MAKER = b"\x77" * 20


# ---------------------------------------------------------------- helpers
def fresh() -> WorkingState:
    ws = WorkingState(MemoryStore(), KeyIndex())
    apply_genesis(ws, demo_genesis())
    return ws


def rest(ws: WorkingState, oid: int, is_buy: bool, price: int, size: int, market: int = BTC) -> None:
    ws.put(
        order_key(market, is_buy, price, oid),
        Order(
            oid=oid,
            owner=MAKER,
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


def funding_book(ws: WorkingState) -> None:
    """Bids 5 @ 90_100_000 and 10 @ 90_050_000; ask 100 @ 90_200_000."""
    rest(ws, 1, True, 90_100_000, 5)
    rest(ws, 2, True, 90_050_000, 10)
    rest(ws, 3, False, 90_200_000, 100)


def open_positions(ws: WorkingState) -> None:
    """Alice long 100 lots (cross), Bob short 60 (cross), Carol short 40 (isolated, 500 USDC margin).

    Cash model (records.py): opening at 90_000_000 moved size x price of cash,
    so the long's cash is 20_000 - 9_000 USDC, the shorts' include what they sold.
    """
    for addr, cash in ((ALICE, 11_000 * USDC), (BOB, 25_400 * USDC), (CAROL, 1_000 * USDC)):
        ws.put(account_key(addr), Account(cash=cash, open_markets=[BTC], open_orders=0))
    ws.put(
        position_key(BTC, ALICE),
        Position(size=100, cost=9_000_000_000, leverage=10, is_cross=True, iso_cash=0, liq_cooldown_until_ms=0),
    )
    ws.put(
        position_key(BTC, BOB),
        Position(size=-60, cost=-5_400_000_000, leverage=10, is_cross=True, iso_cash=0, liq_cooldown_until_ms=0),
    )
    ws.put(
        position_key(BTC, CAROL),
        Position(
            size=-40, cost=-3_600_000_000, leverage=10, is_cross=False, iso_cash=4_100 * USDC, liq_cooldown_until_ms=0
        ),
    )


def total_money(ws: WorkingState) -> int:
    """Every micro-USDC the test created: account cash (fund and fee pool included) plus isolated margin."""
    cash = sum(ws.get(account_key(a)).cash for a in (ALICE, BOB, CAROL, INSURANCE_FUND, FEE_POOL))
    return cash + ws.get(position_key(BTC, CAROL)).iso_cash


def cash(ws: WorkingState, addr: bytes) -> int:
    return ws.get(account_key(addr)).cash


def oracle_txs(t: int, *prices: int) -> list[bytes]:
    """Oracle updates for BTC: one price is posted by every publisher, several by oracle-1, oracle-2, ...
    in turn. Each also posts ETH at its genesis price, so both markets have a live oracle (a fresh
    majority, protocol §11.2): no premium is sampled while an oracle is held (§11.5)."""
    if len(prices) == 1:
        prices = prices * len(ORACLE_NAMES)
    return [
        Wallet.from_name(name, DEMO_CHAIN_ID).sign(
            OracleUpdate(
                prices=[
                    OraclePrice(market=BTC, oracle_price=px, external_price=0),
                    OraclePrice(market=ETH, oracle_price=ETH_ORACLE, external_price=0),
                ]
            ),
            t,
        )
        for name, px in zip(ORACLE_NAMES, prices)
    ]


class Chain:
    """Blocks applied straight to one working state (the transition, without a store)."""

    def __init__(self, ws: WorkingState) -> None:
        self.ws = ws
        self.height = 0

    def block(self, t: int, txs: list[bytes] | None = None) -> list:
        self.height += 1
        events = apply_block(self.ws, self.height, t, txs or [])
        assert all(e.ok for e in events if isinstance(e, Receipt))
        return events


def btc(ws: WorkingState):
    return ws.get(market_state_key(BTC))


# ---------------------------------------------------------------- impact prices and premium
def test_impact_bid_walks_levels_and_rounds_down():
    ws = fresh()
    funding_book(ws)
    # Level 1: 5 lots x 90_100_000 = 450_500_000 < N. Level 2 fills the rest, r = 549_500_000:
    # average = N * p / (L * p + r) = 10^9 * 90_050_000 / (5 * 90_050_000 + 549_500_000)
    #         = 90_050_000_000_000_000 / 999_750_000 = 90_072_518.13 -> floor 90_072_518.
    assert funding.impact_price(ws, BTC, True, N) == 90_072_518
    # One ask level deep enough: the average is its price.
    assert funding.impact_price(ws, BTC, False, N) == 90_200_000


def test_impact_ask_rounds_up_and_thin_side_is_none():
    ws = fresh()
    rest(ws, 1, False, 90_200_000, 3)  # 270_600_000
    rest(ws, 2, False, 90_250_000, 100)
    # r = 729_400_000: 10^9 * 90_250_000 / (3 * 90_250_000 + 729_400_000) = 90_236_464.53 -> ceil 90_236_465.
    assert funding.impact_price(ws, BTC, False, N) == 90_236_465
    rest(ws, 3, True, 90_000_000, 11)  # 990 USDC of bids < 1000 USDC impact notional
    assert funding.impact_price(ws, BTC, True, N) is None
    assert funding.impact_price(ws, ETH, True, N) is None  # empty book


def test_premium_samples():
    ib, ia = 90_072_518, 90_200_000
    # (90_072_518 - 90_000_000) * 10^9 / 90_000_000 = 805_755.55 -> 805_755.
    assert funding.premium_ppb(90_000_000, ib, ia) == 805_755
    assert funding.premium_ppb(90_100_000, ib, ia) == 0  # oracle inside [impact bid, impact ask]
    assert funding.premium_ppb(89_900_000, ib, ia) == 1_918_998  # 172_518e9 / 89_900_000 = 1_918_998.9
    assert funding.premium_ppb(89_950_000, ib, ia) == 1_362_067  # 122_518e9 / 89_950_000 = 1_362_067.8
    # Negative premiums truncate toward zero: -100_000e9 / 90_300_000 = -1_107_419.7 -> -1_107_419.
    assert funding.premium_ppb(90_300_000, ib, ia) == -1_107_419
    assert funding.premium_ppb(90_000_000, None, None) == 0  # no depth on either side
    assert funding.premium_ppb(90_000_000, None, 89_999_999) == -11  # -1e9 / 9e7 = -11.1
    assert funding.premium_ppb(1, 10**12, None) == funding.SAMPLE_CAP_PPB  # clamped to +100%


@pytest.mark.parametrize(
    "avg, rate",
    [
        (0, 12_500),  # F = 0 + clamp(100_000) = 0.01% / 8h -> 0.00125% / h
        (300_000, 12_500),  # |I - P| <= 0.05%: F = I
        (1_021_705, 65_213),  # F = 1_021_705 - 500_000 = 521_705; / 8 = 65_213.1 -> 65_213
        (-2_000_000, -187_500),  # F = -2_000_000 + 500_000 = -1_500_000; / 8
        (-1_000_003, -62_500),  # F = -500_003; / 8 = -62_500.4 -> toward zero -62_500
        (10**9, 40_000_000),  # capped at 4% per hour
        (-(10**9), -40_000_000),
    ],
)
def test_hourly_rate(avg, rate):
    assert funding.hourly_rate_ppb(avg) == rate


def test_average_premium_truncates_toward_zero():
    assert funding.average_premium_ppb(4_086_820, 4) == 1_021_705
    assert funding.average_premium_ppb(-7, 2) == -3
    assert funding.average_premium_ppb(0, 0) == 0


def test_funding_amount_rounds_against_the_account():
    # 100 * 90_000_007 * 65_213 / 1e9 = 586_917.0456 -> the payer pays 586_918.
    assert funding.funding_amount(100, 90_000_007, 65_213) == 586_918
    # -60 * 90_000_007 * 65_213 / 1e9 = -352_150.227 -> the receiver gets 352_150.
    assert funding.funding_amount(-60, 90_000_007, 65_213) == -352_150
    # Negative rate: shorts pay, rounded up.
    assert funding.funding_amount(-60, 90_000_007, -65_213) == 352_151
    assert funding.funding_amount(100, 90_000_000, 12_500) == 112_500  # exact


# ---------------------------------------------------------------- one funding hour
def test_full_funding_hour():
    ws = fresh()
    funding_book(ws)
    open_positions(ws)
    chain = Chain(ws)
    before = total_money(ws)
    insurance_before = cash(ws, INSURANCE_FUND)

    chain.block(T0 + 5_000, oracle_txs(T0 + 5_000, 90_000_000))  # sample 1 at oracle 90_000_000: 805_755
    assert (btc(ws).premium_sum_ppb, btc(ws).premium_samples) == (805_755, 1)
    chain.block(T0 + 7_000)  # only 2 s later: no sample
    assert btc(ws).premium_samples == 1
    chain.block(T0 + 10_000, oracle_txs(T0 + 10_000, 90_100_000))  # sample 2: 0
    chain.block(
        T0 + 15_000, oracle_txs(T0 + 15_000, 89_900_000, 89_950_000, 89_850_000)
    )  # median 89_900_000: 1_918_998
    chain.block(
        T0 + 20_000, oracle_txs(T0 + 20_000, 89_950_000, 90_000_000, 89_900_000)
    )  # median 89_950_000: 1_362_067
    s = btc(ws)
    assert s.oracle_price == 89_950_000
    assert (s.premium_sum_ppb, s.premium_samples, s.last_sample_ms) == (4_086_820, 4, T0 + 20_000)

    events = chain.block(T0 + HOUR, oracle_txs(T0 + HOUR, 90_000_007))
    paid = [e for e in events if isinstance(e, FundingPaid)]
    settled = [e for e in events if isinstance(e, FundingSettled)]
    # avg = 4_086_820 / 4 = 1_021_705; F = 1_021_705 + clamp(100_000 - 1_021_705) = 521_705;
    # hourly = 521_705 / 8 = 65_213 ppb. Paid at the block's oracle, 90_000_007:
    #   Alice  +100: 9_000_000_700 * 65_213 / 1e9 =  586_917.05 -> pays 586_918 (up)
    #   Bob     -60: 5_400_000_420 * 65_213 / 1e9 =  352_150.23 -> receives 352_150 (down)
    #   Carol   -40: 3_600_000_280 * 65_213 / 1e9 =  234_766.82 -> receives 234_766 (down, isolated)
    # residue = 586_918 - (352_150 + 234_766) = 2 -> insurance fund.
    expected = {ALICE: (100, True, 586_918), BOB: (-60, True, -352_150), CAROL: (-40, False, -234_766)}
    assert [(e.account, e.size, e.is_cross, e.amount) for e in paid] == [(a, *expected[a]) for a in sorted(expected)]
    assert settled[0] == FundingSettled(
        market=BTC,
        hours=1,
        samples=4,
        avg_premium_ppb=1_021_705,
        rate_ppb=65_213,
        oracle_price=90_000_007,
        total_paid=586_918,
        total_received=586_916,
        residue=2,
    )
    # ETH: no positions, empty book (4 zero samples): the interest rate alone, nothing moves.
    assert settled[1] == FundingSettled(
        market=ETH,
        hours=1,
        samples=4,
        avg_premium_ppb=0,
        rate_ppb=12_500,
        oracle_price=32_000_000,
        total_paid=0,
        total_received=0,
        residue=0,
    )

    assert cash(ws, ALICE) == 11_000 * USDC - 586_918
    assert cash(ws, BOB) == 25_400 * USDC + 352_150
    assert cash(ws, CAROL) == 1_000 * USDC  # isolated: her cross cash is untouched
    assert ws.get(position_key(BTC, CAROL)).iso_cash == 4_100 * USDC + 234_766
    assert cash(ws, INSURANCE_FUND) == insurance_before + 2
    assert sum(e.amount for e in paid) == settled[0].residue  # zero-sum once the residue is counted
    assert total_money(ws) == before  # conservation

    # The accumulators restart; the settlement block's own sample opens the next hour:
    # (90_072_518 - 90_000_007) * 1e9 / 90_000_007 = 805_677.7 -> 805_677.
    s = btc(ws)
    assert (s.premium_sum_ppb, s.premium_samples, s.last_funding_ms, s.funding_rate_ppb) == (
        805_677,
        1,
        T0 + HOUR,
        65_213,
    )


def test_skipped_hours_settle_once():
    ws = fresh()
    funding_book(ws)
    open_positions(ws)
    chain = Chain(ws)
    chain.block(T0 + HOUR, oracle_txs(T0 + HOUR, 90_000_007))
    money = total_money(ws)
    alice_cash = cash(ws, ALICE)
    # The chain halts for three hours and a bit: one settlement, the clock jumps to the last boundary.
    events = chain.block(T0 + 4 * HOUR + 1_234)
    settled = [e for e in events if isinstance(e, FundingSettled) and e.market == BTC]
    # One sample (805_677): F = 805_677 - 500_000 = 305_677; / 8 = 38_209.
    # Alice: 9_000_000_700 * 38_209 / 1e9 = 343_881.03 -> 343_882; Bob 206_328.6 -> 206_328;
    # Carol 137_552.4 -> 137_552; residue 343_882 - 343_880 = 2.
    assert settled == [
        FundingSettled(
            market=BTC,
            hours=3,
            samples=1,
            avg_premium_ppb=805_677,
            rate_ppb=38_209,
            oracle_price=90_000_007,
            total_paid=343_882,
            total_received=343_880,
            residue=2,
        )
    ]
    assert cash(ws, ALICE) == alice_cash - 343_882
    assert btc(ws).last_funding_ms == T0 + 4 * HOUR
    assert total_money(ws) == money


def test_flat_positions_are_skipped():
    ws = fresh()
    open_positions(ws)
    ws.put(
        position_key(BTC, BOB), Position(size=0, cost=0, leverage=3, is_cross=True, iso_cash=0, liq_cooldown_until_ms=0)
    )
    events = Chain(ws).block(T0 + HOUR)
    assert [e.account for e in events if isinstance(e, FundingPaid)] == sorted([ALICE, CAROL])


# ---------------------------------------------------------------- end to end
def test_funding_end_to_end_with_real_trades(tmp_path):
    log = tmp_path / "funding.log"
    p = Producer(demo_genesis(), log)
    bridge, alice, bob, carol = (p.wallet(n) for n in ("bridge", "alice", "bob", "carol"))
    t = p.time_ms + 1000
    p.block(
        [bridge.sign(Deposit(to=w.address, amount=20_000 * USDC, ref=i), t) for i, w in enumerate((alice, bob, carol))]
    )
    t = p.time_ms + 1000
    order = lambda is_buy, px, sz, tif: PlaceOrder(
        market=BTC, is_buy=is_buy, price=px, size=sz, tif=tif, reduce_only=False, cloid=0
    )  # noqa: E731
    p.block([alice.sign(order(True, 90_000_000, 100, TIF_GTC), t), bob.sign(order(False, 90_000_000, 100, TIF_IOC), t)])
    t = p.time_ms + 1000
    p.block([carol.sign(order(True, 90_100_000, 20, TIF_GTC), t)])  # 1802 USDC of bids above the oracle
    settled: list = []
    paid: list = []
    while not settled:
        t = p.time_ms + 60_000
        txs = oracle_txs(t, 90_000_007 if t >= T0 + HOUR else 90_000_000)
        ex = p.block(txs, time_ms=t)
        settled = [e for e in ex.events if isinstance(e, FundingSettled) and e.market == BTC]
        paid = [e for e in ex.events if isinstance(e, FundingPaid)]
    # 59 samples (T0 + 63 s ... T0 + 3543 s), each (90_100_000 - 90_000_000) * 1e9 / 9e7 = 1_111_111;
    # F = 1_111_111 - 500_000 = 611_111; / 8 = 76_388. At oracle 90_000_007:
    # Alice +100 pays ceil(687_492.05) = 687_493, Bob -100 receives 687_492, residue 1.
    assert settled[0] == FundingSettled(
        market=BTC,
        hours=1,
        samples=59,
        avg_premium_ppb=1_111_111,
        rate_ppb=76_388,
        oracle_price=90_000_007,
        total_paid=687_493,
        total_received=687_492,
        residue=1,
    )
    assert [(e.account, e.amount) for e in paid] == sorted([(alice.address, 687_493), (bob.address, -687_492)])
    # Conservation from committed state: deposits - withdrawals = all account cash (+ no isolated margin here).
    store = p.engine.store
    view = p.engine.view()
    total = sum(view.get(k).cash for k, _ in store.scan_prefix(NS_ACCOUNT))
    chain = view.get(CHAIN_KEY)
    assert total == chain.deposits - chain.withdrawals
    p.close()
    replayer = Engine(MemoryStore())
    replay_log(replayer, str(log))
    assert replayer.store.root == store.root
