"""
Tests of the state stores (``MemoryStore`` and ``LmdbStore``).

Both backends are driven with the same inputs and must agree with each other and
with ``naive_root`` over their own contents; the LMDB store must also survive
reopening, aborted commits and a SIGKILLed writer without ever exposing a
half-applied block.

``python tests/test_store.py --crash-writer DIR`` is the writer process used by
the SIGKILL test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from state import (  # noqa: E402
    EMPTY,
    CorruptStore,
    HeightMismatch,
    InvalidKey,
    InvalidMeta,
    InvalidValue,
    LmdbStore,
    MemoryStore,
    RootMismatch,
    StateError,
    Store,
    StoreClosed,
    StoreOpenError,
    naive_root,
    verify_proof,
)
from state.lmdb_store import DB_META, LMDB_OPTIONS  # noqa: E402
from state.store import decode_height  # noqa: E402

KEYS = [b"k%d" % i for i in range(24)]
"""Small key alphabet so batches collide, update and delete."""

values = st.binary(max_size=4)
changes_st = st.dictionaries(st.sampled_from(KEYS), st.none() | values, max_size=12)


def apply_model(model: dict[bytes, bytes], changes: dict[bytes, bytes | None]) -> None:
    """Apply a change batch to a plain dict (the reference model)."""
    for key, value in changes.items():
        if value is None:
            model.pop(key, None)
        else:
            model[key] = value


def snapshot(store: Store) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Return everything observable about a store's committed state."""
    return store.height, store.root, list(store.iter_all())


def check_store(store: Store, model: dict[bytes, bytes]) -> None:
    """Assert ``store`` holds exactly ``model`` under the right root."""
    assert list(store.iter_all()) == sorted(model.items())
    assert store.root == naive_root(model)
    assert store.get_meta("root") == store.root
    if store.height >= 0:
        assert decode_height(store.get_meta("height") or b"") == store.height


@pytest.fixture
def lmdb_path(tmp_path: Path) -> str:
    """A fresh directory path for an LMDB store."""
    return str(tmp_path / "state")


# --------------------------------------------------------------------------- both backends agree


@settings(deadline=None, max_examples=40)  # every commit fsyncs; keep the suite quick
@given(st.lists(changes_st, min_size=1, max_size=8))
def test_backends_agree_with_oracle(batches: list[dict[bytes, bytes | None]]) -> None:
    with tempfile.TemporaryDirectory() as tmp, LmdbStore(os.path.join(tmp, "s")) as disk:
        memory = MemoryStore()
        model: dict[bytes, bytes] = {}
        for height, changes in enumerate(batches):
            meta = {"block": height.to_bytes(4, "big")}
            root_m = memory.commit_block(height, changes, meta)
            root_d = disk.commit_block(height, changes, meta)
            apply_model(model, changes)
            assert root_m == root_d == naive_root(model)
            assert memory.height == disk.height == height
            check_store(memory, model)
            check_store(disk, model)
            for key in KEYS[:6]:
                assert memory.get(key) == disk.get(key) == model.get(key)
                assert memory.prove(key) == disk.prove(key)
                assert verify_proof(disk.root, key, model.get(key), disk.prove(key))


def test_many_keys_both_backends(lmdb_path: str) -> None:
    keys = [b"acct/%03d" % i for i in range(300)]
    memory = MemoryStore()
    model: dict[bytes, bytes] = {}
    with LmdbStore(lmdb_path) as disk:
        plan: list[dict[bytes, bytes | None]] = [
            {k: b"a" + k for k in keys[:150]},
            {k: b"b" + k for k in keys[100:300]},
            {k: None for k in keys[::2]},
            {k: b"c" for k in keys[::5]},
            {k: None for k in keys[::3]},
        ]
        for height, changes in enumerate(plan):
            assert memory.commit_block(height, changes, {}) == disk.commit_block(height, changes, {})
            apply_model(model, changes)
            check_store(disk, model)
        for key in keys:
            assert verify_proof(disk.root, key, model.get(key), disk.prove(key))
    with LmdbStore(lmdb_path) as reopened:
        assert snapshot(reopened) == snapshot(memory)


