"""
Benchmark: cost of committing blocks to the state stores.

For each size N, builds a state of N keys in a fresh :class:`MemoryStore` and a
fresh :class:`LmdbStore` (temporary directory), then times ``commit_block`` for
blocks of ``--batch`` changed keys (80% updates of existing keys, 20% inserts)
and reports the cost per changed key. The tree-only cost (``compute_update``
without persisting) is reported separately for the memory backend.

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
from collections.abc import Callable, Iterator
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


def time_blocks(store: Store, size: int, batch: int, blocks: int) -> list[float]:
    """Commit ``blocks`` blocks of ``batch`` changes; return seconds per block."""
    timings = []
    for block in range(blocks):
        changes = block_changes(size, block, batch)
        start = time.perf_counter()
        store.commit_block(store.height + 1, changes, {"bench": block.to_bytes(8, "big")})
        timings.append(time.perf_counter() - start)
    return timings


def time_tree_only(store: MemoryStore, size: int, batch: int, blocks: int) -> list[float]:
    """Time ``compute_update`` alone (no persistence) on the memory store's tree."""
    timings = []
    for block in range(blocks):
        changes = block_changes(size, blocks + block, batch)
        start = time.perf_counter()
        compute_update(store._nodes.get, store.root, changes)  # noqa: SLF001 - benchmark probe
        timings.append(time.perf_counter() - start)
    return timings


def median(values: list[float]) -> float:
    """Return the median (lower middle for even counts) of ``values``."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def run_size(size: int, batch: int, blocks: int) -> dict[str, Any]:
    """Benchmark both backends at one state size; return a result row."""
    row: dict[str, Any] = {"size": size, "batch": batch, "blocks": blocks}

    memory = MemoryStore()
    row["memory_build_s"] = build(memory, size)
    gc.collect()  # start the timed phase without garbage left over from the build
    tree_times = time_tree_only(memory, size, batch, blocks)
    memory_times = time_blocks(memory, size, batch, blocks)
    row["tree_us_per_key"] = median(tree_times) / batch * 1e6
    row["memory_us_per_key"] = median(memory_times) / batch * 1e6
    row["memory_root"] = memory.root.hex()
    memory.close()
    del memory
    gc.collect()

    with tempfile.TemporaryDirectory(prefix="bench-lmdb-") as tmp:
        with LmdbStore(os.path.join(tmp, "state")) as lmdb_store:
            row["lmdb_build_s"] = build(lmdb_store, size)
            lmdb_times = time_blocks(lmdb_store, size, batch, blocks)
            row["lmdb_us_per_key"] = median(lmdb_times) / batch * 1e6
            row["lmdb_ms_per_block"] = median(lmdb_times) * 1e3
            row["lmdb_root"] = lmdb_store.root.hex()
        row["lmdb_disk_mb"] = os.path.getsize(os.path.join(tmp, "state", "data.mdb")) / 1e6
    row["roots_equal"] = row["memory_root"] == row["lmdb_root"]
    return row


COLUMNS: list[tuple[str, str, Callable[[Any], str]]] = [
    ("size", "N keys", str),
    ("batch", "batch", str),
    ("tree_us_per_key", "tree µs/key", lambda v: f"{v:.1f}"),
    ("memory_us_per_key", "memory µs/key", lambda v: f"{v:.1f}"),
    ("lmdb_us_per_key", "LMDB µs/key", lambda v: f"{v:.1f}"),
    ("lmdb_ms_per_block", "LMDB ms/block", lambda v: f"{v:.1f}"),
    ("memory_build_s", "memory build s", lambda v: f"{v:.2f}"),
    ("lmdb_build_s", "LMDB build s", lambda v: f"{v:.2f}"),
    ("lmdb_disk_mb", "LMDB MB", lambda v: f"{v:.1f}"),
    ("roots_equal", "roots equal", str),
]
"""Result fields shown in the table / plain output, with headings and formatters."""


def print_rows(rows: list[dict[str, Any]]) -> None:
    """Print results as a Rich table on a terminal, plain lines otherwise."""
    if sys.stdout.isatty():
        try:
            from rich.console import Console
            from rich.table import Table
        except ImportError:
            pass
        else:
            table = Table(title="State commitment: cost per changed key (median block)")
            for _, heading, _ in COLUMNS:
                table.add_column(heading, justify="right")
            for row in rows:
                table.add_row(*(fmt(row[field]) for field, _, fmt in COLUMNS))
            Console().print(table)
            return
    for row in rows:
        print(" ".join(f"{field}={fmt(row[field])}" for field, _, fmt in COLUMNS))


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
