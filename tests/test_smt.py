"""
Tests of the sparse Merkle tree (``state.smt``) and its proofs (``state.proof``).

The incremental tree is checked against ``naive_root`` (the from-scratch oracle)
after every batch, and its node storage against a tree built in one batch (so
stale or misplaced nodes are caught even when the root happens to be right).

Run ``python tests/test_smt.py --write-vectors`` to regenerate
``fixtures/smt_vectors.json`` (only when the rules change on purpose).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any
from unittest import mock

import msgspec
import pytest
from blake3 import blake3
from hypothesis import given
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import state.smt as smt  # noqa: E402
from state.errors import CorruptStore, KeyHashCollision, ProofDecodeError, StateError  # noqa: E402
from state.proof import Proof, build_proof, is_well_formed, verify_proof  # noqa: E402
from state.smt import (  # noqa: E402
    EMPTY,
    KEY_DOMAIN,
    MAX_LEAF_DEPTH,
    ROOT_PATH,
    VALUE_DOMAIN,
    SparseMerkleTree,
    _Updater,
    compute_update,
    encode_internal,
    encode_leaf,
    internal_hash,
    key_bit,
    key_hash,
    leaf_hash,
    naive_root,
    node_path,
    value_hash,
)

VECTORS_PATH = Path(__file__).resolve().parent.parent / "fixtures" / "smt_vectors.json"

KEYS = [b"k%d" % i for i in range(24)]
"""Small key alphabet, so random batches hit updates, re-inserts and deletes often."""

values = st.binary(max_size=4)
changes_st = st.dictionaries(st.sampled_from(KEYS), st.none() | values, max_size=12)
batches_st = st.lists(changes_st, min_size=1, max_size=10)


def prove(tree: SparseMerkleTree, key: bytes) -> Proof:
    """A proof for ``key`` against ``tree``'s root (``state.proof`` builds proofs; the tree only stores)."""
    return build_proof(tree.nodes.get_node, tree.root, key)


def apply_model(model: dict[bytes, bytes], changes: dict[bytes, bytes | None]) -> None:
    """Apply a change batch to a plain dict (the reference model)."""
    for key, value in changes.items():
        if value is None:
            model.pop(key, None)
        else:
            model[key] = value


def fresh_nodes(items: dict[bytes, bytes]) -> dict[bytes, bytes]:
    """Return the node map of a tree built from ``items`` in a single batch."""
    tree = SparseMerkleTree()
    tree.apply(items)
    return tree.nodes.nodes  # type: ignore[attr-defined]


def shared_prefix_keys(bits: int, count: int, stem: bytes = b"p") -> list[bytes]:
    """
    Return ``count`` keys whose key hashes all share their first ``bits`` bits.

    Found by deterministic search; forces chains of internal nodes with an EMPTY
    child, the shape where compaction and collapse bugs hide.
    """
    groups: dict[int, list[bytes]] = {}
    i = 0
    while True:
        key = stem + b"%d" % i
        top = int.from_bytes(key_hash(key), "big") >> (256 - bits)
        group = groups.setdefault(top, [])
        group.append(key)
        if len(group) == count:
            return group
        i += 1


# --------------------------------------------------------------------------- hashing rules


def test_hash_definitions() -> None:
    assert KEY_DOMAIN == b"clearinghouse/smt/key/v1\x00"
    assert VALUE_DOMAIN == b"clearinghouse/smt/value/v1\x00"
    assert EMPTY == bytes(32)
    assert key_hash(b"abc") == blake3(KEY_DOMAIN + b"abc").digest()
    assert value_hash(b"xyz") == blake3(VALUE_DOMAIN + b"xyz").digest()
    kh, vh = key_hash(b"a"), value_hash(b"b")
    assert leaf_hash(kh, vh) == blake3(b"\x00" + kh + vh).digest()
    assert internal_hash(kh, vh) == blake3(b"\x01" + kh + vh).digest()
    # Records double as hash preimages (leaf: first 65 bytes).
    assert blake3(encode_leaf(kh, vh, b"a")[:65]).digest() == leaf_hash(kh, vh)
    assert blake3(encode_internal(kh, vh)).digest() == internal_hash(kh, vh)


