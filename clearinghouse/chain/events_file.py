"""The events file: each committed block's header and events, appended beside the state database.

Events are not state (no root depends on where they are kept), yet tools (``explain``,
``export``, reports) want them by height. Keeping them in the state database made it
grow by the size of every block's events forever; this file keeps them out of it
(protocol §8.5, "Events file"):

    header  16 bytes: magic ``CHEVT\\r\\n\\x1a``, u16 version 1, 6 zero bytes
    frame   u64 height, u32 header_len, u32 events_len, encode(Header), encode(events)

The state database stores, with every block, ``events_end``: the file's length after that
block's frame, in the same write transaction. A writer opening the file truncates it to that
length (frames of blocks a crash left uncommitted are dropped); readers never read past it.
The file is synced before the state database commits, so ``events_end`` never points past
what is on disk.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO, NamedTuple

MAGIC = b"CHEVT\r\n\x1a"
VERSION = 1
HEADER = MAGIC + VERSION.to_bytes(2, "big") + bytes(6)
"""The file header (16 bytes)."""

FRAME_HEAD = struct.Struct(">QII")
"""Frame head: height (u64), header length (u32), events length (u32)."""

FILE_NAME = "events.dat"
"""Name of the events file inside an LMDB state directory."""

META_EVENTS_END = "events_end"
"""Meta entry of the state database: the events file's committed length (u64 big-endian)."""


class EventsFileError(Exception):
    """The events file is damaged (bad header, a frame running past the committed end)."""


class Frame(NamedTuple):
    """Where one block's frame lies in the file."""

    offset: int
    header_len: int
    events_len: int


class EventsFile:
    """An events file opened for appending (``writable``) or for reading up to ``end``."""

    def __init__(self, path: str, *, end: int | None, writable: bool) -> None:
        """Open ``path``. A writer truncates the file to ``end`` (creating it if absent; ``None``:
        start empty); a reader reads up to ``end`` (``None``: the whole file).

        Raises:
            EventsFileError: the file exists but does not start with the events file header.
        """
        self.path = path
        self.writable = writable
        self._frames: dict[int, Frame] | None = None
        self._file: BinaryIO | None = None
        if writable:
            exists = os.path.exists(path)
            f: BinaryIO = open(path, "r+b" if exists else "w+b")  # noqa: SIM115 - kept open
            self._file = f
            size = os.fstat(f.fileno()).st_size
            if size >= len(HEADER):
                if f.read(len(HEADER)) != HEADER:
                    f.close()
                    raise EventsFileError(f"{path}: not an events file (bad header)")
            keep = len(HEADER) if end is None else max(len(HEADER), min(end, size))
            if size < len(HEADER) or end is None:
                f.seek(0)
                f.write(HEADER)
            f.truncate(keep)
            f.seek(keep)
            self.end = keep
        else:
            size = os.path.getsize(path) if os.path.exists(path) else 0
            self.end = size if end is None else min(end, size)

    @classmethod
    def beside(cls, directory: str, *, end: int | None, writable: bool) -> EventsFile:
        """The events file of the state database in ``directory``."""
        return cls(os.path.join(directory, FILE_NAME), end=end, writable=writable)

    # ------------------------------------------------------------ writing
    def append(self, height: int, header: bytes, events: bytes) -> int:
        """Append one block's frame (buffered); return the new end offset."""
        assert self._file is not None, "events file opened read-only"
        offset = self.end
        self._file.write(FRAME_HEAD.pack(height, len(header), len(events)))
        self._file.write(header)
        self._file.write(events)
        self.end = offset + FRAME_HEAD.size + len(header) + len(events)
        if self._frames is not None:
            self._frames[height] = Frame(offset, len(header), len(events))
        return self.end

    def truncate(self, end: int) -> None:
        """Drop everything after ``end`` (a block whose commit failed)."""
        assert self._file is not None, "events file opened read-only"
        self._file.flush()
        self._file.truncate(end)
        self._file.seek(end)
        self.end = end
        self._frames = None

    def sync(self) -> None:
        """Write buffered frames and ``fsync`` them (called before the state database commits)."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            f.flush()
            f.close()

    # ------------------------------------------------------------ reading
    def _index(self) -> dict[int, Frame]:
        if self._frames is None:
            if self._file is not None:
                self._file.flush()
            frames: dict[int, Frame] = {}
            if self.end > len(HEADER):
                with open(self.path, "rb") as f:
                    if f.read(len(HEADER)) != HEADER:
                        raise EventsFileError(f"{self.path}: not an events file (bad header)")
                    offset = len(HEADER)
                    while offset < self.end:
                        head = f.read(FRAME_HEAD.size)
                        if len(head) < FRAME_HEAD.size:
                            raise EventsFileError(f"{self.path}: frame at offset {offset} is cut short")
                        height, hlen, elen = FRAME_HEAD.unpack(head)
                        nxt = offset + FRAME_HEAD.size + hlen + elen
                        if nxt > self.end:
                            raise EventsFileError(f"{self.path}: frame at offset {offset} runs past the end")
                        frames[height] = Frame(offset, hlen, elen)
                        f.seek(nxt)
                        offset = nxt
            self._frames = frames
        return self._frames

    def read(self, height: int) -> tuple[bytes, bytes] | None:
        """The encoded header and events of block ``height``, or None if the file does not hold it."""
        frame = self._index().get(height)
        if frame is None:
            return None
        if self._file is not None:
            self._file.flush()
        with open(self.path, "rb") as f:
            f.seek(frame.offset + FRAME_HEAD.size)
            header = f.read(frame.header_len)
            events = f.read(frame.events_len)
        return header, events
