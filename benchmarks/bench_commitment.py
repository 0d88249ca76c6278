"""
Benchmark: cost per changed key of the state tree and the state stores.

For each size N (default 10^4, 10^5 and 10^6 keys) it builds, in chunks of
``BUILD_CHUNK`` keys, a bare :class:`SparseMerkleTree` (nodes in a dict), a
:class:`MemoryStore` and an :class:`LmdbStore` (temporary directory) holding N
accounts, then times ``--blocks`` blocks of ``--batch`` changed keys (80%
updates of existing keys spread over the key space, 20% inserts):

- ``tree``: ``compute_update`` alone on the bare tree (hashing, node reads and
  building the write list; the writes are applied untimed between blocks);
- ``hash``: BLAKE3 alone over exactly the preimages those same blocks hash (a
  key hash and a value hash per changed key, one 65-byte preimage per node
  written), one ``blake3(data).digest()`` call each: the floor any pure-Python
  tree built on the ``blake3`` package pays, measured in the same run;
- ``memtree``: ``compute_update`` alone on the memory store's node dict after
  its build (the ``tree`` figure of earlier versions of this benchmark);
- ``memory`` / ``lmdb``: ``commit_block`` on the stores (validation, tree, data
  and node writes; for LMDB one durable write transaction per block).

The pure computations (``tree``, ``memtree``, ``hash``) are repeated ``--repeat``
times per block and the fastest run counts, which filters out most of the noise
of a shared machine; commits run once. Each figure is the median over the timed
blocks of the cost per changed key, as
wall time (``perf_counter``) and as this process's CPU time (``process_time``;
on a shared machine it is the steadier figure, and for LMDB wall minus CPU is
roughly the fsync wait). 10^6 keys need about 3 GB of memory at peak (one
backend is held at a time) and a few minutes, mostly the LMDB build.

Usage::

    python benchmarks/bench_commitment.py [--sizes 10000 100000 1000000] [--batch 1000]
                                          [--blocks 7] [--repeat 3]
                                          [--backends tree memory lmdb]
                                          [--json] [--state-from DIR]

``--state-from DIR`` imports the ``state`` package from ``DIR`` instead of this
checkout (for before/after figures from this same benchmark)::

    git archive <old commit> state | tar -x -C /tmp/old
    python benchmarks/bench_commitment.py --state-from /tmp/old --json

Keys and values are derived deterministically from counters, so every run
commits the same data and reaches the same roots (compared across backends:
the exit status is 1 if they differ).
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


def _code_root(argv: list[str]) -> str:
    """
    Directory to import the ``state`` package from: this checkout, or ``--state-from DIR``.

    Read before the imports below, so the same benchmark can time an older
    version of the tree, e.g. one exported with
    ``git archive <commit> state | tar -x -C DIR``.
    """
    if "--state-from" in argv[:-1]:
        return str(Path(argv[argv.index("--state-from") + 1]).resolve())
    return str(Path(__file__).resolve().parent.parent)


sys.path.insert(0, _code_root(sys.argv))

from blake3 import blake3  # noqa: E402

import state  # noqa: E402
import state.smt  # noqa: E402
from state import LmdbStore, MemoryStore, Store  # noqa: E402
from state.smt import (  # noqa: E402
    KEY_DOMAIN,
    VALUE_DOMAIN,
    SparseMerkleTree,
    TreeUpdate,
    compute_update,
)

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


def time_blocks(store: Store, size: int, batch: int, blocks: int) -> list[Timing]:
    """Commit ``blocks`` blocks of ``batch`` changes; return their timings."""
    timings = []
    for block in range(blocks):
        changes = block_changes(size, block, batch)
        wall, cpu = time.perf_counter(), time.process_time()
        store.commit_block(store.height + 1, changes, {"bench": block.to_bytes(8, "big")})
        timings.append(Timing(time.perf_counter() - wall, time.process_time() - cpu))
    return timings


def time_tree(tree: SparseMerkleTree, size: int, batch: int, blocks: int, repeat: int = 1) -> list[Timing]:
    """
    Time ``compute_update`` alone on a bare tree (a dict of nodes, no store).

    Each block's writes are then applied (untimed), so successive blocks see the
    tree grow as in the stores. Returns per-block timings and, for the hashing
    baseline, the records each block had to hash.
    """
    timings = []
    for block in range(blocks):
        changes = block_changes(size, block, batch)
        best = Timing(float("inf"), float("inf"))
        for _ in range(repeat):  # compute_update is pure: repeat it, keep the fastest
            wall, cpu = time.perf_counter(), time.process_time()
            update = tree.compute_update(changes)
            best = best.fastest(time.perf_counter() - wall, time.process_time() - cpu)
        best.update = update
        timings.append(best)
        tree.nodes.write_nodes(update.node_writes)
        tree._root = update.root  # noqa: SLF001 - benchmark probe (same as tree.apply)
    return timings


def time_store_tree(store: MemoryStore, size: int, batch: int, blocks: int, repeat: int = 1) -> list[Timing]:
    """
    Time ``compute_update`` alone on the memory store's nodes (nothing is applied).

    The same tree work as ``tree`` but on nodes allocated by the store's commits,
    interleaved with its data and undo logs: at 10^6 keys memory locality makes
    this measurably slower than the bare tree. (This was the ``tree`` figure of
    earlier versions of this benchmark.)
    """
    timings = []
    get_node = store._nodes.get  # noqa: SLF001 - benchmark probe
    for block in range(blocks):
        changes = block_changes(size, blocks + block, batch)
        best = Timing(float("inf"), float("inf"))
        for _ in range(repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            compute_update(get_node, store.root, changes)
            best = best.fastest(time.perf_counter() - wall, time.process_time() - cpu)
        timings.append(best)
    return timings


class Timing:
    """Wall and CPU seconds of one timed block (and, for the bare tree, its update)."""

    __slots__ = ("cpu", "update", "wall")

    def __init__(self, wall: float, cpu: float, update: TreeUpdate | None = None) -> None:
        self.wall = wall
        self.cpu = cpu
        self.update = update

    def fastest(self, wall: float, cpu: float) -> Timing:
        """Return a timing with the smaller wall and the smaller CPU time of this and another."""
        return Timing(min(self.wall, wall), min(self.cpu, cpu), self.update)


def hash_inputs(changes: dict[bytes, bytes | None], update: TreeUpdate) -> list[bytes]:
    """
    Return every preimage the tree must hash for one block.

    One key hash and one value hash per changed key, plus the hash preimage (the
    first 65 bytes) of every node record the block writes: each written node's
    hash is computed once. This is the irreducible BLAKE3 work of the block.
    """
    inputs = [KEY_DOMAIN + key for key in changes]
    inputs += [VALUE_DOMAIN + value for value in changes.values() if value is not None]
    inputs += [record[:65] for _, record in update.node_writes if record is not None]
    return inputs


def time_hashing(size: int, batch: int, tree_timings: list[Timing], repeat: int = 1) -> tuple[list[Timing], float]:
    """
    Time BLAKE3 alone over each timed tree block's preimages (same run, same machine).

    Returns per-block timings and the mean number of hashes per changed key.
    """
    timings = []
    counts = []
    for block, tree_timing in enumerate(tree_timings):
        assert tree_timing.update is not None
        inputs = hash_inputs(block_changes(size, block, batch), tree_timing.update)
        counts.append(len(inputs) / batch)
        best = Timing(float("inf"), float("inf"))
        for _ in range(repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            for data in inputs:
                blake3(data).digest()
            best = best.fastest(time.perf_counter() - wall, time.process_time() - cpu)
        timings.append(best)
    return timings, sum(counts) / len(counts)


def median(values: list[float]) -> float:
    """Return the median (lower middle for even counts) of ``values``."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def per_key(timings: list[Timing], batch: int) -> tuple[float, float]:
    """Median wall and CPU microseconds per changed key over the timed blocks."""
    return (
        median([t.wall for t in timings]) / batch * 1e6,
        median([t.cpu for t in timings]) / batch * 1e6,
    )