def test_key_bit_is_msb_first() -> None:
    kh = bytes([0b1010_0000]) + bytes(30) + bytes([0b0000_0001])
    assert [key_bit(kh, d) for d in range(4)] == [1, 0, 1, 0]
    assert key_bit(kh, 255) == 1 and key_bit(kh, 254) == 0


def test_node_path_encoding() -> None:
    kh = bytes([0xFF, 0xFF]) + bytes(30)
    assert node_path(0, kh) == ROOT_PATH == b"\x00"
    assert node_path(1, kh) == b"\x01\x80"
    assert node_path(8, kh) == b"\x08\xff"
    assert node_path(9, kh) == b"\x09\xff\x80"
    assert node_path(255, kh) == b"\xff" + bytes([0xFF, 0xFF]) + bytes(30)


# --------------------------------------------------------------------------- oracle


def test_naive_root_small_cases() -> None:
    assert naive_root({}) == EMPTY
    assert naive_root({b"a": b"1"}) == leaf_hash(key_hash(b"a"), value_hash(b"1"))
    # Two keys: the root is an internal node at the depth of their first differing
    # bit, under a chain of internal nodes with one EMPTY child.
    a, b = key_hash(b"a"), key_hash(b"b")
    split = next(d for d in range(256) if key_bit(a, d) != key_bit(b, d))
    la, lb = leaf_hash(a, value_hash(b"1")), leaf_hash(b, value_hash(b"2"))
    node = internal_hash(la, lb) if key_bit(a, split) == 0 else internal_hash(lb, la)
    for d in range(split - 1, -1, -1):
        node = internal_hash(node, EMPTY) if key_bit(a, d) == 0 else internal_hash(EMPTY, node)
    assert naive_root({b"a": b"1", b"b": b"2"}) == node


def test_empty_value_differs_from_absent() -> None:
    assert naive_root({b"a": b""}) != EMPTY
    assert naive_root({b"a": b""}) != naive_root({b"a": b"\x00"})


# --------------------------------------------------------------------------- incremental tree


@given(batches_st)
def test_incremental_matches_oracle(batches: list[dict[bytes, bytes | None]]) -> None:
    tree = SparseMerkleTree()
    model: dict[bytes, bytes] = {}
    for changes in batches:
        root = tree.apply(changes)
        apply_model(model, changes)
        assert root == tree.root == naive_root(model)
        assert tree.nodes.nodes == fresh_nodes(model)  # type: ignore[attr-defined]


@given(st.lists(st.tuples(st.sampled_from(KEYS), st.none() | values), max_size=40), st.data())
def test_order_and_batching_independence(ops: list[tuple[bytes, bytes | None]], data: st.DataObject) -> None:
    """Any split of one op sequence into consecutive batches reaches the same root."""
    final: dict[bytes, bytes] = {}
    for key, value in ops:
        apply_model(final, {key: value})
    cuts = sorted(data.draw(st.sets(st.integers(0, len(ops)))))
    tree = SparseMerkleTree()
    start = 0
    for cut in [*cuts, len(ops)]:
        batch: dict[bytes, bytes | None] = {}
        for key, value in ops[start:cut]:
            batch[key] = value  # later ops in a batch override earlier ones, as in sequence
        tree.apply(batch)
        start = cut
    one_by_one = SparseMerkleTree()
    for key in data.draw(st.permutations(sorted(final))):
        one_by_one.apply({key: final[key]})
    assert tree.root == one_by_one.root == naive_root(final)


