"""Producing a log: execute blocks as their producer and write them to a log file.

The producer runs the same transition as every replayer (on its own store,
in memory by default), so the header roots it writes are the ones a verifier
must reproduce.
"""

from __future__ import annotations

import os
from typing import Any

from clearinghouse.chain.engine import Engine, Executed
from state import MemoryStore
from tx.builder import Wallet
from tx.encoding import encode
from tx.logfile import FRAME_BLOCK, FRAME_GENESIS, LogWriter
from tx.messages import MAX_BLOCK_TXS, Genesis, LogBlock


class Producer:
    """Builds a chain from a genesis, block by block, optionally writing a log file."""

    def __init__(
        self,
        genesis: Genesis,
        log_path: str | os.PathLike[str] | None = None,
        *,
        store: Any = None,
        overwrite: bool = False,
    ) -> None:
        self.genesis = genesis
        self.engine = Engine(store if store is not None else MemoryStore())
        self.engine.init_genesis(genesis)
        self.time_ms = genesis.time_ms
        self._writer = None
        self.blocks: list[LogBlock] = []
        self.executed: list[Executed] = []
        if log_path is not None:
            self._writer = LogWriter(log_path, create=True, overwrite=overwrite)
            self._writer.append(FRAME_GENESIS, encode(genesis))

    def wallet(self, name: str) -> Wallet:
        """A wallet on the deterministic test key of ``name`` for this chain."""
        return Wallet.from_name(name, self.genesis.chain_id)

    def block(self, txs: list[bytes], *, advance_ms: int = 1000, time_ms: int | None = None) -> Executed:
        """Produce the next block at ``time_ms`` (default: previous + ``advance_ms``)."""
        if len(txs) > MAX_BLOCK_TXS:
            raise ValueError(f"a block holds at most {MAX_BLOCK_TXS} transactions, got {len(txs)}")
        self.time_ms = time_ms if time_ms is not None else self.time_ms + advance_ms
        entry, executed = self.engine.produce(self.time_ms, txs)
        self.blocks.append(entry)
        self.executed.append(executed)
        if self._writer is not None:
            self._writer.append(FRAME_BLOCK, encode(entry))
        return executed

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush(fsync=True)
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
