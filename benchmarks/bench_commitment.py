"""
Benchmark: cost of committing blocks to the state stores.

For each size N, builds a state of N keys in a fresh :class:`MemoryStore` and a
fresh :class:`LmdbStore` (temporary directory), then times ``commit_block`` for
blocks of ``--batch`` changed keys (80% updates of existing keys, 20% inserts)
and reports the median cost per changed key, as wall time (``perf_counter``)
and as this process's CPU time (``process_time``; on a shared machine it is
the steadier figure, and for LMDB wall minus CPU is roughly the fsync wait).
The tree-only cost (``compute_update`` without persisting) is reported
separately.

Usage::

    python benchmarks/bench_commitment.py [--sizes 10000 100000] [--batch 1000]
                                          [--blocks 5] [--json]

Keys and values are derived deterministically from counters, so every run
commits the same data and reaches the same roots (printed for cross-checking).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from blake3 import blake3  # noqa: E402

from state import LmdbStore, MemoryStore, Store  # noqa: E402
from state.smt import compute_update  # noqa: E402

BUILD_CHUNK = 10_000
"""Keys per commit while building the initial state (keeps LMDB txns moderate)."""

INSERT_EVERY = 5
"""One changed key in this many is a fresh insert; the rest update existing keys."""


def account_key(index: int) -> bytes:
    """Return the deterministic key of account ``index`` (namespaced like real state keys)."""
    return b"acct/" + index.to_bytes(8, "big")


def account_value(index: int, version: int) -> bytes:
    """Return a deterministic ~100-byte value for account ``index`` at ``version``."""
    seed = index.to_bytes(8, "big") + version.to_bytes(8, "big")
    return blake3(seed).digest(length=100)


def initial_chunks(size: int) -> Iterator[dict[bytes, bytes | None]]:
    """Yield the initial state of ``size`` accounts in commit-sized chunks."""
    for start in range(0, size, BUILD_CHUNK):
        stop = min(size, start + BUILD_CHUNK)
        yield {account_key(i): account_value(i, 0) for i in range(start, stop)}


def block_changes(size: int, block: int, batch: int) -> dict[bytes, bytes | None]:
    """
    Return block ``block``'s changes: mostly updates to existing accounts, some inserts.

    Updated accounts are picked by a multiplicative hash of a counter (spread over
    the whole key space, like real traffic); inserted accounts get fresh indices
    above everything used before.
    """
    changes: dict[bytes, bytes | None] = {}
    counter = block * batch
    fresh = size + block * batch
    while len(changes) < batch:
        if counter % INSERT_EVERY == 0:
            index = fresh
            fresh += 1
        else:
            index = (counter * 2654435761) % size
        changes[account_key(index)] = account_value(index, block + 1)
        counter += 1
    return changes


def build(store: Store, size: int) -> float:
    """Commit the initial state of ``size`` accounts; return seconds taken."""
    start = time.perf_counter()
    for chunk in initial_chunks(size):
        store.commit_block(store.height + 1, chunk, {})
    return time.perf_counter() - start


def time_blocks(store: Store, size: int, batch: int, blocks: int) -> list[tuple[float, float]]:
    """Commit ``blocks`` blocks of ``batch`` changes; return (wall, CPU) seconds per block."""
    timings = []
    for block in range(blocks):
        changes = block_changes(size, block, batch)
        wall, cpu = time.perf_counter(), time.process_time()
        store.commit_block(store.height + 1, changes, {"bench": block.to_bytes(8, "big")})
        timings.append((time.perf_counter() - wall, time.process_time() - cpu))
    return timings


def time_tree_only(store: MemoryStore, size: int, batch: int, blocks: int) -> list[tuple[float, float]]:
    """Time ``compute_update`` alone (no persistence) on the memory store's tree."""
    timings = []
    for block in range(blocks):
        changes = block_changes(size, blocks + block, batch)
        wall, cpu = time.perf_counter(), time.process_time()
        compute_update(store._nodes.get, store.root, changes)  # noqa: SLF001 - benchmark probe
        timings.append((time.perf_counter() - wall, time.process_time() - cpu))
    return timings


