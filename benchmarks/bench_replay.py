"""
Benchmark: replay throughput of a collateral-heavy log, into memory and LMDB.

Generates a deterministic demo-genesis log of ``--blocks`` blocks of ``--txs``
transactions among ``--accounts`` funded accounts (the first blocks deposit to
every account; then about 70% transfers, 15% withdrawals, 15% deposits, with a
few deliberately rejected ones), then replays it with the engine (every header
root checked, as ``clearinghouse verify`` does) into a ``MemoryStore`` and an
``LmdbStore`` in a temporary directory, and reports transactions per second.

Usage::

    python benchmarks/bench_replay.py [--blocks 200] [--txs 100] [--accounts 1000]
                                      [--seed 1] [--backend both|memory|lmdb]
                                      [--log PATH] [--profile] [--json]

``--profile`` runs the replay under cProfile and prints the top 15 functions by
cumulative time. CPU time is reported beside wall time: on a shared machine
"tx per CPU-second" is the steadier figure (LMDB's fsyncs show in wall time only). ``generate_log`` is also used by the tests to build long logs.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clearinghouse.chain.engine import Engine, replay_log  # noqa: E402
from clearinghouse.chain.producer import Producer  # noqa: E402
from clearinghouse.tools.demo import USDC, demo_genesis  # noqa: E402
from state import LmdbStore, MemoryStore  # noqa: E402
from tx.actions import Deposit, Transfer, Withdraw  # noqa: E402

INITIAL_DEPOSIT = 10_000 * USDC


def generate_log(path: str | os.PathLike[str], *, blocks: int, txs: int, accounts: int, seed: int = 1) -> Producer:
    """Write a deterministic log to ``path``; returns the (closed) producer.

    Funding blocks come first (one deposit per account, ``txs`` per block),
    and count towards ``blocks``. The generator keeps a model of balances so
    that nearly every transaction succeeds; about 1 in 50 overdraws on purpose.
    """
    rng = random.Random(seed)
    p = Producer(demo_genesis(), path, overwrite=True)
    bridge = p.wallet("bridge")
    wallets = [p.wallet(f"bench-{i}") for i in range(accounts)]
    balance = [0] * accounts
    ref = 0
    to_fund = list(range(accounts))
    for _ in range(blocks):
        t = p.time_ms + 1000
        batch: list[bytes] = []
        while to_fund and len(batch) < txs:
            i = to_fund.pop(0)
            ref += 1
            batch.append(bridge.sign(Deposit(to=wallets[i].address, amount=INITIAL_DEPOSIT, ref=ref), t))
            balance[i] += INITIAL_DEPOSIT
        funded = accounts - len(to_fund)
        while len(batch) < txs and funded > 1:
            roll = rng.random()
            i = rng.randrange(funded)
            overdraw = rng.random() < 0.02
            amount = balance[i] + 1 if overdraw else rng.randint(1, max(1, balance[i] // 10))
            if roll < 0.70:
                j = rng.randrange(funded - 1)
                j += j >= i
                batch.append(wallets[i].sign(Transfer(to=wallets[j].address, amount=amount), t))
                if not overdraw and amount <= balance[i]:
                    balance[i] -= amount
                    balance[j] += amount
            elif roll < 0.85:
                batch.append(wallets[i].sign(Withdraw(amount=amount, destination=wallets[i].address), t))
                if not overdraw and amount <= balance[i]:
                    balance[i] -= amount
            else:
                ref += 1
                amount = rng.randint(1, 1_000 * USDC)
                batch.append(bridge.sign(Deposit(to=wallets[i].address, amount=amount, ref=ref), t))
                balance[i] += amount
        p.block(batch)
    p.close()
    return p


def replay(log: str, backend: str, workdir: str) -> dict[str, Any]:
    """Replay ``log`` into a fresh store; returns timing and counts."""
    if backend == "lmdb":
        db = os.path.join(workdir, "lmdb")
        shutil.rmtree(db, ignore_errors=True)
        store: Any = LmdbStore(db)
    else:
        store = MemoryStore()
    try:
        start, cpu_start = time.perf_counter(), time.process_time()
        stats = replay_log(Engine(store), log)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        return {
            "backend": backend,
            "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "tx_per_cpu_s": round(stats["txs"] / cpu),
            "blocks": stats["applied"],
            "txs": stats["txs"],
            "rejected": stats["rejected"],
            "tx_per_s": round(stats["txs"] / seconds),
            "blocks_per_s": round(stats["applied"] / seconds, 1),
            "state_root": store.root.hex(),
        }
    finally:
        store.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blocks", type=int, default=200)
    ap.add_argument("--txs", type=int, default=100, help="transactions per block")
    ap.add_argument("--accounts", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--backend", choices=("both", "memory", "lmdb"), default="both")
    ap.add_argument("--log", help="keep the generated log at this path (default: a temporary file)")
    ap.add_argument("--profile", action="store_true", help="profile the replay (top 15 by cumulative time)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    workdir = tempfile.mkdtemp(prefix="bench-replay-")
    try:
        log = args.log or os.path.join(workdir, "bench.log")
        start = time.perf_counter()
        p = generate_log(log, blocks=args.blocks, txs=args.txs, accounts=args.accounts, seed=args.seed)
        gen_seconds = time.perf_counter() - start
        report: dict[str, Any] = {
            "blocks": args.blocks,
            "txs_per_block": args.txs,
            "accounts": args.accounts,
            "log_bytes": os.path.getsize(log),
            "generate_seconds": round(gen_seconds, 3),
            "producer_root": p.engine.store.root.hex(),
            "python": sys.version.split()[0],
            "results": [],
        }
        backends = ("memory", "lmdb") if args.backend == "both" else (args.backend,)
        for backend in backends:
            if args.profile:
                prof = cProfile.Profile()
                prof.enable()
                result = replay(log, backend, workdir)
                prof.disable()
            else:
                result = replay(log, backend, workdir)
            if result["state_root"] != report["producer_root"]:
                raise SystemExit(
                    f"{backend} replay root {result['state_root']} != producer root {report['producer_root']}"
                )
            report["results"].append(result)
            if args.profile and not args.json:
                print(f"--- profile: replay into {backend} (top 15 by cumulative time)")
                pstats.Stats(prof, stream=sys.stdout).sort_stats("cumulative").print_stats(15)
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print(
                f"log: {args.blocks} blocks x {args.txs} txs, {args.accounts} accounts, "
                f"{report['log_bytes'] / 1e6:.1f} MB, generated (signed + executed) in {gen_seconds:.2f} s"
            )
            for r in report["results"]:
                print(
                    f"replay into {r['backend']:6}: {r['seconds']:7.2f} s  {r['tx_per_s']:>7} tx/s  "
                    f"{r['blocks_per_s']:>6} blocks/s  (CPU {r['cpu_seconds']:.2f} s: {r['tx_per_cpu_s']} tx per CPU-second; "
                    f"{r['txs']} txs, {r['rejected']} rejected)"
                )
            print(f"state root {report['producer_root']} (every backend agrees with the producer)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
