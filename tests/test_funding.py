"""Funding (protocol §11.5-§11.6): impact prices, premium samples, the hourly index step and
lazy settlement (the pure arithmetic is tabled in test_funding_math.py).

All expected numbers are worked out by hand in the comments; the formulas are
in docs/prices-and-funding.md. Rates and premiums are parts per billion (ppb).
"""

from __future__ import annotations

import msgspec

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
    NS_POSITION,
    account_key,
    market_state_key,
    order_key,
    position_key,
)
from clearinghouse.spec.state.records import Account, Order, Position
from clearinghouse.spec.state.working_state import KeyIndex, WorkingState
from clearinghouse.spec.trading.margin import cross_health, isolated_health
from clearinghouse.spec.trading.positions import settle_funding, unsettled_funding
from clearinghouse.tools.demo import DEMO_CHAIN_ID, DEMO_GENESIS_TIME_MS, ORACLE_NAMES, USDC, demo_genesis
from clearinghouse.tools.invariants import check_all, check_conservation, check_funding
from clearinghouse.tools.invariants import snapshot as store_snapshot
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
        Position(
            size=100,
            cost=9_000_000_000,
            leverage=10,
            is_cross=True,
            iso_cash=0,
            liq_cooldown_until_ms=0,
            funding_entry=0,
        ),
    )
    ws.put(
        position_key(BTC, BOB),
        Position(
            size=-60,
            cost=-5_400_000_000,
            leverage=10,
            is_cross=True,
            iso_cash=0,
            liq_cooldown_until_ms=0,
            funding_entry=0,
        ),
    )
    ws.put(
        position_key(BTC, CAROL),
        Position(
            size=-40,
            cost=-3_600_000_000,
            leverage=10,
            is_cross=False,
            iso_cash=4_100 * USDC,
            liq_cooldown_until_ms=0,
            funding_entry=0,
        ),
    )


def total_money(ws: WorkingState) -> int:
    """Every micro-USDC the test created: account cash (fund and fee pool included), isolated margin,
    and what the market's funding pool holds for unsettled receivers (protocol §11.6)."""
    cash = sum(ws.get(account_key(a)).cash for a in (ALICE, BOB, CAROL, INSURANCE_FUND, FEE_POOL))
    return cash + ws.get(position_key(BTC, CAROL)).iso_cash + btc(ws).funding_pool