def median(values: list[float]) -> float:
    """Return the median (lower middle for even counts) of ``values``."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def per_key(timings: list[tuple[float, float]], batch: int) -> tuple[float, float]:
    """Median wall and CPU microseconds per changed key over the timed blocks."""
    return (
        median([wall for wall, _ in timings]) / batch * 1e6,
        median([cpu for _, cpu in timings]) / batch * 1e6,
    )


def run_size(size: int, batch: int, blocks: int) -> dict[str, Any]:
    """Benchmark both backends at one state size; return a result row."""
    row: dict[str, Any] = {"size": size, "batch": batch, "blocks": blocks}

    memory = MemoryStore()
    row["memory_build_s"] = build(memory, size)
    gc.collect()  # start the timed phase without garbage left over from the build
    row["tree_us_per_key"], row["tree_cpu_us_per_key"] = per_key(
        time_tree_only(memory, size, batch, blocks), batch
    )
    row["memory_us_per_key"], row["memory_cpu_us_per_key"] = per_key(
        time_blocks(memory, size, batch, blocks), batch
    )
    row["memory_root"] = memory.root.hex()
    memory.close()
    del memory
    gc.collect()

    with tempfile.TemporaryDirectory(prefix="bench-lmdb-") as tmp:
        with LmdbStore(os.path.join(tmp, "state")) as lmdb_store:
            row["lmdb_build_s"] = build(lmdb_store, size)
            row["lmdb_us_per_key"], row["lmdb_cpu_us_per_key"] = per_key(
                time_blocks(lmdb_store, size, batch, blocks), batch
            )
            row["lmdb_ms_per_block"] = row["lmdb_us_per_key"] * batch / 1e3
            row["lmdb_root"] = lmdb_store.root.hex()
        row["lmdb_disk_mb"] = os.path.getsize(os.path.join(tmp, "state", "data.mdb")) / 1e6
    row["roots_equal"] = row["memory_root"] == row["lmdb_root"]
    return row


PLAIN_FIELDS = [
    "size", "batch", "tree_us_per_key", "tree_cpu_us_per_key", "memory_us_per_key",
    "memory_cpu_us_per_key", "lmdb_us_per_key", "lmdb_cpu_us_per_key", "lmdb_ms_per_block",
    "memory_build_s", "lmdb_build_s", "lmdb_disk_mb", "roots_equal",
]  # fmt: skip
"""Fields printed, in order, as ``name=value`` when stdout is not a terminal."""


def _fmt(value: Any) -> str:
    """Format one result value for display."""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _wall_cpu(row: dict[str, Any], prefix: str) -> str:
    """Format a wall/CPU pair of per-key figures as one table cell."""
    return f"{row[prefix + '_us_per_key']:.1f} / {row[prefix + '_cpu_us_per_key']:.1f}"


def print_rows(rows: list[dict[str, Any]]) -> None:
    """Print results as a Rich table on a terminal, plain ``name=value`` lines otherwise."""
    if sys.stdout.isatty():
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            pass
        else:
            table = Table(title="Cost per changed key, median block (µs: wall / cpu)")
            for heading in ("N", "batch", "tree", "memory", "LMDB", "LMDB ms/blk", "roots ="):
                table.add_column(heading, justify="right")
            for row in rows:
                table.add_row(
                    str(row["size"]),
                    str(row["batch"]),
                    _wall_cpu(row, "tree"),
                    _wall_cpu(row, "memory"),
                    _wall_cpu(row, "lmdb"),
                    f"{row['lmdb_ms_per_block']:.1f}",
                    str(row["roots_equal"]),
                )
            Console().print(table)
            return
    for row in rows:
        print(" ".join(f"{field}={_fmt(row[field])}" for field in PLAIN_FIELDS))


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--blocks", type=int, default=5, help="timed blocks per backend")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    rows = [run_size(size, args.batch, args.blocks) for size in args.sizes]
    if args.json:
        print(json.dumps({"results": rows}, indent=2))
    else:
        print_rows(rows)
    return 0 if all(row["roots_equal"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
