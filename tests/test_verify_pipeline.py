"""Replay throughput machinery (protocol §8.5): signatures recovered ahead on worker processes,
LMDB group commits, and the events file beside the state database. None of it may change a root,
an event or an error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import subprocess_env

from clearinghouse.chain.engine import Engine, VerifyFailure, load_block_events, load_block_header, replay_log
from clearinghouse.chain.events_file import FILE_NAME, HEADER, EventsFile
from clearinghouse.chain.producer import Producer
from clearinghouse.chain.recovery import RecoveryPipeline
from clearinghouse.spec.block import Recovered, RecoveredBlock, apply_block, recover_ahead
from clearinghouse.spec.events import Receipt
from clearinghouse.spec.state.working_state import KeyIndex, WorkingState
from clearinghouse.tools.demo import USDC, demo_genesis
from state import LmdbStore, MemoryStore
from tx import actions as A
from tx.encoding import decode_transaction, encode
from tx.messages import Transaction

BLOCKS = 12
PER_BLOCK = 40


def _corrupt_signature(raw: bytes, how: str) -> bytes:
    tx = decode_transaction(raw)
    sig = bytearray(tx.signature)
    if how == "high_s":
        n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
        s = n - int.from_bytes(sig[32:64], "big")
        sig[32:64] = s.to_bytes(32, "big")
        sig[64] ^= 1
    elif how == "bad_v":
        sig[64] = 7
    else:  # another valid-looking signature: recovers someone else
        sig[5] ^= 0x40
    return encode(Transaction(action=tx.action, nonce=tx.nonce, signature=bytes(sig)))


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log of transfers among funded accounts, some with broken signatures (each kind once a block)."""
    path = tmp_path_factory.mktemp("pipeline") / "chain.log"
    p = Producer(demo_genesis(), str(path), overwrite=True)
    bridge = p.wallet("bridge")
    wallets = [p.wallet(f"pipe-{i}") for i in range(PER_BLOCK)]
    t = p.time_ms + 1000
    p.block(
        [bridge.sign(A.Deposit(to=w.address, amount=1000 * USDC, ref=i + 1), t) for i, w in enumerate(wallets)],
        time_ms=t,
    )
    for b in range(BLOCKS):
        t += 1000
        txs = [
            wallets[i].sign(A.Transfer(to=wallets[(i + b + 1) % PER_BLOCK].address, amount=USDC), t)
            for i in range(PER_BLOCK)
        ]
        for k, how in enumerate(("high_s", "bad_v", "other")):
            txs[(3 * b + 7 * k) % PER_BLOCK] = _corrupt_signature(txs[(3 * b + 7 * k) % PER_BLOCK], how)
        p.block(txs, time_ms=t)
    p.close()
    return path


def _replay(log: Path, workers: int, min_txs: int = 1) -> tuple[bytes, list[list[Any]], int]:
    engine = Engine(MemoryStore())
    events: list[list[Any]] = []
    pipeline = RecoveryPipeline(workers, min_txs=min_txs)
    from clearinghouse.chain.engine import _replay_one, iter_log

    stats = {"applied": 0, "skipped": 0, "txs": 0, "rejected": 0}
    with pipeline:
        for _i, item, recovered in pipeline.run(iter_log(str(log)), skip_until=engine.height):
            _replay_one(engine, item, recovered, stats, lambda e, x: events.append(list(x.events)) if x else None)
    return engine.store.root, events, pipeline.recovered_txs


@pytest.mark.parametrize("threads", [False, True], ids=["fork", "forkserver"])
def test_recovered_ahead_gives_the_same_events_and_errors(log: Path, threads: bool) -> None:
    """With another thread alive the pool starts its workers from a fork server instead of forking."""
    import threading

    root0, events0, none = _replay(log, 0)
    stop = threading.Event()
    extra = threading.Thread(target=stop.wait, daemon=True)
    if threads:
        extra.start()
    try:
        root2, events2, recovered = _replay(log, 2)
    finally:
        stop.set()
    assert none == 0 and recovered > BLOCKS * PER_BLOCK  # the workers did recover (not vacuous)
    assert root2 == root0 and events2 == events0
    codes = {e.code for block in events0 for e in block if isinstance(e, Receipt) and not e.ok}
    assert {"HIGH_S", "BAD_SIGNATURE"} <= codes  # the broken signatures are typed rejections


def test_replay_log_with_workers_matches(log: Path) -> None:
    a, b = Engine(MemoryStore()), Engine(MemoryStore())
    assert replay_log(a, str(log)) == replay_log(b, str(log), recover_workers=2)
    assert a.store.root == b.store.root


def test_recover_ahead_entries() -> None:
    genesis = demo_genesis()
    from tx.signing import Signer

    alice = Signer.from_name("alice")
    action = A.Transfer(to=b"\x01" * 20, amount=1)
    good = encode(Transaction(action=action, nonce=5, signature=alice.sign(genesis.chain_id, 5, encode(action))))
    results = recover_ahead(genesis.chain_id, [good, _corrupt_signature(good, "high_s"), b"\x00junk"])
    assert results == [Recovered(alice.address, ""), Recovered(b"", "HIGH_S"), None]


