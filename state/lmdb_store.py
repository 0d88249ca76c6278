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

Group commits (``group_commit(n)``, for replaying a log): blocks are then written
into one open write transaction, each in a nested transaction of its own (a
failing block leaves the group as it was), and the group is committed durably
every ``n`` blocks, on ``flush()`` and on ``close()``. Reads by this handle see
the group; other processes and a crash see only committed groups, each ending on
a block boundary, so a replayer resumes after the last committed block.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import partial
from types import TracebackType
from typing import Any, cast

import lmdb

from .errors import CorruptStore, RootMismatch, StoreClosed, StoreFull, StoreInUse, StoreOpenError, StoreReadOnly
from .proof import Proof, build_proof
from .smt import EMPTY, ROOT_PATH, check_record, compute_update, record_hash
from .store import (
    META_HEIGHT,
    META_ROOT,
    NO_HEIGHT,
    Preview,
    check_key,
    check_next_height,
    decode_height,
    encode_height,
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

    def __init__(self, path: str | os.PathLike[str], *, readonly: bool = False) -> None:
        """
        Open (creating if needed) the store at directory ``path`` and resume from it.

        A writable store takes an exclusive advisory lock (``flock`` on
        ``data.mdb``) for as long as it is open: one writer at a time, across
        processes. With ``readonly=True`` the environment must already exist
        and nothing is created or written: the handle takes a shared ``flock``
        (writers wait for readers to finish), so LMDB's reader table in
        ``lock.mdb`` is not touched; only when a writer is already active does
        it register there (if ``lock.mdb`` is writable) so its snapshot stays valid.

        Raises
        ------
        StoreOpenError
            The environment cannot be opened, e.g. it is already open in this process,
            or (read-only) there is no LMDB environment at ``path``.
        StoreInUse
            (writable) Another process or handle holds the writer lock.
        CorruptStore
            Stored meta is inconsistent or the stored root does not match the tree.
        """
        self.path = os.fspath(path)
        """Directory of the LMDB environment."""
        self.readonly = readonly
        """Whether this handle may commit."""
        self._lock_fd: int | None = None
        data_file = os.path.join(self.path, "data.mdb")
        options = dict(LMDB_OPTIONS)
        if readonly:
            if not os.path.isfile(data_file):
                raise StoreOpenError(f"no LMDB state database at {self.path!r} (no data.mdb)")
            # A shared flock keeps writers out while we read, so LMDB's reader table (a write
            # to lock.mdb) is not needed; only while a writer is active do we register there.
            self._lock_fd = _take_reader_lock(data_file)
            lock_file = os.path.join(self.path, "lock.mdb")
            use_lock = self._lock_fd is None and os.path.isfile(lock_file) and os.access(lock_file, os.R_OK | os.W_OK)
            options.update(readonly=True, create=False, lock=use_lock)
        try:
            env = lmdb.open(self.path, **options)
        except lmdb.Error as exc:
            self._release_lock()
            raise StoreOpenError(f"cannot open LMDB store at {self.path!r}: {exc}") from exc
        try:
            if not readonly:
                self._lock_fd = _take_writer_lock(data_file, self.path)
                _remove_compact_dir(os.path.join(self.path, COMPACT_DIR))
            if readonly:
                # py-lmdb opens each handle in its own read transaction, committed so the handle stays valid.
                try:
                    with _translated(self.path):
                        self._data = env.open_db(DB_DATA, create=False)
                        self._smt = env.open_db(DB_SMT, create=False)
                        self._meta = env.open_db(DB_META, create=False)
                except (lmdb.NotFoundError, StoreOpenError):
                    raise StoreOpenError(f"{self.path!r} is an LMDB environment but not a state database") from None
            else:
                with _translated(self.path):
                    self._open_databases(env)
            self._env: lmdb.Environment | None = env
            self._preview: Preview | None = None
            self._group_size = 1
            self._group_txn: lmdb.Transaction | None = None
            self._group_pending = 0
            self._group_max_writes = 0
            self._group_writes = 0
            self.before_commit: list[Any] = []
            """Callables run just before a durable commit (e.g. syncing a file the meta points into)."""
            self._engine_events: Any = None
            """The events file of the engine writing this store (set by ``chain.engine.Engine``), so
            readers in the same process see its appended, not yet synced, blocks."""
            with _translated(self.path):
                self._height, self._root = self._load_tip()
        except BaseException:
            env.close()
            self._release_lock()
            raise

    def _open_databases(self, env: lmdb.Environment) -> None:
        """Open (creating if new) the data, tree and meta databases of a writable ``env``."""
        with env.begin(write=True) as txn:
            self._data = env.open_db(DB_DATA, txn=txn)
            self._smt = env.open_db(DB_SMT, txn=txn)
            self._meta = env.open_db(DB_META, txn=txn)

    def _databases(self) -> tuple[tuple[bytes, Any], ...]:
        """The three databases as ``(name, handle)``."""
        return ((DB_DATA, self._data), (DB_SMT, self._smt), (DB_META, self._meta))

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)  # closing the descriptor drops the flock

    def _load_tip(self) -> tuple[int, bytes]:
        """Read and sanity-check the committed height and root."""
        assert self._env is not None
        with self._env.begin() as txn:
            raw_height = txn.get(META_HEIGHT.encode(), db=self._meta)
            raw_root = txn.get(META_ROOT.encode(), db=self._meta)
            if raw_height is None:
                if raw_root is not None or txn.stat(self._data)["entries"] or txn.stat(self._smt)["entries"]:
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
                consistent = record_hash(check_record(ROOT_PATH, root_record)) == raw_root
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
        group = self._group_txn
        if group is not None:
            with _translated(self.path):
                return cast("bytes | None", group.get(check_key(key), db=self._data))
        with _translated(self.path), env.begin(db=self._data) as txn:
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
        if self._group_txn is not None:
            # Inside a group: read the open write transaction (the handle's own view); the
            # iterator must be finished before the next commit.
            return _scan(self._group_txn, prefix, self.path, db=self._data, owned=False)
        # Begin the read transaction now, not at the first next(), so the snapshot
        # is the state at call time (as with the memory store).
        with _translated(self.path):
            txn = env.begin(db=self._data)
        return _scan(txn, prefix, self.path)

    def iter_all(self) -> Iterator[tuple[bytes, bytes]]:
        """Yield every committed ``(key, value)`` pair in ascending key order."""
        return self.scan_prefix(b"")

    def get_meta(self, name: str) -> bytes | None:
        """Return the committed meta entry ``name``, or ``None``."""
        env = self._open_env()
        group = self._group_txn
        if group is not None:
            with _translated(self.path):
                return cast("bytes | None", group.get(name.encode("utf-8"), db=self._meta))
        with _translated(self.path), env.begin(db=self._meta) as txn:
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
        group = self._group_txn
        if group is not None:
            with _translated(self.path):
                update = compute_update(_getter(group, self._smt), self._root, dict(items))
            self._preview = (self._root, items, update)
            return update.root
        with _translated(self.path), env.begin(db=self._smt) as txn:
            update = compute_update(txn.get, self._root, dict(items))
        self._preview = (self._root, items, update)
        return update.root

    def prove(self, key: bytes) -> Proof:
        """Return an (non-)inclusion proof for ``key`` against the current root."""
        env = self._open_env()
        group = self._group_txn
        if group is not None:
            with _translated(self.path):
                return build_proof(_getter(group, self._smt), self._root, key)
        with _translated(self.path), env.begin(db=self._smt) as txn:
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
        if self.readonly:
            raise StoreReadOnly(f"LMDB store at {self.path!r} was opened read-only")
        check_next_height(self._height, height)
        items = prepare_changes(changes)
        meta_items = prepare_meta(meta)
        preview, self._preview = self._preview, None
        with _translated(self.path):
            self._commit(env, preview, items, meta_items, height, expected_root)
        return self._root

    def _commit(
        self,
        env: lmdb.Environment,
        preview: Preview | None,
        items: list[tuple[bytes, bytes | None]],
        meta_items: list[tuple[str, bytes]],
        height: int,
        expected_root: bytes | None,
    ) -> None:
        if self._group_size > 1 and self._group_txn is None:
            self._group_txn = env.begin(write=True)
        group = self._group_txn
        txn = env.begin(write=True) if group is None else env.begin(write=True, parent=group)
        try:
            update = reuse_preview(preview, self._root, items)
            if update is None:
                update = compute_update(partial(txn.get, db=self._smt), self._root, dict(items))
            if expected_root is not None and update.root != expected_root:
                raise RootMismatch(expected_root, update.root)
            self._write_data(txn, items)
            self._write_nodes(txn, update.node_writes)
            self._write_meta(txn, [*meta_items, (META_HEIGHT, encode_height(height)), (META_ROOT, update.root)])
            if group is None:
                for hook in self.before_commit:
                    hook()
            txn.commit()
        except BaseException:
            txn.abort()  # no-op if commit itself failed after LMDB freed the txn
            raise
        self._height = height
        self._root = update.root
        if group is not None:
            self._group_pending += 1
            self._group_writes += len(items) + len(update.node_writes)
            if self._group_pending >= self._group_size or (
                self._group_max_writes and self._group_writes >= self._group_max_writes
            ):
                self._flush_group()

    # ------------------------------------------------------------------ compaction

    def page_usage(self) -> tuple[int, int]:
        """(bytes of the database file up to its last page, bytes in pages of the three databases):
        the difference is free pages that copy-on-write left behind."""
        env = self._open_env()
        with _translated(self.path):
            psize = env.stat()["psize"]
            total = (env.info()["last_pgno"] + 1) * psize
            used = 0
            with env.begin() as txn:
                for _name, db in self._databases():
                    st = txn.stat(db)
                    used += (st["branch_pages"] + st["leaf_pages"] + st["overflow_pages"]) * psize
        return total, used

    def compact(self) -> int:
        """
        Rewrite the database file packed: no free pages, full leaf pages; return its new size.

        Commits an open group first. Each of the three databases is copied into a new environment
        beside the file by appending its entries in key order (``MDB_APPEND``), so every leaf page is
        filled before the next one starts. LMDB's own compacting copy (``mdb_env_copy2`` with
        ``MDB_CP_COMPACT``) only drops free pages and keeps each page's fill: random inserts leave
        B-tree leaves about two-thirds full, and at 10^5 positioned accounts the packed file is a third
        smaller than that copy (docs/performance.md, target 6). The new file is synced, locked, then
        renamed over the old one, so a crash leaves either file whole and no other writer can slip in
        between. Keys, values and therefore the state root are unchanged.

        Raises
        ------
        StoreReadOnly
            The handle was opened read-only.
        """
        env = self._open_env()
        if self.readonly:
            raise StoreReadOnly(f"LMDB store at {self.path!r} was opened read-only")
        self.flush()
        tmp = os.path.join(self.path, COMPACT_DIR)
        with _translated(self.path):
            _remove_compact_dir(tmp)
            os.mkdir(tmp)
            _packed_copy(env, self._databases(), tmp)
            new_file = os.path.join(tmp, "data.mdb")
            new_lock = _take_writer_lock(new_file, self.path)
            os.fsync(new_lock)
            self._env = None
            env.close()
            os.replace(new_file, os.path.join(self.path, "data.mdb"))
            _remove_compact_dir(tmp)
            self._release_lock()
            self._lock_fd = new_lock
            env = lmdb.open(self.path, **LMDB_OPTIONS)
            self._open_databases(env)
            self._env = env
            self._preview = None
            self._height, self._root = self._load_tip()
        return os.path.getsize(os.path.join(self.path, "data.mdb"))

    # ------------------------------------------------------------------ group commits

    def group_commit(self, blocks: int, *, max_writes: int = 0) -> None:
        """
        Commit durably once every ``blocks`` blocks (1: every block, the default), and as soon as
        the group holds ``max_writes`` data and tree-node writes (0: no such bound). The bound
        caps the memory of the open write transaction (its dirty pages live in the heap).

        Lowering ``blocks`` to 1 commits the open group first.
        """
        if type(blocks) is not int or blocks < 1:
            raise ValueError("group_commit needs a whole number of blocks >= 1")
        if type(max_writes) is not int or max_writes < 0:
            raise ValueError("max_writes must be a whole number >= 0")
        self._open_env()
        self._group_size = blocks
        self._group_max_writes = max_writes
        if blocks == 1:
            self.flush()

    @property
    def pending_blocks(self) -> int:
        """Blocks committed into the open group but not yet durable."""
        return self._group_pending

    @property
    def durable_height(self) -> int:
        """The height a crash right now would leave (the last durably committed block)."""
        return self._height - self._group_pending

    def flush(self) -> None:
        """Commit the open group durably (nothing to do outside a group)."""
        self._open_env()
        if self._group_txn is not None:
            with _translated(self.path):
                self._flush_group()

    def _flush_group(self) -> None:
        group, self._group_txn = self._group_txn, None
        if group is None:
            return
        try:
            for hook in self.before_commit:
                hook()
            group.commit()
        except BaseException:
            group.abort()
            self._group_pending = 0
            self._group_writes = 0
            self._preview = None
            self._height, self._root = self._load_tip()  # back to what is durable
            raise
        self._group_pending = 0
        self._group_writes = 0

    def node_records(self) -> Iterator[tuple[bytes, bytes]]:
        """Yield every stored tree node ``(path, record)`` (for deep audits)."""
        env = self._open_env()
        if self._group_txn is not None:
            return _scan(self._group_txn, b"", self.path, db=self._smt, owned=False)
        with _translated(self.path):
            txn = env.begin(db=self._smt)
        return _scan(txn, b"", self.path)

    def _write_data(self, txn: lmdb.Transaction, items: list[tuple[bytes, bytes | None]]) -> None:
        """Write data changes in key order inside ``txn``."""
        db = self._data
        for key, value in items:
            if value is None:
                txn.delete(key, db=db)
            else:
                txn.put(key, value, db=db)

    def _write_nodes(self, txn: lmdb.Transaction, writes: tuple[tuple[bytes, bytes | None], ...]) -> None:
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
        """Commit an open group, close the environment; further calls raise ``StoreClosed``. Idempotent."""
        try:
            if self._env is not None and self._group_txn is not None:
                with _translated(self.path):
                    self._flush_group()
        finally:
            env, self._env = self._env, None
            self._preview = None
            if env is not None:
                env.close()
            self._release_lock()

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


