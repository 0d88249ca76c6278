"""
The ``Store`` protocol shared by the in-memory and LMDB state backends.

A store holds the committed key/value data of the clearinghouse, the sparse
Merkle tree over it, and a few named meta entries, and moves from one committed
height to the next with :meth:`Store.commit_block`, atomically. Both backends
must give byte-identical roots for identical inputs; the validation helpers here
are shared so they also reject exactly the same inputs.

Conventions
-----------

- ``height == -1`` means nothing has been committed; the caller commits genesis
  as height 0, then 1, 2, ... (each ``commit_block`` must use ``height + 1``).
- Keys are 1..511 bytes (LMDB's key size limit, enforced for both backends so
  they accept the same inputs). Values are any ``bytes`` (``b""`` included);
  ``None`` in a change set deletes the key.
- Meta entries are named by non-empty ``str`` (UTF-8, at most 511 bytes) and hold
  ``bytes``. The names ``"height"`` (8-byte big-endian unsigned) and ``"root"``
  (32 bytes) are written by every commit and are reserved.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any, Protocol, runtime_checkable

from .errors import HeightMismatch, InvalidKey, InvalidMeta, InvalidValue
from .proof import Proof
from .smt import TreeUpdate

MAX_KEY_LEN = 511
"""Longest storable key in bytes (LMDB's default maximum key size)."""

META_HEIGHT = "height"
"""Meta name of the committed height (8-byte big-endian unsigned)."""

META_ROOT = "root"
"""Meta name of the committed state root (32 bytes)."""

RESERVED_META = frozenset((META_HEIGHT, META_ROOT))
"""Meta names written by the store itself; callers may not set them."""

NO_HEIGHT = -1
"""``Store.height`` before anything has been committed."""


@runtime_checkable
class Store(Protocol):
    """Committed clearinghouse state: data, its Merkle root, and meta entries."""

    @property
    def height(self) -> int:
        """Last committed height, or -1 if nothing is committed."""
        ...

    @property
    def root(self) -> bytes:
        """Current state root (``EMPTY`` for the empty state)."""
        ...

    def get(self, key: bytes) -> bytes | None:
        """Return the committed value of ``key``, or ``None``."""
        ...

    def scan_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Yield committed ``(key, value)`` pairs whose key starts with ``prefix``, ascending."""
        ...

    def iter_all(self) -> Iterator[tuple[bytes, bytes]]:
        """Yield every committed ``(key, value)`` pair in ascending key order."""
        ...

    def get_meta(self, name: str) -> bytes | None:
        """Return the committed meta entry ``name``, or ``None``."""
        ...

    def preview_root(self, changes: Mapping[bytes, bytes | None]) -> bytes:
        """Return the root ``changes`` would give, without committing anything."""
        ...

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

        With ``expected_root``, commit only if the new root equals it (else raise
        ``RootMismatch`` and change nothing).
        """
        ...

    def prove(self, key: bytes) -> Proof:
        """Return an (non-)inclusion proof for ``key`` against the current root."""
        ...

    def close(self) -> None:
        """Release resources; further calls raise ``StoreClosed``."""
        ...

    def __enter__(self) -> Store: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def encode_height(height: int) -> bytes:
    """Encode a committed height as stored under the ``height`` meta entry."""
    return height.to_bytes(8, "big")


def decode_height(raw: bytes) -> int:
    """Decode the ``height`` meta entry; raises ValueError if it is not 8 bytes."""
    if len(raw) != 8:
        raise ValueError("height meta entry must be 8 bytes")
    return int.from_bytes(raw, "big")


def check_next_height(current: int, height: object) -> int:
    """Return ``height`` if it is exactly ``current + 1``, else raise HeightMismatch."""
    if type(height) is not int or height != current + 1:
        raise HeightMismatch(current + 1, height)
    return height


def check_key(key: object) -> bytes:
    """Return ``key`` if it is a storable key (``bytes``, 1..511 long), else raise InvalidKey."""
    if type(key) is not bytes:
        raise InvalidKey(f"keys must be bytes, got {type(key).__name__}")
    if not 1 <= len(key) <= MAX_KEY_LEN:
        raise InvalidKey(f"keys must be 1..{MAX_KEY_LEN} bytes, got {len(key)}")
    return key


def prepare_changes(changes: Mapping[bytes, bytes | None]) -> list[tuple[bytes, bytes | None]]:
    """
    Validate a change set and return it sorted by key.

    Validation happens before any write so a bad change cannot leave a
    half-applied block; sorting makes the write order independent of how the
    caller built the mapping.
    """
    items = list(changes.items())
    for key, value in items:
        check_key(key)
        if value is not None and type(value) is not bytes:
            raise InvalidValue(f"values must be bytes or None, got {type(value).__name__}")
    items.sort(key=_first)
    return items


def prepare_meta(meta: Mapping[str, bytes]) -> list[tuple[str, bytes]]:
    """Validate caller meta entries and return them sorted by name."""
    items = list(meta.items())
    for name, value in items:
        if type(name) is not str or not name:
            raise InvalidMeta("meta names must be non-empty str")
        if name in RESERVED_META:
            raise InvalidMeta(f"meta name {name!r} is reserved (written by every commit)")
        if len(name.encode("utf-8")) > MAX_KEY_LEN:
            raise InvalidMeta(f"meta name {name[:20]!r}... is too long")
        if type(value) is not bytes:
            raise InvalidMeta(f"meta value for {name!r} must be bytes")
    items.sort(key=_first)
    return items


Preview = tuple[bytes, list[tuple[bytes, "bytes | None"]], TreeUpdate]
"""A remembered ``preview_root`` computation: (root it started from, prepared changes, result)."""


def reuse_preview(preview: Preview | None, root: bytes, items: list[tuple[bytes, bytes | None]]) -> TreeUpdate | None:
    """
    Return the remembered tree update if it was computed from ``root`` with ``items``.

    Block producers and verifiers call ``preview_root`` and then ``commit_block``
    with the same changes; reusing the update halves the tree work per block.
    Equal roots imply equal tree contents (the root commits to every node), so
    the comparison of root and change set is all that is needed for safety.
    """
    if preview is not None and preview[0] == root and preview[1] == items:
        return preview[2]
    return None


def _first(item: tuple[Any, Any]) -> Any:
    """Sort key: the first element of a pair (keys are unique, values never compared)."""
    return item[0]
