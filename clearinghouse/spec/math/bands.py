"""Safe bands: how far a market's driver may move before a healthy unit could reach maintenance.

Pure integer arithmetic (no state), used by the liquidation index (``spec.waterfall.unit_index``,
protocol §12.3), which is an implementation detail: it only decides which units the trigger
step needs to evaluate, never what happens to them.

The model. A position of signed size ``s`` in a market contributes ``value_m`` to its unit's
value and ``mm_m`` to its maintenance margin. Between the moment a unit is evaluated and a
later moment, the position's *loss* is ``(value_m - mm_m) then - (value_m - mm_m) now``. Each
market publishes two integer *keys*, a long key that falls and a short key that rises when the
market moves against that side, and a denominator ``den`` and rounding ``reserve`` such that
for every position

    loss <= ceil(|s| x adverse / den) + reserve,   adverse = key_then - key_now (long)
                                                            = key_now - key_then (short)

whatever the direction of the move (``spec.waterfall.unit_index.market_driver`` defines the
keys, with the proof). With marks alone the keys ``(2L - 1) x mark`` (long) and
``(2L + 1) x mark`` (short), ``den = 2L`` (``L`` = the market's maximum leverage) and
``reserve = 0`` already satisfy it. Proof, long: value moves by ``s x (p' - p)`` and
``mm(p') <= mm(p) + ceil(s (p' - p) / 2L)`` (ceil is subadditive), so
``loss <= s (p - p') + ceil(-s (p - p') / 2L) = ceil(s (p - p') (2L - 1) / 2L)``; short
(size ``-a``): ``loss <= a (p' - p) + ceil(a (p' - p) / 2L) = ceil(a (p' - p) (2L + 1) / 2L)``.

A unit evaluated with slack ``S = value - maintenance >= 0`` splits ``S`` into per-position
budgets summing to at most ``S`` (``split_slack``); each position gets the largest adverse key
move its budget pays for (``adverse_room``). While no key has moved past its position's edge,
the unit's total loss is at most ``S``: value stays >= maintenance, so the unit is not
liquidatable (and not below zero). Every rounding is against the unit (bands are narrower).
"""

from __future__ import annotations

from typing import NamedTuple


class Band(NamedTuple):
    """One position's safe edge on its market's key for its side (protocol §12.3, index only).

    ``is_long``: which key (long keys fall, short keys rise when the market moves against the
    side). ``edge``: the last safe key value: a long is safe while ``key >= edge``, a short
    while ``key <= edge``. ``edge`` None: no move of this market's key is safe (the budget does
    not cover the rounding reserve): the unit is evaluated on every block.
    """

    market: int
    is_long: bool
    edge: int | None


def split_slack(slack: int, weights: list[int]) -> list[int]:
    """Split ``slack >= 0`` into budgets proportional to ``weights`` (e.g. notionals), each rounded
    down, so the budgets never sum to more than ``slack``. All weights 0: equal shares, rounded down (protocol §12.3).

    Raises:
        ValueError: ``slack`` is negative or a weight is negative (a caller bug).
    """
    if slack < 0 or any(w < 0 for w in weights):
        raise ValueError("slack and weights must be non-negative")
    total = sum(weights)
    if total == 0:
        return [slack // len(weights) for _ in weights] if weights else []
    return [slack * w // total for w in weights]  # down: the budgets sum to at most the slack


def adverse_room(size_abs: int, budget: int, den: int, reserve: int) -> int | None:
    """The largest adverse key move ``d >= 0`` with ``ceil(size_abs x d / den) + reserve <= budget``:
    ``floor((budget - reserve) x den / size_abs)`` (down: narrower). None when ``budget < reserve``
    (no move is known to be safe) (protocol §12.3).

    Raises:
        ValueError: ``size_abs`` or ``den`` is not positive (a caller bug).
    """
    if size_abs <= 0 or den <= 0:
        raise ValueError("size and denominator must be positive")
    if budget < reserve:
        return None
    return (budget - reserve) * den // size_abs  # down: against the unit


def band_edge(is_long: bool, key: int, room: int | None) -> int | None:
    """The edge of a band ``room`` wide from ``key``: below it for a long, above it for a short (protocol §12.3)."""
    if room is None:
        return None
    return key - room if is_long else key + room


def crossed(band: Band, key_now: int) -> bool:
    """Has the side's key moved past the band's edge (or is there no safe band at all)? (protocol §12.3)"""
    if band.edge is None:
        return True
    return key_now < band.edge if band.is_long else key_now > band.edge


def loss_bound(size_abs: int, adverse: int, den: int, reserve: int) -> int:
    """``ceil(size_abs x adverse / den) + reserve``: the most a position can lose (value minus
    maintenance) when its side's key moved ``adverse`` against it (negative: in its favour) (protocol §12.3)."""
    return -((-size_abs * adverse) // den) + reserve  # ceil
