"""Integer division with a named rounding direction (protocol §2.2).

Python's ``//`` floors. The rules also need the ceiling (a charge rounds
against the account, protocol §2.4) and truncation toward zero (a rate or a
closed share of a signed cost favours neither side). These two are the only
definitions of each in the consensus core.
"""

from __future__ import annotations


def ceil_div(a: int, b: int) -> int:
    """Exact ceiling of a / b for b > 0 (``a`` may be negative; protocol §2.2)."""
    return -((-a) // b)


def div_toward_zero(a: int, b: int) -> int:
    """a / b truncated toward zero for b > 0 (protocol §2.2): -7/2 = -3, 7/2 = 3."""
    q = abs(a) // b
    return q if a >= 0 else -q
