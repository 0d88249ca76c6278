"""ADL ranking indexes as integer ratios, compared by cross-multiplication (protocol §12.10).

An index is a ``Ratio`` of two integers with a positive denominator, not
necessarily in lowest terms: two indexes compare as rationals,
``a/b > c/d`` exactly when ``a x d > c x b``. Nothing is rounded. The one
place a ratio is reduced is what is published (events, the ranking hash):
``reduced`` divides numerator and denominator by their gcd, which gives the
same integers as ``fractions.Fraction`` of the same value.

Sorting n indexes by pairwise cross-multiplication costs n log n Python calls;
``order_keys`` instead maps every index of one queue to the integer
``floor(a x 2^s / b)`` with ``2^s >= D^2`` for the queue's largest denominator
``D``. The map is exact for ordering: equal rationals get equal keys, and two
different rationals ``x < y`` with denominators ``<= D`` differ by at least
``1 / D^2 >= 2^-s``, so ``y x 2^s - x x 2^s >= 1`` and their floors differ
(floor is monotone, so the order is kept). Sorting by the key is therefore
sorting by the exact index.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Callable, Sequence
from itertools import islice
from math import gcd
from operator import eq, floordiv
from typing import Any, NamedTuple, Protocol


class Ratio(NamedTuple):
    """An exact rational ``num / den``; ``den > 0``, not necessarily in lowest terms (protocol §12.10)."""

    num: int
    den: int


class Ratios(NamedTuple):
    """Many exact rationals ``nums[i] / dens[i]`` (every ``den > 0``, not necessarily in lowest terms)
    (protocol §12.10)."""

    nums: list[int]
    dens: list[int]


def _positive(nums: list[int], dens: list[int], what: str) -> Ratios:
    """``Ratios(nums, dens)`` with every denominator made positive (both signs flipped).

    Raises:
        ZeroDivisionError: a denominator is zero.
    """
    if dens and min(dens) <= 0:
        for i, d in enumerate(dens):
            if d == 0:
                raise ZeroDivisionError(f"{what}: zero denominator")
            if d < 0:
                nums[i], dens[i] = -nums[i], -d
    return Ratios(nums, dens)


class PositionInputs(Protocol):
    """What an index reads of a position (``spec.waterfall.ranking.Candidate`` has these) (protocol §12.10)."""

    @property
    def size(self) -> int:
        """Signed size in lots."""
        ...

    @property
    def cost(self) -> int:
        """Signed entry cost (size x entry price)."""
        ...

    @property
    def mark(self) -> int:
        """The market's mark price."""
        ...

    @property
    def value(self) -> int:
        """The margin unit's value."""
        ...

    @property
    def maintenance(self) -> int:
        """This position's maintenance margin."""
        ...

    @property
    def unit_maintenance(self) -> int:
        """The unit's total maintenance margin."""
        ...


class Inputs(NamedTuple):
    """One position's ``PositionInputs`` as plain integers (protocol §12.10)."""

    size: int
    cost: int
    mark: int
    value: int
    maintenance: int = 0
    unit_maintenance: int = 0


def hyperliquid_ratios(positions: Sequence[PositionInputs]) -> Ratios:
    """Hyperliquid's index (1 + uPnL / |cost|) x (notional / value) of each position, as ratios (protocol §12.10).

    ``(|cost| + uPnL) x notional / (|cost| x value)`` with notional = |size| x mark and
    uPnL = size x mark - cost; for a long, 1 + uPnL/cost = mark / entry. Exact (no rounding).

    Raises:
        ZeroDivisionError: a cost or value is zero (such a unit is not eligible).
    """
    nums = [(abs(p.cost) + p.size * p.mark - p.cost) * abs(p.size) * p.mark for p in positions]
    dens = [abs(p.cost) * p.value for p in positions]
    return _positive(nums, dens, "hyperliquid index")


