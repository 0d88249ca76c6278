"""The ``clearinghouse`` command: verify, replay, inspect, demo (README "What you get").

Damage to a log always gives exit 1 with a one-line ``error: CODE: message``
(or a verification report naming the height), never a traceback. Most runs
call ``clearinghouse.tools.cli.main`` in-process for speed; a few go through
``python -m clearinghouse.tools.cli`` to check the real entry point.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from conftest import subprocess_env

from clearinghouse.spec import block as transition
from clearinghouse.spec.actions.collateral import apply_deposit
from clearinghouse.spec.events import Deposited
from clearinghouse.spec.state.accounts import add_cash
from clearinghouse.spec.state.keys import account_key
from clearinghouse.tools.cli import main
from clearinghouse.tools.demo import USDC
from state import Proof, verify_proof
from tx import actions as A
from tx.encoding import decode_canonical, decode_transaction, encode
from tx.errors import DecodeError, NonCanonicalEncoding
from tx.logfile import (
    CHECKSUM_SIZE,
    FRAME_BLOCK,
    FRAME_HEADER_SIZE,
    HEADER_SIZE,
    encode_frame,
    encode_header,
    frame_checksum,
    iter_frames_from_bytes,
)
from tx.messages import LogBlock, Transaction
from tx.signing import Signer, checksum_address


def run_cli(args: list[str]) -> tuple[int, str, str]:
    """``main(args)`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            rc = exc.code if isinstance(exc.code, int) else 1
    return rc, out.getvalue(), err.getvalue()


def assert_clean_failure(rc: int, err: str, *, one_line: bool = True) -> None:
    assert rc == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    if one_line:
        assert err.startswith("error: ") and err.count("\n") == 1, err


# ---------------------------------------------------------------- the log's byte layout
def frames_of(data: bytes) -> list[Any]:
    return list(iter_frames_from_bytes(data))


def block_regions(data: bytes) -> list[tuple[Any, int, int, str]]:
    """(frame, start, end, "header" | "tx") byte ranges of every block header and transaction in a log."""
    regions = []
    for frame in frames_of(data):
        if frame.kind != FRAME_BLOCK:
            continue
        entry = decode_canonical(frame.payload, LogBlock)
        base = frame.offset + FRAME_HEADER_SIZE
        pieces = [("header", encode(entry.block.header))] + [("tx", tx) for tx in entry.block.txs]
        pos = 0
        for kind, piece in pieces:
            pos = frame.payload.index(piece, pos)
            regions.append((frame, base + pos, base + pos + len(piece), kind))
            pos += len(piece)
    return regions


def flipped(data: bytes, offset: int, frame: Any | None = None) -> bytes:
    """``data`` with byte ``offset`` inverted; with ``frame``, its checksum recomputed to match."""
    buf = bytearray(data)
    buf[offset] ^= 0xFF
    if frame is not None:
        start = frame.offset + FRAME_HEADER_SIZE
        end = start + len(frame.payload)
        buf[end : end + CHECKSUM_SIZE] = frame_checksum(frame.kind, len(frame.payload), bytes(buf[start:end]))
    return bytes(buf)


def rebuild(data: bytes, replace: dict[int, LogBlock]) -> bytes:
    """The log with some block frames (by frame index) re-encoded from new entries."""
    out = [encode_header()]
    for frame in frames_of(data):
        payload = encode(replace[frame.index]) if frame.index in replace else frame.payload
        out.append(encode_frame(frame.kind, payload))
    return b"".join(out)


def log_height(data: bytes) -> int:
    return sum(1 for f in frames_of(data) if f.kind == FRAME_BLOCK)


def block_entries(data: bytes) -> Iterator[tuple[int, LogBlock]]:
    for frame in frames_of(data):
        if frame.kind == FRAME_BLOCK:
            yield frame.index, decode_canonical(frame.payload, LogBlock)


# ---------------------------------------------------------------- verify
def test_verify_accepts_the_demo_log(demo_log: Path) -> None:
    for backend in ("memory", "lmdb"):
        rc, out, err = run_cli(["verify", demo_log, "--backend", backend])
        assert rc == 0, err
        assert "OK" in out
    rc, out, _ = run_cli(["verify", demo_log, "--json"])
    report = json.loads(out)
    assert rc == 0 and report["ok"] is True and report["height"] == log_height(demo_log.read_bytes())


@pytest.fixture(scope="module")
def demo_bytes(demo_log: Path) -> bytes:
    return demo_log.read_bytes()


def flip_cases(data: bytes, budget: int | None) -> list[tuple[Any, int]]:
    """(frame, offset) for the bytes of every block header and transaction.

    With a ``budget``, an even sample of about that many offsets plus the
    first byte of each block header (the soak run, ``--soak``, takes every
    offset: minutes, as the demo log grows).
    """
    regions = block_regions(data)
    cases = [(frame, o) for frame, a, b, _ in regions for o in range(a, b)]
    if budget is None:
        return cases
    stride = max(1, len(cases) // budget)
    header_starts = {a for _, a, _, kind in regions if kind == "header"}
    return [c for i, c in enumerate(cases) if i % stride == 0 or c[1] in header_starts]


def every_or_sample(budget: int) -> list[Any]:
    return [pytest.param(budget, id="sample"), pytest.param(None, id="every-offset", marks=pytest.mark.soak)]


@pytest.mark.parametrize("budget", every_or_sample(50))
def test_flipped_header_or_transaction_byte_is_caught(demo_bytes: bytes, tmp_path: Path, budget: int | None) -> None:
    """A byte of a block header or transaction, inverted: exit 1, one line, no traceback."""
    path = tmp_path / "flipped.log"
    for _, offset in flip_cases(demo_bytes, budget):
        path.write_bytes(flipped(demo_bytes, offset))
        rc, _, err = run_cli(["verify", path])
        assert_clean_failure(rc, err)
        assert "LOG_CHECKSUM" in err, (offset, err)


@pytest.mark.parametrize("budget", every_or_sample(100))
def test_flipped_bytes_with_recomputed_checksum_fail_verification(
    demo_bytes: bytes, tmp_path: Path, budget: int | None
) -> None:
    """A forger who fixes the frame checksum is caught by the roots (or the decoder): exit 1, named height."""
    path = tmp_path / "forged.log"
    for frame, offset in flip_cases(demo_bytes, budget):
        path.write_bytes(flipped(demo_bytes, offset, frame))
        rc, _, err = run_cli(["verify", path])
        assert_clean_failure(rc, err, one_line=False)
        assert err.startswith("error: ") or "verify failed at height" in err, (offset, err)


@pytest.mark.soak
def test_every_flipped_byte_after_the_file_header_is_caught(demo_bytes: bytes, tmp_path: Path) -> None:
    path = tmp_path / "flipped.log"
    for offset in range(HEADER_SIZE, len(demo_bytes)):
        path.write_bytes(flipped(demo_bytes, offset))
        rc, _, err = run_cli(["verify", path])
        assert_clean_failure(rc, err)


def test_flipped_bytes_through_the_real_command(demo_bytes: bytes, tmp_path: Path) -> None:
    regions = block_regions(demo_bytes)
    cases = [regions[1][1] + 40, regions[-1][2] - 1]
    for offset in cases:
        path = tmp_path / f"flip{offset}.log"
        path.write_bytes(flipped(demo_bytes, offset))
        proc = subprocess.run(
            [sys.executable, "-m", "clearinghouse.tools.cli", "verify", str(path)],
            env=subprocess_env(),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert (
            proc.returncode == 1 and "Traceback" not in proc.stderr and proc.stderr.startswith("error: LOG_CHECKSUM")
        ), proc.stderr


def first_transfer(data: bytes) -> tuple[int, LogBlock, int, Transaction]:
    """(frame index, entry, tx index, decoded tx) of the log's first well-formed transfer."""
    for index, entry in block_entries(data):
        for i, raw in enumerate(entry.block.txs):
            try:
                tx = decode_transaction(raw)
            except (DecodeError, NonCanonicalEncoding):
                continue
            if isinstance(tx.action, A.Transfer):
                return index, entry, i, tx
    raise AssertionError("the demo log has no transfer")


def test_tampered_transfer_amount_with_valid_checksum_names_the_height(demo_bytes: bytes, tmp_path: Path) -> None:
    """Change a transfer's amount inside a block, re-sign nothing, re-frame: the tx root catches it."""
    index, entry, i, tx = first_transfer(demo_bytes)
    height = entry.block.header.height
    forged_tx = encode(
        Transaction(
            action=msgspec.structs.replace(tx.action, amount=tx.action.amount * 10),
            nonce=tx.nonce,
            signature=tx.signature,
        )
    )
    txs = list(entry.block.txs)
    txs[i] = forged_tx
    forged = msgspec.structs.replace(entry, block=msgspec.structs.replace(entry.block, txs=txs))
    path = tmp_path / "forged.log"
    path.write_bytes(rebuild(demo_bytes, {index: forged}))
    rc, _, err = run_cli(["verify", path])
    assert_clean_failure(rc, err, one_line=False)
    assert f"verify failed at height {height}" in err and "tx root mismatch" in err
    rc, out, _ = run_cli(["verify", path, "--json"])
    report = json.loads(out)
    assert rc == 1 and (report["ok"], report["height"], report["what"]) == (False, height, "tx_root")


def test_tampered_header_state_root_names_the_height(demo_bytes: bytes, tmp_path: Path) -> None:
    index, entry = list(block_entries(demo_bytes))[2]
    header = msgspec.structs.replace(entry.block.header, state_root=bytes(32))
    forged = msgspec.structs.replace(entry, block=msgspec.structs.replace(entry.block, header=header))
    path = tmp_path / "forged.log"
    path.write_bytes(rebuild(demo_bytes, {index: forged}))
    rc, out, _ = run_cli(["verify", path, "--json"])
    report = json.loads(out)
    assert rc == 1 and (report["height"], report["what"]) == (header.height, "state_root")
    assert report["differing_keys"] == []  # the replay agrees with the producer's witness: only the header lies


def _dishonest_log(producer: Any, monkeypatch: pytest.MonkeyPatch, handler: Any) -> tuple[Path, bytes]:
    """A log whose producer ran ``handler`` for deposits; returns (log, alice's address)."""
    monkeypatch.setitem(transition.HANDLERS, A.Deposit, handler)
    p = producer(log=True)
    alice = p.wallet("alice")
    p.block([p.wallet("bridge").sign(A.Deposit(to=alice.address, amount=100 * USDC, ref=1), p.time_ms + 1000)])
    p.close()
    monkeypatch.setitem(transition.HANDLERS, A.Deposit, apply_deposit)
    return p.log_path, alice.address


def test_dishonest_state_names_the_differing_keys(producer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def credit_one_more(ctx: Any, action: A.Deposit) -> None:
        apply_deposit(ctx, action)
        add_cash(ctx.ws, action.to, 1)

    log, alice = _dishonest_log(producer, monkeypatch, credit_one_more)
    key = f"account/0x{alice.hex()}"
    rc, _, err = run_cli(["verify", log])
    assert_clean_failure(rc, err, one_line=False)
    assert "verify failed at height 1" in err and "state root mismatch" in err and f"differing state key: {key}" in err
    rc, out, _ = run_cli(["verify", log, "--json"])
    report = json.loads(out)
    assert (report["height"], report["what"], report["differing_keys"]) == (1, "state_root", [key])


def test_dishonest_events_name_the_transaction(producer: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def extra_event(ctx: Any, action: A.Deposit) -> None:
        apply_deposit(ctx, action)
        ctx.emit(Deposited(tx_index=ctx.tx_index, account=action.to, amount=1, ref=action.ref))

    log, _ = _dishonest_log(producer, monkeypatch, extra_event)
    rc, out, _ = run_cli(["verify", log, "--json"])
    report = json.loads(out)
    assert rc == 1 and (report["height"], report["what"], report["tx_index"]) == (1, "events_root", 0)


def test_truncated_log(demo_bytes: bytes, tmp_path: Path) -> None:
    path = tmp_path / "short.log"
    frames = frames_of(demo_bytes)
    boundaries = {f.offset for f in frames}
    for size in (0, 7, HEADER_SIZE + 3, frames[2].offset + 1, frames[3].offset + 30, len(demo_bytes) - 1):
        path.write_bytes(demo_bytes[:size])
        rc, _, err = run_cli(["verify", path])
        assert_clean_failure(rc, err)
        assert "LOG_TRUNCATED" in err, err
    # Cut exactly at a frame boundary: a shorter, valid chain.
    assert frames[3].offset in boundaries
    path.write_bytes(demo_bytes[: frames[3].offset])
    rc, out, err = run_cli(["verify", path, "--json"])
    assert rc == 0 and json.loads(out)["height"] == 2, err


def test_not_a_log_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "junk.log"
    path.write_bytes(b"hello, world\n" * 10)
    rc, _, err = run_cli(["verify", path])
    assert_clean_failure(rc, err)
    assert "LOG_BAD_MAGIC" in err
    rc, _, err = run_cli(["verify", tmp_path / "missing.log"])
    assert_clean_failure(rc, err)
    rc, _, err = run_cli(["replay", tmp_path / "missing.log", "--db", tmp_path / "db"])
    assert_clean_failure(rc, err)


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    assert run_cli([])[0] == 2
    assert run_cli(["frobnicate"])[0] == 2
    assert run_cli(["verify"])[0] == 2
    assert run_cli(["verify", "x.log", "--backend", "paper"])[0] == 2
    rc, _, err = run_cli(["inspect", "--db", tmp_path, "0x1234"])
    assert rc == 2 and err.startswith("error: ") and "Traceback" not in err


# ---------------------------------------------------------------- replay and inspect
@pytest.fixture
def replayed(demo_log: Path, tmp_path: Path) -> Path:
    db = tmp_path / "db"
    rc, out, err = run_cli(["replay", demo_log, "--db", db, "--json"])
    assert rc == 0, err
    summary = json.loads(out)
    assert (summary["blocks_applied"], summary["blocks_skipped"]) == (log_height(demo_log.read_bytes()), 0)
    return db


def test_replay_resumes(demo_log: Path, replayed: Path) -> None:
    _, first, _ = run_cli(["verify", demo_log, "--json"])
    height = log_height(demo_log.read_bytes())
    rc, out, err = run_cli(["replay", demo_log, "--db", replayed, "--json"])
    summary = json.loads(out)
    assert rc == 0, err
    assert (summary["blocks_applied"], summary["blocks_skipped"], summary["height"]) == (0, height, height)
    assert summary["state_root"] == json.loads(first)["state_root"]
    rc, out, _ = run_cli(["replay", demo_log, "--db", replayed])  # the human summary
    assert rc == 0 and f"0 applied, {height} already stored" in out


def test_replay_refuses_another_chains_log(replayed: Path, producer: Any) -> None:
    from clearinghouse.tools.demo import demo_genesis

    p = producer(log=True, genesis=demo_genesis(policy="seed"))
    p.block([])
    p.close()
    rc, _, err = run_cli(["replay", p.log_path, "--db", replayed])
    assert_clean_failure(rc, err)
    assert "different chain" in err


@pytest.mark.parametrize("name", ["alice", "nobody"])
def test_inspect_proof_verifies(replayed: Path, name: str) -> None:
    addr = Signer.from_name(name).address
    rc, out, err = run_cli(["inspect", "--db", replayed, checksum_address(addr), "--proof", "--json"])
    assert rc == 0, err
    report = json.loads(out)
    proof = Proof.from_json_obj(report["proof"]["proof"])
    root = bytes.fromhex(report["state_root"])
    key = account_key(addr)
    assert report["proof"]["key"] == key.hex() and report["proof"]["verified"] is True
    value = bytes.fromhex(report["proof"]["value"]) if report["proof"]["value"] is not None else None
    assert verify_proof(root, key, value, proof)
    if name == "alice":
        assert report["exists"] and report["cash"] > 0 and report["proof"]["kind"] == "inclusion"
        assert not verify_proof(root, key, value + b"\x00", proof)
        assert not verify_proof(root, key, None, proof)
    else:
        assert not report["exists"] and value is None and report["proof"]["kind"] == "non-inclusion"
    assert not verify_proof(bytes(32), key, value, proof)
    rc, out, _ = run_cli(["inspect", "--db", replayed, checksum_address(addr), "--proof"])
    assert rc == 0 and "verified" in out


def test_inspect_without_a_database(tmp_path: Path) -> None:
    rc, _, err = run_cli(["inspect", "--db", tmp_path / "nothing", checksum_address(Signer.from_name("alice").address)])
    assert_clean_failure(rc, err)


# ---------------------------------------------------------------- demo
def test_demo_json(tmp_path: Path, demo_log: Path) -> None:
    rc, out, err = run_cli(["demo", "--out", tmp_path / "out", "--json"])
    assert rc == 0, err
    summary = json.loads(out)
    assert {"log", "height", "state_root", "txs", "rejected"} <= set(summary)
    assert (
        summary["height"] == log_height(demo_log.read_bytes())
        and summary["rejected"] > 0
        and summary["txs"] > summary["rejected"]
    )
    assert Path(summary["log"]).read_bytes() == demo_log.read_bytes()  # the demo is deterministic
    assert os.path.isdir(tmp_path / "out" / "state")
    rc, out, _ = run_cli(["verify", summary["log"], "--json"])
    assert rc == 0 and json.loads(out)["state_root"] == summary["state_root"]


def test_demo_through_the_real_command(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "clearinghouse.tools.cli", "demo", "--out", str(tmp_path / "d")],
        env=subprocess_env(),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "state root" in proc.stdout and "Traceback" not in proc.stderr
