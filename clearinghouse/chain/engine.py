"""The engine: the transition bound to a store, with header roots and log replay.

It owns the derived key index (rebuilt from the store whenever an execution is
abandoned), computes the header roots of a block (tx root, events root, state
root) and checks them against a log, committing one block per storage
transaction. The producer (``producer.py``) and the CLI (``replay``,
``verify``) are thin layers over it.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import blake3
import msgspec

from clearinghouse.chain.events_file import META_EVENTS_END, EventsFile
from clearinghouse.chain.recovery import RecoveryPipeline
from clearinghouse.spec.block import RecoveredBlock, apply_block, apply_genesis
from clearinghouse.spec.constants import NO_TX
from clearinghouse.spec.errors import ClearinghouseError, InvalidBlock
from clearinghouse.spec.event_types import AnyEvent
from clearinghouse.spec.events import BaseEvent, Receipt
from clearinghouse.spec.state.keys import CHAIN_KEY, describe_key
from clearinghouse.spec.state.records import Chain
from clearinghouse.spec.state.working_state import KeyIndex, WorkingState
from state.lmdb_store import LmdbStore
from state.store import Store
from tx.encoding import decode_canonical, decode_genesis, encode, genesis_hash, header_hash
from tx.logfile import FRAME_BLOCK, FRAME_GENESIS, MAX_FRAME, read_log
from tx.merkle import leaf_hash, ordered_root, root_of_leaf_hashes
from tx.messages import MAX_BLOCK_TXS, MAX_TX_BYTES, Block, BlockWitness, ChangedKey, Genesis, Header, LogBlock


class VerifyFailure(ClearinghouseError):
    """A block in a log does not reproduce: which height, what, and where."""

    code = "VERIFY_MISMATCH"

    def __init__(
        self, message: str, *, height: int, what: str, tx_index: int | None = None, keys: list[str] | None = None
    ) -> None:
        super().__init__(message)
        self.height = height
        self.what = what
        self.tx_index = tx_index
        self.keys = keys or []


@dataclass
class Executed:
    """A block executed but not yet committed."""

    height: int
    time_ms: int
    txs: list[bytes]
    events: list[BaseEvent]
    changes: dict[bytes, bytes | None]
    tx_root: bytes
    events_root: bytes
    event_leaves: list[bytes]
    encoded_events: list[bytes] | None = None
    """Each event's canonical encoding (for the events file: encoded once, not twice)."""


def events_meta_name(height: int) -> str:
    """Meta entry under which a committed block's events are kept (not part of the state root)."""
    return f"events/{height:020d}"


def header_meta_name(height: int) -> str:
    """Meta entry under which a committed block's header is kept (tools read its time; not state)."""
    return f"headers/{height:020d}"


def events_file_of(store: Any, *, writable: bool = False) -> EventsFile | None:
    """The events file beside an LMDB state database (protocol §8.5), or None for other stores.

    A writer's file is truncated to the committed ``events_end``; a reader reads up to it."""
    path = getattr(store, "path", None)
    if not isinstance(path, str) or not os.path.isdir(path):
        return None
    raw = store.get_meta(META_EVENTS_END)
    end = int.from_bytes(raw, "big") if raw is not None else None
    if writable:
        return EventsFile.beside(path, end=end, writable=True)
    return EventsFile.beside(path, end=0 if end is None else end, writable=False)


_READERS: weakref.WeakKeyDictionary[Any, tuple[int, EventsFile | None]] = weakref.WeakKeyDictionary()


def _events_reader(store: Any) -> EventsFile | None:
    """The engine's events file if one is attached to ``store``, else a reader cached per store and height."""
    attached = getattr(store, "_engine_events", None)
    if attached is not None:
        return attached
    cached = _READERS.get(store)
    if cached is not None and cached[0] == store.height:
        return cached[1]
    reader = events_file_of(store)
    _READERS[store] = (store.height, reader)
    return reader


def load_block_header(store: Store, height: int) -> Header | None:
    """The header of a committed block, or None if the store does not have it (older stores)."""
    events = _events_reader(store)
    found = events.read(height) if events is not None else None
    if found is not None:
        return msgspec.msgpack.decode(found[0], type=Header)
    raw = store.get_meta(header_meta_name(height))
    if raw is None:
        last = store.get_meta("header")
        if last is None:
            return None
        header = msgspec.msgpack.decode(last, type=Header)
        return header if header.height == height else None
    return msgspec.msgpack.decode(raw, type=Header)