@pytest.mark.parametrize("compiled_spelling", [False, True], ids=["int-paths", "byte-paths"])
@given(batches=batches_st, deep=st.sampled_from([0, 9, 14]))
def test_walk_path_spellings_agree(
    compiled_spelling: bool, batches: list[dict[bytes, bytes | None]], deep: int
) -> None:
    """
    The walk down spells node paths two ways (``state.smt.COMPILED``): both give the oracle's root and nodes.

    Interpreted runs use the integer spelling; the mypyc build uses the byte spelling,
    exercised here without a compiler by switching the flag (a module global read per
    walk). ``deep`` adds keys sharing that many hash bits, so paths end mid-byte below depth 8.
    """
    with mock.patch.object(smt, "COMPILED", compiled_spelling):
        tree = SparseMerkleTree()
        model: dict[bytes, bytes] = {}
        extra: dict[bytes, bytes | None] = {k: b"deep" for k in shared_prefix_keys(deep, 3)} if deep else {}
        for changes in [extra, *batches, {k: None for k in extra}]:
            tree.apply(changes)
            apply_model(model, changes)
            assert tree.root == naive_root(model)
            assert tree.nodes.nodes == fresh_nodes(model)  # type: ignore[attr-defined]


def test_many_keys_insert_update_delete() -> None:
    keys = [b"acct/%d" % i for i in range(300)]
    tree = SparseMerkleTree()
    model: dict[bytes, bytes] = {}
    for start in range(0, 300, 37):  # uneven batches
        batch = {k: b"v1" + k for k in keys[start : start + 37]}
        tree.apply(batch)
        apply_model(model, batch)
        assert tree.root == naive_root(model)
    update = {k: b"v2" for k in keys[::3]}
    tree.apply(update)
    apply_model(model, update)
    assert tree.root == naive_root(model)
    for start in range(0, 300, 41):
        batch = {k: None for k in keys[start : start + 41 : 2]}
        tree.apply(batch)
        apply_model(model, batch)
        assert tree.root == naive_root(model)
        assert tree.nodes.nodes == fresh_nodes(model)  # type: ignore[attr-defined]
    tree.apply({k: None for k in keys})
    assert tree.root == EMPTY
    assert tree.nodes.nodes == {}  # type: ignore[attr-defined]


def test_long_shared_prefix_collapse() -> None:
    """Keys sharing 14 hash bits: deep chains of one-EMPTY-child nodes, then collapse."""
    a, b, c = shared_prefix_keys(14, 3)
    tree = SparseMerkleTree()
    tree.apply({a: b"1", b: b"2", c: b"3"})
    assert tree.root == naive_root({a: b"1", b: b"2", c: b"3"})
    assert len(tree.nodes.nodes) >= 14 + 3  # type: ignore[attr-defined]
    tree.apply({b: None, c: None})
    assert tree.root == leaf_hash(key_hash(a), value_hash(b"1"))
    assert tree.nodes.nodes == {ROOT_PATH: encode_leaf(key_hash(a), value_hash(b"1"), a)}  # type: ignore[attr-defined]
    tree.apply({a: None, b: b"x"})  # delete the last leaf and insert another at once
    assert tree.root == naive_root({b: b"x"})
    assert list(tree.nodes.nodes) == [ROOT_PATH]  # type: ignore[attr-defined]


def diverging_key(kh: bytes, bits: int) -> bytes:
    """Return a key whose hash shares exactly its first ``bits`` bits with ``kh`` (deterministic search)."""
    want = int.from_bytes(kh, "big") >> (255 - bits)  # the shared bits, then the other value of bit ``bits``
    i = 0
    while True:
        key = b"d%d" % i
        if int.from_bytes(key_hash(key), "big") >> (255 - bits) == want ^ 1:
            return key
        i += 1


