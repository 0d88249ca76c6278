"""
Benchmark: does a replayer keep up with the chain? (issue 10, "Keep up with the chain")

For each size N (positioned accounts; default 10^3, 10^4, 10^5) it builds a chain with the real
transition (signed transactions through :class:`~clearinghouse.chain.engine.Engine`, LMDB store by
default) in which every one of the N accounts holds a BTC position:

- ``N - R`` safe shorts: 1,000 USDC each, short 0.01 BTC at 90,000 (0.9x leverage), sold into one
  maker's bid;
- ``R = N * --crash-share`` risky longs: 100 USDC each, long 0.02 BTC at 90,000 (18x), bought from a
  second maker's ask;
- the two makers' orders are filled exactly, so the book is empty afterwards; the insurance fund is
  small (1,000 USDC).

Then it times ONE block of each kind, each ``--repeat`` times as a dry run from the same state
(``Engine.execute`` + ``Engine.preview_root``, then ``Engine.reset_index``) and once for real
(``Engine.produce``: execute, root, commit):

- ``idle``: no transactions, the oracle unchanged (fresh, posted one second before);
- ``mark``: the three publishers move the oracle 1% up (nobody is near liquidation);
- ``funding``: the first block at or past the hour since genesis (hourly settlement), no
  transactions (a block one second earlier refreshes the oracle, untimed);
- ``cascade``: the publishers crash the oracle 10%: every risky long is underwater, the book has no
  bid, the small fund backstops and ADL closes the fund's longs against the ranked shorts.

CPU time is ``time.process_time()`` plus the CPU time of reaped child processes
(``resource.getrusage(RUSAGE_CHILDREN)``), so work moved to worker processes still counts once they are
reaped; wall time is ``time.perf_counter()``. A ``gc.collect()`` precedes every timed run.

Beside the blocks, in the same run:

- ``verify``: ``clearinghouse generate`` writes an order-heavy log (``--profile normal``), then
  ``clearinghouse verify LOG`` runs in a child process (CPU of the child and its children, wall time),
  minus the same command on a genesis-only log (interpreter start-up and imports); against it, bare
  secp256k1 public-key recovery (coincurve) plus the keccak address for every transaction of the log,
  in a child process of its own (digests prepared beforehand, untimed);
- ``replay``: ``clearinghouse replay LOG --db DIR`` (LMDB) the same way: wall against CPU; bare
  recovery, ``verify`` and ``replay`` run in ``VERIFY_ROUNDS`` interleaved rounds and the fastest of each
  counts (the VM's speed drifts by a third between minutes; each round's figures are in the JSON);
- ``tree``: ``benchmarks/bench_commitment.py --backends tree`` in a child process (µs per changed key
  of ``compute_update`` on a bare tree, and of BLAKE3 alone);
- ``adl_rank``: the ADL queue rankings of the cascade block (``rank_candidates`` calls inside
  ``spec.waterfall.adl``, wrapped while the cascade runs, if that function still exists; otherwise
  ``build_queue``), seconds and candidates ranked;
- ``db`` / ``memory``: the state database (``data.mdb`` after the packing compaction ``replay`` ends
  with) per positioned account, beside ``events.dat`` and the folder as the blocks wrote it; a child process
  opens the store with an ``Engine`` and executes an idle block: the peak growth (sampled every 5 ms)
  of its anonymous memory (``RssAnon``, which leaves out LMDB's file-backed map, already counted as
  database bytes; the figure target 6 is checked on) and of its resident set (``VmRSS``) per account.

The figures are compared with the issue's targets (``TARGETS``) and the JSON carries a pass/fail for
each (``null`` when a size was not run).

Usage::

    python benchmarks/bench_scale.py [--sizes 1000 10000 100000] [--quick] [--repeat 2] [--json]
        [--tree-sizes 10000 100000 1000000] [--verify-accounts 1000 --verify-blocks 20 --verify-txs 1000]
        [--backend lmdb|memory] [--crash-share 0.02] [--skip verify tree]

``--quick`` is ``--sizes 1000 10000 --tree-sizes 10000 100000`` and a smaller verify log. The test
``tests/test_bench_scale.py`` runs a tiny configuration and checks the JSON's shape.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import state.smt  # noqa: E402
from clearinghouse.chain.engine import Engine, iter_log  # noqa: E402
from clearinghouse.tools.demo import ORACLE_NAMES, USDC, demo_genesis  # noqa: E402
from state import LmdbStore, MemoryStore  # noqa: E402
from tx import actions as A  # noqa: E402
from tx.builder import Wallet  # noqa: E402
from tx.encoding import decode_transaction, encode  # noqa: E402
from tx.logfile import FRAME_GENESIS, LogWriter  # noqa: E402
from tx.messages import Genesis, LogBlock  # noqa: E402
from tx.signing import signing_digest  # noqa: E402

BTC = 0
PX = 1_000
"""BTC price units per USDC (demo market: sz_decimals 3, so a lot is 0.001 BTC)."""
ENTRY_USDC = 90_000
SAFE_LOTS, SAFE_DEPOSIT = 10, 1_000 * USDC
RISKY_LOTS, RISKY_DEPOSIT = 20, 100 * USDC
MAKER_DEPOSIT = 1_000_000_000 * USDC
INSURANCE_FUND = 100 * USDC
MARK_MOVE_BPS = 100
CRASH_BPS = 1_000
HOUR_MS = 3_600_000
TXS_PER_BLOCK = 3_000
KINDS = ("idle", "mark", "funding", "cascade")
VERIFY_ROUNDS = 3
"""Interleaved rounds of bare recovery, `verify` and `replay` (the fastest of each counts)."""

TARGETS: dict[str, str] = {
    "idle_ratio": "idle block CPU at 10^5 accounts <= 2x the same block at 10^3",
    "idle_ms": "idle block CPU at 10^5 accounts <= 5 ms",
    "funding_ratio": "funding block CPU at 10^5 accounts <= 10x the idle block at 10^5",
    "verify_cpu_ratio": "verify CPU per tx <= 3x bare recovery + keccak address per tx",
    "verify_wall_ratio": "verify wall time <= 0.8x its CPU time",
    "tree_us": "state tree <= 20 us CPU per changed key at 10^6 keys",
    "adl_rank_s": "ADL ranking of 10^5 candidates <= 0.3 s (scaled from the candidates ranked at the largest size)",
    "replay_wall_ratio": "replay (LMDB) wall time <= 1.3x its CPU time",
    "db_bytes": "LMDB state database (data.mdb, packed) <= 1 KiB per account at 10^5 accounts",
    "memory_bytes": "process memory (peak anonymous) <= 2 KiB per account at 10^5 accounts",
}
"""Issue 10's targets 1-6, as bench_scale checks them."""


