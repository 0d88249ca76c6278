"""Segment verification: a long log split at snapshot heights, each piece replayed on its own.

Every block header commits the state root, so the chain ``0..N`` splits at any
heights ``0 = h0 < h1 < ... < hk < N`` into segments ``[h_i, h_{i+1}]`` that
replay independently: segment ``i`` starts from a snapshot of the state at
``h_i`` and applies blocks ``h_i + 1 .. h_{i+1}``. The chain verifies iff

1. every segment verifies: its start state's root equals the state root of
   the header at ``h_i`` (read from the log: snapshots are untrusted), block
   ``h_i + 1``'s parent hash is that header's hash, and every block's roots
   are reproduced as ``clearinghouse verify`` checks them (protocol §8.5);
2. the segments link: segment ``i`` ends on the root and header hash at
   ``h_{i+1}`` that segment ``i + 1`` starts from (the same header of the log);
3. the segments cover ``0..N`` and segment 0 starts from the log's genesis.

By induction the state each segment starts from is the state the chain
reaches at that height (roots are collision-resistant commitments to the
whole state), so this proves what a sequential replay proves; see
``docs/distributed-verification.md``.

:func:`verify_segment` is the pure task (plain arguments in, a picklable
:class:`SegmentResult` out; expected failures are returned, not raised), run
inline, in a local process pool (:func:`run_segments`) or on Dask
(:mod:`clearinghouse.chain.distributed`, handed to :func:`verify_chain` by the caller); :func:`verify_chain` plans, runs and
links the segments.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from typing import Any

import blake3

from clearinghouse.chain.engine import Engine, VerifyFailure
from clearinghouse.chain.recovery import pool_context
from clearinghouse.spec.events import Receipt
from state.errors import StateError
from state.memory_store import MemoryStore
from state.snapshot import SUFFIX, SnapshotError, load_snapshot, read_snapshot_header
from tx.encoding import decode_canonical, decode_genesis, encode, genesis_hash, header_hash
from tx.errors import LogFormatError, TxError
from tx.logfile import FRAME_BLOCK, FRAME_GENESIS, index_frames, read_log
from tx.messages import LogBlock

SEGMENT_DOMAIN = b"clearinghouse/segment/v1\x00"
"""Domain of a segment's digest: blake3 over the header hashes of its blocks, in order."""

PROGRESS_EVERY = 64
"""A segment reports progress every this many blocks."""


class SegmentError(TxError):
    """The segments cannot be planned or run (no blocks, a bad snapshot directory, a missing engine)."""

    code = "SEGMENT_PLAN"


# ---------------------------------------------------------------- the task
@dataclass(frozen=True)
class Segment:
    """One piece of work: blocks ``start + 1 .. end`` of ``log``, from ``snapshot`` (None at genesis)."""

    index: int
    start: int
    end: int
    snapshot: str | None
    offset: int
    """Byte offset of frame ``start`` in the log (a hint for seeking; checked by reading)."""


@dataclass
class SegmentResult:
    """What one segment found. Roots and hashes are bytes; ``failure`` is None when ``ok``."""

    index: int
    start: int
    end: int
    snapshot: str | None
    ok: bool = False
    blocks: int = 0
    txs: int = 0
    rejected: int = 0
    genesis_hash: bytes = b""
    start_root: bytes = b""
    start_header_hash: bytes = b""
    end_root: bytes = b""
    end_header_hash: bytes = b""
    digest: bytes = b""
    snapshot_records: int = 0
    load_seconds: float = 0.0
    replay_seconds: float = 0.0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    worker: str = ""
    failure: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("genesis_hash", "start_root", "start_header_hash", "end_root", "end_header_hash", "digest"):
            out[name] = out[name].hex()
        for name in ("load_seconds", "replay_seconds", "seconds", "cpu_seconds"):
            out[name] = round(out[name], 4)
        return out


def _failure(
    height: int, what: str, code: str, message: str, tx_index: int | None = None, keys: list[str] | None = None
) -> dict[str, Any]:
    return {
        "height": height,
        "what": what,
        "code": code,
        "message": message,
        "tx_index": tx_index,
        "differing_keys": keys or [],
    }


