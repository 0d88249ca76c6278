"""State snapshots (state/snapshot.py), the one-pass tree build and the log's frame index."""

from __future__ import annotations

import os
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from state import MemoryStore, SparseMerkleTree, naive_root
from state.errors import InvalidKey
from state.smt import build_tree
from state.snapshot import (
    HEADER_SIZE,
    MAGIC,
    SnapshotChecksumMismatch,
    SnapshotFormatError,
    SnapshotMismatch,
    SnapshotRootMismatch,
    SnapshotTruncated,
    SnapshotVersionError,
    encode_varint,
    load_snapshot,
    read_snapshot,
    read_snapshot_header,
    snapshot_store,
    write_snapshot,
)
from tx.errors import ChecksumMismatch, TruncatedLog
from tx.logfile import FRAME_BLOCK, FRAME_GENESIS, LogWriter, index_frames, read_log

GENESIS = bytes(range(32))

keys_st = st.binary(min_size=1, max_size=40)
items_st = st.dictionaries(keys_st, st.binary(max_size=20), max_size=60)


# ---------------------------------------------------------------- bulk build
@given(items_st, st.integers(min_value=1, max_value=9))
def test_build_tree_is_the_incremental_tree(items: dict[bytes, bytes], batch: int) -> None:
    """Same root and the very same node records at the same paths as key-by-key batches."""
    tree = SparseMerkleTree()
    keys = list(items)
    for i in range(0, len(keys), batch):
        tree.apply({k: items[k] for k in keys[i : i + batch]})
    built = build_tree(items.items())
    assert built.root == tree.root == naive_root(items)
    assert dict(built.node_writes) == tree.nodes.nodes  # type: ignore[attr-defined]


@given(items_st, st.dictionaries(keys_st, st.one_of(st.none(), st.binary(max_size=20)), max_size=20))
def test_bulk_loaded_store_keeps_working(items: dict[bytes, bytes], changes: dict[bytes, bytes | None]) -> None:
    """A store built from records commits further blocks exactly as one that got there block by block."""
    bulk = MemoryStore.from_records(7, sorted(items.items()))
    grown = MemoryStore()
    for h in range(7):
        grown.commit_block(h, {}, {})
    grown.commit_block(7, dict(items), {})
    assert bulk.root == grown.root and bulk.height == 7
    assert bulk.commit_block(8, changes, {}) == grown.commit_block(8, changes, {})
    assert list(bulk.iter_all()) == list(grown.iter_all())
    for key in list(items)[:5]:
        assert bulk.prove(key) == grown.prove(key)


def test_from_records_rejects_unsorted_and_repeated_keys() -> None:
    with pytest.raises(InvalidKey):
        MemoryStore.from_records(0, [(b"b", b""), (b"a", b"")])
    with pytest.raises(InvalidKey):
        MemoryStore.from_records(0, [(b"a", b""), (b"a", b"x")])


# ---------------------------------------------------------------- format
def _store(n: int = 50) -> MemoryStore:
    return MemoryStore.from_records(12, sorted((b"k" + i.to_bytes(4, "big"), b"v" * (i % 7)) for i in range(n)))


def test_round_trip(tmp_path) -> None:
    store = _store()
    info = snapshot_store(store, tmp_path / "s.chsnap", genesis_hash=GENESIS)
    assert info.records == 50 and info.size == os.path.getsize(tmp_path / "s.chsnap")
    header = read_snapshot_header(tmp_path / "s.chsnap")
    assert (header.height, header.state_root, header.genesis_hash) == (12, store.root, GENESIS)
    loaded, info2 = load_snapshot(
        tmp_path / "s.chsnap", expected_root=store.root, expected_height=12, expected_genesis_hash=GENESIS
    )
    assert loaded.root == store.root and loaded.height == 12
    assert list(loaded.iter_all()) == list(store.iter_all())
    assert info2.checksum == info.checksum
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]  # written through a temporary file


def test_layout_is_as_documented(tmp_path) -> None:
    path = tmp_path / "s.chsnap"
    store = MemoryStore.from_records(3, [(b"ab", b"xyz")])
    write_snapshot(path, genesis_hash=GENESIS, height=3, state_root=store.root, records=store.iter_all())
    raw = path.read_bytes()
    assert raw[:8] == MAGIC == bytes.fromhex("4348534e500d0a1a")
    assert raw[8:16] == b"\x00\x01" + bytes(6)
    assert raw[16:48] == GENESIS and raw[48:56] == (3).to_bytes(8, "big") and raw[56:88] == store.root
    assert raw[88:96] == b"\x02ab\x03xyz\x00"  # key length, key, value length, value; end marker
    assert raw[96:104] == (1).to_bytes(8, "big") and len(raw) == 104 + 32


