"""
Probe: what would storing the state tree in pages of several levels save? (issue 10, target 4)

Its answer was too optimistic: a full paged implementation, with the inserts, splits, leaf checks and
write list this probe leaves out, measured 12-34% slower than the per-node layout and was not adopted
(docs/performance.md, "Third round"). Kept to reproduce that finding.

Not used by the tree. It answers one question before anyone rewrites the node
storage: with the internal records of ``K`` tree levels kept in one stored page
(``2**K - 1`` records of 65 bytes, ``0x01 || left || right``, in heap order; a
zero tag byte marks a slot that is not an internal node), how much cheaper is
one block's update than :func:`state.smt.compute_update` on the current layout
(one record per node)?

For each size it builds the bare tree of ``benchmarks/bench_commitment.py``
(same keys, values and chunks, so the same memory layout as its ``tree``
figure), copies its nodes into pages (leaves stay records of their own), then
times, in the same process and alternating, ``compute_update`` and a minimal
page update on blocks of ``--batch`` updates of existing keys (inserts and
deletes, which split and collapse, are not implemented by the probe, so both
sides get update-only blocks). The page update walks a key's path reading one
page per ``K`` levels (copied once into a bytearray), writes each new child
hash into its parent's slot and hashes the 65 bytes in place: the same hashes,
and the probe checks that both reach the same root. Figures are CPU time per
changed key (``process_time``; fastest of ``--repeat`` runs per block, median
over blocks) beside wall time.

Usage::

    python benchmarks/probe_tree_pages.py [--sizes 100000 1000000] [--levels 4] [--blocks 5] [--repeat 3]
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_commitment import account_key, account_value, build_tree
from blake3 import blake3

from state.smt import _BatchEntry, _path, _sorted_batch, compute_update

PageGet = Callable[[bytes], "bytes | None"]


def to_pages(nodes: dict[bytes, bytes], levels: int) -> tuple[dict[bytes, bytes], dict[bytes, bytes]]:
    """Split a node map into ``{page path: page}`` (internal records) and ``{path: leaf record}``."""
    size = ((1 << levels) - 1) * 65
    pages: dict[bytes, bytearray] = {}
    leaves: dict[bytes, bytes] = {}
    for path, record in nodes.items():
        if record[0] == 0:
            leaves[path] = record
            continue
        depth = path[0]
        prefix = int.from_bytes(path[1:], "big") << (256 - 8 * (len(path) - 1))
        top = depth - depth % levels  # the page's root depth
        key = _path(top, prefix >> (256 - top) << (256 - top) if top else 0)
        slot = (1 << (depth - top)) | ((prefix >> (256 - depth)) & ((1 << (depth - top)) - 1) if depth > top else 0)
        page = pages.get(key)
        if page is None:
            page = pages[key] = bytearray(size)
        page[(slot - 1) * 65 : slot * 65] = record
    return {key: bytes(page) for key, page in pages.items()}, leaves


def page_update(
    get_page: PageGet, get_leaf: PageGet, batch: list[_BatchEntry], levels: int
) -> tuple[bytes, dict[bytes, bytearray], dict[bytes, bytes]]:
    """Apply an update-only batch (every key present) to the paged tree; return the root and the writes."""
    slots = (1 << levels) - 1
    hasher = blake3()
    reset, feed, digest = hasher.reset, hasher.update, hasher.digest
    khs = [entry[0] for entry in batch]
    out_pages: dict[bytes, bytearray] = {}
    out_leaves: dict[bytes, bytes] = {}

    def leaf(index: int, depth: int) -> bytes:
        khi, _, record, hash_ = batch[index]
        out_leaves[_path(depth, khi >> (256 - depth) << (256 - depth))] = record  # type: ignore[assignment]
        return hash_  # type: ignore[return-value]

    def one(index: int, depth: int, page: bytearray, slot: int) -> bytes:
        khi = batch[index][0]
        pages: list[bytearray] = []
        offsets: list[int] = []  # where the child hash goes; the node starts 1 or 33 bytes before
        while True:
            bit = khi >> (255 - depth) & 1
            pages.append(page)
            offsets.append((slot - 1) * 65 + 1 + (bit << 5))
            depth += 1
            slot = slot + slot + bit
            if slot <= slots:
                if page[(slot - 1) * 65] == 1:
                    continue
                break
            key = _path(depth, khi >> (256 - depth) << (256 - depth))
            child = get_page(key)
            if child is None:
                break
            page = out_pages[key] = bytearray(child)
            slot = 1
        new_hash = leaf(index, depth)
        for page, at in zip(reversed(pages), reversed(offsets)):
            page[at : at + 32] = new_hash
            start = at - 33 if (at - 1) % 65 else at - 1
            reset()
            feed(page[start : start + 65])
            new_hash = digest()
        return new_hash

    def update(depth: int, prefix: int, lo: int, hi: int, page: bytearray, slot: int) -> bytes:
        if hi - lo == 1:
            return one(lo, depth, page, slot)
        start = (slot - 1) * 65
        right_prefix = prefix | (1 << (255 - depth))
        mid = bisect_left(khs, right_prefix, lo, hi)
        for bit, a, b, side_prefix in ((0, lo, mid, prefix), (1, mid, hi, right_prefix)):
            if a == b:
                continue
            child = slot + slot + bit
            if child <= slots:
                if page[(child - 1) * 65] == 1:
                    new_hash = update(depth + 1, side_prefix, a, b, page, child)
                else:
                    new_hash = leaf(a, depth + 1)
            else:
                key = _path(depth + 1, side_prefix)
                stored = get_page(key)
                if stored is None:
                    new_hash = leaf(a, depth + 1)
                else:
                    out_pages[key] = bytearray(stored)
                    new_hash = update(depth + 1, side_prefix, a, b, out_pages[key], 1)
            page[start + 1 + 32 * bit : start + 33 + 32 * bit] = new_hash
        reset()
        feed(page[start : start + 65])
        return digest()

    key = _path(0, 0)
    stored = get_page(key)
    assert stored is not None
    out_pages[key] = bytearray(stored)
    return update(0, 0, 0, len(batch), out_pages[key], 1), out_pages, out_leaves


def main(argv: list[str] | None = None) -> int:
    """Run the probe and print one line per size."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--levels", type=int, default=4, help="tree levels per page (K)")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    status = 0
    for size in args.sizes:
        tree = build_tree(size)
        nodes: dict[bytes, bytes] = tree.nodes.nodes  # type: ignore[attr-defined]
        pages, leaves = to_pages(nodes, args.levels)
        gc.collect()
        cpu: dict[str, list[float]] = {"records": [], "pages": []}
        wall: dict[str, list[float]] = {"records": [], "pages": []}
        for block in range(args.blocks):
            first = block * args.batch
            changes: dict[bytes, bytes | None] = {
                account_key(i * 7919 % size): account_value(i * 7919 % size, block + 1)
                for i in range(first, first + args.batch)
            }
            best = {"records": (float("inf"), float("inf")), "pages": (float("inf"), float("inf"))}
            for _ in range(args.repeat):
                w, c = time.perf_counter(), time.process_time()
                update = compute_update(nodes.get, tree.root, changes)
                best["records"] = (
                    min(best["records"][0], time.perf_counter() - w),
                    min(best["records"][1], time.process_time() - c),
                )
                w, c = time.perf_counter(), time.process_time()
                root, _, _ = page_update(pages.get, leaves.get, _sorted_batch(changes), args.levels)
                best["pages"] = (
                    min(best["pages"][0], time.perf_counter() - w),
                    min(best["pages"][1], time.process_time() - c),
                )
                if root != update.root:
                    status = 1
            for name, (w, c) in best.items():
                wall[name].append(w * 1e6 / len(changes))
                cpu[name].append(c * 1e6 / len(changes))
        cells = []
        for name in ("records", "pages"):
            cpu[name].sort()
            wall[name].sort()
            cells.append(
                f"{name}: {cpu[name][len(cpu[name]) // 2]:.1f} us CPU ({wall[name][len(wall[name]) // 2]:.1f} wall) per key"
            )
        print(
            f"size={size} levels={args.levels} pages={len(pages)} " + "; ".join(cells) + f" roots_equal={status == 0}",
            flush=True,
        )
        del tree, nodes, pages, leaves
        gc.collect()
    return status


if __name__ == "__main__":
    sys.exit(main())
