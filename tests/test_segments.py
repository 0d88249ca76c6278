"""Segment verification: a long generated log verified sequentially, inline, in a process pool and on Dask.

The log is generated once per session (seeded, cheap blocks); its snapshots are
written by the same replay that gives the sequential reference root
(``replay_into_db`` with the ``--snapshot-every`` hook).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import subprocess_env

from clearinghouse.chain.distributed import run_on_dask
from clearinghouse.chain.engine import Engine, VerifyFailure, replay_log
from clearinghouse.chain.segments import (
    SegmentResult,
    find_snapshots,
    link_segments,
    snapshot_name,
    verify_chain,
    verify_segment,
)
from clearinghouse.tools.loadgen import generate_log
from clearinghouse.tools.reporting import replay_into_db
from clearinghouse.tools.segments_cli import SnapshotWriter
from state import MemoryStore
from state.snapshot import load_snapshot, read_snapshot, write_snapshot
from tx.encoding import decode_canonical, encode
from tx.logfile import FRAME_BLOCK, encode_frame, index_frames, read_log
from tx.merkle import ordered_root
from tx.messages import LogBlock

BLOCKS = 2_000
EVERY = 400


@dataclass(frozen=True)
class Chain:
    log: Path
    snapshots: Path
    height: int
    root: bytes
    head_hash: bytes


def build_chain(directory: Path, blocks: int, every: int) -> Chain:
    log = directory / "chain.log"
    generate_log(log, blocks=blocks, txs=2, accounts=40, seed=7)
    snaps = directory / "snapshots"
    snaps.mkdir()
    writer = SnapshotWriter(every, str(snaps))
    result = replay_into_db(str(log), None, after_block=writer)
    assert [s["height"] for s in writer.summary()["snapshots"]] == list(range(every, blocks + 1, every))
    head = decode_canonical(list(read_log(log))[-1].payload, LogBlock).block.header
    from tx.encoding import header_hash

    return Chain(log=log, snapshots=snaps, height=result.height, root=result.state_root, head_hash=header_hash(head))


@pytest.fixture(scope="session")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    """A 2,000-block generated log with snapshots every 400 blocks (read-only: copy before changing)."""
    return build_chain(tmp_path_factory.mktemp("segments"), BLOCKS, EVERY)


def _copy(chain: Chain, tmp_path: Path) -> Chain:
    log = tmp_path / "chain.log"
    shutil.copyfile(chain.log, log)
    snaps = tmp_path / "snapshots"
    shutil.copytree(chain.snapshots, snaps)
    return Chain(log=log, snapshots=snaps, height=chain.height, root=chain.root, head_hash=chain.head_hash)


def _check_ok(report, chain: Chain) -> None:
    assert report.ok, report.failure
    assert (report.height, report.state_root, report.head_hash) == (chain.height, chain.root, chain.head_hash)
    assert [(s.start, s.end) for s in report.segments] == [
        (0, 400),
        (400, 800),
        (800, 1200),
        (1200, 1600),
        (1600, 2000),
    ]
    assert sum(s.blocks for s in report.segments) == chain.height


# ---------------------------------------------------------------- same root everywhere
def test_pool_gives_the_sequential_root(chain: Chain) -> None:
    ticks: list[int] = []
    seen: list[int] = []
    pool = verify_chain(
        str(chain.log),
        str(chain.snapshots),
        workers=2,
        on_progress=ticks.append,
        on_result=lambda r: seen.append(r.index),
    )
    _check_ok(pool, chain)
    assert pool.engine == "pool" and sum(ticks) == chain.height and sorted(seen) == [0, 1, 2, 3, 4]
    for s in pool.segments[1:]:
        assert s.snapshot_records > 0 and s.load_seconds > 0
    # A segment's result is a function of its inputs alone: the same here as in the pool's worker.
    s = pool.segments[3]
    here = verify_segment(str(chain.log), s.start, s.end, s.snapshot, index=3)
    assert (here.digest, here.start_root, here.end_root, here.end_header_hash) == (
        s.digest,
        s.start_root,
        s.end_root,
        s.end_header_hash,
    )


@pytest.fixture(scope="session")
def short_chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    """A 300-block log with snapshots every 100 blocks, for what the long one need not repeat."""
    return build_chain(tmp_path_factory.mktemp("segments-short"), 300, 100)


def test_inline_gives_the_sequential_root(short_chain: Chain) -> None:
    """``--workers 1`` runs the segments here, one after another."""
    report = verify_chain(str(short_chain.log), str(short_chain.snapshots), workers=1)
    assert (
        report.ok and report.engine == "inline" and report.state_root == short_chain.root and len(report.segments) == 3
    )


def test_dask_local_cluster_gives_the_sequential_root(chain: Chain) -> None:
    pytest.importorskip("distributed")
    report = verify_chain(str(chain.log), str(chain.snapshots), workers=2, local_cluster=True, run_dask=run_on_dask)
    _check_ok(report, chain)
    assert report.engine == "dask"


# ---------------------------------------------------------------- failures
def _frame_of(log: Path, height: int) -> tuple[int, bytes]:
    offsets = index_frames(log)
    frame = next(read_log(log, start=(height, offsets[height])))
    return frame.offset, frame.payload


def test_a_flipped_byte_in_segment_k_fails_at_its_height(chain: Chain, tmp_path: Path) -> None:
    c = _copy(chain, tmp_path)
    bad = 2 * EVERY + 137  # in segment 2
    offset, payload = _frame_of(c.log, bad)
    raw = bytearray(c.log.read_bytes())
    raw[offset + 5 + len(payload) // 2] ^= 0x01
    c.log.write_bytes(bytes(raw))
    report = verify_chain(str(c.log), str(c.snapshots), workers=2)
    assert not report.ok and report.failed_segment == 2
    assert report.failure["height"] == bad and report.failure["code"] == "LOG_CHECKSUM"
    assert [s.ok for s in report.segments] == [True, True, False, True, True]


def _swap_first_two_txs(log: Path, height: int) -> None:
    """Re-sign nothing: swap the block's first two transactions and fix its tx root and frame checksum."""
    offset, payload = _frame_of(log, height)
    entry = decode_canonical(payload, LogBlock)
    txs = list(entry.block.txs)
    assert len(txs) >= 2
    txs[0], txs[1] = txs[1], txs[0]
    header = entry.block.header
    block = type(entry.block)(
        header=type(header)(
            height=header.height,
            time_ms=header.time_ms,
            parent_hash=header.parent_hash,
            tx_root=ordered_root(txs),
            state_root=header.state_root,
            events_root=header.events_root,
        ),
        txs=txs,
    )
    new_frame = encode_frame(FRAME_BLOCK, encode(LogBlock(block=block, witness=entry.witness)))
    raw = log.read_bytes()
    old_len = 5 + len(payload) + 8
    log.write_bytes(raw[:offset] + new_frame + raw[offset + old_len :])


