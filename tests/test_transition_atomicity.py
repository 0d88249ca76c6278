"""All or nothing (protocol §6.3, §6.5): per transaction, per block, and across a crash.

* a rejected transaction's writes (nonce included) are undone by the journal;
* a bug that raises mid-block commits nothing and leaves the engine usable;
* a storage failure mid-commit leaves the previous block in LMDB, and replay
  resumes from it;
* a ``clearinghouse replay`` killed with SIGKILL at random moments always
  leaves a committed block whose root is that block's header root, and
  resuming reaches the same final root as an uninterrupted replay.
"""

from __future__ import annotations

import importlib.util
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT, codes_of, subprocess_env
from hypothesis import given
from hypothesis import strategies as st

from clearinghouse.chain.engine import Engine, iter_log, replay_log
from clearinghouse.chain.producer import Producer
from clearinghouse.spec import block as transition
from clearinghouse.spec.state.keys import NS_ACCOUNT, NS_ORDER, account_key, nonces_key, order_key
from clearinghouse.spec.state.records import Account, Order
from clearinghouse.spec.state.working_state import INDEXED_NAMESPACES, KeyIndex, WorkingState
from clearinghouse.tools.demo import USDC
from state import LmdbStore, MemoryStore
from tx import actions as A
from tx.encoding import encode
from tx.messages import Genesis


def headers_of(log: Path) -> dict[int, Any]:
    """height -> header of every block in a log."""
    return {
        item.block.header.height: item.block.header for _, item in iter_log(str(log)) if not isinstance(item, Genesis)
    }


def memory_replay(log: Path, upto: int | None = None) -> MemoryStore:
    """A MemoryStore holding the log's state, optionally only up to height ``upto``."""
    store = MemoryStore()
    engine = Engine(store)
    for _, item in iter_log(str(log)):
        if isinstance(item, Genesis):
            engine.init_genesis(item)
        elif upto is None or item.block.header.height <= upto:
            engine.apply_logged(item)
    return store


# ---------------------------------------------------------------- per transaction: the journal
KEYS = [account_key(bytes([i]) * 20) for i in range(1, 4)] + [
    order_key(0, i % 2 == 0, 1000 + i, i) for i in range(1, 4)
]


def record_for(key: bytes, n: int) -> Any:
    if key[:1] == NS_ACCOUNT:
        return Account(cash=n, open_markets=[], open_orders=0)
    return Order(
        oid=n,
        owner=bytes(20),
        is_buy=True,
        price=1,
        size=n + 1,
        orig_size=n + 1,
        tif=0,
        reduce_only=False,
        cloid=0,
        time_ms=0,
    )


write_ops = st.lists(st.tuples(st.sampled_from(KEYS), st.one_of(st.none(), st.integers(0, 5))), max_size=12)


def ws_view(ws: WorkingState) -> tuple[dict[bytes, Any], dict[bytes, list[bytes]], dict[bytes, bytes | None]]:
    """Everything observable: values, index contents, the block's net changes."""
    return (
        {k: ws.get(k) for k in KEYS},
        {ns: list(ws.index.iter_prefix(ns)) for ns in INDEXED_NAMESPACES},
        ws.changes(),
    )


@given(committed=write_ops, before=write_ops, inside=write_ops, commit=st.booleans())
def test_journal_rollback_restores_values_index_and_changes(
    committed: list, before: list, inside: list, commit: bool
) -> None:
    store = MemoryStore()
    store.commit_block(0, {k: encode(record_for(k, n)) for k, n in committed if n is not None}, {})
    ws = WorkingState(store, KeyIndex.load(store))
    for key, n in before:  # earlier transactions of the block
        ws.put(key, None if n is None else record_for(key, n))
    expected = ws_view(ws)
    ws.begin_tx()
    for key, n in inside:
        ws.put(key, None if n is None else record_for(key, n))
    if commit:
        ws.commit_tx()
        reference = WorkingState(store, KeyIndex.load(store))
        for key, n in before + inside:
            reference.put(key, None if n is None else record_for(key, n))
        assert ws_view(ws) == ws_view(reference)
    else:
        ws.rollback_tx()
        assert ws_view(ws) == expected
    # The derived index always equals the keys present.
    for ns in INDEXED_NAMESPACES:
        assert list(ws.index.iter_prefix(ns)) == sorted(k for k in KEYS if k[:1] == ns and ws.get(k) is not None)


def test_rejected_transaction_leaves_no_write_behind(producer: Any) -> None:
    """A transfer whose recipient overflows is rejected after its nonce and the debit were written."""
    p = producer(fund={"alice": 2**63 - 1, "bob": 5 * USDC})
    bob = p.wallet("bob")
    t = p.time_ms + 1000
    executed = p.block([bob.sign(A.Transfer(to=p.wallet("alice").address, amount=USDC), t)])
    assert codes_of(executed) == ["INVALID_AMOUNT"]
    touched = {k[:1] for k in executed.changes}
    assert NS_ACCOUNT not in touched and p.engine.store.get(nonces_key(bob.address)) is None


# ---------------------------------------------------------------- per block: a bug mid-block
def _resting_orders_block(p: Producer) -> list[bytes]:
    """Two resting bids by alice: the first is written (book key indexed) before the second runs."""
    alice = p.wallet("alice")
    t = p.time_ms + 1000
    return [
        alice.sign(
            A.PlaceOrder(market=0, is_buy=True, price=80_000_000, size=1, tif=A.TIF_GTC, reduce_only=False, cloid=1), t
        ),
        alice.sign(
            A.PlaceOrder(market=0, is_buy=True, price=79_000_000, size=1, tif=A.TIF_GTC, reduce_only=False, cloid=2), t
        ),
    ]


