"""
Sparse Merkle tree (state commitment)
^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^

.. contents:: Table of Contents
    :backlinks: none
    :local:

Introduction
------------

The state root commits to a set of ``(key, value)`` byte-string pairs with a
binary, compacted, history-independent sparse Merkle tree (Jellyfish Merkle Tree
semantics with arity 2, no extension nodes). The rules below are NORMATIVE: an
independent implementation that follows them must produce identical roots.

Hashing
-------

``H(x)`` is the 32-byte BLAKE3 digest of ``x``; ``||`` is concatenation.

- ``KEY_DOMAIN   = b"clearinghouse/smt/key/v1\\x00"``
- ``VALUE_DOMAIN = b"clearinghouse/smt/value/v1\\x00"``
- key hash      ``kh = H(KEY_DOMAIN || key)``        (keys: arbitrary bytes, already
  namespaced by the caller)
- value hash    ``vh = H(VALUE_DOMAIN || value)``
- leaf hash     ``H(0x00 || kh || vh)``
- internal hash ``H(0x01 || left || right)``
- ``EMPTY`` = 32 zero bytes.

Tree shape
----------

- Bits of ``kh`` are read most-significant-bit first: bit 0 is the top bit of
  byte 0, bit 255 the low bit of byte 31. At depth ``d`` bit ``d`` selects the
  left (0) or right (1) child.
- The subtree at depth ``d`` with prefix ``p`` (the ``d``-bit path from the root)
  contains every leaf whose ``kh`` starts with ``p``. Its hash is:

  - ``EMPTY`` if it contains no leaf;
  - the leaf hash of its only leaf if it contains exactly one leaf (so a leaf sits
    at the shallowest depth where it is alone);
  - ``H(0x01 || hash(left child subtree) || hash(right child subtree))`` if it
    contains two or more leaves. One child may be ``EMPTY``; there are no
    extension nodes, so two leaves sharing a long prefix hang below a chain of
    internal nodes that each have one ``EMPTY`` child.

- The root is the hash of the depth-0 subtree; the empty tree's root is ``EMPTY``.
  The root depends only on the set of ``(key, value)`` pairs, never on the order
  or batching of updates.

Storage (implementation, not consensus)
---------------------------------------

Nodes are stored by *path*: ``path = depth (1 byte) || the first ceil(depth/8)
bytes of the prefix``, with the bits at positions ``>= depth`` of the last byte
cleared (the root's path is ``b"\\x00"``). Records:

- internal node: ``0x01 || left_hash || right_hash`` (65 bytes; this is exactly
  the internal-hash preimage, so its hash is ``H(record)``);
- leaf node: ``0x00 || kh || vh || key`` (65 + len(key) bytes; its hash is
  ``H(record[:65])``).

Empty subtrees have no record. A depth must fit in one byte, so internal nodes
live at depths 0..254 and leaves at depths 0..255. Storing two keys whose hashes
share their first 255 bits raises :class:`~state.errors.KeyHashCollision`
(probability ~2**-255); the oracle :func:`naive_root` has no such limit and agrees
with the incremental tree on every input the tree accepts.

Batch update
------------

:func:`compute_update` sorts a batch by ``kh`` and does one recursive descent
from the root that splits the sorted batch on bit ``d`` (as JMT does), touching
only nodes on changed paths: O(k log n) for ``k`` changed keys in a tree of ``n``.
Deleting may leave a subtree holding a single leaf; that leaf is lifted up to the
shallowest depth where it is alone (collapse), keeping the tree canonical.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Protocol

import msgspec
from blake3 import blake3

from .errors import CorruptStore, KeyHashCollision

if TYPE_CHECKING:
    from .proof import Proof

KEY_DOMAIN = b"clearinghouse/smt/key/v1\x00"
"""Domain prefix hashed before a key to obtain its 256-bit tree position."""

VALUE_DOMAIN = b"clearinghouse/smt/value/v1\x00"
"""Domain prefix hashed before a value so value hashes cannot be confused with other hashes."""

EMPTY = bytes(32)
"""Hash of an empty subtree, and the root of the empty tree."""

LEAF_TAG = 0x00
"""First byte of a leaf-hash preimage and of a stored leaf record."""

INTERNAL_TAG = 0x01
"""First byte of an internal-hash preimage and of a stored internal record."""

MAX_LEAF_DEPTH = 255
"""Deepest depth a leaf may sit at (the node path stores the depth in one byte)."""

ROOT_PATH = b"\x00"
"""Node path of the root (depth 0, empty prefix)."""

_LEAF_PREFIX = b"\x00"
_INTERNAL_PREFIX = b"\x01"
_TOP_BIT = 1 << 255
_DEPTH_BYTE = tuple(bytes((depth,)) for depth in range(256))  # prebuilt: paths are made per visited node

NodeGetter = Callable[[bytes], "bytes | None"]
"""Reads a node record by path; returns ``None`` if no node is stored there."""


# --------------------------------------------------------------------------- hashing


def key_hash(key: bytes) -> bytes:
    """Return the 32-byte tree position of ``key`` (``H(KEY_DOMAIN || key)``)."""
    return blake3(KEY_DOMAIN + key).digest()


def value_hash(value: bytes) -> bytes:
    """Return the 32-byte commitment to ``value`` (``H(VALUE_DOMAIN || value)``)."""
    return blake3(VALUE_DOMAIN + value).digest()


def leaf_hash(kh: bytes, vh: bytes) -> bytes:
    """Return the hash of a leaf holding key hash ``kh`` and value hash ``vh``."""
    return blake3(_LEAF_PREFIX + kh + vh).digest()


def internal_hash(left: bytes, right: bytes) -> bytes:
    """Return the hash of an internal node from its two child subtree hashes."""
    return blake3(_INTERNAL_PREFIX + left + right).digest()


def key_bit(kh: bytes, depth: int) -> int:
    """Return bit ``depth`` of ``kh``, most significant bit of byte 0 first."""
    return (kh[depth >> 3] >> (7 - (depth & 7))) & 1


# --------------------------------------------------------------------------- oracle


def naive_root(items: Mapping[bytes, bytes]) -> bytes:
    """
    Compute the root of ``items`` from scratch, straight from the rules.

    This is the test oracle for the incremental tree: keep it short and obviously
    correct rather than fast.
    """
    leaves = sorted((key_hash(k), value_hash(v)) for k, v in items.items())

    def subtree(leaves: list[tuple[bytes, bytes]], depth: int) -> bytes:
        if not leaves:
            return EMPTY
        if len(leaves) == 1:
            return leaf_hash(*leaves[0])
        left = [leaf for leaf in leaves if key_bit(leaf[0], depth) == 0]
        right = [leaf for leaf in leaves if key_bit(leaf[0], depth) == 1]
        return internal_hash(subtree(left, depth + 1), subtree(right, depth + 1))

    return subtree(leaves, 0)


# --------------------------------------------------------------------------- node encoding


def node_path(depth: int, kh: bytes) -> bytes:
    """
    Return the storage path of the node at ``depth`` on the way to ``kh``.

    ``depth`` byte, then the first ``ceil(depth/8)`` bytes of ``kh`` with the bits
    at positions ``>= depth`` cleared, so every key below the node maps to the
    same path.
    """
    shift = 256 - depth
    return _path(depth, int.from_bytes(kh, "big") >> shift << shift)


def _path(depth: int, prefix: int) -> bytes:
    """Path of the node at ``depth`` whose 256-bit top-aligned ``prefix`` has zero low bits."""
    nbytes = (depth + 7) >> 3
    return _DEPTH_BYTE[depth] + (prefix >> (256 - (nbytes << 3))).to_bytes(nbytes, "big")


def encode_leaf(kh: bytes, vh: bytes, key: bytes) -> bytes:
    """Return the stored record of a leaf: ``0x00 || kh || vh || key``."""
    return _LEAF_PREFIX + kh + vh + key


def encode_internal(left: bytes, right: bytes) -> bytes:
    """Return the stored record of an internal node: ``0x01 || left || right``."""
    return _INTERNAL_PREFIX + left + right


def record_hash(record: bytes) -> bytes:
    """Return the subtree hash of a stored node record (leaf or internal)."""
    if record[0] == LEAF_TAG:
        return blake3(record[:65]).digest()
    return blake3(record).digest()


def check_record(path: bytes, record: bytes | None) -> bytes:
    """Return ``record`` if it is a well-formed node record, else raise CorruptStore."""
    if record is None:
        raise CorruptStore(f"missing tree node at path {path.hex()}")
    if len(record) == 65 and record[0] == INTERNAL_TAG:
        return record
    if len(record) >= 65 and record[0] == LEAF_TAG:
        return record
    raise CorruptStore(f"malformed tree node at path {path.hex()}")


# --------------------------------------------------------------------------- node stores


class NodeStore(Protocol):
    """
    Where tree nodes live.

    The tree only *reads* through ``get_node``; updates are returned as a list of
    writes so a backend can persist them in the same transaction as its data.
    """

    def get_node(self, path: bytes) -> bytes | None:
        """Return the record stored at ``path``, or ``None``."""
        ...

    def write_nodes(self, writes: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Store each ``(path, record)``; a ``None`` record deletes the path."""
        ...


