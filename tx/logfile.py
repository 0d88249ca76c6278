"""Append-only block log file: byte layout, writer, streaming reader.

This module is normative for the on-disk log format. All integers are
unsigned big-endian.

File header (16 bytes, offset 0)::

    offset  size  field
    0       8     MAGIC     = b"CHLOG\\r\\n\\x1a"   (43 48 4C 4F 47 0D 0A 1A)
    8       2     version   = 1 (u16)
    10      6     reserved  = all zero

The magic contains CR LF and ^Z so text-mode transfers and ``type``-style
tools visibly break it (the PNG trick).  A reader rejects a wrong magic
(``BadMagic``), any version but 1 (``UnsupportedVersion``) and nonzero
reserved bytes (``LogFormatError``): reserved bytes are for future versions,
which will bump the version number.

Frames follow immediately, back to back, until end of file::

    offset  size    field
    0       1       kind      (u8: FRAME_GENESIS = 1, FRAME_BLOCK = 2)
    1       4       length    (u32, payload length, 0 <= length <= MAX_FRAME)
    5       length  payload   (opaque here; the caller encodes genesis/blocks)
    5+len   8       checksum  = blake3(FRAME_DOMAIN || kind || length || payload)[:8]

with ``FRAME_DOMAIN = b"clearinghouse/log-frame/v1\\x00"`` and ``kind`` and
``length`` hashed as their exact 1- and 4-byte encodings.  The checksum
covers the frame header, so a flipped kind or length is detected as well as
a flipped payload byte.  It is an integrity check against disk damage and
torn writes, not an authenticator (blocks carry their own signatures/roots).

A reader checks each frame in this order: header complete (else
``TruncatedLog``), kind known (``UnknownFrameKind``), length <= MAX_FRAME
(``FrameTooLarge``, checked before reading so a corrupt length never makes
us allocate gigabytes), payload and checksum complete (``TruncatedLog``),
checksum equal (``ChecksumMismatch``).  End of file exactly at a frame
boundary is a clean end.  Every error carries ``offset`` (byte offset of
the frame's first byte) and ``frame_index`` (0-based index of that frame).

A crash during an append leaves a *torn tail*: a prefix of one frame after
the last whole frame.  ``LogWriter(path, create=False, repair_tail=True)``
truncates it away and reports how many bytes it dropped; without
``repair_tail`` it refuses to open.  Caveat: a torn tail is
indistinguishable from a corrupted ``length`` field that points past end of
file, so ``repaired_bytes`` must be surfaced to the operator.
"""

from __future__ import annotations

import io
import os
from collections.abc import Generator, Iterator
from typing import BinaryIO

import msgspec
from blake3 import blake3

from tx.errors import (
    BadMagic,
    ChecksumMismatch,
    FrameTooLarge,
    LogFormatError,
    TruncatedLog,
    UnknownFrameKind,
    UnsupportedVersion,
)

__all__ = [
    "MAGIC",
    "VERSION",
    "HEADER_SIZE",
    "FRAME_HEADER_SIZE",
    "CHECKSUM_SIZE",
    "FRAME_OVERHEAD",
    "MAX_FRAME",
    "FRAME_DOMAIN",
    "FRAME_GENESIS",
    "FRAME_BLOCK",
    "FRAME_KINDS",
    "Frame",
    "LogScan",
    "encode_header",
    "encode_frame",
    "frame_checksum",
    "index_frames",
    "iter_frames_from_bytes",
    "read_log",
    "scan_log",
    "LogWriter",
]

MAGIC = b"CHLOG\r\n\x1a"
VERSION = 1
HEADER_SIZE = 16
FRAME_HEADER_SIZE = 5  # kind (1) + length (4)
CHECKSUM_SIZE = 8
FRAME_OVERHEAD = FRAME_HEADER_SIZE + CHECKSUM_SIZE
MAX_FRAME = 64 * 1024 * 1024
FRAME_DOMAIN = b"clearinghouse/log-frame/v1\x00"

FRAME_GENESIS = 1
FRAME_BLOCK = 2
FRAME_KINDS = frozenset({FRAME_GENESIS, FRAME_BLOCK})

# Read buffer for streaming; frames are read one at a time through it.
_READ_BUFFER = 1024 * 1024