@pytest.mark.parametrize("backend", ["memory", "lmdb"])
def test_exception_mid_block_commits_nothing(
    producer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, backend: str
) -> None:
    store = MemoryStore() if backend == "memory" else LmdbStore(tmp_path / "db")
    p = producer(store=store, fund={"alice": 10_000 * USDC})
    twin = producer(fund={"alice": 10_000 * USDC})  # never crashes
    height, root = store.height, store.root
    txs = _resting_orders_block(p)

    real = transition.HANDLERS[A.PlaceOrder]
    calls = []

    def buggy(ctx: Any, action: Any) -> None:
        calls.append(action)
        real(ctx, action)
        if len(calls) == 2:
            raise RuntimeError("simulated bug in a handler")

    monkeypatch.setitem(transition.HANDLERS, A.PlaceOrder, buggy)
    with pytest.raises(RuntimeError, match="simulated bug"):
        p.block(txs)
    assert len(calls) == 2
    assert (store.height, store.root) == (height, root)
    assert p.engine.index.count_prefix(NS_ORDER) == 0  # the first order's key did not survive in the index
    monkeypatch.setitem(transition.HANDLERS, A.PlaceOrder, real)

    # Same block again (same time), without the bug: identical to a producer that never crashed.
    assert (
        codes_of(p.block(txs, time_ms=p.time_ms)) == codes_of(twin.block(_resting_orders_block(twin))) == ["OK", "OK"]
    )
    assert p.engine.index.count_prefix(NS_ORDER) == 2
    assert store.root == twin.engine.store.root
    store.close()


# ---------------------------------------------------------------- per block: storage failure mid-commit
@pytest.mark.parametrize("reopen", [True, False], ids=["reopen", "same-process"])
def test_lmdb_commit_failing_mid_block_keeps_the_previous_block(
    demo_log: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reopen: bool
) -> None:
    headers = headers_of(demo_log)
    db = tmp_path / "db"
    store = LmdbStore(db)
    real_write_nodes = store._write_nodes

    def write_half_then_fail(txn: Any, writes: Any) -> None:
        if store.height == 2:  # committing block 3
            real_write_nodes(txn, writes[: len(writes) // 2])  # data and half the tree are already in the txn
            raise OSError("simulated disk failure during commit")
        real_write_nodes(txn, writes)

    monkeypatch.setattr(store, "_write_nodes", write_half_then_fail)
    engine = Engine(store)
    with pytest.raises(OSError, match="simulated disk failure"):
        replay_log(engine, str(demo_log))
    monkeypatch.undo()
    assert store.height == 2 and store.root == headers[2].state_root

    if reopen:
        store.close()
        store = LmdbStore(db)  # checks that the stored root matches the stored tree
        engine = Engine(store)
    assert store.height == 2 and store.root == headers[2].state_root
    assert list(store.iter_all()) == list(memory_replay(demo_log, upto=2).iter_all())
    assert store.get_meta("header_hash") is not None

    stats = replay_log(engine, str(demo_log))
    last = max(headers)
    assert (stats["skipped"], stats["applied"]) == (2, last - 2)
    assert store.height == last and store.root == headers[last].state_root
    store.close()


# ---------------------------------------------------------------- across a SIGKILL
def _bench_module() -> Any:
    spec = importlib.util.spec_from_file_location("bench_replay", REPO_ROOT / "benchmarks" / "bench_replay.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def long_log(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """About 300 blocks of deposits, transfers and withdrawals; returns (path, final root)."""
    path = tmp_path_factory.mktemp("long") / "long.log"
    p = _bench_module().generate_log(path, blocks=300, txs=5, accounts=20, seed=7)
    return path, p.engine.store.root


def _replay_cmd(log: Path, db: Path) -> list[str]:
    return [sys.executable, "-m", "clearinghouse.tools.cli", "replay", str(log), "--db", str(db), "--json"]


def _committed(db: Path) -> tuple[int, bytes]:
    with LmdbStore(db) as store:
        return store.height, store.root


def test_sigkill_during_replay_then_resume(long_log: tuple[Path, bytes], tmp_path: Path) -> None:
    log, final_root = long_log
    headers = headers_of(log)
    env = subprocess_env()

    # An uninterrupted replay, timed to aim the kills.
    start = time.monotonic()
    full = subprocess.run(
        _replay_cmd(log, tmp_path / "full"), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    duration = time.monotonic() - start
    assert full.returncode == 0, full.stderr
    assert bytes.fromhex(json.loads(full.stdout)["state_root"]) == final_root

    rng = random.Random(20260101)
    db = tmp_path / "killed"
    heights = []
    for _ in range(3):
        proc = subprocess.Popen(
            _replay_cmd(log, db), env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        time.sleep(rng.uniform(0.25, 0.8) * duration)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stderr.close()
        if not db.exists():
            continue
        height, root = _committed(db)  # opening checks the stored root against the stored tree
        heights.append(height)
        if height > 0:
            assert root == headers[height].state_root, f"killed store at height {height} is not that block's state"
    resumed = subprocess.run(_replay_cmd(log, db), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert bytes.fromhex(summary["state_root"]) == final_root
    assert summary["height"] == max(headers)
    if heights:
        assert summary["blocks_skipped"] == max(heights[-1], 0)
    assert summary["blocks_applied"] + summary["blocks_skipped"] == max(headers)