def load_block_events(store: Store, height: int) -> list[BaseEvent] | None:
    """The events of a committed block, decoded, or None if the store does not have them."""
    events = _events_reader(store)
    found = events.read(height) if events is not None else None
    if found is not None:
        return msgspec.msgpack.decode(found[1], type=list[AnyEvent])
    raw = store.get_meta(events_meta_name(height))
    if raw is None:
        return None
    return msgspec.msgpack.decode(raw, type=list[AnyEvent])


def encoded_event_list(executed: Executed) -> bytes:
    """``encode(executed.events)``, from the events' own encodings when the execution kept them
    (a msgpack array is its header followed by its elements: the same bytes)."""
    if executed.encoded_events is None or len(executed.encoded_events) != len(executed.events):
        return encode(executed.events)
    return encode([msgspec.Raw(e) for e in executed.encoded_events])


def event_tx_index(event: BaseEvent) -> int:
    """The transaction an event belongs to, or ``NO_TX`` for end-of-block work (protocol §6.7)."""
    return getattr(event, "tx_index", NO_TX)


def witness_of(executed: Executed) -> BlockWitness:
    return BlockWitness(
        changed=[
            ChangedKey(key=k, value_hash=b"" if v is None else blake3.blake3(v).digest())
            for k, v in executed.changes.items()
        ],
        event_leaves=executed.event_leaves,
        event_tx_indexes=[event_tx_index(e) for e in executed.events],
    )


