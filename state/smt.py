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

One record per node is the layout the stores use. A paged layout (the internal
records of 4 levels in one stored page) was implemented and tested to give the
same roots and proofs, but measured 12-34% slower per changed key with inserts,
splits, the leaf check and the write list included (the probe
``benchmarks/probe_tree_pages.py`` that suggested 38% cheaper left those out),
so it was not adopted (docs/performance.md, "Third round").

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

Below the levels the batch shares, each changed key walks its own path in two
flat loops (down: read records; up: rewrite and hash them), hashing with one
reused BLAKE3 hasher; writes are kept per depth, each depth already in path
order, so the sorted write list needs no global sort. See docs/state-commitment.md
section 3 and docs/performance.md.

The module also compiles unchanged with mypyc (``mypyc state/smt.py``): same
results, about a quarter less CPU; :data:`COMPILED` tells which one is loaded.
The package does not build it (docs/performance.md, "Fourth round").
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from operator import itemgetter
from types import FunctionType
from typing import Final, Protocol

import msgspec
from blake3 import blake3

from .errors import CorruptStore, KeyHashCollision

KEY_DOMAIN: Final = b"clearinghouse/smt/key/v1\x00"
"""Domain prefix hashed before a key to obtain its 256-bit tree position."""

VALUE_DOMAIN: Final = b"clearinghouse/smt/value/v1\x00"
"""Domain prefix hashed before a value so value hashes cannot be confused with other hashes."""

EMPTY: Final = bytes(32)
"""Hash of an empty subtree, and the root of the empty tree."""

LEAF_TAG: Final = 0x00
"""First byte of a leaf-hash preimage and of a stored leaf record."""

INTERNAL_TAG: Final = 0x01
"""First byte of an internal-hash preimage and of a stored internal record."""

MAX_LEAF_DEPTH: Final = 255
"""Deepest depth a leaf may sit at (the node path stores the depth in one byte)."""

ROOT_PATH: Final = b"\x00"
"""Node path of the root (depth 0, empty prefix)."""

_LEAF_PREFIX: Final = b"\x00"
_INTERNAL_PREFIX: Final = b"\x01"
_TOP_BIT: Final = 1 << 255
_DEPTH_BYTE: Final = tuple(bytes((depth,)) for depth in range(256))  # prebuilt: paths are made per visited node
# Per-depth constants of the hot loops (indexing a tuple is cheaper than the arithmetic):
# the bit of a 256-bit key hash read at depth d, and the node path at depth d of key
# hash ``khi`` as ``_DEPTH_BYTE[d] + (khi >> _PATH_SHIFT[d] << _PATH_PAD[d]).to_bytes(
# _PATH_BYTES[d], "big")`` (top d bits, low bits of the last byte cleared).
_BIT: Final = tuple(_TOP_BIT >> depth for depth in range(256))
_PATH_SHIFT: Final = tuple(256 - depth for depth in range(256))
_PATH_PAD: Final = tuple(-depth & 7 for depth in range(256))
_PATH_BYTES: Final = tuple((depth + 7) >> 3 for depth in range(256))
# Compiled (COMPILED), the walk down builds the path at depth d < 255 from the key hash's bytes:
# ``_DEPTH_BYTE[d] + kh[: d >> 3] + _LAST_BYTE[d & 7][kh[d >> 3]]``, where
# ``_LAST_BYTE[r][b]`` is byte ``b`` with all but its top ``r`` bits cleared (empty if
# ``r == 0``: the path then ends on a byte boundary). Same bytes as ``node_path``;
# 2.7x faster than the integer form compiled (slices and concatenations are direct
# calls, ``int.to_bytes`` is not), a few percent slower interpreted.
_LAST_BYTE: Final = tuple(
    tuple(bytes((byte & (0xFF00 >> r) & 0xFF,)) if r else b"" for byte in range(256)) for r in range(8)
)
_LEVEL: Final = tuple((_DEPTH_BYTE[d], d >> 3, _LAST_BYTE[d & 7]) for d in range(MAX_LEAF_DEPTH))
_LEVELS: Final = tuple(_LEVEL[start:] for start in range(256))
"""``_LEVELS[start]``: ``(depth byte, whole bytes, last-byte table)`` for each depth ``start <= d < 255``."""
_INT_LEVEL: Final = tuple((_DEPTH_BYTE[d], _PATH_SHIFT[d], _PATH_PAD[d], _PATH_BYTES[d]) for d in range(MAX_LEAF_DEPTH))
_INT_LEVELS: Final = tuple(_INT_LEVEL[start:] for start in range(256))
"""``_INT_LEVELS[start]``: ``(depth byte, shift, pad, bytes)`` for each depth ``start <= d < 255``."""


