"""Trading invariants (protocol §1.1) after any sequence of trading transactions across
BTC and ETH: orders of every kind (with reduce-only), triggers, cancels, modifies,
leverage and margin-mode changes, isolated margin moves, deposits, withdrawals,
transfers, agent trading, oracle updates that move the marks (and fire triggers),
and occasional long gaps in block time (funding). After every block:

* open interest: per market, total long size == total short size == MarketState.open_interest
  (positions iterated with ``store.scan_prefix(keys.NS_POSITION)``);
* conservation: deposits - withdrawals (running totals in the Chain record; the genesis
  insurance fund counts as a deposit) == Σ account cash (insurance fund and fee pool
  included) + Σ isolated ``iso_cash`` + Σ market ``funding_pool`` (lazy funding, protocol §11.6),
  and the pool identity of §11.6 holds exactly (``Chain.check_funding``);
* a rejected transaction changed nothing: checked on single-transaction blocks.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearinghouse.spec.state import keys
from tests.helpers import ALO, BTC, ETH, FOK, GTC, IOC, USDC, Chain, px
from tx import actions as A

ACCOUNTS = ("t0", "t1", "t2", "t3")
FUNDING = {"t0": 2_000, "t1": 10_000, "t2": 50_000, "t3": 200_000}
PRICES = {
    BTC: [px(p, BTC) for p in range(88_000, 92_001, 250)],
    ETH: [px(p, ETH) for p in range(3_120, 3_281, 10)],
}
MAX_LEV = {BTC: 50, ETH: 25}

accounts = st.sampled_from(ACCOUNTS)
markets = st.sampled_from([BTC, ETH])
price_idx = st.integers(0, 16)
lots = st.integers(1, 300)  # BTC: up to 0.3 (27k USDC); ETH: up to 3 (10k USDC)
tifs = st.sampled_from([GTC, GTC, IOC, FOK, ALO])
reduce_only = st.sampled_from([False, False, False, True])

ops = st.one_of(
    st.tuples(st.just("limit"), accounts, markets, st.booleans(), price_idx, lots, tifs, reduce_only),
    st.tuples(st.just("limit"), accounts, markets, st.booleans(), price_idx, lots, tifs, reduce_only),
    st.tuples(st.just("trade"), accounts, accounts, markets, st.booleans(), price_idx, lots),
    st.tuples(st.just("trade"), accounts, accounts, markets, st.booleans(), price_idx, lots),
    st.tuples(st.just("market"), accounts, markets, st.booleans(), lots, st.sampled_from([10, 100, 500]), reduce_only),
    st.tuples(st.just("trigger"), accounts, markets, st.booleans(), lots, price_idx, st.booleans(), st.booleans()),
    st.tuples(st.just("cancel"), accounts, markets, st.integers(0, 8)),
    st.tuples(st.just("modify"), accounts, markets, st.integers(0, 8), price_idx, lots),
    st.tuples(st.just("leverage"), accounts, markets, st.integers(1, 51), st.booleans()),
    st.tuples(st.just("iso"), accounts, markets, st.integers(-3_000, 3_000)),
    st.tuples(st.just("withdraw"), accounts, st.integers(1, 5_000)),
    st.tuples(st.just("transfer"), accounts, accounts, st.integers(1, 5_000)),
    st.tuples(st.just("deposit"), accounts, st.integers(1, 5_000)),
    st.tuples(st.just("oracle"), markets, price_idx),
    st.tuples(st.just("agent"), accounts, markets, st.booleans(), price_idx, lots),
)
blocks = st.lists(
    st.tuples(st.lists(ops, min_size=1, max_size=4), st.sampled_from([1_000, 1_000, 1_000, 1_000, 900_000])),
    min_size=1,
    max_size=14,
)


def open_oids(c: Chain, name: str, market: int) -> list[int]:
    addr = c.addr(name)
    orders = [o for side in (True, False) for o in c.book(market, side)] + c.triggers(market)
    return [o.oid for o in orders if o.owner == addr]


def build(c: Chain, op: tuple) -> list[bytes]:
    """The signed transaction(s) of one operation."""
    if op[0] == "trade":  # a resting GTC and an IOC against it: fills unless margin says no
        _, maker, taker, m, is_buy, i, size = op
        return [
            c.order_tx(maker, m, not is_buy, PRICES[m][i], size, GTC),
            c.order_tx(taker, m, is_buy, PRICES[m][i], size, IOC),
        ]
    if op[0] == "oracle":  # every publisher: the oracle moves only with a fresh majority (protocol §11.2)
        _, m, i = op
        update = A.OracleUpdate(prices=[A.OraclePrice(market=m, oracle_price=PRICES[m][i], external_price=0)])
        return [c.tx(o, update) for o in ("oracle-1", "oracle-2", "oracle-3")]
    return [build_one(c, op)]


def build_one(c: Chain, op: tuple) -> bytes:
    kind = op[0]
    if kind == "limit":
        _, name, m, is_buy, i, size, tif, ro = op
        return c.order_tx(name, m, is_buy, PRICES[m][i], size, tif, reduce_only=ro)
    if kind == "market":
        _, name, m, is_buy, size, bps, ro = op
        return c.market_tx(name, m, is_buy, size, bps, reduce_only=ro)
    if kind == "trigger":
        _, name, m, is_buy, size, i, tp, with_limit = op
        trig = PRICES[m][i]
        limit = PRICES[m][max(0, i - 2)] if not is_buy else PRICES[m][min(16, i + 2)]
        return c.trigger_tx(name, m, is_buy, size, trig, tp=tp, limit_price=limit if with_limit else 0)
    if kind in ("cancel", "modify"):
        name, m, k = op[1], op[2], op[3]
        mine = open_oids(c, name, m)
        oid = mine[k % len(mine)] if mine else 10**9
        if kind == "cancel":
            return c.cancel_tx(name, m, oid)
        return c.modify_tx(name, m, oid, PRICES[m][op[4]], op[5])
    if kind == "leverage":
        _, name, m, lev, cross = op
        return c.tx(name, A.UpdateLeverage(market=m, leverage=lev, is_cross=cross))
    if kind == "iso":
        _, name, m, delta = op
        return c.tx(name, A.UpdateIsolatedMargin(market=m, delta=delta * USDC))
    if kind == "withdraw":
        return c.tx(op[1], A.Withdraw(amount=op[2] * USDC, destination=c.addr(op[1])))
    if kind == "transfer":
        return c.tx(op[1], A.Transfer(to=c.addr(op[2]), amount=op[3] * USDC))
    if kind == "deposit":
        return c.deposit_tx(op[1], op[2])
    if kind == "oracle":
        _, m, i = op
        return c.tx(
            "oracle-1", A.OracleUpdate(prices=[A.OraclePrice(market=m, oracle_price=PRICES[m][i], external_price=0)])
        )
    if kind == "agent":
        _, name, m, is_buy, i, size = op
        return c.tx(
            f"{name}-agent",
            A.PlaceOrder(market=m, is_buy=is_buy, price=PRICES[m][i], size=size, tif=GTC, reduce_only=False, cloid=0),
        )
    raise AssertionError(kind)


def check(c: Chain) -> None:
    # Open interest, from a raw scan of the position namespace.
    longs = {BTC: 0, ETH: 0}
    shorts = {BTC: 0, ETH: 0}
    iso = 0
    for key, pos in c.scan(keys.NS_POSITION):
        m = int.from_bytes(key[1:5], "big")
        longs[m] += max(pos.size, 0)
        shorts[m] += max(-pos.size, 0)
        iso += pos.iso_cash
        if pos.is_cross:
            assert pos.iso_cash == 0
    for m in (BTC, ETH):
        assert longs[m] == shorts[m] == c.open_interest(m), (m, longs[m], shorts[m], c.open_interest(m))
    # Conservation: the insurance fund and the fee pool are accounts too.
    cash = sum(a.cash for _k, a in c.scan(keys.NS_ACCOUNT))
    pools = sum(ms.funding_pool for _k, ms in c.scan(keys.NS_MARKET_STATE))
    ch = c.chain()
    assert ch.deposits - ch.withdrawals == cash + iso + pools, (ch.deposits, ch.withdrawals, cash, iso, pools)
    c.check_funding()
    # Every account's open_markets lists exactly its non-zero positions.
    for key, acct in c.scan(keys.NS_ACCOUNT):
        addr = key[1:]
        held = [m for m in (BTC, ETH) if c.size(addr, m) != 0]
        assert acct.open_markets == held


@given(blocks=blocks)
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
def test_open_interest_and_conservation_hold_after_every_block(blocks: list) -> None:
    c = Chain()
    c.fund(**FUNDING)
    setup = [c.tx(n, A.ApproveAgent(agent=c.addr(f"{n}-agent"), approve=True)) for n in ACCOUNTS]
    # t1 and t2 trade ETH isolated (10x), so isolated buckets and margin moves are exercised.
    setup += [c.tx(n, A.UpdateLeverage(market=ETH, leverage=10, is_cross=False)) for n in ("t1", "t2")]
    assert c.block(setup).all_ok
    check(c)
    for ops_, advance in blocks:
        txs = [tx for op in ops_ for tx in build(c, op)]
        if len(txs) == 1:
            before = c.trading_snapshot()
            r = c.block(txs, advance_ms=advance)
            if not r[0].ok and not r.end_events:
                assert c.trading_snapshot() == before, r[0]
        else:
            c.block(txs, advance_ms=advance)
        check(c)
