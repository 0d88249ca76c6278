"""
Benchmark: the ADL step (end-of-block step 50) with many underwater units in one market.

Builds, for each size N, a chain under policy ``seed`` with an empty insurance fund in which N
small cross accounts each hold a 0.02 BTC long bought from one whale's resting ask at 90,000,
then crashes BTC's oracle (all three publishers) to 81,000: every long is worth -80 USDC, the
book has no bid (seed liquidates the whole position, bounded by 10% slippage, so nothing
fills), the fund pays nothing (all or nothing) and there is no backstop, so step 50 has N
underwater units with an open position, each deleveraged against the same queue (the whale).

Only step 50 is timed (``clearinghouse.spec.end_of_block.run_adl`` is wrapped), wall and CPU time
(``time.process_time``, the steadier figure on a shared machine), the fastest of ``--repeat`` dry
runs of the crash block from the same state (after a ``gc.collect()``), together with the number of
ADL queues ranked (``clearinghouse.spec.waterfall.adl.build_queue`` calls) and of underwater units served
(``AdlQueue`` events). Before protocol §12.10's shared queue every unit ranked the whole queue
again (a scan of every position of the market): quadratic in N. The ratios are measured in one
run against the smallest size.

Usage::

    python benchmarks/bench_adl_queue.py [--sizes 500,1000,2000] [--repeat 3] [--json] [--max-ratio 5]

With ``--max-ratio R`` the exit status is 1 if the largest size's ADL CPU time exceeds R times
the smallest's (the acceptance bound is 5 for 2,000 against 500 units).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clearinghouse.chain.producer import Producer  # noqa: E402
from clearinghouse.spec import end_of_block  # noqa: E402
from clearinghouse.spec.waterfall import adl  # noqa: E402
from clearinghouse.spec.waterfall.events import AdlQueue, AdlStep  # noqa: E402
from clearinghouse.tools.demo import ORACLE_NAMES, USDC, demo_genesis  # noqa: E402
from tx import actions as A  # noqa: E402

BTC = 0
PX = 1_000  # BTC price units per USDC (demo: sz_decimals 3)
LOTS = 20  # 0.02 BTC
MAX_TXS = 3_000  # per block, under MAX_BLOCK_TXS


def chunks(items: list[bytes]) -> list[list[bytes]]:
    return [items[i : i + MAX_TXS] for i in range(0, len(items), MAX_TXS)] or [[]]


def build(n: int) -> tuple[Producer, list[bytes]]:
    """The chain before the crash, and the crash block's transactions."""
    p = Producer(demo_genesis(policy="seed", insurance_fund=0))
    bridge, whale = p.wallet("bridge"), p.wallet("whale")
    users = [p.wallet(f"u{i}") for i in range(n)]
    t = p.time_ms + 1000
    deposits = [bridge.sign(A.Deposit(to=whale.address, amount=100_000_000 * USDC, ref=0), t)]
    deposits += [bridge.sign(A.Deposit(to=u.address, amount=100 * USDC, ref=i + 1), t) for i, u in enumerate(users)]
    for part in chunks(deposits):
        p.block(part, time_ms=t)
        t += 1000
    p.block(
        [
            whale.sign(
                A.PlaceOrder(
                    market=BTC,
                    is_buy=False,
                    price=90_000 * PX,
                    size=LOTS * n,
                    tif=A.TIF_GTC,
                    reduce_only=False,
                    cloid=0,
                ),
                t,
            )
        ],
        time_ms=t,
    )
    t += 1000
    buys = [
        u.sign(
            A.PlaceOrder(
                market=BTC, is_buy=True, price=90_000 * PX, size=LOTS, tif=A.TIF_IOC, reduce_only=False, cloid=0
            ),
            t,
        )
        for u in users
    ]
    for part in chunks(buys):
        p.block(part, time_ms=t)
        t += 1000
    p.time_ms = t - 1000
    prices = [A.OraclePrice(market=BTC, oracle_price=81_000 * PX, external_price=81_000 * PX)]
    crash = [p.wallet(name).sign(A.OracleUpdate(prices=prices), t) for name in ORACLE_NAMES]
    return p, crash


def measure(n: int, repeat: int = 3) -> dict[str, Any]:
    """Step 50 of the crash block, executed ``repeat`` times from the same state (dry runs, nothing
    committed); the fastest run's wall and CPU time (the others carry GC pauses and other jobs)."""
    p, crash = build(n)
    walls: list[float] = []
    cpus: list[float] = []
    builds = [0]
    real_run_adl, real_build_queue = end_of_block.run_adl, adl.build_queue

    def timed_run_adl(ws: Any, time_ms: int) -> list[Any]:
        gc.collect()
        w0, c0 = time.perf_counter(), time.process_time()
        out = real_run_adl(ws, time_ms)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
        return out

    def counted_build_queue(*args: Any, **kwargs: Any) -> Any:
        builds[0] += 1
        return real_build_queue(*args, **kwargs)

    end_of_block.run_adl, adl.build_queue = timed_run_adl, counted_build_queue
    try:
        for _ in range(repeat):
            executed = p.engine.execute(p.engine.height + 1, p.time_ms + 1000, crash)
            p.engine.reset_index()
    finally:
        end_of_block.run_adl, adl.build_queue = real_run_adl, real_build_queue
    units = sum(1 for e in executed.events if isinstance(e, AdlQueue))
    steps = sum(1 for e in executed.events if isinstance(e, AdlStep))
    p.close()
    return {
        "underwater_units": n,
        "adl_queue_events": units,
        "adl_steps": steps,
        "queue_builds": builds[0] // repeat,
        "adl_wall_s": round(min(walls), 4),
        "adl_cpu_s": round(min(cpus), 4),
        "repeats": repeat,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="ADL step cost against the number of underwater units")
    ap.add_argument("--sizes", default="500,1000,2000")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--max-ratio", type=float, default=None)
    ap.add_argument("--repeat", type=int, default=3, help="times step 50 is run per size (the fastest counts)")
    args = ap.parse_args(argv)
    rows = [measure(int(n), args.repeat) for n in args.sizes.split(",")]
    base = rows[0]
    for r in rows:
        r["cpu_ratio"] = round(r["adl_cpu_s"] / base["adl_cpu_s"], 2) if base["adl_cpu_s"] else None
        r["wall_ratio"] = round(r["adl_wall_s"] / base["adl_wall_s"], 2) if base["adl_wall_s"] else None
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        print(
            f"{'units':>6} {'AdlQueue':>8} {'steps':>6} {'builds':>6} {'ADL wall s':>10} {'ADL CPU s':>10} {'CPU x':>6} {'wall x':>6}"
        )
        for r in rows:
            print(
                f"{r['underwater_units']:>6} {r['adl_queue_events']:>8} {r['adl_steps']:>6} {r['queue_builds']:>6} "
                f"{r['adl_wall_s']:>10.3f} {r['adl_cpu_s']:>10.3f} {r['cpu_ratio']:>6} {r['wall_ratio']:>6}"
            )
    if args.max_ratio is not None and rows[-1]["cpu_ratio"] is not None and rows[-1]["cpu_ratio"] > args.max_ratio:
        print(
            f"ADL CPU time grew {rows[-1]['cpu_ratio']}x from {base['underwater_units']} to {rows[-1]['underwater_units']} units "
            f"(bound {args.max_ratio}x)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