def test_empty_state(tmp_path) -> None:
    empty = MemoryStore.from_records(0, [])
    snapshot_store(empty, tmp_path / "e.chsnap", genesis_hash=GENESIS)
    loaded, info = load_snapshot(tmp_path / "e.chsnap", expected_root=bytes(32))
    assert info.records == 0 and loaded.root == bytes(32)


def test_varints() -> None:
    assert encode_varint(0) == b"\x00" and encode_varint(127) == b"\x7f"
    assert encode_varint(128) == b"\x80\x01" and encode_varint(300) == b"\xac\x02"


def test_writer_refuses_unsorted_records(tmp_path) -> None:
    with pytest.raises(ValueError):
        write_snapshot(
            tmp_path / "s.chsnap",
            genesis_hash=GENESIS,
            height=1,
            state_root=bytes(32),
            records=[(b"b", b""), (b"a", b"")],
        )
    assert not os.listdir(tmp_path)  # nothing left behind


def _rewrite(path, raw: bytes, *, fix_checksum: bool) -> None:
    if fix_checksum:
        from blake3 import blake3

        from state.snapshot import SNAPSHOT_DOMAIN

        raw = raw[:-32] + blake3(SNAPSHOT_DOMAIN + raw[:-32]).digest()
    path.write_bytes(raw)


@pytest.mark.parametrize(
    "damage, error",
    [
        (lambda raw: b"XXXXXXXX" + raw[8:], SnapshotFormatError),
        (lambda raw: raw[:8] + b"\x00\x02" + raw[10:], SnapshotVersionError),
        (lambda raw: raw[:12] + b"\x01" + raw[13:], SnapshotFormatError),
        (lambda raw: raw[:-1], SnapshotTruncated),  # one byte short
        (lambda raw: raw[: HEADER_SIZE + 10], SnapshotTruncated),
        (lambda raw: raw[:40], SnapshotTruncated),
        (lambda raw: raw + b"\x00", SnapshotFormatError),  # trailing byte
        (lambda raw: raw[:200] + bytes([raw[200] ^ 1]) + raw[201:], SnapshotChecksumMismatch),
        (lambda raw: raw[:-1] + bytes([raw[-1] ^ 1]), SnapshotChecksumMismatch),
    ],
)
def test_damage_is_refused_with_a_typed_error(tmp_path, damage, error) -> None:
    path = tmp_path / "s.chsnap"
    store = _store()
    snapshot_store(store, path, genesis_hash=GENESIS)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(error) as exc:
        load_snapshot(path, expected_root=store.root)
    assert exc.value.code.startswith("SNAPSHOT_")


def test_structural_errors_behind_a_valid_checksum(tmp_path) -> None:
    """Order, count and varint form are checked even when the checksum was recomputed to match."""
    path = tmp_path / "s.chsnap"
    store = MemoryStore.from_records(1, [(b"a", b"1"), (b"b", b"2")])
    snapshot_store(store, path, genesis_hash=GENESIS)
    raw = path.read_bytes()
    body = raw[HEADER_SIZE:]
    assert body[:6] == b"\x01a\x011\x01b"
    for bad_body in (
        b"\x01b\x012\x01a\x011" + body[8:],  # keys out of order
        body[:-40] + (3).to_bytes(8, "big") + body[-32:],  # wrong record count
        b"\x81\x00" + body[1:],  # a key length not in shortest form
    ):
        _rewrite(path, raw[:HEADER_SIZE] + bad_body, fix_checksum=True)
        with pytest.raises(SnapshotFormatError):
            read_snapshot(path)