def test_a_changed_block_fails_at_the_height_and_transaction_sequential_verify_names(
    chain: Chain, tmp_path: Path
) -> None:
    c = _copy(chain, tmp_path)
    bad = 3 * EVERY + 55  # in segment 3
    _swap_first_two_txs(c.log, bad)
    with pytest.raises(VerifyFailure) as seq:
        replay_log(Engine(MemoryStore()), str(c.log))
    assert seq.value.height == bad
    report = verify_chain(str(c.log), str(c.snapshots), workers=2)
    assert not report.ok and report.failed_segment == 3
    f = report.failure
    assert (f["height"], f["what"], f["tx_index"], f["differing_keys"]) == (
        seq.value.height,
        seq.value.what,
        seq.value.tx_index,
        seq.value.keys,
    )
    assert f["what"] in ("events_root", "state_root")


def test_a_changed_snapshot_record_is_refused(chain: Chain, tmp_path: Path) -> None:
    c = _copy(chain, tmp_path)
    path = c.snapshots / snapshot_name(2 * EVERY)
    info, items = read_snapshot(path)
    i = len(items) // 2
    items[i] = (items[i][0], items[i][1] + b"\x00")
    forged = MemoryStore.from_records(info.header.height, items)
    # A consistent forgery: checksum and claimed root match the changed records. Only the header disagrees.
    write_snapshot(
        path, genesis_hash=info.header.genesis_hash, height=info.header.height, state_root=forged.root, records=items
    )
    report = verify_chain(str(c.log), str(c.snapshots), workers=2)
    assert not report.ok and report.failed_segment == 2
    assert (
        report.failure["height"] == 2 * EVERY
        and report.failure["what"] == "snapshot"
        and report.failure["code"] == "SNAPSHOT_ROOT"
    )
    assert "header" in report.failure["message"]


