"""Leverage, margin mode and isolated margin (protocol §9.5, §9.6, §10.7).

* Leverage is an integer 1..max_leverage per (account, market). With an open
  position it may change only if the position still meets initial margin at
  the new leverage; the margin mode cannot change while a position is open.
* Isolated margin can be added from cross (up to what cross could withdraw)
  or removed back to cross while the position keeps its initial margin.
"""

from __future__ import annotations

import msgspec

from clearinghouse.spec.errors import (
    InsufficientBalance,
    InsufficientMargin,
    InvalidAmount,
    InvalidLeverage,
    InvalidMarginMode,
)
from clearinghouse.spec.events import MarginMoved, PositionChanged
from clearinghouse.spec.state.accounts import add_cash, checked_i64
from clearinghouse.spec.state.context import TxContext
from clearinghouse.spec.trading.margin import isolated_health, meets_cross_initial, withdrawable
from clearinghouse.spec.trading.orders import market_spec
from clearinghouse.spec.trading.positions import get_or_default, put_position
from tx.actions import UpdateIsolatedMargin, UpdateLeverage


def apply_update_leverage(ctx: TxContext, action: UpdateLeverage) -> None:
    """Set the leverage and margin mode (cross or isolated) of the account's position in a market (protocol §9.5).

    Raises:
        UnknownMarket: no such market.
        InvalidLeverage: leverage outside 1..max_leverage, or the open position would no longer meet
            initial margin at it.
        InvalidMarginMode: the mode changes while the position is open or holds an isolated deficit.
    """
    ws = ctx.ws
    spec = market_spec(ws, action.market)
    if not 1 <= action.leverage <= spec.max_leverage:
        raise InvalidLeverage(f"leverage must be 1..{spec.max_leverage}")
    pos = get_or_default(ws, action.market, ctx.account, spec)
    if (pos.size != 0 or pos.iso_cash != 0) and pos.is_cross != action.is_cross:
        # A flat isolated position whose bucket is not empty holds a deficit the
        # waterfall has not settled yet: switching it to cross would orphan it.
        raise InvalidMarginMode("cannot switch margin mode with an open position or an unsettled isolated balance")
    new = msgspec.structs.replace(pos, leverage=action.leverage, is_cross=action.is_cross)
    put_position(ws, action.market, ctx.account, new, spec)
    if new.size != 0:
        if new.is_cross:
            ok = meets_cross_initial(ws, ctx.account)
        else:
            health = isolated_health(ws, action.market, new)
            ok = health.value >= health.initial
        if not ok:
            raise InvalidLeverage(f"the open position does not meet initial margin at {action.leverage}x")
    ctx.emit(
        PositionChanged(
            tx_index=ctx.tx_index,
            market=action.market,
            account=ctx.account,
            size=new.size,
            cost=new.cost,
            leverage=new.leverage,
            is_cross=new.is_cross,
            iso_cash=new.iso_cash,
        )
    )


def apply_update_isolated_margin(ctx: TxContext, action: UpdateIsolatedMargin) -> None:
    """Move margin between cross cash and an open isolated position's bucket (protocol §9.6).

    Raises:
        UnknownMarket: no such market.
        InvalidMarginMode: the position is cross or flat.
        InvalidAmount: ``delta`` is zero, or a balance would leave its 64-bit range.
        InsufficientBalance: adding more than the cross account can spare.
        InsufficientMargin: removing so much that the position falls below initial margin.
    """
    ws = ctx.ws
    spec = market_spec(ws, action.market)
    pos = get_or_default(ws, action.market, ctx.account, spec)
    if pos.is_cross or pos.size == 0:
        raise InvalidMarginMode("margin can only be moved into or out of an open isolated position")
    if action.delta == 0:
        raise InvalidAmount("delta must not be zero")
    if action.delta > 0:
        free = withdrawable(ws, ctx.account)
        if action.delta > free:
            raise InsufficientBalance(f"cannot add {action.delta}: only {free} free in cross")
    new = msgspec.structs.replace(pos, iso_cash=checked_i64(pos.iso_cash + action.delta, "isolated cash"))
    if action.delta < 0:
        health = isolated_health(ws, action.market, new)
        if health.value < health.initial:
            raise InsufficientMargin("removing that much would leave the position below initial margin")
    put_position(ws, action.market, ctx.account, new, spec)
    add_cash(ws, ctx.account, -action.delta)
    ctx.emit(MarginMoved(tx_index=ctx.tx_index, market=action.market, account=ctx.account, delta=action.delta))
