"""Ordered binary Merkle root over a list of byte strings (tx root, events root).

Leaf = blake3(0x00 || item); node = blake3(0x01 || left || right); a list of
n > 1 items splits at k, the largest power of two strictly below n (RFC 6962
shape), so no item is duplicated and an odd tail is never padded. The root of
the empty list is 32 zero bytes.
"""

from __future__ import annotations

from blake3 import blake3

EMPTY_ROOT = bytes(32)


def leaf_hash(item: bytes) -> bytes:
    return blake3(b"\x00" + item).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return blake3(b"\x01" + left + right).digest()


def _root_of_hashes(hashes: list[bytes]) -> bytes:
    # Iterative over levels would change the shape; recursion depth is log2(n).
    n = len(hashes)
    if n == 1:
        return hashes[0]
    k = 1 << ((n - 1).bit_length() - 1)
    return node_hash(_root_of_hashes(hashes[:k]), _root_of_hashes(hashes[k:]))


def root_of_leaf_hashes(leaves: list[bytes]) -> bytes:
    """The Merkle root of a list whose leaf hashes (``leaf_hash`` of each item) are ``leaves``."""
    if not leaves:
        return EMPTY_ROOT
    return _root_of_hashes(leaves)


def ordered_root(items: list[bytes]) -> bytes:
    """The Merkle root of ``items`` in order."""
    return root_of_leaf_hashes([leaf_hash(i) for i in items])
