"""spec.math.pnl beside its rule (protocol §10.4): the closed share of cost, and realized PnL."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearinghouse.spec.math.pnl import closed_cost, realized_pnl

CASES = [
    # (size, cost, qty, price, closed cost, realized, id)
    (3, 96_005_000, 1, 33_000_000, 32_001_666, 998_334, "protocol 10.4 worked example, first sale"),
    (2, 64_003_334, 2, 33_000_000, 64_003_334, 1_996_666, "protocol 10.4 worked example, second sale closes the rest"),
    (-4, -40_000_003, 1, 9_000_000, -10_000_000, 1_000_000, "protocol 10.4 short: cost share truncated toward zero"),
    (-4, -40_000_003, 4, 11_000_000, -40_000_003, -3_999_997, "protocol 10.4 short closed whole at a loss"),
    (5, 500, 0, 123, 0, 0, "protocol 10.4 closing nothing realizes nothing"),
    (-20, -20 * 89_990_000, 3, 85_069_375, -269_970_000, 14_761_875, "protocol 12.8 ADL close of a short below entry"),
]


@pytest.mark.parametrize(
    ("size", "cost", "qty", "price", "closed", "realized"), [c[:6] for c in CASES], ids=[c[6] for c in CASES]
)
def test_realized_pnl(size: int, cost: int, qty: int, price: int, closed: int, realized: int) -> None:
    assert closed_cost(size, cost, qty) == closed
    assert realized_pnl(size, cost, qty, price) == realized


@given(
    st.integers(1, 10**6),
    st.integers(1, 10**9),
    st.booleans(),
    st.lists(st.integers(1, 10**9), min_size=1, max_size=8),
)
def test_realized_pnl_adds_up_over_a_positions_life(size: int, entry: int, short: bool, prices: list[int]) -> None:
    """protocol §10.4: closing a position in slices realizes exactly sign x (Σ proceeds) - cost."""
    s = -size if short else size
    cost = s * entry
    total, proceeds = 0, 0
    for i, price in enumerate(prices):
        q = abs(s) if i == len(prices) - 1 else max(1, abs(s) // len(prices))
        q = min(q, abs(s))
        if q == 0:
            break
        total += realized_pnl(s, cost, q, price)
        proceeds += (q if s > 0 else -q) * price
        cost -= closed_cost(s, cost, q)
        s = s - q if s > 0 else s + q
    assert s == 0
    assert total == proceeds - (-size * entry if short else size * entry)
