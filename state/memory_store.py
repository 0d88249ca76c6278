"""
In-memory implementation of the :class:`~state.store.Store` protocol.

Used by tests, tools and short-lived simulations. It follows exactly the same
rules as the LMDB store (same validation, same tree, same meta entries), so the
two give identical roots; commits are made atomic with an undo log.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from itertools import repeat
from types import TracebackType
from typing import Any

from sortedcontainers import SortedDict

from .errors import InvalidKey, InvalidValue, RootMismatch, StoreClosed
from .proof import Proof, build_proof
from .smt import EMPTY, TreeUpdate, build_nodes, compute_update
from .store import (
    META_HEIGHT,
    META_ROOT,
    NO_HEIGHT,
    Preview,
    check_key,
    check_next_height,
    encode_height,
    prepare_changes,
    prepare_meta,
    reuse_preview,
)

_MISSING = object()
"""Undo-log marker: the entry did not exist before the commit."""

_BULK = object()
"""Undo-log key marker: the record's value is ``(keys, previous values)`` of distinct keys."""

UndoLog = list[tuple[MutableMapping[Any, Any], Any, Any]]
"""``(container, key, previous value or _MISSING)`` records, oldest first."""


class MemoryStore:
    """State held in Python containers; lost when the process exits."""

    def __init__(self) -> None:
        self._data: SortedDict = SortedDict()  # sorted so scans come out in key order
        self._nodes: dict[bytes, bytes] = {}
        self._meta: dict[str, bytes] = {}
        self._height = NO_HEIGHT
        self._root = EMPTY
        self._closed = False
        self._preview: Preview | None = None

    @classmethod
    def from_records(
        cls,
        height: int,
        items: Iterable[tuple[bytes, bytes]],
        meta: Mapping[str, bytes] | None = None,
        *,
        expected_root: bytes | None = None,
    ) -> MemoryStore:
        """
        A store committed at ``height`` holding exactly ``items``, its tree built in one pass.

        ``items`` are ``(key, value)`` pairs in strictly ascending key order (a
        snapshot's records). The tree is bulk-built (:func:`~state.smt.build_nodes`),
        not inserted key by key, and is the same tree the blocks that led to this
        state would have built. With ``expected_root``, the store is refused
        (``RootMismatch``) unless the records give that root.

        Raises
        ------
        InvalidKey, InvalidValue, InvalidMeta
            A bad key or value, keys out of order or repeated, or bad meta.
        RootMismatch
            ``expected_root`` is given and the records give another root.
        """
        if type(height) is not int or height < 0:
            raise ValueError("height must be a non-negative int")
        data: list[tuple[bytes, bytes]] = []
        previous = b""
        for key, value in items:
            check_key(key)
            if key <= previous:
                raise InvalidKey(f"records must be in strictly ascending key order: {key.hex()} after {previous.hex()}")
            if type(value) is not bytes:
                raise InvalidValue(f"values must be bytes, got {type(value).__name__}")
            data.append((key, value))
            previous = key
        meta_items = prepare_meta(meta or {})
        root, nodes = build_nodes(data)
        if expected_root is not None and root != expected_root:
            raise RootMismatch(expected_root, root)
        store = cls()
        store._data = SortedDict(data)
        store._nodes = nodes
        store._meta = dict(meta_items)
        store._meta[META_HEIGHT] = encode_height(height)
        store._meta[META_ROOT] = root
        store._height = height
        store._root = root
        return store

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
        """Return the committed value of ``key``, or ``None``.

        Raises
        ------
        StoreClosed
            ``close()`` was called.
        InvalidKey
            ``key`` is not bytes of 1..511 bytes.
        """
        self._check_open()
        return self._data.get(check_key(key))

    def scan_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Yield committed ``(key, value)`` pairs whose key starts with ``prefix``, ascending."""
        self._check_open()
        # Materialised up front so a commit during iteration cannot disturb the scan,
        # matching the snapshot semantics of the LMDB read transaction.
        found = []
        for key in self._data.irange(minimum=prefix):
            if not key.startswith(prefix):
                break
            found.append((key, self._data[key]))
        return iter(found)

    def iter_all(self) -> Iterator[tuple[bytes, bytes]]:
        """Yield every committed ``(key, value)`` pair in ascending key order."""
        return self.scan_prefix(b"")

    def get_meta(self, name: str) -> bytes | None:
        """Return the committed meta entry ``name``, or ``None``."""
        self._check_open()
        return self._meta.get(name)

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
        self._check_open()
        items = prepare_changes(changes)
        update = compute_update(self._nodes.get, self._root, dict(items))
        self._preview = (self._root, items, update)
        return update.root

    def prove(self, key: bytes) -> Proof:
        """Return an (non-)inclusion proof for ``key`` against the current root."""
        self._check_open()
        return build_proof(self._nodes.get, self._root, key)

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

        With ``expected_root``, the block is committed only if the new root equals
        it; the check happens before anything is written.

        Raises
        ------
        HeightMismatch
            ``height != self.height + 1``.
        InvalidKey, InvalidValue, InvalidMeta
            Bad input; nothing is changed.
        RootMismatch
            ``expected_root`` is given and differs from the new root; nothing is changed.
        """
        self._check_open()
        check_next_height(self._height, height)
        items = prepare_changes(changes)
        meta_items = prepare_meta(meta)
        preview, self._preview = self._preview, None
        update = reuse_preview(preview, self._root, items)
        if update is None:
            update = compute_update(self._nodes.get, self._root, dict(items))
        if expected_root is not None and update.root != expected_root:
            raise RootMismatch(expected_root, update.root)
        undo: UndoLog = []
        try:
            self._apply_data(items, undo)
            self._apply_nodes(update, undo)
            self._apply_meta(
                [*meta_items, (META_HEIGHT, encode_height(height)), (META_ROOT, update.root)],
                undo,
            )
        except BaseException:
            _rollback(undo)
            raise
        self._height = height
        self._root = update.root
        return update.root

    def _apply_data(self, items: list[tuple[bytes, bytes | None]], undo: UndoLog) -> None:
        """Write data changes in key order, logging previous values for rollback."""
        _write_logged(self._data, items, undo)

    def _apply_nodes(self, update: TreeUpdate, undo: UndoLog) -> None:
        """Write tree node changes, logging previous records for rollback."""
        # The same effect as _write_logged (paths in node_writes are distinct), in
        # bulk: about fifteen node writes per changed key make this a hot loop.
        # One bulk undo record (all paths, all previous records) instead of a triple
        # per path; _rollback restores it like the equivalent triples.
        nodes = self._nodes
        writes = update.node_writes
        paths = [path for path, _ in writes]
        undo.append((nodes, _BULK, (paths, list(map(nodes.get, paths, repeat(_MISSING))))))
        nodes.update([write for write in writes if write[1] is not None])  # type: ignore[misc]
        for path in [path for path, record in writes if record is None]:
            nodes.pop(path, None)

    def _apply_meta(self, items: list[tuple[str, bytes]], undo: UndoLog) -> None:
        """Write meta entries, logging previous values for rollback."""
        _write_logged(self._meta, items, undo)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Drop the contents; further calls raise ``StoreClosed``. Idempotent."""
        self._closed = True
        self._preview = None
        self._data = SortedDict()
        self._nodes = {}
        self._meta = {}

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        """Raise StoreClosed if ``close()`` was called."""
        if self._closed:
            raise StoreClosed("memory store is closed")


def _write_logged(target: MutableMapping[Any, Any], items: Iterable[tuple[Any, Any]], undo: UndoLog) -> None:
    """Apply ``(key, value-or-None)`` writes to ``target``, appending undo records first."""
    for key, value in items:
        undo.append((target, key, target.get(key, _MISSING)))
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value


def _rollback(undo: UndoLog) -> None:
    """Undo logged writes, newest first, restoring the exact prior contents."""
    for target, key, old in reversed(undo):
        if key is _BULK:  # (keys, previous values) of distinct keys, logged in one record
            for bulk_key, bulk_old in zip(*old):
                if bulk_old is _MISSING:
                    target.pop(bulk_key, None)
                else:
                    target[bulk_key] = bulk_old
        elif old is _MISSING:
            target.pop(key, None)
        else:
            target[key] = old