class Frame(msgspec.Struct, frozen=True):
    """One decoded frame: its kind, payload, byte offset and 0-based index."""

    kind: int
    payload: bytes
    offset: int
    index: int


class LogScan(msgspec.Struct, frozen=True):
    """Result of :func:`scan_log`.

    ``frames``: number of whole valid frames; ``valid_length``: byte length
    of the valid prefix (header + those frames; 0 if the header is bad);
    ``tail_bytes``: bytes after it; ``error``: the error that stopped the
    scan, or None if the whole file is valid.
    """

    frames: int
    valid_length: int
    tail_bytes: int
    error: LogFormatError | None


def encode_header(version: int = VERSION) -> bytes:
    """The 16-byte file header."""
    return MAGIC + version.to_bytes(2, "big") + bytes(6)


def frame_checksum(kind: int, length: int, payload: bytes) -> bytes:
    """First 8 bytes of blake3(FRAME_DOMAIN || kind u8 || length u32 || payload)."""
    h = blake3(FRAME_DOMAIN)
    h.update(bytes([kind]))
    h.update(length.to_bytes(4, "big"))
    h.update(payload)
    return h.digest()[:CHECKSUM_SIZE]


def encode_frame(kind: int, payload: bytes) -> bytes:
    """Encode one frame. ValueError for an unknown kind or oversized payload.

    Writing a bad frame is a caller bug, not bad input, hence ValueError
    rather than a LogFormatError.
    """
    if kind not in FRAME_KINDS:
        raise ValueError(f"unknown frame kind {kind!r}")
    if not isinstance(payload, (bytes, bytearray, memoryview)):
        raise ValueError("frame payload must be bytes")
    payload = bytes(payload)
    if len(payload) > MAX_FRAME:
        raise ValueError(f"frame payload of {len(payload)} bytes exceeds MAX_FRAME ({MAX_FRAME})")
    length = len(payload).to_bytes(4, "big")
    return bytes([kind]) + length + payload + frame_checksum(kind, len(payload), payload)


def _read_exact(f: BinaryIO, n: int) -> bytes:
    """Read up to n bytes, looping over short reads; fewer only at EOF."""
    chunks = []
    remaining = n
    while remaining > 0:
        chunk = f.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_header(f: BinaryIO) -> None:
    """Validate the 16-byte file header at the current position (offset 0)."""
    header = _read_exact(f, HEADER_SIZE)
    present_magic = header[: len(MAGIC)]
    if present_magic != MAGIC[: len(present_magic)]:
        raise BadMagic(f"not a clearinghouse log: magic is {present_magic.hex()}, expected {MAGIC.hex()}", offset=0)
    if len(header) < HEADER_SIZE:
        # The bytes present agree with the magic: a header torn while the
        # file was being created (or an empty file).
        raise TruncatedLog(f"truncated header: {len(header)} of {HEADER_SIZE} bytes", offset=0)
    version = int.from_bytes(header[8:10], "big")
    if version != VERSION:
        raise UnsupportedVersion(f"log format version {version} is not supported (expected {VERSION})", offset=0)
    if header[10:16] != bytes(6):
        raise LogFormatError(f"reserved header bytes must be zero, got {header[10:16].hex()}", offset=0)


def _tail_error(tail_len: int, index: int, offset: int) -> TruncatedLog:
    """TruncatedLog for a partial frame of ``tail_len`` bytes at ``offset``."""
    after = f"frame {index - 1}" if index > 0 else "the header"
    return TruncatedLog(
        f"truncated tail: {tail_len} bytes after {after} at offset {offset}",
        offset=offset,
        frame_index=index,
    )