def test_a_changed_record_is_refused_even_with_checksum_and_claimed_root_recomputed(tmp_path) -> None:
    """Snapshots are untrusted: only the root the caller trusts (the header's) counts."""
    store = _store()
    path = tmp_path / "s.chsnap"
    items = list(store.iter_all())
    items[10] = (items[10][0], b"forged")
    forged = MemoryStore.from_records(12, items)
    write_snapshot(
        path, genesis_hash=GENESIS, height=12, state_root=store.root, records=items
    )  # claims the honest root
    with pytest.raises(SnapshotRootMismatch, match="claims"):
        load_snapshot(path, expected_root=None)
    with pytest.raises(SnapshotRootMismatch, match="header"):
        load_snapshot(path, expected_root=store.root)
    write_snapshot(path, genesis_hash=GENESIS, height=12, state_root=forged.root, records=items)  # consistent forgery
    load_snapshot(path, expected_root=None)  # internally consistent...
    with pytest.raises(SnapshotRootMismatch) as exc:
        load_snapshot(path, expected_root=store.root)  # ...but not the state the header commits to
    assert exc.value.code == "SNAPSHOT_ROOT" and exc.value.got == forged.root


def test_wrong_height_or_chain(tmp_path) -> None:
    store = _store()
    snapshot_store(store, tmp_path / "s.chsnap", genesis_hash=GENESIS)
    with pytest.raises(SnapshotMismatch):
        load_snapshot(tmp_path / "s.chsnap", expected_root=store.root, expected_height=13)
    with pytest.raises(SnapshotMismatch):
        load_snapshot(tmp_path / "s.chsnap", expected_root=store.root, expected_genesis_hash=bytes(32))


def _account_records(n: int) -> list[tuple[bytes, bytes]]:
    """``n`` account-like records: ``"A" || address`` -> a small msgpack array (cash, markets, orders)."""
    from blake3 import blake3

    out = []
    for i in range(n):
        address = blake3(i.to_bytes(8, "big")).digest()[:20]
        out.append((b"A" + address, b"\x93\xce" + (1_000_000 + i).to_bytes(4, "big") + b"\x90\x00"))
    out.sort()
    return out


def test_snapshot_of_100k_accounts_round_trips(tmp_path) -> None:
    records = _account_records(100_000)
    store = MemoryStore.from_records(5_000, records)
    path = tmp_path / "big.chsnap"
    t0 = time.perf_counter()
    info = snapshot_store(store, path, genesis_hash=GENESIS)
    t1 = time.perf_counter()
    loaded, _ = load_snapshot(path, expected_root=store.root, expected_height=5_000, expected_genesis_hash=GENESIS)
    t2 = time.perf_counter()
    assert info.records == 100_000 and loaded.root == store.root
    assert list(loaded.iter_all()) == records
    probe = records[12_345][0]
    assert loaded.get(probe) == store.get(probe) and loaded.prove(probe) == store.prove(probe)
    print(f"10^5 accounts: {info.size:,} bytes, write {t1 - t0:.2f} s, load (checksum + tree) {t2 - t1:.2f} s")


# ---------------------------------------------------------------- log frame index
def _small_log(path, n: int = 6) -> list[bytes]:
    payloads = [b"g" * 3] + [bytes([i]) * (i * 7) for i in range(1, n)]
    with LogWriter(path, create=True) as w:
        w.append(FRAME_GENESIS, payloads[0])
        for p in payloads[1:]:
            w.append(FRAME_BLOCK, p)
    return payloads


def test_index_frames_and_seeking(tmp_path) -> None:
    path = tmp_path / "x.log"
    payloads = _small_log(path)
    frames = list(read_log(path))
    offsets = index_frames(path)
    assert offsets == [f.offset for f in frames]
    for i, offset in enumerate(offsets):
        tail = list(read_log(path, start=(i, offset)))
        assert [f.payload for f in tail] == payloads[i:]
        assert [f.index for f in tail] == list(range(i, len(payloads)))


def test_index_frames_torn_tail_and_seek_checks(tmp_path) -> None:
    path = tmp_path / "x.log"
    _small_log(path)
    offsets = index_frames(path)
    raw = path.read_bytes()
    path.write_bytes(raw[:-3])
    with pytest.raises(TruncatedLog) as exc:
        index_frames(path)
    assert exc.value.frame_index == len(offsets) - 1
    # Seeking does not skip the checks of what is read there.
    damaged = bytearray(raw)
    damaged[offsets[3] + 6] ^= 1
    path.write_bytes(bytes(damaged))
    assert index_frames(path) == offsets  # the index does not read payloads
    with pytest.raises(ChecksumMismatch) as exc2:
        list(read_log(path, start=(3, offsets[3])))
    assert exc2.value.frame_index == 3
