"""
LMDB implementation of the :class:`~state.store.Store` protocol.

Layout: one LMDB environment (a directory holding ``data.mdb`` and
``lock.mdb``) with three named databases:

- ``data``: caller key -> value (the committed state);
- ``smt``: node path -> node record (see :mod:`state.smt`);
- ``meta``: UTF-8 name -> bytes; always contains ``height`` (8-byte big-endian)
  and ``root`` (32 bytes) once anything is committed, plus caller entries.

Every block is one LMDB write transaction holding its data changes, tree node
writes and meta entries, so a crash (even SIGKILL or power loss, given
``sync=True, metasync=True``) leaves either the previous block or the new one,
never a mix. Reopening a directory resumes from the stored height and root.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from functools import partial
from types import TracebackType
from typing import Any

import lmdb

from .errors import CorruptStore, RootMismatch, StoreClosed, StoreOpenError
from .proof import Proof, build_proof
from .smt import EMPTY, ROOT_PATH, check_record, compute_update, record_hash
from .store import (
    META_HEIGHT,
    META_ROOT,
    NO_HEIGHT,
    check_key,
    check_next_height,
    decode_height,
    encode_height,
    Preview,
    prepare_changes,
    prepare_meta,
    reuse_preview,
)

LMDB_OPTIONS: dict[str, Any] = {
    "map_size": 1 << 36,  # 64 GiB of address space; only a reservation on 64-bit Linux
    "max_dbs": 8,
    "subdir": True,
    "sync": True,  # with metasync: full durability, the only fully ACID setting
    "metasync": True,
    "writemap": False,  # protects the map from stray writes; keeps nested txns possible
    "readahead": False,  # state may exceed RAM; random node reads gain nothing from readahead
    "max_spare_txns": 1,
}
"""Arguments passed to ``lmdb.open`` (fixed so every node behaves the same)."""

DB_DATA = b"data"
"""Named database of committed key/value data."""

DB_SMT = b"smt"
"""Named database of sparse Merkle tree nodes by path."""

DB_META = b"meta"
"""Named database of meta entries by UTF-8 name."""


class LmdbStore:
    """State persisted in an LMDB environment directory."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """
        Open (creating if needed) the store at directory ``path`` and resume from it.

        Raises
        ------
        StoreOpenError
            The environment cannot be opened, e.g. it is already open in this process.
        CorruptStore
            Stored meta is inconsistent or the stored root does not match the tree.
        """
        self.path = os.fspath(path)
        """Directory of the LMDB environment."""
        try:
            env = lmdb.open(self.path, **LMDB_OPTIONS)
        except lmdb.Error as exc:
            raise StoreOpenError(f"cannot open LMDB store at {self.path!r}: {exc}") from exc
        try:
            with env.begin(write=True) as txn:
                self._data = env.open_db(DB_DATA, txn=txn)
                self._smt = env.open_db(DB_SMT, txn=txn)
                self._meta = env.open_db(DB_META, txn=txn)
            self._env: lmdb.Environment | None = env
            self._preview: Preview | None = None
            self._height, self._root = self._load_tip()
        except BaseException:
            env.close()
            raise

    def _load_tip(self) -> tuple[int, bytes]:
        """Read and sanity-check the committed height and root."""
        assert self._env is not None
        with self._env.begin() as txn:
            raw_height = txn.get(META_HEIGHT.encode(), db=self._meta)
            raw_root = txn.get(META_ROOT.encode(), db=self._meta)
            if raw_height is None:
                if raw_root is not None or txn.stat(self._data)["entries"] or txn.stat(
                    self._smt
                )["entries"]:
                    raise CorruptStore(f"{self.path!r}: data present but no committed height")
                return NO_HEIGHT, EMPTY
            try:
                height = decode_height(raw_height)
            except ValueError as exc:
                raise CorruptStore(f"{self.path!r}: {exc}") from exc
            if raw_root is None or len(raw_root) != 32:
                raise CorruptStore(f"{self.path!r}: missing or malformed root meta entry")
            root_record = txn.get(ROOT_PATH, db=self._smt)
            if raw_root == EMPTY:
                consistent = root_record is None
            else:
                consistent = (
                    record_hash(check_record(ROOT_PATH, root_record)) == raw_root
                )
            if not consistent:
                raise CorruptStore(f"{self.path!r}: stored root does not match the tree")
            return height, raw_root

    # ------------------------------------------------------------------ reads

    @property
    def height(self) -> int:
        """Last committed height, or -1 if nothing is committed."""
        return self._height

    @property
    def root(self) -> bytes:
        """Current state root (``EMPTY`` for the empty state)."""
        return self._root

    def get(self, key: bytes) -> bytes | None:
        """Return the committed value of ``key``, or ``None``."""
        env = self._open_env()
        with env.begin(db=self._data) as txn:
            return txn.get(check_key(key))

    def scan_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """
        Yield committed ``(key, value)`` pairs whose key starts with ``prefix``, ascending.

        The scan reads one snapshot (a read transaction held until the iterator is
        exhausted or closed), so concurrent commits do not affect it.
        """
        env = self._open_env()
        if type(prefix) is not bytes:
            raise TypeError("prefix must be bytes")
        # Begin the read transaction now, not at the first next(), so the snapshot
        # is the state at call time (as with the memory store).
        return _scan(env.begin(db=self._data), prefix)

    def iter_all(self) -> Iterator[tuple[bytes, bytes]]:
        """Yield every committed ``(key, value)`` pair in ascending key order."""
        return self.scan_prefix(b"")

    def get_meta(self, name: str) -> bytes | None:
        """Return the committed meta entry ``name``, or ``None``."""
        env = self._open_env()
        with env.begin(db=self._meta) as txn:
            return txn.get(name.encode("utf-8"))

    def preview_root(self, changes: Mapping[bytes, bytes | None]) -> bytes:
        """
        Return the root ``changes`` would give, without committing anything.

        The computation is remembered so that an immediately following
        ``commit_block`` of the same changes does not repeat it.

        Raises
        ------
        InvalidKey, InvalidValue
            Bad input (the same checks as ``commit_block``).
        """
        env = self._open_env()
        items = prepare_changes(changes)
        with env.begin(db=self._smt) as txn:
            update = compute_update(txn.get, self._root, dict(items))
        self._preview = (self._root, items, update)
        return update.root

    def prove(self, key: bytes) -> Proof:
        """Return an (non-)inclusion proof for ``key`` against the current root."""
        env = self._open_env()
        with env.begin(db=self._smt) as txn:
            return build_proof(txn.get, self._root, key)

    # ------------------------------------------------------------------ commit

    def commit_block(
        self,
        height: int,
        changes: Mapping[bytes, bytes | None],
        meta: Mapping[str, bytes],
        *,
        expected_root: bytes | None = None,
    ) -> bytes:
        """
        Atomically apply ``changes`` and ``meta`` as block ``height``; return the new root.

        Data, tree nodes and meta (including ``height`` and ``root``) go into one
        write transaction; if anything raises before it commits, the transaction is
        aborted and the store is exactly as before. With ``expected_root``, the
        block is committed only if the new root equals it.

        Raises
        ------
        HeightMismatch
            ``height != self.height + 1``.
        InvalidKey, InvalidValue, InvalidMeta
            Bad input; nothing is written.
        RootMismatch
            ``expected_root`` is given and differs from the new root; nothing is written.
        """
        env = self._open_env()
        check_next_height(self._height, height)
        items = prepare_changes(changes)
        meta_items = prepare_meta(meta)
        preview, self._preview = self._preview, None
        txn = env.begin(write=True)
        try:
            update = reuse_preview(preview, self._root, items)
            if update is None:
                update = compute_update(partial(txn.get, db=self._smt), self._root, dict(items))
            if expected_root is not None and update.root != expected_root:
                raise RootMismatch(expected_root, update.root)
            self._write_data(txn, items)
            self._write_nodes(txn, update.node_writes)
            self._write_meta(
                txn, [*meta_items, (META_HEIGHT, encode_height(height)), (META_ROOT, update.root)]
            )
            txn.commit()
        except BaseException:
            txn.abort()  # no-op if commit itself failed after LMDB freed the txn
            raise
        self._height = height
        self._root = update.root
        return update.root

    def _write_data(self, txn: lmdb.Transaction, items: list[tuple[bytes, bytes | None]]) -> None:
        """Write data changes in key order inside ``txn``."""
        db = self._data
        for key, value in items:
            if value is None:
                txn.delete(key, db=db)
            else:
                txn.put(key, value, db=db)

    def _write_nodes(
        self, txn: lmdb.Transaction, writes: tuple[tuple[bytes, bytes | None], ...]
    ) -> None:
        """Write tree node changes in path order inside ``txn``."""
        db = self._smt
        for path, record in writes:
            if record is None:
                txn.delete(path, db=db)
            else:
                txn.put(path, record, db=db)

    def _write_meta(self, txn: lmdb.Transaction, items: list[tuple[str, bytes]]) -> None:
        """Write meta entries inside ``txn``."""
        db = self._meta
        for name, value in items:
            txn.put(name.encode("utf-8"), value, db=db)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the environment; further calls raise ``StoreClosed``. Idempotent."""
        env, self._env = self._env, None
        self._preview = None
        if env is not None:
            env.close()

    def __enter__(self) -> LmdbStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _open_env(self) -> lmdb.Environment:
        """Return the environment, or raise StoreClosed after ``close()``."""
        if self._env is None:
            raise StoreClosed(f"LMDB store at {self.path!r} is closed")
        return self._env


def _scan(txn: lmdb.Transaction, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Generator behind ``scan_prefix``: walks ``txn``'s cursor from ``prefix``, then ends ``txn``."""
    try:
        cursor = txn.cursor()
        positioned = cursor.set_range(prefix) if prefix else cursor.first()
        if not positioned:
            return
        for key, value in cursor:
            if not key.startswith(prefix):
                return
            yield key, value
    finally:
        txn.abort()  # read-only: abort just releases the snapshot


__all__ = ["LmdbStore", "LMDB_OPTIONS", "DB_DATA", "DB_SMT", "DB_META"]