def ws_snapshot(ws: WorkingState):
    """The invariants' snapshot of a working state (every key it holds)."""
    keys = [CHAIN_KEY, market_state_key(BTC), market_state_key(ETH), *ws.index.iter_prefix(NS_POSITION)]
    keys += [account_key(a) for a in (ALICE, BOB, CAROL, INSURANCE_FUND, FEE_POOL)]
    return store_snapshot((k, msgspec.msgpack.encode(ws.get(k))) for k in keys)


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
    settled = [e for e in events if isinstance(e, FundingSettled)]
    # avg = 4_086_820 / 4 = 1_021_705; F = 1_021_705 + clamp(100_000 - 1_021_705) = 521_705;
    # hourly = 521_705 / 8 = 65_213 ppb. At the block's oracle, 90_000_007, the index steps by
    # 90_000_007 x 65_213 = 5_869_170_456_491 (10^-9 micro-USDC per lot). No position is visited.
    assert not [e for e in events if isinstance(e, FundingPaid)]
    assert settled[0] == FundingSettled(
        market=BTC,
        hours=1,
        samples=4,
        avg_premium_ppb=1_021_705,
        rate_ppb=65_213,
        oracle_price=90_000_007,
        index_step=5_869_170_456_491,
        funding_index=5_869_170_456_491,
        open_interest=0,  # the positions were written straight into state, not traded
    )
    # ETH: no positions, empty book (4 zero samples): the interest rate alone, 32_000_000 x 12_500.
    assert settled[1] == FundingSettled(
        market=ETH,
        hours=1,
        samples=4,
        avg_premium_ppb=0,
        rate_ppb=12_500,
        oracle_price=32_000_000,
        index_step=400_000_000_000,
        funding_index=400_000_000_000,
        open_interest=0,
    )
    assert (cash(ws, ALICE), cash(ws, BOB)) == (11_000 * USDC, 25_400 * USDC)  # nothing moved yet
    # Unsettled, rounded up as settlement will be:
    #   Alice  +100: 586_917.0456491 -> owes 586_918
    #   Bob     -60: -352_150.22738946 -> is owed 352_150
    #   Carol   -40: -234_766.81825964 -> is owed 234_766 (isolated)
    pos = {a: ws.get(position_key(BTC, a)) for a in (ALICE, BOB, CAROL)}
    assert [unsettled_funding(pos[a], btc(ws)) for a in (ALICE, BOB, CAROL)] == [586_918, -352_150, -234_766]
    mark = btc(ws).mark_price
    # Value counts it: cash + size x mark - unsettled.
    assert cross_health(ws, ALICE).value == 11_000 * USDC + 100 * mark - 586_918
    assert isolated_health(ws, BTC, pos[CAROL]).value == 4_100 * USDC - 40 * mark + 234_766
    assert check_funding(ws_snapshot(ws)) == []

    # Settling each (what a fill does first) moves exactly that, in any order; the dust
    # (954_350_900 + 227_389_460 + 818_259_640 = 2 x 10^9) reaches the fund as 2 micro-USDC.
    values = {ALICE: cross_health(ws, ALICE).value, BOB: cross_health(ws, BOB).value}
    paid = []
    for a in (BOB, ALICE, CAROL):
        new, ev = settle_funding(ws, BTC, a, pos[a])
        ws.put(position_key(BTC, a), new)
        paid.append(ev)
        assert check_funding(ws_snapshot(ws)) == []  # exact after every settlement
        assert total_money(ws) == before
    assert [(e.account, e.size, e.is_cross, e.amount, e.swept) for e in paid] == [
        (BOB, -60, True, -352_150, 0),  # pool -352_150, dust 227_389_460
        (ALICE, 100, True, 586_918, 1),  # dust 1_181_740_360: 1 swept, pool 234_767
        (CAROL, -40, False, -234_766, 1),  # dust exactly 10^9: 1 swept, pool 0
    ]
    assert {a: cross_health(ws, a).value for a in (ALICE, BOB)} == values  # settling never moves value
    assert cash(ws, ALICE) == 11_000 * USDC - 586_918
    assert cash(ws, BOB) == 25_400 * USDC + 352_150
    assert cash(ws, CAROL) == 1_000 * USDC  # isolated: her cross cash is untouched
    assert ws.get(position_key(BTC, CAROL)).iso_cash == 4_100 * USDC + 234_766
    assert cash(ws, INSURANCE_FUND) == insurance_before + 2
    assert (btc(ws).funding_pool, btc(ws).funding_dust_e9) == (0, 0)
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
    index = btc(ws).funding_index
    # The chain halts for three hours and a bit: one step, the clock jumps to the last boundary.
    events = chain.block(T0 + 4 * HOUR + 1_234)
    settled = [e for e in events if isinstance(e, FundingSettled) and e.market == BTC]
    # One sample (805_677): F = 805_677 - 500_000 = 305_677; / 8 = 38_209; step 90_000_007 x 38_209.
    assert settled == [
        FundingSettled(
            market=BTC,
            hours=3,
            samples=1,
            avg_premium_ppb=805_677,
            rate_ppb=38_209,
            oracle_price=90_000_007,
            index_step=3_438_810_267_463,
            funding_index=index + 3_438_810_267_463,
            open_interest=0,
        )
    ]
    # Alice owes both steps: the first hour had no sample (interest only: 90_000_007 x 12_500 =
    # 1_125_000_087_500), so 100 x (1_125_000_087_500 + 3_438_810_267_463) / 1e9 = 456_381.04 -> 456_382.
    assert index == 1_125_000_087_500
    assert unsettled_funding(ws.get(position_key(BTC, ALICE)), btc(ws)) == 456_382
    assert btc(ws).last_funding_ms == T0 + 4 * HOUR