def build_tree(size: int) -> SparseMerkleTree:
    """Build a bare tree of ``size`` accounts, in the same chunks as the stores."""
    tree = SparseMerkleTree()
    for chunk in initial_chunks(size):
        tree.apply(chunk)
    return tree


def run_size(size: int, batch: int, blocks: int, backends: list[str], repeat: int = 1) -> dict[str, Any]:
    """Benchmark the bare tree, the hashing baseline and the stores at one size."""
    row: dict[str, Any] = {"size": size, "batch": batch, "blocks": blocks, "repeat": repeat}

    if "tree" in backends:
        start = time.perf_counter()
        tree = build_tree(size)
        row["tree_build_s"] = time.perf_counter() - start
        gc.collect()  # start the timed phase without garbage left over from the build
        tree_timings = time_tree(tree, size, batch, blocks, repeat)
        row["tree_us_per_key"], row["tree_cpu_us_per_key"] = per_key(tree_timings, batch)
        row["tree_root"] = tree.root.hex()
        hash_timings, row["hashes_per_key"] = time_hashing(size, batch, tree_timings, repeat)
        row["hash_us_per_key"], row["hash_cpu_us_per_key"] = per_key(hash_timings, batch)
        del tree, tree_timings
        gc.collect()

    if "memory" in backends:
        memory = MemoryStore()
        row["memory_build_s"] = build(memory, size)
        gc.collect()
        row["memtree_us_per_key"], row["memtree_cpu_us_per_key"] = per_key(
            time_store_tree(memory, size, batch, blocks, repeat), batch
        )
        row["memory_us_per_key"], row["memory_cpu_us_per_key"] = per_key(
            time_blocks(memory, size, batch, blocks), batch
        )
        row["memory_root"] = memory.root.hex()
        memory.close()
        del memory
        gc.collect()

    if "lmdb" in backends:
        with tempfile.TemporaryDirectory(prefix="bench-lmdb-") as tmp:
            with LmdbStore(os.path.join(tmp, "state")) as lmdb_store:
                row["lmdb_build_s"] = build(lmdb_store, size)
                gc.collect()
                row["lmdb_us_per_key"], row["lmdb_cpu_us_per_key"] = per_key(
                    time_blocks(lmdb_store, size, batch, blocks), batch
                )
                row["lmdb_ms_per_block"] = row["lmdb_us_per_key"] * batch / 1e3
                row["lmdb_root"] = lmdb_store.root.hex()
            row["lmdb_disk_mb"] = os.path.getsize(os.path.join(tmp, "state", "data.mdb")) / 1e6

    roots = {row[f"{name}_root"] for name in backends}
    row["roots_equal"] = len(roots) == 1
    return row