def test_mismatched_recovered_block_is_ignored(log: Path) -> None:
    """A RecoveredBlock for another chain (or of another length) is not used: same events as without."""
    from clearinghouse.chain.engine import iter_log

    items = [item for _i, item in iter_log(str(log))]
    genesis, first = items[0], items[1]
    outs = []
    for recovered in (None, RecoveredBlock(genesis.chain_id + 1, [Recovered(b"\x09" * 20, "")] * len(first.block.txs))):
        store = MemoryStore()
        Engine(store).init_genesis(genesis)
        ws = WorkingState(store, KeyIndex.load(store))
        outs.append(apply_block(ws, 1, first.block.header.time_ms, list(first.block.txs), recovered))
    assert outs[0] == outs[1]


def test_read_error_ahead_is_raised_in_order(log: Path, tmp_path: Path) -> None:
    """A damaged frame found while reading ahead surfaces after every earlier block was applied."""
    data = log.read_bytes()
    damaged = tmp_path / "damaged.log"
    damaged.write_bytes(data[:-5] + bytes(b ^ 0xFF for b in data[-5:]))
    engine = Engine(MemoryStore())
    with pytest.raises(Exception) as info:
        replay_log(engine, str(damaged), recover_workers=2)
    assert not isinstance(info.value, VerifyFailure)
    assert engine.height == BLOCKS  # every whole block before the damaged last one


# ---------------------------------------------------------------- group commits and the events file
def test_group_commit_is_durable_only_at_group_ends(log: Path, tmp_path: Path) -> None:
    db = tmp_path / "db"
    store = LmdbStore(db)
    store.group_commit(5)
    engine = Engine(store)
    heights = []

    def seen(entry: Any, executed: Any) -> None:
        heights.append((store.height, store.durable_height))
        if store.height == 7:  # another process sees only durable groups
            code = f"from state import LmdbStore; print(LmdbStore({str(db)!r}, readonly=True).height)"
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env())
            assert out.stdout.strip() == "4", out.stderr

    replay_log(engine, str(log), on_block=seen)
    # Genesis is the group's first commit: groups end at heights 4 and 9 (five commits each).
    assert [d for _h, d in heights] == [(h + 1) // 5 * 5 - 1 for h in range(1, BLOCKS + 2)]
    store.close()
    engine.close_events()
    with LmdbStore(db, readonly=True) as reader:
        assert reader.height == BLOCKS + 1
        events = load_block_events(reader, 3)
        header = load_block_header(reader, 3)
        assert events and isinstance(events[0], Receipt) and header is not None and header.height == 3
        assert reader.get_meta("events/00000000000000000003") is None  # not in the state database


def test_events_file_is_cut_back_to_the_committed_end(log: Path, tmp_path: Path) -> None:
    """Frames of blocks a crash left uncommitted are dropped when the writer reopens."""
    db = tmp_path / "db"
    with LmdbStore(db) as store:
        engine = Engine(store)
        replay_log(engine, str(log))
        engine.close_events()
    size = os.path.getsize(db / FILE_NAME)
    with open(db / FILE_NAME, "ab") as f:
        f.write(b"\x00" * 100)  # a frame written, its block never committed
    with LmdbStore(db) as store:
        engine = Engine(store)
        assert engine.events is not None and engine.events.end == size
        engine.close_events()
    assert os.path.getsize(db / FILE_NAME) == size
    reader = EventsFile(str(db / FILE_NAME), end=size, writable=False)
    assert reader.read(BLOCKS + 1) is not None and reader.read(BLOCKS + 2) is None
    assert (db / FILE_NAME).read_bytes()[: len(HEADER)] == HEADER


def entries(store: LmdbStore) -> list[list[tuple[bytes, bytes]]]:
    """Every (key, value) of the data, tree and meta databases, in key order."""
    env = store._open_env()
    with env.begin() as txn:
        return [list(txn.cursor(db=db)) for db in (store._data, store._smt, store._meta)]


def test_compact_keeps_the_state_and_resumes(log: Path, tmp_path: Path) -> None:
    db = tmp_path / "db"
    store = LmdbStore(db)
    engine = Engine(store)
    replay_log(engine, str(log))
    root, height = store.root, store.height
    before = entries(store)
    total, used = store.page_usage()
    size = store.compact()
    # Packed: no free pages, and fewer pages in use than before (leaves are filled in key order).
    assert size == store.page_usage()[0] < total
    assert store.page_usage()[1] < used  # this log's random inserts left partly filled leaves
    assert (store.root, store.height) == (root, height)
    assert entries(store) == before  # every key and value of the three databases, byte for byte
    assert not (db / "compact.tmp").exists()
    store.close()
    engine.close_events()
    with LmdbStore(db) as again:  # reopens cleanly; a resumed replay skips every block
        assert (again.root, again.height) == (root, height)
        resumed = Engine(again)
        assert replay_log(resumed, str(log))["skipped"] == BLOCKS + 1
        assert load_block_events(again, BLOCKS + 1)
        resumed.close_events()