def verify_segment(
    log: str,
    start: int,
    end: int,
    snapshot: str | None = None,
    *,
    offset: int | None = None,
    index: int = 0,
    progress: Callable[[int], None] | None = None,
) -> SegmentResult:
    """Verify blocks ``start + 1 .. end`` of ``log``, starting from ``snapshot`` (the state at ``start``).

    Pure: the result depends only on the bytes of the log and the snapshot.
    The snapshot is not trusted: its root is recomputed from its records and
    must equal the state root of the log's header at ``start``; block
    ``start + 1`` must name that header as its parent. Every frame read is
    checked (checksums) and every block verified as ``Engine.apply_logged``
    does. At ``start == 0`` the segment starts from the log's genesis and needs
    no snapshot. ``offset`` is frame ``start``'s byte offset (else the log is
    indexed here). ``progress(n)`` is called with the number of blocks done
    since its last call. Expected failures (damaged log or snapshot, a
    mismatching root) are returned in ``failure``; only bugs raise.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    result = SegmentResult(
        index=index, start=start, end=end, snapshot=snapshot, worker=f"{socket.gethostname()}:{os.getpid()}"
    )
    digest = blake3.blake3(SEGMENT_DOMAIN)
    engine: Engine | None = None
    done = 0
    try:
        frames = read_log(log)
        first = next(frames, None)
        if first is None or first.kind != FRAME_GENESIS:
            raise VerifyFailure("the log does not start with a genesis frame", height=0, what="genesis")
        genesis = decode_genesis(first.payload)
        result.genesis_hash = genesis_hash(genesis)
        if start == 0:
            if snapshot is not None:
                raise SegmentError("a segment starting at genesis takes no snapshot")
            engine = Engine(MemoryStore())
            engine.init_genesis(genesis)
            result.start_header_hash = result.genesis_hash
        else:
            frames.close()
            if offset is None:
                offsets = index_frames(log)
                if start >= len(offsets):
                    raise VerifyFailure(
                        f"height {start}: the log ends at height {len(offsets) - 1}", height=start, what="height"
                    )
                offset = offsets[start]
            frames = read_log(log, start=(start, offset))
            frame = next(frames, None)
            if frame is None or frame.kind != FRAME_BLOCK:
                raise VerifyFailure(
                    f"height {start}: no block frame at the segment's start", height=start, what="height"
                )
            header = decode_canonical(frame.payload, LogBlock, what=f"block frame {start}").block.header
            if header.height != start:
                raise VerifyFailure(
                    f"height {start}: the frame there holds block {header.height}", height=start, what="height"
                )
            if snapshot is None:
                raise SegmentError(f"the segment starting at height {start} has no snapshot")
            result.start_header_hash = header_hash(header)
            t1 = time.perf_counter()
            store, info = load_snapshot(
                snapshot,
                expected_root=header.state_root,
                expected_height=start,
                expected_genesis_hash=result.genesis_hash,
                meta={"genesis": encode(genesis), "header_hash": result.start_header_hash, "header": encode(header)},
            )
            result.load_seconds = time.perf_counter() - t1
            result.snapshot_records = info.records
            engine = Engine(store)
        result.start_root = engine.store.root
        t2 = time.perf_counter()
        while engine.height < end:
            frame = next(frames, None)
            if frame is None:
                raise VerifyFailure(
                    f"height {engine.height + 1}: the log ends at height {engine.height}, before the segment's end {end}",
                    height=engine.height + 1,
                    what="height",
                )
            if frame.kind != FRAME_BLOCK:
                raise VerifyFailure(
                    f"frame {frame.index}: genesis must be the first frame", height=frame.index, what="frame_kind"
                )
            entry = decode_canonical(frame.payload, LogBlock, what=f"block frame {frame.index}")
            executed = engine.apply_logged(entry)
            digest.update(header_hash(entry.block.header))
            result.blocks += 1
            result.txs += len(executed.txs)
            result.rejected += sum(1 for e in executed.events if isinstance(e, Receipt) and not e.ok)
            done += 1
            if progress is not None and done >= PROGRESS_EVERY:
                progress(done)
                done = 0
        frames.close()
        result.replay_seconds = time.perf_counter() - t2
        result.end_root = engine.store.root
        result.end_header_hash = engine.last_header_hash()
        result.digest = digest.digest()
        result.ok = True
    except VerifyFailure as exc:
        result.failure = _failure(exc.height, exc.what, exc.code, exc.message, exc.tx_index, exc.keys)
    except LogFormatError as exc:
        height = exc.frame_index if exc.frame_index is not None else start
        result.failure = _failure(height, "log", exc.code, f"height {height}: {exc.message}")
    except SnapshotError as exc:
        result.failure = _failure(start, "snapshot", exc.code, exc.message)
    except (TxError, StateError) as exc:
        height = engine.height + 1 if engine is not None else start
        result.failure = _failure(height, "block", getattr(exc, "code", "ERROR"), f"height {height}: {exc.message}")
    except OSError as exc:
        result.failure = _failure(
            start, "io", "IO_ERROR", f"{exc.strerror or exc}: {exc.filename or ''} (on {result.worker})"
        )
    finally:
        if progress is not None and done:
            progress(done)
    result.seconds = time.perf_counter() - t0
    result.cpu_seconds = time.process_time() - c0
    return result


# ---------------------------------------------------------------- planning
def snapshot_name(height: int) -> str:
    """The file name ``replay --snapshot-every`` gives the snapshot at ``height``."""
    return f"snapshot-{height:012d}{SUFFIX}"


def find_snapshots(directory: str) -> dict[int, str]:
    """Height -> path of every ``*.chsnap`` in ``directory`` (by each file's own header; first name wins)."""
    if not os.path.isdir(directory):
        raise SegmentError(f"no snapshot directory {directory}")
    found: dict[int, str] = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(SUFFIX):
            continue
        path = os.path.abspath(os.path.join(directory, name))
        found.setdefault(read_snapshot_header(path).height, path)
    return found


def plan_segments(log: str, snapshots: dict[int, str], offsets: list[int]) -> list[Segment]:
    """Segments ``[0, h1], [h1, h2], ..., [hk, tip]`` at the snapshot heights strictly inside ``0..tip``."""
    tip = len(offsets) - 1
    if tip < 0:
        raise SegmentError(f"{log} holds no genesis (only the file header): there is no chain to verify")
    if tip == 0:
        return [Segment(index=0, start=0, end=0, snapshot=None, offset=offsets[0])]  # genesis alone
    cuts = [h for h in sorted(snapshots) if 0 < h < tip]
    bounds = [0, *cuts, tip]
    return [
        Segment(index=i, start=a, end=b, snapshot=snapshots.get(a) if a else None, offset=offsets[a])
        for i, (a, b) in enumerate(zip(bounds, bounds[1:]))
    ]


# ---------------------------------------------------------------- running
_worker_queue: Any = None


def _init_worker(queue: Any) -> None:
    global _worker_queue
    _worker_queue = queue


def _pool_task(log: str, segment: Segment) -> SegmentResult:
    queue = _worker_queue
    progress = (lambda n: queue.put(n)) if queue is not None else None
    return verify_segment(
        log, segment.start, segment.end, segment.snapshot, offset=segment.offset, index=segment.index, progress=progress
    )


def run_inline(
    log: str,
    segments: list[Segment],
    *,
    on_progress: Callable[[int], None] | None = None,
    on_result: Callable[[SegmentResult], None] | None = None,
) -> list[SegmentResult]:
    """Run the segments one after another in this process."""
    out = []
    for s in segments:
        r = verify_segment(log, s.start, s.end, s.snapshot, offset=s.offset, index=s.index, progress=on_progress)
        out.append(r)
        if on_result:
            on_result(r)
    return out


def run_segments(
    log: str,
    segments: list[Segment],
    workers: int,
    *,
    on_progress: Callable[[int], None] | None = None,
    on_result: Callable[[SegmentResult], None] | None = None,
) -> list[SegmentResult]:
    """Run the segments in a local pool of ``workers`` processes; results in segment order."""
    ctx = pool_context("clearinghouse.chain.segments")
    queue = ctx.Queue() if on_progress is not None else None

    def drain() -> None:
        if queue is None:
            return
        while True:
            try:
                n = queue.get_nowait()
            except Exception:  # queue.Empty
                return
            on_progress(n)  # type: ignore[misc]

    results: dict[int, SegmentResult] = {}
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker, initargs=(queue,)) as pool:
        pending = {pool.submit(_pool_task, log, s) for s in segments}
        while pending:
            finished, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
            drain()
            for fut in finished:
                r = fut.result()
                results[r.index] = r
                if on_result:
                    on_result(r)
    time.sleep(0)  # let the queue's feeder threads flush
    drain()
    if queue is not None:
        queue.close()
    return [results[s.index] for s in segments]