@pytest.mark.parametrize("bits", [0, 3, 7, 11], ids=["at-root", "depth-3", "depth-7", "depth-11"])
def test_new_key_in_an_empty_slot_of_a_chain(bits: int) -> None:
    """
    A new key lands in the EMPTY child of a chain node (two keys sharing 14 bits above).

    The walk back up is the plain rewrite (nothing can collapse: the chain node's
    other child holds two leaves); the nodes must equal a fresh build's, and deleting
    the key again must restore the chain exactly.
    """
    a, b = shared_prefix_keys(14, 2)
    c = diverging_key(key_hash(a), bits)
    tree = SparseMerkleTree()
    tree.apply({a: b"1", b: b"2"})
    before = dict(tree.nodes.nodes)  # type: ignore[attr-defined]
    assert len(tree.compute_update({c: b"3"}).node_writes) == bits + 2  # the path down to it, and its leaf
    tree.apply({c: b"3"})
    assert tree.root == naive_root({a: b"1", b: b"2", c: b"3"})
    assert tree.nodes.nodes == fresh_nodes({a: b"1", b: b"2", c: b"3"})  # type: ignore[attr-defined]
    tree.apply({c: None})
    assert tree.nodes.nodes == before  # type: ignore[attr-defined]


def test_delete_absent_and_rewrite_same_are_noops() -> None:
    tree = SparseMerkleTree()
    assert tree.apply({b"a": None}) == EMPTY
    tree.apply({b"a": b"1", b"b": b"2"})
    before = dict(tree.nodes.nodes)  # type: ignore[attr-defined]
    update = tree.compute_update({b"zz": None, b"a": b"1"})
    assert update.node_writes == ()
    assert update.root == tree.root
    tree.apply({b"zz": None})
    assert tree.nodes.nodes == before  # type: ignore[attr-defined]


def test_update_writes_are_sorted_and_proportional() -> None:
    """A one-key update rewrites about one path, never the whole tree."""
    tree = SparseMerkleTree()
    tree.apply({b"acct/%d" % i: b"v" for i in range(2000)})
    update = tree.compute_update({b"acct/7": b"w"})
    paths = [path for path, _ in update.node_writes]
    assert paths == sorted(paths)
    assert 1 <= len(paths) <= 40


WIDE_KEYS = [b"w%d" % i for i in range(200)]
"""A larger alphabet: batches mix shared upper levels with keys alone in their subtree."""


@given(
    st.lists(
        st.dictionaries(st.sampled_from(WIDE_KEYS), st.none() | values, max_size=60),
        min_size=1,
        max_size=6,
    )
)
def test_writes_sorted_and_unique_with_deletes(
    batches: list[dict[bytes, bytes | None]],
) -> None:
    """
    Every batch's writes are strictly sorted by path (no duplicates), including
    batches whose deletes collapse leaves upwards, and applying them gives exactly
    the nodes of a tree built from scratch.
    """
    tree = SparseMerkleTree()
    model: dict[bytes, bytes] = {}
    for changes in batches:
        update = tree.compute_update(changes)
        paths = [path for path, _ in update.node_writes]
        assert all(a < b for a, b in zip(paths, paths[1:]))
        tree.apply(changes)
        apply_model(model, changes)
        assert tree.root == naive_root(model)
        assert tree.nodes.nodes == fresh_nodes(model)  # type: ignore[attr-defined]


def test_concurrent_updates_in_threads() -> None:
    """Each update hashes with its own hasher: threads computing updates do not interfere."""
    import threading

    base = {b"acct/%d" % i: b"v" for i in range(500)}
    tree = SparseMerkleTree()
    tree.apply(base)
    batches = [{b"acct/%d" % i: b"t%d" % t for i in range(t, 500, 7)} for t in range(6)]
    expected = [naive_root({**base, **batch}) for batch in batches]
    got: list[list[bytes]] = [[] for _ in batches]

    def work(t: int) -> None:
        for _ in range(20):
            got[t].append(tree.compute_update(batches[t]).root)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(roots == [expected[t]] * 20 for t, roots in enumerate(got))


def test_missing_node_raises_corrupt_store() -> None:
    with pytest.raises(CorruptStore):
        compute_update(lambda path: None, internal_hash(b"\x01" * 32, b"\x02" * 32), {b"a": b"1"})
    for bad_record in (b"\x07" * 65, b"\x01" * 66, b"\x00" * 64):
        for batch in ({b"a": b"1"}, {b"a": b"1", b"b": b"2"}):
            with pytest.raises(CorruptStore):
                compute_update(lambda path: bad_record, b"\x05" * 32, batch)
    # An internal-node cycle (every path answers "internal") is caught at depth 255.
    endless = encode_internal(b"\x03" * 32, b"\x04" * 32)
    with pytest.raises(CorruptStore):
        compute_update(lambda path: endless, b"\x05" * 32, {b"a": b"1"})
    with pytest.raises(CorruptStore):
        build_proof(lambda path: endless, b"\x05" * 32, b"a")


