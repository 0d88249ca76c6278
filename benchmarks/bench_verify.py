"""
Benchmark: ``verify``/``replay`` of a generated log against the bare cost of signature recovery.

Reports, from one run (issue 10, targets 3 and 6):

- **bare recovery** per transaction: ``coincurve`` public-key recovery plus the keccak address,
  over every transaction of the log (digests computed beforehand, not timed);
- **verify (memory)**: CPU per transaction (this process *and* its reaped children, i.e. the
  recovery workers: ``getrusage(RUSAGE_SELF) + getrusage(RUSAGE_CHILDREN)``), its ratio to bare
  recovery, wall time / CPU time, and the main process's share of the CPU (what wall time would be
  on two idle cores if the workers keep up);
- **replay (LMDB)**: what ``replay`` does (group commits, compaction at the end where the code has
  them) without the summary table; the same figures, plus database bytes per account (every file of
  the state folder, the events file included, and the LMDB file alone, by use), peak process memory
  (RSS, which counts the LMDB map's resident file pages) per account, and the peak of the heap alone
  (RssAnon, sampled every 20 ms).

Each stage runs in a fresh child process (so its peak RSS is its own), with the code that
``PYTHONPATH`` selects: run once with the main branch and once with this one for before/after
figures. Works with older engines (no ``recover_workers``, no group commits, events in the database).

Usage::

    python benchmarks/bench_verify.py --log LOG [--stages bare,memory,lmdb] [--json]
    python benchmarks/bench_verify.py --generate LOG --accounts 3000 --blocks 40 --txs-per-block 1000

``--generate`` writes the log first with ``clearinghouse generate`` (seeded).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def cpu_seconds() -> tuple[float, float]:
    """(this process, reaped children) user + system CPU seconds."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime, kids.ru_utime + kids.ru_stime


def max_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def rss_parts() -> dict[str, int]:
    """RssAnon and RssFile of this process now (bytes): heap versus mapped file pages (the
    LMDB map is file-backed page cache, shared and reclaimable)."""
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("RssAnon:", "RssFile:")):
                name, value, _unit = line.split()
                out[name.rstrip(":")] = int(value) * 1024
    return out


SAMPLER = """
import select, sys
pid, peak = sys.argv[1], 0
while True:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("RssAnon:"):
                peak = max(peak, int(line.split()[1]) * 1024)
    if select.select([sys.stdin], [], [], 0.02)[0]:
        print(peak)
        break
"""


class AnonSampler:
    """Samples this process's RssAnon (the heap: what is not a mapped file) every 20 ms from a
    separate process: a thread here would make the recovery pool start its workers from a fork
    server, whose children's CPU time never reaches this process's RUSAGE_CHILDREN."""

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-c", SAMPLER, str(os.getpid())], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.peak = 0

    def stop(self) -> None:
        out, _err = self._proc.communicate("stop\n")
        self.peak = int(out.strip() or 0)


def lmdb_breakdown(db: str) -> dict[str, int]:
    """Bytes of the LMDB file by use: pages of each named database, free pages, the rest."""
    import lmdb

    env = lmdb.open(db, readonly=True, lock=False, subdir=True, max_dbs=8)
    try:
        psize = env.stat()["psize"]
        total = (env.info()["last_pgno"] + 1) * psize
        out: dict[str, int] = {"total": total}
        used = 0
        with env.begin() as txn:
            for name in (b"data", b"smt", b"meta"):
                try:
                    st = txn.stat(env.open_db(name, txn=txn, create=False))
                except lmdb.Error:
                    continue
                pages = st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]
                out[name.decode()] = pages * psize
                out[name.decode() + "_entries"] = st["entries"]
                used += pages * psize
        out["free_or_other"] = total - used
        return out
    finally:
        env.close()