# ---------------------------------------------------------------- the chain
@dataclass
class ChainReport:
    """The outcome of a segmented verification."""

    log: str
    ok: bool
    engine: str
    workers: int
    segments: list[SegmentResult]
    height: int = -1
    state_root: bytes = b""
    head_hash: bytes = b""
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    plan_seconds: float = 0.0
    failure: dict[str, Any] | None = None
    failed_segment: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def segment_seconds(self) -> float:
        return sum(s.seconds for s in self.segments)

    @property
    def speedup(self) -> float:
        """Segment-seconds per wall-second: how many segments effectively ran at once."""
        return self.segment_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "ok": self.ok,
            "log": self.log,
            "engine": self.engine,
            "workers": self.workers,
            "height": self.height,
            "state_root": self.state_root.hex(),
            "head_hash": self.head_hash.hex(),
            "blocks": sum(s.blocks for s in self.segments),
            "txs": sum(s.txs for s in self.segments),
            "rejected": sum(s.rejected for s in self.segments),
            "wall_seconds": round(self.wall_seconds, 4),
            "plan_seconds": round(self.plan_seconds, 4),
            "cpu_seconds": round(self.cpu_seconds, 4),
            "segment_seconds": round(self.segment_seconds, 4),
            "speedup": round(self.speedup, 3),
            "segments": [s.to_json() for s in self.segments],
        }
        if self.failure is not None:
            out.update(
                {
                    "height": self.failure["height"],
                    "what": self.failure["what"],
                    "code": self.failure["code"],
                    "tx_index": self.failure["tx_index"],
                    "differing_keys": self.failure["differing_keys"],
                    "error": self.failure["message"],
                    "segment": self.failed_segment,
                }
            )
        out.update(self.extra)
        return out