def _iter_frames(f: BinaryIO, offset: int = HEADER_SIZE, index: int = 0) -> Iterator[Frame]:
    """Validate the header, then yield frames from ``f`` (from frame ``index`` at ``offset``) until a clean EOF."""
    _read_header(f)
    if offset != HEADER_SIZE:
        f.seek(offset)
    while True:
        head = _read_exact(f, FRAME_HEADER_SIZE)
        if not head:
            return
        if len(head) < FRAME_HEADER_SIZE:
            raise _tail_error(len(head), index, offset)
        kind = head[0]
        length = int.from_bytes(head[1:5], "big")
        if kind not in FRAME_KINDS:
            raise UnknownFrameKind(
                f"unknown frame kind {kind} in frame {index} at offset {offset}",
                offset=offset,
                frame_index=index,
            )
        if length > MAX_FRAME:
            raise FrameTooLarge(
                f"frame {index} at offset {offset} declares {length} bytes (max {MAX_FRAME})",
                offset=offset,
                frame_index=index,
            )
        body = _read_exact(f, length + CHECKSUM_SIZE)
        if len(body) < length + CHECKSUM_SIZE:
            raise _tail_error(FRAME_HEADER_SIZE + len(body), index, offset)
        payload = body[:length]
        if frame_checksum(kind, length, payload) != body[length:]:
            raise ChecksumMismatch(
                f"checksum mismatch in frame {index} at offset {offset}",
                offset=offset,
                frame_index=index,
            )
        yield Frame(kind=kind, payload=payload, offset=offset, index=index)
        offset += FRAME_OVERHEAD + length
        index += 1


def iter_frames_from_bytes(data: bytes) -> Iterator[Frame]:
    """Decode a whole in-memory log (header + frames); same rules as read_log."""
    return _iter_frames(io.BytesIO(bytes(data)))


def read_log(path: str | os.PathLike[str], *, start: tuple[int, int] | None = None) -> Generator[Frame, None, None]:
    """Stream the frames of the log at ``path``, validating as it goes.

    Memory use is bounded by one frame (<= MAX_FRAME), whatever the file
    size.  Raises a LogFormatError subclass at the first damaged spot;
    frames before it have already been yielded.  ``start = (index, offset)``
    (from :func:`index_frames`) begins at that frame instead of the first:
    the file header is still checked, then reading seeks there.  A wrong
    offset cannot make damage pass: what is read there is checked like any
    frame, and the caller checks what it decodes (a block's height).
    """
    index, offset = start if start is not None else (0, HEADER_SIZE)
    if index < 0 or offset < HEADER_SIZE:
        raise ValueError("start must be a frame index >= 0 and an offset >= HEADER_SIZE")
    with open(path, "rb", buffering=_READ_BUFFER) as f:
        yield from _iter_frames(f, offset, index)


def index_frames(path: str | os.PathLike[str]) -> list[int]:
    """Byte offsets of the log's frames (entry ``i`` = frame ``i``), found without reading payloads.

    Reads each frame's 5-byte header and seeks past its payload and checksum:
    nothing is decoded or checksummed (readers do that), so indexing a long log
    costs one small read per frame.  The file header, each kind and each
    length are checked as :func:`read_log` checks them (the same errors, with
    ``offset`` and ``frame_index``); a torn tail raises ``TruncatedLog``.
    The result is a hint for seeking with ``read_log(path, start=...)``.
    """
    offsets: list[int] = []
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        _read_header(f)
        offset = HEADER_SIZE
        index = 0
        while offset < size:
            f.seek(offset)
            head = _read_exact(f, FRAME_HEADER_SIZE)
            if len(head) < FRAME_HEADER_SIZE:
                raise _tail_error(len(head), index, offset)
            kind = head[0]
            length = int.from_bytes(head[1:5], "big")
            if kind not in FRAME_KINDS:
                raise UnknownFrameKind(
                    f"unknown frame kind {kind} in frame {index} at offset {offset}", offset=offset, frame_index=index
                )
            if length > MAX_FRAME:
                raise FrameTooLarge(
                    f"frame {index} at offset {offset} declares {length} bytes (max {MAX_FRAME})",
                    offset=offset,
                    frame_index=index,
                )
            end = offset + FRAME_OVERHEAD + length
            if end > size:
                raise _tail_error(size - offset, index, offset)
            offsets.append(offset)
            offset = end
            index += 1
    return offsets


def _scan_file(f: BinaryIO) -> tuple[int, int, LogFormatError | None]:
    """Return (whole frames, valid prefix length, error or None) for ``f``."""
    frames = 0
    valid_length = 0
    try:
        for frame in _iter_frames(f):
            frames = frame.index + 1
            valid_length = frame.offset + FRAME_OVERHEAD + len(frame.payload)
        if valid_length == 0:  # header only
            valid_length = HEADER_SIZE
        return frames, valid_length, None
    except LogFormatError as exc:
        if frames == 0 and exc.frame_index is not None:
            valid_length = HEADER_SIZE  # header was fine, first frame was not
        return frames, valid_length, exc