def test_key_hash_collision_is_refused() -> None:
    """Two key hashes differing only in bit 255 would need a node at depth 256."""
    kh1, kh2 = bytes(32), bytes(31) + b"\x01"
    entries = [(int.from_bytes(kh, "big"), kh, encode_leaf(kh, EMPTY, b"x"), leaf_hash(kh, EMPTY)) for kh in (kh1, kh2)]
    updater = _Updater(lambda path: None, entries, {})
    with pytest.raises(KeyHashCollision) as info:
        updater.build(0, 0, entries)
    assert info.value.code == "KEY_HASH_COLLISION"
    assert isinstance(info.value, StateError)
    assert MAX_LEAF_DEPTH == 255


# --------------------------------------------------------------------------- proofs


def proof_tree(items: dict[bytes, bytes]) -> SparseMerkleTree:
    """Return a tree holding ``items``."""
    tree = SparseMerkleTree()
    tree.apply(items)
    return tree


@given(st.dictionaries(st.sampled_from(KEYS), values, max_size=20))
def test_proofs_verify_for_present_and_absent_keys(items: dict[bytes, bytes]) -> None:
    tree = proof_tree(items)
    for key in KEYS:
        proof = prove(tree, key)
        assert is_well_formed(proof)
        assert Proof.from_bytes(proof.to_bytes()) == proof
        assert Proof.from_json_obj(json.loads(json.dumps(proof.to_json_obj()))) == proof
        if key in items:
            assert verify_proof(tree.root, key, items[key], proof)
            assert not verify_proof(tree.root, key, None, proof)
            assert not verify_proof(tree.root, key, items[key] + b"!", proof)
        else:
            assert verify_proof(tree.root, key, None, proof)
            assert not verify_proof(tree.root, key, b"", proof)


@given(
    st.dictionaries(st.sampled_from(KEYS), values, max_size=20),
    st.sampled_from(KEYS),
    st.sampled_from(KEYS),
    st.none() | values,
)
def test_proofs_are_sound(items: dict[bytes, bytes], proved: bytes, claimed: bytes, value: bytes | None) -> None:
    """A proof obtained for any key verifies a claim only if the claim is true."""
    tree = proof_tree(items)
    if verify_proof(tree.root, claimed, value, prove(tree, proved)):
        assert items.get(claimed) == value


def flip(data: bytes, index: int, mask: int = 0x01) -> bytes:
    """Return ``data`` with one byte XOR-ed by ``mask``."""
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


