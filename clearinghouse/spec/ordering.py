"""In-block transaction ordering (protocol §6.4, Hyperliquid's rule).

Class 0: actions that place no GTC/IOC order (collateral, settings, oracle,
ALO and trigger orders, and undecodable transactions, which are only
rejected). Class 1: cancels. Class 2: actions that place GTC/IOC/FOK or
market orders, and modifies (a modify re-places an order). Producer order is
kept within each class (a stable sort).
"""

from __future__ import annotations

from tx.actions import TIF_ALO, Action, Cancel, CancelByCloid, MarketOrder, Modify, PlaceOrder

CLASS_OTHER = 0
CLASS_CANCEL = 1
CLASS_TAKER = 2


def action_class(action: Action | None) -> int:
    """The execution class of an action within a block: cancels first, then others, then takers (protocol §6.4)."""
    if isinstance(action, (Cancel, CancelByCloid)):
        return CLASS_CANCEL
    if isinstance(action, PlaceOrder):
        return CLASS_OTHER if action.tif == TIF_ALO else CLASS_TAKER
    if isinstance(action, (MarketOrder, Modify)):
        return CLASS_TAKER
    return CLASS_OTHER


def execution_order(actions: list[Action | None]) -> list[int]:
    """Indices of ``actions`` (None for undecodable) in execution order (protocol §6.4)."""
    return sorted(
        range(len(actions)), key=lambda i: (action_class(actions[i]) if actions[i] is not None else CLASS_OTHER, i)
    )
