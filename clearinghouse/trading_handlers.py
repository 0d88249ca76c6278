"""Registers the trading, oracle and end-of-block modules with the transition.

Importing this module wires every action handler and end-of-block step; it
exists so the transition core does not import trading code directly.
"""

from tx import actions as A

from . import triggers  # noqa: F401  (end-of-block step: TP/SL)
from . import waterfall  # noqa: F401  (end-of-block steps: liquidation, ADL)
from .leverage import apply_update_isolated_margin, apply_update_leverage
from .orders import (
    apply_cancel, apply_cancel_by_cloid, apply_market_order, apply_modify, apply_place_order, apply_trigger_order,
)
from .transition import register

register(A.PlaceOrder, apply_place_order)
register(A.MarketOrder, apply_market_order)
register(A.TriggerOrder, apply_trigger_order)
register(A.Cancel, apply_cancel)
register(A.CancelByCloid, apply_cancel_by_cloid)
register(A.Modify, apply_modify)
register(A.UpdateLeverage, apply_update_leverage)
register(A.UpdateIsolatedMargin, apply_update_isolated_margin)

from . import oracle, funding  # noqa: E402,F401  (oracle updates; end-of-block prices and funding)
