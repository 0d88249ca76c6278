"""Realized PnL of reducing a position (protocol §10.4). Pure integers, no state.

A position keeps ``cost``, its signed entry notional. Reducing it by ``qty``
of its ``|size|`` lots closes the share cost x qty / |size| of that cost,
truncated toward zero; the remainder stays in the position, so over the life
of a position the realized PnL adds up exactly. The realized PnL of the
reduction is sign(size) x qty x price minus the closed cost.
"""

from __future__ import annotations

from clearinghouse.spec.math.integers import div_toward_zero


def closed_cost(size: int, cost: int, qty: int) -> int:
    """The part of ``cost`` that closing ``qty`` of ``|size|`` lots removes, truncated toward zero (protocol §10.4).

    ``size`` must be non-zero and ``0 <= qty <= |size|``.
    """
    return div_toward_zero(cost * qty, abs(size))


def realized_pnl(size: int, cost: int, qty: int, price: int) -> int:
    """Realized PnL of closing ``qty`` lots of a position of ``size`` and ``cost`` at ``price`` (protocol §10.4).

    sign(size) x qty x price - ``closed_cost(size, cost, qty)``: exact, in micro-USDC. Used by
    ``settle_fill`` for every reducing fill and by the waterfall to look ahead at a close.
    """
    return (qty if size > 0 else -qty) * price - closed_cost(size, cost, qty)
