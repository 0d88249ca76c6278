"""
Benchmark: an hourly funding block against an idle block, at 10^3 / 10^4 / 10^5 open positions.

Issue 10, target 2: with lazy funding (protocol §11.6) the hour is one index step per market,
so a funding block must cost at most 10x an idle block at 10^5 positions (eager funding paid
every position and made each a changed key). This builds, directly in state (signing would
only time the signing), ``N`` cross accounts in BTC, half long and half short 10 lots at the
mark, well margined, commits it to a ``MemoryStore``, then applies on a fresh
``WorkingState``:

* an **idle block**: no transactions, 1 s after the last, inside the funding hour;
* a **funding block**: no transactions, at the end of the funding hour.

Each is the whole transition (``spec.block.apply_block``: every end-of-block step, including
today's liquidation and ADL scans, which issue 10 target 1 makes independent of N), followed by
the state root of its changes (``MemoryStore.preview_root``); both are reported, with the count
of changed keys. CPU time beside wall time; the ratio funding / idle is measured in the same
run. The script runs unchanged against main's code (records without the lazy-funding fields),
which gives the "before" figures::

    PYTHONPATH=/path/to/main python benchmarks/bench_funding.py --sizes 1000,10000,100000

Usage::

    python benchmarks/bench_funding.py [--sizes 1000,10000,100000] [--repeat 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

# Appended, not prepended: PYTHONPATH (main's tree for the "before" run) takes precedence.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from clearinghouse.spec.block import apply_block, apply_genesis
from clearinghouse.spec.state.keys import CHAIN_KEY, account_key, market_state_key, position_key
from clearinghouse.spec.state.records import Account, Position
from clearinghouse.spec.state.working_state import KeyIndex, WorkingState
from clearinghouse.tools.demo import demo_genesis
from state import MemoryStore

BTC = 0
LOTS = 10
HOUR = 3_600_000


def address(i: int) -> bytes:
    return b"\x05" + i.to_bytes(19, "big")


def position(size: int, cost: int) -> Position:
    fields: dict[str, Any] = dict(size=size, cost=cost, leverage=20, is_cross=True, iso_cash=0, liq_cooldown_until_ms=0)
    if "funding_entry" in Position.__struct_fields__:  # lazy funding; absent on main (the "before" run)
        fields["funding_entry"] = 0
    return Position(**fields)


def build_store(n: int) -> tuple[MemoryStore, int]:
    """Committed state: ``n`` cross accounts, alternately long and short ``LOTS`` at the mark."""
    store = MemoryStore()
    genesis = demo_genesis()
    ws = WorkingState(store, KeyIndex())
    apply_genesis(ws, genesis)
    mark = ws.get(market_state_key(BTC)).mark_price
    notional = LOTS * mark
    for i in range(n):
        size = LOTS if i % 2 == 0 else -LOTS
        owner = address(i)
        # Cash: the notional moved at the mark, plus 10x the position's initial margin.
        ws.put(account_key(owner), Account(cash=-size * mark + notional, open_markets=[BTC], open_orders=0))
        ws.put(position_key(BTC, owner), position(size, size * mark))
    ms = ws.get(market_state_key(BTC))
    ws.put(market_state_key(BTC), msgspec.structs.replace(ms, open_interest=(n + 1) // 2 * LOTS))
    store.commit_block(0, ws.changes(), {})
    return store, ms.last_funding_ms


def timed_block(store: MemoryStore, index: KeyIndex, time_ms: int) -> dict[str, Any]:
    ws = WorkingState(store, index)
    height = ws.get(CHAIN_KEY).height + 1
    c0, w0 = time.process_time(), time.perf_counter()
    events = apply_block(ws, height, time_ms, [])
    c1, w1 = time.process_time(), time.perf_counter()
    changes = ws.changes()
    store.preview_root(changes)
    c2, w2 = time.process_time(), time.perf_counter()
    return {
        "apply_cpu_s": c1 - c0,
        "apply_wall_s": w1 - w0,
        "root_cpu_s": c2 - c1,
        "root_wall_s": w2 - w1,
        "cpu_s": c2 - c0,
        "wall_s": w2 - w0,
        "changed_keys": len(changes),
        "events": len(events),
        "funding_events": sum(type(e).__name__ in ("FundingPaid", "FundingSettled") for e in events),
    }


def run_size(n: int, repeat: int) -> dict[str, Any]:
    store, hour_start = build_store(n)
    best: dict[str, dict[str, Any]] = {}
    for _ in range(repeat):
        for kind, t in (("idle", hour_start + 1_000), ("funding", hour_start + HOUR)):
            r = timed_block(store, KeyIndex.load(store), t)
            if kind not in best or r["cpu_s"] < best[kind]["cpu_s"]:
                best[kind] = r
    assert best["funding"]["funding_events"] >= 1, "the funding block did not cross the hour"
    row = {"positions": n}
    for kind in ("idle", "funding"):
        for k, v in best[kind].items():
            row[f"{kind}_{k}"] = round(v, 4) if isinstance(v, float) else v
    row["ratio_cpu"] = round(best["funding"]["cpu_s"] / best["idle"]["cpu_s"], 2)
    row["ratio_wall"] = round(best["funding"]["wall_s"] / best["idle"]["wall_s"], 2)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="comma-separated numbers of open positions")
    ap.add_argument("--repeat", type=int, default=1, help="runs per block kind; the fastest counts")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = [run_size(int(s), args.repeat) for s in args.sizes.split(",")]
    import clearinghouse

    result = {
        "rows": rows,
        "bound_funding_over_idle": 10,
        "lazy_funding": "funding_entry" in Position.__struct_fields__,
        "code": str(Path(clearinghouse.__file__).resolve().parent.parent),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"lazy funding: {result['lazy_funding']} (code from {result['code']})")
    print(
        f"{'positions':>9} | {'idle CPU s':>10} {'wall s':>8} {'root CPU':>8} {'keys':>6} | "
        f"{'funding CPU s':>13} {'wall s':>8} {'root CPU':>8} {'keys':>7} | {'ratio CPU':>9} {'wall':>6}"
    )
    for r in rows:
        print(
            f"{r['positions']:>9} | {r['idle_cpu_s']:>10.4f} {r['idle_wall_s']:>8.4f} {r['idle_root_cpu_s']:>8.4f} "
            f"{r['idle_changed_keys']:>6} | {r['funding_cpu_s']:>13.4f} {r['funding_wall_s']:>8.4f} "
            f"{r['funding_root_cpu_s']:>8.4f} {r['funding_changed_keys']:>7} | {r['ratio_cpu']:>8.2f}x {r['ratio_wall']:>5.2f}x"
        )
    print("bound: a funding block at most 10x an idle block (issue 10, target 2)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
