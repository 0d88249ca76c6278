"""
State snapshots: the committed records of a store at one height, in one checksummed file.

A snapshot lets a verifier start replaying at height ``h`` instead of genesis.
It is **untrusted input**: loading one recomputes the state root from its
records (bulk-building the tree) and the caller compares that root with the
state root of the block header at ``h``, which it reads from the log. Only
header roots are trusted; the root written in the snapshot is a convenience
for tools and must never be relied on.

This format is not consensus: two honest nodes may write different snapshot
bytes only if they disagree on the state, but no root or hash of the protocol
depends on it. It is specified in ``docs/protocol.md`` (section "State
snapshots") and here. All integers are unsigned big-endian::

    offset  size  field
    0       8     MAGIC       = b"CHSNP\\r\\n\\x1a"   (43 48 53 4E 50 0D 0A 1A)
    8       2     version     = 1 (u16)
    10      6     reserved    = all zero
    16      32    genesis_hash  (which chain)
    48      8     height        (the committed height of the state)
    56      32    state_root    (as claimed by the writer: untrusted)
    88      ...   records, strictly ascending by key, each:
                    varint key_len (1..511), key, varint value_len (0..MAX_VALUE), value
    ...     1     end marker: varint 0 (a key length of zero)
    ...     8     record count (u64)
    ...     32    checksum = blake3(SNAPSHOT_DOMAIN || every byte before the checksum)

``varint`` is unsigned LEB128 in its shortest form (7 bits per byte, low
group first, high bit set on every byte but the last); a longer-than-needed
encoding is rejected so a snapshot of a given state has exactly one encoding.
The file ends right after the checksum. A reader checks, in this order: the
magic (``SNAPSHOT_FORMAT``), the version (``SNAPSHOT_VERSION``), the reserved
bytes, every record's lengths and key order (``SNAPSHOT_FORMAT``), that no
byte is missing (``SNAPSHOT_TRUNCATED``), the record count and the absence
of trailing bytes (``SNAPSHOT_FORMAT``), the checksum (``SNAPSHOT_CHECKSUM``);
then the height and genesis hash the caller asked for (``SNAPSHOT_MISMATCH``)
and the recomputed root (``SNAPSHOT_ROOT``). The checksum guards against
damage and torn copies; it is not an authenticator (anyone can recompute it):
what makes a snapshot trustworthy is the header root it reproduces.

Writers stream: records are written as the store's scan yields them, through
a temporary file that is synced and renamed into place, so a crash never
leaves a half-written snapshot under the final name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import BinaryIO, ClassVar

from blake3 import blake3

from .errors import StateError
from .memory_store import MemoryStore
from .store import MAX_KEY_LEN

MAGIC = b"CHSNP\r\n\x1a"
VERSION = 1
HEADER_SIZE = 88
"""Magic, version, reserved, genesis hash, height, state root."""
TRAILER_SIZE = 8 + 32
"""Record count and checksum (after the end marker)."""
SNAPSHOT_DOMAIN = b"clearinghouse/snapshot/v1\x00"
MAX_VALUE = 64 * 1024 * 1024
"""Largest record value a reader accepts (a guard against absurd lengths, checked before reading)."""
SUFFIX = ".chsnap"
"""File name suffix of snapshots written by ``replay --snapshot-every``."""

_CHUNK = 1 << 20


# --------------------------------------------------------------------------- errors


class SnapshotError(StateError):
    """A snapshot file is unusable; the subclasses say why."""

    code: ClassVar[str] = "SNAPSHOT_INVALID"


class SnapshotFormatError(SnapshotError):
    """Not a snapshot, or malformed: bad magic, reserved bytes, lengths, order, count, trailing bytes."""

    code: ClassVar[str] = "SNAPSHOT_FORMAT"


class SnapshotVersionError(SnapshotError):
    """A snapshot format version this reader does not know."""

    code: ClassVar[str] = "SNAPSHOT_VERSION"


class SnapshotTruncated(SnapshotError):
    """The file ends before the snapshot does (a torn copy)."""

    code: ClassVar[str] = "SNAPSHOT_TRUNCATED"


class SnapshotChecksumMismatch(SnapshotError):
    """The checksum does not match the bytes (damage)."""

    code: ClassVar[str] = "SNAPSHOT_CHECKSUM"


class SnapshotMismatch(SnapshotError):
    """A well-formed snapshot of another height or another chain than the one asked for."""

    code: ClassVar[str] = "SNAPSHOT_MISMATCH"


class SnapshotRootMismatch(SnapshotError):
    """The records do not give the trusted root (the header's) or the root the snapshot claims."""

    code: ClassVar[str] = "SNAPSHOT_ROOT"

    def __init__(self, message: str, *, expected: bytes, got: bytes) -> None:
        super().__init__(message)
        self.expected = expected
        """The root the records had to give."""
        self.got = got
        """The root the records give."""


# --------------------------------------------------------------------------- header


@dataclass(frozen=True)
class SnapshotHeader:
    """The fixed-size start of a snapshot (everything but the records; untrusted)."""

    genesis_hash: bytes
    height: int
    state_root: bytes
    version: int = VERSION

    def encode(self) -> bytes:
        return (
            MAGIC
            + self.version.to_bytes(2, "big")
            + bytes(6)
            + self.genesis_hash
            + self.height.to_bytes(8, "big")
            + self.state_root
        )


@dataclass(frozen=True)
class SnapshotInfo:
    """What a writer wrote or a reader read: the header, the record count, the file size and checksum."""

    header: SnapshotHeader
    records: int
    size: int
    checksum: bytes


def _decode_header(raw: bytes, path: str) -> SnapshotHeader:
    present = raw[: len(MAGIC)]
    if present != MAGIC[: len(present)] or not raw:
        raise SnapshotFormatError(
            f"{path}: not a snapshot (magic {present.hex() or 'missing'}, expected {MAGIC.hex()})"
        )
    if len(raw) < HEADER_SIZE:
        raise SnapshotTruncated(f"{path}: truncated header ({len(raw)} of {HEADER_SIZE} bytes)")
    version = int.from_bytes(raw[8:10], "big")
    if version != VERSION:
        raise SnapshotVersionError(f"{path}: snapshot format version {version} is not supported (expected {VERSION})")
    if raw[10:16] != bytes(6):
        raise SnapshotFormatError(f"{path}: reserved header bytes must be zero, got {raw[10:16].hex()}")
    return SnapshotHeader(
        genesis_hash=raw[16:48], height=int.from_bytes(raw[48:56], "big"), state_root=raw[56:88], version=version
    )


def read_snapshot_header(path: str | os.PathLike[str]) -> SnapshotHeader:
    """Read only the header of the snapshot at ``path`` (cheap: for planning; nothing is verified)."""
    with open(path, "rb") as f:
        return _decode_header(f.read(HEADER_SIZE), os.fspath(path))


# --------------------------------------------------------------------------- varints


def encode_varint(n: int) -> bytes:
    """Unsigned LEB128, shortest form."""
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# --------------------------------------------------------------------------- writing


def write_snapshot(
    path: str | os.PathLike[str],
    *,
    genesis_hash: bytes,
    height: int,
    state_root: bytes,
    records: Iterable[tuple[bytes, bytes]],
) -> SnapshotInfo:
    """
    Stream ``records`` (strictly ascending keys) to a new snapshot at ``path``, atomically.

    The file appears under ``path`` only once it is complete and synced (an
    existing file is replaced). Raises ``ValueError`` for records a reader
    would refuse (a caller bug: a store's scan never yields them).
    """
    if len(genesis_hash) != 32 or len(state_root) != 32 or not 0 <= height < 2**64:
        raise ValueError("genesis_hash and state_root must be 32 bytes and height a u64")
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    header = SnapshotHeader(genesis_hash=genesis_hash, height=height, state_root=state_root)
    hasher = blake3(SNAPSHOT_DOMAIN)
    count = 0
    size = 0
    try:
        with open(tmp, "wb", buffering=_CHUNK) as f:

            def put(data: bytes) -> None:
                nonlocal size
                f.write(data)
                hasher.update(data)
                size += len(data)

            put(header.encode())
            previous = b""
            pending: list[bytes] = []
            for key, value in records:
                if not 1 <= len(key) <= MAX_KEY_LEN or key <= previous or len(value) > MAX_VALUE:
                    raise ValueError(
                        f"snapshot records must have ascending 1..{MAX_KEY_LEN}-byte keys "
                        f"and values up to {MAX_VALUE} bytes"
                    )
                pending.append(encode_varint(len(key)) + key + encode_varint(len(value)) + value)
                previous = key
                count += 1
                if len(pending) >= 4096:
                    put(b"".join(pending))
                    pending.clear()
            put(b"".join(pending) + b"\x00" + count.to_bytes(8, "big"))
            checksum = hasher.digest()
            f.write(checksum)
            size += len(checksum)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path)
    return SnapshotInfo(header=header, records=count, size=size, checksum=checksum)