class MemoryNodeStore:
    """A node store kept in a plain dict (path -> record)."""

    def __init__(self) -> None:
        self.nodes: dict[bytes, bytes] = {}
        """All stored node records by path."""

    def get_node(self, path: bytes) -> bytes | None:
        """Return the record stored at ``path``, or ``None``."""
        return self.nodes.get(path)

    def write_nodes(self, writes: Iterable[tuple[bytes, bytes | None]]) -> None:
        """Store each ``(path, record)``; a ``None`` record deletes the path."""
        nodes = self.nodes
        for path, record in writes:
            if record is None:
                nodes.pop(path, None)
            else:
                nodes[path] = record


# --------------------------------------------------------------------------- batch update


class TreeUpdate(msgspec.Struct, frozen=True):
    """The result of applying one batch: the new root and the node writes that produce it."""

    root: bytes
    """Root after the batch."""

    node_writes: tuple[tuple[bytes, bytes | None], ...]
    """``(path, record)`` pairs sorted by path; a ``None`` record means delete the path."""


def compute_update(
    get_node: NodeGetter, root: bytes, changes: Mapping[bytes, bytes | None]
) -> TreeUpdate:
    """
    Compute the effect of ``changes`` on the tree with root ``root``.

    Pure with respect to the node store: it only reads through ``get_node`` and
    returns the writes, so the caller decides when (and in which transaction) to
    persist them. A ``None`` value deletes the key; deleting an absent key is a
    no-op.

    Raises
    ------
    CorruptStore
        A node that the root implies must exist is missing or malformed.
    KeyHashCollision
        Two keys' hashes share 255 leading bits.
    """
    batch = _sorted_batch(changes)
    if not batch:
        return TreeUpdate(root, ())
    writes: dict[bytes, bytes | None] = {}
    new_root, _ = _Updater(get_node, batch, writes).update(0, 0, 0, len(batch), root)
    # Sorting the paths (not the pairs) is markedly cheaper and gives the store
    # writes in key order, which LMDB appends fastest.
    return TreeUpdate(new_root, tuple([(path, writes[path]) for path in sorted(writes)]))