class Engine:
    """Applies genesis and blocks to a ``state`` store (memory or LMDB)."""

    def __init__(self, store: Store, *, keep_events: bool = True) -> None:
        """Bind to ``store``. Each committed block's header and events are kept for tools: in the
        events file beside an LMDB store (protocol §8.5), in meta entries of other stores, nowhere
        with ``keep_events=False`` (e.g. ``verify`` into memory)."""
        self.store = store
        self.index = KeyIndex.load(store)
        self.keep_events = keep_events
        self.events: EventsFile | None = None
        if keep_events and isinstance(store, LmdbStore) and not store.readonly:
            # Only an LMDB store has a folder for the events file beside it.
            self.events = events_file_of(store, writable=True)
            if self.events is not None:
                store.before_commit.append(self.events.sync)
                store._engine_events = self.events

    def close_events(self) -> None:
        """Close the events file (after the store is closed or flushed)."""
        events, self.events = self.events, None
        if events is not None:
            events.close()

    # ------------------------------------------------------------ queries
    @property
    def height(self) -> int:
        return self.store.height

    def chain(self) -> Chain | None:
        return WorkingState(self.store, self.index).get(CHAIN_KEY)

    def view(self) -> WorkingState:
        """A read-only-by-convention view of committed state (for queries and tools)."""
        return WorkingState(self.store, self.index)

    def last_header_hash(self) -> bytes:
        raw = self.store.get_meta("header_hash")
        return raw if raw is not None else b""

    # ------------------------------------------------------------ genesis
    def init_genesis(self, genesis: Genesis) -> bytes:
        """Commit genesis as height 0, or check that the stored chain has this genesis."""
        if self.store.height >= 0:
            chain = self.chain()
            if chain is None or chain.genesis_hash != genesis_hash(genesis):
                raise InvalidBlock("the store holds a different chain (genesis hash differs)")
            return self.store.root
        ws = WorkingState(self.store, self.index)
        apply_genesis(ws, genesis)
        root = self.store.commit_block(
            0, ws.changes(), {"genesis": encode(genesis), "header_hash": genesis_hash(genesis)}
        )
        return root

    # ------------------------------------------------------------ blocks
    def execute(self, height: int, time_ms: int, txs: list[bytes], recovered: RecoveredBlock | None = None) -> Executed:
        """Run the transition for one block without committing it (``recovered``: its signatures
        recovered ahead, see ``chain.recovery``)."""
        ws = WorkingState(self.store, self.index)
        try:
            events = apply_block(ws, height, time_ms, txs, recovered)
            changes = ws.changes()  # encodes every record: may raise too, so inside the reset
            encoded = [encode(e) for e in events]
        except BaseException:
            self.reset_index()
            raise
        leaves = [leaf_hash(e) for e in encoded]  # hashed once: the root is built from them
        return Executed(
            height=height,
            time_ms=time_ms,
            txs=txs,
            events=events,
            changes=changes,
            tx_root=ordered_root(txs),
            events_root=root_of_leaf_hashes(leaves),
            event_leaves=leaves,
            encoded_events=encoded,
        )

    def reset_index(self) -> None:
        """Drop the derived index after an abandoned execution (it tracked uncommitted writes); the
        liquidation index is carried over and re-evaluates what the execution touched (``KeyIndex.reload``)."""
        self.index = self.index.reload(self.store)

    def commit(self, executed: Executed, header: Header, *, expected_root: bytes | None = None) -> bytes:
        """Commit an executed block atomically; with ``expected_root``, only if it matches."""
        # Events are not state, but replayers and `explain` want them next to the block: appended
        # to the events file (its committed length in this block's meta), or in per-height meta.
        encoded_header = encode(header)
        meta = {"header_hash": header_hash(header), "header": encoded_header}
        events_file, before = self.events, 0
        if events_file is not None:
            before = events_file.end
            end = events_file.append(executed.height, encoded_header, encoded_event_list(executed))
            meta[META_EVENTS_END] = end.to_bytes(8, "big")
        elif self.keep_events:
            meta[events_meta_name(executed.height)] = encoded_event_list(executed)
            meta[header_meta_name(executed.height)] = encoded_header
        try:
            root = self.store.commit_block(executed.height, executed.changes, meta, expected_root=expected_root)
        except BaseException:
            if events_file is not None and events_file.end != before:
                events_file.truncate(before)
            self.reset_index()
            raise
        self.index.block_committed()
        return root

    def preview_root(self, executed: Executed) -> bytes:
        return self.store.preview_root(executed.changes)

    def produce(self, time_ms: int, txs: list[bytes]) -> tuple[LogBlock, Executed]:
        """Execute and commit the next block as its producer; returns the log entry.

        A block that no verifier could read back (more than ``MAX_BLOCK_TXS``
        transactions, one longer than ``MAX_TX_BYTES``, or a log entry above
        ``MAX_FRAME``) is refused with ``InvalidBlock`` before anything is committed.
        """
        height = self.height + 1
        parent = self.last_header_hash()
        check_block_limits(txs)
        executed = self.execute(height, time_ms, txs)
        state_root = self.preview_root(executed)
        header = Header(
            height=height,
            time_ms=time_ms,
            parent_hash=parent,
            tx_root=executed.tx_root,
            state_root=state_root,
            events_root=executed.events_root,
        )
        entry = LogBlock(block=Block(header=header, txs=txs), witness=witness_of(executed))
        size = len(encode(entry))
        if size > MAX_FRAME:
            self.reset_index()
            raise InvalidBlock(
                f"block {height}: its log entry would be {size} bytes, above the frame limit of {MAX_FRAME}"
            )
        self.commit(executed, header, expected_root=state_root)
        return entry, executed

    def apply_logged(self, entry: LogBlock, recovered: RecoveredBlock | None = None) -> Executed:
        """Check and commit one block from a log; raises ``VerifyFailure`` on any mismatch.

        Nothing is committed unless every root matches. ``recovered``: the block's signatures
        recovered ahead (``chain.recovery``); the result is the same without it.
        """
        block, header = entry.block, entry.block.header
        h = header.height
        if h != self.height + 1:
            raise VerifyFailure(f"height {h}: expected block {self.height + 1}", height=h, what="height")
        if header.parent_hash != self.last_header_hash():
            raise VerifyFailure(
                f"height {h}: parent hash does not match the previous block", height=h, what="parent_hash"
            )
        executed = self.execute(h, header.time_ms, list(block.txs), recovered)
        if executed.tx_root != header.tx_root:
            self.reset_index()
            raise VerifyFailure(
                f"height {h}: tx root mismatch (the block's transactions were altered)", height=h, what="tx_root"
            )
        if executed.events_root != header.events_root:
            self.reset_index()
            tx_index = first_event_difference(executed, entry.witness)
            where = f" (first difference at transaction {tx_index})" if tx_index is not None else ""
            raise VerifyFailure(
                f"height {h}: events root mismatch{where}", height=h, what="events_root", tx_index=tx_index
            )
        root = self.preview_root(executed)
        if root != header.state_root:
            self.reset_index()
            keys = differing_keys(executed, entry.witness)
            raise VerifyFailure(
                f"height {h}: state root mismatch: header {header.state_root.hex()}, replay {root.hex()}",
                height=h,
                what="state_root",
                keys=keys,
            )
        self.commit(executed, header, expected_root=header.state_root)
        return executed