# ---------------------------------------------------------------- timing
def cpu_now() -> float:
    """CPU seconds of this process plus its reaped children (user + system)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


class Timer:
    """Wall and CPU seconds of a ``with`` block (CPU including reaped child processes)."""

    wall: float = 0.0
    cpu: float = 0.0

    @contextmanager
    def run(self) -> Iterator[Timer]:
        gc.collect()
        w0, c0 = time.perf_counter(), cpu_now()
        try:
            yield self
        finally:
            self.wall = time.perf_counter() - w0
            self.cpu = cpu_now() - c0


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_child(args: list[str], *, cwd: str | None = None) -> tuple[float, float, str]:
    """Run a command; return (wall s, CPU s of it and its reaped children, stdout). Raises on failure."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    c0, w0 = children_cpu(), time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=cwd)
    wall, cpu = time.perf_counter() - w0, children_cpu() - c0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return wall, cpu, proc.stdout


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "clearinghouse", *args]


# ---------------------------------------------------------------- the chain
class Chain:
    """A chain of positioned accounts, driven through the public Engine API."""

    def __init__(self, n: int, crash_share: float, backend: str, workdir: str) -> None:
        self.n = n
        self.risky = max(1, round(n * crash_share)) if n >= 2 else 1
        self.safe = max(1, n - self.risky)
        self.genesis = demo_genesis(policy="hyperliquid", insurance_fund=INSURANCE_FUND)
        self.db_path = os.path.join(workdir, f"state-{n}") if backend == "lmdb" else None
        self.store: Any = LmdbStore(self.db_path) if self.db_path else MemoryStore()
        self.engine = Engine(self.store)
        self.engine.init_genesis(self.genesis)
        self.time_ms = self.genesis.time_ms
        self.oracles = [self.wallet(name) for name in ORACLE_NAMES]
        self.ref = 0

    def wallet(self, name: str) -> Wallet:
        return Wallet.from_name(name, self.genesis.chain_id)

    def produce(self, txs: list[bytes], time_ms: int) -> Any:
        self.time_ms = time_ms
        _entry, executed = self.engine.produce(time_ms, txs)
        return executed

    def produce_many(self, txs: list[bytes]) -> None:
        for i in range(0, len(txs), TXS_PER_BLOCK):
            self.produce(txs[i : i + TXS_PER_BLOCK], self.time_ms + 1_000)

    def oracle(self, price_usdc: int, time_ms: int) -> list[bytes]:
        prices = [A.OraclePrice(market=BTC, oracle_price=price_usdc * PX, external_price=price_usdc * PX)]
        return [w.sign(A.OracleUpdate(prices=prices), time_ms) for w in self.oracles]

    def deposit(self, bridge: Wallet, to: bytes, amount: int, t: int) -> bytes:
        self.ref += 1
        return bridge.sign(A.Deposit(to=to, amount=amount, ref=self.ref), t)

    def order(self, w: Wallet, is_buy: bool, lots: int, tif: int, t: int) -> bytes:
        action = A.PlaceOrder(
            market=BTC, is_buy=is_buy, price=ENTRY_USDC * PX, size=lots, tif=tif, reduce_only=False, cloid=0
        )
        return w.sign(action, t)

    def build(self) -> dict[str, float]:
        """Open every position; returns the setup's wall and CPU seconds."""
        w0, c0 = time.perf_counter(), cpu_now()
        bridge = self.wallet("bridge")
        bid_maker, ask_maker = self.wallet("bench-maker-bid"), self.wallet("bench-maker-ask")
        safe = [self.wallet(f"bench-s{i}") for i in range(self.safe)]
        risky = [self.wallet(f"bench-r{i}") for i in range(self.risky)]
        t = self.time_ms + 1_000
        deposits = [self.deposit(bridge, m.address, MAKER_DEPOSIT, t) for m in (bid_maker, ask_maker)]
        deposits += [self.deposit(bridge, w.address, SAFE_DEPOSIT, t) for w in safe]
        deposits += [self.deposit(bridge, w.address, RISKY_DEPOSIT, t) for w in risky]
        self.produce_many(deposits)
        t = self.time_ms + 1_000
        self.produce([self.order(bid_maker, True, SAFE_LOTS * self.safe, A.TIF_GTC, t)], t)
        t = self.time_ms + 1_000
        self.produce_many([self.order(w, False, SAFE_LOTS, A.TIF_IOC, t) for w in safe])
        t = self.time_ms + 1_000
        self.produce([self.order(ask_maker, False, RISKY_LOTS * self.risky, A.TIF_GTC, t)], t)
        t = self.time_ms + 1_000
        self.produce_many([self.order(w, True, RISKY_LOTS, A.TIF_IOC, t) for w in risky])
        t = self.time_ms + 1_000
        self.produce(self.oracle(ENTRY_USDC, t), t)  # a fresh oracle at the entry price
        return {"setup_wall_s": time.perf_counter() - w0, "setup_cpu_s": cpu_now() - c0}

    def positions(self) -> int | None:
        """Position records in the store (a check that the setup worked; None if the key layout moved)."""
        try:
            from clearinghouse.spec.state.keys import position_prefix

            return sum(1 for _ in self.store.scan_prefix(position_prefix(BTC)))
        except Exception:  # noqa: BLE001 - a probe of the key layout, never a reason to fail the benchmark
            return None

    def measure(self, txs: list[bytes], time_ms: int, repeat: int, probe: Probe | None = None) -> dict[str, Any]:
        """Time one block: ``repeat`` dry runs (execute + root, then reset), then the real one."""
        height = self.engine.height + 1
        dry: list[Timer] = []
        for _ in range(repeat):
            if probe:
                probe.reset()
            with Timer().run() as timer:
                executed = self.engine.execute(height, time_ms, txs)
                self.engine.preview_root(executed)
            self.engine.reset_index()
            dry.append(timer)
        probe_result = probe.result() if probe and repeat else None
        with Timer().run() as real:
            executed = self.produce(txs, time_ms)
        events = Counter(type(e).__name__ for e in executed.events)
        out: dict[str, Any] = {
            "txs": len(txs),
            "dry_cpu_ms": min(t.cpu for t in dry) * 1e3 if dry else None,
            "dry_wall_ms": min(t.wall for t in dry) * 1e3 if dry else None,
            "block_cpu_ms": real.cpu * 1e3,
            "block_wall_ms": real.wall * 1e3,
            "changed_keys": len(executed.changes),
            "events": dict(sorted(events.items())),
        }
        out["cpu_ms"] = min(out["block_cpu_ms"], out["dry_cpu_ms"]) if dry else out["block_cpu_ms"]
        if probe_result is not None:
            out["adl_rank"] = probe_result
        return out

    def close(self) -> None:
        self.store.close()