_BatchEntry = tuple[int, bytes, "bytes | None", "bytes | None"]
"""``(kh as int, kh, leaf record or None for delete, leaf hash or None)``."""


def _sorted_batch(changes: Mapping[bytes, bytes | None]) -> list[_BatchEntry]:
    """Hash and sort a batch by key hash; reject equal key hashes (a BLAKE3 collision)."""
    batch: list[_BatchEntry] = []
    for key, value in changes.items():
        kh = blake3(KEY_DOMAIN + key).digest()
        if value is None:
            batch.append((int.from_bytes(kh, "big"), kh, None, None))
        else:
            record = _LEAF_PREFIX + kh + blake3(VALUE_DOMAIN + value).digest() + key
            batch.append((int.from_bytes(kh, "big"), kh, record, blake3(record[:65]).digest()))
    batch.sort(key=_entry_sort_key)
    for i in range(1, len(batch)):
        if batch[i][0] == batch[i - 1][0]:
            raise KeyHashCollision("two keys in one batch have the same key hash")
    return batch


def _entry_sort_key(entry: _BatchEntry) -> int:
    """Sort batch entries by key hash only (the records may compare in any order)."""
    return entry[0]


class _Updater:
    """One recursive descent over a sorted batch; collects node writes in ``writes``."""

    __slots__ = ("get_node", "batch", "khs", "writes")

    def __init__(
        self, get_node: NodeGetter, batch: list[_BatchEntry], writes: dict[bytes, bytes | None]
    ) -> None:
        self.get_node = get_node
        self.batch = batch
        self.khs = [entry[0] for entry in batch]  # parallel list so bisect needs no key function
        self.writes = writes

    def update(
        self, depth: int, prefix: int, lo: int, hi: int, current: bytes
    ) -> tuple[bytes, bytes | None]:
        """
        Apply ``batch[lo:hi]`` (all under ``prefix``) to the subtree at ``depth``.

        ``current`` is the subtree's hash before the batch. Returns the new hash and,
        if the new subtree is a single leaf, that leaf's record (so the parent can
        decide to lift it without reading the store).
        """
        if hi - lo == 1:
            return self.update_one(depth, prefix, lo, current)
        if current == EMPTY:
            return self.build(depth, prefix, [e for e in self.batch[lo:hi] if e[2] is not None])
        path = _path(depth, prefix)
        record = self.get_node(path)
        if record is None or len(record) < 65 or record[0] > INTERNAL_TAG:
            check_record(path, record)  # raises CorruptStore
        if record[0] == LEAF_TAG:
            return self.update_leaf(depth, prefix, lo, hi, current, path, record)
        if depth >= MAX_LEAF_DEPTH or len(record) != 65:
            raise CorruptStore(f"malformed or too deep internal node at path {path.hex()}")
        right_prefix = prefix | (_TOP_BIT >> depth)
        mid = bisect_left(self.khs, right_prefix, lo, hi)
        # A side the batch does not touch keeps its hash; whether it is a lone leaf
        # is unknown (False) until needed, which saves a read per level.
        if mid > lo:
            left, left_leaf = self.update(depth + 1, prefix, lo, mid, record[1:33])
        else:
            left, left_leaf = record[1:33], False
        if hi > mid:
            right, right_leaf = self.update(depth + 1, right_prefix, mid, hi, record[33:65])
        else:
            right, right_leaf = record[33:65], False
        return self.join(depth, prefix, path, record, current, left, left_leaf, right, right_leaf)

    def update_one(
        self, depth: int, prefix: int, index: int, current: bytes
    ) -> tuple[bytes, bytes | None]:
        """
        Apply the single entry ``batch[index]`` to the subtree at ``depth``.

        Same result as :meth:`update`, but walks down and back up in loops: below
        the top levels almost every batch entry is alone in its subtree, and this
        is the hot path of a block commit.
        """
        entry = self.batch[index]
        khi = entry[0]
        get_node = self.get_node
        trail: list[tuple[int, int, bytes, bytes, bytes]] = []
        while True:
            if current == EMPTY:
                result = self.build(depth, prefix, [entry] if entry[2] is not None else [])
                break
            path = _path(depth, prefix)
            record = get_node(path)
            if record is None or len(record) < 65 or record[0] > INTERNAL_TAG:
                check_record(path, record)  # raises CorruptStore
            if record[0] == LEAF_TAG:
                result = self.update_leaf(depth, prefix, index, index + 1, current, path, record)
                break
            if depth >= MAX_LEAF_DEPTH or len(record) != 65:
                raise CorruptStore(f"malformed or too deep internal node at path {path.hex()}")
            trail.append((depth, prefix, path, record, current))
            bit = _TOP_BIT >> depth
            if khi & bit:
                current = record[33:65]
                prefix |= bit
            else:
                current = record[1:33]
            depth += 1

        new_hash, new_leaf = result
        writes = self.writes
        for depth, prefix, path, record, current in reversed(trail):
            went_right = khi & (_TOP_BIT >> depth)
            sibling = record[1:33] if went_right else record[33:65]
            if new_hash == EMPTY or sibling == EMPTY:
                # A collapse is possible: take the general path.
                if went_right:
                    new_hash, new_leaf = self.join(
                        depth, prefix, path, record, current, sibling, False, new_hash, new_leaf
                    )
                else:
                    new_hash, new_leaf = self.join(
                        depth, prefix, path, record, current, new_hash, new_leaf, sibling, False
                    )
                continue
            if went_right:
                new_record = _INTERNAL_PREFIX + sibling + new_hash
            else:
                new_record = _INTERNAL_PREFIX + new_hash + sibling
            new_leaf = None
            if new_record == record:
                new_hash = current
            else:
                writes[path] = new_record
                new_hash = blake3(new_record).digest()
        return new_hash, new_leaf

    def join(
        self,
        depth: int,
        prefix: int,
        path: bytes,
        record: bytes,
        current: bytes,
        left: bytes,
        left_leaf: bytes | None | bool,
        right: bytes,
        right_leaf: bytes | None | bool,
    ) -> tuple[bytes, bytes | None]:
        """
        Combine the new child hashes of the internal node ``record`` at ``path``.

        ``*_leaf`` is the child's leaf record if the child is now a single leaf,
        ``None`` if it is not, and ``False`` if the child was not touched (unknown:
        read only if needed). Handles the empty subtree and the collapse of a lone
        leaf up to this depth.
        """
        if left == EMPTY and right == EMPTY:
            self.writes[path] = None
            return EMPTY, None
        if left == EMPTY or right == EMPTY:
            # One side is empty: if the other holds a single leaf, this subtree
            # holds exactly one leaf and the leaf must move up to this depth.
            if left == EMPTY:
                side_hash, side_leaf = right, right_leaf
                side_path = _path(depth + 1, prefix | (_TOP_BIT >> depth))
            else:
                side_hash, side_leaf = left, left_leaf
                side_path = _path(depth + 1, prefix)
            if side_leaf is False:
                side_record = check_record(side_path, self.get_node(side_path))
                side_leaf = side_record if side_record[0] == LEAF_TAG else None
            if side_leaf is not None:
                self.writes[side_path] = None
                self.writes[path] = side_leaf  # type: ignore[assignment]
                return side_hash, side_leaf  # type: ignore[return-value]
        new_record = _INTERNAL_PREFIX + left + right
        if new_record == record:
            return current, None
        self.writes[path] = new_record
        return blake3(new_record).digest(), None

    def update_leaf(
        self, depth: int, prefix: int, lo: int, hi: int, current: bytes, path: bytes, record: bytes
    ) -> tuple[bytes, bytes | None]:
        """Apply ``batch[lo:hi]`` to a subtree that currently holds the single leaf ``record``."""
        old_kh = record[1:33]
        old_khi = int.from_bytes(old_kh, "big")
        leaves = [e for e in self.batch[lo:hi] if e[2] is not None]
        at = bisect_left(self.khs, old_khi, lo, hi)
        if at == hi or self.khs[at] != old_khi:
            # The batch does not mention the existing key: it stays, in kh order.
            keep: _BatchEntry = (old_khi, old_kh, record, current)
            leaves.insert(bisect_left([e[0] for e in leaves], old_khi), keep)
        if len(leaves) == 1 and leaves[0][2] == record:
            return current, record  # unchanged (e.g. same value rewritten, or absent key deleted)
        new_hash, new_leaf = self.build(depth, prefix, leaves)
        if new_hash == EMPTY:
            self.writes[path] = None
        return new_hash, new_leaf

    def build(
        self, depth: int, prefix: int, leaves: list[_BatchEntry]
    ) -> tuple[bytes, bytes | None]:
        """
        Build, from scratch, the subtree at ``depth`` holding exactly ``leaves``.

        Only called where the old subtree had at most one leaf, stored at this very
        path, so nothing deeper needs deleting.
        """
        if not leaves:
            return EMPTY, None
        path = _path(depth, prefix)
        if len(leaves) == 1:
            entry = leaves[0]
            self.writes[path] = entry[2]
            return entry[3], entry[2]  # type: ignore[return-value]
        if depth >= MAX_LEAF_DEPTH:
            raise KeyHashCollision("two key hashes share their first 255 bits")
        right_prefix = prefix | (_TOP_BIT >> depth)
        mid = bisect_left([e[0] for e in leaves], right_prefix)
        left, _ = self.build(depth + 1, prefix, leaves[:mid])
        right, _ = self.build(depth + 1, right_prefix, leaves[mid:])
        new_record = _INTERNAL_PREFIX + left + right
        self.writes[path] = new_record
        return blake3(new_record).digest(), None


