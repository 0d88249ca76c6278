"""Tests for tx.logfile: layout, round trips, damage detection, tail repair."""

from __future__ import annotations

import os

import pytest
from blake3 import blake3
from hypothesis import given, settings
from hypothesis import strategies as st

from tx.errors import (
    BadMagic,
    ChecksumMismatch,
    FrameTooLarge,
    LogFormatError,
    TruncatedLog,
    UnknownFrameKind,
    UnsupportedVersion,
)
from tx.logfile import (
    CHECKSUM_SIZE,
    FRAME_BLOCK,
    FRAME_DOMAIN,
    FRAME_GENESIS,
    FRAME_HEADER_SIZE,
    FRAME_OVERHEAD,
    HEADER_SIZE,
    MAGIC,
    MAX_FRAME,
    Frame,
    LogWriter,
    encode_frame,
    encode_header,
    iter_frames_from_bytes,
    read_log,
    scan_log,
)

SMALL_FRAMES = [(FRAME_GENESIS, b"genesis"), (FRAME_BLOCK, b""), (FRAME_BLOCK, b"block-1 payload")]


def _small_log() -> bytes:
    """Header + three frames, as bytes."""
    return encode_header() + b"".join(encode_frame(k, p) for k, p in SMALL_FRAMES)


def _frame_spans(data: bytes) -> list[tuple[int, int]]:
    """(start, end) byte offsets of each frame in a valid log."""
    return [(f.offset, f.offset + FRAME_OVERHEAD + len(f.payload)) for f in iter_frames_from_bytes(data)]


def _write(tmp_path, data: bytes, name: str = "chain.log"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# --- layout ----------------------------------------------------------------


def test_header_layout():
    assert MAGIC == b"CHLOG\r\n\x1a"
    assert encode_header() == MAGIC + b"\x00\x01" + bytes(6)
    assert len(encode_header()) == HEADER_SIZE == 16


def test_frame_layout():
    frame = encode_frame(FRAME_BLOCK, b"abc")
    assert frame[0] == FRAME_BLOCK
    assert frame[1:5] == b"\x00\x00\x00\x03"
    assert frame[5:8] == b"abc"
    assert frame[8:] == blake3(FRAME_DOMAIN + b"\x02\x00\x00\x00\x03abc").digest()[:8]
    assert len(frame) == FRAME_OVERHEAD + 3


def test_encode_frame_rejects_caller_bugs():
    with pytest.raises(ValueError):
        encode_frame(3, b"")
    with pytest.raises(ValueError):
        encode_frame(0, b"")
    with pytest.raises(ValueError):
        encode_frame(FRAME_BLOCK, "text")  # type: ignore[arg-type]


# --- round trips -------------------------------------------------------------


def test_write_read_round_trip(tmp_path):
    path = tmp_path / "chain.log"
    with LogWriter(path, create=True) as w:
        for kind, payload in SMALL_FRAMES:
            w.append(kind, payload)
        assert w.frame_count == 3
    frames = list(read_log(path))
    assert [(f.kind, f.payload) for f in frames] == SMALL_FRAMES
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[0].offset == HEADER_SIZE
    assert path.read_bytes() == _small_log()
    scan = scan_log(path)
    assert (scan.frames, scan.valid_length, scan.tail_bytes, scan.error) == (3, len(_small_log()), 0, None)


def test_empty_log(tmp_path):
    path = tmp_path / "chain.log"
    LogWriter(path, create=True).close()
    assert path.read_bytes() == encode_header()
    assert list(read_log(path)) == []
    assert scan_log(path).valid_length == HEADER_SIZE


def test_append_after_reopen(tmp_path):
    path = tmp_path / "chain.log"
    with LogWriter(path, create=True) as w:
        w.append(FRAME_GENESIS, b"g")
    with LogWriter(path, create=False) as w:
        assert w.frame_count == 1
        assert w.repaired_bytes == 0
        assert w.append(FRAME_BLOCK, b"b1") == 1
    assert [f.payload for f in read_log(path)] == [b"g", b"b1"]


def test_create_refuses_existing_unless_overwrite(tmp_path):
    path = _write(tmp_path, _small_log())
    with pytest.raises(FileExistsError):
        LogWriter(path, create=True)
    LogWriter(path, create=True, overwrite=True).close()
    assert list(read_log(path)) == []


def test_open_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        LogWriter(tmp_path / "nope.log", create=False)


def test_writer_rejects_nonsense_options(tmp_path):
    with pytest.raises(ValueError):
        LogWriter(tmp_path / "a.log", create=True, repair_tail=True)
    with pytest.raises(ValueError):
        LogWriter(tmp_path / "a.log", create=False, overwrite=True)


def test_closed_writer_refuses_append(tmp_path):
    w = LogWriter(tmp_path / "a.log", create=True)
    w.close()
    w.close()  # idempotent
    assert w.closed
    with pytest.raises(ValueError):
        w.append(FRAME_BLOCK, b"")


@settings(max_examples=50, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([FRAME_GENESIS, FRAME_BLOCK]), st.binary(max_size=300)),
        max_size=12,
    )
)
def test_round_trip_random_payloads(frames):
    data = encode_header() + b"".join(encode_frame(k, p) for k, p in frames)
    decoded = list(iter_frames_from_bytes(data))
    assert [(f.kind, f.payload) for f in decoded] == frames
    offset = HEADER_SIZE
    for i, f in enumerate(decoded):
        assert (f.index, f.offset) == (i, offset)
        offset += FRAME_OVERHEAD + len(f.payload)
    assert offset == len(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.booleans())
