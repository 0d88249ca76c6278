"""Waterfall invariants (protocol §1.1) after every block of generated crash scenarios.

``WChain`` (tests/waterfall_helpers.py) checks after every block:

* conservation: Chain.deposits - Chain.withdrawals == Σ account cash + Σ iso_cash
  (insurance fund and fee pool are accounts);
* open interest: per market Σ long == Σ short == MarketState.open_interest;
* solvency: no cross account value and no isolated unit value (flat buckets too)
  below zero after end of block (the insurance fund: protocol §12.12's bounded exception only);
* bystanders: an account that starts a block with no position and no open order
  and takes no part in the block's transactions ends it with the same cash.

The deterministic scenarios of test_liquidation / test_adl / test_policies /
test_seed_examples run on the same checked chain; here hypothesis generates
random accounts (cross or isolated, any leverage), trades between them and a
market maker, and then oracle crashes of 10-50% either way over several blocks,
with or without fresh liquidity, under each policy.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from clearinghouse.spec.state.keys import INSURANCE_FUND
from clearinghouse.spec.waterfall.events import AdlShortfall, AdlStep, Backstop, LiquidationTriggered
from tests.helpers import BUY, GTC, IOC, SELL
from tests.waterfall_helpers import BTC, ETH, WChain, check_block, of_type, px, snapshot, sz, usdc

MAX_LEVERAGE = {BTC: 50, ETH: 25}
START = {BTC: 10_000, ETH: 1_000}  # whole USDC

trader = st.fixed_dictionaries(
    {
        "deposit": st.integers(300, 20_000),
        "market": st.sampled_from([BTC, ETH]),
        "long": st.booleans(),
        "isolated": st.booleans(),
        "leverage_pct": st.integers(1, 100),  # of the market's maximum
        "use_pct": st.integers(30, 98),  # of deposit x leverage
    }
)
move = st.one_of(st.just(0), st.integers(10, 50), st.integers(-50, -10))
crash_block = st.fixed_dictionaries(
    {
        "moves": st.tuples(move, move),
        "liquidity": st.sampled_from([None, 1, 3, 8]),  # mm quotes at +-k% around the new price, or nothing
        "depth_pct": st.integers(5, 100),  # of the open interest, per side
    }
)
scenario = st.fixed_dictionaries(
    {
        "policy": st.sampled_from(["hyperliquid", "bitmex", "seed"]),
        "fund": st.sampled_from([100, 2_000, 50_000]),
        "traders": st.lists(trader, min_size=2, max_size=5),
        "pairs": st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(5, 60)), max_size=3),
        "crashes": st.lists(crash_block, min_size=1, max_size=4),
    }
)


def lots(notional_usdc: int, market: int, price_usdc: int) -> int:
    return notional_usdc * (1000 if market == BTC else 100) // price_usdc


def run(s: dict) -> WChain:
    c = WChain(s["policy"], fund=s["fund"], pin=False)
    names = [f"t{i}" for i in range(len(s["traders"]))]
    c.fund(mm=50_000_000, idle=1_000, **{n: t["deposit"] for n, t in zip(names, s["traders"])})
    prices = dict(START)

    def blk(*txs: bytes):
        return c.block(*txs, *c.oracle_txs({m: px(p, m) for m, p in prices.items()}))

    def trade(buyer: str, seller: str, market: int, size: int) -> None:
        price = px(prices[market], market)
        # Either side may be rejected for margin; an unmatched ask then rests as liquidity.
        blk(c.order_tx(seller, market, SELL, price, size, GTC), c.order_tx(buyer, market, BUY, price, size, IOC))

    for n, t in zip(names, s["traders"]):
        m = t["market"]
        lev = max(1, MAX_LEVERAGE[m] * t["leverage_pct"] // 100)
        c.leverage(n, m, lev, cross=not t["isolated"])
        size = lots(t["deposit"] * lev * t["use_pct"] // 100, m, prices[m])
        if size >= 2:
            buyer, seller = (n, "mm") if t["long"] else ("mm", n)
            trade(buyer, seller, m, size)
    for i, j, pct in s["pairs"]:
        if i < len(names) and j < len(names) and i != j:
            t = s["traders"][i]
            size = lots(t["deposit"] * pct // 100, t["market"], prices[t["market"]])
            if size >= 2:
                trade(names[i], names[j], t["market"], size)

    for cb in s["crashes"]:
        for m, pct in zip((BTC, ETH), cb["moves"]):
            prices[m] = max(1, prices[m] * (100 + pct) // 100)
        txs = []
        if cb["liquidity"] is not None:
            for m in (BTC, ETH):
                depth = max(2, c.open_interest(m) * cb["depth_pct"] // 100)
                k = cb["liquidity"]
                txs.append(c.order_tx("mm", m, BUY, px(prices[m] * (100 - k) // 100, m), depth, GTC))
                txs.append(c.order_tx("mm", m, SELL, px(prices[m] * (100 + k) // 100 + 1, m), depth, GTC))
        blk(*txs)
        blk()  # one more block: shortfalls retry, cooldowns run on
    return c


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(scenario)
def test_generated_crashes_keep_the_invariants(s):
    c = run(s)
    assert c.checked_blocks >= 3


def test_crash_scenario_liquidates_and_stays_solvent():
    """A fixed instance of the generator that is known to go through the whole waterfall."""
    s = {
        "policy": "hyperliquid",
        "fund": 100,
        "traders": [
            {"deposit": 2_000, "market": BTC, "long": True, "isolated": True, "leverage_pct": 100, "use_pct": 95},
            {"deposit": 3_000, "market": BTC, "long": True, "isolated": False, "leverage_pct": 40, "use_pct": 90},
            {"deposit": 1_000, "market": ETH, "long": False, "isolated": False, "leverage_pct": 100, "use_pct": 90},
        ],
        "pairs": [(0, 2, 50)],
        "crashes": [
            {"moves": (-30, 40), "liquidity": None, "depth_pct": 50},
            {"moves": (-10, 0), "liquidity": 3, "depth_pct": 50},
        ],
    }
    c = run(s)
    events = [e for b in c.history for e in b.events]
    assert len(of_type(events, LiquidationTriggered)) >= 3
    assert of_type(events, Backstop) and of_type(events, AdlStep)  # the fund (100) took positions, then ADL
    assert c.checked_blocks == len(c.history)


def test_the_checker_catches_a_negative_account_without_shortfall(monkeypatch: pytest.MonkeyPatch):
    """The solvency check is not vacuous: with the liquidation and ADL steps switched off, a gapped
    cross long stays negative and the checker fails, with or without an AdlShortfall naming it."""
    from clearinghouse.spec import end_of_block

    c = WChain(check=False)
    c.fund(alice=1_000, mm=1_000_000)
    c.trade("alice", "mm", BTC, px(10_000), sz(1))
    before = snapshot(c)
    with monkeypatch.context() as m:
        m.setattr(end_of_block, "run_liquidations", lambda ws, time_ms: [])
        m.setattr(end_of_block, "run_adl", lambda ws, time_ms: [])
        r = c.crash({BTC: px(8_000)})
    assert c.value("alice") == usdc(1_000 - 2_000)
    with pytest.raises(AssertionError, match="solvency"):
        check_block(c, before, r.events)
    # No event excuses a user account below zero (protocol §12.12): not even an AdlShortfall naming it.
    with pytest.raises(AssertionError, match="solvency"):
        check_block(c, before, r.events + [AdlShortfall(market=BTC, underwater=c.addr("alice"), unmatched=1)])
    assert c.value(INSURANCE_FUND) == usdc(50_000)


def test_the_checker_catches_a_bystander_losing_cash():
    c = WChain(check=False)
    c.fund(alice=1_000, bob=1_000)
    before = snapshot(c)
    r = c.transfer("alice", "bob", usdc(1))  # bob took part (a Transferred event names him): fine
    check_block(c, before, c.history[-1].events)
    before = snapshot(c)
    c.block()
    events = c.history[-1].events
    # Pretend bob lost a micro-USDC in a block he took no part in.
    fake = dict(before.cash)
    fake[c.addr("bob")] += 1
    with pytest.raises(AssertionError, match="idle account"):
        check_block(c, type(before)(fake, before.idle), events)
    assert r.ok
