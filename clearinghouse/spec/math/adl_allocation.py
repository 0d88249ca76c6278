"""Pure allocation of an ADL deficit over winners (protocol §12.13-§12.15): integers only.

The three allocation policies (``pro-rata``, ``risk-water-filling``, ``clawback``)
share one rounding rule. Callers list the winners in **ascending unit order**
(account address, then unit); every function returns one whole amount (lots or
micro-USDC) per winner in that order.

Rounding (``largest_remainder``): each winner first gets the floor of its exact
proportional share; the units the floors leave over go one each to the winners
with the largest remainders, ties to the earlier winner in the list (ascending
address). A winner whose share reaches its cap is fixed at the cap and the rest
is shared again among the others (so no cap is ever exceeded and nothing is
lost to a cap while another winner has room).
"""

from __future__ import annotations

from dataclasses import dataclass

LEVERAGE_SCALE = 1_000_000
"""Leverage levels of ``water_fill`` are integers in units of 1/1,000,000."""


def largest_remainder(total: int, weights: list[int], caps: list[int]) -> list[int]:
    """Share ``total`` whole units in proportion to ``weights``, each at most its cap (protocol §12.13).

    Winners with weight <= 0 or cap <= 0 get nothing. If the caps of the others sum to at
    most ``total``, each gets its cap (the caller reports what is left). Otherwise the
    result sums to exactly ``total``: floors of ``rest x w_i / W`` (rounded down), the
    leftover one unit each by largest remainder ``rest x w_i mod W``, ties by list order
    (ascending address); a share that reaches its cap is fixed there and the rest shared
    again over the winners still below their caps.

    Raises:
        ValueError: ``weights`` and ``caps`` differ in length or ``total`` is negative.
    """
    if len(weights) != len(caps):
        raise ValueError("one weight and one cap per winner")
    if total < 0:
        raise ValueError("a negative total cannot be shared")
    n = len(weights)
    out = [0] * n
    active = [i for i in range(n) if weights[i] > 0 and caps[i] > 0]
    if sum(caps[i] for i in active) <= total:
        for i in active:
            out[i] = caps[i]
        return out
    rest = total
    while rest > 0 and active:
        w = sum(weights[i] for i in active)
        floors = {i: rest * weights[i] // w for i in active}
        capped = [i for i in active if out[i] + floors[i] >= caps[i]]
        if capped:
            # Fix those at their caps and share what remains again over the others.
            for i in capped:
                rest -= caps[i] - out[i]
                out[i] = caps[i]
            active = [i for i in active if i not in set(capped)]
            continue
        for i in active:
            out[i] += floors[i]
        left = rest - sum(floors.values())
        # left < len(active): one more unit each to the largest remainders, ties by list order.
        order = sorted(active, key=lambda i: (-(rest * weights[i] % w), i))
        for i in order[:left]:
            out[i] += 1  # floors[i] + 1 <= cap - out: floors[i] < cap - out[i] for every active i
        rest = 0
    return out


def affordable_lots(size: int, value: int, loss: int) -> int:
    """Lots (of ``size`` >= 0) a winner worth ``value`` may close at a price that costs it ``loss``
    per lot against the mark without going below zero (protocol §12.7 ``affordable``): all of them
    if ``loss <= 0``, else ``min(size, floor(value / loss))``, not below zero."""
    return size if loss <= 0 else max(0, min(size, value // loss))


def pro_rata_capacity(size: int, cost: int, mark: int, value: int) -> int:
    """``c_u = min(uPnL, value)``, not below zero: what a winner's position can give (protocol §12.13).

    ``uPnL = size x mark - cost`` (signed size, signed cost), ``value`` its margin unit's value.
    """
    return max(0, min(size * mark - cost, value))


def pro_rata_lots(lots: int, capacities: list[int], loss: int, sizes: list[int], affordable: list[int]) -> list[int]:
    """Pro-rata (protocol §12.13): ``lots`` whole lots over winners in proportion to capacity ``c_u``.

    Closing a lot at the ADL price costs a winner ``loss`` (> 0) against the mark, so a
    winner gives at most ``floor(c_u / loss)`` lots (its haircut ``q_u x loss`` never exceeds
    ``c_u``), its open size and what it can afford. With ``loss <= 0`` (a fill at or better
    than the mark costs nothing) the cap is the size and ``affordable``. The haircuts are
    ``h_u = q_u x loss``: ``Σ h = min(lots x loss, ...)``, the study's ``min(lambda c_u, c_u)`` in
    whole lots (``largest_remainder``).

    Raises:
        ValueError: the lists differ in length or ``lots`` is negative.
    """
    if not (len(capacities) == len(sizes) == len(affordable)):
        raise ValueError("one capacity, size and affordable cap per winner")
    caps = [
        min(s, a, c // loss) if loss > 0 else min(s, a) for c, s, a in zip(capacities, sizes, affordable, strict=True)
    ]
    return largest_remainder(lots, capacities, caps)


@dataclass(frozen=True)
class Holding:
    """A winner's position as water-filling sees it: |size| in lots, mark, its unit's value, and
    ``cap``, the most lots it may give (its size and what it can afford at the ADL price) (protocol §12.13)."""

    size: int
    mark: int
    value: int
    cap: int


def lots_above(h: Holding, level: int) -> int:
    """Lots ``h`` must give to be at leverage ``level`` (x 1/``LEVERAGE_SCALE``) or below:
    ``size - floor(level x value / (mark x LEVERAGE_SCALE))`` (the size it may keep, rounded down),
    not below zero and at most ``cap`` (protocol §12.13)."""
    keep = level * h.value // (h.mark * LEVERAGE_SCALE)
    return min(h.cap, max(0, h.size - keep))


def water_fill(lots: int, holdings: list[Holding]) -> list[int]:
    """Risk water-filling (protocol §12.14): reduce the most leveraged winners first, down to a
    common leverage level, until ``lots`` lots are given.

    Leverage is ``size x mark / value``, read when the round starts. ``L*`` is the smallest
    integer level (``LEVERAGE_SCALE`` units) with ``Σ lots_above(h, L*) <= lots`` (binary search:
    the sum does not increase with the level). Each winner gives ``lots_above(h, L*)``; the
    lots still missing (fewer than the level ``L* - 1`` would take) go one each to the winners
    that ``L* - 1`` would reduce further, most leveraged first (exact cross-multiplication),
    ties by list order (ascending address). If even level 0 (every winner closes its cap) gives
    fewer than ``lots``, every winner gives its cap and the caller reports the rest.

    Raises:
        ValueError: ``lots`` is negative, or a holding has a non-positive value or mark.
    """
    if lots < 0:
        raise ValueError("a negative number of lots cannot be shared")
    if any(h.value <= 0 or h.mark <= 0 for h in holdings):
        raise ValueError("water-filling needs positive values and marks")
    if sum(lots_above(h, 0) for h in holdings) <= lots:
        return [lots_above(h, 0) for h in holdings]
    lo = 0  # total(lo) > lots
    hi = max(-(-h.size * h.mark * LEVERAGE_SCALE // h.value) for h in holdings)  # total(hi) = 0 <= lots
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if sum(lots_above(h, mid) for h in holdings) <= lots:
            hi = mid
        else:
            lo = mid
    out = [lots_above(h, hi) for h in holdings]
    left = lots - sum(out)
    more = [i for i, h in enumerate(holdings) if lots_above(h, lo) > out[i]]
    # Most leveraged first: a/b > c/d with a = size x mark, b = value, compared as a d > c b.
    order = sorted(
        more,
        key=lambda i: (_Lev(holdings[i].size * holdings[i].mark, holdings[i].value), i),
    )
    while left > 0:
        for i in order:
            if left == 0:
                break
            if out[i] < lots_above(holdings[i], lo):
                out[i] += 1
                left -= 1
    return out


@dataclass(frozen=True)
class _Lev:
    """Sort key: leverage ``num / den`` descending (``den`` > 0), compared exactly."""

    num: int
    den: int

    def __lt__(self, other: _Lev) -> bool:
        return self.num * other.den > other.num * self.den


def clawback_shares(deficit: int, capacities: list[int]) -> list[int]:
    """Clawback (protocol §12.15): ``min(deficit, Σ c)`` micro-USDC over winners in proportion to
    their profit capacity ``c_u``, each at most ``c_u`` (``largest_remainder``).

    Raises:
        ValueError: ``deficit`` is negative.
    """
    if deficit < 0:
        raise ValueError("a negative deficit cannot be shared")
    return largest_remainder(min(deficit, sum(c for c in capacities if c > 0)), capacities, capacities)