# ---------------------------------------------------------------- ADL ranking probe
class Probe:
    """Wraps the ADL queue ranking while the cascade block runs (if the function still exists)."""

    def __init__(self) -> None:
        from clearinghouse.spec.waterfall import adl

        self.module = adl
        self.name = "rank_candidates" if callable(getattr(adl, "rank_candidates", None)) else "build_queue"
        self.real: Callable[..., Any] | None = getattr(adl, self.name, None)
        self.calls: list[tuple[int, float, float]] = []

    def reset(self) -> None:
        self.calls = []

    def __enter__(self) -> Probe:
        real = self.real
        if real is None:
            return self

        def timed(*args: Any, **kwargs: Any) -> Any:
            w0, c0 = time.perf_counter(), time.process_time()
            out = real(*args, **kwargs)
            self.calls.append((len(out), time.perf_counter() - w0, time.process_time() - c0))
            return out

        setattr(self.module, self.name, timed)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.real is not None:
            setattr(self.module, self.name, self.real)

    def result(self) -> dict[str, Any] | None:
        if self.real is None:
            return None
        return {
            "function": f"adl.{self.name}",
            "calls": len(self.calls),
            "candidates": sum(c for c, _w, _c in self.calls),
            "largest": max((c for c, _w, _c in self.calls), default=0),
            "wall_s": sum(w for _c, w, _cpu in self.calls),
            "cpu_s": sum(cpu for _c, _w, cpu in self.calls),
        }


# ---------------------------------------------------------------- memory and disk
def memory_status() -> dict[str, int]:
    """VmRSS and RssAnon of this process in bytes (Linux /proc; zeros elsewhere)."""
    out = {"VmRSS": 0, "RssAnon": 0}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in out:
                    out[name] = int(rest.split()[0]) * 1024
    except OSError:
        pass
    return out