def snapshot_store(store: object, path: str | os.PathLike[str], *, genesis_hash: bytes) -> SnapshotInfo:
    """Write the committed state of ``store`` (any ``Store``) at its current height to ``path``."""
    height = store.height  # type: ignore[attr-defined]
    if height < 0:
        raise ValueError("the store has nothing committed")
    return write_snapshot(
        path,
        genesis_hash=genesis_hash,
        height=height,
        state_root=store.root,  # type: ignore[attr-defined]
        records=store.iter_all(),  # type: ignore[attr-defined]
    )


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- reading


class _Reader:
    """Buffered reading of the body (everything before the checksum), hashing what it consumes."""

    def __init__(self, f: BinaryIO, body_end: int, path: str) -> None:
        self.f = f
        self.remaining = body_end  # body bytes not yet pulled from the file
        self.buf = b""
        self.pos = 0
        self.hasher = blake3(SNAPSHOT_DOMAIN)
        self.path = path

    def _fill(self, n: int) -> None:
        """Make at least ``n`` unread bytes available, or raise SnapshotTruncated."""
        have = len(self.buf) - self.pos
        if have >= n:
            return
        want = max(n - have, min(_CHUNK, self.remaining))
        if want > self.remaining:
            raise SnapshotTruncated(f"{self.path}: the file ends inside the snapshot")
        chunk = self.f.read(want)
        if len(chunk) != want:
            raise SnapshotTruncated(f"{self.path}: the file ends inside the snapshot")
        self.remaining -= want
        self.hasher.update(chunk)
        self.buf = self.buf[self.pos :] + chunk
        self.pos = 0

    def take(self, n: int) -> bytes:
        self._fill(n)
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def varint(self) -> int:
        self._fill(1)
        byte = self.buf[self.pos]
        if byte < 0x80:
            self.pos += 1
            return byte
        n = 0
        shift = 0
        while True:
            self._fill(1)
            byte = self.buf[self.pos]
            self.pos += 1
            n |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
            if shift > 63:
                raise SnapshotFormatError(f"{self.path}: varint too long")
        if byte == 0:
            raise SnapshotFormatError(f"{self.path}: varint not in shortest form")
        return n

    def exhausted(self) -> bool:
        return self.remaining == 0 and self.pos == len(self.buf)