def scan_log(path: str | os.PathLike[str]) -> LogScan:
    """Scan the whole log without raising LogFormatError (for tools).

    OS errors (missing file, permissions) still raise: they say nothing
    about the log's contents.
    """
    with open(path, "rb", buffering=_READ_BUFFER) as f:
        frames, valid_length, error = _scan_file(f)
        size = f.seek(0, os.SEEK_END)
    return LogScan(frames=frames, valid_length=valid_length, tail_bytes=size - valid_length, error=error)


def _fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync the directory holding ``path`` so a new file's entry is durable."""
    dirname = os.path.dirname(os.path.abspath(path))
    try:
        fd = os.open(dirname, os.O_RDONLY)
    except OSError:
        return  # platforms without directory fds (Windows): nothing to do
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LogWriter:
    """Appends frames to a log file.

    ``create=True`` makes a new log (FileExistsError if ``path`` exists,
    unless ``overwrite=True``) and writes and syncs its header.
    ``create=False`` opens an existing log: it validates the header and every
    frame, then positions at the end.  A torn tail raises TruncatedLog unless
    ``repair_tail=True``, in which case the file is truncated to the last
    whole frame and ``repaired_bytes`` says how many bytes were dropped.
    Any other damage always raises.

    Attributes: ``path``, ``frame_count`` (whole frames in the file),
    ``size`` (file length in bytes), ``repaired_bytes``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        create: bool,
        overwrite: bool = False,
        repair_tail: bool = False,
    ) -> None:
        if create and repair_tail:
            raise ValueError("repair_tail only applies when opening an existing log")
        if not create and overwrite:
            raise ValueError("overwrite only applies when creating a log")
        self.path = path
        self.frame_count = 0
        self.repaired_bytes = 0
        self._broken = False
        if create:
            self._f: BinaryIO = open(path, "wb" if overwrite else "xb")
            try:
                self._f.write(encode_header())
                self._f.flush()
                os.fsync(self._f.fileno())
            except BaseException:
                self._f.close()
                raise
            _fsync_dir(path)
            self.size = HEADER_SIZE
        else:
            self._f = open(path, "r+b")
            try:
                self._open_existing(repair_tail)
            except BaseException:
                self._f.close()
                raise

    def _open_existing(self, repair_tail: bool) -> None:
        """Scan the existing file; repair or reject a torn tail; seek to end."""
        self._f.seek(0)
        frames, valid_length, error = _scan_file(self._f)
        size = self._f.seek(0, os.SEEK_END)
        if error is not None:
            # Only a torn *frame* is repairable; a torn header means the
            # file never became a log, and anything else is real damage.
            if not (repair_tail and isinstance(error, TruncatedLog) and error.frame_index is not None):
                raise error
            self._f.truncate(valid_length)
            self._f.flush()
            os.fsync(self._f.fileno())
            self.repaired_bytes = size - valid_length
            size = valid_length
        self.frame_count = frames
        self.size = size
        self._f.seek(size)

    def append(self, kind: int, payload: bytes) -> int:
        """Append one frame (buffered; see flush); return its index."""
        if self._f.closed:
            raise ValueError("log writer is closed")
        if self._broken:
            # A failed write may have left a partial frame; appending after
            # it would bury the tear in the middle of the log.
            raise ValueError("log writer is unusable after a failed write; reopen with repair_tail")
        data = encode_frame(kind, payload)
        try:
            self._f.write(data)
        except BaseException:
            self._broken = True
            raise
        index = self.frame_count
        self.frame_count += 1
        self.size += len(data)
        return index

    def flush(self, fsync: bool = True) -> None:
        """Push buffered frames to the OS, and to stable storage if ``fsync``."""
        try:
            self._f.flush()
            if fsync:
                os.fsync(self._f.fileno())
        except BaseException:
            self._broken = True
            raise

    def close(self) -> None:
        """Flush, fsync and close; idempotent."""
        if self._f.closed:
            return
        try:
            if not self._broken:
                self.flush(fsync=True)
        finally:
            self._f.close()

    @property
    def closed(self) -> bool:
        """True once close() has run."""
        return self._f.closed

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