def _compiled() -> bool:
    """Return True if this module runs compiled by mypyc (its functions are then not Python functions)."""
    return not isinstance(_compiled, FunctionType)


COMPILED: Final = _compiled()
"""True if this module is a mypyc build of ``state/smt.py``, False if it runs as Python source (docs/performance.md)."""

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


def compute_update(get_node: NodeGetter, root: bytes, changes: Mapping[bytes, bytes | None]) -> TreeUpdate:
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
    updater = _Updater(get_node, batch)
    new_root, _ = updater.update(0, 0, 0, len(batch), root)
    # Sorted by path: the store gets its writes in key order, which LMDB appends fastest.
    return TreeUpdate(new_root, updater.sorted_writes())


_BatchEntry = tuple[int, bytes, "bytes | None", "bytes | None"]
"""``(kh as int, kh, leaf record or None for delete, leaf hash or None)``."""


def _sorted_batch(changes: Mapping[bytes, bytes | None]) -> list[_BatchEntry]:
    """Hash and sort a batch by key hash; reject equal key hashes (a BLAKE3 collision)."""
    batch: list[_BatchEntry] = []
    append = batch.append
    hasher = blake3()  # one hasher reset per digest: markedly cheaper than a new object each time
    reset, update, digest = hasher.reset, hasher.update, hasher.digest
    for key, value in changes.items():
        reset()
        update(KEY_DOMAIN + key)  # one call: concatenating is cheaper than a second update
        kh = digest()
        if value is None:
            append((int.from_bytes(kh, "big"), kh, None, None))
        else:
            reset()
            update(VALUE_DOMAIN + value)
            head = _LEAF_PREFIX + kh + digest()
            reset()
            update(head)
            append((int.from_bytes(kh, "big"), kh, head + key, digest()))
    batch.sort(key=_entry_sort_key)
    for i in range(1, len(batch)):
        if batch[i][0] == batch[i - 1][0]:
            raise KeyHashCollision("two keys in one batch have the same key hash")
    return batch


_entry_sort_key = itemgetter(0)
"""Sort batch entries by key hash only (the records may compare in any order)."""


