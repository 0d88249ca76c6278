"""Signature recovery ahead of execution: a pipelined stage on a small process pool.

Recovering the signer of a transaction (secp256k1 public-key recovery and the keccak
address, protocol §4.2) needs no state, only the raw bytes and the chain id. While the
engine executes block ``h``, the workers of a ``RecoveryPipeline`` recover the signatures
of the next blocks of the log (``spec.block.recover_ahead``), and ``apply_block`` takes
the results instead of recovering itself (protocol §8.5). The results are those the
transition would compute (same function, same bytes), and a bad signature is still the
same typed rejection at the same transaction; if the pool fails, the transition simply
recovers in the main process.

The pool starts only once the log has shown enough transactions to be worth it
(``min_txs``), so replaying a small log costs no process start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from clearinghouse.spec.block import Recovered, RecoveredBlock, recover_ahead
from tx.messages import Genesis, LogBlock

DEFAULT_WORKERS = 2
"""Recovery processes used by ``verify`` and ``replay`` unless told otherwise."""

CHUNK_TXS = 256
"""Transactions per task: a block is split so that every worker has a share of it."""

LOOKAHEAD_TXS = 8192
"""Transactions submitted ahead of the block being executed (bounds memory and wasted work)."""

MIN_TXS = 512
"""The pool starts once the blocks read hold this many transactions (small logs never start it)."""


PR_SET_PDEATHSIG = 1
"""Linux ``prctl`` option: the signal a process gets when its parent dies."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _watch_parent(expected: int | None, main: int) -> None:
    """Worker initializer: die with the parent. A forked worker holds copies of the parent's
    descriptors (its output pipes, the store's writer lock); if the parent is killed (SIGKILL,
    a crash) the worker must not live on holding them. ``expected``: the pid of the process that
    forked the worker (``fork``); None when a fork server did. ``main``: the process that reads the
    results; the worker also exits once it is gone (a fork server may outlive it)."""
    parent = os.getppid() if expected is None else expected
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the thread below still notices, within a second
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def poll() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent or not _alive(main):
                os._exit(1)

    threading.Thread(target=poll, name="recovery-parent-watch", daemon=True).start()


def pool_context(preload: str) -> Any:
    """How a process pool's workers start: ``fork`` while this process has no other thread (no
    interpreter start, no re-import; the workers touch nothing but their arguments), else
    ``forkserver`` (children of a clean server that preloaded module ``preload``, so no lock held by
    another thread, e.g. a progress bar's, is inherited), else ``spawn``."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload([preload])
        return ctx
    return multiprocessing.get_context("spawn")


@dataclass
class _Pending:
    """A log item read ahead, with the recovery tasks of its transactions (if any)."""

    index: int
    item: Any
    futures: list[Future[list[Recovered | None]]] = field(default_factory=list)
    error: BaseException | None = None


class RecoveryPipeline:
    """Reads a log ahead of the engine and recovers its signatures on ``workers`` processes."""

    def __init__(self, workers: int = DEFAULT_WORKERS, *, min_txs: int = MIN_TXS) -> None:
        self.workers = workers
        self.min_txs = min_txs
        self._pool: ProcessPoolExecutor | None = None
        self._broken = False
        self.recovered_txs = 0
        """Transactions whose signature a worker recovered (for reports and tests)."""

    def _ensure_pool(self) -> ProcessPoolExecutor | None:
        if self._pool is None and not self._broken and self.workers > 0:
            ctx = pool_context("clearinghouse.chain.recovery")
            forked = ctx.get_start_method() == "fork"
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=ctx,
                initializer=_watch_parent,
                initargs=(os.getpid() if forked else None, os.getpid()),
            )
        return self._pool

    def close(self) -> None:
        """Stop the workers (and reap them, so their CPU time shows in RUSAGE_CHILDREN)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> RecoveryPipeline:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def run(
        self, items: Iterator[tuple[int, Any]], *, skip_until: int
    ) -> Iterator[tuple[int, Any, RecoveredBlock | None]]:
        """Yield ``(index, item, recovered)`` for each ``(index, item)`` of ``items``, reading ahead.

        ``recovered`` is None for the genesis, for blocks at or below ``skip_until`` (already in the
        store) and whenever the pool is not used. An error raised while reading ahead is raised
        where it would have been without read-ahead: after every earlier item has been yielded.
        """
        chain_id: int | None = None
        queue: deque[_Pending] = deque()
        waiting = 0  # transactions submitted and not yet handed out
        seen = 0  # transactions of the blocks to apply read so far
        exhausted = False
        while True:
            while not exhausted and (not queue or waiting < LOOKAHEAD_TXS):
                try:
                    index, item = next(items)
                except StopIteration:
                    exhausted = True
                    break
                except BaseException as exc:  # noqa: BLE001 - re-raised in order below
                    queue.append(_Pending(index=-1, item=None, error=exc))
                    exhausted = True
                    break
                pending = _Pending(index=index, item=item)
                if isinstance(item, Genesis):
                    chain_id = item.chain_id
                elif (
                    isinstance(item, LogBlock)
                    and chain_id is not None
                    and item.block.header.height > skip_until
                    and item.block.txs
                ):
                    seen += len(item.block.txs)
                    pending.futures = self._submit(chain_id, list(item.block.txs), seen)
                    if pending.futures:
                        waiting += len(item.block.txs)
                queue.append(pending)
                if not pending.futures and self._pool is None and not isinstance(item, Genesis):
                    break  # no pool yet: do not read further ahead than needed
            if not queue:
                return
            pending = queue.popleft()
            if pending.error is not None:
                raise pending.error
            recovered = None
            if pending.futures:
                waiting -= len(pending.item.block.txs)
                recovered = self._collect(chain_id, pending)
            yield pending.index, pending.item, recovered

    def _submit(self, chain_id: int, txs: list[bytes], seen: int) -> list[Future[list[Recovered | None]]]:
        if self._pool is None and seen < self.min_txs:
            return []
        pool = self._ensure_pool()
        if pool is None:
            return []
        per = max(1, min(CHUNK_TXS, -(-len(txs) // self.workers)))
        try:
            return [pool.submit(recover_ahead, chain_id, txs[i : i + per]) for i in range(0, len(txs), per)]
        except Exception:  # noqa: BLE001 - a broken pool: recover in the main process from now on
            self._broken = True
            return []

    def _collect(self, chain_id: int | None, pending: _Pending) -> RecoveredBlock | None:
        results: list[Recovered | None] = []
        try:
            for future in pending.futures:
                results.extend(future.result())
        except Exception:  # noqa: BLE001 - a worker died: the transition recovers itself
            self._broken = True
            return None
        if chain_id is None or len(results) != len(pending.item.block.txs):
            return None
        self.recovered_txs += len(results)
        return RecoveredBlock(chain_id=chain_id, results=results)