def test_arbitrary_bytes_only_log_errors(tail, with_header):
    data = (encode_header() if with_header else b"") + tail
    try:
        for frame in iter_frames_from_bytes(data):
            assert frame.kind in (FRAME_GENESIS, FRAME_BLOCK)
    except LogFormatError as err:
        assert err.offset is not None


def test_round_trip_random_payloads_on_disk(tmp_path):
    # Disk path with a larger payload, crossing the read buffer size.
    big = bytes(range(256)) * 5000
    path = tmp_path / "big.log"
    with LogWriter(path, create=True) as w:
        w.append(FRAME_GENESIS, big)
        w.append(FRAME_BLOCK, big[::-1])
    assert [f.payload for f in read_log(path)] == [big, big[::-1]]


# --- damage ---------------------------------------------------------------


def test_every_single_byte_flip_is_typed():
    data = _small_log()
    spans = _frame_spans(data)
    for pos in range(len(data)):
        for mask in (0x01, 0x80, 0xFF):
            damaged = bytearray(data)
            damaged[pos] ^= mask
            with pytest.raises(LogFormatError) as info:
                list(iter_frames_from_bytes(bytes(damaged)))
            err = info.value
            assert str(err).startswith(err.code + ": ")
            if pos < 8:
                assert isinstance(err, BadMagic)
            elif pos < 10:
                assert isinstance(err, UnsupportedVersion)
            elif pos < HEADER_SIZE:
                assert type(err) is LogFormatError
            else:
                index = next(i for i, (a, b) in enumerate(spans) if a <= pos < b)
                start = spans[index][0]
                assert err.frame_index == index and err.offset == start
                if pos >= start + FRAME_HEADER_SIZE:  # payload or checksum
                    assert isinstance(err, ChecksumMismatch)
                elif pos == start:  # kind
                    assert isinstance(err, (UnknownFrameKind, ChecksumMismatch))
                else:  # length
                    assert isinstance(err, (FrameTooLarge, TruncatedLog, ChecksumMismatch))


def test_every_truncation_is_detected():
    data = _small_log()
    boundaries = {HEADER_SIZE} | {end for _, end in _frame_spans(data)}
    for cut in range(len(data)):
        prefix = data[:cut]
        if cut in boundaries:
            assert len(list(iter_frames_from_bytes(prefix))) == sum(1 for b in boundaries if HEADER_SIZE < b <= cut)
            continue
        with pytest.raises((TruncatedLog, BadMagic)) as info:
            list(iter_frames_from_bytes(prefix))
        err = info.value
        if cut < HEADER_SIZE:
            assert err.offset == 0 and err.frame_index is None
        else:
            assert isinstance(err, TruncatedLog)
            start = max(b for b in boundaries if b < cut)
            assert err.offset == start
            assert f"{cut - start} bytes" in str(err) and f"offset {start}" in str(err)


def test_truncated_tail_message():
    data = _small_log()
    spans = _frame_spans(data)
    with pytest.raises(TruncatedLog) as info:
        list(iter_frames_from_bytes(data[:-3]))
    last_start = spans[-1][0]
    assert str(info.value) == (
        f"LOG_TRUNCATED: truncated tail: {len(data) - 3 - last_start} bytes after frame 1 at offset {last_start}"
    )
    assert info.value.frame_index == 2


def test_frames_before_damage_are_yielded():
    data = bytearray(_small_log())
    data[-1] ^= 1
    got = []
    with pytest.raises(ChecksumMismatch):
        for frame in iter_frames_from_bytes(bytes(data)):
            got.append(frame)
    assert [f.index for f in got] == [0, 1]


def test_bad_magic_and_version():
    with pytest.raises(BadMagic):
        list(iter_frames_from_bytes(b"GARBAGE!" + bytes(8)))
    with pytest.raises(BadMagic):
        list(iter_frames_from_bytes(b"X"))
    with pytest.raises(UnsupportedVersion):
        list(iter_frames_from_bytes(MAGIC + b"\x00\x02" + bytes(6)))
    with pytest.raises(UnsupportedVersion):
        list(iter_frames_from_bytes(MAGIC + b"\x00\x00" + bytes(6)))


def test_empty_file_is_truncated_header():
    with pytest.raises(TruncatedLog) as info:
        list(iter_frames_from_bytes(b""))
    assert info.value.offset == 0