class StoreMachine(RuleBasedStateMachine):
    """Random commits, reopens and proof checks against a dict model."""

    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.tmp.name, "s")
        self.disk = LmdbStore(self.path)
        self.memory = MemoryStore()
        self.model: dict[bytes, bytes] = {}

    @rule(changes=changes_st, preview=st.booleans())
    def commit(self, changes: dict[bytes, bytes | None], preview: bool) -> None:
        height = self.disk.height + 1
        expected = None
        if preview:
            expected = self.disk.preview_root(changes)
            assert self.memory.preview_root(changes) == expected
        root = self.disk.commit_block(height, changes, {}, expected_root=expected)
        assert root == self.memory.commit_block(height, changes, {}, expected_root=expected)
        apply_model(self.model, changes)

    @rule()
    def reopen(self) -> None:
        before = snapshot(self.disk)
        self.disk.close()
        self.disk = LmdbStore(self.path)
        assert snapshot(self.disk) == before

    @rule(changes=changes_st)
    def failed_commit(self, changes: dict[bytes, bytes | None]) -> None:
        before = snapshot(self.disk)
        with pytest.raises(HeightMismatch):
            self.disk.commit_block(self.disk.height + 2, changes, {})
        assert snapshot(self.disk) == before

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def prove_present(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.model)))
        assert verify_proof(self.disk.root, key, self.model[key], self.disk.prove(key))

    @rule(key=st.sampled_from(KEYS))
    def prove_any(self, key: bytes) -> None:
        proof = self.disk.prove(key)
        assert verify_proof(self.disk.root, key, self.model.get(key), proof)
        assert proof == self.memory.prove(key)

    @invariant()
    def agrees(self) -> None:
        assert self.disk.root == self.memory.root == naive_root(self.model)
        assert self.disk.height == self.memory.height
        assert list(self.disk.iter_all()) == sorted(self.model.items())

    def teardown(self) -> None:
        self.disk.close()
        self.tmp.cleanup()


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(deadline=None, max_examples=25, stateful_step_count=25)


# --------------------------------------------------------------------------- protocol details


