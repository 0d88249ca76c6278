"""Determinism (protocol §1.1): the same log gives the same roots in every process,
with any PYTHONHASHSEED, on the in-memory and LMDB backends.

(Crash and resume: see test_transition_atomicity.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, subprocess_env

from clearinghouse.chain.engine import Engine, replay_log
from clearinghouse.tools.demo import build_demo_log
from state import LmdbStore, MemoryStore

HASH_SEEDS = ("0", "1", "12345")
LOGS = {"demo": None, "collateral": REPO_ROOT / "fixtures" / "logs" / "collateral.log"}


def test_demo_is_identical_under_any_hash_seed(tmp_path: Path, demo_log: Path) -> None:
    """``clearinghouse demo --json`` in fresh processes: same log bytes, same state root."""
    procs = {
        seed: subprocess.Popen(
            [sys.executable, "-m", "clearinghouse.tools.cli", "demo", "--out", str(tmp_path / seed), "--json"],
            env=subprocess_env(PYTHONHASHSEED=seed),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in HASH_SEEDS
    }
    roots = {}
    for seed, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        roots[seed] = json.loads(out)["state_root"]
        assert (tmp_path / seed / "demo.log").read_bytes() == demo_log.read_bytes(), (
            f"PYTHONHASHSEED={seed} wrote another log"
        )
    assert len(set(roots.values())) == 1, roots


def test_building_the_demo_twice_gives_the_same_bytes(tmp_path: Path, demo_log: Path) -> None:
    build_demo_log(tmp_path / "again.log")
    assert (tmp_path / "again.log").read_bytes() == demo_log.read_bytes()


def replay_roots(log: Path, store: object) -> list[bytes]:
    """The store's root after each block of ``log`` (every header root is checked on the way)."""
    roots: list[bytes] = []
    replay_log(Engine(store), str(log), on_block=lambda entry, executed: roots.append(store.root))
    return roots


@pytest.mark.parametrize("name", list(LOGS))
def test_memory_and_lmdb_backends_agree(name: str, demo_log: Path, tmp_path: Path) -> None:
    log = LOGS[name] or demo_log
    memory = MemoryStore()
    with LmdbStore(tmp_path / "db") as lmdb:
        roots = replay_roots(log, memory)
        assert len(roots) > 1 and roots == replay_roots(log, lmdb)
        assert (memory.height, memory.root) == (lmdb.height, lmdb.root)
        assert list(memory.iter_all()) == list(lmdb.iter_all())
        for key, _ in list(memory.iter_all())[::7]:
            assert memory.prove(key) == lmdb.prove(key)
        for meta in ("header_hash", "genesis"):
            assert memory.get_meta(meta) == lmdb.get_meta(meta)