def _scan(
    txn: lmdb.Transaction, prefix: bytes, path: str = "", *, db: Any = None, owned: bool = True
) -> Iterator[tuple[bytes, bytes]]:
    """Generator behind ``scan_prefix``: walks ``txn``'s cursor from ``prefix``, then ends ``txn``
    (unless not ``owned``: the open write transaction of a group)."""
    try:
        with _translated(path):
            cursor = txn.cursor() if db is None else txn.cursor(db=db)
            positioned = cursor.set_range(prefix) if prefix else cursor.first()
            if not positioned:
                return
            for key, value in cursor:  # bytes: the environment is opened without buffers=True
                if not bytes(key).startswith(prefix):
                    return
                yield cast(bytes, key), cast(bytes, value)
    finally:
        if owned:
            txn.abort()  # read-only: abort just releases the snapshot


def _getter(txn: lmdb.Transaction, db: Any) -> Callable[[bytes], bytes | None]:
    """``txn.get`` on database ``db`` (values are bytes: the environment is opened without buffers)."""
    return cast("Callable[[bytes], bytes | None]", partial(txn.get, db=db))


COMPACT_DIR = "compact.tmp"
"""Folder inside the environment where ``compact`` writes its copy (removed when done or on reopen)."""


def _packed_copy(env: Any, databases: tuple[tuple[bytes, Any], ...], tmp: str) -> None:
    """Copy ``databases`` (name and handle) of ``env`` into a new environment at ``tmp``, appending
    each database's entries in key order (full leaf pages), and sync it to disk."""
    options = dict(LMDB_OPTIONS)
    options.update(sync=False, metasync=False)  # one explicit sync at the end instead of per commit
    out = lmdb.open(tmp, **options)
    try:
        with env.begin() as source:
            for name, db in databases:
                with out.begin(write=True) as target:
                    copy = out.open_db(name, txn=target)
                    target.cursor(db=copy).putmulti(source.cursor(db=db).iternext(), append=True)
        out.sync(True)
    finally:
        out.close()


