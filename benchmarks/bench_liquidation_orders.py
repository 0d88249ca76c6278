"""
Benchmark: the liquidation step's cost against the number of resting orders in the book.

Cancelling a liquidated unit's resting orders must cost O(its own orders), not O(book)
(protocol §12.3, the per-owner order index of §7.1). This builds, directly in state (signing
tens of thousands of orders would only time the signing), a BTC book with ``--units``
accounts that are below maintenance margin at the mark, each holding a long of 10 lots and
``--own`` far-away resting orders of its own, plus every size in ``--orders`` of far-away
resting orders held by outsiders (1,000 per account, bids far below and asks far above the
mark, so no liquidation order reaches them). It commits that state to a ``MemoryStore`` and
then times only the real end-of-block liquidation step (``liquidation.run_liquidations``:
trigger, cancellation of the unit's orders, market liquidation into the book, insurance
fund, backstop) on a fresh ``WorkingState``, exactly as a block runs it. Building the state
(the orders' own placement) is not timed.

Usage::

    python benchmarks/bench_liquidation_orders.py [--units 2000] [--orders 1000,20000]
                                                  [--own 2] [--repeat 3] [--json]

Every case runs ``--repeat`` times and the fastest run counts (CPU time beside wall time:
on a shared machine CPU time is the steadier figure). The ratio is the largest book's CPU
time over the smallest book's, measured in the same run; the acceptance bound is 1.5x.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clearinghouse.spec.block import apply_genesis
from clearinghouse.spec.state.keys import (
    CHAIN_KEY,
    account_key,
    market_state_key,
    order_key,
    order_loc_key,
    position_key,
)
from clearinghouse.spec.state.records import Account, Order, OrderLocator, Position
from clearinghouse.spec.state.working_state import KeyIndex, WorkingState
from clearinghouse.spec.waterfall.events import LiquidationTriggered
from clearinghouse.spec.waterfall.liquidation import run_liquidations
from clearinghouse.tools.demo import demo_genesis
from state import MemoryStore

BTC = 0
MARK = 90_000_000
"""90,000 USDC in BTC price units (sz_decimals 3)."""
LOTS = 10
PER_ACCOUNT = 1_000


def address(kind: int, i: int) -> bytes:
    return bytes([kind]) + i.to_bytes(19, "big")


def build_store(units: int, orders: int, own: int) -> tuple[MemoryStore, int]:
    """Committed state: ``units`` liquidatable longs with ``own`` orders each, ``orders`` outsider orders."""
    store = MemoryStore()
    genesis = demo_genesis()
    ws = WorkingState(store, KeyIndex())
    apply_genesis(ws, genesis)
    oid = 1

    def rest(owner: bytes, is_buy: bool, price: int) -> None:
        nonlocal oid
        key = order_key(BTC, is_buy, price, oid)
        ws.put(
            key,
            Order(
                oid=oid,
                owner=owner,
                is_buy=is_buy,
                price=price,
                size=1,
                orig_size=1,
                tif=0,
                reduce_only=False,
                cloid=0,
                time_ms=genesis.time_ms,
            ),
        )
        ws.put(order_loc_key(oid), OrderLocator(key=key))
        oid += 1

    notional = LOTS * MARK
    for i in range(units):
        owner = address(1, i)
        # value = cash + 10 x mark = 1 USDC < maintenance margin 9 USDC: liquidated at this mark.
        ws.put(account_key(owner), Account(cash=-notional + 1_000_000, open_markets=[BTC], open_orders=own))
        ws.put(
            position_key(BTC, owner),
            Position(
                size=LOTS,
                cost=notional,
                leverage=20,
                is_cross=True,
                iso_cash=0,
                liq_cooldown_until_ms=0,
                funding_entry=0,
            ),
        )
        for j in range(own):
            rest(owner, j % 2 == 0, 45_000_000 + i if j % 2 == 0 else 160_000_000 - i)
    short = address(2, 0)
    ws.put(account_key(short), Account(cash=units * notional + 10**15, open_markets=[BTC], open_orders=0))
    ws.put(
        position_key(BTC, short),
        Position(
            size=-units * LOTS,
            cost=-units * notional,
            leverage=20,
            is_cross=True,
            iso_cash=0,
            liq_cooldown_until_ms=0,
            funding_entry=0,
        ),
    )
    for a in range((orders + PER_ACCOUNT - 1) // PER_ACCOUNT):
        owner = address(3, a)
        n = min(PER_ACCOUNT, orders - a * PER_ACCOUNT)
        ws.put(account_key(owner), Account(cash=10**15, open_markets=[], open_orders=n))
        for j in range(n):
            rest(owner, j % 2 == 0, 40_000_000 + j if j % 2 == 0 else 170_000_000 - j)
    ws.put(CHAIN_KEY, msgspec.structs.replace(ws.get(CHAIN_KEY), next_oid=oid))
    ms = ws.get(market_state_key(BTC))
    ws.put(market_state_key(BTC), msgspec.structs.replace(ms, open_interest=units * LOTS))
    store.commit_block(0, ws.changes(), {})
    return store, genesis.time_ms + 1_000


def run_case(units: int, orders: int, own: int, repeat: int) -> dict[str, Any]:
    store, time_ms = build_store(units, orders, own)
    index = KeyIndex.load(store)
    best_cpu = best_wall = float("inf")
    liquidated = cancelled = 0
    for _ in range(repeat):
        ws = WorkingState(store, index)
        c0, w0 = time.process_time(), time.perf_counter()
        events = run_liquidations(ws, time_ms)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        best_cpu, best_wall = min(best_cpu, cpu), min(best_wall, wall)
        liquidated = sum(isinstance(e, LiquidationTriggered) for e in events)
        cancelled = sum(getattr(e, "reason", "") == "liquidation" for e in events)
        index = KeyIndex.load(store)  # the step changed the derived index; start the next run clean
    assert liquidated == units, (liquidated, units)
    assert cancelled == units * own, (cancelled, units * own)
    return {
        "units": units,
        "resting_orders": orders,
        "own_orders_per_unit": own,
        "liquidated": liquidated,
        "cancelled": cancelled,
        "cpu_s": round(best_cpu, 4),
        "wall_s": round(best_wall, 4),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", type=int, default=2_000)
    ap.add_argument("--orders", default="1000,20000", help="comma-separated outsider book sizes")
    ap.add_argument("--own", type=int, default=2, help="resting orders of each liquidated unit")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.orders.split(",")]
    rows = [run_case(args.units, n, args.own, args.repeat) for n in sizes]
    ratio_cpu = rows[-1]["cpu_s"] / rows[0]["cpu_s"]
    ratio_wall = rows[-1]["wall_s"] / rows[0]["wall_s"]
    result = {"rows": rows, "ratio_cpu": round(ratio_cpu, 3), "ratio_wall": round(ratio_wall, 3), "bound": 1.5}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{'units':>6} {'resting orders':>15} {'cancelled':>10} {'CPU s':>9} {'wall s':>9}")
        for r in rows:
            print(
                f"{r['units']:>6} {r['resting_orders']:>15} {r['cancelled']:>10} {r['cpu_s']:>9.3f} {r['wall_s']:>9.3f}"
            )
        print(f"ratio {sizes[-1]:,} / {sizes[0]:,} orders: CPU {ratio_cpu:.2f}x, wall {ratio_wall:.2f}x (bound 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
