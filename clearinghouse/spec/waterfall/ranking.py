"""ADL ranking indexes and queues (protocol §12.10), compared exactly.

A candidate is one opposite-side position together with the value of its
margin unit (the cross account's value, or the isolated position's value).
Indexes are ``fractions.Fraction``; the queue is sorted by index descending,
then by address ascending, then by unit (the one tie rule). Units with value
<= 0 are not eligible.

* ``hyperliquid``: (1 + uPnL / |entry notional|) x (notional / value); for a
  long, 1 + uPnL/cost = mark / entry, Hyperliquid's published form.
* ``bitmex``: PnL% x effective leverage when profitable, PnL% / effective
  leverage when losing; effective leverage = notional / (notional - bankruptcy
  value), which for the unit's share of value (spread by maintenance margin)
  is notional x sum MM / (value x MM).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import blake3
import msgspec

from tx.encoding import encode


@dataclass(frozen=True)
class Candidate:
    """An opposite-side position as the ranking sees it (all integers; protocol §12.10)."""

    account: bytes
    unit: int
    size: int
    cost: int
    mark: int
    value: int
    maintenance: int
    unit_maintenance: int


def hyperliquid_index(c: Candidate) -> Fraction:
    """Hyperliquid's ADL index: (1 + PnL %) x notional / value, exact (protocol §12.10)."""
    notional = abs(c.size) * c.mark
    upnl = c.size * c.mark - c.cost
    return Fraction(abs(c.cost) + upnl, abs(c.cost)) * Fraction(notional, c.value)


def bitmex_index(c: Candidate) -> Fraction:
    """BitMEX's ADL index: PnL % x effective leverage (or PnL % / leverage for losers), exact (protocol §12.10)."""
    notional = abs(c.size) * c.mark
    upnl = c.size * c.mark - c.cost
    pnl_pct = Fraction(upnl, abs(c.cost))
    leverage = (
        Fraction(notional * c.unit_maintenance, c.value * c.maintenance)
        if c.maintenance
        else Fraction(notional, c.value)
    )
    return pnl_pct * leverage if upnl >= 0 else pnl_pct / leverage


RANKINGS: dict[str, Callable[[Candidate], Fraction]] = {
    "hyperliquid": hyperliquid_index,
    "bitmex": bitmex_index,
}


@dataclass(frozen=True)
class Ranked:
    """A candidate with its rank (1 = first to be deleveraged) and exact index (protocol §12.10)."""

    rank: int
    index: Fraction
    candidate: Candidate


def rank_candidates(candidates: list[Candidate], ranking: str) -> list[Ranked]:
    """The queue: eligible candidates by index descending, then address, then unit (protocol §12.10)."""
    index_fn = RANKINGS[ranking]
    scored = [(index_fn(c), c) for c in candidates if c.value > 0 and c.cost != 0]
    scored.sort(key=lambda ic: (-ic[0], ic[1].account, ic[1].unit))
    return [Ranked(rank=i + 1, index=ix, candidate=c) for i, (ix, c) in enumerate(scored)]


class _HashRow(msgspec.Struct, array_like=True, frozen=True):
    account: bytes
    unit: int
    size: int
    num: str
    den: str


def ranking_hash(queue: list[Ranked]) -> bytes:
    """blake3 of the canonical encoding of the whole ranking, in order (protocol §12.10)."""
    rows = [
        _HashRow(
            r.candidate.account, r.candidate.unit, r.candidate.size, str(r.index.numerator), str(r.index.denominator)
        )
        for r in queue
    ]
    return blake3.blake3(b"clearinghouse/adl-ranking/v1\x00" + encode(rows)).digest()


def indicator(queue: list[Ranked], account: bytes, unit: int) -> dict[str, int] | None:
    """A position's ADL queue indicator: rank, queue length, percentile (1 = front) and
    quintile 1-5 (5 = the front fifth, most likely to be deleveraged).

    See protocol §12.10.
    """
    n = len(queue)
    for r in queue:
        if r.candidate.account == account and r.candidate.unit == unit:
            percentile = -((-r.rank * 100) // n)
            quintile = 5 - (r.rank - 1) * 5 // n
            return {"rank": r.rank, "queue_length": n, "percentile": percentile, "quintile": quintile}
    return None