def test_frame_too_large():
    oversize = (MAX_FRAME + 1).to_bytes(4, "big")
    data = encode_header() + encode_frame(FRAME_GENESIS, b"g") + bytes([FRAME_BLOCK]) + oversize
    with pytest.raises(FrameTooLarge) as info:
        list(iter_frames_from_bytes(data))
    assert info.value.frame_index == 1
    assert info.value.offset == HEADER_SIZE + FRAME_OVERHEAD + 1
    # Exactly MAX_FRAME is allowed by the header check (here: truncated).
    exact = encode_header() + bytes([FRAME_BLOCK]) + MAX_FRAME.to_bytes(4, "big")
    with pytest.raises(TruncatedLog):
        list(iter_frames_from_bytes(exact))


def test_unknown_kind():
    frame = bytearray(encode_frame(FRAME_BLOCK, b"x"))
    frame[0] = 9
    with pytest.raises(UnknownFrameKind) as info:
        list(iter_frames_from_bytes(encode_header() + bytes(frame)))
    assert (info.value.offset, info.value.frame_index) == (HEADER_SIZE, 0)
    assert info.value.code == "LOG_FRAME_KIND"


def test_read_log_errors_from_disk(tmp_path):
    data = bytearray(_small_log())
    data[HEADER_SIZE + FRAME_HEADER_SIZE] ^= 0x40
    path = _write(tmp_path, bytes(data))
    with pytest.raises(ChecksumMismatch) as info:
        list(read_log(path))
    assert info.value.offset == HEADER_SIZE and info.value.frame_index == 0


# --- scan and repair -------------------------------------------------------


def test_scan_log_reports_tail(tmp_path):
    data = _small_log()
    path = _write(tmp_path, data[:-4])
    scan = scan_log(path)
    last_start = _frame_spans(data)[-1][0]
    assert scan.frames == 2
    assert scan.valid_length == last_start
    assert scan.tail_bytes == len(data) - 4 - last_start
    assert isinstance(scan.error, TruncatedLog)


def test_scan_log_bad_header(tmp_path):
    path = _write(tmp_path, b"not a log at all")
    scan = scan_log(path)
    assert (scan.frames, scan.valid_length, scan.tail_bytes) == (0, 0, 16)
    assert isinstance(scan.error, BadMagic)


def test_scan_log_damaged_first_frame(tmp_path):
    frame = bytearray(encode_frame(FRAME_BLOCK, b"x"))
    frame[-1] ^= 1
    path = _write(tmp_path, encode_header() + bytes(frame))
    scan = scan_log(path)
    assert (scan.frames, scan.valid_length) == (0, HEADER_SIZE)
    assert isinstance(scan.error, ChecksumMismatch)


def test_torn_tail_refused_without_repair(tmp_path):
    data = _small_log()
    path = _write(tmp_path, data[:-5])
    with pytest.raises(TruncatedLog):
        LogWriter(path, create=False)
    assert path.read_bytes() == data[:-5]  # untouched


def test_repair_tail_truncates_and_reports(tmp_path):
    data = _small_log()
    last_start = _frame_spans(data)[-1][0]
    for cut in range(last_start + 1, len(data)):
        path = _write(tmp_path, data[:cut], f"torn-{cut}.log")
        with LogWriter(path, create=False, repair_tail=True) as w:
            assert w.repaired_bytes == cut - last_start
            assert w.frame_count == 2
            w.append(FRAME_BLOCK, b"block-1 payload")
        assert path.read_bytes() == data


def test_repair_tail_does_not_touch_other_damage(tmp_path):
    data = bytearray(_small_log())
    data[-1] ^= 1
    path = _write(tmp_path, bytes(data))
    with pytest.raises(ChecksumMismatch):
        LogWriter(path, create=False, repair_tail=True)
    assert path.read_bytes() == bytes(data)


def test_repair_tail_refuses_torn_header(tmp_path):
    path = _write(tmp_path, MAGIC[:5])
    with pytest.raises(TruncatedLog):
        LogWriter(path, create=False, repair_tail=True)
    assert path.read_bytes() == MAGIC[:5]


def test_clean_log_reports_zero_repair(tmp_path):
    path = _write(tmp_path, _small_log())
    with LogWriter(path, create=False, repair_tail=True) as w:
        assert w.repaired_bytes == 0 and w.frame_count == 3
        assert w.size == os.path.getsize(path)


def test_frame_is_frozen():
    frame = Frame(kind=1, payload=b"", offset=16, index=0)
    with pytest.raises(AttributeError):
        frame.kind = 2  # type: ignore[misc]


def test_checksum_size_constant():
    assert CHECKSUM_SIZE == 8 and FRAME_OVERHEAD == 13


def test_documented_example_log():
    # The hex dump in docs/wire-signing-and-log.md.
    expected = bytes.fromhex(
        "43484c4f470d0a1a"  # "CHLOG\r\n\x1a"
        + "0001"
        + "000000000000"
        + "0100000003"
        + "67656e"
        + "a4926faa71b8bc55"
        + "0200000000"
        + "e8f8d1c8d4f583ce"
    )
    data = encode_header() + encode_frame(FRAME_GENESIS, b"gen") + encode_frame(FRAME_BLOCK, b"")
    assert data == expected and len(data) == 45
