"""
State commitment and storage for the clearinghouse.

- :mod:`state.smt`: the sparse Merkle tree (normative hashing and shape rules,
  the ``naive_root`` oracle, the incremental batch update).
- :mod:`state.proof`: inclusion / non-inclusion proofs and their pure verifier.
- :mod:`state.store`: the ``Store`` protocol and shared input validation;
  :mod:`state.memory_store` and :mod:`state.lmdb_store` implement it.
- :mod:`state.errors`: the typed ``StateError`` hierarchy.

This package must not import from ``clearinghouse``: it only commits bytes.
"""

from .errors import (
    CorruptStore,
    HeightMismatch,
    InvalidKey,
    InvalidMeta,
    InvalidValue,
    KeyHashCollision,
    ProofDecodeError,
    RootMismatch,
    StateError,
    StoreClosed,
    StoreFull,
    StoreInUse,
    StoreOpenError,
    StoreReadOnly,
)
from .lmdb_store import LmdbStore
from .memory_store import MemoryStore
from .proof import Proof, build_proof, verify_proof
from .smt import (
    EMPTY,
    KEY_DOMAIN,
    VALUE_DOMAIN,
    MemoryNodeStore,
    NodeStore,
    SparseMerkleTree,
    TreeUpdate,
    compute_update,
    internal_hash,
    key_hash,
    leaf_hash,
    naive_root,
    value_hash,
)
from .store import NO_HEIGHT, Store

__all__ = [
    "EMPTY",
    "KEY_DOMAIN",
    "NO_HEIGHT",
    "VALUE_DOMAIN",
    "CorruptStore",
    "HeightMismatch",
    "InvalidKey",
    "InvalidMeta",
    "InvalidValue",
    "KeyHashCollision",
    "LmdbStore",
    "MemoryNodeStore",
    "MemoryStore",
    "NodeStore",
    "Proof",
    "ProofDecodeError",
    "RootMismatch",
    "SparseMerkleTree",
    "StateError",
    "Store",
    "StoreClosed",
    "StoreFull",
    "StoreInUse",
    "StoreOpenError",
    "StoreReadOnly",
    "TreeUpdate",
    "build_proof",
    "compute_update",
    "internal_hash",
    "key_hash",
    "leaf_hash",
    "naive_root",
    "value_hash",
    "verify_proof",
]