BACKENDS = ("tree", "memory", "lmdb")
"""What can be measured; ``tree`` also gives the hashing baseline."""

PLAIN_FIELDS = [
    "size", "batch", "hashes_per_key", "hash_us_per_key", "hash_cpu_us_per_key",
    "tree_us_per_key", "tree_cpu_us_per_key", "memtree_us_per_key", "memtree_cpu_us_per_key",
    "memory_us_per_key", "memory_cpu_us_per_key",
    "lmdb_us_per_key", "lmdb_cpu_us_per_key", "lmdb_ms_per_block", "tree_build_s",
    "memory_build_s", "lmdb_build_s", "lmdb_disk_mb", "roots_equal",
]  # fmt: skip
"""Fields printed, in order, as ``name=value`` when stdout is not a terminal."""


def _fmt(value: Any) -> str:
    """Format one result value for display."""
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _wall_cpu(row: dict[str, Any], prefix: str) -> str:
    """Format a wall/CPU pair of per-key figures as one table cell."""
    if prefix + "_us_per_key" not in row:
        return "-"
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
            headings = (
                "N", "batch", "hashes/key", "hashing", "tree", "memtree", "memory", "LMDB", "roots ="
            )  # fmt: skip
            for heading in headings:
                table.add_column(heading, justify="right")
            for row in rows:
                table.add_row(
                    str(row["size"]),
                    str(row["batch"]),
                    f"{row['hashes_per_key']:.1f}" if "hashes_per_key" in row else "-",
                    _wall_cpu(row, "hash"),
                    _wall_cpu(row, "tree"),
                    _wall_cpu(row, "memtree"),
                    _wall_cpu(row, "memory"),
                    _wall_cpu(row, "lmdb"),
                    str(row["roots_equal"]),
                )
            Console().print(table)
            return
    for row in rows:
        print(" ".join(f"{field}={_fmt(row[field])}" for field in PLAIN_FIELDS if field in row))


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run the benchmark, print results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--blocks", type=int, default=7, help="timed blocks per backend")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="times each pure computation (tree, memtree, hashing) is repeated per block; "
        "the fastest counts (commits run once)",
    )
    parser.add_argument("--backends", nargs="+", choices=BACKENDS, default=list(BACKENDS), help="what to measure")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--state-from", metavar="DIR", help="import the state package from DIR (read at start-up)")
    args = parser.parse_args(argv)
    rows = []
    for size in args.sizes:
        rows.append(run_size(size, args.batch, args.blocks, args.backends, args.repeat))
        print(f"# done N={size}", file=sys.stderr, flush=True)
    if args.json:
        code = {
            "python": sys.version.split()[0],
            "state_from": str(Path(state.__file__).parent),
            "tree_compiled": state.smt.COMPILED,  # True: a mypyc build of state/smt.py was loaded
        }
        print(json.dumps({**code, "results": rows}, indent=2))
    else:
        print_rows(rows)
    return 0 if all(row["roots_equal"] for row in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