def test_snapshots_are_found_by_their_header_not_their_name(chain: Chain, tmp_path: Path) -> None:
    """File names are only for discovery: a snapshot's height is what its header says (and is then checked)."""
    c = _copy(chain, tmp_path)
    os.rename(c.snapshots / snapshot_name(800), c.snapshots / "renamed.chsnap")
    (c.snapshots / "notes.txt").write_text("not a snapshot")
    found = find_snapshots(str(c.snapshots))
    assert sorted(found) == [400, 800, 1200, 1600, 2000] and found[800].endswith("renamed.chsnap")
    r = verify_segment(str(c.log), 800, 900, found[800])
    assert r.ok and r.blocks == 100


def test_segment_start_is_checked_against_the_log(chain: Chain) -> None:
    """A snapshot fed to the wrong segment (another height) is refused before any block runs."""
    snaps = find_snapshots(str(chain.snapshots))
    r = verify_segment(str(chain.log), 800, 1200, snaps[400])
    assert not r.ok and r.failure["code"] == "SNAPSHOT_MISMATCH" and r.failure["height"] == 800
    r = verify_segment(str(chain.log), 400, 450, snaps[400], offset=index_frames(chain.log)[401])  # a wrong offset hint
    assert not r.ok and r.failure["height"] == 400
    r = verify_segment(str(chain.log), 400, 450, snaps[400])
    assert r.ok and r.blocks == 50 and r.start_root == load_snapshot(snaps[400], expected_root=None)[0].root


def test_segments_must_link() -> None:
    def seg(i: int, a: int, b: int, start_root: bytes, end_root: bytes) -> SegmentResult:
        return SegmentResult(
            index=i,
            start=a,
            end=b,
            snapshot=None,
            ok=True,
            start_root=start_root,
            end_root=end_root,
            start_header_hash=bytes([a % 256]) * 32,
            end_header_hash=bytes([b % 256]) * 32,
        )

    good = [seg(0, 0, 10, b"r0", b"r10"), seg(1, 10, 20, b"r10", b"r20")]
    assert link_segments(good) == (None, None)
    failure, index = link_segments([good[0], seg(1, 10, 20, b"other", b"r20")])
    assert index == 1 and failure["height"] == 10 and failure["what"] == "segment_link"
    failure, index = link_segments([good[1]])
    assert index == 1 and failure["what"] == "segment_link"  # does not start at genesis