class PeakSampler:
    """Samples ``memory_status()`` every few milliseconds on a thread and keeps the largest values."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.peak = memory_status()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = memory_status()
            self.peak = {k: max(v, now[k]) for k, v in self.peak.items()}
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def memory_probe(db: str) -> dict[str, int]:
    """
    In a fresh process: open the LMDB state with an Engine and execute an idle block (not committed).

    Returns the growth over the process's memory after its imports: at the end (after a
    ``gc.collect()``) and at the peak (sampled every 5 ms), of the resident set and of its anonymous part.
    """
    gc.collect()
    before = memory_status()
    with PeakSampler() as sampler:
        store = LmdbStore(db)
        engine = Engine(store)
        chain = engine.chain()
        assert chain is not None
        engine.execute(engine.height + 1, chain.time_ms + 1_000, [])
        gc.collect()
        after = memory_status()
    store.close()
    peak = {k: max(v, after[k]) for k, v in sampler.peak.items()}
    return {
        "rss_bytes": after["VmRSS"] - before["VmRSS"],
        "anon_bytes": after["RssAnon"] - before["RssAnon"],
        "peak_rss_bytes": peak["VmRSS"] - before["VmRSS"],
        "peak_anon_bytes": peak["RssAnon"] - before["RssAnon"],
        "baseline_rss_bytes": before["VmRSS"],
    }


def dir_bytes(path: str) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


# ---------------------------------------------------------------- one size
def run_size(n: int, args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    chain = Chain(n, args.crash_share, args.backend, workdir)
    row: dict[str, Any] = {"accounts": n, "risky": chain.risky, "safe": chain.safe, "backend": args.backend}
    row.update(chain.build())
    row["positions"] = chain.positions()
    log(f"N={n}: setup {row['setup_wall_s']:.1f} s wall, {row['positions']} positions")
    blocks: dict[str, Any] = {}
    t = chain.time_ms + 1_000
    blocks["idle"] = chain.measure([], t, args.repeat)
    t = chain.time_ms + 1_000
    up = ENTRY_USDC * (10_000 + MARK_MOVE_BPS) // 10_000
    blocks["mark"] = chain.measure(chain.oracle(up, t), t, args.repeat)
    hour = chain.genesis.time_ms + HOUR_MS
    while hour <= chain.time_ms + 1_000:
        hour += HOUR_MS
    chain.produce(chain.oracle(up, hour - 1_000), hour - 1_000)
    blocks["funding"] = chain.measure([], hour, args.repeat)
    t = chain.time_ms + 1_000
    crash = ENTRY_USDC * (10_000 - CRASH_BPS) // 10_000
    with Probe() as probe:
        blocks["cascade"] = chain.measure(chain.oracle(crash, t), t, args.repeat, probe)
    row["blocks"] = blocks
    log(f"N={n}: " + ", ".join(f"{k} {v['cpu_ms']:.1f} ms" for k, v in blocks.items()))
    chain.close()
    if chain.db_path:
        # As the blocks left it (data.mdb with copy-on-write's free pages, and events.dat), then the
        # state database after the packing compaction `clearinghouse replay` runs at its end: that
        # file is the state database the target bounds; events.dat is the events file beside it.
        row["db_written_bytes"] = dir_bytes(chain.db_path)
        events_file = Path(chain.db_path) / "events.dat"
        row["events_bytes"] = events_file.stat().st_size if events_file.exists() else 0
        with LmdbStore(chain.db_path) as store:
            store.compact()
        row["db_bytes"] = (Path(chain.db_path) / "data.mdb").stat().st_size
        row["db_bytes_per_account"] = row["db_bytes"] / n
        row["events_bytes_per_account"] = row["events_bytes"] / n
        row["db_written_bytes_per_account"] = row["db_written_bytes"] / n
        _w, _c, out = run_child([sys.executable, __file__, "--memory-probe", chain.db_path])
        mem = json.loads(out)
        row["memory"] = mem
        row["rss_bytes_per_account"] = mem["rss_bytes"] / n
        row["anon_bytes_per_account"] = mem["anon_bytes"] / n
        row["peak_rss_bytes_per_account"] = mem["peak_rss_bytes"] / n
        row["peak_anon_bytes_per_account"] = mem["peak_anon_bytes"] / n
    return row


# ---------------------------------------------------------------- verify and replay
def genesis_only_log(genesis: Genesis, path: str) -> None:
    writer = LogWriter(path, create=True, overwrite=True)
    writer.append(FRAME_GENESIS, encode(genesis))
    writer.flush(fsync=False)
    writer.close()


def bare_recovery(log_path: str) -> dict[str, Any]:
    """Bare secp256k1 recovery + keccak address for every transaction of the log, timed in this process
    (the signing digests are prepared untimed): run as a child (``--bare-recovery LOG``) so that it is
    measured the way ``verify`` is, in a fresh process, interleaved with it."""
    import coincurve
    from Crypto.Hash import keccak

    chain_id = None
    items: list[tuple[bytes, bytes]] = []
    for _i, item in iter_log(log_path):
        if isinstance(item, Genesis):
            chain_id = item.chain_id
            continue
        assert isinstance(item, LogBlock) and chain_id is not None
        for raw in item.block.txs:
            tx = decode_transaction(raw)
            items.append((signing_digest(chain_id, tx.nonce, encode(tx.action)), bytes(tx.signature)))
    gc.collect()
    with Timer().run() as timer:
        for digest, sig in items:
            pub = coincurve.PublicKey.from_signature_and_message(sig, digest, hasher=None)
            keccak.new(digest_bits=256, data=pub.format(compressed=False)[1:]).digest()[-20:]
    return {"txs": len(items), "cpu_s": timer.cpu, "wall_s": timer.wall}


def run_verify(args: argparse.Namespace, workdir: str) -> dict[str, Any]:
    """Generate the order-heavy log; time bare recovery, ``verify`` and ``replay`` on it.

    The machine's speed drifts (a shared VM: the same bare recovery measured 46-72 us per transaction
    in different minutes), so each figure is measured in ``VERIFY_ROUNDS`` interleaved rounds (bare
    recovery, ``verify``, ``replay``, each after its genesis-only baseline, in that order) and the
    fastest of each counts: the ratio compares figures taken minutes apart at most, both at their best.
    """
    log_path = os.path.join(workdir, "verify.log")
    empty = os.path.join(workdir, "genesis-only.log")
    w0 = time.perf_counter()
    generate = [
        "generate", "--out", log_path, "--accounts", str(args.verify_accounts), "--blocks",
        str(args.verify_blocks), "--txs-per-block", str(args.verify_txs), "--seed", "10",
        "--profile", "normal", "--markets", "2", "--json",
    ]  # fmt: skip
    run_child(cli(*generate))
    generate_s = time.perf_counter() - w0
    genesis = next(item for _i, item in iter_log(log_path) if isinstance(item, Genesis))
    genesis_only_log(genesis, empty)
    inf = float("inf")
    best = {name: {"cpu_s": inf, "wall_s": inf} for name in ("bare", "verify", "replay")}
    rounds: list[dict[str, float]] = []
    txs = 0

    def keep(name: str, wall: float, cpu: float) -> None:
        best[name]["wall_s"] = min(best[name]["wall_s"], wall)
        best[name]["cpu_s"] = min(best[name]["cpu_s"], cpu)

    base = {"verify": (inf, inf), "replay": (inf, inf)}
    for r in range(VERIFY_ROUNDS):
        _w, _c, out = run_child([sys.executable, __file__, "--bare-recovery", log_path])
        bare = json.loads(out)
        txs = bare["txs"]
        keep("bare", bare["wall_s"], bare["cpu_s"])
        base_w, base_c, _ = run_child(cli("verify", empty, "--json"))
        ver_w, ver_c, _ = run_child(cli("verify", log_path, "--json"))
        keep("verify", ver_w - base_w, ver_c - base_c)
        base["verify"] = (min(base["verify"][0], base_w), min(base["verify"][1], base_c))
        db_empty, db = os.path.join(workdir, f"replay-empty-{r}"), os.path.join(workdir, f"replay-db-{r}")
        rb_w, rb_c, _ = run_child(cli("replay", empty, "--db", db_empty, "--quiet"))
        rp_w, rp_c, _ = run_child(cli("replay", log_path, "--db", db, "--quiet"))
        keep("replay", rp_w - rb_w, rp_c - rb_c)
        base["replay"] = (min(base["replay"][0], rb_w), min(base["replay"][1], rb_c))
        rounds.append({
            "bare_cpu_us_per_tx": bare["cpu_s"] / txs * 1e6,
            "verify_cpu_us_per_tx": (ver_c - base_c) / txs * 1e6,
            "replay_cpu_us_per_tx": (rp_c - rb_c) / txs * 1e6,
        })  # fmt: skip
    recovery = {
        "txs": txs,
        "cpu_us_per_tx": best["bare"]["cpu_s"] / txs * 1e6,
        "wall_us_per_tx": best["bare"]["wall_s"] / txs * 1e6,
    }
    verify = dict(best["verify"], startup_wall_s=base["verify"][0], startup_cpu_s=base["verify"][1])
    verify["cpu_us_per_tx"] = verify["cpu_s"] / txs * 1e6
    verify["wall_us_per_tx"] = verify["wall_s"] / txs * 1e6
    verify["wall_over_cpu"] = verify["wall_s"] / verify["cpu_s"]
    verify["cpu_over_recovery"] = verify["cpu_us_per_tx"] / recovery["cpu_us_per_tx"]
    replay = dict(best["replay"], startup_wall_s=base["replay"][0], startup_cpu_s=base["replay"][1])
    replay["cpu_us_per_tx"] = replay["cpu_s"] / txs * 1e6
    replay["wall_over_cpu"] = replay["wall_s"] / replay["cpu_s"]
    return {
        "log": {
            "accounts": args.verify_accounts,
            "blocks": args.verify_blocks,
            "txs_per_block": args.verify_txs,
            "txs": txs,
            "bytes": os.path.getsize(log_path),
            "generate_wall_s": generate_s,
        },
        "rounds": rounds,
        "recovery": recovery,
        "verify": verify,
        "replay": replay,
    }


# ---------------------------------------------------------------- tree
def run_tree(sizes: list[int], args: argparse.Namespace) -> list[dict[str, Any]]:
    bench = str(REPO / "benchmarks" / "bench_commitment.py")
    command = [sys.executable, bench, "--backends", "tree", "--json", "--sizes", *map(str, sizes)]
    command += [
        "--batch",
        str(args.tree_batch),
        "--blocks",
        str(args.tree_blocks),
        "--repeat",
        str(max(1, args.repeat)),
    ]
    _w, _c, out = run_child(command)
    rows = []
    for r in json.loads(out)["results"]:
        rows.append(
            {
                "keys": r["size"],
                "cpu_us_per_key": r.get("tree_cpu_us_per_key"),
                "wall_us_per_key": r.get("tree_us_per_key"),
                "hash_cpu_us_per_key": r.get("hash_cpu_us_per_key"),
                "build_s": r.get("tree_build_s"),
            }
        )
    return rows


# ---------------------------------------------------------------- targets
def at(rows: list[dict[str, Any]], n: int) -> dict[str, Any] | None:
    return next((r for r in rows if r["accounts"] == n), None)


def check_targets(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target: the measured figure, the bound and pass (None when not measured at the size it names)."""
    rows = result["sizes"]
    big, small = at(rows, 100_000), at(rows, 1_000)
    out: dict[str, dict[str, Any]] = {}

    def put(name: str, value: float | None, bound: float) -> None:
        out[name] = {
            "target": TARGETS[name],
            "value": value,
            "bound": bound,
            "pass": None if value is None else value <= bound,
        }

    idle_big = big["blocks"]["idle"]["cpu_ms"] if big else None
    put("idle_ratio", idle_big / small["blocks"]["idle"]["cpu_ms"] if big and small else None, 2.0)
    put("idle_ms", idle_big, 5.0)
    put("funding_ratio", big["blocks"]["funding"]["cpu_ms"] / idle_big if big and idle_big else None, 10.0)
    v = result.get("verify")
    put("verify_cpu_ratio", v["verify"]["cpu_over_recovery"] if v else None, 3.0)
    put("verify_wall_ratio", v["verify"]["wall_over_cpu"] if v else None, 0.8)
    tree = next((r for r in result.get("tree", []) if r["keys"] == 1_000_000), None)
    put("tree_us", tree["cpu_us_per_key"] if tree else None, 20.0)
    rank = rows[-1]["blocks"]["cascade"].get("adl_rank") if rows else None
    scaled = None
    if rank and rank["largest"] >= 10_000:  # scaled from a queue of at least 10^4 candidates
        scaled = rank["cpu_s"] / rank["candidates"] * 100_000
    put("adl_rank_s", scaled, 0.3)
    put("replay_wall_ratio", v["replay"]["wall_over_cpu"] if v else None, 1.3)
    put("db_bytes", big.get("db_bytes_per_account") if big else None, 1024.0)
    put("memory_bytes", big.get("peak_anon_bytes_per_account") if big else None, 2048.0)
    return out