def _remove_compact_dir(tmp: str) -> None:
    """Remove what an interrupted ``compact`` left (its copy was never renamed into place)."""
    if os.path.isdir(tmp):
        for name in os.listdir(tmp):
            os.remove(os.path.join(tmp, name))
        os.rmdir(tmp)


def _take_reader_lock(data_file: str) -> int | None:
    """A shared ``flock`` on ``data.mdb`` (readers); ``None`` if a writer holds it."""
    fd = os.open(data_file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _take_writer_lock(data_file: str, path: str) -> int:
    """Take the exclusive writer lock (``flock`` on ``data.mdb``); return its descriptor."""
    fd = os.open(data_file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreInUse(
            f"database in use by another process: {path!r} "
            "(one writer at a time; readers keep writers out while they read)"
        ) from None
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def _translated(path: str) -> Iterator[None]:
    """Turn LMDB's own errors into typed state errors: full disk or map, corrupt pages, read-only."""
    try:
        yield
    except lmdb.MapFullError as exc:
        raise StoreFull(f"the database at {path!r} is full (map size reached): {exc}") from exc
    except (
        lmdb.CorruptedError,
        lmdb.PageNotFoundError,
        lmdb.BadValsizeError,
        lmdb.InvalidError,
        lmdb.BadTxnError,
        lmdb.BadRslotError,
        lmdb.IncompatibleError,
        lmdb.VersionMismatchError,
        lmdb.PanicError,
    ) as exc:
        raise CorruptStore(f"the database at {path!r} is damaged: {exc}") from exc
    except lmdb.ReadonlyError as exc:
        raise StoreReadOnly(f"the database at {path!r} is read-only: {exc}") from exc
    except lmdb.Error as exc:
        if _is_no_space(exc):
            raise StoreFull(f"no space left on the device holding {path!r}: {exc}") from exc
        raise StoreOpenError(f"LMDB error on {path!r}: {exc}") from exc
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            raise StoreFull(f"no space left on the device holding {path!r}") from exc
        raise


def _is_no_space(exc: BaseException) -> bool:
    text = str(exc)
    return "No space left" in text or "ENOSPC" in text or getattr(exc, "errno", None) == errno.ENOSPC


__all__ = ["LmdbStore", "LMDB_OPTIONS", "DB_DATA", "DB_SMT", "DB_META"]