# --------------------------------------------------------------------------- bulk build


def build_tree(items: Iterable[tuple[bytes, bytes]]) -> TreeUpdate:
    """
    Build the whole tree of ``items`` (``(key, value)`` pairs, keys distinct) from scratch.

    Returns the root and every node record (``node_writes``, sorted by path): the
    same nodes at the same paths as any sequence of :func:`compute_update` batches
    reaching this set would store, since the shape is canonical. One pass over
    the pairs sorted by key hash, splitting on bit ``d`` as the batch update does,
    so each node is hashed once: the way to load a snapshot of ``n`` records
    without ``n`` separate inserts.

    Raises
    ------
    KeyHashCollision
        Two keys' hashes share 255 leading bits (or a key is repeated).
    """
    root, nodes = build_nodes(items)
    return TreeUpdate(root, tuple([(path, nodes[path]) for path in sorted(nodes)]))


def build_nodes(items: Iterable[tuple[bytes, bytes]]) -> tuple[bytes, dict[bytes, bytes]]:
    """:func:`build_tree` without sorting the writes: ``(root, {path: record})``."""
    entries: list[tuple[int, bytes]] = []
    append = entries.append
    for key, value in items:
        kh = blake3(KEY_DOMAIN + key).digest()
        append((int.from_bytes(kh, "big"), _LEAF_PREFIX + kh + blake3(VALUE_DOMAIN + value).digest() + key))
    if not entries:
        return EMPTY, {}
    entries.sort(key=_entry_sort_key)
    khs = [entry[0] for entry in entries]
    for i in range(1, len(khs)):
        if khs[i] == khs[i - 1]:
            raise KeyHashCollision("two keys have the same key hash (or a key is repeated)")
    nodes: dict[bytes, bytes] = {}

    def build(depth: int, prefix: int, lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            record = entries[lo][1]
            nodes[_path(depth, prefix)] = record
            return blake3(record[:65]).digest()
        if depth >= MAX_LEAF_DEPTH:
            raise KeyHashCollision("two key hashes share their first 255 bits")
        right_prefix = prefix | (_TOP_BIT >> depth)
        mid = bisect_left(khs, right_prefix, lo, hi)
        left = build(depth + 1, prefix, lo, mid) if mid > lo else EMPTY
        right = build(depth + 1, right_prefix, mid, hi) if hi > mid else EMPTY
        record = _INTERNAL_PREFIX + left + right
        nodes[_path(depth, prefix)] = record
        return blake3(record).digest()

    return build(0, 0, 0, len(entries)), nodes


# --------------------------------------------------------------------------- path walk


def walk_path(get_node: NodeGetter, root: bytes, kh: bytes) -> tuple[list[bytes], bytes | None]:
    """
    Walk from the root towards ``kh`` until reaching a leaf or an empty slot.

    Returns the sibling hashes met on the way (root first, ``EMPTY`` included) and
    the record of the leaf occupying the slot, or ``None`` if the slot is empty.
    The number of siblings is the depth of the slot.
    """
    siblings: list[bytes] = []
    if root == EMPTY:
        return siblings, None
    khi = int.from_bytes(kh, "big")
    depth = 0
    prefix = 0
    while True:
        path = _path(depth, prefix)
        record = check_record(path, get_node(path))
        if record[0] == LEAF_TAG:
            return siblings, record
        if depth >= MAX_LEAF_DEPTH:
            raise CorruptStore(f"internal node too deep at path {path.hex()}")
        bit = _TOP_BIT >> depth
        if khi & bit:
            siblings.append(record[1:33])
            child = record[33:65]
            prefix |= bit
        else:
            siblings.append(record[33:65])
            child = record[1:33]
        depth += 1
        if child == EMPTY:
            return siblings, None


def find_leaf(get_node: NodeGetter, root: bytes, key: bytes) -> bytes | None:
    """Return the stored leaf record for ``key`` if present, else ``None``."""
    kh = key_hash(key)
    _, record = walk_path(get_node, root, kh)
    if record is not None and record[1:33] == kh:
        return record
    return None


# --------------------------------------------------------------------------- tree object


class SparseMerkleTree:
    """
    An incremental sparse Merkle tree over a :class:`NodeStore`.

    Convenient for in-memory use and tests; the persistent stores call
    :func:`compute_update` directly so they can write nodes inside their own
    transaction.
    """

    def __init__(self, nodes: NodeStore | None = None, root: bytes = EMPTY) -> None:
        self.nodes: NodeStore = nodes if nodes is not None else MemoryNodeStore()
        """Backing node store."""
        self._root = root

    @property
    def root(self) -> bytes:
        """The current root hash."""
        return self._root

    def compute_update(self, changes: Mapping[bytes, bytes | None]) -> TreeUpdate:
        """Return the new root and node writes of ``changes`` without applying them."""
        nodes = self.nodes
        # Reading the dict directly skips a method call per node on the hot path.
        get_node = nodes.nodes.get if isinstance(nodes, MemoryNodeStore) else nodes.get_node
        return compute_update(get_node, self._root, changes)

    def apply(self, changes: Mapping[bytes, bytes | None]) -> bytes:
        """Apply a batch (``None`` deletes), persist its node writes, return the new root."""
        update = self.compute_update(changes)
        self.nodes.write_nodes(update.node_writes)
        self._root = update.root
        return update.root

    def prove(self, key: bytes) -> Proof:
        """Return an inclusion or non-inclusion proof for ``key`` against the current root."""
        from .proof import build_proof  # deferred: proof.py imports this module

        return build_proof(self.nodes.get_node, self._root, key)