# ---------------------------------------------------------------- before / after
def headline(result: dict[str, Any]) -> dict[str, float | None]:
    """The figures a before/after comparison shows, by name (None when not measured)."""
    out: dict[str, float | None] = {}
    for row in result.get("sizes", []):
        n = row["accounts"]
        for kind in KINDS:
            out[f"{kind} block CPU ms @ {n:,}"] = row["blocks"][kind]["cpu_ms"]
        out[f"funding changed keys @ {n:,}"] = row["blocks"]["funding"]["changed_keys"]
        out[f"DB bytes/account @ {n:,}"] = row.get("db_bytes_per_account")
        out[f"peak anon memory bytes/account @ {n:,}"] = row.get("peak_anon_bytes_per_account")
    v = result.get("verify")
    if v:
        out["recovery CPU us/tx"] = v["recovery"]["cpu_us_per_tx"]
        out["verify CPU us/tx"] = v["verify"]["cpu_us_per_tx"]
        out["verify CPU / recovery"] = v["verify"]["cpu_over_recovery"]
        out["verify wall / CPU"] = v["verify"]["wall_over_cpu"]
        out["replay CPU us/tx"] = v["replay"]["cpu_us_per_tx"]
        out["replay wall / CPU"] = v["replay"]["wall_over_cpu"]
    for r in result.get("tree", []):
        out[f"tree CPU us/key @ {r['keys']:,}"] = r["cpu_us_per_key"]
    for name, t in result.get("targets", {}).items():
        out[f"target {name}"] = t["value"]
    return out


