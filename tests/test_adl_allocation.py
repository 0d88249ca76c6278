"""The pure allocation arithmetic of the pro-rata, risk-water-filling and clawback policies
(protocol §12.13-§12.15, ``spec.math.adl_allocation``), computed by hand."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clearinghouse.spec.math.adl_allocation import (
    Holding,
    clawback_shares,
    largest_remainder,
    lots_above,
    pro_rata_capacity,
    pro_rata_lots,
    water_fill,
)

# Winners are listed in ascending address order (A, B, C, D): the tie rule's order.
PRO_RATA = [
    # lots, capacities c_u, loss per lot, sizes, affordable -> lots per winner
    # caps = min(size, affordable, c // loss) = (6, 2, 12); 10 x (300, 100, 600) / 1,000 exactly.
    (10, [300, 100, 600], 50, [20, 20, 20], [20, 20, 20], [3, 1, 6]),
    # floors 2, 0, 4 (remainders 100, 700, 200 of 1,000): the one lot left goes to B.
    (7, [300, 100, 600], 50, [20, 20, 20], [20, 20, 20], [2, 1, 4]),
    # caps (3, 1, 6); floors 2, 0, 5, remainders 700, 900, 400: B then A.
    (9, [300, 100, 600], 100, [20, 20, 20], [20, 20, 20], [3, 1, 5]),
    # caps (20, 2, 1, 20): B and C reach theirs (floor 2 of 2.5 each), 7 left over A and D:
    # 3 each, remainders equal, the tie to A (the earlier address).
    (10, [500, 500, 500, 500], 10, [20, 20, 1, 20], [20, 2, 20, 20], [4, 2, 1, 3]),
    # A has no profit (capacity 0); B and C give their caps 2 + 2 = 4 < 5: the caller reports 1.
    (5, [0, 200, 200], 100, [10, 10, 10], [10, 10, 10], [0, 2, 2]),
]


@pytest.mark.parametrize(
    "lots,capacities,loss,sizes,affordable,expected",
    PRO_RATA,
    ids=["exact-halves", "residue-to-largest-remainder", "capped-by-capacity", "caps-then-tie-by-address", "short"],
)
def test_pro_rata_lots_by_hand(lots, capacities, loss, sizes, affordable, expected):
    out = pro_rata_lots(lots, capacities, loss, sizes, affordable)
    assert out == expected
    # No winner gives more than its capacity (h_u = q_u x loss <= c_u), its size or what it can afford.
    for q, c, s, a in zip(out, capacities, sizes, affordable, strict=True):
        assert q * loss <= c and q <= s and q <= a
    assert sum(out) == min(
        lots, sum(min(s, a, c // loss) for c, s, a in zip(capacities, sizes, affordable, strict=True))
    )


@pytest.mark.parametrize(
    "size,cost,mark,value,expected",
    [(10, 900, 100, 500, 100), (10, 900, 100, 50, 50), (-10, -1_200, 100, 5_000, 200), (10, 1_100, 100, 500, 0)],
    ids=["profit-below-value", "value-below-profit", "short-in-profit", "long-at-a-loss"],
)
def test_pro_rata_capacity(size, cost, mark, value, expected):
    assert pro_rata_capacity(size, cost, mark, value) == expected


def H(size: int, value: int, cap: int | None = None, mark: int = 100) -> Holding:
    return Holding(size=size, mark=mark, value=value, cap=size if cap is None else cap)


WATER = [
    # leverage = size x mark / value: A 10, B 2, C 3. Level 4 takes 6 lots from A alone.
    (6, [H(10, 100), H(10, 500), H(30, 1_000)], [6, 0, 0]),
    # level 2.6: A keeps floor(2.6) = 2 (gives 8), B keeps 10 (13 >= 10), C keeps floor(26) (gives 4);
    # level 2.599999 would make C give 5: 13 > 12.
    (12, [H(10, 100), H(10, 500), H(30, 1_000)], [8, 0, 4]),
    # two equal winners: level 8 takes 2 + 2; the lot left goes to the earlier address.
    (5, [H(10, 100), H(10, 100)], [3, 2]),
    # A may give only 3 (its cap); level 1.6 takes 2 from B (keeps floor(1.6 x 5) = 8).
    (5, [H(10, 100, cap=3), H(10, 500)], [3, 2]),
    # every cap together (3 + 2) is less than 10: each gives its cap, the caller reports the rest.
    (10, [H(10, 100, cap=3), H(10, 500, cap=2), H(5, 1_000, cap=0)], [3, 2, 0]),
]


@pytest.mark.parametrize(
    "lots,holdings,expected",
    WATER,
    ids=["top-only", "common-level", "tie-by-address", "capped", "short"],
)
def test_water_fill_by_hand(lots, holdings, expected):
    out = water_fill(lots, holdings)
    assert out == expected
    assert all(q <= h.cap for q, h in zip(out, holdings, strict=True))
    assert sum(out) == min(lots, sum(h.cap for h in holdings))


@settings(max_examples=200, deadline=None)
@given(
    lots=st.integers(0, 200),
    rows=st.lists(st.tuples(st.integers(1, 50), st.integers(1, 10_000), st.integers(0, 50)), min_size=1, max_size=6),
)
def test_water_fill_gives_exactly_what_the_caps_allow(lots, rows):
    holdings = [H(size, value, cap=min(cap, size)) for size, value, cap in rows]
    out = water_fill(lots, holdings)
    assert all(0 <= q <= h.cap for q, h in zip(out, holdings, strict=True))
    assert sum(out) == min(lots, sum(h.cap for h in holdings))
    # Nobody is reduced while a winner it could take lots from instead stays more leveraged than it is
    # left: reduced below the level, a winner was reduced no further than the level.
    for h, q in zip(holdings, out, strict=True):
        for g, p in zip(holdings, out, strict=True):
            if q > 0 and p < g.cap:
                # h gave a lot while g could have: h before its last lot was at least as leveraged as g after.
                assert (h.size - q + 1) * g.value >= (g.size - p) * h.value


@settings(max_examples=200, deadline=None)
@given(total=st.integers(0, 10_000), rows=st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500)), max_size=6))
def test_largest_remainder_never_exceeds_a_cap(total, rows):
    weights, caps = [w for w, _c in rows], [c for _w, c in rows]
    out = largest_remainder(total, weights, caps)
    assert all(0 <= q <= c for q, c in zip(out, caps, strict=True))
    assert sum(out) == min(total, sum(c for w, c in rows if w > 0))


CLAWBACK = [
    (500, [600, 300, 100], [300, 150, 50]),
    # floors 2, 2, 0 (remainders 1, 1, 5 of 7): the unit left goes to C.
    (5, [3, 3, 1], [2, 2, 1]),
    # four equal: 2.5 each; the two units left go to A and B (ties by address).
    (10, [4, 4, 4, 4], [3, 3, 2, 2]),
    # the pool (1,000) is less than the deficit: each gives its whole capacity, 1,000 is left.
    (2_000, [600, 300, 100], [600, 300, 100]),
    (7, [0, 3, 4], [0, 3, 4]),
]


@pytest.mark.parametrize(
    "deficit,capacities,expected", CLAWBACK, ids=["halves", "residue", "ties", "pool-short", "exact-with-a-loser"]
)
def test_clawback_shares_by_hand(deficit, capacities, expected):
    out = clawback_shares(deficit, capacities)
    assert out == expected
    assert sum(out) == min(deficit, sum(capacities))
    assert all(0 <= s <= c for s, c in zip(out, capacities, strict=True))


def test_largest_remainder_refuses_bad_input():
    with pytest.raises(ValueError):
        largest_remainder(1, [1], [1, 2])
    with pytest.raises(ValueError):
        largest_remainder(-1, [1], [1])
    with pytest.raises(ValueError):
        water_fill(1, [H(1, 0)])


@pytest.mark.parametrize(
    "holding,level,expected",
    [(H(10, 100), 4_000_000, 6), (H(10, 100), 0, 10), (H(10, 100, cap=3), 0, 3), (H(10, 100), 10_000_000, 0)],
    ids=["keeps-floor-of-level", "level-zero-all", "level-zero-capped", "already-below"],
)
def test_lots_above(holding, level, expected):
    # keep = floor(level x value / (mark x 10^6)): at leverage 4, 100 USDC of value keeps 4 lots of mark 100.
    assert lots_above(holding, level) == expected
