"""spec.math.integers beside its rule (protocol §2.2): each division names its direction."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearinghouse.spec.math.integers import ceil_div, div_toward_zero

CASES = [
    # (a, b, ceil, toward zero, id)
    (7, 2, 4, 3, "protocol 2.2 positive, inexact: ceil up, trunc down"),
    (-7, 2, -3, -3, "protocol 2.2 negative, inexact: both toward +inf/zero give -3"),
    (6, 3, 2, 2, "protocol 2.2 exact positive"),
    (-6, 3, -2, -2, "protocol 2.2 exact negative"),
    (0, 5, 0, 0, "protocol 2.2 zero"),
    (1, 1_000_000, 1, 0, "protocol 2.4 a charge of one part per million rounds up to 1 µ"),
    (-1, 1_000_000, 0, 0, "protocol 2.2 tiny negative: ceil and trunc both 0 (floor would be -1)"),
]


@pytest.mark.parametrize(("a", "b", "up", "toward_zero"), [c[:4] for c in CASES], ids=[c[4] for c in CASES])
def test_division_directions(a: int, b: int, up: int, toward_zero: int) -> None:
    assert ceil_div(a, b) == up
    assert div_toward_zero(a, b) == toward_zero


@given(st.integers(-(2**80), 2**80), st.integers(1, 2**40))
def test_directions_bracket_the_exact_quotient(a: int, b: int) -> None:
    """protocol §2.2: floor <= trunc/ceil, each within one of a/b, on its named side."""
    c, t = ceil_div(a, b), div_toward_zero(a, b)
    assert (c - 1) * b < a <= c * b
    assert abs(t) * b <= abs(a) < (abs(t) + 1) * b
    assert t == 0 or (t > 0) == (a > 0)
