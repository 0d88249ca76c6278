"""Running segment verification on Dask distributed (the optional ``[distributed]`` extra).

Dask is imported here, lazily, and only when a Dask run is asked for, so the
core install stays light; without it the caller gets :class:`DaskUnavailable`
(a typed error with an install hint), never an ImportError traceback.

Each segment is one task, ``verify_segment(log, start, end, snapshot)``: plain
arguments in, a picklable result out. Paths are sent as they are, so every
worker must see the log and the snapshots at the same absolute paths (a shared
file system, or the same files copied to the same place on each machine; see
``docs/distributed-verification.md``). Workers must have this project and
``dask[distributed]`` installed in the same versions as the client.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from clearinghouse.chain.segments import Segment, SegmentResult, verify_segment
from tx.errors import TxError

CONNECT_TIMEOUT_S = 30
"""How long to wait for a scheduler before giving up."""


class DaskUnavailable(TxError):
    """``dask[distributed]`` is not installed here."""

    code = "DASK_UNAVAILABLE"


class DaskError(TxError):
    """The Dask scheduler cannot be reached, or the cluster failed to run a task."""

    code = "DASK_ERROR"


def import_distributed() -> Any:
    """The ``distributed`` module, or DaskUnavailable with the install hint."""
    try:
        import distributed
    except ImportError as exc:
        raise DaskUnavailable(
            f"Dask is not installed ({exc}); install the extra: pip install 'clearinghouse[distributed]' "
            "(or pip install 'dask[distributed]'), or use --workers N for a local process pool"
        ) from None
    return distributed


def run_on_dask(
    log: str,
    segments: list[Segment],
    *,
    scheduler: str | None,
    workers: int,
    on_result: Callable[[SegmentResult], None] | None = None,
    info: dict[str, Any] | None = None,
) -> list[SegmentResult]:
    """Run the segments on the Dask scheduler at ``scheduler``, or on a new LocalCluster of ``workers`` processes.

    Results come back in segment order; ``on_result`` sees each as it
    completes (progress is per segment: Dask has no cheap per-block channel).
    ``info``, if given, receives ``workers`` (how many the scheduler had) and
    ``scheduler`` (its address).
    """
    distributed = import_distributed()
    cluster = None
    try:
        if scheduler:
            try:
                client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                raise DaskError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        else:
            cluster = distributed.LocalCluster(
                n_workers=max(1, workers),
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            client = distributed.Client(cluster)
        try:
            if info is not None:
                scheduler_info = client.scheduler_info()
                info["workers"] = len(scheduler_info.get("workers", {}))
                info["scheduler"] = scheduler_info.get("address", scheduler or "")
            futures = [
                client.submit(
                    verify_segment, log, s.start, s.end, s.snapshot, offset=s.offset, index=s.index, pure=False
                )
                for s in segments
            ]
            results: dict[int, SegmentResult] = {}
            for future in distributed.as_completed(futures):
                try:
                    r = future.result()
                except distributed.client.FutureCancelledError as exc:
                    raise DaskError(f"a segment task was cancelled: {exc}") from None
                results[r.index] = r
                if on_result:
                    on_result(r)
            return [results[s.index] for s in segments]
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()
