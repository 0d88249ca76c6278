"""``audit --deep``: recompute the state root from every stored record and find what rotted.

The ordinary audit reads records and checks the invariants; it trusts that the
bytes in the database are the bytes the tree commits to. LMDB keeps no
checksums, so a flipped byte in a value is only noticed when a later block's
root comes out wrong. The deep audit does not wait:

1. it rebuilds the sparse Merkle root from scratch over every ``(key, value)``
   in the data table (an in-memory tree, nothing written) and compares it with
   the stored root and with the last header's ``state_root``;
2. for every key it checks the stored tree's leaf against the value's hash,
   and every stored leaf against the data table, and names the first key that
   disagrees (value changed, record missing, leaf missing);
3. it decodes every record with its type, so a value that no longer parses is
   named too.
"""

from __future__ import annotations

from typing import Any

import msgspec

from clearinghouse.spec.state.keys import describe_key, record_type
from state.smt import (
    EMPTY,
    MemoryNodeStore,
    compute_update,
    find_leaf,
    key_hash,
    value_hash,
)

BATCH = 4096
"""Records fed to the in-memory tree per update (bounded memory per step)."""


def deep_audit(store: Any, *, limit: int = 20) -> dict[str, Any]:
    """Recompute the root of ``store``'s data; return the findings (``problems`` empty when sound)."""
    from tx.messages import Header

    nodes = MemoryNodeStore()
    root = EMPTY
    batch: dict[bytes, bytes] = {}
    records = 0
    problems: list[str] = []
    bad_keys: list[dict[str, Any]] = []
    env_get = _node_getter(store)

    def flush() -> None:
        nonlocal root
        if batch:
            update = compute_update(nodes.get_node, root, batch)
            nodes.write_nodes(update.node_writes)
            root = update.root
            batch.clear()

    for key, value in store.iter_all():
        records += 1
        batch[key] = value
        if len(batch) >= BATCH:
            flush()
        if len(bad_keys) < limit:
            reason = _check_key(env_get, store.root, key, value)
            if reason is not None:
                bad_keys.append({"key": describe_key(key), "key_hex": key.hex(), "problem": reason})
    flush()
    leaves = 0
    if hasattr(store, "node_records"):
        for _path, record in store.node_records():
            if record[:1] == b"\x00":
                leaves += 1
                key = record[65:]
                if len(bad_keys) < limit and store.get(key) is None:
                    bad_keys.append(
                        {
                            "key": describe_key(key),
                            "key_hex": key.hex(),
                            "problem": "the tree has a leaf for it but the record is missing",
                        }
                    )
    header_root = None
    raw = store.get_meta("header")
    if raw is not None:
        header_root = msgspec.msgpack.decode(raw, type=Header).state_root
    if root != store.root:
        problems.append(
            f"deep: the state root recomputed from {records} stored records is {root.hex()}, the stored root is {store.root.hex()}"
        )
    if header_root is not None and header_root != store.root:
        problems.append(
            f"deep: the stored root {store.root.hex()} differs from the last header's state_root {header_root.hex()}"
        )
    if leaves and leaves != records:
        problems.append(f"deep: the tree holds {leaves} leaves but the data table {records} records")
    for bad in bad_keys:
        problems.append(f"deep: {bad['key']}: {bad['problem']}")
    return {
        "records": records,
        "recomputed_root": root.hex(),
        "stored_root": store.root.hex(),
        "header_root": header_root.hex() if header_root is not None else None,
        "tree_leaves": leaves,
        "first_bad_key": bad_keys[0] if bad_keys else None,
        "bad_keys": bad_keys,
        "problems": problems,
    }


def _node_getter(store: Any) -> Any:
    """A node getter over the stored tree (LMDB: one read per node)."""
    env = getattr(store, "_env", None)
    smt = getattr(store, "_smt", None)
    if env is not None and smt is not None:

        def get(path: bytes) -> bytes | None:
            with env.begin(db=smt) as txn:
                return txn.get(path)

        return get
    nodes = getattr(store, "_nodes", None)
    return nodes.get if nodes is not None else (lambda _p: None)


def _check_key(get_node: Any, root: bytes, key: bytes, value: bytes) -> str | None:
    leaf = find_leaf(get_node, root, key)
    if leaf is None:
        return "the record is stored but the tree has no leaf for it"
    if leaf[1 + 32 : 65] != value_hash(value):
        return "the stored value does not match the hash the tree commits to (the value changed on disk)"
    if leaf[1:33] != key_hash(key):
        return "the tree's leaf is for another key"
    try:
        msgspec.msgpack.decode(value, type=record_type(key))
    except KeyError:
        return "unknown namespace"
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return f"the value does not decode as its record type: {exc}"
    return None
