"""The transition's view of state: a write overlay over the committed store.

The block transition reads state only through this class (``get``, ``put``,
``delete`` and ordered key ranges) and never touches storage. It keeps:

* the block's writes as decoded records (``changes()`` encodes them, sorted,
  for the store to commit atomically with the new root);
* a per-transaction journal, so a rejected transaction is undone exactly
  (``begin_tx`` / ``commit_tx`` / ``rollback_tx``): nothing is half-applied;
* ordered key indexes for the namespaces the transition walks in order
  (resting orders, trigger orders, positions). They are a cache derived from
  state: rebuilt from the store on load, updated on every put/delete, undone
  with the journal, so walking the book costs O(log n) per step;
* a per-owner index of resting orders (protocol §7.1: owner, then the book key),
  derived the same way, so cancelling one account's orders in a market costs
  O(its orders), not O(book) (liquidation, protocol §12.3);
* the liquidation index (``KeyIndex.margin``, ``spec.waterfall.unit_index``), built
  on first use; every account or position write is reported to it (``touch``) so
  it knows which units to re-evaluate (protocol §12.3).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import msgspec
from sortedcontainers import SortedList

from clearinghouse.spec.errors import InvalidTransaction
from clearinghouse.spec.events import BaseEvent
from clearinghouse.spec.state.keys import NS_ACCOUNT, NS_LIQ_REF, NS_ORDER, NS_POSITION, NS_TRIGGER, record_type
from tx.encoding import encode

INDEXED_NAMESPACES = (NS_ORDER, NS_TRIGGER, NS_POSITION, NS_LIQ_REF)

_MISSING = object()


class StateReader(Protocol):
    """What the transition needs from committed storage (``state.Store`` satisfies it; protocol §6.5)."""

    def get(self, key: bytes) -> bytes | None: ...

    def scan_prefix(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]: ...


class KeyIndex:
    """Sorted keys of the indexed namespaces, present in state right now, and the resting
    orders of each owner (``owner || book key without its namespace byte``, sorted).

    See protocol §6.5.
    """

    def __init__(self) -> None:
        self._keys: dict[bytes, SortedList] = {ns: SortedList() for ns in INDEXED_NAMESPACES}
        self._by_owner = SortedList()
        self.margin: Any = None
        """The liquidation index (``spec.waterfall.unit_index.UnitIndex``) once built: derived from
        state like the key sets, never committed; None until steps 40/50 first need it."""

    @classmethod
    def load(cls, reader: StateReader) -> KeyIndex:
        index = cls()
        for ns in INDEXED_NAMESPACES:
            index._keys[ns] = SortedList(k for k, _ in reader.scan_prefix(ns))
        order_type = record_type(NS_ORDER)
        index._by_owner = SortedList(
            msgspec.msgpack.decode(v, type=order_type).owner + k[1:] for k, v in reader.scan_prefix(NS_ORDER)
        )
        return index

    def add(self, key: bytes, record: Any = None) -> None:
        self._keys[key[:1]].add(key)
        if key[:1] == NS_ORDER:
            self._by_owner.add(record.owner + key[1:])

    def discard(self, key: bytes, record: Any = None) -> None:
        self._keys[key[:1]].discard(key)
        if key[:1] == NS_ORDER:
            self._by_owner.discard(record.owner + key[1:])

    def owner_orders(self, owner: bytes, market: int) -> list[bytes]:
        """``owner``'s resting-order keys in ``market``, ascending (bids then asks, each in
        price-time priority): the keys a walk of both book sides would find for that owner,
        in the same order, at O(log n + k) cost. A snapshot: safe to mutate while iterating."""
        prefix = owner + market.to_bytes(4, "big")
        n = len(owner)
        return [NS_ORDER + k[n:] for k in self._by_owner.irange(prefix, prefix + b"\xff" * 17)]

    def first(self, prefix: bytes) -> bytes | None:
        """The smallest present key starting with ``prefix`` (best order on a book side)."""
        keys = self._keys[prefix[:1]]
        i = keys.bisect_left(prefix)
        if i < len(keys):
            key: bytes = keys[i]
            if key.startswith(prefix):
                return key
        return None

    def iter_prefix(self, prefix: bytes) -> Iterator[bytes]:
        """Present keys with ``prefix`` in ascending order (a snapshot: safe to mutate while iterating)."""
        keys = self._keys[prefix[:1]]
        hi = prefix + b"\xff" * 40
        return iter(list(keys.irange(prefix, hi)))

    def walk(self, prefix: bytes) -> Iterator[bytes]:
        """Present keys with ``prefix`` in ascending order, lazily: O(log n) to start and O(1)
        per key, for read-only walks that stop early (best prices, impact depth, due triggers).
        The index must not change while the walk is in progress."""
        walk: Iterator[bytes] = self._keys[prefix[:1]].irange(prefix, prefix + b"\xff" * 40)
        return walk

    def block_committed(self) -> None:
        """The engine committed the block this index followed (the liquidation index keeps its work)."""
        if self.margin is not None:
            self.margin.committed()

    def reload(self, reader: StateReader) -> KeyIndex:
        """A fresh index of committed state after an abandoned execution. The key sets are
        reloaded; the liquidation index is carried over (it re-evaluates every unit the abandoned
        execution touched) unless it was first built inside that execution."""
        index = KeyIndex.load(reader)
        if self.margin is not None and self.margin.abandon():
            index.margin = self.margin
        return index

    def count_prefix(self, prefix: bytes) -> int:
        keys = self._keys[prefix[:1]]
        count: int = keys.bisect_left(prefix + b"\xff" * 40) - keys.bisect_left(prefix)
        return count


class WorkingState:
    """Overlay of one block's writes on top of committed state (see module docstring; protocol §6.5)."""

    def __init__(self, reader: StateReader, index: KeyIndex) -> None:
        self._reader = reader
        self.index = index
        self._dirty: dict[bytes, Any] = {}
        self._read_cache: dict[bytes, Any] = {}
        self._original_present: dict[bytes, bool] = {}
        self._journal: list[tuple[bytes, Any]] | None = None

    # ------------------------------------------------------------ reading
    def get(self, key: bytes) -> Any:
        """The record under ``key`` (decoded), or None."""
        value = self._dirty.get(key, _MISSING)
        if value is not _MISSING:
            return value
        value = self._read_cache.get(key, _MISSING)
        if value is not _MISSING:
            return value
        raw = self._reader.get(key)
        value = None if raw is None else msgspec.msgpack.decode(raw, type=record_type(key))
        self._read_cache[key] = value
        return value

    # ------------------------------------------------------------ writing
    def put(self, key: bytes, record: Any) -> None:
        """Set ``key`` to ``record`` (None deletes)."""
        old = self.get(key)
        if self._journal is not None:
            self._journal.append((key, self._dirty.get(key, _MISSING)))
        if key not in self._original_present:
            self._original_present[key] = old is not None
        self._dirty[key] = record
        ns = key[:1]
        if ns in INDEXED_NAMESPACES:
            self._reindex(key, old, record)
        if (ns == NS_ACCOUNT or ns == NS_POSITION) and self.index.margin is not None:
            self.index.margin.touch(key, old, record)

    def delete(self, key: bytes) -> None:
        self.put(key, None)

    def _reindex(self, key: bytes, old: Any, new: Any) -> None:
        """Keep the derived indexes in step with one write (``old``/``new`` records or None).
        A resting order keeps its owner for life (a size change rewrites it in place)."""
        if old is not None and new is None:
            self.index.discard(key, old)
        elif new is not None and old is None:
            self.index.add(key, new)

    # ------------------------------------------------------------ per-transaction atomicity
    def begin_tx(self) -> None:
        assert self._journal is None, "nested transaction"
        self._journal = []

    def commit_tx(self) -> None:
        self._journal = None

    def savepoint(self) -> int:
        """A mark inside the current transaction to undo back to (e.g. a maker that fails margin)."""
        assert self._journal is not None, "savepoint outside a transaction"
        return len(self._journal)

    def rollback_to(self, mark: int) -> None:
        """Undo the writes made since ``savepoint()`` returned ``mark``."""
        assert self._journal is not None
        tail = self._journal[mark:]
        del self._journal[mark:]
        self._undo(tail)

    def rollback_tx(self) -> None:
        """Undo every write since ``begin_tx``, newest first (index included)."""
        journal, self._journal = self._journal, None
        assert journal is not None
        self._undo(journal)

    def _undo(self, journal: list[tuple[bytes, Any]]) -> None:
        for key, previous in reversed(journal):
            current = self.get(key)
            if previous is _MISSING:
                del self._dirty[key]
            else:
                self._dirty[key] = previous
            if key[:1] in INDEXED_NAMESPACES:
                self._reindex(key, current, self.get(key))

    # ------------------------------------------------------------ output
    def changes(self) -> dict[bytes, bytes | None]:
        """The block's net writes, sorted by key, encoded canonically.

        A key created and deleted within the block (e.g. a liquidation reference settled in the same block)
        is no change at all and is left out.
        """
        out: dict[bytes, bytes | None] = {}
        for key in sorted(self._dirty):
            record = self._dirty[key]
            if record is None:
                if self._original_present.get(key, True):
                    out[key] = None
            else:
                out[key] = encode(record)
        return out