# ---------------------------------------------------------------- CLI
def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clearinghouse.tools.cli", *args],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_replay_snapshot_verify(tmp_path: Path) -> None:
    log = tmp_path / "small.log"
    generate_log(log, blocks=120, txs=2, accounts=10, seed=3)
    r = _cli(
        "replay",
        str(log),
        "--db",
        str(tmp_path / "db"),
        "--snapshot-every",
        "50",
        "--snapshots",
        str(tmp_path / "snaps"),
        "--json",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    replayed = json.loads(r.stdout)
    assert [s["height"] for s in replayed["snapshots"]] == [50, 100]
    r = _cli("snapshot", "--db", str(tmp_path / "db"), "--out", str(tmp_path / "tip.chsnap"), "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["height"] == 120 and json.loads(r.stdout)["state_root"] == replayed["state_root"]
    r = _cli("verify", str(log), "--snapshots", str(tmp_path / "snaps"), "--workers", "2", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["ok"] and out["state_root"] == replayed["state_root"] and out["engine"] == "pool"
    assert [(s["start"], s["end"]) for s in out["segments"]] == [(0, 50), (50, 100), (100, 120)]
    assert {"wall_seconds", "cpu_seconds", "segment_seconds", "speedup"} <= set(out)
    assert all("seconds" in s and "load_seconds" in s for s in out["segments"])
    r = _cli("verify", str(log), "--snapshots", str(tmp_path / "snaps"), "--workers", "1", cwd=tmp_path)
    assert r.returncode == 0 and "OK" in r.stdout
    # A forged snapshot: exit 1, one clear line per fact, no traceback.
    path = tmp_path / "snaps" / snapshot_name(100)
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1  # in the checksum
    path.write_bytes(bytes(raw))
    r = _cli("verify", str(log), "--snapshots", str(tmp_path / "snaps"), "--workers", "1", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert "verify failed at height 100" in r.stderr and "checksum" in r.stderr
    r = _cli("verify", str(log), "--snapshots", str(tmp_path / "snaps"), "--workers", "1", "--json", cwd=tmp_path)
    assert (
        r.returncode == 1
        and json.loads(r.stdout)["code"] == "SNAPSHOT_CHECKSUM"
        and json.loads(r.stdout)["segment"] == 2
    )


@pytest.mark.parametrize(
    "args, code",
    [
        (["verify", "LOG", "--workers", "2"], 2),  # --workers needs --snapshots
        (["verify", "LOG", "--snapshots", "SDIR", "--workers", "0"], 2),
        (["verify", "LOG", "--snapshots", "SDIR", "--backend", "lmdb"], 2),
        (["verify", "LOG", "--snapshots", "SDIR", "--scheduler", "tcp://x:1", "--cluster", "local"], 2),
        (["replay", "LOG", "--db", "DB", "--snapshot-every", "10"], 2),
        (["replay", "LOG", "--db", "DB", "--snapshot-every", "0", "--snapshots", "SDIR"], 2),
        (["verify", "LOG", "--snapshots", "MISSING"], 1),
        (["verify", "MISSING", "--snapshots", "SDIR"], 1),
        (["snapshot", "--db", "MISSING", "--out", "x.chsnap"], 1),
    ],
)
def test_cli_bad_usage_and_input(tmp_path: Path, demo_log: Path, args: list[str], code: int) -> None:
    (tmp_path / "SDIR").mkdir()
    subst = {"LOG": str(demo_log), "SDIR": str(tmp_path / "SDIR"), "DB": str(tmp_path / "DB")}
    r = _cli(*[subst.get(a, a) for a in args], cwd=tmp_path)
    assert r.returncode == code, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.strip()


def test_genesis_only_and_empty_logs(tmp_path: Path) -> None:
    from clearinghouse.chain.producer import Producer
    from clearinghouse.chain.segments import SegmentError
    from clearinghouse.tools.demo import demo_genesis
    from tx.logfile import LogWriter

    (tmp_path / "snaps").mkdir()
    Producer(demo_genesis(), tmp_path / "genesis.log").close()
    report = verify_chain(str(tmp_path / "genesis.log"), str(tmp_path / "snaps"), workers=1)
    assert report.ok and report.height == 0
    assert report.state_root == Engine(MemoryStore()).init_genesis(demo_genesis())
    LogWriter(tmp_path / "empty.log", create=True).close()
    with pytest.raises(SegmentError, match="no genesis"):
        verify_chain(str(tmp_path / "empty.log"), str(tmp_path / "snaps"), workers=1)


def test_a_torn_log_fails_at_the_torn_frame(chain: Chain, tmp_path: Path) -> None:
    c = _copy(chain, tmp_path)
    raw = c.log.read_bytes()
    c.log.write_bytes(raw[:-10])
    report = verify_chain(str(c.log), str(c.snapshots), workers=2)
    assert not report.ok and report.failure["height"] == chain.height and report.failure["code"] == "LOG_TRUNCATED"


def test_progress_bar_run(short_chain: Chain) -> None:
    import argparse

    from clearinghouse.tools import segments_cli

    args = argparse.Namespace(
        log=str(short_chain.log), snapshots=str(short_chain.snapshots), scheduler=None, cluster=None
    )
    report = segments_cli._with_progress(args, 2)
    assert report.ok and report.state_root == short_chain.root


def test_missing_dask_is_a_typed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from clearinghouse.chain.distributed import DaskUnavailable, import_distributed

    monkeypatch.setitem(sys.modules, "distributed", None)  # makes `import distributed` fail
    with pytest.raises(DaskUnavailable, match=r"clearinghouse\[distributed\]"):
        import_distributed()


# ---------------------------------------------------------------- soak
@pytest.mark.soak
def test_soak_long_chain_all_engines(tmp_path_factory: pytest.TempPathFactory) -> None:
    """10,000 blocks, snapshots every 1,000: inline, pool and Dask agree with the sequential replay."""
    c = build_chain(tmp_path_factory.mktemp("segments-soak"), 10_000, 1_000)
    for kwargs in ({"workers": 1}, {"workers": 2}, {"workers": 2, "local_cluster": True}):
        if kwargs.get("local_cluster"):
            pytest.importorskip("distributed")
        report = verify_chain(str(c.log), str(c.snapshots), run_dask=run_on_dask, **kwargs)
        assert report.ok and report.state_root == c.root and report.height == 10_000