def check_block_limits(txs: list[bytes]) -> None:
    """What ``decode_block`` enforces, checked by the producer before it executes (``InvalidBlock``)."""
    if len(txs) > MAX_BLOCK_TXS:
        raise InvalidBlock(f"a block holds at most {MAX_BLOCK_TXS} transactions, got {len(txs)}")
    for i, raw in enumerate(txs):
        if not isinstance(raw, bytes):
            raise InvalidBlock(f"transaction {i} is {type(raw).__name__}, not bytes")
        if len(raw) > MAX_TX_BYTES:
            raise InvalidBlock(f"transaction {i} is {len(raw)} bytes, above the limit of {MAX_TX_BYTES}")


def first_event_difference(executed: Executed, witness: BlockWitness) -> int | None:
    """The transaction index of the first event that differs from the producer's witness."""
    for i, leaf in enumerate(executed.event_leaves):
        if i >= len(witness.event_leaves) or witness.event_leaves[i] != leaf:
            return event_tx_index(executed.events[i])
    if len(witness.event_leaves) > len(executed.event_leaves):
        idx = (
            witness.event_tx_indexes[len(executed.event_leaves)]
            if len(witness.event_tx_indexes) > len(executed.event_leaves)
            else None
        )
        return idx
    return None


def differing_keys(executed: Executed, witness: BlockWitness) -> list[str]:
    """State keys whose new value differs between this replay and the producer's witness."""
    ours = {k: (b"" if v is None else blake3.blake3(v).digest()) for k, v in executed.changes.items()}
    theirs = {c.key: c.value_hash for c in witness.changed}
    out = []
    for key in sorted(set(ours) | set(theirs)):
        if ours.get(key) != theirs.get(key):
            out.append(describe_key(key))
    return out


# ---------------------------------------------------------------- log reading
def iter_log(path: str) -> Iterator[tuple[int, Any]]:
    """Yield (frame index, Genesis | LogBlock) from a log, raising typed errors on damage."""
    for frame in read_log(path):
        if frame.kind == FRAME_GENESIS:
            if frame.index != 0:
                raise InvalidBlock(f"frame {frame.index}: genesis must be the first frame")
            yield frame.index, decode_genesis(frame.payload)
        elif frame.kind == FRAME_BLOCK:
            if frame.index == 0:
                raise InvalidBlock("the log does not start with a genesis frame")
            yield frame.index, decode_canonical(frame.payload, LogBlock, what=f"block frame {frame.index}")


def replay_log(
    engine: Engine,
    path: str,
    *,
    on_block: Callable[[LogBlock, Executed | None], None] | None = None,
    recover_workers: int = 0,
) -> dict[str, int]:
    """Apply a log to ``engine``'s store, resuming after the stored height.

    Blocks already in the store are skipped, after checking that the stored
    header hash at the resume height equals the log's (same chain, same
    history). Returns counts: blocks applied, skipped, txs, rejected.

    With ``recover_workers > 0``, signatures of the blocks ahead are recovered on that many
    processes while the engine executes (``chain.recovery``, protocol §8.5); the results,
    errors included, are the same.
    """
    stats = {"applied": 0, "skipped": 0, "txs": 0, "rejected": 0}
    with RecoveryPipeline(recover_workers) as pipeline:
        for _index, item, recovered in pipeline.run(iter_log(path), skip_until=engine.height):
            _replay_one(engine, item, recovered, stats, on_block)
    return stats


def _replay_one(
    engine: Engine,
    item: Any,
    recovered: RecoveredBlock | None,
    stats: dict[str, int],
    on_block: Callable[[LogBlock, Executed | None], None] | None,
) -> None:
    """One item of ``replay_log``: genesis, a block already stored (checked, skipped), or a new block."""
    if isinstance(item, Genesis):
        engine.init_genesis(item)
        return
    h = item.block.header.height
    if h <= engine.height:
        if h == engine.height and header_hash(item.block.header) != engine.last_header_hash():
            raise VerifyFailure(f"height {h}: the store's block differs from the log's", height=h, what="resume")
        stats["skipped"] += 1
        if on_block:
            on_block(item, None)
        return
    executed = engine.apply_logged(item, recovered)
    stats["applied"] += 1
    stats["txs"] += len(executed.txs)
    stats["rejected"] += sum(1 for e in executed.events if isinstance(e, Receipt) and not e.ok)
    if on_block:
        on_block(item, executed)
