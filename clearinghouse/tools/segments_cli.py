"""The command-line side of snapshots and segment verification.

- ``clearinghouse snapshot --db DIR --out FILE``: the committed state of a state
  database as a snapshot (``state/snapshot.py``), re-read and checked after writing;
- ``clearinghouse replay LOG --db DIR --snapshot-every C --snapshots SDIR``: also
  writes ``SDIR/snapshot-<height>.chsnap`` after every block whose height is a
  multiple of C;
- ``clearinghouse verify LOG --snapshots SDIR [--workers N | --scheduler ADDR |
  --cluster local]``: verification in segments (``clearinghouse/segments.py``).

The flags are added to the ``replay`` and ``verify`` parsers here (see
``add_segment_commands``) so the CLI module only dispatches.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from clearinghouse.tools.console import (
    EXIT_FAIL,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    console,
    print_json,
    require_file,
)
from clearinghouse.tools.safety import open_existing_store

if TYPE_CHECKING:  # imported lazily: building the parser must stay cheap
    from clearinghouse.chain.segments import ChainReport, Segment, SegmentResult
    from state.snapshot import SnapshotInfo


# ---------------------------------------------------------------- parser
def add_segment_commands(sub: Any) -> None:
    """Add the ``snapshot`` command and the snapshot / segment flags of ``replay`` and ``verify``."""
    verify = sub.choices["verify"]
    group = verify.add_argument_group("segments (verify in pieces that start at snapshots, in parallel)")
    group.add_argument(
        "--snapshots",
        metavar="SDIR",
        default=None,
        help="verify in segments starting at the snapshots (*.chsnap) in SDIR; each snapshot is checked against its header root",
    )
    group.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="processes to run the segments on (default: the number of CPUs; 1 runs them here, one after another)",
    )
    where = group.add_mutually_exclusive_group()
    where.add_argument(
        "--scheduler",
        metavar="tcp://HOST:PORT",
        default=None,
        help="run the segments on this Dask scheduler (needs the [distributed] extra; workers must see the same paths)",
    )
    where.add_argument(
        "--cluster",
        choices=("local",),
        default=None,
        help="run the segments on a Dask LocalCluster of --workers processes",
    )

    replay = sub.choices["replay"]
    group = replay.add_argument_group("snapshots")
    group.add_argument(
        "--snapshot-every",
        type=int,
        default=None,
        metavar="C",
        help="write a snapshot after every block whose height is a multiple of C",
    )
    group.add_argument(
        "--snapshots", metavar="SDIR", default=None, help="folder for the snapshots (created if missing)"
    )

    p = sub.add_parser(
        "snapshot", help="write a snapshot of a state database (the starting point of a verification segment)"
    )
    p.add_argument("--db", required=True, metavar="DIR", help="state database folder (read only)")
    p.add_argument("--out", required=True, metavar="FILE", help="snapshot file to write (replaced atomically)")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")
    p.set_defaults(func=cmd_snapshot)


def _usage(message: str) -> Exception:
    return CliError(message, EXIT_USAGE)


# ---------------------------------------------------------------- snapshot
def _store_genesis_hash(store: Any) -> bytes:
    from tx.encoding import decode_genesis, genesis_hash

    raw = store.get_meta("genesis")
    if raw is None:
        raise CliError("the state database holds no genesis (nothing committed?)")
    return genesis_hash(decode_genesis(raw))


def snapshot_info_json(path: str, info: SnapshotInfo) -> dict[str, Any]:
    h = info.header
    return {
        "snapshot": os.path.abspath(path),
        "height": h.height,
        "state_root": h.state_root.hex(),
        "genesis_hash": h.genesis_hash.hex(),
        "records": info.records,
        "bytes": info.size,
        "checksum": info.checksum.hex(),
    }


def cmd_snapshot(args: argparse.Namespace) -> int:
    from state.snapshot import load_snapshot, snapshot_store

    out = os.path.abspath(args.out)
    if os.path.isdir(out):
        raise CliError(f"{args.out} is a folder; give the snapshot file to write")
    if not os.path.isdir(os.path.dirname(out)):
        raise CliError(f"no folder {os.path.dirname(out)} to write {args.out} in")
    store = open_existing_store(args.db)
    try:
        info = snapshot_store(store, out, genesis_hash=_store_genesis_hash(store))
    finally:
        store.close()
    # Re-read what was written: the records must give the root the store committed.
    load_snapshot(out, expected_root=info.header.state_root, expected_height=info.header.height)
    report = snapshot_info_json(out, info)
    if args.json:
        print_json(report)
    else:
        console().print(
            f"[green]wrote[/] {report['snapshot']}: height {report['height']}, {report['records']:,} records, "
            f"{report['bytes']:,} bytes, state root {report['state_root']}"
        )
    return EXIT_OK


# ---------------------------------------------------------------- replay --snapshot-every
class SnapshotWriter:
    """``after_block`` hook of ``replay_into_db``: a snapshot after every block at a multiple of ``every``."""

    def __init__(self, every: int, directory: str) -> None:
        self.every = every
        self.directory = directory
        self.written: list[dict[str, Any]] = []
        self._genesis_hash: bytes | None = None

    def __call__(self, store: Any, entry: Any, executed: Any) -> None:
        from clearinghouse.chain.segments import snapshot_name
        from state.snapshot import snapshot_store

        if executed is None or store.height % self.every:
            return
        if self._genesis_hash is None:
            self._genesis_hash = _store_genesis_hash(store)
        path = os.path.join(self.directory, snapshot_name(store.height))
        info = snapshot_store(store, path, genesis_hash=self._genesis_hash)
        self.written.append(snapshot_info_json(path, info))

    def summary(self) -> dict[str, Any]:
        return {"snapshots": self.written}


def snapshot_writer(args: argparse.Namespace) -> SnapshotWriter | None:
    """The hook for ``replay`` from its flags, or None; usage errors for half-given flags."""
    every, directory = getattr(args, "snapshot_every", None), getattr(args, "snapshots", None)
    if every is None and directory is None:
        return None
    if every is None or directory is None:
        raise _usage("--snapshot-every and --snapshots go together")
    if every < 1:
        raise _usage("--snapshot-every must be at least 1")
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise CliError(f"{directory} is not a folder")
    os.makedirs(directory, exist_ok=True)
    return SnapshotWriter(every, os.path.abspath(directory))


# ---------------------------------------------------------------- verify --snapshots
def check_verify_flags(args: argparse.Namespace) -> bool:
    """True if ``verify`` should run in segments; usage errors for flags that need --snapshots."""
    if getattr(args, "snapshots", None) is None:
        for flag in ("workers", "scheduler", "cluster"):
            if getattr(args, flag, None) is not None:
                raise _usage(f"--{flag} needs --snapshots SDIR (the segments start at snapshots)")
        return False
    if args.workers is not None and args.workers < 1:
        raise _usage("--workers must be at least 1")
    if args.backend != "memory":
        raise _usage("--snapshots verifies in memory; --backend lmdb does not apply")
    return True


def cmd_verify_segments(args: argparse.Namespace) -> int:
    from clearinghouse.chain.distributed import run_on_dask
    from clearinghouse.chain.segments import verify_chain

    require_file(args.log)
    workers = args.workers or os.cpu_count() or 1
    progress = not args.json and sys.stderr.isatty()
    if progress:
        report = _with_progress(args, workers)
    else:
        report = verify_chain(
            args.log,
            args.snapshots,
            workers=workers,
            scheduler=args.scheduler,
            local_cluster=args.cluster == "local",
            run_dask=run_on_dask,
        )
    out = report.to_json()
    problems = _expectation_problems(args, report) if report.ok else []
    if problems:
        out.update(
            ok=False,
            expected={"height": getattr(args, "expect_height", None), "state_root": getattr(args, "expect_root", None)},
            problems=problems,
        )
    if args.json:
        print_json(out)
    elif report.ok and not problems:
        _render_ok(console(), report)
    elif not report.ok:
        _render_failure(console(stderr=True), report)
    for text in problems:
        print(f"error: EXPECTATION_MISMATCH: {text}", file=sys.stderr)
    return EXIT_OK if report.ok and not problems else EXIT_FAIL


def _expectation_problems(args: argparse.Namespace, report: ChainReport) -> list[str]:
    problems = []
    expect_height = getattr(args, "expect_height", None)
    expect_root = getattr(args, "expect_root", None)
    if expect_height is not None and report.height != expect_height:
        problems.append(f"the log ends at height {report.height}, expected {expect_height} (cut short or extended?)")
    if expect_root is not None and report.state_root.hex() != expect_root.lower().removeprefix("0x"):
        problems.append(f"the final state root is {report.state_root.hex()}, expected {expect_root}")
    return problems


def _with_progress(args: argparse.Namespace, workers: int) -> ChainReport:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from clearinghouse.chain.distributed import run_on_dask
    from clearinghouse.chain.segments import verify_chain

    columns = (
        TextColumn("verifying {task.fields[segments]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("blocks", total=None, segments="")
        done = {"segments": 0, "total": 0}

        def on_plan(segments: list[Segment]) -> None:
            done["total"] = len(segments)
            bar.update(task, total=segments[-1].end, segments=f"0/{len(segments)} segments")

        def on_progress(n: int) -> None:
            bar.advance(task, n)

        def on_result(r: SegmentResult) -> None:
            done["segments"] += 1
            fields: dict[str, Any] = {"segments": f"{done['segments']}/{done['total']} segments"}
            bar.update(task, **fields)
            if dask:
                bar.advance(task, r.end - r.start)

        dask = bool(args.scheduler or args.cluster)
        return verify_chain(
            args.log,
            args.snapshots,
            workers=workers,
            scheduler=args.scheduler,
            local_cluster=args.cluster == "local",
            on_plan=on_plan,
            on_progress=None if dask else on_progress,
            on_result=on_result,
            run_dask=run_on_dask,
        )


def _render_ok(con: Any, report: ChainReport) -> None:
    j = report.to_json()
    con.print(
        f"[bold green]OK[/]: {j['blocks']:,} blocks in {len(report.segments)} segment(s) ({report.engine}, {report.workers} worker(s)), "
        f"height {report.height}, every header root reproduced and every segment linked to the next; state root {j['state_root']}"
    )
    con.print(
        f"  wall {report.wall_seconds:.2f} s, segment time {report.segment_seconds:.2f} s (speedup {report.speedup:.2f}x), "
        f"CPU {report.cpu_seconds:.2f} s"
    )


def _render_failure(con: Any, report: ChainReport) -> None:
    f = report.failure or {}
    con.print(f"[bold red]verify failed[/] at height {f.get('height')}: {f.get('message')}")
    if f.get("tx_index") is not None:
        con.print(f"  transaction index: {f['tx_index']}")
    keys = f.get("differing_keys") or []
    for key in keys[:50]:
        con.print(f"  differing state key: {key}")
    if len(keys) > 50:
        con.print(f"  ... and {len(keys) - 50} more keys")
    if report.failed_segment is not None:
        seg = next(s for s in report.segments if s.index == report.failed_segment)
        source = f"snapshot {seg.snapshot}" if seg.snapshot else "genesis"
        con.print(f"  in segment {seg.index} (blocks {seg.start + 1}..{seg.end}, from {source}, on {seg.worker})")