def test_flat_positions_owe_nothing_and_take_the_index_when_touched():
    ws = fresh()
    open_positions(ws)
    flat = Position(size=0, cost=0, leverage=3, is_cross=True, iso_cash=0, liq_cooldown_until_ms=0, funding_entry=0)
    ws.put(position_key(BTC, BOB), flat)
    Chain(ws).block(T0 + HOUR)
    assert unsettled_funding(flat, btc(ws)) == 0
    new, ev = settle_funding(ws, BTC, BOB, flat)
    assert ev is None and new.funding_entry == btc(ws).funding_index > 0


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
    # F = 1_111_111 - 500_000 = 611_111; / 8 = 76_388. Step at oracle 90_000_007: 6_874_920_534_716.
    assert settled[0] == FundingSettled(
        market=BTC,
        hours=1,
        samples=59,
        avg_premium_ppb=1_111_111,
        rate_ppb=76_388,
        oracle_price=90_000_007,
        index_step=6_874_920_534_716,
        funding_index=6_874_920_534_716,
        open_interest=100,
    )
    assert paid == []  # lazy: nobody is paid at the hour
    # Alice sells 1 lot into Carol's bid: her position changes size, so it settles first:
    # 100 x 6_874_920_534_716 / 1e9 = 687_492.05 -> pays 687_493 (dust 946_528_400 stays in the pool's books).
    t = p.time_ms + 1000
    ex = p.block([alice.sign(order(False, 90_100_000, 1, TIF_IOC), t)], time_ms=t)
    paid = [e for e in ex.events if isinstance(e, FundingPaid)]
    assert [(e.account, e.size, e.amount, e.swept) for e in paid] == [(alice.address, 100, 687_493, 0)]
    view = p.engine.view()
    ms = view.get(market_state_key(BTC))
    assert (ms.funding_pool, ms.funding_dust_e9) == (687_493, 946_528_400)
    # Bob is untouched: he is owed 687_492 (rounded down), counted in his value, held by the pool.
    assert unsettled_funding(view.get(position_key(BTC, bob.address)), ms) == -687_492
    # Conservation from committed state: deposits - withdrawals = all account cash + the funding pool;
    # and the pool covers the unsettled funding exactly (protocol §11.6).
    store = p.engine.store
    snap = store_snapshot(store.iter_all())
    assert check_conservation(snap) == [] and check_funding(snap) == []
    assert check_all(store) == []
    total = sum(view.get(k).cash for k, _ in store.scan_prefix(NS_ACCOUNT)) + ms.funding_pool
    chain = view.get(CHAIN_KEY)
    assert total == chain.deposits - chain.withdrawals
    p.close()
    replayer = Engine(MemoryStore())
    replay_log(replayer, str(log))
    assert replayer.store.root == store.root


def test_check_funding_catches_a_size_change_without_settlement():
    """The exactness check can fail: a position that changes size without settling first
    (a missing ``settle_funding``) breaks pool x 10^9 - dust + Σ size x (index - entry) = 0
    whenever the lot it gained and the lot its counterparty lost have different entries (the
    check is an aggregate: two unsettled changes at the same entry cancel)."""
    ws = fresh()
    open_positions(ws)
    Chain(ws).block(T0 + HOUR)
    assert check_funding(ws_snapshot(ws)) == []
    bob, _ev = settle_funding(ws, BTC, BOB, ws.get(position_key(BTC, BOB)))  # Bob's entry = the index
    ws.put(position_key(BTC, BOB), bob)
    assert check_funding(ws_snapshot(ws)) == []
    alice = ws.get(position_key(BTC, ALICE))  # entry 0
    ws.put(position_key(BTC, ALICE), msgspec.structs.replace(alice, size=alice.size + 1))
    ws.put(position_key(BTC, BOB), msgspec.structs.replace(bob, size=bob.size - 1))  # sizes still balance
    (problem,) = check_funding(ws_snapshot(ws))
    assert "market 0" in problem and "not 0" in problem