@pytest.fixture(params=["memory", "lmdb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each backend in turn, fresh."""
    if request.param == "memory":
        with MemoryStore() as memory:
            yield memory
    else:
        with LmdbStore(tmp_path / "state") as disk:
            yield disk


def test_implements_protocol(store: Store) -> None:
    assert isinstance(store, Store)


def test_fresh_store(store: Store) -> None:
    assert store.height == -1
    assert store.root == EMPTY
    assert store.get(b"a") is None
    assert store.get_meta("height") is None and store.get_meta("root") is None
    assert list(store.iter_all()) == []


def test_heights_must_be_consecutive(store: Store) -> None:
    with pytest.raises(HeightMismatch) as info:
        store.commit_block(1, {b"a": b"1"}, {})
    assert info.value.code == "HEIGHT_MISMATCH" and info.value.expected == 0
    store.commit_block(0, {b"a": b"1"}, {})
    for bad in (0, 2, -1, True, "1", 1.0):
        with pytest.raises(HeightMismatch):
            store.commit_block(bad, {}, {})  # type: ignore[arg-type]
    store.commit_block(1, {}, {})
    assert store.height == 1
    assert store.get(b"a") == b"1"


def test_invalid_inputs_change_nothing(store: Store) -> None:
    store.commit_block(0, {b"a": b"1"}, {"x": b"1"})
    before = snapshot(store)
    bad_calls = [
        ({b"": b"v"}, {}, InvalidKey),
        ({b"k" * 512: b"v"}, {}, InvalidKey),
        ({"str": b"v"}, {}, InvalidKey),
        ({memoryview(b"k"): b"v"}, {}, InvalidKey),
        ({b"b": b"ok", b"c": "text"}, {}, InvalidValue),
        ({b"b": b"ok", b"c": 5}, {}, InvalidValue),
        ({b"b": b"ok"}, {"height": b"\x00"}, InvalidMeta),
        ({b"b": b"ok"}, {"root": EMPTY}, InvalidMeta),
        ({b"b": b"ok"}, {"": b"1"}, InvalidMeta),
        ({b"b": b"ok"}, {"m": "text"}, InvalidMeta),
        ({b"b": b"ok"}, {b"bytes-name": b"1"}, InvalidMeta),
    ]
    for changes, meta, error in bad_calls:
        with pytest.raises(error) as info:
            store.commit_block(1, changes, meta)  # type: ignore[arg-type]
        assert isinstance(info.value, StateError) and info.value.code.isupper()
        assert snapshot(store) == before
    assert store.get(b"k" * 511) is None  # longest key is accepted
    store.commit_block(1, {b"k" * 511: b""}, {})
    assert store.get(b"k" * 511) == b""


def test_meta_entries(store: Store) -> None:
    store.commit_block(0, {}, {"block_hash": b"\x01" * 32, "ünïcode": b"u"})
    assert store.root == EMPTY
    assert store.get_meta("block_hash") == b"\x01" * 32
    assert store.get_meta("ünïcode") == b"u"
    assert store.get_meta("height") == (0).to_bytes(8, "big")
    assert store.get_meta("root") == EMPTY
    store.commit_block(1, {b"a": b"1"}, {"block_hash": b"\x02" * 32})
    assert store.get_meta("block_hash") == b"\x02" * 32
    assert store.get_meta("ünïcode") == b"u"  # meta persists until overwritten
    assert store.get_meta("root") == store.root == naive_root({b"a": b"1"})


def test_scan_prefix_is_sorted_and_exact(store: Store) -> None:
    items = {b"acct/b": b"2", b"acct/a": b"1", b"acct0": b"x", b"acc": b"y", b"pos/1": b"p", b"acct/\xff": b"z"}
    store.commit_block(0, items, {})
    assert list(store.scan_prefix(b"acct/")) == [(b"acct/a", b"1"), (b"acct/b", b"2"), (b"acct/\xff", b"z")]
    assert list(store.scan_prefix(b"zzz")) == []
    assert list(store.scan_prefix(b"")) == sorted(items.items()) == list(store.iter_all())


def test_scan_is_a_snapshot(store: Store) -> None:
    store.commit_block(0, {b"a": b"1", b"b": b"2"}, {})
    scan = store.scan_prefix(b"")
    assert next(scan) == (b"a", b"1")
    store.commit_block(1, {b"b": None, b"c": b"3"}, {})
    assert list(scan) == [(b"b", b"2")]


def test_closed_store_raises(store: Store) -> None:
    store.commit_block(0, {b"a": b"1"}, {})
    store.close()
    store.close()  # idempotent
    for call in (
        lambda: store.get(b"a"),
        lambda: store.get_meta("root"),
        lambda: store.prove(b"a"),
        lambda: store.commit_block(1, {}, {}),
        lambda: list(store.iter_all()),
    ):
        with pytest.raises(StoreClosed):
            call()


def test_preview_root_changes_nothing(store: Store) -> None:
    store.commit_block(0, {b"a": b"1", b"b": b"2"}, {"m": b"0"})
    before = snapshot(store)
    changes = {b"a": None, b"c": b"3"}
    preview = store.preview_root(changes)
    assert preview == naive_root({b"b": b"2", b"c": b"3"})
    assert snapshot(store) == before
    assert store.preview_root({}) == store.root
    with pytest.raises(InvalidKey):
        store.preview_root({b"": b"x"})
    assert store.commit_block(1, changes, {}) == preview


def test_preview_is_not_reused_for_other_changes(store: Store) -> None:
    store.commit_block(0, {b"a": b"1"}, {})
    store.preview_root({b"b": b"2"})
    assert store.commit_block(1, {b"c": b"3"}, {}) == naive_root({b"a": b"1", b"c": b"3"})
    # The same changes previewed against an older root must not be reused either.
    store.preview_root({b"d": b"4"})
    store.commit_block(2, {b"e": b"5"}, {})
    assert store.commit_block(3, {b"d": b"4"}, {}) == naive_root({b"a": b"1", b"c": b"3", b"d": b"4", b"e": b"5"})
    assert list(store.iter_all()) == sorted({b"a": b"1", b"c": b"3", b"d": b"4", b"e": b"5"}.items())


def test_expected_root_mismatch_commits_nothing(store: Store) -> None:
    store.commit_block(0, {b"a": b"1"}, {"m": b"0"})
    before = snapshot(store)
    changes = {b"a": b"2", b"b": b"3"}
    good = store.preview_root(changes)
    with pytest.raises(RootMismatch) as info:
        store.commit_block(1, changes, {"m": b"1"}, expected_root=b"\x01" * 32)
    assert info.value.code == "ROOT_MISMATCH"
    assert info.value.expected == b"\x01" * 32 and info.value.got == good
    assert snapshot(store) == before
    assert store.get_meta("m") == b"0"
    assert store.commit_block(1, changes, {"m": b"1"}, expected_root=good) == good
    assert store.get_meta("m") == b"1"


def test_lmdb_expected_root_mismatch_survives_reopen(lmdb_path: str) -> None:
    with LmdbStore(lmdb_path) as disk:
        disk.commit_block(0, {b"a": b"1"}, {})
        before = snapshot(disk)
        with pytest.raises(RootMismatch):
            disk.commit_block(1, {b"b": b"2"}, {}, expected_root=EMPTY)
    with LmdbStore(lmdb_path) as disk:
        assert snapshot(disk) == before


# --------------------------------------------------------------------------- LMDB specifics


def test_lmdb_reopen_resumes(lmdb_path: str) -> None:
    with LmdbStore(lmdb_path) as disk:
        disk.commit_block(0, {b"a": b"1", b"b": b"2"}, {"note": b"genesis"})
        disk.commit_block(1, {b"a": None, b"c": b"3"}, {})
        expected = snapshot(disk)
    with LmdbStore(lmdb_path) as disk:
        assert snapshot(disk) == expected
        assert disk.get_meta("note") == b"genesis"
        disk.commit_block(2, {b"d": b"4"}, {})
        assert disk.root == naive_root({b"b": b"2", b"c": b"3", b"d": b"4"})


def test_lmdb_layout(lmdb_path: str) -> None:
    with LmdbStore(lmdb_path) as disk:
        disk.commit_block(0, {b"a": b"1"}, {"x": b"y"})
    env = lmdb.open(lmdb_path, max_dbs=8, readonly=True)
    try:
        with env.begin() as txn:
            names = sorted(key for key, _ in txn.cursor())
            meta = env.open_db(DB_META, txn=txn, create=False)
            assert dict(txn.cursor(db=meta)) == {
                b"height": bytes(8),
                b"root": naive_root({b"a": b"1"}),
                b"x": b"y",
            }
    finally:
        env.close()
    assert names == [b"data", b"meta", b"smt"]
    assert LMDB_OPTIONS["map_size"] == 1 << 36 and LMDB_OPTIONS["max_dbs"] == 8


def test_lmdb_open_twice_is_a_typed_error(lmdb_path: str) -> None:
    with LmdbStore(lmdb_path) as disk:
        disk.commit_block(0, {b"a": b"1"}, {})
        with pytest.raises(StoreOpenError) as info:
            LmdbStore(lmdb_path)
        assert info.value.code == "STORE_OPEN_FAILED"
        with pytest.raises(StoreOpenError):
            LmdbStore(lmdb_path + "/")  # same directory, different spelling
        assert disk.get(b"a") == b"1"  # the first handle is unaffected
    with LmdbStore(lmdb_path) as again:
        assert again.height == 0


def test_lmdb_open_bad_path(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(b"")
    with pytest.raises(StoreOpenError):
        LmdbStore(not_a_dir)


def test_lmdb_detects_tampered_meta(lmdb_path: str) -> None:
    with LmdbStore(lmdb_path) as disk:
        disk.commit_block(0, {b"a": b"1"}, {})
    env = lmdb.open(lmdb_path, max_dbs=8)
    meta = env.open_db(DB_META)
    with env.begin(write=True, db=meta) as txn:
        txn.put(b"root", b"\x01" * 32)
    env.close()
    with pytest.raises(CorruptStore) as info:
        LmdbStore(lmdb_path)
    assert info.value.code == "CORRUPT_STORE"
    env = lmdb.open(lmdb_path, max_dbs=8)
    with env.begin(write=True, db=env.open_db(DB_META)) as txn:
        txn.delete(b"height")
    env.close()
    with pytest.raises(CorruptStore):
        LmdbStore(lmdb_path)
    # A failed open must release the environment so the directory can be reopened.
    with pytest.raises(CorruptStore):
        LmdbStore(lmdb_path)


# --------------------------------------------------------------------------- crash atomicity


class Boom(Exception):
    """Raised by monkeypatched steps to simulate a failure mid-commit."""


def _raise_boom(*args: object, **kwargs: object) -> None:
    raise Boom("injected failure")


def test_lmdb_failure_mid_commit_leaves_previous_block(lmdb_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with LmdbStore(lmdb_path) as disk:
        disk.commit_block(0, {b"a": b"1", b"b": b"2"}, {"tag": b"zero"})
        before = snapshot(disk)
        proof_before = disk.prove(b"a")
        # Fail after the data and node writes went into the transaction.
        monkeypatch.setattr(LmdbStore, "_write_meta", _raise_boom)
        with pytest.raises(Boom):
            disk.commit_block(1, {b"a": None, b"c": b"3"}, {"tag": b"one"})
        monkeypatch.undo()
        assert snapshot(disk) == before
        assert disk.get_meta("tag") == b"zero"
        assert disk.prove(b"a") == proof_before
        # Fail half-way through the data writes.
        real_put = lmdb.Transaction.put
        calls = {"n": 0}

        def flaky_write_data(self: LmdbStore, txn: lmdb.Transaction, items: list) -> None:  # type: ignore[type-arg]
            for key, value in items:
                calls["n"] += 1
                if calls["n"] == 3:
                    raise Boom("disk on fire")
                real_put(txn, key, value, db=self._data)  # noqa: SLF001

        monkeypatch.setattr(LmdbStore, "_write_data", flaky_write_data)
        with pytest.raises(Boom):
            disk.commit_block(1, {b"x%d" % i: b"v" for i in range(5)}, {})
        monkeypatch.undo()
        assert snapshot(disk) == before
        # And the store still works afterwards, from the right height.
        disk.commit_block(1, {b"c": b"3"}, {})
        after = snapshot(disk)
    with LmdbStore(lmdb_path) as reopened:
        assert snapshot(reopened) == after
        assert reopened.root == naive_root({b"a": b"1", b"b": b"2", b"c": b"3"})


def test_lmdb_failure_inside_tree_update(lmdb_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with LmdbStore(lmdb_path) as disk:
        disk.commit_block(0, {b"a": b"1"}, {})
        before = snapshot(disk)
        monkeypatch.setattr("state.lmdb_store.compute_update", _raise_boom)
        with pytest.raises(Boom):
            disk.commit_block(1, {b"b": b"2"}, {})
        monkeypatch.undo()
        assert snapshot(disk) == before
    with LmdbStore(lmdb_path) as reopened:
        assert snapshot(reopened) == before


def test_memory_failure_mid_commit_rolls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    memory = MemoryStore()
    memory.commit_block(0, {b"a": b"1", b"b": b"2"}, {"tag": b"zero"})
    before = snapshot(memory)
    nodes_before = dict(memory._nodes)  # noqa: SLF001
    monkeypatch.setattr(MemoryStore, "_apply_meta", _raise_boom)
    with pytest.raises(Boom):
        memory.commit_block(1, {b"a": None, b"c": b"3", b"b": b"22"}, {"tag": b"one"})
    monkeypatch.undo()
    assert snapshot(memory) == before
    assert memory._nodes == nodes_before  # noqa: SLF001
    assert memory.get_meta("tag") == b"zero"
    assert memory.commit_block(1, {b"c": b"3"}, {}) == naive_root({b"a": b"1", b"b": b"2", b"c": b"3"})


CRASH_KEYS = 3000
"""Key space of the crash writer (large enough that each commit takes a while)."""

CRASH_BATCH = 1000
"""Changes per crash-writer block."""


def crash_changes(height: int) -> dict[bytes, bytes | None]:
    """Deterministic changes of the crash writer's block ``height`` (updates and deletes)."""
    changes: dict[bytes, bytes | None] = {}
    for j in range(CRASH_BATCH):
        index = (height * 7919 + j * 2654435761) % CRASH_KEYS
        key = b"acct/%05d" % index
        changes[key] = None if (index + height) % 7 == 0 else b"h%d:j%d" % (height, j) * 3
    return changes


def run_crash_writer(path: str) -> None:
    """
    Commit crash-writer blocks forever, printing each committed height.

    Also prints ``committing`` once a block's writes are all in the LMDB
    transaction, right before ``txn.commit()``, so the parent can aim its SIGKILL
    at the commit itself rather than only at the tree computation.
    """
    write_meta = LmdbStore._write_meta

    def announce_commit(self: LmdbStore, txn: lmdb.Transaction, items: list) -> None:  # type: ignore[type-arg]
        write_meta(self, txn, items)
        print("committing", flush=True)

    LmdbStore._write_meta = announce_commit  # type: ignore[method-assign]
    with LmdbStore(path) as disk:
        while True:
            height = disk.height + 1
            disk.commit_block(height, crash_changes(height), {"writer": b"%d" % height})
            print(height, flush=True)


@pytest.mark.parametrize("kill_at", ["after_ack", "in_commit"])
def test_sigkill_mid_commit_leaves_consistent_store(tmp_path: Path, kill_at: str) -> None:
    path = str(tmp_path / "state")
    for round_ in range(2):  # the second round resumes a store that was itself killed
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        writer = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--crash-writer", path],
            stdout=subprocess.PIPE,
            env=env,
        )
        assert writer.stdout is not None
        acknowledged = -1
        target = 3 * (round_ + 1)
        try:
            for line in writer.stdout:
                if line.strip() == b"committing":
                    if kill_at == "in_commit" and acknowledged >= target:
                        time.sleep(0.004 * round_)  # vary where in the commit the kill lands
                        break
                    continue
                acknowledged = int(line)
                if kill_at == "after_ack" and acknowledged >= target:
                    break
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            writer.stdout.close()
        assert writer.returncode == -signal.SIGKILL
        with LmdbStore(path) as disk:
            # Every acknowledged commit is durable; at most one more may have landed.
            assert disk.height in (acknowledged, acknowledged + 1)
            data = dict(disk.iter_all())
            assert disk.root == naive_root(data)
            model: dict[bytes, bytes] = {}
            for height in range(disk.height + 1):
                apply_model(model, crash_changes(height))
            assert data == model
            assert disk.get_meta("writer") == b"%d" % disk.height


if __name__ == "__main__":
    if sys.argv[1:2] == ["--crash-writer"] and len(sys.argv) == 3:
        run_crash_writer(sys.argv[2])
    else:
        print("usage: python tests/test_store.py --crash-writer DIR", file=sys.stderr)
        raise SystemExit(2)
