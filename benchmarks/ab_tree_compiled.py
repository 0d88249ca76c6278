"""
A/B benchmark: the state tree's ``compute_update``, pure Python against a mypyc build of ``state/smt.py``.

Both implementations run in ONE process on the SAME tree and the SAME blocks,
interleaved (for each block and each repeat, both run, in alternating order),
so the machine's load moves both figures alike; the comparison is only
meaningful within one run. The compiled module is built by ``mypyc`` from the
``state/smt.py`` of ``--source`` (default: this checkout) into a temporary
directory (or taken from ``--compiled-dir DIR``, a directory holding
``state/smt.*.so`` from an earlier build), then loaded beside the pure module.

The tree of N keys is built in chunks of 10,000 keys like
``bench_commitment.py`` (so its node records are scattered in memory the same
way), then each of ``--blocks`` blocks of 1,000 changed keys (80% updates, 20%
inserts, ``bench_commitment.block_changes``) is computed ``--repeat`` times by
each implementation; the fastest run of each counts, the figure is the median
over blocks of CPU (``process_time``) microseconds per changed key. Every
block's root and writes must be identical between the two (exit status 1 if
not), and the final root is checked against ``naive_root`` up to 10^5 keys.

Usage::

    python benchmarks/ab_tree_compiled.py [--sizes 10000 100000 1000000] [--blocks 5] [--repeat 3]
                                          [--source DIR] [--compiled-dir DIR] [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_commitment import account_key, account_value, block_changes  # noqa: E402

import state  # noqa: E402
import state.smt as pure_smt  # noqa: E402

BUILD_CHUNK = 10_000


def build_compiled(source: Path, into: Path) -> Path:
    """Compile ``source/state/smt.py`` with mypyc in ``into``; return the directory holding ``state/``."""
    into.mkdir(parents=True)
    shutil.copytree(source / "state", into / "state")
    mypyc = Path(sys.executable).with_name("mypyc")
    (into / "mypy.ini").write_text("[mypy]\nignore_missing_imports = True\n")  # lmdb, sortedcontainers
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # analyse the copy only
    done = subprocess.run([str(mypyc), "state/smt.py"], cwd=into, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"mypyc failed:\n{done.stdout}\n{done.stderr}")
    return into


def load_compiled(directory: Path) -> ModuleType:
    """
    Load ``directory/state/smt.*.so`` as a second ``state.smt`` beside the pure one.

    The compiled module is registered under its own name only while it loads
    (its shared ``smt__mypyc`` library is found through ``state.__path__``);
    afterwards ``sys.modules['state.smt']`` is the pure module again.
    """
    (so,) = [p for p in (directory / "state").glob("smt.*.so")]
    state.__path__.insert(0, str(directory / "state"))
    sys.modules.pop("state.smt__mypyc", None)  # a second build has a shared library of the same name
    saved = sys.modules.pop("state.smt")
    try:
        spec = importlib.util.spec_from_file_location("state.smt", so)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["state.smt"] = module
        spec.loader.exec_module(module)
    finally:
        sys.modules["state.smt"] = saved
        state.__path__.remove(str(directory / "state"))
    if not str(module.__file__).endswith(".so"):
        raise SystemExit(f"not a compiled module: {module.__file__}")
    return module


def load_pure(directory: Path) -> ModuleType:
    """Load ``directory/state/smt.py`` (interpreted) as a second ``state.smt`` beside this checkout's."""
    spec = importlib.util.spec_from_file_location("state.smt", directory / "state" / "smt.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def median(values: list[float]) -> float:
    """Return the median (lower middle for even counts) of ``values``."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def run_size(size: int, blocks: int, repeat: int, impls: dict[str, ModuleType]) -> dict[str, Any]:
    """Build one tree of ``size`` keys, then time every implementation on the same blocks."""
    builder = impls["compiled"]
    nodes: dict[bytes, bytes] = {}
    root = pure_smt.EMPTY
    start = time.perf_counter()
    for lo in range(0, size, BUILD_CHUNK):
        chunk: dict[bytes, bytes | None] = {
            account_key(i): account_value(i, 0) for i in range(lo, min(size, lo + BUILD_CHUNK))
        }
        update = builder.compute_update(nodes.get, root, chunk)
        for path, record in update.node_writes:
            if record is None:
                nodes.pop(path, None)
            else:
                nodes[path] = record
        root = update.root
    build_s = time.perf_counter() - start
    names = list(impls)
    cpu: dict[str, list[float]] = {name: [] for name in names}
    same = True
    for block in range(blocks):
        changes = block_changes(size, block, 1000)
        best = dict.fromkeys(names, float("inf"))
        results = {}
        for r in range(repeat):
            order = names if (block + r) % 2 == 0 else names[::-1]
            for name in order:
                t = time.process_time()
                result = impls[name].compute_update(nodes.get, root, changes)
                best[name] = min(best[name], time.process_time() - t)
                results[name] = (result.root, result.node_writes)
        if len({results[name] for name in names}) != 1:
            same = False
        for name in names:
            cpu[name].append(best[name] / len(changes) * 1e6)
        new_root, writes = results[names[0]]
        for path, record in writes:
            if record is None:
                nodes.pop(path, None)
            else:
                nodes[path] = record
        root = new_root
    row: dict[str, Any] = {"size": size, "blocks": blocks, "repeat": repeat, "build_s": round(build_s, 1)}
    for name in names:
        row[f"{name}_cpu_us_per_key"] = round(median(cpu[name]), 2)
        row[f"{name}_blocks"] = [round(v, 2) for v in cpu[name]]
    row["ratio"] = round(row["compiled_cpu_us_per_key"] / row["pure_cpu_us_per_key"], 3)
    row["same_results"] = same
    row["root"] = root.hex()
    return row


def main() -> int:
    """Run the A/B comparison and print one line (or JSON row) per size."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--source", type=Path, default=ROOT, help="checkout whose state/smt.py is compiled")
    parser.add_argument("--compiled-dir", type=Path, help="use an existing build (holds state/smt.*.so)")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="also time DIR/state/smt.py pure and compiled (base_pure, base_compiled), e.g. from git archive",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.compiled_dir or build_compiled(args.source.resolve(), Path(tmp) / "new")
        impls = {"pure": pure_smt, "compiled": load_compiled(directory)}
        if args.baseline:
            base = args.baseline.resolve()
            impls["base_pure"] = load_pure(base)
            if not list((base / "state").glob("smt.*.so")):
                base = build_compiled(base, Path(tmp) / "base")
            impls["base_compiled"] = load_compiled(base)
        ok = True
        for size in args.sizes:
            row = run_size(size, args.blocks, args.repeat, impls)
            ok = ok and row["same_results"]
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                figures = ", ".join(f"{name} {row[f'{name}_cpu_us_per_key']:6.2f}" for name in impls)
                print(
                    f"{size:>9} keys, CPU us per changed key: {figures} (compiled/pure {row['ratio']:.3f}); "
                    f"same results: {row['same_results']}, build {row['build_s']} s",
                    flush=True,
                )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