def test_tampering_breaks_proofs() -> None:
    items = {b"acct/%d" % i: b"value %d" % i for i in range(40)}
    tree = proof_tree(items)
    root = tree.root
    key = b"acct/17"
    value = items[key]
    proof = prove(tree, key)
    assert verify_proof(root, key, value, proof)
    assert proof.siblings, "a 40-key tree has siblings on every path"
    for i in range(len(value)):
        assert not verify_proof(root, key, flip(value, i), proof)
    assert not verify_proof(root, key, value + b"\x00", proof)
    for i in range(len(key)):
        assert not verify_proof(root, flip(key, i), value, proof)
    for i in range(32):
        assert not verify_proof(flip(root, i), key, value, proof)
    for n, sibling in enumerate(proof.siblings):
        for i in range(32):
            siblings = list(proof.siblings)
            siblings[n] = flip(sibling, i)
            tampered = msgspec.structs.replace(proof, siblings=tuple(siblings))
            assert not verify_proof(root, key, value, tampered)
    for bit in range(len(proof.bitmap) * 8):
        tampered = msgspec.structs.replace(proof, bitmap=flip(proof.bitmap, bit // 8, 0x80 >> (bit % 8)))
        assert not verify_proof(root, key, value, tampered)
    for depth in (proof.depth - 1, proof.depth + 1):
        assert not verify_proof(root, key, value, msgspec.structs.replace(proof, depth=depth))
    raw = proof.to_bytes()
    for i in range(len(raw)):
        for mask in (0x01, 0x80):
            try:
                decoded = Proof.from_bytes(flip(raw, i, mask))
            except ProofDecodeError:
                continue
            assert not verify_proof(root, key, value, decoded)


def test_non_inclusion_proofs_both_kinds_and_tampering() -> None:
    items = {b"acct/%d" % i: b"v" for i in range(12)}
    tree = proof_tree(items)
    kinds: dict[str, tuple[bytes, Proof]] = {}
    for i in range(500):
        key = b"absent/%d" % i
        proof = prove(tree, key)
        kinds.setdefault("leaf" if proof.leaf_key_hash else "empty", (key, proof))
    assert set(kinds) == {"leaf", "empty"}
    for key, proof in kinds.values():
        assert verify_proof(tree.root, key, None, proof)
        for present in items:
            assert not verify_proof(tree.root, present, None, proof)
    key, proof = kinds["leaf"]
    for field in ("leaf_key_hash", "leaf_value_hash"):
        for i in range(32):
            tampered = msgspec.structs.replace(proof, **{field: flip(getattr(proof, field), i)})
            assert not verify_proof(tree.root, key, None, tampered)
    # The occupying leaf must not be the key itself (that would be inclusion).
    own = msgspec.structs.replace(proof, leaf_key_hash=key_hash(key))
    assert not verify_proof(tree.root, key, None, own)


def test_empty_tree_proof() -> None:
    proof = build_proof(lambda path: None, EMPTY, b"anything")
    assert proof == Proof(0, b"", (), b"", b"")
    assert verify_proof(EMPTY, b"anything", None, proof)
    assert not verify_proof(EMPTY, b"anything", b"", proof)
    assert proof.to_bytes() == bytes([0x95, 0x00, 0xC4, 0x00, 0x90, 0xC4, 0x00, 0xC4, 0x00])


def test_non_canonical_proof_bytes_rejected() -> None:
    tree = proof_tree({b"acct/%d" % i: b"v" for i in range(30)})
    proof = prove(tree, b"acct/3")
    raw = proof.to_bytes()
    assert raw[0] == 0x95 and raw[1] == proof.depth  # fixarray(5), positive fixint depth
    # Same depth as uint8 / uint64: decodes, but is not canonical.
    for wide in (bytes([0xCC, proof.depth]), b"\xcf" + proof.depth.to_bytes(8, "big")):
        with pytest.raises(ProofDecodeError):
            Proof.from_bytes(raw[:1] + wide + raw[2:])
    # Array with a 16-bit length header, trailing garbage, extra element, truncation.
    for bad in (b"\xdc\x00\x05" + raw[1:], raw + b"\x00", b"\x96" + raw[1:] + b"\xc0", raw[:-1], b""):
        with pytest.raises(ProofDecodeError):
            Proof.from_bytes(bad)
    # Bitmap padding bits set: canonical msgpack, but an inconsistent proof.
    short = Proof(3, b"\x1f", (), b"", b"")
    with pytest.raises(ProofDecodeError):
        Proof.from_bytes(msgspec.msgpack.encode(short))
    assert not verify_proof(tree.root, b"acct/3", b"v", short)


def test_from_json_obj_rejects_malformed() -> None:
    good = prove(proof_tree({b"a": b"1", b"b": b"2"}), b"a").to_json_obj()
    bad_objs: list[Any] = [
        [],
        {**good, "extra": 1},
        {k: v for k, v in good.items() if k != "depth"},
        {**good, "bitmap": "zz"},
        {**good, "bitmap": "AB"},
        {**good, "siblings": ["00" * 31]},
        {**good, "depth": -1},
        {**good, "depth": "1"},
    ]
    for obj in bad_objs:
        with pytest.raises(ProofDecodeError):
            Proof.from_json_obj(obj)


any_bytes = st.binary(max_size=40)
hash_like = st.one_of(st.binary(min_size=32, max_size=32), any_bytes, st.just(EMPTY))
weird = st.one_of(st.none(), st.integers(), st.text(max_size=3), st.lists(any_bytes, max_size=3))


@given(
    root=st.one_of(hash_like, weird),
    key=st.one_of(any_bytes, weird),
    value=st.one_of(st.none(), any_bytes, weird),
    depth=st.one_of(st.integers(-3, 300), weird, st.booleans()),
    bitmap=st.one_of(any_bytes, weird),
    siblings=st.one_of(st.lists(hash_like, max_size=5).map(tuple), weird),
    leaf_key=st.one_of(hash_like, weird),
    leaf_value=st.one_of(hash_like, weird),
)
def test_verify_never_raises(
    root: Any, key: Any, value: Any, depth: Any, bitmap: Any, siblings: Any, leaf_key: Any, leaf_value: Any
) -> None:
    proof = Proof(depth, bitmap, siblings, leaf_key, leaf_value)
    assert verify_proof(root, key, value, proof) in (True, False)
    assert verify_proof(root, key, value, "not a proof") is False  # type: ignore[arg-type]


@given(st.binary(max_size=200))
def test_from_bytes_only_raises_proof_decode_error(raw: bytes) -> None:
    try:
        proof = Proof.from_bytes(raw)
    except ProofDecodeError:
        return
    assert proof.to_bytes() == raw and is_well_formed(proof)


# --------------------------------------------------------------------------- known-answer vectors


def _hex_items(items: dict[bytes, bytes]) -> list[list[str]]:
    """Items as sorted ``[key_hex, value_hex]`` pairs (order-free, JSON friendly)."""
    return [[k.hex(), v.hex()] for k, v in sorted(items.items())]


def build_vectors() -> dict[str, Any]:
    """
    Build the known-answer vectors from the current implementation.

    Everything is derived deterministically, so regenerating with unchanged rules
    reproduces the committed file byte for byte.
    """
    named_maps: dict[str, dict[bytes, bytes]] = {
        "empty": {},
        "single": {b"acct/alice": b"100"},
        "single_empty_value": {b"acct/alice": b""},
        "two": {b"acct/alice": b"100", b"acct/bob": b"250"},
        "shared_prefix_12_bits": {k: b"v:" + k for k in shared_prefix_keys(12, 3)},
        "sixteen": {b"acct/%d" % i: b"balance=%d" % (i * 7) for i in range(16)},
    }
    roots = [
        {"name": name, "items": _hex_items(items), "root": naive_root(items).hex()}
        for name, items in named_maps.items()
    ]

    hashes = []
    for key, value in [(b"acct/alice", b"100"), (b"", b""), (b"\x00\xff", b"\x01")]:
        kh, vh = key_hash(key), value_hash(value)
        hashes.append(
            {
                "key": key.hex(),
                "value": value.hex(),
                "key_hash": kh.hex(),
                "value_hash": vh.hex(),
                "leaf_hash": leaf_hash(kh, vh).hex(),
            }
        )

    # An update sequence exercising inserts, updates, deletes and collapse.
    deep = shared_prefix_keys(12, 3)
    sequence: list[dict[bytes, bytes | None]] = [
        {b"acct/%d" % i: b"v1" for i in range(8)} | {k: b"deep" for k in deep},
        {b"acct/1": b"v2", b"acct/2": None, b"acct/99": None, deep[0]: None},
        {deep[1]: None, b"acct/8": b"new"},
        {b"acct/%d" % i: None for i in range(9)} | {deep[2]: b"last"},
        {deep[2]: None},
    ]
    tree = SparseMerkleTree()
    steps = []
    for changes in sequence:
        root = tree.apply(changes)
        steps.append(
            {
                "changes": [[k.hex(), None if v is None else v.hex()] for k, v in sorted(changes.items())],
                "root": root.hex(),
            }
        )

    proofs = []
    sixteen = named_maps["sixteen"]
    tree = proof_tree(sixteen)
    cases: list[tuple[str, bytes, bytes | None]] = [("inclusion", b"acct/5", sixteen[b"acct/5"])]
    found: dict[str, bytes] = {}
    for i in range(1000):
        key = b"absent/%d" % i
        kind = "non_inclusion_other_leaf" if prove(tree, key).leaf_key_hash else "non_inclusion_empty_slot"
        found.setdefault(kind, key)
    cases += [(kind, key, None) for kind, key in sorted(found.items())]
    for kind, key, value in cases:
        proof = prove(tree, key)
        proofs.append(
            {
                "name": kind,
                "tree": "sixteen",
                "root": tree.root.hex(),
                "key": key.hex(),
                "value": None if value is None else value.hex(),
                "proof": proof.to_json_obj(),
                "proof_bytes": proof.to_bytes().hex(),
                "valid": True,
            }
        )

    return {
        "description": "Known-answer vectors for the clearinghouse sparse Merkle tree "
        "(see docs/state-commitment.md). Byte strings are lowercase hex; items are "
        "[key, value] pairs; a null value in a change deletes the key.",
        "version": 1,
        "constants": {
            "key_domain": KEY_DOMAIN.hex(),
            "value_domain": VALUE_DOMAIN.hex(),
            "empty": EMPTY.hex(),
        },
        "hashes": hashes,
        "roots": roots,
        "sequence": steps,
        "proofs": proofs,
    }


def render_vectors() -> str:
    """Serialise the vectors exactly as stored in the fixture file."""
    return json.dumps(build_vectors(), indent=2, sort_keys=True) + "\n"


def test_vectors_file_matches_implementation() -> None:
    assert VECTORS_PATH.exists(), "run: python tests/test_smt.py --write-vectors"
    assert VECTORS_PATH.read_text() == render_vectors()


def test_vectors_file_is_self_consistent() -> None:
    """Check the file the way a porting team would: from its own contents only."""
    vectors = json.loads(VECTORS_PATH.read_text())
    for case in vectors["hashes"]:
        key, value = bytes.fromhex(case["key"]), bytes.fromhex(case["value"])
        assert key_hash(key).hex() == case["key_hash"]
        assert value_hash(value).hex() == case["value_hash"]
        assert leaf_hash(key_hash(key), value_hash(value)).hex() == case["leaf_hash"]
    for case in vectors["roots"]:
        items = {bytes.fromhex(k): bytes.fromhex(v) for k, v in case["items"]}
        assert naive_root(items).hex() == case["root"]
        assert proof_tree(items).root.hex() == case["root"]
    tree = SparseMerkleTree()
    model: dict[bytes, bytes] = {}
    for step in vectors["sequence"]:
        changes = {bytes.fromhex(k): None if v is None else bytes.fromhex(v) for k, v in step["changes"]}
        apply_model(model, changes)
        assert tree.apply(changes).hex() == step["root"] == naive_root(model).hex()
    assert vectors["sequence"][-1]["root"] == EMPTY.hex()
    for case in vectors["proofs"]:
        proof = Proof.from_bytes(bytes.fromhex(case["proof_bytes"]))
        assert Proof.from_json_obj(case["proof"]) == proof
        value = None if case["value"] is None else bytes.fromhex(case["value"])
        root, key = bytes.fromhex(case["root"]), bytes.fromhex(case["key"])
        assert verify_proof(root, key, value, proof) is case["valid"]


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-vectors"]:
        VECTORS_PATH.parent.mkdir(parents=True, exist_ok=True)
        VECTORS_PATH.write_text(render_vectors())
        print(f"wrote {VECTORS_PATH}")
    else:
        print("usage: python tests/test_smt.py --write-vectors", file=sys.stderr)
        raise SystemExit(2)
