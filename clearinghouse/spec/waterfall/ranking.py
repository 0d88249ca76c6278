"""ADL ranking indexes and queues (protocol §12.10), compared exactly.

A candidate is one opposite-side position together with the value of its
margin unit (the cross account's value, or the isolated position's value).
Indexes are exact integer ratios (``spec.math.ranking``, compared by
cross-multiplication, never rounded); the queue is sorted by index descending,
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
from itertools import repeat
from typing import NamedTuple

import blake3

from clearinghouse.spec.math.ranking import (
    Ratio,
    Ratios,
    bitmex_ratios,
    descending_order,
    hyperliquid_ratios,
    reduced,
    reduced_all,
)
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


def hyperliquid_indexes(cs: list[Candidate]) -> Ratios:
    """Hyperliquid's index of every candidate (``spec.math.ranking.hyperliquid_ratios``), not reduced (protocol §12.10).

    Raises:
        ZeroDivisionError: a candidate's cost or value is zero (not eligible).
    """
    return hyperliquid_ratios(cs)


def bitmex_indexes(cs: list[Candidate]) -> Ratios:
    """BitMEX's index of every candidate (``spec.math.ranking.bitmex_ratios``), not reduced (protocol §12.10).

    Raises:
        ZeroDivisionError: a candidate's cost or value is zero, or a losing position's leverage is zero.
    """
    return bitmex_ratios(cs)


def hyperliquid_index(c: Candidate) -> Ratio:
    """One candidate's Hyperliquid index, in lowest terms (protocol §12.10).

    Raises:
        ZeroDivisionError: ``c.cost`` or ``c.value`` is zero (not eligible).
    """
    r = hyperliquid_indexes([c])
    return reduced(Ratio(r.nums[0], r.dens[0]))


def bitmex_index(c: Candidate) -> Ratio:
    """One candidate's BitMEX index, in lowest terms (protocol §12.10).

    Raises:
        ZeroDivisionError: ``c.cost`` or ``c.value`` is zero, or a losing position's leverage is zero.
    """
    r = bitmex_indexes([c])
    return reduced(Ratio(r.nums[0], r.dens[0]))


RANKINGS: dict[str, Callable[[list[Candidate]], Ratios]] = {
    "hyperliquid": hyperliquid_indexes,
    "bitmex": bitmex_indexes,
}
"""Each ranking's index of a list of candidates (protocol §12.10)."""


class Ranked(NamedTuple):
    """A queue entry: its 1-based rank, its index ``num / den`` in lowest terms, the candidate
    (protocol §12.10)."""

    rank: int
    num: int
    den: int
    candidate: Candidate

    @property
    def ratio(self) -> Ratio:
        """The entry's index in lowest terms (protocol §12.10)."""
        return Ratio(self.num, self.den)


def rank_candidates(candidates: list[Candidate], ranking: str) -> list[Ranked]:
    """The queue: eligible candidates by index descending, then address, then unit (protocol §12.10).

    Indexes are compared exactly (``spec.math.ranking.descending_order``: an integer key per
    index, equivalent to cross-multiplying); entries with equal indexes are ordered by address
    ascending, then unit ascending. Each entry carries its index reduced to lowest terms.

    Raises:
        KeyError: ``ranking`` is not a known ranking.
    """
    index_fn = RANKINGS[ranking]
    eligible = [c for c in candidates if c.value > 0 and c.cost != 0]
    ratios = index_fn(eligible)
    order = descending_order(ratios, lambda i: (eligible[i].account, eligible[i].unit))
    nums, dens = reduced_all(ratios, order)
    rows = zip(range(1, len(order) + 1), nums, dens, map(eligible.__getitem__, order), strict=True)
    return list(map(tuple.__new__, repeat(Ranked), rows))  # Ranked(rank, num, den, candidate), built in C


def ranking_hash(queue: list[Ranked]) -> bytes:
    """blake3 of the canonical encoding of the whole ranking, in order (protocol §12.10).

    One row per entry, ``[account, unit, size, num, den]`` with the index in lowest terms
    and num/den as decimal strings, after the domain tag ``clearinghouse/adl-ranking/v1\\0``.
    """
    cands = [r.candidate for r in queue]
    nums = map(str, [r.num for r in queue])
    dens = map(str, [r.den for r in queue])
    rows = list(zip([c.account for c in cands], [c.unit for c in cands], [c.size for c in cands], nums, dens))
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