def stage_bare(log: str) -> dict[str, Any]:
    import coincurve
    from Crypto.Hash import keccak

    from clearinghouse.chain.engine import iter_log
    from tx.encoding import decode_transaction, encode
    from tx.messages import Genesis
    from tx.signing import signing_digest

    pairs = []
    chain_id = 0
    for _i, item in iter_log(log):
        if isinstance(item, Genesis):
            chain_id = item.chain_id
            continue
        for raw in item.block.txs:
            tx = decode_transaction(raw)
            pairs.append((tx.signature, signing_digest(chain_id, tx.nonce, encode(tx.action))))
    c0 = time.process_time()
    for sig, digest in pairs:
        pub = coincurve.PublicKey.from_signature_and_message(sig, digest, hasher=None)
        keccak.new(digest_bits=256, data=pub.format(compressed=False)[1:]).digest()[-20:]
    cpu = time.process_time() - c0
    return {"txs": len(pairs), "bare_us_per_tx": round(cpu / len(pairs) * 1e6, 2)}


def _kwargs(fn: Any, **wanted: Any) -> dict[str, Any]:
    """The keyword arguments ``fn`` accepts (older code has fewer options)."""
    params = inspect.signature(fn).parameters
    return {k: v for k, v in wanted.items() if k in params}


def _accounts(store: Any) -> int:
    from clearinghouse.spec.state.keys import NS_ACCOUNT

    return sum(1 for _ in store.scan_prefix(NS_ACCOUNT))


def stage_replay(log: str, backend: str, workers: int) -> dict[str, Any]:
    from clearinghouse.chain.engine import Engine, replay_log
    from clearinghouse.tools import reporting
    from state import LmdbStore, MemoryStore

    base_rss = current_rss_bytes()
    tmp = tempfile.mkdtemp(prefix="bench-verify-")
    db = os.path.join(tmp, "state")
    breakdown: dict[str, int] = {}
    try:
        sampler = AnonSampler()
        (s0, k0), w0 = cpu_seconds(), time.perf_counter()
        if backend == "memory":
            store: Any = MemoryStore()
            engine = Engine(store, **_kwargs(Engine.__init__, keep_events=False))
            stats = replay_log(engine, log, **_kwargs(replay_log, recover_workers=workers))
        else:
            # What `replay` does (reporting.replay_into_db) without its summary table, whose rows
            # (one per account) are the tool's output, not the replay's memory.
            store = LmdbStore(db)
            if hasattr(store, "group_commit"):
                store.group_commit(reporting.COMMIT_EVERY, max_writes=reporting.COMMIT_MAX_WRITES)
            engine = Engine(store)
            stats = replay_log(engine, log, **_kwargs(replay_log, recover_workers=workers))
            if hasattr(store, "compact"):
                store.flush()
                total, used = store.page_usage()
                if total > reporting.COMPACT_ABOVE * used:
                    store.compact()
            store.close()
            if hasattr(engine, "close_events"):
                engine.close_events()
        wall = time.perf_counter() - w0
        s1, k1 = cpu_seconds()  # before the sampler process is reaped: its CPU is not the replay's
        sampler.stop()
        peak = max_rss_bytes()
        parts = rss_parts()
        if backend == "memory":
            accounts = _accounts(store)
            db_bytes = lmdb_bytes = 0
        else:
            with LmdbStore(db, readonly=True) as ro:
                accounts = _accounts(ro)
            db_bytes = sum(p.stat().st_size for p in Path(db).iterdir())
            lmdb_bytes = (Path(db) / "data.mdb").stat().st_size
            breakdown = lmdb_breakdown(db)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    main_cpu, child_cpu = s1 - s0, k1 - k0
    cpu = main_cpu + child_cpu
    txs = stats["txs"]
    out: dict[str, Any] = {
        "backend": backend,
        "txs": txs,
        "blocks": stats["applied"],
        "accounts": accounts,
        "cpu_s": round(cpu, 3),
        "main_cpu_s": round(main_cpu, 3),
        "child_cpu_s": round(child_cpu, 3),
        "wall_s": round(wall, 3),
        "cpu_us_per_tx": round(cpu / txs * 1e6, 1),
        "wall_over_cpu": round(wall / cpu, 3),
        "main_over_cpu": round(main_cpu / cpu, 3),
        "peak_rss_bytes": peak,
        "rss_per_account": round(peak / max(accounts, 1)),
        "rss_above_imports_per_account": round((peak - base_rss) / max(accounts, 1)),
        "rss_anon_peak_per_account": round(sampler.peak / max(accounts, 1)),
        "rss_anon_end_per_account": round(parts.get("RssAnon", 0) / max(accounts, 1)),
        "load_average_1m": round(os.getloadavg()[0], 2),
    }
    if backend == "lmdb":
        out.update(
            db_bytes=db_bytes,
            db_bytes_per_account=round(db_bytes / max(accounts, 1)),
            lmdb_bytes_per_account=round(lmdb_bytes / max(accounts, 1)),
            lmdb_breakdown_per_account={k: round(v / max(accounts, 1), 1) for k, v in breakdown.items()},
        )
    return out