def bitmex_ratios(positions: Sequence[PositionInputs]) -> Ratios:
    """BitMEX's index of each position: PnL% x effective leverage when uPnL >= 0, PnL% / leverage when losing
    (protocol §12.10).

    PnL% = uPnL / |cost|; effective leverage = notional x unit maintenance / (value x
    maintenance) (the position's share of the unit's value, spread by maintenance margin), or
    notional / value when the position's maintenance is 0. Exact (no rounding).

    Raises:
        ZeroDivisionError: a cost or value is zero, or a losing position's leverage is zero.
    """
    nums: list[int] = []
    dens: list[int] = []
    add_num, add_den = nums.append, dens.append
    for p in positions:
        s, c, m, v, mm = p.size, p.cost, p.mark, p.value, p.maintenance
        if v == 0:
            raise ZeroDivisionError("bitmex index: zero value")
        upnl = s * m - c
        lev_num, lev_den = (abs(s) * m * p.unit_maintenance, v * mm) if mm else (abs(s) * m, v)
        if upnl >= 0:
            add_num(upnl * lev_num)
            add_den(abs(c) * lev_den)
        else:
            add_num(upnl * lev_den)
            add_den(abs(c) * lev_num)
    return _positive(nums, dens, "bitmex index")


def hyperliquid_ratio(size: int, cost: int, mark: int, value: int) -> Ratio:
    """One position's ``hyperliquid_ratios`` (protocol §12.10).

    Raises:
        ZeroDivisionError: ``cost`` or ``value`` is zero.
    """
    r = hyperliquid_ratios([Inputs(size, cost, mark, value)])
    return Ratio(r.nums[0], r.dens[0])


def bitmex_ratio(size: int, cost: int, mark: int, value: int, maintenance: int, unit_maintenance: int) -> Ratio:
    """One position's ``bitmex_ratios`` (protocol §12.10).

    Raises:
        ZeroDivisionError: ``cost`` or ``value`` is zero, or the leverage is zero for a losing position.
    """
    r = bitmex_ratios([Inputs(size, cost, mark, value, maintenance, unit_maintenance)])
    return Ratio(r.nums[0], r.dens[0])


def reduced(r: Ratio) -> Ratio:
    """``r`` in lowest terms (the numerator and denominator ``Fraction`` would hold) (protocol §12.10)."""
    g = gcd(r.num, r.den)
    return r if g == 1 else Ratio(r.num // g, r.den // g)


def compare(a: Ratio, b: Ratio) -> int:
    """-1, 0 or 1 as ``a`` is less than, equal to or greater than ``b`` (cross-multiplication) (protocol §12.10)."""
    left, right = a.num * b.den, b.num * a.den
    return (left > right) - (left < right)


def order_keys(ratios: Ratios, *, descending: bool = False) -> list[int]:
    """Integer keys ordering ``ratios`` exactly as the rationals (see the module docstring) (protocol §12.10).

    ``key(x) = floor(x.num x 2^s / x.den)`` with ``s = 2 x bit_length(max den)``, so
    ``2^s > D^2``; equal rationals get equal keys and ``x < y`` gives ``key(x) < key(y)``
    (floor division, rounding toward minus infinity, is monotone). With ``descending``
    the keys are ``floor(-x.num x 2^s / x.den)``: the same argument for ``-x``, so
    ``x < y`` gives ``key(x) > key(y)``.
    """
    if not ratios.dens:
        return []
    shift = 2 * max(ratios.dens).bit_length()
    if descending:
        return [(-num << shift) // den for num, den in zip(ratios.nums, ratios.dens, strict=True)]
    return [(num << shift) // den for num, den in zip(ratios.nums, ratios.dens, strict=True)]


def descending_order(ratios: Ratios, tie_key: Callable[[int], Any]) -> list[int]:
    """Positions ``0..n-1`` of ``ratios`` sorted by value descending, equal values by ``tie_key(position)`` ascending
    (protocol §12.10).

    Exact: sorts by ``order_keys`` (see the module docstring); only runs of equal values
    (equal keys) call ``tie_key``.
    """
    keys = order_keys(ratios, descending=True)
    order = sorted(range(len(keys)), key=keys.__getitem__)
    sorted_keys = list(map(keys.__getitem__, order))
    if not any(map(eq, sorted_keys, islice(sorted_keys, 1, None))):
        return order
    for key, count in Counter(keys).items():
        if count > 1:
            lo = bisect_left(sorted_keys, key)
            order[lo : lo + count] = sorted(order[lo : lo + count], key=tie_key)
    return order


def reduced_all(ratios: Ratios, order: list[int]) -> Ratios:
    """The ratios at positions ``order``, in that order, each in lowest terms (``reduced``) (protocol §12.10)."""
    nums = list(map(ratios.nums.__getitem__, order))
    dens = list(map(ratios.dens.__getitem__, order))
    g = list(map(gcd, nums, dens))
    return Ratios(list(map(floordiv, nums, g)), list(map(floordiv, dens, g)))