def iter_snapshot(path: str | os.PathLike[str]) -> tuple[SnapshotHeader, Iterator[tuple[bytes, bytes]], _Result]:
    """
    Open the snapshot at ``path``: its header, an iterator of its records, and a result holder.

    The iterator validates as it goes and, after the last record, checks the
    count, the end of file and the checksum (raising a ``SnapshotError``); only
    when it has been exhausted without an error is the content intact, and
    ``result.info`` is then set. Do not act on the records before that.
    """
    path = os.fspath(path)
    f = open(path, "rb")
    try:
        size = os.fstat(f.fileno()).st_size
        header = _decode_header(f.read(HEADER_SIZE), path)
        if size < HEADER_SIZE + 1 + TRAILER_SIZE:
            raise SnapshotTruncated(f"{path}: the file ends inside the snapshot ({size} bytes)")
    except BaseException:
        f.close()
        raise
    result = _Result()
    return header, _records(f, size, header, path, result), result


class _Result:
    """Set by the record iterator once the whole snapshot has been checked."""

    info: SnapshotInfo | None = None


def _records(
    f: BinaryIO, size: int, header: SnapshotHeader, path: str, result: _Result
) -> Iterator[tuple[bytes, bytes]]:
    with f:
        reader = _Reader(f, size - 32 - HEADER_SIZE, path)
        reader.hasher.update(header.encode())
        previous = b""
        count = 0
        while True:
            key_len = reader.varint()
            if key_len == 0:
                break
            if key_len > MAX_KEY_LEN:
                raise SnapshotFormatError(f"{path}: record {count}: key length {key_len} exceeds {MAX_KEY_LEN}")
            key = reader.take(key_len)
            if key <= previous:
                raise SnapshotFormatError(f"{path}: record {count}: keys are not strictly ascending")
            value_len = reader.varint()
            if value_len > MAX_VALUE:
                raise SnapshotFormatError(f"{path}: record {count}: value length {value_len} exceeds {MAX_VALUE}")
            yield key, reader.take(value_len)
            previous = key
            count += 1
        declared = int.from_bytes(reader.take(8), "big")
        if not reader.exhausted():
            raise SnapshotFormatError(
                f"{path}: bytes after the record count (the snapshot ends early or has trailing data)"
            )
        if declared != count:
            raise SnapshotFormatError(f"{path}: the snapshot declares {declared} records but holds {count}")
        checksum = f.read(32)
        if len(checksum) != 32:
            raise SnapshotTruncated(f"{path}: the file ends inside the checksum")
        if reader.hasher.digest() != checksum:
            raise SnapshotChecksumMismatch(f"{path}: checksum mismatch (the snapshot is damaged)")
        result.info = SnapshotInfo(header=header, records=count, size=size, checksum=checksum)