def compare(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """Headline figures of two runs side by side, with after / before."""
    b, a = headline(before), headline(after)
    out = {}
    for name in [*a, *(k for k in b if k not in a)]:
        x, y = b.get(name), a.get(name)
        out[name] = {"before": x, "after": y, "ratio": y / x if x and y is not None else None}
    return out


# ---------------------------------------------------------------- output
def log(message: str) -> None:
    print(f"# {message}", file=sys.stderr, flush=True)


def _f(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def print_tables(result: dict[str, Any], console: Any = None) -> None:
    """Print the figures and the targets as Rich tables (on ``console``, default: the terminal)."""
    from rich.console import Console
    from rich.table import Table

    console = console or (Console() if sys.stdout.isatty() else Console(width=160))
    table = Table(title="One block (CPU ms, best of dry runs and the committed block; wall ms in brackets)")
    headings = (
        "accounts", *KINDS, "funding keys", "DB B/acct", "events B/acct", "as written B/acct",
        "peak RSS B/acct", "peak anon B/acct",
    )  # fmt: skip
    for heading in headings:
        table.add_column(heading, justify="right")
    for row in result["sizes"]:
        b = row["blocks"]
        table.add_row(
            _f(row["accounts"]),
            *(f"{_f(b[k]['cpu_ms'])} ({_f(b[k]['block_wall_ms'])})" for k in KINDS),
            _f(b["funding"]["changed_keys"]),
            _f(row.get("db_bytes_per_account"), 0),
            _f(row.get("events_bytes_per_account"), 0),
            _f(row.get("db_written_bytes_per_account"), 0),
            _f(row.get("peak_rss_bytes_per_account"), 0),
            _f(row.get("peak_anon_bytes_per_account"), 0),
        )
    console.print(table)
    if result.get("verify"):
        v = result["verify"]
        t2 = Table(title=f"verify / replay of a generated log ({v['log']['txs']:,} txs)")
        for heading in ("", "CPU us/tx", "wall us/tx", "wall / CPU", "CPU / recovery"):
            t2.add_column(heading, justify="right")
        rec = v["recovery"]
        t2.add_row("bare recovery + keccak", _f(rec["cpu_us_per_tx"]), _f(rec["wall_us_per_tx"]), "-", "1.0")
        for name in ("verify", "replay"):
            r = v[name]
            t2.add_row(
                f"clearinghouse {name}",
                _f(r["cpu_us_per_tx"]),
                _f(r["wall_s"] / v["log"]["txs"] * 1e6),
                _f(r["wall_over_cpu"], 2),
                _f(r["cpu_us_per_tx"] / rec["cpu_us_per_tx"], 2),
            )
        console.print(t2)
    if result.get("tree"):
        t3 = Table(title="State tree (compute_update, bare tree): us per changed key")
        for heading in ("keys", "CPU", "wall", "BLAKE3 alone (CPU)"):
            t3.add_column(heading, justify="right")
        for r in result["tree"]:
            t3.add_row(_f(r["keys"]), _f(r["cpu_us_per_key"]), _f(r["wall_us_per_key"]), _f(r["hash_cpu_us_per_key"]))
        console.print(t3)
    if result.get("compare"):
        t5 = Table(title="Before / after")
        for heading in ("figure", "before", "after", "after / before"):
            t5.add_column(heading, justify="right")
        for name, c in result["compare"].items():
            t5.add_row(name, _f(c["before"], 2), _f(c["after"], 2), _f(c["ratio"], 3))
        console.print(t5)
    t4 = Table(title="Issue 10 targets")
    for heading in ("target", "value", "bound", "pass"):
        t4.add_column(heading)
    for t in result["targets"].values():
        verdict = "-" if t["pass"] is None else ("[green]pass[/]" if t["pass"] else "[red]FAIL[/]")
        t4.add_row(t["target"], _f(t["value"], 2), _f(t["bound"], 2), verdict)
    console.print(t4)


def markdown(result: dict[str, Any]) -> str:
    """The figures, the targets and (if present) the before/after comparison as Markdown tables."""

    def m(value: Any, digits: int = 1) -> str:
        return _f(value, digits)

    lines = [
        "| positioned accounts | idle | mark-move | funding | cascade | funding changed keys "
        "| DB B/account | events B/account | as written B/account | peak anon B/account | peak RSS B/account "
        "| setup CPU s |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in result["sizes"]:
        b = row["blocks"]
        cells = [f"{m(b[k]['cpu_ms'])} ({m(b[k]['block_wall_ms'], 0)})" for k in KINDS]
        lines.append(
            f"| {m(row['accounts'])} | {' | '.join(cells)} | {m(b['funding']['changed_keys'])} "
            f"| {m(row.get('db_bytes_per_account'), 0)} | {m(row.get('events_bytes_per_account'), 0)} "
            f"| {m(row.get('db_written_bytes_per_account'), 0)} | {m(row.get('peak_anon_bytes_per_account'), 0)} "
            f"| {m(row.get('peak_rss_bytes_per_account'), 0)} | {m(row['setup_cpu_s'])} |"
        )
    v = result.get("verify")
    if v:
        rec = v["recovery"]
        lines += [
            "",
            f"| {v['log']['txs']:,} txs | CPU µs/tx | wall µs/tx | wall / CPU | CPU / recovery |",
            "|---|---:|---:|---:|---:|",
            f"| bare recovery + keccak address | {m(rec['cpu_us_per_tx'])} | {m(rec['wall_us_per_tx'])} | - | 1 |",
        ]
        for name in ("verify", "replay"):
            r = v[name]
            lines.append(
                f"| `clearinghouse {name}` | {m(r['cpu_us_per_tx'])} | {m(r['wall_s'] / v['log']['txs'] * 1e6)} "
                f"| {m(r['wall_over_cpu'], 2)} | {m(r['cpu_us_per_tx'] / rec['cpu_us_per_tx'], 2)} |"
            )
    if result.get("tree"):
        lines += ["", "| tree keys | CPU µs/key | wall µs/key | BLAKE3 alone, CPU µs/key |", "|---:|---:|---:|---:|"]
        for r in result["tree"]:
            lines.append(
                f"| {m(r['keys'])} | {m(r['cpu_us_per_key'])} | {m(r['wall_us_per_key'])} "
                f"| {m(r['hash_cpu_us_per_key'])} |"
            )
    lines += ["", "| target | measured | bound | pass |", "|---|---:|---:|---|"]
    for t in result["targets"].values():
        verdict = "-" if t["pass"] is None else ("pass" if t["pass"] else "**fail**")
        lines.append(f"| {t['target']} | {m(t['value'], 2)} | {m(t['bound'], 2)} | {verdict} |")
    if result.get("compare"):
        lines += ["", "| figure | before | after | after / before |", "|---|---:|---:|---:|"]
        for name, c in result["compare"].items():
            lines.append(f"| {name} | {m(c['before'], 2)} | {m(c['after'], 2)} | {m(c['ratio'], 3)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=None, help="positioned accounts (default 10^3 10^4 10^5)"
    )
    parser.add_argument("--quick", action="store_true", help="10^3 and 10^4 only, tree at 10^4 and 10^5, a smaller log")
    parser.add_argument(
        "--repeat", type=int, default=2, help="dry runs per block (the fastest, or the real block, counts)"
    )
    parser.add_argument("--backend", choices=("lmdb", "memory"), default="lmdb")
    parser.add_argument("--crash-share", type=float, default=0.02, help="share of accounts the cascade liquidates")
    parser.add_argument("--tree-sizes", type=int, nargs="+", default=None)
    parser.add_argument("--tree-batch", type=int, default=1_000)
    parser.add_argument("--tree-blocks", type=int, default=3)
    parser.add_argument("--verify-accounts", type=int, default=None)
    parser.add_argument("--verify-blocks", type=int, default=None)
    parser.add_argument("--verify-txs", type=int, default=None)
    parser.add_argument("--skip", nargs="*", choices=("blocks", "verify", "tree"), default=[])
    parser.add_argument("--json", action="store_true", help="print one JSON document (figures, targets, pass/fail)")
    parser.add_argument("--out", help="also write the JSON document to this file")
    parser.add_argument(
        "--before", metavar="JSON", help="an earlier run's JSON (e.g. benchmarks/results/scale_before.json): compare"
    )
    parser.add_argument(
        "--markdown",
        metavar="JSON",
        help="print a saved run (and, with --before, the comparison) as Markdown; run nothing",
    )
    parser.add_argument("--memory-probe", metavar="DB", help=argparse.SUPPRESS)
    parser.add_argument("--bare-recovery", metavar="LOG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_probe:
        print(json.dumps(memory_probe(args.memory_probe)))
        return 0
    if args.bare_recovery:
        print(json.dumps(bare_recovery(args.bare_recovery)))
        return 0
    if args.markdown:
        saved = json.loads(Path(args.markdown).read_text())
        if args.before:
            saved["compare"] = compare(json.loads(Path(args.before).read_text()), saved)
        print(markdown(saved))
        return 0
    if args.sizes is None:
        args.sizes = [1_000, 10_000] if args.quick else [1_000, 10_000, 100_000]
    if args.tree_sizes is None:
        args.tree_sizes = [10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000]
    args.verify_accounts = args.verify_accounts or (500 if args.quick else 1_000)
    args.verify_blocks = args.verify_blocks or (10 if args.quick else 20)
    args.verify_txs = args.verify_txs or (500 if args.quick else 1_000)

    result: dict[str, Any] = {
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "tree_compiled": state.smt.COMPILED,  # True: a mypyc build of state/smt.py was loaded
        "load_average_start": list(os.getloadavg()),
        "options": {
            k: v for k, v in vars(args).items() if k not in ("memory_probe", "bare_recovery", "json", "out", "before")
        },
        "sizes": [],
    }
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as workdir:
        if "blocks" not in args.skip:
            for n in args.sizes:
                result["sizes"].append(run_size(n, args, workdir))
        if "verify" not in args.skip:
            log("verify: generating the log")
            result["verify"] = run_verify(args, workdir)
        if "tree" not in args.skip:
            log(f"tree: {args.tree_sizes}")
            result["tree"] = run_tree(args.tree_sizes, args)
    result["load_average_end"] = list(os.getloadavg())
    result["elapsed_s"] = time.perf_counter() - started
    result["targets"] = check_targets(result)
    if args.before:
        result["compare"] = compare(json.loads(Path(args.before).read_text()), result)
    document = json.dumps(result, indent=2)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(document + "\n")
    if args.json:
        print(document)
    else:
        print_tables(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
