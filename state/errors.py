"""
Typed errors raised by the ``state`` package.

Every expected failure of the state layer derives from :class:`StateError`, which
carries a short, stable, UPPER_SNAKE ``code`` so callers (the node, the CLI, log
processors) can branch on the kind of failure without parsing messages. Anything
else escaping from ``state`` is a bug.
"""

from __future__ import annotations

from typing import ClassVar


class StateError(Exception):
    """Base class of every expected failure in the state layer."""

    code: ClassVar[str] = "STATE_ERROR"
    """Stable machine-readable identifier of the failure kind."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        """Human-readable explanation (not stable; do not parse)."""

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class HeightMismatch(StateError):
    """``commit_block`` was called with a height other than ``store.height + 1``."""

    code: ClassVar[str] = "HEIGHT_MISMATCH"

    def __init__(self, expected: int, got: object) -> None:
        super().__init__(f"expected block height {expected}, got {got!r}")
        self.expected = expected
        """The only height the store would have accepted."""
        self.got = got
        """The height that was passed."""


class InvalidKey(StateError):
    """A data key is not ``bytes`` or is outside the storable length range."""

    code: ClassVar[str] = "INVALID_KEY"


class InvalidValue(StateError):
    """A data value is neither ``bytes`` nor ``None`` (deletion)."""

    code: ClassVar[str] = "INVALID_VALUE"


class InvalidMeta(StateError):
    """A meta entry has a bad name (reserved, empty, not ``str``) or a non-bytes value."""

    code: ClassVar[str] = "INVALID_META"


class KeyHashCollision(StateError):
    """
    Two distinct keys have key hashes sharing their first 255 bits (or equal).

    This has probability about 2**-255 per pair for BLAKE3; it exists so that the
    tree fails loudly instead of writing a node whose depth does not fit in the
    one-byte depth of the node path encoding.
    """

    code: ClassVar[str] = "KEY_HASH_COLLISION"


class StoreOpenError(StateError):
    """The store could not be opened (already open in this process, bad path, ...)."""

    code: ClassVar[str] = "STORE_OPEN_FAILED"


class StoreInUse(StoreOpenError):
    """Another process (or another handle in this one) is writing to the store: one writer at a time."""

    code: ClassVar[str] = "STORE_IN_USE"


class StoreReadOnly(StateError):
    """A write was attempted on a store opened read-only."""

    code: ClassVar[str] = "STORE_READ_ONLY"


class StoreFull(StateError):
    """The disk (or the database's map) is full; the block was not committed."""

    code: ClassVar[str] = "STORE_FULL"


class StoreClosed(StateError):
    """An operation was attempted on a store after ``close()``."""

    code: ClassVar[str] = "STORE_CLOSED"


class CorruptStore(StateError):
    """Persisted state is internally inconsistent (missing node, bad meta, root mismatch)."""

    code: ClassVar[str] = "CORRUPT_STORE"


class ProofDecodeError(StateError):
    """Proof bytes or JSON are malformed or not in canonical form."""

    code: ClassVar[str] = "INVALID_PROOF_ENCODING"


class RootMismatch(StateError):
    """A block's changes do not give the root its header claims; nothing was committed."""

    code: ClassVar[str] = "ROOT_MISMATCH"

    def __init__(self, expected: bytes, got: bytes) -> None:
        super().__init__(f"expected root {expected.hex()}, changes give {got.hex()}")
        self.expected = expected
        """The root the caller required (e.g. the header's ``state_root``)."""
        self.got = got
        """The root the changes actually produce."""