def read_snapshot(path: str | os.PathLike[str]) -> tuple[SnapshotInfo, list[tuple[bytes, bytes]]]:
    """Read and check (format, order, count, checksum) the whole snapshot; no root is computed."""
    header, records, result = iter_snapshot(path)
    items = list(records)
    assert result.info is not None
    return result.info, items


def load_snapshot(
    path: str | os.PathLike[str],
    *,
    expected_root: bytes | None,
    expected_height: int | None = None,
    expected_genesis_hash: bytes | None = None,
    meta: Mapping[str, bytes] | None = None,
) -> tuple[MemoryStore, SnapshotInfo]:
    """
    Load the snapshot at ``path`` into a new in-memory store, refusing anything but the trusted state.

    ``expected_root`` is the trusted root (the state root of the block header at
    the snapshot's height); ``None`` skips that comparison, for tools that only
    inspect a snapshot. The tree is bulk-built from the records and its root
    compared with ``expected_root`` and with the root the snapshot claims.
    ``meta`` entries are set on the store (e.g. the header at that height).

    Raises
    ------
    SnapshotError
        Damage or malformation (see the module docstring), another height or
        chain than asked for (``SNAPSHOT_MISMATCH``), or records that do not
        give the trusted root or the claimed one (``SNAPSHOT_ROOT``).
    """
    path = os.fspath(path)
    header = read_snapshot_header(path)
    if expected_height is not None and header.height != expected_height:
        raise SnapshotMismatch(f"{path}: a snapshot of height {header.height}, expected height {expected_height}")
    if expected_genesis_hash is not None and header.genesis_hash != expected_genesis_hash:
        raise SnapshotMismatch(
            f"{path}: a snapshot of another chain "
            f"(genesis {header.genesis_hash.hex()}, expected {expected_genesis_hash.hex()})"
        )
    info, items = read_snapshot(path)
    store = MemoryStore.from_records(header.height, items, meta)
    root = store.root
    if expected_root is not None and root != expected_root:
        raise SnapshotRootMismatch(
            f"{path}: refused: its records give state root {root.hex()} but the block header at height "
            f"{header.height} commits to {expected_root.hex()} (snapshots are untrusted; only header roots are)",
            expected=expected_root,
            got=root,
        )
    if root != header.state_root:
        raise SnapshotRootMismatch(
            f"{path}: its records give state root {root.hex()} but it claims {header.state_root.hex()}",
            expected=header.state_root,
            got=root,
        )
    return store, info


__all__ = [
    "HEADER_SIZE",
    "MAGIC",
    "MAX_VALUE",
    "SNAPSHOT_DOMAIN",
    "SUFFIX",
    "VERSION",
    "SnapshotChecksumMismatch",
    "SnapshotError",
    "SnapshotFormatError",
    "SnapshotHeader",
    "SnapshotInfo",
    "SnapshotMismatch",
    "SnapshotRootMismatch",
    "SnapshotTruncated",
    "SnapshotVersionError",
    "encode_varint",
    "iter_snapshot",
    "load_snapshot",
    "read_snapshot",
    "read_snapshot_header",
    "snapshot_store",
    "write_snapshot",
]