class OutOfBounds(InvalidTransaction):
    """A record or event written by a unit has a field outside its declared type (u64, i64,
    u32 ...): the unit is undone with code ``INVALID_AMOUNT`` (protocol §2.3). The handlers
    bound what they write themselves, with precise messages; this check in ``atomically``
    makes sure nothing they missed can reach the change set or the events root, where it
    would fail to encode (halting the block) or encode a value no decoder accepts."""

    code = "INVALID_AMOUNT"


def _check_in_bounds(value: Any) -> None:
    try:
        msgspec.msgpack.decode(encode(value), type=type(value))
    except (OverflowError, msgspec.ValidationError):
        raise OutOfBounds(f"{type(value).__name__} would leave its 64-bit range") from None


def check_unit_bounds(ws: WorkingState, events: list[BaseEvent]) -> None:
    """Every record the open journal wrote (as it stands now) and every event in ``events``
    fits its declared types; else ``OutOfBounds``. Keys in sorted order, events in order.

    See protocol §6.5.
    """
    assert ws._journal is not None
    for key in sorted({k for k, _ in ws._journal}):
        record = ws._dirty.get(key)
        if record is not None:
            _check_in_bounds(record)
    for event in events:
        _check_in_bounds(event)


def atomically(ws: WorkingState, events: list[BaseEvent], body: Callable[[], object]) -> InvalidTransaction | None:
    """Run ``body`` as one journalled unit (a transaction, a liquidated unit, a fired trigger; protocol §6.5).

    On ``InvalidTransaction`` every write of the unit and every event it appended to
    ``events`` are undone and the error is returned; otherwise the writes stand and
    None is returned. Matching inside ``body`` may use savepoints of this journal.
    Before the writes stand, each written record and each new event must fit its declared
    64-bit types (``check_unit_bounds``); if one does not, the unit is undone the same way.
    """
    ws.begin_tx()
    events_before = len(events)
    try:
        body()
        check_unit_bounds(ws, events[events_before:])
    except InvalidTransaction as exc:
        ws.rollback_tx()
        del events[events_before:]
        return exc
    ws.commit_tx()
    return None