def run_stage(args: argparse.Namespace, stage: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--log", args.log, "--stage", stage, "--workers", str(args.workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"stage {stage} failed:\n{proc.stderr}")
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--log", help="the log to verify")
    ap.add_argument("--generate", metavar="LOG", help="write a log with `clearinghouse generate` first")
    ap.add_argument("--accounts", type=int, default=3000)
    ap.add_argument("--blocks", type=int, default=40)
    ap.add_argument("--txs-per-block", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2, help="signature recovery processes (where supported)")
    ap.add_argument("--stages", default="bare,memory,lmdb")
    ap.add_argument("--stage", help=argparse.SUPPRESS)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.stage:
        if args.stage == "bare":
            print(json.dumps(stage_bare(args.log)))
        else:
            print(json.dumps(stage_replay(args.log, args.stage, args.workers)))
        return
    if args.generate:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "clearinghouse.tools.cli",
                "generate",
                "--out",
                args.generate,
                "--accounts",
                str(args.accounts),
                "--blocks",
                str(args.blocks),
                "--txs-per-block",
                str(args.txs_per_block),
                "--seed",
                str(args.seed),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        args.log = args.generate
    if not args.log:
        ap.error("--log or --generate is required")
    results: dict[str, Any] = {"log": os.path.abspath(args.log), "code": os.environ.get("PYTHONPATH", "")}
    for stage in args.stages.split(","):
        results[stage] = run_stage(args, stage)
    bare = results.get("bare", {}).get("bare_us_per_tx")
    for stage in ("memory", "lmdb"):
        if bare and stage in results:
            results[stage]["cpu_over_bare"] = round(results[stage]["cpu_us_per_tx"] / bare, 2)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"log {results['log']}  code {results['code']}")
    if bare:
        print(f"bare recovery (coincurve + keccak): {bare:.1f} us/tx")
    for stage in ("memory", "lmdb"):
        r = results.get(stage)
        if not r:
            continue
        line = (
            f"{stage:6} {r['txs']} txs, {r['accounts']} accounts: CPU {r['cpu_us_per_tx']:.1f} us/tx"
            f" ({r.get('cpu_over_bare', '?')}x bare), wall/CPU {r['wall_over_cpu']:.2f},"
            f" main/CPU {r['main_over_cpu']:.2f}, RSS {r['rss_per_account']} B/account"
            f" ({r['rss_above_imports_per_account']} above imports; heap peak {r['rss_anon_peak_per_account']}),"
            f" load {r['load_average_1m']}"
        )
        if stage == "lmdb":
            line += f", DB {r['db_bytes_per_account']} B/account (LMDB file {r['lmdb_bytes_per_account']})"
        print(line)


if __name__ == "__main__":
    if not os.environ.get("PYTHONPATH"):  # PYTHONPATH picks the code under test (before/after)
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    main()