def link_segments(results: list[SegmentResult]) -> tuple[dict[str, Any] | None, int | None]:
    """The first failure of the chain and its segment, or (None, None) if the segments verify and link.

    Walks the segments in height order, so the failure reported is at the first bad height.
    """
    if results and results[0].start != 0:
        return _failure(
            results[0].start, "segment_link", "VERIFY_MISMATCH", "the first segment does not start at genesis"
        ), results[0].index
    for i, r in enumerate(results):
        if not r.ok:
            return r.failure, r.index
        if i > 0:
            prev = results[i - 1]
            if (
                prev.end != r.start
                or prev.end_root != r.start_root
                or prev.end_header_hash != r.start_header_hash
                or prev.genesis_hash != r.genesis_hash
            ):
                msg = (
                    f"height {prev.end}: segment {prev.index} ends on root {prev.end_root.hex()} (header {prev.end_header_hash.hex()}) "
                    f"but segment {r.index} starts from root {r.start_root.hex()} (header {r.start_header_hash.hex()})"
                )
                return _failure(prev.end, "segment_link", "VERIFY_MISMATCH", msg), r.index
    return None, None


def verify_chain(
    log: str,
    snapshots_dir: str,
    *,
    workers: int = 1,
    scheduler: str | None = None,
    local_cluster: bool = False,
    run_dask: Callable[..., list[SegmentResult]] | None = None,
    on_plan: Callable[[list[Segment]], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_result: Callable[[SegmentResult], None] | None = None,
) -> ChainReport:
    """Plan the segments of ``log`` at the snapshots in ``snapshots_dir``, run them, link them.

    ``workers == 1`` runs inline, more in a local process pool; ``scheduler``
    (a Dask scheduler address) or ``local_cluster`` (a Dask ``LocalCluster`` of
    ``workers`` processes) runs them on Dask through ``run_dask``
    (``clearinghouse.chain.distributed.run_on_dask``, passed in so that this module never
    imports the optional Dask glue). A damaged frame found while
    indexing the log is reported as the failure at that height.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    log = os.path.abspath(log)
    engine = "dask" if scheduler or local_cluster else ("pool" if workers > 1 else "inline")
    try:
        offsets = index_frames(log)
    except LogFormatError as exc:
        height = exc.frame_index if exc.frame_index is not None else 0
        failure: dict[str, Any] | None = _failure(height, "log", exc.code, f"height {height}: {exc.message}")
        return ChainReport(
            log=log,
            ok=False,
            engine=engine,
            workers=workers,
            segments=[],
            failure=failure,
            wall_seconds=time.perf_counter() - t0,
            cpu_seconds=time.process_time() - c0,
        )
    segments = plan_segments(log, find_snapshots(snapshots_dir), offsets)
    plan_seconds = time.perf_counter() - t0
    if on_plan:
        on_plan(segments)
    if engine == "dask":
        if run_dask is None:
            raise ValueError("a Dask run needs run_dask (clearinghouse.chain.distributed.run_on_dask)")
        dask_info: dict[str, Any] = {}
        results, cpu_elsewhere = (
            run_dask(log, segments, scheduler=scheduler, workers=workers, on_result=on_result, info=dask_info),
            True,
        )
        workers = dask_info.get("workers", workers)
    elif engine == "pool":
        results, cpu_elsewhere = (
            run_segments(log, segments, workers, on_progress=on_progress, on_result=on_result),
            True,
        )
    else:
        results, cpu_elsewhere = run_inline(log, segments, on_progress=on_progress, on_result=on_result), False
    failure, failed = link_segments(results)
    report = ChainReport(
        log=log,
        ok=failure is None,
        engine=engine,
        workers=workers,
        segments=results,
        failure=failure,
        failed_segment=failed,
        plan_seconds=plan_seconds,
    )
    if engine == "dask":
        report.extra["scheduler"] = dask_info.get("scheduler", scheduler or "local")
    if failure is None:
        report.height = results[-1].end
        report.state_root = results[-1].end_root
        report.head_hash = results[-1].end_header_hash
    report.wall_seconds = time.perf_counter() - t0
    # CPU time of the whole verification: this process plus every segment (inline segments are already in ours).
    report.cpu_seconds = time.process_time() - c0 + (sum(r.cpu_seconds for r in results) if cpu_elsewhere else 0.0)
    return report
