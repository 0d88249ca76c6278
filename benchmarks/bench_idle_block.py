"""
Benchmark: the cost of a block in which nothing happens to anyone, against the number of
positioned accounts (issue 10, target 1; protocol §12.3's liquidation index).

For each size N (default 10^3, 10^4, 10^5) it writes, directly in state (signing and matching
10^5 orders would only time the set-up), N accounts that each hold a position and are far from
maintenance margin (about 2x leverage): half long and half short BTC, and every fourth account
also long or short ETH on the same cross margin (a unit with two markets). Open interest and the
insurance fund are set to match. The state is committed to a ``MemoryStore``; then an
``Engine`` over it runs blocks as ``Engine.produce`` does (``execute``, ``preview_root``,
``commit``; the log entry is not built), timing the execution alone beside the whole block. Two warm-up blocks are not timed (the first one builds whatever the
code under test derives from state); then it times, one block at a time:

- ``idle``: an empty block (no transactions), one second after the previous one;
- ``mark``: the three oracle publishers move BTC's oracle and external price 1% (up, then down,
  alternately): the mark follows; nobody comes near maintenance margin.

Each kind runs ``--blocks`` times; the figures are the median CPU time (``time.process_time``)
of the whole block and of its execution alone (the transition: what the liquidation index
changes; the state root and commit grow with the tree's depth), beside the median wall time. The ratios are the largest size over the smallest, measured in the
same run. To compare code versions, run the same script with ``PYTHONPATH`` pointing at each
checkout (it only uses APIs both have)::

    python benchmarks/bench_idle_block.py [--sizes 1000 10000 100000] [--blocks 9] [--json]
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # after PYTHONPATH: the checkout named there wins

import msgspec  # noqa: E402

import clearinghouse  # noqa: E402
from clearinghouse.chain.engine import Engine  # noqa: E402
from clearinghouse.spec.block import apply_genesis  # noqa: E402
from clearinghouse.spec.state.keys import (  # noqa: E402
    CHAIN_KEY,
    INSURANCE_FUND,
    account_key,
    market_state_key,
    position_key,
)
from clearinghouse.spec.state.records import Account, Position  # noqa: E402
from clearinghouse.spec.state.working_state import KeyIndex, WorkingState  # noqa: E402
from clearinghouse.tools.demo import ORACLE_NAMES, USDC, demo_genesis  # noqa: E402
from state import MemoryStore  # noqa: E402
from tx import actions as A  # noqa: E402
from tx.builder import Wallet  # noqa: E402
from tx.encoding import encode  # noqa: E402
from tx.messages import Header  # noqa: E402

BTC, ETH = 0, 1
BTC_LOTS, ETH_LOTS = 10, 3
"""0.01 BTC (900 USDC at 90,000) and 0.03 ETH (96 USDC at 3,200)."""
EQUITY = 500 * USDC
MOVE_BPS = 100


def address(i: int) -> bytes:
    return b"\x07" + i.to_bytes(19, "big")


def build_store(n: int) -> tuple[MemoryStore, Any, int]:
    """Committed state with ``n`` positioned accounts (module docstring); returns (store, genesis, time)."""
    store = MemoryStore()
    genesis = demo_genesis(policy="hyperliquid", insurance_fund=1_000 * USDC)
    ws = WorkingState(store, KeyIndex())
    apply_genesis(ws, genesis)
    marks = {m: ws.get(market_state_key(m)).mark_price for m in (BTC, ETH)}
    long_oi = {BTC: 0, ETH: 0}
    total_cash = 0
    for i in range(n):
        sign = 1 if i % 2 == 0 else -1
        legs = [(BTC, sign * BTC_LOTS)] + ([(ETH, -sign * ETH_LOTS)] if i % 4 < 2 else [])
        cash = EQUITY
        for m, size in legs:
            cash -= size * marks[m]
            if size > 0:
                long_oi[m] += size
            ws.put(
                position_key(m, address(i)),
                Position(
                    size=size, cost=size * marks[m], leverage=5, is_cross=True, iso_cash=0, liq_cooldown_until_ms=0
                ),
            )
        ws.put(account_key(address(i)), Account(cash=cash, open_markets=sorted(m for m, _ in legs), open_orders=0))
        total_cash += cash
    # Longs and shorts balance exactly: n is even and every pair is mirrored.
    for m in (BTC, ETH):
        ms = ws.get(market_state_key(m))
        ws.put(market_state_key(m), msgspec.structs.replace(ms, open_interest=long_oi[m]))
    chain = ws.get(CHAIN_KEY)
    ws.put(CHAIN_KEY, msgspec.structs.replace(chain, deposits=chain.deposits + n * EQUITY))
    assert ws.get(account_key(INSURANCE_FUND)) is not None
    store.commit_block(0, ws.changes(), {"genesis": encode(genesis), "header_hash": b"\x00" * 32})
    return store, genesis, genesis.time_ms


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else 0.0


def run_size(n: int, blocks: int) -> dict[str, Any]:
    t0 = time.process_time()
    store, genesis, time_ms = build_store(n)
    build_s = time.process_time() - t0
    engine = Engine(store)
    oracles = [Wallet.from_name(name, genesis.chain_id) for name in ORACLE_NAMES]
    btc = engine.view().get(market_state_key(BTC)).oracle_price

    def oracle_txs(price: int, t: int) -> list[bytes]:
        prices = [A.OraclePrice(market=BTC, oracle_price=price, external_price=price)]
        return [w.sign(A.OracleUpdate(prices=prices), t) for w in oracles]

    def produce(txs: list[bytes]) -> tuple[float, float, float]:
        """``Engine.produce``'s work, split: (execute CPU, whole block CPU, whole block wall)."""
        nonlocal time_ms
        time_ms += 1_000
        gc.collect()
        c0, w0 = time.process_time(), time.perf_counter()
        executed = engine.execute(engine.height + 1, time_ms, txs)
        c1 = time.process_time()
        root = engine.preview_root(executed)
        header = Header(
            height=executed.height,
            time_ms=time_ms,
            parent_hash=engine.last_header_hash(),
            tx_root=executed.tx_root,
            state_root=root,
            events_root=executed.events_root,
        )
        engine.commit(executed, header, expected_root=root)
        return c1 - c0, time.process_time() - c0, time.perf_counter() - w0

    warm = [produce(oracle_txs(btc, time_ms + 1_000)), produce([])]
    idle = [produce([]) for _ in range(blocks)]
    mark_before = engine.view().get(market_state_key(BTC)).mark_price
    mark: list[tuple[float, float, float]] = []
    marks_seen = []
    for k in range(blocks):
        price = btc * (10_000 + MOVE_BPS) // 10_000 if k % 2 == 0 else btc
        txs = oracle_txs(price, time_ms + 1_000)
        mark.append(produce(txs))
        marks_seen.append(engine.view().get(market_state_key(BTC)).mark_price)
    moves = [abs(b - a) * 10_000 // a for a, b in zip([mark_before] + marks_seen, marks_seen)]
    return {
        "accounts": n,
        "build_cpu_s": round(build_s, 2),
        "first_block_cpu_ms": round(warm[0][0] * 1e3, 2),
        "idle_cpu_ms": round(median([c for _, c, _ in idle]) * 1e3, 3),
        "idle_wall_ms": round(median([w for _, _, w in idle]) * 1e3, 3),
        "idle_execute_cpu_ms": round(median([e for e, _, _ in idle]) * 1e3, 3),
        "mark_cpu_ms": round(median([c for _, c, _ in mark]) * 1e3, 3),
        "mark_wall_ms": round(median([w for _, _, w in mark]) * 1e3, 3),
        "mark_execute_cpu_ms": round(median([e for e, _, _ in mark]) * 1e3, 3),
        "mark_move_bps_median": median([float(m) for m in moves]),
        "blocks_per_kind": blocks,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    ap.add_argument("--blocks", type=int, default=9)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = [run_size(n, args.blocks) for n in args.sizes]
    lo, hi = rows[0], rows[-1]
    out = {
        "code": str(Path(clearinghouse.__file__).resolve().parent.parent),
        "rows": rows,
        "idle_ratio": round(hi["idle_cpu_ms"] / lo["idle_cpu_ms"], 2) if lo["idle_cpu_ms"] else None,
        "mark_ratio": round(hi["mark_cpu_ms"] / lo["mark_cpu_ms"], 2) if lo["mark_cpu_ms"] else None,
        "idle_execute_ratio": round(hi["idle_execute_cpu_ms"] / lo["idle_execute_cpu_ms"], 2)
        if lo["idle_execute_cpu_ms"]
        else None,
        "mark_execute_ratio": round(hi["mark_execute_cpu_ms"] / lo["mark_execute_cpu_ms"], 2)
        if lo["mark_execute_cpu_ms"]
        else None,
        "ratio_of": f"{hi['accounts']} / {lo['accounts']} accounts",
    }
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print(f"code: {out['code']}")
        head = ("accounts", "idle cpu ms", "(execute)", "idle wall ms", "mark cpu ms", "(execute)", "mark wall ms")
        print(" ".join(f"{h:>12}" for h in head))
        for r in rows:
            cells = (
                r["accounts"],
                r["idle_cpu_ms"],
                r["idle_execute_cpu_ms"],
                r["idle_wall_ms"],
                r["mark_cpu_ms"],
                r["mark_execute_cpu_ms"],
                r["mark_wall_ms"],
            )
            print(" ".join(f"{c:>12}" for c in cells))
        print(f"ratio {out['ratio_of']}: idle {out['idle_ratio']}x, mark {out['mark_ratio']}x")
        print(
            f"execute only (no root, no commit): idle {out['idle_execute_ratio']}x, mark {out['mark_execute_ratio']}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