class _Updater:
    """
    One recursive descent over a sorted batch; collects the node writes.

    Writes go to ``writes[depth]``, one ``{path: record or None}`` map per depth:
    every node at one depth is written in ascending path order (the batch is
    walked in key-hash order), so concatenating the maps by depth gives the
    sorted write list almost for free (:meth:`sorted_writes`); sorting all
    paths at once was a sixth of the cost of an update.
    """

    __slots__ = ("batch", "digest", "feed", "get_node", "khs", "reset", "unordered", "writes")

    def __init__(
        self,
        get_node: NodeGetter,
        batch: list[_BatchEntry],
        writes: list[dict[bytes, bytes | None]] | None = None,
    ) -> None:
        self.get_node = get_node
        self.batch = batch
        self.khs = [entry[0] for entry in batch]  # parallel list so bisect needs no key function
        self.writes: list[dict[bytes, bytes | None]] = writes or [{} for _ in range(256)]
        self.unordered = False
        """Set when a write may have broken the path order of its depth's map (a collapse)."""
        # One BLAKE3 hasher, reset before each digest: about half the cost of a new
        # hasher object per node. Private to this update, so threads never share it.
        hasher = blake3()
        self.reset = hasher.reset
        self.feed = hasher.update
        self.digest = hasher.digest

    def sorted_writes(self) -> tuple[tuple[bytes, bytes | None], ...]:
        """Return every write as ``(path, record or None)``, sorted by path."""
        writes: list[tuple[bytes, bytes | None]] = []
        # Nodes of one depth are written in path order: a node is written while the
        # batch entries below it are processed, and entries go in key-hash order.
        # Only a collapse deletes a node after its right neighbour was written.
        for level in self.writes:
            if level:
                if self.unordered:
                    writes += [(path, level[path]) for path in sorted(level)]
                else:
                    writes += level.items()
        return tuple(writes)

    def hash(self, data: bytes) -> bytes:
        """Return ``H(data)`` with this update's hasher."""
        self.reset()
        self.feed(data)
        return self.digest()

    def update(self, depth: int, prefix: int, lo: int, hi: int, current: bytes) -> tuple[bytes, bytes | None]:
        """
        Apply ``batch[lo:hi]`` (all under ``prefix``) to the subtree at ``depth``.

        ``current`` is the subtree's hash before the batch. Returns the new hash and,
        if the new subtree is a single leaf, that leaf's record (so the parent can
        decide to lift it without reading the store).
        """
        if hi - lo == 1:
            return self.update_one(depth, lo, current)
        if current == EMPTY:
            return self.build(depth, prefix, [e for e in self.batch[lo:hi] if e[2] is not None])
        path = _DEPTH_BYTE[depth] + (prefix >> _PATH_SHIFT[depth] << _PATH_PAD[depth]).to_bytes(
            _PATH_BYTES[depth], "big"
        )
        record = self.get_node(path)
        if record is None or len(record) < 65 or record[0] > INTERNAL_TAG:
            record = check_record(path, record)  # raises CorruptStore
        if record[0] == LEAF_TAG:
            return self.update_leaf(depth, prefix, lo, hi, current, path, record)
        if depth >= MAX_LEAF_DEPTH or len(record) != 65:
            raise CorruptStore(f"malformed or too deep internal node at path {path.hex()}")
        right_prefix = prefix | (_TOP_BIT >> depth)
        mid = bisect_left(self.khs, right_prefix, lo, hi)
        # A side the batch does not touch keeps its hash; whether it is a lone leaf
        # is unknown (False) until needed, which saves a read per level.
        left_leaf: bytes | None | bool
        right_leaf: bytes | None | bool
        # (A side holding one batch entry goes straight to update_one.)
        if mid - lo == 1:
            left, left_leaf = self.update_one(depth + 1, lo, record[1:33])
        elif mid > lo:
            left, left_leaf = self.update(depth + 1, prefix, lo, mid, record[1:33])
        else:
            left, left_leaf = record[1:33], False
        if hi - mid == 1:
            right, right_leaf = self.update_one(depth + 1, mid, record[33:65])
        elif hi > mid:
            right, right_leaf = self.update(depth + 1, right_prefix, mid, hi, record[33:65])
        else:
            right, right_leaf = record[33:65], False
        if left != EMPTY and right != EMPTY:
            # Neither child is empty, so nothing collapses: the common case of join().
            new_record = _INTERNAL_PREFIX + left + right
            if new_record == record:
                return current, None
            self.writes[depth][path] = new_record
            return self.hash(new_record), None
        return self.join(depth, prefix, path, record, current, left, left_leaf, right, right_leaf)

    def update_one(self, depth: int, index: int, current: bytes) -> tuple[bytes, bytes | None]:
        """
        Apply the single entry ``batch[index]`` to the subtree at ``depth``.

        Same result as :meth:`update`, but walks down and back up in loops: below
        the top levels almost every batch entry is alone in its subtree, and this
        is the hot path of a block commit (each statement in the two loops runs
        once per level per changed key). Down: read internal nodes until a leaf or
        an empty slot. Bottom: write the new leaf, split a slot held by another
        key, or delete. Up: rewrite each internal node on the way with its new
        child hash; after a delete (possible collapse) :meth:`rejoin` does it.
        """
        khi, kh, leaf_record, leaf_hash_ = self.batch[index]
        get_node = self.get_node
        paths: list[bytes] = []
        records: list[bytes] = []
        record: bytes | None = None  # what the walk found at ``path`` (None: empty slot)
        path = b""
        d = depth
        if current != EMPTY:
            # The slot below an EMPTY child hash has no record: the walk simply finds
            # nothing there (the parent's child hash is checked before trusting that).
            # The same walk in two spellings of the path (identical bytes): compiled, from
            # the key hash's bytes; interpreted, from its integer (fewer bytecodes there).
            if COMPILED:
                for depth_byte, nbytes, last_byte in _LEVELS[depth]:
                    path = depth_byte + kh[:nbytes] + last_byte[kh[nbytes]]
                    record = get_node(path)
                    if record is None or len(record) != 65 or record[0] != 1:  # 1: INTERNAL_TAG
                        break
                    paths.append(path)
                    records.append(record)
            else:
                for depth_byte, shift, pad, size in _INT_LEVELS[depth]:
                    path = depth_byte + (khi >> shift << pad).to_bytes(size)  # big-endian
                    record = get_node(path)
                    if record is None or len(record) != 65 or record[0] != 1:  # 1: INTERNAL_TAG
                        break
                    paths.append(path)
                    records.append(record)
            d = depth + len(records)
            if d == MAX_LEAF_DEPTH:  # internal nodes at every depth down to 254: only a leaf may follow
                path = _path(d, khi >> 1 << 1)
                record = get_node(path)
                if record is not None and len(record) >= 65 and record[0] == INTERNAL_TAG:
                    raise CorruptStore(f"internal node too deep at path {path.hex()}")
            if record is None and (
                d == depth or (records[-1][33:65] if khi & _BIT[d - 1] else records[-1][1:33]) != EMPTY
            ):
                raise CorruptStore(f"missing tree node at path {path.hex()}")
        else:
            path = _path(d, khi >> (256 - d) << (256 - d))

        # Bottom: the slot at depth d, path ``path``, holding ``record`` (None: empty).
        new_hash: bytes
        new_leaf: bytes | None
        if record is None:
            if leaf_record is None:
                return current, None  # deleting an absent key
            self.writes[d][path] = leaf_record
            new_hash, new_leaf = leaf_hash_, leaf_record  # type: ignore[assignment]
        elif record[0] != LEAF_TAG or len(record) < 65:
            check_record(path, record)  # raises CorruptStore
            raise CorruptStore(f"malformed tree node at path {path.hex()}")
        elif record.startswith(kh, 1):  # the slot holds this very key
            if record == leaf_record:
                return current, (None if records else record)  # same value rewritten
            self.writes[d][path] = leaf_record
            if leaf_record is None:
                new_hash, new_leaf = EMPTY, None
            else:
                new_hash, new_leaf = leaf_hash_, leaf_record  # type: ignore[assignment]
        elif leaf_record is None:
            return current, (None if records else record)  # deleting an absent key
        else:  # another key's leaf: split the slot into a subtree holding both
            if not records:
                old_hash = current
            elif khi & _BIT[d - 1]:
                old_hash = records[-1][33:65]
            else:
                old_hash = records[-1][1:33]
            old_khi = int.from_bytes(record[1:33], "big")
            mine = self.batch[index]
            other: _BatchEntry = (old_khi, record[1:33], record, old_hash)
            shift = 256 - d
            new_hash, new_leaf = self.build(d, khi >> shift << shift, [mine, other] if khi < old_khi else [other, mine])

        if not records:
            return new_hash, new_leaf
        if new_hash == EMPTY or (
            new_leaf is not None
            and (
                (records[-1].startswith(EMPTY, 1) and records[-1].endswith(EMPTY))
                if record is None
                else (records[-1].startswith(EMPTY, 1) or records[-1].endswith(EMPTY))
            )
        ):
            return self.rejoin(khi, depth, current, paths, records, new_hash, new_leaf)

        # Up: no collapse is possible, so each level is a plain internal-node rewrite:
        # the new bottom is not empty, and a lone leaf has a non-empty sibling (a key
        # rewritten in place), or it fills the EMPTY child of a node whose other child
        # is not empty (a new key in an empty slot: every node above gains a leaf).
        reset, feed, digest = self.reset, self.feed, self.digest
        end = depth + len(records)
        for path, record, bit, level in zip(
            reversed(paths), reversed(records), _BIT[end - 1 : depth - 1 if depth else None : -1],
            self.writes[end - 1 : depth - 1 if depth else None : -1],
        ):  # fmt: skip
            if khi & bit:
                record = record[:33] + new_hash
            else:
                record = _INTERNAL_PREFIX + new_hash + record[33:]
            level[path] = record
            reset()
            feed(record)
            new_hash = digest()
        return new_hash, None

    def rejoin(
        self,
        khi: int,
        depth: int,
        current: bytes,
        paths: list[bytes],
        records: list[bytes],
        new_hash: bytes,
        new_leaf: bytes | None,
    ) -> tuple[bytes, bytes | None]:
        """
        Walk back up the trail of :meth:`update_one` with the general :meth:`join`.

        Used when the new bottom subtree is empty, or a single leaf next to an
        empty sibling: internal nodes on the trail may then collapse.
        """
        for i in range(len(records) - 1, -1, -1):
            d = depth + i
            shift = 256 - d
            record = records[i]
            if i == 0:
                old = current
            elif khi & _BIT[d - 1]:
                old = records[i - 1][33:65]
            else:
                old = records[i - 1][1:33]
            if khi & _BIT[d]:
                new_hash, new_leaf = self.join(
                    d, khi >> shift << shift, paths[i], record, old,
                    record[1:33], False, new_hash, new_leaf,
                )  # fmt: skip
            else:
                new_hash, new_leaf = self.join(
                    d, khi >> shift << shift, paths[i], record, old,
                    new_hash, new_leaf, record[33:65], False,
                )  # fmt: skip
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
        writes = self.writes
        if left == EMPTY and right == EMPTY:
            writes[depth][path] = None
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
                self.unordered = True
                writes[depth + 1][side_path] = None
                writes[depth][path] = side_leaf  # type: ignore[assignment]
                return side_hash, side_leaf  # type: ignore[return-value]
        new_record = _INTERNAL_PREFIX + left + right
        if new_record == record:
            return current, None
        writes[depth][path] = new_record
        return self.hash(new_record), None

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
            self.writes[depth][path] = None
        return new_hash, new_leaf

    def build(self, depth: int, prefix: int, leaves: list[_BatchEntry]) -> tuple[bytes, bytes | None]:
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
            self.writes[depth][path] = entry[2]
            return entry[3], entry[2]  # type: ignore[return-value]
        if depth >= MAX_LEAF_DEPTH:
            raise KeyHashCollision("two key hashes share their first 255 bits")
        right_prefix = prefix | (_TOP_BIT >> depth)
        mid = bisect_left([e[0] for e in leaves], right_prefix)
        left, _ = self.build(depth + 1, prefix, leaves[:mid])
        right, _ = self.build(depth + 1, right_prefix, leaves[mid:])
        new_record = _INTERNAL_PREFIX + left + right
        self.writes[depth][path] = new_record
        return self.hash(new_record), None


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
