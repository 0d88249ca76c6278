"""Pure margin arithmetic (no state): notional, margins, rounding named.

protocol §2.4: round against the account being charged. Margin requirements
round up (``ceil_div``); payouts round down (floor division); shares charged
to both sides alike (rates, a closed part's cost) truncate toward zero (``spec.math.integers.div_toward_zero``).
"""

from __future__ import annotations

from clearinghouse.spec.math.integers import ceil_div


def notional(size: int, price: int) -> int:
    """|size| x price in micro-USDC: exact by the unit choice of protocol §2.1."""
    return abs(size) * price


def initial_margin(size: int, price: int, leverage: int) -> int:
    """notional / leverage, rounded up (protocol §10.6)."""
    return ceil_div(notional(size, price), leverage)


def maintenance_margin(size: int, price: int, max_leverage: int) -> int:
    """notional / (2 x max_leverage), rounded up (protocol §10.6)."""
    return ceil_div(notional(size, price), 2 * max_leverage)


def withdrawal_floor(total_notional: int, total_initial_margin: int) -> int:
    """What must remain after a withdrawal or transfer: max(IM, 10% of notional rounded up; protocol §10.6)."""
    return max(total_initial_margin, ceil_div(total_notional, 10))


def unrealized_pnl(size: int, cost: int, price: int) -> int:
    """size x price - cost: the position's profit at ``price`` (exact; protocol §10.6)."""
    return size * price - cost
